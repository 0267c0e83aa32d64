"""The files of a :class:`QuantizedNetwork`.

Files: ``NAME.safetensors`` (arrays) + ``NAME.json`` (scalars, profile name and hash,
provenance, SHA-256 of the tensor file), both written atomically. Loading checks names,
shapes, dtypes and that every integer lies in the profile's representable set; any
problem is one :class:`~rsnn_deploy.errors.CheckpointError` line naming file and field.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from rsnn_deploy.errors import CheckpointError, ValidationError
from rsnn_deploy.hardware import HardwareProfile, load_profile
from rsnn_deploy.io import (
    artifact_paths,
    git_commit,
    package_versions,
    read_json_object,
    read_pair_tensors,
    write_pair_atomic,
)
from rsnn_deploy.qnet._checks import check_representable
from rsnn_deploy.qnet._network import _INT_VECTORS, _OPTIONAL_INT_VECTORS, FORMAT, FORMAT_VERSION, QuantizedNetwork


def qnet_paths(path: str | Path) -> tuple[Path, Path]:
    """``(NAME.safetensors, NAME.json)`` for a path given as either file or the bare stem."""
    return artifact_paths(path)


def _tensors_of(qnet: QuantizedNetwork) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {"w_in": qnet.w_in.astype(np.int32)}
    if qnet.w_rec is not None:
        out["w_rec"] = qnet.w_rec.astype(np.int32)
    for name in (*_INT_VECTORS, *_OPTIONAL_INT_VECTORS):
        arr = getattr(qnet, name)
        if arr is not None:
            out[name] = arr.astype(np.int32)
    out["w_out"] = np.ascontiguousarray(qnet.w_out, dtype=np.float32)
    out["b_out"] = np.ascontiguousarray(qnet.b_out, dtype=np.float32)
    return out


_SCALARS = (
    "vmin",
    "vmax",
    "readout_decay",
    "readout_mode",
    "profile",
    "profile_sha256",
    "input_latency",
    "block_sizes",
    "float_scale",
    "source",
)


def save_qnet(qnet: QuantizedNetwork, path_stem: str | Path, **meta: Any) -> Path:
    """Write ``NAME.safetensors`` then ``NAME.json`` atomically; returns the JSON path.

    The JSON records the SHA-256 of the tensor file, so a pair written by two
    different runs is detected on load. ``meta`` is stored as is (e.g. metrics).
    """
    st_path, json_path = qnet_paths(path_stem)
    blob = st_save(_tensors_of(qnet))
    doc: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        **{name: getattr(qnet, name) for name in _SCALARS},
        "n_inputs": qnet.n_inputs,
        "n_hidden": qnet.n_hidden,
        "n_outputs": qnet.n_outputs,
        "tensors_sha256": hashlib.sha256(blob).hexdigest(),
        "meta": meta,
        "versions": package_versions(),
        "git_commit": git_commit(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    doc["block_sizes"] = list(qnet.block_sizes)
    doc["float_scale"] = list(qnet.float_scale)
    if qnet.encoder is not None:
        doc["encoder"] = dict(qnet.encoder)
    write_pair_atomic(st_path, json_path, blob, doc)  # a kill at any moment leaves a loadable pair
    return json_path



def _expected_tensors(doc: Mapping[str, Any], names: set[str]) -> dict[str, tuple[tuple[int, ...], str]]:
    h, c, k = int(doc["n_hidden"]), int(doc["n_inputs"]), int(doc["n_outputs"])
    exp: dict[str, tuple[tuple[int, ...], str]] = {"w_in": ((h, c), "int32")}
    if "w_rec" in names:
        exp["w_rec"] = ((h, h), "int32")
    for name in _INT_VECTORS:
        exp[name] = ((h,), "int32")
    for name in _OPTIONAL_INT_VECTORS:
        if name in names:
            exp[name] = ((h,), "int32")
    exp["w_out"] = ((k, h), "float32")
    exp["b_out"] = ((k,), "float32")
    return exp


def load_qnet(path: str | Path, profile: HardwareProfile | str | Path | None = None) -> QuantizedNetwork:
    """Load and validate ``NAME``, ``NAME.json`` or ``NAME.safetensors``.

    Parameters
    ----------
    profile
        The profile to check the integers against; by default the built-in profile the
        JSON names. Its SHA-256 must equal the one recorded at quantization time.

    Raises
    ------
    CheckpointError
        One line naming the file and the field: missing/corrupt/truncated files, a tensor
        file from another save, wrong names, shapes or dtypes, integers the profile cannot
        represent, or a profile that changed since quantization.
    """
    st_path, json_path = qnet_paths(path)
    doc = read_json_object(json_path)
    _check_doc(doc, json_path)
    tensors = _read_tensors(st_path, json_path, doc)
    kwargs: dict[str, Any] = {name: tensors.get(name) for name in (f.name for f in fields(QuantizedNetwork))}
    kwargs.update({name: doc[name] for name in _SCALARS})
    kwargs["block_sizes"] = tuple(doc["block_sizes"])
    kwargs["float_scale"] = tuple(doc["float_scale"])
    kwargs["format_version"] = doc["format_version"]
    kwargs["encoder"] = doc.get("encoder")  # optional: files written before the encoder travelled with them
    try:
        qnet = QuantizedNetwork(**kwargs)
    except (TypeError, ValueError) as err:  # ValidationError is a ValueError
        raise CheckpointError(f"{json_path}: {err}") from None
    prof = _profile_of(qnet, profile, json_path)
    try:
        check_representable(qnet, prof)
    except ValidationError as err:
        raise CheckpointError(f"{st_path}: {err}") from None
    return qnet


def _check_doc(doc: dict[str, Any], json_path: Path) -> None:
    """The JSON half: this format and version, every scalar present, the integers integers."""
    if doc.get("format") != FORMAT:
        raise CheckpointError(f"{json_path}: format: not an rsnn-deploy quantized network (got {doc.get('format')!r})")
    if doc.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{json_path}: format_version: unsupported (got {doc.get('format_version')!r}); "
            f"this version reads {FORMAT_VERSION}, re-run rsnn-deploy quantize"
        )
    for key in (*_SCALARS, "n_inputs", "n_hidden", "n_outputs", "tensors_sha256"):
        if key not in doc:
            raise CheckpointError(f"{json_path}: {key}: missing")
    for key in ("n_inputs", "n_hidden", "n_outputs", "vmin", "vmax", "input_latency"):
        if not isinstance(doc[key], int) or isinstance(doc[key], bool):
            raise CheckpointError(f"{json_path}: {key}: must be an integer (got {doc[key]!r})")


def _read_tensors(st_path: Path, json_path: Path, doc: dict[str, Any]) -> dict[str, np.ndarray]:
    """The tensor half, from the same save as ``doc``, with exactly the names, shapes and dtypes it implies."""
    try:
        blob = read_pair_tensors(st_path, json_path, doc)
    except CheckpointError as err:
        raise CheckpointError(f"{err}; re-run rsnn-deploy quantize") from None
    try:
        tensors = st_load(blob)
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{st_path}: not a valid safetensors file ({err})") from None
    expected = _expected_tensors(doc, set(tensors))
    missing = sorted(set(expected) - set(tensors))
    if missing:
        raise CheckpointError(f"{st_path}: {missing[0]}: tensor missing")
    unexpected = sorted(set(tensors) - set(expected))
    if unexpected:
        raise CheckpointError(f"{st_path}: {unexpected[0]}: unexpected tensor")
    for name, (shape, dtype) in expected.items():
        t = tensors[name]
        if tuple(t.shape) != shape:
            raise CheckpointError(
                f"{st_path}: {name}: shape {list(t.shape)} does not match {json_path.name} ({list(shape)})"
            )
        if str(t.dtype) != dtype:
            raise CheckpointError(f"{st_path}: {name}: dtype must be {dtype} (got {t.dtype})")
    return tensors


def _profile_of(qnet: QuantizedNetwork, profile: HardwareProfile | str | Path | None,
                json_path: Path) -> HardwareProfile:
    """The profile to check against: the one given, else the one the file names; unchanged since quantization."""
    try:
        prof = profile if isinstance(profile, HardwareProfile) else load_profile(profile or qnet.profile)
    except ValidationError as err:
        raise CheckpointError(
            f"{json_path}: profile: cannot load {qnet.profile!r} ({err}); "
            "pass --profile PATH (profile= in Python), the TOML it was quantized for"
        ) from None
    if prof.name != qnet.profile:
        raise CheckpointError(f"{json_path}: profile: quantized for {qnet.profile!r}, given {prof.name!r}")
    if prof.sha256 != qnet.profile_sha256:
        raise CheckpointError(
            f"{json_path}: profile_sha256: profile {prof.name!r} changed since quantization "
            f"(got {prof.sha256[:12]}, file says {qnet.profile_sha256[:12]}); re-run rsnn-deploy quantize"
        )
    return prof
