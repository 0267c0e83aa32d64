"""Writing networks to ONNX and NIR: one dispatch table from (format, kind of network) to a writer.

=========  ==========================  =============================================
format     float model (checkpoint)    quantized network (QNET)
=========  ==========================  =============================================
``onnx``   float32 step / Scan graph   int64 step / Scan graph, bit-exact with the emulator
``nir``    CubaLIF/LIF + Linear graph  same graph in integer units, integers in metadata
``lava``   refused (quantize first)    a folder Lava 0.10 runs: network.json + run_lava.py
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

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rsnn_deploy.errors import UnsupportedError, ValidationError
from rsnn_deploy.export._onnx_int import export_int_onnx

__all__ = ["FORMATS", "GRAPHS", "export", "export_int_onnx", "load_network"]

FORMATS: tuple[str, ...] = ("onnx", "nir", "lava")
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


def _with_encoder_record(model: Any, encoder: Any) -> Any:
    """Stamp the model's input code (JSON) into ONNX ``metadata_props`` as ``rsnn_deploy.encoder``."""
    if encoder is not None:
        from onnx import helper

        props = {p.key: p.value for p in model.metadata_props}
        props["rsnn_deploy.encoder"] = json.dumps(encoder.to_dict())
        del model.metadata_props[:]
        helper.set_model_props(model, props)
    return model


def _onnx_float(net: Any, out: Path, graph: str, source: str, encoder: Any = None, in_graph: bool = False,
                **_nir_only: Any) -> None:
    from rsnn_deploy.export._onnx_float import export_float_onnx

    model = export_float_onnx(net, graph, encoder=encoder if in_graph else None)
    _write_bytes(out, _with_encoder_record(model, encoder).SerializeToString())


def _onnx_int(net: Any, out: Path, graph: str, source: str, encoder: Any = None, in_graph: bool = False,
              **_nir_only: Any) -> None:
    from rsnn_deploy.export._onnx_int import export_int_onnx

    _write_bytes(out, _with_encoder_record(export_int_onnx(net, graph), encoder).SerializeToString())


def _nir_any(net: Any, out: Path, graph: str, source: str, encoder: Any = None, in_graph: bool = False,
             readout: str = "li", compat: str | None = None) -> None:
    from rsnn_deploy.export._nir import export_nir, write_nir
    from rsnn_deploy.io import atomic_path

    nir_graph = export_nir(net, source=source, readout=readout)
    if encoder is not None:  # the input code, as JSON text (HDF5 metadata holds strings everywhere)
        nir_graph.metadata["input_encoder"] = json.dumps(encoder.to_dict())
    with atomic_path(out) as tmp:
        write_nir(nir_graph, tmp, compat=compat)


def _lava_int(net: Any, out: Path, graph: str, source: str, *_encoder: Any, **_nir_only: Any) -> None:
    from rsnn_deploy.export._lava import export_lava

    export_lava(net, out)


def _lava_float(net: Any, out: Path, graph: str, source: str, *_encoder: Any, **_nir_only: Any) -> None:
    raise UnsupportedError(
        "export --format lava: needs a quantized network (integers); run rsnn-deploy quantize CKPT --target loihi2 "
        "-o QNET first"
    )


# (format, kind) -> writer(network, out, graph, source, encoder, in_graph, **format options);
# kind is "float" (RSNN) or "int" (QuantizedNetwork)
_WRITERS: dict[tuple[str, str], Callable[..., None]] = {
    ("onnx", "float"): _onnx_float,
    ("onnx", "int"): _onnx_int,
    ("nir", "float"): _nir_any,
    ("nir", "int"): _nir_any,
    ("lava", "float"): _lava_float,
    ("lava", "int"): _lava_int,
}


def export(obj: Any, fmt: str, out: str | Path, graph: str | None = None, with_encoder: bool = False,
           nir_readout: str | None = None, nir_compat: str | None = None) -> Path:
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
    with_encoder : bool
        Float ONNX sequence graph only: take raw values and encode them in the graph with
        the model's recorded input code. Every export records that code in its metadata
        (ONNX ``rsnn_deploy.encoder``, NIR ``input_encoder``) when the network carries one.
    nir_readout : {'li', 'affine'}, optional
        NIR only (default ``'li'``): the readout as a ``nir.LI`` node, or ending at its
        ``Affine`` (readers without ``nir.LI``, Norse and SpikingJelly, then load the whole
        graph; the leak is in ``metadata["readout"]``).
    nir_compat : {'1.0.4'}, optional
        NIR only: a file nir 1.0.4 reads (Rockpool 3.1 and Sinabs 3.1 pin ``nir <= 1.0.4``).

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
    if (nir_readout is not None or nir_compat is not None) and fmt != "nir":
        raise ValidationError(f"export: --nir-readout and --nir-compat are for --format nir only (got {fmt})")
    source = ""
    encoder = None
    if isinstance(obj, (str, Path)):
        source = str(obj)
        obj = load_network(obj)
    if isinstance(obj, Checkpoint):
        source = source or str(obj.path)
        encoder = obj.encoder
        obj = obj.model
    if isinstance(obj, RSNN):
        kind = "float"
    elif isinstance(obj, QuantizedNetwork):
        kind = "int"
        encoder = obj.input_encoder
    else:
        raise UnsupportedError(f"export: cannot export an object of type {type(obj).__name__!r}")
    if with_encoder and (fmt, kind) != ("onnx", "float"):
        raise UnsupportedError(
            f"export --with-encoder: only the float ONNX graph can encode raw input (got {fmt}, {kind} network); "
            "use rsnn-deploy encode to make the spikes of a quantized network"
        )
    if with_encoder and encoder is None:
        raise ValidationError("export --with-encoder: the network records no input code (pass its checkpoint)")
    writer = _WRITERS.get((fmt, kind))
    if writer is None:  # pragma: no cover - the table is complete today; kept for new formats
        raise UnsupportedError(f"export: no {fmt} writer for a {kind} network")
    path = Path(out)
    extra = {"readout": nir_readout or "li", "compat": nir_compat} if fmt == "nir" else {}
    writer(obj, path, graph or "", source, encoder, with_encoder, **extra)
    return path
