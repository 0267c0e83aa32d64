"""Checkpoints: ``NAME.safetensors`` (tensors) + ``NAME.json`` (config, task, metrics, provenance).

The JSON's ``encoder`` is the model's input code (raw values -> spikes, see
:mod:`rsnn_deploy.tasks.input_encoder`); older checkpoints record it in their task
parameters, which :func:`load_checkpoint` reads as the encoder.

Never pickle: safetensors holds raw tensors only, JSON holds everything else. Both
files are written atomically. Loading checks every name, shape, dtype, that values
are finite and that the config is in range; a bad file raises a one-line
:class:`CheckpointError` naming the file and the field.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load_bytes
from safetensors.torch import load_file, save_file
from safetensors.torch import save as st_save_bytes

from rsnn_deploy.config import ModelConfig, validate_config
from rsnn_deploy.errors import CheckpointError, ValidationError
from rsnn_deploy.io import (
    artifact_paths,
    atomic_path,
    git_commit,
    package_versions,
    read_json_object,
    read_pair_tensors,
    write_pair_atomic,
)
from rsnn_deploy.model import RSNN

FORMAT = "rsnn-deploy/checkpoint"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model plus everything recorded beside it."""

    model: RSNN
    path: Path  # the JSON file
    meta: dict[str, Any] = field(default_factory=dict)
    encoder: Any = None  # the recorded InputEncoder (rsnn_deploy.tasks.input_encoder); None: none recorded

    @property
    def task(self) -> dict[str, Any]:
        return self.meta.get("task", {})

    @property
    def metrics(self) -> dict[str, Any]:
        return self.meta.get("metrics", {})

    @property
    def name(self) -> str:
        return self.path.stem


def checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    """``(NAME.safetensors, NAME.json)`` for a path given as either file or the bare stem."""
    return artifact_paths(path)


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Write a safetensors file atomically (contiguous CPU copies)."""
    data = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(data, str(tmp))


def tensors_blob(tensors: dict[str, torch.Tensor]) -> bytes:
    """The safetensors bytes of ``tensors`` (contiguous CPU copies), for :func:`rsnn_deploy.io.write_pair_atomic`."""
    return st_save_bytes({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()})


def load_tensors(path: Path, blob: bytes | None = None) -> dict[str, torch.Tensor]:
    """Read a safetensors file (or its already read, hash-checked ``blob``); a bad file is a CheckpointError."""
    if blob is None and not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    try:
        return load_file(str(path)) if blob is None else st_load_bytes(blob)
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a valid safetensors file ({err})") from None


read_json = read_json_object  # the one JSON reader of every artifact (rsnn_deploy.io)


def save_checkpoint(model: RSNN, path: str | Path, **meta: Any) -> Path:
    """Save ``model`` as ``NAME.safetensors`` + ``NAME.json``; returns the JSON path.

    ``meta`` goes into the JSON as is (task, train config, metrics, seed, ...);
    format, model config, versions, git commit and a timestamp are added here.
    The JSON records ``tensors_sha256`` of its tensor file (another model's
    same-shape tensors beside it are refused on load), and the pair is written so
    that a kill at any moment leaves a loadable pair (:func:`rsnn_deploy.io.write_pair_atomic`).
    """
    st_path, json_path = checkpoint_paths(path)
    blob = tensors_blob(model.state_dict())
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": model.cfg.model_dump(),
        **({"learned_time_constants_ms": learned} if (learned := model.learned_time_constants()) else {}),
        **meta,
        "versions": package_versions(),
        "git_commit": git_commit(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    write_pair_atomic(st_path, json_path, blob, doc)
    return json_path


def validate_state(tensors: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], where: Path) -> None:
    """Names, shapes, dtypes and finiteness of loaded tensors against a freshly built model."""
    missing = sorted(set(expected) - set(tensors))
    if missing:
        raise CheckpointError(f"{where}: tensor '{missing[0]}' is missing")
    unexpected = sorted(set(tensors) - set(expected))
    if unexpected:
        raise CheckpointError(f"{where}: unexpected tensor '{unexpected[0]}' (does the config match?)")
    for name, ref in expected.items():
        t = tensors[name]
        if tuple(t.shape) != tuple(ref.shape):
            raise CheckpointError(
                f"{where}: tensor '{name}' has shape {list(t.shape)}, config says {list(ref.shape)}"
            )
        if t.dtype != ref.dtype:
            raise CheckpointError(f"{where}: tensor '{name}' has dtype {t.dtype}, expected {ref.dtype}")
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise CheckpointError(f"{where}: tensor '{name}' has non-finite values")


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load and validate a checkpoint given as ``NAME``, ``NAME.json`` or ``NAME.safetensors``."""
    st_path, json_path = checkpoint_paths(path)
    doc = read_json(json_path)
    if doc.get("format") != FORMAT:
        raise CheckpointError(f"{json_path}: format: not an rsnn-deploy checkpoint (got {doc.get('format')!r})")
    if doc.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{json_path}: format_version: unsupported (got {doc.get('format_version')!r}, "
            f"this version reads {FORMAT_VERSION})"
        )
    if not isinstance(doc.get("model"), dict):
        raise CheckpointError(f"{json_path}: model: missing model config")
    try:
        cfg = validate_config(ModelConfig, doc["model"], owner=f"{json_path}: model")
    except ValidationError as err:
        raise CheckpointError(str(err)) from None
    blob = read_pair_tensors(st_path, json_path, doc)  # checks tensors_sha256 (absent in old checkpoints)
    model = RSNN(cfg)
    tensors = load_tensors(st_path, blob)
    validate_state(tensors, model.state_dict(), st_path)
    for name in model.tau_names():
        tau = tensors[name]
        if (tau <= 0).any():
            raise CheckpointError(f"{st_path}: tensor '{name}' must be positive (got min {tau.min().item():g})")
    model.load_state_dict(tensors)
    model.eval()
    return Checkpoint(model=model, path=json_path, meta=doc, encoder=_encoder_of(doc, json_path))


def _encoder_of(doc: dict[str, Any], json_path: Path) -> Any:
    """The checkpoint's input code (older files: from their task params); None where neither tells it.

    A recorded ``encoder`` that is malformed or does not fit the model is an error; an older
    file whose task does not describe its code loads without one (rebuilding its task says why).
    """
    from rsnn_deploy.tasks import checkpoint_encoder

    try:
        return checkpoint_encoder(doc)
    except ValidationError as err:
        if doc.get("encoder") is None:
            return None
        raise CheckpointError(f"{json_path}: {err}") from None
