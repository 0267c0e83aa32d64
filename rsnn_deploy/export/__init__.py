"""Writing networks to ONNX and NIR: one dispatch table from (format, kind of network) to a writer.

=========  ==========================  =============================================
format     float model (checkpoint)    quantized network (QNET)
=========  ==========================  =============================================
``onnx``   float32 step / Scan graph   int64 step / Scan graph, bit-exact with the emulator
``nir``    CubaLIF/LIF + Linear graph  same graph in integer units, integers in metadata
=========  ==========================  =============================================

Like Norse's ``export_nir`` table, every entry is explicit; a combination that is not
in the table, or a network feature a format cannot express, is refused with one
:class:`~rsnn_deploy.errors.RsnnError` line, never skipped. Details of each graph are
in the writers' modules (``_onnx_float``, ``_onnx_int``, ``_nir``) and ``docs/export.md``.

Example
-------
>>> from rsnn_deploy.export import export
>>> export("runs/a/model.json", "onnx", "model_step.onnx")                  # doctest: +SKIP
>>> export("qnet.json", "onnx", "qnet_seq.onnx", graph="sequence")          # doctest: +SKIP
>>> export(model, "nir", "model.nir")                                       # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rsnn_deploy.errors import UnsupportedError, ValidationError
from rsnn_deploy.export._onnx_int import export_int_onnx

__all__ = ["FORMATS", "GRAPHS", "export", "export_int_onnx", "load_network"]

FORMATS: tuple[str, ...] = ("onnx", "nir")
GRAPHS: tuple[str, ...] = ("step", "sequence")


def _json_path(path: str | Path) -> Path:
    """``NAME.json`` for ``NAME``, ``NAME.json`` or ``NAME.safetensors``; any other existing file as given."""
    p = Path(path)
    if p.suffix == ".safetensors":
        return p.with_suffix(".json")
    if p.suffix == ".json" or p.is_file():
        return p
    return p.with_name(p.name + ".json")


def load_network(path: str | Path) -> Any:
    """Load a float checkpoint (``Checkpoint``) or a quantized network, chosen by the JSON's ``format``.

    Raises
    ------
    ValidationError
        Missing file, invalid JSON, or a ``format`` that is neither.
    """
    from rsnn_deploy import checkpoint, qnet

    jp = _json_path(path)
    if not jp.is_file():
        raise ValidationError(f"{jp}: file not found; give a checkpoint or quantized network (NAME.json)")
    from rsnn_deploy.io import read_json_object

    doc = read_json_object(jp)
    fmt = doc.get("format")
    if fmt == checkpoint.FORMAT:
        return checkpoint.load_checkpoint(jp)
    if fmt == qnet.FORMAT:
        return qnet.load_qnet(jp)
    raise ValidationError(
        f"{jp}: format: not an rsnn-deploy checkpoint or quantized network (got {fmt!r}); "
        f"export reads {checkpoint.FORMAT!r} or {qnet.FORMAT!r} files"
    )


def _write_bytes(out: Path, data: bytes) -> None:
    from rsnn_deploy.io import atomic_path

    with atomic_path(out) as tmp:
        tmp.write_bytes(data)


def _onnx_float(net: Any, out: Path, graph: str, source: str) -> None:
    from rsnn_deploy.export._onnx_float import export_float_onnx

    _write_bytes(out, export_float_onnx(net, graph).SerializeToString())


def _onnx_int(net: Any, out: Path, graph: str, source: str) -> None:
    from rsnn_deploy.export._onnx_int import export_int_onnx

    _write_bytes(out, export_int_onnx(net, graph).SerializeToString())


def _nir_any(net: Any, out: Path, graph: str, source: str) -> None:
    from rsnn_deploy.export._nir import export_nir, write_nir
    from rsnn_deploy.io import atomic_path

    nir_graph = export_nir(net, source=source)
    with atomic_path(out) as tmp:
        write_nir(nir_graph, tmp)


# (format, kind) -> writer(network, out, graph, source); kind is "float" (RSNN) or "int" (QuantizedNetwork)
_WRITERS: dict[tuple[str, str], Callable[[Any, Path, str, str], None]] = {
    ("onnx", "float"): _onnx_float,
    ("onnx", "int"): _onnx_int,
    ("nir", "float"): _nir_any,
    ("nir", "int"): _nir_any,
}


def export(obj: Any, fmt: str, out: str | Path, graph: str | None = None) -> Path:
    """Write ``obj`` as ``fmt`` to ``out``; returns the path written.

    Parameters
    ----------
    obj : RSNN, Checkpoint, QuantizedNetwork, or a path to a checkpoint / QNET JSON
    fmt : {'onnx', 'nir'}
    out : path
        Written atomically (a failed export leaves no partial file).
    graph : {'step', 'sequence'}, optional
        ONNX only (default ``'step'``): one step with explicit state, or the whole
        sequence in one ``Scan``. NIR describes the dynamics and has no such choice.

    Raises
    ------
    ValidationError
        Unknown format or graph, or a file that is neither network kind.
    UnsupportedError
        The network uses a feature the format cannot express (the message says which).
    """
    from rsnn_deploy.checkpoint import Checkpoint
    from rsnn_deploy.model import RSNN
    from rsnn_deploy.qnet import QuantizedNetwork

    if fmt not in FORMATS:
        raise ValidationError(f"export.format: must be one of {', '.join(FORMATS)} (got {fmt!r})")
    if fmt == "onnx":
        graph = graph or "step"
        if graph not in GRAPHS:
            raise ValidationError(f"export.graph: must be one of {', '.join(GRAPHS)} (got {graph!r})")
    elif graph is not None:
        raise ValidationError(f"export.graph: only --format onnx has graph kinds (got --graph {graph} with {fmt})")
    source = ""
    if isinstance(obj, (str, Path)):
        source = str(obj)
        obj = load_network(obj)
    if isinstance(obj, Checkpoint):
        source = source or str(obj.path)
        obj = obj.model
    if isinstance(obj, RSNN):
        kind = "float"
    elif isinstance(obj, QuantizedNetwork):
        kind = "int"
    else:
        raise UnsupportedError(f"export: cannot export an object of type {type(obj).__name__!r}")
    writer = _WRITERS.get((fmt, kind))
    if writer is None:  # pragma: no cover - the table is complete today; kept for new formats
        raise UnsupportedError(f"export: no {fmt} writer for a {kind} network")
    path = Path(out)
    writer(obj, path, graph or "", source)
    return path
