"""What a verification starts from: the checkpoint's task, its splits, its target and its integers.

Every command quantizes through :func:`quantize_checkpoint` (``quantize``, ``verify``,
``model-card``, hardware-aware tuning), so the same checkpoint always gives the same
integers; the splits are the ones ``rsnn_deploy.train`` used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rsnn_deploy.errors import CheckpointError, ValidationError

DEFAULT_MODEL = "mnist1d-rec-syn-loihi1"


def default_checkpoint() -> Path:
    """The shipped default model (``rsnn_deploy/_models/``), usable from an installed package."""
    from importlib import resources

    path = Path(str(resources.files("rsnn_deploy") / "_models" / f"{DEFAULT_MODEL}.json"))
    if not path.is_file():
        raise CheckpointError(f"{path}: the default model is missing from this installation; pass a checkpoint")
    return path


def task_of(ckpt: Any, data_dir: str | Path | None = None) -> Any:
    """Rebuild the task a checkpoint was trained on (``meta['task'] = {'name', 'params'}``)."""
    try:
        from rsnn_deploy.tasks import task_for_checkpoint  # type: ignore[attr-defined]
    except ImportError:  # older tree: rebuild it here
        return _task_fallback(ckpt.meta, ckpt.path, data_dir)
    return task_for_checkpoint(ckpt.meta, data_dir=data_dir)


def _task_fallback(meta: dict[str, Any], where: Any, data_dir: str | Path | None) -> Any:
    from rsnn_deploy.tasks import load_task

    task = meta.get("task")
    if not isinstance(task, dict) or not isinstance(task.get("name"), str):
        raise CheckpointError(f"{where}: task: missing or malformed (need {{'name', 'params'}}); cannot rebuild data")
    params = dict(task.get("params") or {})
    path = params.pop("path", None)
    seed = params.pop("seed", 0)
    if data_dir is not None:
        params.pop("data_dir", None)
    return load_task(task["name"], data_dir=data_dir, path=path, seed=seed, **params)


def target_of(ckpt: Any, target: str | None) -> str:
    """The profile to verify against: ``target``, else the profile the checkpoint was trained for (QAT)."""
    if target:
        return target
    qat = (ckpt.meta.get("train") or {}).get("qat_profile")
    if qat:
        return str(qat)
    raise ValidationError(
        f"--target: required for {ckpt.path.name} (it was not trained with --qat); e.g. --target loihi1"
    )


def training_part(task: Any, meta: dict[str, Any]) -> tuple[Any, Any]:
    """(train, val) exactly as ``rsnn_deploy.train`` split them (limit first, then the seeded hold-out)."""
    from rsnn_deploy.tasks import split_validation

    cfg = meta.get("train") or {}
    split = task.train
    limit = cfg.get("limit")
    if limit is not None and limit < len(split):
        split = split.subset(np.arange(limit))
    frac = float(cfg.get("val_fraction", 0.1))
    if frac <= 0:
        return split, split.subset(np.arange(0))
    return split_validation(split, frac, int(cfg.get("seed", 0)))


def evaluation_split(task: Any, meta: dict[str, Any], split: str) -> Any:
    """``test``, ``train`` (the training part) or ``val`` (the hold-out training used)."""
    if split == "test":
        return task.test
    train, val = training_part(task, meta)
    if split == "val":
        if len(val) == 0:
            raise ValidationError("--split val: the checkpoint was trained without a validation hold-out")
        return val
    if split == "train":
        return train
    raise ValidationError(f"--split: must be test, val or train (got {split!r})")


def calibration_input(split: Any, n: int) -> Any:
    """The first ``n`` samples of ``split`` as a float tensor ``[n, T, C]`` (quantizer calibration)."""
    import torch

    if n <= 0:
        return None
    return torch.from_numpy(split.spikes(np.arange(min(n, len(split))))).float()


def quantize_checkpoint(ckpt: Any, profile: Any, calib: int = 200, task: Any = None,
                        data_dir: str | Path | None = None) -> tuple[Any, dict[str, Any]]:
    """``quantize_model`` on a checkpoint, calibrated on the first ``calib`` samples of its training part.

    Every command quantizes through here (``quantize``, ``verify``, ``model-card``,
    :func:`emulated_accuracy`), so the same checkpoint always gives the same integers.
    The model is not changed.
    """
    from rsnn_deploy.quantize import quantize_model

    calib_x = None
    if calib > 0:
        train_part, _ = training_part(task if task is not None else task_of(ckpt, data_dir), ckpt.meta)
        calib_x = calibration_input(train_part, calib)
    qnet, report = quantize_model(ckpt.model, profile, calib_x, source=ckpt.name)
    encoder = getattr(ckpt, "encoder", None)
    if encoder is not None:  # the input code travels with the integers
        import dataclasses

        qnet = dataclasses.replace(qnet, encoder=encoder.to_dict())
    return qnet, report
