"""Short BPTT training of a :class:`XyloRSNN` (float, then QAT on the Xylo grid), and its checkpoint files.

Checkpoint: ``NAME.safetensors`` (tensors) + ``NAME.json`` (config, task, metrics); never pickled.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from rsnn_deploy.errors import CheckpointError
from rsnn_deploy.io import atomic_path, package_versions, write_json_atomic
from rsnn_deploy.xylo.model import XyloModelConfig, XyloRSNN

__all__ = ["accuracy", "load_xylo_checkpoint", "save_xylo_checkpoint", "train_epochs"]

FORMAT = "rsnn-deploy/xylo-checkpoint"


def train_epochs(
    model: XyloRSNN,
    x: np.ndarray,
    y: np.ndarray,
    epochs: int,
    lr: float = 3e-3,
    batch: int = 100,
    seed: int = 0,
    rate_reg: float = 0.5,
    target_rate: float = 0.05,
    log: Any = None,
    weight_decay: float = 0.0,
    schedule: str = "constant",
    grad_clip: float | None = 1.0,
    on_epoch: Any = None,
    sat_reg: float = 0.0,
    sat_level: float = 2.0,
    qat_from: int | None = None,
) -> list[float]:
    """Adam with cross-entropy plus a firing-rate penalty; returns the mean loss per epoch.

    ``sat_reg`` adds ``sat_reg * mean(relu(-v - sat_level))`` (v in thresholds): it keeps membranes off
    the negative 16-bit limit, where the clipped state passes no gradient and the neuron is silent (the
    first shipped model had 77 % of its neuron-steps there). ``qat_from``: the epoch at which fake
    quantization switches on (None: as the model is).

    ``schedule``: ``constant``, ``onecycle`` (peak ``lr``) or ``cosine``, over all ``epochs``.
    ``on_epoch(epoch, loss)`` runs after each epoch (the reference script saves a resumable checkpoint there).
    """
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    n_batches = (len(y) + batch - 1) // batch
    sched: Any = None
    if schedule == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(1, epochs * n_batches))
    elif schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs * n_batches))
    elif schedule != "constant":
        raise ValueError(f"train_epochs.schedule: must be constant, onecycle or cosine (got {schedule!r})")
    rng = np.random.default_rng(seed)
    xt = torch.as_tensor(x, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.long)
    losses = []
    for ep in range(epochs):
        if qat_from is not None and ep == qat_from:
            model.qat(True)
        order = rng.permutation(len(y))
        total = 0.0
        for i in range(0, len(order), batch):
            idx = torch.as_tensor(order[i : i + batch])
            if sat_reg > 0:
                rec = model(xt[idx], record=True)
                assert isinstance(rec, dict)
                logits, spikes = rec["logits"], rec["spikes"]
            else:
                logits, spikes = model(xt[idx])
            rate = spikes.mean()
            loss = torch.nn.functional.cross_entropy(logits, yt[idx]) + rate_reg * (rate - target_rate) ** 2
            if sat_reg > 0:
                loss = loss + sat_reg * torch.relu(-rec["v_mem"] - sat_level).mean()
            opt.zero_grad()
            loss.backward()
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
            if sched is not None:
                sched.step()
            model.clamp_time_constants()
            total += float(loss.detach()) * len(idx)
        losses.append(total / len(y))
        if log:
            log(f"epoch {ep + 1}/{epochs} loss {losses[-1]:.4f} qat={model.quantized}")
        if on_epoch:
            on_epoch(ep, losses[-1])
    return losses


def accuracy(model: XyloRSNN, x: np.ndarray, y: np.ndarray, batch: int = 250) -> float:
    """Test accuracy of ``model`` as it is switched (float or fake-quant)."""
    hits = 0
    with torch.no_grad():
        for i in range(0, len(y), batch):
            logits, _ = model(torch.as_tensor(x[i : i + batch], dtype=torch.float32))
            hits += int((logits.argmax(1).numpy() == y[i : i + batch]).sum())
    return hits / max(1, len(y))


def save_xylo_checkpoint(model: XyloRSNN, path: str | Path, **meta: Any) -> Path:
    base = Path(path).with_suffix("")
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(base.with_suffix(".safetensors")) as tmp:
        save_file(tensors, str(tmp))
        os.chmod(tmp, 0o644)  # save_file recreates the file as 0600; a shipped artifact must be readable
    write_json_atomic(
        base.with_suffix(".json"),
        {"format": FORMAT, "format_version": 1, "model": model.cfg.to_json(), **meta, "versions": package_versions()},
    )
    return base


def load_xylo_checkpoint(path: str | Path) -> tuple[XyloRSNN, dict[str, Any]]:
    """Load ``NAME.safetensors`` + ``NAME.json``; a bad file raises a one-line :class:`CheckpointError`."""
    base = Path(path).with_suffix("")
    js, st = base.with_suffix(".json"), base.with_suffix(".safetensors")
    for f in (js, st):
        if not f.is_file():
            raise CheckpointError(f"{f}: Xylo checkpoint file not found")
    try:
        meta = json.loads(js.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{js}: not valid JSON ({err})") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{js}: format: must be {FORMAT!r} (got {meta.get('format')!r})")
    raw = dict(meta["model"])
    raw["tau_syn_ms"] = tuple(raw["tau_syn_ms"])
    try:
        cfg = XyloModelConfig(**raw)
        model = XyloRSNN(cfg)
        model.load_state_dict(load_file(str(st)))
    except (TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{st}: does not match its config ({str(err).splitlines()[0]})") from None
    return model, meta
