"""The ``onnx`` backend: run an exported integer ONNX graph with onnxruntime and return a :class:`Trace`.

It runs what :func:`rsnn_deploy.export.export` writes, so a parity check against the
emulator checks the file a host would deploy, not a second Python implementation.
Both graph kinds are accepted (the model's ``rsnn_deploy.graph`` metadata says
which): the ``step`` graph is driven chip step by chip step from here, with the
input-latency alignment of :func:`rsnn_deploy.emulator.run` (feed ``x[0..T-1]``
then ``L`` empty frames, drop the first ``L`` outputs); the ``sequence`` graph does
that alignment inside. Spikes and integer states come from the graph; the host
readout is computed by :func:`rsnn_deploy.trace.host_readout` (the one implementation
every backend shares) from the graph's own ``w_out``/``b_out`` initializers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from rsnn_deploy.errors import ValidationError
from rsnn_deploy.trace import Trace, check_spikes, host_readout

__all__ = ["OnnxBackend", "run_onnx_int"]


def _load(model: str | Path | bytes | onnx.ModelProto) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, bytes):
        return onnx.load_from_string(model)
    path = Path(model)
    if not path.is_file():
        raise ValidationError(f"run_onnx_int.model: file not found (got {str(path)!r})")
    try:
        return onnx.load(str(path))
    except Exception as err:  # onnx raises DecodeError and friends from protobuf
        raise ValidationError(f"{path}: not an ONNX model ({type(err).__name__})") from None


def _initializers(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """All initializers of ``graph`` and its subgraphs (Scan bodies), by name."""
    out = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                out.update(_initializers(attr.g))
    return out


def run_onnx_int(
    model: str | Path | bytes | onnx.ModelProto,
    spikes: np.ndarray,
    record_states: bool = True,
    batch_chunk: int = 512,
) -> Trace:
    """Run an integer ONNX graph written by ``rsnn-deploy export QNET --format onnx`` on a batch.

    Parameters
    ----------
    model : path, serialized bytes or ModelProto
    spikes : ndarray [B, T, C], bool or 0/1
        ``x[b, t]`` is what the float model sees at step ``t``.
    record_states : bool
        Return ``current`` (u), ``voltage`` (v after reset) and, for loihi2,
        ``adaptation`` (theta - theta_0) as int64 ``[B, T, H]``.
    batch_chunk : int
        Samples per onnxruntime call.

    Returns
    -------
    Trace
        Aligned with the float model, as :func:`rsnn_deploy.emulator.run` returns it.
    """
    import onnxruntime as ort

    from rsnn_deploy.export._onnx_build import read_metadata

    proto = _load(model)
    meta = read_metadata(proto)
    if meta.get("kind") != "int":
        raise ValidationError(
            f"run_onnx_int.model: not an integer rsnn-deploy graph (kind {meta.get('kind')!r}); "
            "export a quantized network (QNET.json) with --format onnx"
        )
    n_in, h = int(meta["n_inputs"]), int(meta["n_hidden"])
    x = check_spikes(spikes, "run_onnx_int.spikes", ("B", "T", n_in)).astype(bool, copy=False)
    inits = _initializers(proto.graph)
    prefix = "r_" if meta["graph"] == "sequence" else ""
    w_out, b_out = inits[f"{prefix}w_out_t"].T, inits[f"{prefix}b_out"]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # small per-step kernels: threads cost more than they save
    sess = ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])

    spikes_out, cur, vol, ada, overflow = _run_chunks(sess, meta, x, h, record_states, max(1, batch_chunk))
    readout, logits = host_readout(
        spikes_out, w_out, b_out, float(meta["readout_decay"]), meta["readout_mode"]  # type: ignore[arg-type]
    )
    names = meta["overflow"].split(",")
    return Trace(
        spikes=spikes_out,
        readout=readout,
        logits=logits,
        current=cur,
        voltage=vol,
        adaptation=ada,
        overflow={n: int(c) for n, c in zip(names, overflow, strict=True)},
    )


def _run_chunks(
    sess: Any, meta: dict[str, str], x: np.ndarray, h: int, record_states: bool, chunk: int
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None, np.ndarray]:
    """Spikes, (current, voltage, adaptation when recorded) and overflow counts, ``chunk`` samples per call."""
    b, t_steps, _ = x.shape
    lat = int(meta["input_latency"])
    third = "theta" if "theta" in meta["state"].split(",") else "ref"
    spikes_out = np.zeros((b, t_steps, h), dtype=bool)
    cur = np.zeros((b, t_steps, h), dtype=np.int64) if record_states else None
    vol = np.zeros((b, t_steps, h), dtype=np.int64) if record_states else None
    ada = np.zeros((b, t_steps, h), dtype=np.int64) if record_states and third == "theta" else None
    overflow = np.zeros(3, dtype=np.int64)
    for start in range(0, b, chunk):
        sl = slice(start, min(b, start + chunk))
        xb = x[sl]
        if meta["graph"] == "sequence":
            out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"x": xb}), strict=True))
            spikes_out[sl] = out["spikes"]
            if record_states:
                cur[sl], vol[sl] = out["current"], out["voltage"]  # type: ignore[index]
                if ada is not None:
                    ada[sl] = out["adaptation"]
            overflow += out["overflow"]
            continue
        states = _run_steps(sess, meta, xb, lat, third)
        for k, (z, u, v, th, over) in enumerate(states):
            overflow += over
            if k < lat:
                continue
            spikes_out[sl, k - lat] = z
            if record_states:
                cur[sl, k - lat], vol[sl, k - lat] = u, v  # type: ignore[index]
                if ada is not None:
                    ada[sl, k - lat] = th
    return spikes_out, cur, vol, ada, overflow


def _run_steps(sess: Any, meta: dict[str, str], xb: np.ndarray, lat: int,
               third: str) -> Iterator[tuple[np.ndarray, ...]]:
    """Yield ``(z, u, v, third_state, overflow)`` for each of the ``T + L`` chip steps of the step graph."""
    nb, t_steps, c = xb.shape
    h, k = int(meta["n_hidden"]), int(meta["n_outputs"])
    state: dict[str, np.ndarray] = {
        "u": np.zeros((nb, h), np.int64),
        "v": np.zeros((nb, h), np.int64),
        third: np.zeros((nb, h), np.int64),
        "z_prev": np.zeros((nb, h), bool),
    }
    if "r" in meta["state"].split(","):
        state["r"] = np.zeros((nb, h), np.int64)  # loihi2: ATRLIF's refractory state
    if lat > 0:
        state["x_delay"] = np.zeros((nb, lat, c), bool)
    y0 = np.zeros((nb, k), np.float64)
    empty = np.zeros((nb, c), bool)
    names = [o.name for o in sess.get_outputs()]
    y = y0
    for n in range(t_steps + lat):
        feed = {"x": xb[:, n] if n < t_steps else empty, **state, "y": y0 if n <= lat else y}
        out = dict(zip(names, sess.run(None, feed), strict=True))
        state = {s: out["z" if s == "z_prev" else f"{s}_out"] for s in state}
        y = out["y_out"]
        yield out["z"], out["u_out"], out["v_out"], out[f"{third}_out"], out["overflow"]


class OnnxBackend:
    """``onnx``: a :class:`~rsnn_deploy.qnet.QuantizedNetwork` run through its exported integer ONNX graph.

    The graph is exported in memory once, at construction (what ``rsnn-deploy export
    QNET --format onnx`` would write), and each :meth:`run` executes it with
    onnxruntime. ``graph="step"`` (the default, the registered backend) drives the
    step graph from the host loop here, as a deployed host would.
    """

    name = "onnx"

    def __init__(self, qnet: Any, graph: str = "step", record_states: bool = False, progress: Any = None,
                 chunk: int = 2048) -> None:
        from rsnn_deploy.export import export_int_onnx

        if graph not in ("step", "sequence"):
            raise ValidationError(f"OnnxBackend.graph: must be 'step' or 'sequence' (got {graph!r})")
        self.qnet = qnet
        self.graph = graph
        self.record_states = record_states
        self.progress = progress
        self.chunk = chunk
        self._model = export_int_onnx(qnet, graph).SerializeToString()

    def run(self, spikes: np.ndarray) -> Trace:
        from rsnn_deploy.backends import check_input

        x = check_input(spikes, self.qnet.n_inputs, self.name)
        tr = run_onnx_int(self._model, x, record_states=self.record_states, batch_chunk=self.chunk)
        if self.progress is not None:
            self.progress(x.shape[0])
        return tr


def register() -> None:
    """Register ``onnx`` (idempotent: the registry accepts the same factory twice)."""
    from rsnn_deploy.backends import register_backend

    register_backend("onnx", needs="qnet", description="onnxruntime, exported integer step graph", integer=True)(_make)


def _make(source: Any) -> OnnxBackend:
    return OnnxBackend(source.qnet, record_states=source.record_states, progress=source.progress)


register()  # on import: rsnn_deploy.backends.PLUGIN_MODULES lists this module
