"""A :class:`QuantizedNetwork` as an integer ONNX graph, bit-exact with :mod:`rsnn_deploy.emulator`.

All neuron state is int64 and every operation is exact (integer, or a float64 product
of 0/1 spikes and integer weights, whose sums are integers far below 2**53); a host
runtime without Python (onnxruntime's C API, ...) reproduces the chip's integers exactly.

Operations used, and why they are exact:

- synaptic input ``q = x @ W_in^T + z_prev @ W_rec^T``: ``MatMul`` on float32 where every
  row's sum of ``|w|`` is below 2**24, else float64 (below 2**53), cast to int64: 0/1 spikes
  times integer weights, so every partial sum is an integer the float type holds exactly
  in any order. onnxruntime's int64 ``MatMul`` has no optimised kernel: it made
  ``verify``'s onnx backend 30x slower than the emulator;
- decay ``sign(x) * ((|x| * (4096 - offset - d)) >> 12)``: ``Abs``, ``Mul``, then
  ``BitShift`` (ONNX shifts only unsigned types, so the non-negative product goes
  through ``uint64``), sign restored with ``Where``; this truncates toward zero like
  ``nengo_loihi.builder.discretize.decay_int`` and Lava;
- ``loihi1`` wrap ``((x + 2**b) & (2**(b+1) - 1)) - 2**b``: ``BitwiseAnd`` on int64
  (two's complement, as nengo-loihi's ``overflow_signed``); ``loihi2`` wrap: Lava's
  literal once-only correction with ``Where``;
- clip of v: ``Clip`` on int64; refractory counters and threshold adaptation:
  ``Where``/``Max``/``Add`` on int64; comparisons ``Greater`` (loihi1 and loihi2 LIF, ``v > vth``) and
  ``GreaterOrEqual`` (loihi2 ATRLIF, ``v - r >= vth + theta``, no reset).

Step graph (``graph="step"``): one **chip** step::

    inputs   x [B, C] bool            host input spikes given at this chip step
             u, v [B, H] int64        compartment current and voltage
             ref  [B, H] int64        loihi1: refractory counter   | loihi2: theta, r [B, H] (ATRLIF's
                                      theta - theta_0 and refractory state; 0 for LIF)
             z_prev [B, H] bool       spikes of the previous chip step
             x_delay [B, L, C] bool   host spikes still in flight (only when input_latency L > 0)
             y [B, K] float64         host readout
    outputs  u_out, v_out, ref_out | theta_out r_out, z [B, H] bool, x_delay_out, y_out, overflow [3] int64

Input latency: host spikes given at chip step ``n`` reach ``q`` at chip step ``n + L``;
the graph keeps the ``L`` frames in flight in ``x_delay`` (oldest first). To get what
:func:`rsnn_deploy.emulator.run` returns for inputs ``x[0..T-1]``, run ``T + L`` chip
steps from all-zero state, feeding ``x[n]`` for ``n < T`` and zeros after, and drop
the first ``L`` outputs: trace step ``t`` is chip step ``t + L``.

The host readout (float64, :func:`rsnn_deploy.trace.readout_update`:
``y = (a_out * y + z @ W_out^T) + b_out``) rides along:
pass ``y = 0`` for the first ``L + 1`` chip steps (the readout starts at trace step 0)
and feed ``y_out`` back afterwards. ``overflow`` counts the neuron-steps of this chip
step that wrapped (loihi1: q, u, u2) or left their width unwrapped (loihi2: q, u, theta),
as the emulator's ``Trace.overflow`` does.

Sequence graph (``graph="sequence"``): input ``x [B, T, C]`` bool; pads ``L`` zero
frames, runs a ``Scan`` of ``T + L`` chip steps, drops the first ``L`` and returns the
aligned ``spikes`` (bool), ``current``, ``voltage`` (and loihi2 ``adaptation``) int64
``[B, T, H]``, ``readout [B, T, K]`` and ``logits [B, K]`` (float64), and ``overflow
[3]`` summed over all chip steps: the same :class:`~rsnn_deploy.trace.Trace` as
``emulator.run(qnet, x, record_states=True)``.
"""

from __future__ import annotations

import numpy as np
import onnx

from rsnn_deploy import semantics
from rsnn_deploy.errors import UnsupportedError
from rsnn_deploy.export._onnx_build import GraphBuilder, Sym, make_model, value_info
from rsnn_deploy.hardware import HardwareProfile, load_profile
from rsnn_deploy.qnet import QuantizedNetwork
from rsnn_deploy.trace import readout_update

__all__ = ["export_int_onnx", "int_state_names"]

_I64, _F64, _BOOL = np.int64, np.float64, np.bool_


def int_state_names(semantics_key: str, latency: int) -> tuple[str, ...]:
    """The recurrent state of the step graph, in input order (``x`` comes first, outside it)."""
    extra = semantics.get(semantics_key).extra_state
    return ("u", "v", *extra, "z_prev", *(("x_delay",) if latency > 0 else ()), "y")


class _Ops:
    """Integer helpers on top of a :class:`GraphBuilder`."""

    def __init__(self, b: GraphBuilder, decay_bits: int) -> None:
        self.b = b
        self.bits = decay_bits

    def decay(self, x: str, reg: np.ndarray, offset: int, name: str, signed: bool = True) -> str:
        """``sign(x) * ((|x| * (2**bits - offset - reg)) >> bits)``, truncating toward zero.

        ``signed=False``: ``x`` is known to be non-negative (then ``|x| = x`` and no sign to restore).
        """
        b = self.b
        r = b.const((1 << self.bits) - offset - np.asarray(reg, dtype=_I64), _I64, f"{name}_retention")
        prod = b.op("Cast", b.op("Mul", b.op("Abs", x) if signed else x, r), to=onnx.TensorProto.UINT64)
        mag = b.op("Cast", b.op("BitShift", prod, b.const(self.bits, np.uint64), direction="RIGHT"),
                   to=onnx.TensorProto.INT64)
        if not signed:
            return mag
        return b.op("Where", b.op("Less", x, b.const(0, _I64)), b.op("Neg", mag), mag)

    def wrap(self, x: str, bits: int) -> str:
        """Two's-complement wrap into ``[-2**bits, 2**bits)``."""
        b = self.b
        half = b.const(1 << bits, _I64)
        return b.op("Sub", b.op("BitwiseAnd", b.op("Add", x, half), b.const((2 << bits) - 1, _I64)), half)

    def count(self, mask: str) -> str:
        """Number of true entries of ``mask`` as int64 ``[1]``."""
        b = self.b
        flat = b.op("Reshape", b.op("Cast", mask, to=onnx.TensorProto.INT64), b.const([-1], _I64))
        return b.op("ReduceSum", flat, b.const([0], _I64), keepdims=1)

    def count_changed(self, a: str, c: str) -> str:
        return self.count(self.b.op("Not", self.b.op("Equal", a, c)))


def _synaptic_input(b: GraphBuilder, qnet: QuantizedNetwork, x: str, z_prev: str) -> str:
    """``q = x @ W_in^T + z_prev @ W_rec^T`` as int64, through the narrowest exact float ``MatMul``.

    Every partial sum of 0/1 spikes times integer weights is bounded by the row's sum of
    ``|w|`` (input and recurrent together); where that bound is below 2**24 float32 holds
    every partial sum exactly in any order, and its ``MatMul`` is about twice as fast as
    float64's. Otherwise float64 (exact below 2**53).
    """
    rows = np.abs(qnet.w_in.astype(_I64)).sum(axis=1)
    if qnet.w_rec is not None:
        rows = rows + np.abs(qnet.w_rec.astype(_I64)).sum(axis=1)
    narrow = int(rows.max(initial=0)) < (1 << 24)
    ftype, fnp = (onnx.TensorProto.FLOAT, np.float32) if narrow else (onnx.TensorProto.DOUBLE, _F64)
    q = b.op("MatMul", b.op("Cast", x, to=ftype), b.const(qnet.w_in.T, fnp, "w_in_t"))
    if qnet.w_rec is not None:
        rec = b.op("MatMul", b.op("Cast", z_prev, to=ftype), b.const(qnet.w_rec.T, fnp, "w_rec_t"))
        q = b.op("Add", q, rec)  # exact: the sum of both is within the same bound
    return b.op("Cast", q, to=onnx.TensorProto.INT64)


def _loihi1(o: _Ops, qnet: QuantizedNetwork, prof: HardwareProfile, q: str, st: dict[str, str]) -> dict[str, str]:
    """nengo-loihi 1.1.0's compartment update; see :func:`rsnn_deploy.emulator.loihi1_step`.

    As the emulator does (:func:`rsnn_deploy.emulator.params_for`), operations that static
    bounds prove to be no-ops are left out: a wrap that cannot happen (its count is then a
    constant 0), the refractory bookkeeping when every ``ref <= 1``, the ceiling when every
    ``vth < vmax``, the sign handling of v's decay when ``vmin >= 0``. Skipping a no-op is
    exact, and it made the graph about twice as fast in onnxruntime.
    """
    p = semantics.loihi1.params(qnet, prof)  # the numpy step's own parameters (the graph is tested against it)
    b, s = o.b, prof.state
    none = b.const([0], _I64)
    qw = o.wrap(q, s.q_bits) if p.wrap_q else q
    u_pre = b.op("Add", o.decay(st["u"], qnet.decay_u, prof.decay.u_offset, "decay_u"), qw)
    u = o.wrap(u_pre, s.u_bits) if p.wrap_u else u_pre
    with_bias = b.op("Add", u, b.const(qnet.bias, _I64, "bias"))
    u2 = o.wrap(with_bias, s.u_bits) if p.wrap_u2 else with_bias
    v_decay = o.decay(st["v"], qnet.decay_v, prof.decay.v_offset, "decay_v", signed=qnet.vmin < 0)
    v = b.op("Add", v_decay, u2)
    if p.wrap_v32:  # nengo-loihi keeps v in int32 (a no-op unless the floor is below -2**31 + 2**23)
        v = o.wrap(v, 31)
    if p.clip_vmax:
        v = b.op("Clip", v, b.const(qnet.vmin, _I64, "vmin"), b.const(qnet.vmax, _I64, "vmax"))
    else:
        v = b.op("Max", v, b.const(qnet.vmin, _I64, "vmin"))
    zero = b.const(0, _I64)
    if p.has_refractory:
        v = b.op("Where", b.op("Greater", st["ref"], zero), zero, v)
    z = b.op("Greater", v, b.const(qnet.vth, _I64, "vth"))
    v = b.op("Where", z, zero, v)
    if p.has_refractory:
        ref = b.op("Where", z, b.const(qnet.refractory, _I64, "refractory"), st["ref"])
        ref = b.op("Max", b.op("Sub", ref, b.const(1, _I64)), zero)
    else:  # every ref <= 1: the counter is set to at most 1 and counts down to 0 in the same step
        ref = b.op("Identity", st["ref"])
    over = b.op(
        "Concat",
        o.count_changed(qw, q) if p.wrap_q else none,
        o.count_changed(u, u_pre) if p.wrap_u else none,
        o.count_changed(u2, with_bias) if p.wrap_u2 else none,
        axis=0,
    )
    return {"u": u, "v": v, "ref": ref, "z": z, "overflow": over}


def _loihi2(o: _Ops, qnet: QuantizedNetwork, prof: HardwareProfile, q: str, st: dict[str, str]) -> dict[str, str]:
    """Lava's LIF (strict threshold, reset) or ATRLIF (``qnet.decay_r`` set); see
    :func:`rsnn_deploy.emulator.loihi2_step`."""
    b, s = o.b, prof.state
    h = qnet.n_hidden
    qlim = 1 << s.q_bits
    q_out = b.op("Or", b.op("GreaterOrEqual", q, b.const(qlim, _I64)), b.op("Less", q, b.const(-qlim, _I64)))
    u_pre = b.op("Add", o.decay(st["u"], qnet.decay_u, prof.decay.u_offset, "decay_u"), q)
    m = 1 << s.u_bits
    once = b.op("Where", b.op("Greater", u_pre, b.const(m, _I64)), b.op("Sub", u_pre, b.const(2 * m, _I64)), u_pre)
    u = b.op("Where", b.op("LessOrEqual", once, b.const(-m, _I64)), b.op("Add", u_pre, b.const(2 * m, _I64)), once)
    v = b.op("Add", b.op("Add", o.decay(st["v"], qnet.decay_v, prof.decay.v_offset, "decay_v"), u),
             b.const(qnet.bias, _I64, "bias"))
    v = b.op("Clip", v, b.const(qnet.vmin, _I64, "vmin"), b.const(qnet.vmax, _I64, "vmax"))
    vth = b.const(qnet.vth, _I64, "vth")
    zero = b.const(0, _I64)
    if not qnet.is_atrlif:  # PyLifModelBitAcc: v > vth, reset to 0; theta and r stay 0
        z = b.op("Greater", v, vth)
        v = b.op("Where", z, zero, v)
        over = b.op("Concat", o.count(q_out), o.count_changed(u, u_pre), o.count(b.op("Less", vth, zero)), axis=0)
        return {"u": u, "v": v, "theta": st["theta"], "r": st["r"], "z": z, "overflow": over}
    d_theta = qnet.decay_theta if qnet.decay_theta is not None else np.zeros(h, _I64)
    step = qnet.theta_step if qnet.theta_step is not None else np.zeros(h, _I64)
    theta_abs = b.op("Add", o.decay(st["theta"], d_theta, prof.decay.theta_offset, "decay_theta"), vth)
    r = o.decay(st["r"], qnet.decay_r, prof.decay.r_offset, "decay_r")
    z = b.op("GreaterOrEqual", b.op("Sub", v, r), theta_abs)  # PyATRLIFModelFixed: v - r >= theta, no reset
    r = b.op("Add", r, b.op("Where", z, b.op("Add", theta_abs, theta_abs), zero))
    theta_abs = b.op("Add", theta_abs, b.op("Where", z, b.const(step, _I64, "theta_step"), zero))
    lim = b.const((1 << s.theta_bits) - 1, _I64)
    t_out = b.op("Add", o.count(b.op("Greater", theta_abs, lim)), o.count(b.op("Greater", r, lim)))
    over = b.op("Concat", o.count(q_out), o.count_changed(u, u_pre), t_out, axis=0)
    return {"u": u, "v": v, "theta": b.op("Sub", theta_abs, vth), "r": r, "z": z, "overflow": over}


# The integer step graph of each semantics (each tested against its numpy step in rsnn_deploy.semantics).
_GRAPH_STEPS = {semantics.loihi1.SEMANTICS.key: _loihi1, semantics.loihi2.SEMANTICS.key: _loihi2}


def _step_nodes(b: GraphBuilder, qnet: QuantizedNetwork, prof: HardwareProfile, x: str,
                st: dict[str, str]) -> dict[str, str]:
    """One chip step plus the readout; returns new state tensors, ``z`` and ``overflow``."""
    lat = qnet.input_latency
    if lat > 0:
        arriving = b.op("Squeeze", b.op("Slice", st["x_delay"], b.const([0], _I64), b.const([1], _I64),
                                        b.const([1], _I64)), b.const([1], _I64))
        rest = b.op("Slice", st["x_delay"], b.const([1], _I64), b.const([lat], _I64), b.const([1], _I64))
        x_delay = b.op("Concat", rest, b.op("Unsqueeze", x, b.const([1], _I64)), axis=1)
    else:
        arriving, x_delay = x, None
    o = _Ops(b, prof.decay.bits)
    q = _synaptic_input(b, qnet, arriving, st["z_prev"])
    step = _GRAPH_STEPS[prof.semantics]
    new = step(o, qnet, prof, q, st)
    new["y"] = _readout_nodes(b, qnet, st["y"], new["z"])
    new["z_prev"] = new["z"]
    if x_delay is not None:
        new["x_delay"] = x_delay
    return new


def _readout_nodes(b: GraphBuilder, qnet: QuantizedNetwork, y: str, z: str) -> str:
    """The host readout's step on bool spikes ``z``: :func:`rsnn_deploy.trace.readout_update` run on graph values."""
    zf = Sym(b, b.op("Cast", z, to=onnx.TensorProto.DOUBLE), _F64)
    drive = zf @ Sym.const(b, qnet.w_out, "w_out", _F64).T
    new = readout_update(
        Sym(b, y, _F64), drive, Sym.const(b, qnet.b_out, "b_out", _F64), Sym.const(b, qnet.readout_decay, "a_out", _F64)
    )
    return new.name


def _state_info(qnet: QuantizedNetwork, name: str, prefix: str = "", extra: str = "") -> onnx.ValueInfoProto:
    h, c, k, lat = qnet.n_hidden, qnet.n_inputs, qnet.n_outputs, qnet.input_latency
    spec = {"z_prev": (_BOOL, ["B", h]), "x_delay": (_BOOL, ["B", lat, c]), "y": (_F64, ["B", k])}
    dtype, shape = spec.get(name, (_I64, ["B", h]))
    return value_info(f"{prefix}{name}{extra}", dtype, shape)


def _metadata(qnet: QuantizedNetwork, prof: HardwareProfile, graph: str) -> dict[str, object]:
    return {
        "kind": "int",
        "graph": graph,
        "profile": qnet.profile,
        "profile_sha256": qnet.profile_sha256,
        "semantics": prof.semantics,
        "input_latency": qnet.input_latency,
        "n_inputs": qnet.n_inputs,
        "n_hidden": qnet.n_hidden,
        "n_outputs": qnet.n_outputs,
        "readout_mode": qnet.readout_mode,
        "readout_decay": repr(float(qnet.readout_decay)),
        "state": ",".join(int_state_names(prof.semantics, qnet.input_latency)),
        "overflow": ",".join(semantics.for_profile(prof).overflow_names),
        "source": qnet.source,
    }


def _step_model(qnet: QuantizedNetwork, prof: HardwareProfile) -> onnx.ModelProto:
    names = int_state_names(prof.semantics, qnet.input_latency)
    b = GraphBuilder()
    new = _step_nodes(b, qnet, prof, "x", {s: s for s in names})
    for s in names:
        b.op("Identity", new[s], out="z" if s == "z_prev" else f"{s}_out")
    b.op("Identity", new["overflow"], out="overflow")
    inputs = [value_info("x", _BOOL, ["B", qnet.n_inputs])] + [_state_info(qnet, s) for s in names]
    outputs = [value_info("z", _BOOL, ["B", qnet.n_hidden]) if s == "z_prev" else _state_info(qnet, s, extra="_out")
               for s in names]
    outputs.append(value_info("overflow", _I64, [3]))
    doc = f"One integer chip step of profile {qnet.profile}; see rsnn_deploy/export/_onnx_int.py."
    return make_model(b.graph("rsnn_int_step", inputs, outputs, doc), _metadata(qnet, prof, "step"), doc)


def _zeros(b: GraphBuilder, dims: list[str], dtype: int) -> str:
    shape = b.op("Concat", *dims, axis=0)
    return b.op("ConstantOfShape", shape, value=onnx.helper.make_tensor("v", dtype, [1], [0]))


def _sequence_model(qnet: QuantizedNetwork, prof: HardwareProfile) -> onnx.ModelProto:
    h, c, k, lat = qnet.n_hidden, qnet.n_inputs, qnet.n_outputs, qnet.input_latency
    names = int_state_names(prof.semantics, lat)
    third = names[2]
    recorded = ["z_prev", "u", "v"] + (["theta"] if third == "theta" else [])

    body = GraphBuilder(prefix="s_")
    new = _step_nodes(body, qnet, prof, "s_x", {s: f"s_{s}" for s in names})
    for s in names:
        if s != "y":
            body.op("Identity", new[s], out=f"s_{s}_next")
    for s in recorded:
        body.op("Identity", new[s], out=f"s_{s}_rec")
    body.op("Identity", new["overflow"], out="s_overflow_rec")
    chip_state = [s for s in names if s != "y"]  # the readout runs after alignment, in its own Scan
    body_graph = body.graph(
        "rsnn_int_step_body",
        [_state_info(qnet, s, "s_") for s in chip_state] + [value_info("s_x", _BOOL, ["B", c])],
        [_state_info(qnet, s, "s_", "_next") for s in chip_state]
        + [_state_info(qnet, s, "s_", "_rec") for s in recorded]
        + [value_info("s_overflow_rec", _I64, [3])],
    )
    # the body references s_y only through the readout nodes; give it a dummy zero y so it stays self-contained
    _prune_readout(body_graph)

    b = GraphBuilder()
    shape = b.op("Shape", "x")
    batch = b.op("Slice", shape, b.const([0], _I64), b.const([1], _I64))
    dims_h = [batch, b.const([h], _I64)]
    init = {
        "u": _zeros(b, dims_h, onnx.TensorProto.INT64),
        "v": _zeros(b, dims_h, onnx.TensorProto.INT64),
        third: _zeros(b, dims_h, onnx.TensorProto.INT64),
        "z_prev": _zeros(b, dims_h, onnx.TensorProto.BOOL),
    }
    if "r" in names:
        init["r"] = _zeros(b, dims_h, onnx.TensorProto.INT64)
    x_in = "x"
    if lat > 0:
        init["x_delay"] = _zeros(b, [batch, b.const([lat, c], _I64)], onnx.TensorProto.BOOL)
        pad = _zeros(b, [batch, b.const([lat, c], _I64)], onnx.TensorProto.BOOL)
        x_in = b.op("Concat", "x", pad, axis=1)
    raw = {s: f"chip_{s}" for s in recorded}
    b.op_multi(
        "Scan",
        [*(init[s] for s in chip_state), x_in],
        [f"final_{s}" for s in chip_state] + [raw[s] for s in recorded] + ["chip_overflow"],
        body=body_graph,
        num_scan_inputs=1,
        scan_input_axes=[1],
        scan_output_axes=[1] * len(recorded) + [0],
    )
    out_names = {"z_prev": "spikes", "u": "current", "v": "voltage", "theta": "adaptation"}
    big = b.const([np.iinfo(np.int64).max], _I64)
    for s in recorded:
        b.op("Slice", raw[s], b.const([lat], _I64), big, b.const([1], _I64), out=out_names[s])
    b.op("ReduceSum", "chip_overflow", b.const([0], _I64), out="overflow", keepdims=0)

    _readout_scan(b, qnet, batch)  # host readout over the aligned spikes

    outputs = [value_info("spikes", _BOOL, ["B", "T", h])]
    outputs += [value_info(out_names[s], _I64, ["B", "T", h]) for s in recorded[1:]]
    outputs += [value_info("readout", np.float32, ["B", "T", k]), value_info("logits", _F64, ["B", k]),
                value_info("overflow", _I64, [3])]
    doc = (f"Integer network of profile {qnet.profile} over a whole sequence, aligned with the float model "
           "(input latency handled inside); see rsnn_deploy/export/_onnx_int.py.")
    graph = b.graph("rsnn_int_sequence", [value_info("x", _BOOL, ["B", "T", c])], outputs, doc)
    return make_model(graph, _metadata(qnet, prof, "sequence"), doc)


def _readout_scan(b: GraphBuilder, qnet: QuantizedNetwork, batch: str) -> None:
    """The host readout over ``spikes`` [B, T, H] in its own Scan: ``readout`` (float32) and ``logits``."""
    h, k = qnet.n_hidden, qnet.n_outputs
    rb = GraphBuilder(prefix="r_")
    y = _readout_nodes(rb, qnet, "r_y", "r_z")
    rb.op("Identity", y, out="r_y_next")
    rb.op("Identity", y, out="r_y_rec")
    readout_body = rb.graph(
        "rsnn_readout_body",
        [value_info("r_y", _F64, ["B", k]), value_info("r_z", _BOOL, ["B", h])],
        [value_info("r_y_next", _F64, ["B", k]), value_info("r_y_rec", _F64, ["B", k])],
    )
    y0 = _zeros(b, [batch, b.const([k], _I64)], onnx.TensorProto.DOUBLE)
    b.op_multi("Scan", [y0, "spikes"], ["final_y", "readout64"], body=readout_body, num_scan_inputs=1,
               scan_input_axes=[1], scan_output_axes=[1])
    b.op("Cast", "readout64", to=onnx.TensorProto.FLOAT, out="readout")
    if qnet.readout_mode == "mean":
        b.op("ReduceMean", "readout64", b.const([1], _I64), out="logits", keepdims=0)
    else:
        b.op("Identity", "final_y", out="logits")


def _prune_readout(graph: onnx.GraphProto) -> None:
    """Drop the readout nodes (and their constants) from a chip-only Scan body."""
    needed = {o.name for o in graph.output}
    keep: list[onnx.NodeProto] = []
    for node in reversed(list(graph.node)):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(node.input)
    del graph.node[:]
    graph.node.extend(reversed(keep))
    inits = [t for t in graph.initializer if t.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(inits)


def export_int_onnx(qnet: QuantizedNetwork, graph: str = "step",
                    profile: HardwareProfile | str | None = None) -> onnx.ModelProto:
    """``qnet`` as a checked integer ONNX model (``graph`` is ``"step"`` or ``"sequence"``).

    Raises
    ------
    UnsupportedError
        When the profile's semantics has no integer graph here.
    """
    prof = profile if isinstance(profile, HardwareProfile) else load_profile(profile or qnet.profile)
    if prof.semantics not in _GRAPH_STEPS:
        raise UnsupportedError(f"export --format onnx: no integer graph for semantics {prof.semantics!r}")
    return _step_model(qnet, prof) if graph == "step" else _sequence_model(qnet, prof)
