"""The float RSNN as ONNX: a one-step graph and a whole-sequence graph (``Scan``).

Built by running :func:`rsnn_deploy.neuron.neuron_step` itself on symbolic values
(:class:`~rsnn_deploy.export._onnx_build.Sym`: each arithmetic operator appends one ONNX node) rather than by tracing
torch: the graph then holds exactly the operations of the step, in its order, with the
spike function's forward pass (``v - threshold > 0``) as a plain ``Greater``, and no
autograd leftovers; a change to the step changes the graph. Parameters are the model's
*effective* parameters (:meth:`RSNN.effective_params`, so a QAT model exports its
fake-quantized values), float32 like the model, as :func:`rsnn_deploy.neuron.params_as_numpy`
gives them.

Step graph (``graph="step"``), one time step of the network, state in and out::

    inputs   x [B, C], i, v, n, ref, z_prev [B, H], y [B, K]          (all float32)
    outputs  i_out, v_out, n_out, ref_out, z [B, H], y_out [B, K]

    i   = a_s * i + x @ W_in^T + z_prev @ W_rec^T
    n   = a_a * n                                  (adaptation; passed through without)
    v   = a_m * v + i + bias  (- n for current adaptation)
    v   = max(v, v_floor);  v = v * (ref <= 0)
    z   = (v - (threshold [+ n])) > 0
    v   = v * (1 - z);  n += adapt_strength * z;  ref = z ? R : max(ref - 1, 0)
    y   = a_o * y + (z @ W_out^T + b_out)

(ATRLIF, ``adapt_kind = "atrlif"``: ``ref`` carries its refractory state ``r``, as in the
nengo neuron type; see ``neuron.py``.) Every variant has the same interface; states a
variant does not use are passed through unchanged, so one host loop runs them all.
Start from all-zero state.

Sequence graph (``graph="sequence"``): input ``x [B, T, C]``; a ``Scan`` over axis 1
whose body is the step above (zero initial state built inside from ``x``'s batch
size); outputs ``spikes, current, voltage, adaptation [B, T, H]``, ``readout [B, T, K]``
and ``logits [B, K]`` (time mean or last step of the readout, as the model's
``readout_mode``). ``T`` is symbolic: one file serves every sequence length. With the
model's encoder (``--with-encoder``) the input is ``raw [B, T, D]`` (float64) and the
recorded input code (:mod:`rsnn_deploy.export._onnx_encoder`) makes ``x`` inside the graph.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import onnx
import torch

from rsnn_deploy import neuron
from rsnn_deploy.errors import UnsupportedError, ValidationError
from rsnn_deploy.export._onnx_build import GraphBuilder, Sym, make_model, value_info
from rsnn_deploy.export._onnx_encoder import encoder_nodes
from rsnn_deploy.model import RSNN
from rsnn_deploy.neuron import NeuronParams, NeuronState
from rsnn_deploy.tasks.input_encoder import InputEncoder

__all__ = ["FLOAT_STATE", "FloatParams", "export_float_onnx", "float_params"]

FLOAT_STATE = ("i", "v", "n", "ref", "z_prev", "y")
_F32 = np.float32


class FloatParams(NamedTuple):
    """Everything the float graph needs, as float32 numpy: the neuron's parameters and the readout's."""

    neuron: NeuronParams[np.ndarray]
    w_out: np.ndarray  # [K, H]
    b_out: np.ndarray  # [K]
    a_out: float
    readout_mode: str


def float_params(model: RSNN) -> FloatParams:
    """The effective float32 parameters of ``model`` (fake-quantized ones under QAT)."""
    with torch.no_grad():
        return FloatParams(
            neuron=neuron.params_as_numpy(model.effective_params(), _F32),
            w_out=model.w_out.detach().cpu().to(torch.float32).numpy().copy(),
            b_out=model.b_out.detach().cpu().to(torch.float32).numpy().copy(),
            a_out=float(model.readout_decay()),
            readout_mode=model.cfg.readout_mode,
        )


class _OnnxOps(neuron.StepOps):
    """The step's non-arithmetic operations as ONNX nodes (see :class:`rsnn_deploy.neuron.StepOps`)."""

    def floor(self, v: Any, lo: float) -> Any:
        return v._op("Max", v, Sym.const(v.b, lo, "v_floor", _F32))

    def free(self, ref: Any, like: Any) -> Any:
        return ref.compare("LessOrEqual", 0.0).cast()

    def detach(self, x: Any) -> Any:
        return x

    def count(self, ref: Any, z: Any, steps: int) -> Any:
        b = ref.b
        counted = ref._op("Max", ref - 1.0, 0.0)
        spiked = z.compare("Greater", 0.0)
        return Sym(b, b.op("Where", spiked.name, b.const(float(steps), _F32, "refractory"), counted.name), _F32)

    def zeros_like(self, x: Any) -> Any:
        return x * 0.0


_ONNX_OPS = _OnnxOps()


def _spike(x: Sym) -> Sym:
    """The spike function's forward pass, ``x > 0`` as float32."""
    return x.compare("Greater", 0.0).cast()


def _symbolic_params(b: GraphBuilder, p: NeuronParams[np.ndarray]) -> NeuronParams[Any]:
    """``p`` with every array (and the threshold and adaptation strength) as a named graph constant."""

    def c(name: str, value: Any) -> Any:
        return None if value is None else Sym.const(b, value, name, _F32)

    return p._replace(
        w_in=c("w_in", p.w_in), w_rec=c("w_rec", p.w_rec), bias=c("bias", p.bias), a_syn=c("a_syn", p.a_syn),
        a_mem=c("a_mem", p.a_mem), a_adapt=c("a_adapt", p.a_adapt), a_refr=c("a_refr", p.a_refr),
        threshold=c("threshold", p.threshold), adapt_strength=c("adapt_strength", p.adapt_strength),
    )  # fmt: skip


def _step_nodes(b: GraphBuilder, p: FloatParams, x: str, st: dict[str, str]) -> dict[str, str]:
    """Append one step; ``st`` maps FLOAT_STATE names to tensors. Returns the new state plus ``z``.

    The neuron is :func:`rsnn_deploy.neuron.neuron_step` run on :class:`Sym` values, the
    readout :func:`~rsnn_deploy.neuron.readout_step`.
    """
    q = _symbolic_params(b, p.neuron)
    s = {k: Sym(b, name, _F32) for k, name in st.items()}
    atr = q.adapt_kind == "atrlif"  # ATRLIF's r rides in the ref slot (it has no refractory count)
    state = NeuronState(s["i"], s["v"], s["n"], s["ref"], s["z_prev"], s["ref"] if atr else None)
    z, new = neuron.neuron_step(neuron.input_drive(Sym(b, x, _F32), q), state, q, _spike, _ONNX_OPS)
    w_out, b_out = Sym.const(b, p.w_out, "w_out", _F32), Sym.const(b, p.b_out, "b_out", _F32)
    y = neuron.readout_step(s["y"], neuron.readout_drive(z, w_out, b_out), Sym.const(b, p.a_out, "a_out", _F32))
    ref = new.r if atr and new.r is not None else new.ref
    return {"i": new.i.name, "v": new.v.name, "n": new.n.name, "ref": ref.name, "z_prev": z.name, "y": y.name}


def _metadata(p: FloatParams, graph: str) -> dict[str, object]:
    return {
        "kind": "float",
        "graph": graph,
        "n_inputs": p.neuron.w_in.shape[1],
        "n_hidden": p.neuron.w_in.shape[0],
        "n_outputs": p.w_out.shape[0],
        "readout_mode": p.readout_mode,
        "state": ",".join(FLOAT_STATE),
    }


def _step_model(p: FloatParams) -> onnx.ModelProto:
    h, c = p.neuron.w_in.shape
    k = p.w_out.shape[0]
    b = GraphBuilder()
    shapes = {"i": h, "v": h, "n": h, "ref": h, "z_prev": h, "y": k}
    new = _step_nodes(b, p, "x", {s: s for s in FLOAT_STATE})
    outs = {"i": "i_out", "v": "v_out", "n": "n_out", "ref": "ref_out", "z_prev": "z", "y": "y_out"}
    for s in FLOAT_STATE:
        b.op("Identity", new[s], out=outs[s])
    inputs = [value_info("x", _F32, ["B", c])] + [value_info(s, _F32, ["B", shapes[s]]) for s in FLOAT_STATE]
    outputs = [value_info(outs[s], _F32, ["B", shapes[s]]) for s in FLOAT_STATE]
    doc = "One float RSNN step; see rsnn_deploy/export/_onnx_float.py for the equations."
    return make_model(b.graph("rsnn_float_step", inputs, outputs, doc), _metadata(p, "step"), doc)


def _zeros(b: GraphBuilder, batch: str, width: int, dtype: int) -> str:
    shape = b.op("Concat", batch, b.const([width], np.int64), axis=0)
    return b.op("ConstantOfShape", shape, value=onnx.helper.make_tensor("v", dtype, [1], [0]))


def _sequence_model(p: FloatParams, encoder: InputEncoder | None = None) -> onnx.ModelProto:
    h, c = p.neuron.w_in.shape
    k = p.w_out.shape[0]
    shapes = {"i": h, "v": h, "n": h, "ref": h, "z_prev": h, "y": k}
    # Scan body: state inputs, then the scanned x[t]; state outputs, then per-step copies.
    body = GraphBuilder(prefix="s_")
    st = {s: f"s_{s}" for s in FLOAT_STATE}
    new = _step_nodes(body, p, "s_x", st)
    recorded = ("z_prev", "i", "v", "n", "y")
    for s in FLOAT_STATE:
        body.op("Identity", new[s], out=f"s_{s}_next")
    for s in recorded:
        body.op("Identity", new[s], out=f"s_{s}_rec")
    body_graph = body.graph(
        "rsnn_float_step_body",
        [value_info(st[s], _F32, ["B", shapes[s]]) for s in FLOAT_STATE] + [value_info("s_x", _F32, ["B", c])],
        [value_info(f"s_{s}_next", _F32, ["B", shapes[s]]) for s in FLOAT_STATE]
        + [value_info(f"s_{s}_rec", _F32, ["B", shapes[s]]) for s in recorded],
    )
    b = GraphBuilder()
    if encoder is not None:  # raw values in: the model's recorded input code makes x inside the graph
        encoder_nodes(b, encoder, "raw", "x")
    batch = b.op("Slice", b.op("Shape", "x"), b.const([0], np.int64), b.const([1], np.int64))
    zh, zk = _zeros(b, batch, h, onnx.TensorProto.FLOAT), _zeros(b, batch, k, onnx.TensorProto.FLOAT)
    init = [zk if s == "y" else zh for s in FLOAT_STATE]
    finals = [f"final_{s}" for s in FLOAT_STATE]
    names = {"z_prev": "spikes", "i": "current", "v": "voltage", "n": "adaptation", "y": "readout"}
    b.op_multi(
        "Scan",
        [*init, "x"],
        finals + [names[s] for s in recorded],
        body=body_graph,
        num_scan_inputs=1,
        scan_input_axes=[1],
        scan_output_axes=[1] * len(recorded),
    )
    if p.readout_mode == "mean":
        b.op("ReduceMean", "readout", b.const([1], np.int64), out="logits", keepdims=0)
    else:
        b.op("Identity", "final_y", out="logits")
    outputs = [value_info(names[s], _F32, ["B", "T", shapes[s]]) for s in recorded]
    outputs.append(value_info("logits", _F32, ["B", k]))
    doc = "Float RSNN over a whole sequence (Scan over axis 1 of x [B, T, C]); see _onnx_float.py."
    if encoder is None:
        graph_input = value_info("x", _F32, ["B", "T", c])
    else:
        doc += f" Input raw [B, T, {encoder.n_features}] float64, encoded in the graph ({encoder.kind})."
        graph_input = value_info("raw", np.float64, ["B", "T", encoder.n_features])
    graph = b.graph("rsnn_float_sequence", [graph_input], outputs, doc)
    meta = _metadata(p, "sequence")
    if encoder is not None:
        meta["input"] = "raw"
    return make_model(graph, meta, doc)


def export_float_onnx(model: RSNN, graph: str = "step", encoder: InputEncoder | None = None) -> onnx.ModelProto:
    """The float model as a checked ONNX model (``graph`` is ``"step"`` or ``"sequence"``).

    ``encoder`` (sequence graph only) puts the model's input code in front: the graph then
    takes raw values ``raw [B, T, D]`` (float64) instead of spikes ``x [B, T, C]``.
    """
    p = float_params(model)
    if encoder is not None:
        if graph != "sequence":
            raise UnsupportedError(
                "export --with-encoder: needs --graph sequence (the step graph has no previous step to cross from)"
            )
        if encoder.n_channels != p.neuron.w_in.shape[1]:
            raise ValidationError(
                f"export --with-encoder: the encoder gives {encoder.n_channels} channels, the model takes "
                f"{p.neuron.w_in.shape[1]}"
            )
    return _step_model(p) if graph == "step" else _sequence_model(p, encoder)
