"""``rsnn-deploy train --qat xylo-*``: train Xylo's own model on the profile's grid from the main train command.

Why a separate path: the project's :class:`rsnn_deploy.model.RSNN` follows Loihi (reset to zero,
``v > th``, one synaptic current), so quantization-aware training for Xylo trains
:class:`~rsnn_deploy.xylo.model.XyloRSNN` with fake quantization on from the first step: decays on
the ``2^dash`` grid and weights on the int8-with-shift grid of the profile. The run folder gets
``model.safetensors`` + ``model.json`` (a Xylo checkpoint that ``rsnn-deploy xylo verify OUT/model``
and ``rsnn-deploy verify OUT/model --target xylo-audio2`` read) and ``metrics.json``.

Flags of the Loihi model that Xylo's model has no counterpart for are refused in one line, never
ignored.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rsnn_deploy.errors import UnsupportedError, ValidationError
from rsnn_deploy.io import check_writable_path, guard_outputs, write_json_atomic
from rsnn_deploy.xylo.model import XyloModelConfig, XyloRSNN
from rsnn_deploy.xylo.train import accuracy, save_xylo_checkpoint, train_epochs

__all__ = ["XYLO_MODEL_FLAGS", "train_xylo_run"]

# model settings of the train command that map onto XyloModelConfig (others are Loihi's RSNN only)
XYLO_MODEL_FLAGS = {
    "n_hidden": "--hidden",
    "tau_mem_ms": "--tau-mem",
    "tau_syn_ms": "--tau-syn",
    "tau_out_ms": "--tau-out",
    "surrogate_slope": "--slope",
    "train_tau": "--train-tau",
}
_SLOW_SYN_MS = 16.0  # the second synaptic current's initial tau (Xylo Audio 2 has two per neuron)


def _model_config(task: Any, model_over: dict[str, Any], profile: Any) -> XyloModelConfig:
    bad = sorted(k for k, v in model_over.items() if v is not None and k not in XYLO_MODEL_FLAGS)
    if bad:
        raise ValidationError(
            f"--qat {profile.name}: model setting {bad[0]!r} belongs to the Loihi-style RSNN; Xylo's model "
            f"(rsnn_deploy/xylo/model.py) takes only {', '.join(XYLO_MODEL_FLAGS.values())}"
        )
    n_in, n_out = task.train.n_channels, task.n_classes
    lim = profile.limits
    if n_in > lim.max_inputs:
        raise UnsupportedError(
            f"{profile.name}: {task.name} has {n_in} input channels, over the maximum "
            f"{lim.max_inputs}; re-encode it with fewer (e.g. mnist1d --task-param n_thresholds=8)"
        )
    if n_out > lim.max_outputs:
        raise UnsupportedError(
            f"{profile.name}: {task.name} has {n_out} classes, over the maximum {lim.max_outputs} output neurons"
        )
    if task.readout_mode not in ("mean", "last"):
        raise UnsupportedError(
            f"{profile.name}: readout {task.readout_mode!r} of {task.name}; Xylo's model reads "
            "its output neurons' mean or last v"
        )
    n_syn = lim.synapses_per_hidden
    fast = model_over.get("tau_syn_ms") or 2.0
    taus = (fast, _SLOW_SYN_MS)[:n_syn]
    extra = {
        k: model_over[k]
        for k in ("tau_mem_ms", "tau_out_ms", "surrogate_slope", "train_tau")
        if model_over.get(k) is not None
    }
    try:
        return XyloModelConfig(
            n_in=n_in,
            n_hidden=int(model_over.get("n_hidden") or 128),
            n_out=n_out,
            n_syn=n_syn,
            dt_ms=profile.dt_ms,
            tau_syn_ms=taus,
            readout_mode=task.readout_mode,
            dash_max=profile.bitshift.dash_max,
            weight_bits=profile.weight.bits,
            shift_max=profile.weight.shift_max,
            **extra,
        )
    except (TypeError, ValueError) as err:
        raise ValidationError(f"--qat {profile.name}: {err}") from None


def train_xylo_run(
    task: Any, model_over: dict[str, Any], train_cfg: Any, out: str | Path, overwrite: bool = False, log: Any = None
) -> dict[str, Any]:
    """Train a :class:`XyloRSNN` for ``task`` with fake quantization on ``train_cfg.qat_profile``'s grid,
    write OUT/model.{safetensors,json} and OUT/metrics.json; returns the metrics.

    Raises
    ------
    ValidationError, UnsupportedError
        A Loihi-only flag, a device other than cpu, or a task the profile cannot hold (one line each).
    """
    from rsnn_deploy import profiles
    from rsnn_deploy.tasks import split_validation

    profile = profiles.load_any_profile(train_cfg.qat_profile)
    if train_cfg.device != "cpu":
        raise ValidationError(f"--device: Xylo's model trains on cpu only (got {train_cfg.device!r})")
    if train_cfg.engine not in ("auto", "eager"):
        raise ValidationError(f"--engine: Xylo's model has no fast engine (got {train_cfg.engine!r}); use eager")
    cfg = _model_config(task, model_over, profile)
    out_dir = check_writable_path(out, "-o", is_dir=True)
    files = [out_dir / n for n in ("model.safetensors", "model.json", "metrics.json")]
    guard_outputs(files, overwrite=overwrite)
    train_split, val_split = (
        split_validation(task.train, train_cfg.val_fraction, train_cfg.seed)
        if train_cfg.val_fraction > 0
        else (task.train, None)
    )
    idx = np.arange(len(train_split) if train_cfg.limit is None else min(train_cfg.limit, len(train_split)))
    x, y = train_split.spikes(idx), train_split.labels[idx]
    torch.manual_seed(train_cfg.seed)
    model = XyloRSNN(cfg, seed=train_cfg.seed).qat(True)
    t0 = time.process_time()
    losses = train_epochs(
        model,
        x,
        y,
        train_cfg.epochs,
        lr=train_cfg.lr,
        batch=train_cfg.batch_size,
        seed=train_cfg.seed,
        rate_reg=train_cfg.rate_reg,
        target_rate=train_cfg.target_rate,
        weight_decay=train_cfg.weight_decay,
        schedule=train_cfg.schedule,
        grad_clip=train_cfg.grad_clip,
        log=log,
    )
    cpu_s = time.process_time() - t0
    test_idx = np.arange(len(task.test))
    metrics: dict[str, Any] = {
        "profile": profile.name,
        "loss": losses,
        "test_acc_fake_quant": accuracy(model, task.test.spikes(test_idx), task.test.labels),
        "train_cpu_s": cpu_s,
    }
    if val_split is not None:
        vi = np.arange(len(val_split))
        metrics["val_acc_fake_quant"] = accuracy(model, val_split.spikes(vi), val_split.labels)
    task_meta = {"name": task.name, "params": dict(task.params), "classes": task.n_classes}
    save_xylo_checkpoint(
        model.qat(False),
        out_dir / "model",
        task=task_meta,
        train={**train_cfg.model_dump(), "qat_from_epoch": 0, "cpu_s": cpu_s},
        metrics=metrics,
    )
    write_json_atomic(out_dir / "metrics.json", metrics)
    return metrics
