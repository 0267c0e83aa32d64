"""The float RSNN as ONNX: a one-step graph and a whole-sequence graph (``Scan``).

Hand-built with ``onnx.helper`` rather than traced from torch: the graph then holds
exactly the operations of :func:`rsnn_deploy.model.neuron_step`, in its order, with the
spike function's forward pass (``v - threshold > 0``) as a plain ``Greater``, and no
autograd leftovers. Parameters are the model's *effective* parameters
(:meth:`RSNN.effective_params`, so a QAT model exports its fake-quantized values),
float32 like the model.

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

Every variant has the same interface; states a variant does not use are passed
through unchanged, so one host loop runs them all. Start from all-zero state.

Sequence graph (``graph="sequence"``): input ``x [B, T, C]``; a ``Scan`` over axis 1
whose body is the step above (zero initial state built inside from ``x``'s batch
size); outputs ``spikes, current, voltage, adaptation [B, T, H]``, ``readout [B, T, K]``
and ``logits [B, K]`` (time mean or last step of the readout, as the model's
``readout_mode``). ``T`` is symbolic: one file serves every sequence length. With the
model's encoder (``--with-encoder``) the input is ``raw [B, T, D]`` (float64) and the
recorded input code (:mod:`rsnn_deploy.export._onnx_encoder`) makes ``x`` inside the graph.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import onnx
import torch

from rsnn_deploy.errors import UnsupportedError, ValidationError
from rsnn_deploy.export._onnx_build import GraphBuilder, make_model, value_info
from rsnn_deploy.export._onnx_encoder import encoder_nodes
from rsnn_deploy.model import RSNN
from rsnn_deploy.tasks.input_encoder import InputEncoder

__all__ = ["FLOAT_STATE", "FloatParams", "export_float_onnx", "float_params"]

FLOAT_STATE = ("i", "v", "n", "ref", "z_prev", "y")
_F32 = np.float32


class FloatParams(NamedTuple):
    """Everything the float graph needs, as float32 numpy (None where the variant lacks it)."""

    w_in: np.ndarray  # [H, C]
    w_rec: np.ndarray | None  # [H, H]
    bias: np.ndarray | None  # [H]
    a_syn: np.ndarray  # [H]
    a_mem: np.ndarray  # [H]
    a_adapt: np.ndarray  # [H]
    adapt_kind: str | None
    adapt_strength: float
    threshold: float
    v_floor: float | None
    refractory_steps: int
    w_out: np.ndarray  # [K, H]
    b_out: np.ndarray  # [K]
    a_out: float
    readout_mode: str


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(dtype=torch.float32).numpy().copy()


def float_params(model: RSNN) -> FloatParams:
    """The effective float32 parameters of ``model`` (fake-quantized ones under QAT)."""
    with torch.no_grad():
        p = model.effective_params()
        h = model.cfg.n_hidden
        return FloatParams(
            w_in=_np(p.w_in),
            w_rec=_np(p.w_rec) if p.w_rec is not None else None,
            bias=_np(p.bias) if p.bias is not None else None,
            a_syn=np.broadcast_to(_np(p.a_syn), (h,)).copy(),
            a_mem=np.broadcast_to(_np(p.a_mem), (h,)).copy(),
            a_adapt=np.broadcast_to(_np(p.a_adapt), (h,)).copy(),
            adapt_kind=p.adapt_kind,
            adapt_strength=float(p.adapt_strength),
            threshold=float(p.threshold),
            v_floor=None if p.v_floor is None else float(p.v_floor),
            refractory_steps=int(p.refractory_steps),
            w_out=_np(model.w_out),
            b_out=_np(model.b_out),
            a_out=float(model.readout_decay()),
            readout_mode=model.cfg.readout_mode,
        )


def _step_nodes(b: GraphBuilder, p: FloatParams, x: str, st: dict[str, str]) -> dict[str, str]:
    """Append one step; ``st`` maps FLOAT_STATE names to tensors. Returns the new state plus ``z``."""
    f = _F32
    drive = b.op("MatMul", x, b.const(p.w_in.T, f, "w_in_t"))
    i = b.op("Add", b.op("Mul", b.const(p.a_syn, f, "a_syn"), st["i"]), drive)
    if p.w_rec is not None:
        i = b.op("Add", i, b.op("MatMul", st["z_prev"], b.const(p.w_rec.T, f, "w_rec_t")))
    n = b.op("Mul", b.const(p.a_adapt, f, "a_adapt"), st["n"]) if p.adapt_kind is not None else st["n"]
    v = b.op("Add", b.op("Mul", b.const(p.a_mem, f, "a_mem"), st["v"]), i)
    if p.bias is not None:
        v = b.op("Add", v, b.const(p.bias, f, "bias"))
    if p.adapt_kind == "current":
        v = b.op("Sub", v, n)
    if p.v_floor is not None:
        v = b.op("Max", v, b.const(p.v_floor, f, "v_floor"))
    zero, one = b.const(0.0, f), b.const(1.0, f)
    if p.refractory_steps > 0:
        free = b.op("Cast", b.op("LessOrEqual", st["ref"], zero), to=onnx.TensorProto.FLOAT)
        v = b.op("Mul", v, free)
    thr = b.const(p.threshold, f, "threshold")
    if p.adapt_kind == "threshold":
        thr = b.op("Add", thr, n)
    z = b.op("Cast", b.op("Greater", b.op("Sub", v, thr), zero), to=onnx.TensorProto.FLOAT)
    v = b.op("Mul", v, b.op("Sub", one, z))
    if p.adapt_kind is not None:
        n = b.op("Add", n, b.op("Mul", b.const(p.adapt_strength, f, "adapt_strength"), z))
    ref = st["ref"]
    if p.refractory_steps > 0:
        counted = b.op("Max", b.op("Sub", ref, one), zero)
        ref = b.op("Where", b.op("Greater", z, zero), b.const(float(p.refractory_steps), f, "refractory"), counted)
    proj = b.op("Add", b.op("MatMul", z, b.const(p.w_out.T, f, "w_out_t")), b.const(p.b_out, f, "b_out"))
    y = b.op("Add", b.op("Mul", b.const(p.a_out, f, "a_out"), st["y"]), proj)
    return {"i": i, "v": v, "n": n, "ref": ref, "z_prev": z, "y": y}


def _metadata(p: FloatParams, graph: str) -> dict[str, object]:
    return {
        "kind": "float",
        "graph": graph,
        "n_inputs": p.w_in.shape[1],
        "n_hidden": p.w_in.shape[0],
        "n_outputs": p.w_out.shape[0],
        "readout_mode": p.readout_mode,
        "state": ",".join(FLOAT_STATE),
    }


def _step_model(p: FloatParams) -> onnx.ModelProto:
    h, c = p.w_in.shape
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
    h, c = p.w_in.shape
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
        if encoder.n_channels != p.w_in.shape[1]:
            raise ValidationError(
                f"export --with-encoder: the encoder gives {encoder.n_channels} channels, the model takes "
                f"{p.w_in.shape[1]}"
            )
    return _step_model(p) if graph == "step" else _sequence_model(p, encoder)
