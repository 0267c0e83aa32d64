"""A model's input code as ONNX nodes: raw ``float64 [B, T, D]`` -> spikes ``float32 [B, T, C]``.

``rsnn-deploy export CKPT --format onnx --graph sequence --with-encoder`` puts these nodes
in front of the float sequence graph, so that a host without Python feeds raw sensor values.
The nodes compute exactly :meth:`~rsnn_deploy.tasks.input_encoder.InputEncoder.encode`:
float64 ``>=`` comparisons with the recorded thresholds give the level ``L = #{k : x >= th_k}``,
then (level crossing) the up/down pattern of each step's level change, in the recorded
channel layout. Only the sequence graph can hold them: a crossing compares consecutive steps.
"""

from __future__ import annotations

import numpy as np

from rsnn_deploy.export._onnx_build import GraphBuilder
from rsnn_deploy.tasks.input_encoder import InputEncoder

__all__ = ["encoder_nodes"]


def _levels(b: GraphBuilder, enc: InputEncoder, raw: str) -> tuple[str, str]:
    """``(ge [B, T, D, K] bool, level [B, T, D] int64)`` of ``raw`` against the recorded thresholds."""
    th = np.asarray(enc.thresholds, dtype=np.float64)
    th = th.reshape(1, 1, *th.shape) if th.ndim == 2 else th.reshape(1, 1, 1, -1)
    ge = b.op("GreaterOrEqual", b.op("Unsqueeze", raw, b.const([-1], np.int64)), b.const(th, np.float64))
    level = b.op("ReduceSum", b.op("Cast", ge, to=7), b.const([-1], np.int64), keepdims=0)  # 7 = INT64
    return ge, level


def _crossings(b: GraphBuilder, level: str, n_k: int, start: str) -> str:
    """Up/down spikes ``bool [B, T, D, 2K]`` of the level changes (``start``: level before t = 0)."""
    first = b.op("Slice", level, b.const([0], np.int64), b.const([1], np.int64), b.const([1], np.int64))
    before = b.op("Mul", first, b.const(0, np.int64)) if start == "floor" else first
    shifted = b.op("Slice", level, b.const([0], np.int64), b.const([-1], np.int64), b.const([1], np.int64))
    prev = b.op("Concat", before, shifted, axis=1)
    k = b.const(np.arange(n_k), np.int64)
    axis = b.const([-1], np.int64)
    p, cur = b.op("Unsqueeze", prev, axis), b.op("Unsqueeze", level, axis)
    up = b.op("And", b.op("LessOrEqual", p, k), b.op("Less", k, cur))  # rising from p to cur passes p .. cur-1
    down = b.op("And", b.op("LessOrEqual", cur, k), b.op("Less", k, p))
    return b.op("Concat", up, down, axis=-1)


def encoder_nodes(b: GraphBuilder, enc: InputEncoder, raw: str, out: str) -> str:
    """Append the nodes of ``enc`` reading ``raw`` (float64 [B, T, D]); their result ``out`` is float32 [B, T, C]."""
    flat = b.const([0, 0, -1], np.int64)  # keep B and T, merge the channel axes in layout order
    if enc.kind == "spikes":
        return b.op("Cast", raw, out=out, to=1)  # 1 = FLOAT
    ge, level = _levels(b, enc, raw)
    parts = []
    if enc.kind in ("thermometer", "thermometer+edges"):
        parts.append(b.op("Reshape", ge, flat))
    if enc.kind in ("level-crossing", "thermometer+edges"):
        start = enc.start if enc.kind == "level-crossing" else "floor"
        parts.append(b.op("Reshape", _crossings(b, level, enc.n_thresholds, start), flat))
    code = parts[0] if len(parts) == 1 else b.op("Concat", *parts, axis=2)
    return b.op("Cast", code, out=out, to=1)
