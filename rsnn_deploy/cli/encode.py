"""``rsnn-deploy encode MODEL RAW.npz -o STREAM.npz``: raw signals in, the model's input spikes out.

A model carries its input code (:class:`~rsnn_deploy.tasks.input_encoder.InputEncoder`,
recorded at training time). This command applies it to a user's raw signals, so that
``hil`` and a real host can be fed sensor data rather than prepared spikes, and the
spikes are exactly those the model was verified on: ``encode`` then ``hil`` gives the
decisions ``verify`` reports on the same samples.

RAW.npz: ``x`` [N, T, D] (or [T, D]) real values in the units the encoder names (its
``raw`` field, e.g. ``pixel / 255``), optional ``y`` [N] labels (copied). STREAM.npz:
``x`` uint8 [N, T, C] spikes, ``y`` if given, and ``encoder`` (the record as JSON text).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import numpy as np

from rsnn_deploy.cli._app import cli
from rsnn_deploy.errors import DataError, ValidationError
from rsnn_deploy.io import open_npz

__all__ = ["model_encoder", "read_raw"]


def model_encoder(path: str | Path) -> Any:
    """The recorded encoder of a float checkpoint or a quantized network (``NAME`` or ``NAME.json``)."""
    from rsnn_deploy.errors import CheckpointError
    from rsnn_deploy.io import artifact_paths, read_json_object
    from rsnn_deploy.tasks import checkpoint_encoder
    from rsnn_deploy.tasks.input_encoder import InputEncoder

    json_path = artifact_paths(path)[1]
    doc = read_json_object(json_path)
    fmt = doc.get("format")
    try:
        if fmt == "rsnn-deploy/checkpoint":
            return checkpoint_encoder(doc)
        if fmt == "rsnn-deploy/qnet":
            if doc.get("encoder") is None:
                raise CheckpointError(
                    f"{json_path}: encoder: this quantized network records no input code (made before encoders "
                    "travelled with models); re-run rsnn-deploy quantize, or pass the float checkpoint"
                )
            return InputEncoder.from_dict(doc["encoder"], "encoder")
    except ValidationError as err:
        if isinstance(err, CheckpointError):
            raise
        raise CheckpointError(f"{json_path}: {err}") from None
    raise CheckpointError(f"{json_path}: format: not a checkpoint or quantized network (got {fmt!r})")


def read_raw(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """``x`` and optional ``y`` of RAW.npz (never unpickled); one line naming the file and key otherwise."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: raw input file not found; give an .npz with key x [N, T, D]")
    npz = open_npz(p, str(p))
    with npz:
        if "x" not in npz.files:
            raise ValidationError(f"{p}.x: missing key (got keys {sorted(npz.files)}); save with numpy.savez(p, x=...)")
        try:
            x = npz["x"]
            y = npz["y"] if "y" in npz.files else None
        except ValueError as err:
            raise ValidationError(f"{p}.x: cannot be read without pickle ({err}); store numeric arrays") from None
    if x.dtype.kind not in "iuf":
        raise ValidationError(f"{p}.x: must hold int or float values (got dtype {x.dtype}); store x.astype(float)")
    if y is not None:
        y = np.asarray(y)
        n = x.shape[0] if x.ndim == 3 else 1
        if y.dtype.kind not in "iu" or y.reshape(-1).shape != (n,):
            raise ValidationError(f"{p}.y: must be integer labels [{n}] (got {y.dtype} {list(y.shape)})")
        y = y.reshape(-1).astype(np.int64)
    return x, y


@cli.command("encode")
@click.argument("model", type=click.Path())
@click.argument("raw", type=click.Path())
@click.option("-o", "--out", required=True, type=click.Path(), help="Stream file to write (.npz for hil).")
@click.option("--overwrite", is_flag=True, help="Replace an existing OUT (never RAW or MODEL).")
def encode_cmd(model: str, raw: str, out: str, overwrite: bool) -> None:
    """Encode RAW.npz (x: [N, T, D] raw values) with MODEL's recorded input code into spikes for hil.

    MODEL is a float checkpoint or a quantized network. An existing OUT is refused unless
    --overwrite is given; OUT equal to RAW or to MODEL's files is always refused.
    """
    from rsnn_deploy.io import artifact_inputs, atomic_path, guard_outputs

    out_path, raw_path = Path(out), Path(raw)
    guard_outputs([out_path], inputs=[raw_path, *artifact_inputs(model)], overwrite=overwrite)
    enc = model_encoder(model)
    x, y = read_raw(raw_path)
    spikes = enc.encode(x, owner=f"{raw_path}.x")
    arrays: dict[str, np.ndarray] = {"x": spikes, "encoder": np.array(json.dumps(enc.to_dict()))}
    if y is not None:
        arrays["y"] = y
    with atomic_path(out_path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    n, t, c = spikes.shape
    th = f", {enc.n_thresholds} thresholds" if enc.n_thresholds else ""
    click.echo(
        f"encode: {n} sequence(s) x {t} steps x {enc.n_features} values -> {c} spike channels "
        f"({enc.kind}{th}, start {enc.start}); {int(spikes.sum())} spikes -> {out_path}"
    )
