"""Training: Adam, a learning-rate schedule, gradient clipping, firing-rate regularisation.

A run writes into one output folder::

    model.safetensors / model.json     best checkpoint (by validation accuracy)
    resume.safetensors / resume.json   state after the last finished epoch (model + Adam + schedule)
    metrics.jsonl                      one JSON line per epoch

``resume`` continues an interrupted run from the last finished epoch (at most one
epoch is lost). Shuffling is a pure function of ``(seed, epoch)``, so a resumed run
sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from rsnn_deploy.checkpoint import (
    checkpoint_paths,
    load_tensors,
    read_json,
    save_checkpoint,
    tensors_blob,
    validate_state,
)
from rsnn_deploy.config import ModelConfig, TrainConfig, validate_config
from rsnn_deploy.errors import CheckpointError, ValidationError
from rsnn_deploy.io import (
    cleanup_new_dirs_on_error,
    complete_pending,
    read_pair_tensors,
    write_pair_atomic,
    write_text_atomic,
)
from rsnn_deploy.model import RSNN
from rsnn_deploy.tasks import Split, Task, split_validation

EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass
class TrainResult:
    checkpoint: Path
    metrics: dict[str, Any]
    history: list[dict[str, Any]]


def model_config_for(task: Task, **overrides: Any) -> ModelConfig:
    """A model config whose input/output sizes and readout mode fit ``task``."""
    data = {"n_in": task.train.n_channels, "n_out": task.n_classes, "readout_mode": task.readout_mode}
    data.update({k: v for k, v in overrides.items() if v is not None})
    return validate_config(ModelConfig, data, owner="model")


def resolve_device(name: str) -> torch.device:
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValidationError(f"--device: CUDA is not available on this machine (got {name!r}); use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ValidationError(f"--device: unknown device (got {name!r})") from None


def batch_tensor(split: Split, idx: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(split.spikes(idx)).to(device=device, dtype=torch.float32)
    y = torch.from_numpy(split.labels[idx]).to(device=device, dtype=torch.long)
    return x, y


def rate_penalty(spikes: torch.Tensor, target: float) -> torch.Tensor:
    """Mean squared deviation of each neuron's firing rate (spikes/step) from ``target``.

    Keeps rates plausible for hardware (energy, axon traffic) and avoids silent neurons.
    """
    rates = spikes.mean(dim=(0, 1))
    return ((rates - target) ** 2).mean()


@torch.no_grad()
def evaluate(model: RSNN, split: Split, batch_size: int = 256, device: str | torch.device = "cpu") -> dict[str, float]:
    """Accuracy, cross-entropy and mean firing rate of ``model`` on ``split``."""
    dev = torch.device(device)
    model.eval()
    n = len(split)
    correct, loss_sum, rate_sum = 0, 0.0, 0.0
    for start in range(0, n, batch_size):
        idx = np.arange(start, min(n, start + batch_size))
        x, y = batch_tensor(split, idx, dev)
        out = model(x)
        loss_sum += nn.functional.cross_entropy(out.logits, y, reduction="sum").item()
        correct += (out.logits.argmax(1) == y).sum().item()
        rate_sum += out.spikes.mean().item() * len(idx)
    return {"acc": correct / max(n, 1), "loss": loss_sum / max(n, 1), "rate": rate_sum / max(n, 1)}


def _make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    total = cfg.epochs * steps_per_epoch
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Adam's state as flat tensors + JSON (no pickle)."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for pid, st in sd["state"].items():
        for key, value in st.items():
            if isinstance(value, torch.Tensor):
                tensors[f"opt.{pid}.{key}"] = value
            else:
                scalars[f"{pid}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _restore_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], doc: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("opt."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    for name, value in doc["scalars"].items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    opt.load_state_dict({"state": state, "param_groups": doc["param_groups"]})


class _RunFiles:
    def __init__(self, out: Path):
        self.out = out
        self.best = out / "model"
        self.resume = out / "resume"
        self.metrics = out / "metrics.jsonl"


def _check_output(files: _RunFiles, resume: bool, overwrite: bool) -> None:
    exists = any(p.exists() for p in (*checkpoint_paths(files.best), *checkpoint_paths(files.resume)))
    if exists and not (resume or overwrite):
        raise ValidationError(
            f"{files.out}: already holds a training run; pass --resume to continue it or --overwrite to replace it"
        )
    if resume and not checkpoint_paths(files.resume)[1].exists():
        raise ValidationError(f"{files.out}: --resume: no resume.json here to continue from")


_RESUME_KEYS: dict[str, type | tuple[type, ...]] = {
    "model": dict,
    "train": dict,
    "epoch": int,
    "best_val_acc": (int, float),
    "best_epoch": int,
    "optimizer": dict,
    "scheduler": dict,
    "history": list,
}


def read_resume_settings(out: str | Path) -> dict[str, Any]:
    """The recorded settings of the run in ``out``: its resume.json, checked key by key (one line per problem).

    Returns the JSON with ``model_cfg``/``train_cfg`` (validated configs) and ``task``
    (from resume.json, or model.json for runs from before it was recorded there).
    """
    files = _RunFiles(Path(out))
    json_path = checkpoint_paths(files.resume)[1]
    if not json_path.is_file():
        raise ValidationError(f"{files.out}: --resume: no resume.json here to continue from")
    doc = read_json(json_path)
    for key, kind in _RESUME_KEYS.items():
        if key not in doc:
            raise CheckpointError(f"{json_path}: {key}: missing; the file is not a complete resume state")
        if not isinstance(doc[key], kind) or isinstance(doc[key], bool):
            raise CheckpointError(f"{json_path}: {key}: wrong type (got {type(doc[key]).__name__})")
    for key in ("param_groups", "scalars"):
        if key not in doc["optimizer"]:
            raise CheckpointError(f"{json_path}: optimizer.{key}: missing")
    out_doc = dict(doc)
    out_doc["model_cfg"] = validate_config(ModelConfig, doc["model"], owner=f"{json_path}: model")
    out_doc["train_cfg"] = validate_config(TrainConfig, doc["train"], owner=f"{json_path}: train")
    task = doc.get("task")
    if task is None:  # resume.json written before the task was recorded in it
        best_json = checkpoint_paths(files.best)[1]
        task = read_json(best_json).get("task") if best_json.is_file() else None
    if not isinstance(task, dict) or not isinstance(task.get("name"), str):
        raise CheckpointError(f"{json_path}: task: missing; cannot tell which task this run trains")
    out_doc["task"] = task
    return out_doc


def train(
    task: Task,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    out: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    on_epoch: EpochCallback | None = None,
    device: str | None = None,
) -> TrainResult:
    """Train ``model_cfg`` on ``task``; write the best checkpoint into ``out``.

    ``on_epoch(epoch, metrics)`` is called after every epoch (Optuna pruning hooks
    in here; it may raise to stop the run). With ``resume`` the run's recorded model
    and training settings are used (``model_cfg``/``train_cfg`` must equal them, but
    for the device, which ``device`` may change); a task other than the recorded one is
    refused.
    """
    files = _RunFiles(Path(out))
    _check_output(files, resume, overwrite)
    with cleanup_new_dirs_on_error(files.out):
        return _train(task, model_cfg, train_cfg, files, resume, progress, on_epoch, device)


def _train(task, model_cfg, train_cfg, files, resume, progress, on_epoch, device_name) -> TrainResult:
    if resume:
        doc = read_resume_settings(files.out)
        json_path = checkpoint_paths(files.resume)[1]
        if doc["task"].get("name") != task.name:
            raise ValidationError(
                f"{json_path}: task: the run trains {doc['task'].get('name')!r}, not {task.name!r}; "
                "--resume continues the recorded task"
            )
        model_cfg = doc["model_cfg"]
        train_cfg = doc["train_cfg"]
        for st, js in (checkpoint_paths(files.best), checkpoint_paths(files.resume)):
            complete_pending(st, js)  # a pair write killed between its JSON and its tensors' rename
    if device_name is not None:
        train_cfg = train_cfg.model_copy(update={"device": device_name})
    device = resolve_device(train_cfg.device)

    train_split, val_split = _splits(task, train_cfg)
    torch.manual_seed(train_cfg.seed)
    model = RSNN(model_cfg).to(device)
    if train_cfg.qat_profile:
        from rsnn_deploy.quantize import attach_fake_quant

        attach_fake_quant(model, train_cfg.qat_profile)
    opt = torch.optim.Adam(model.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    steps_per_epoch = math.ceil(len(train_split) / train_cfg.batch_size)
    sched = _make_scheduler(opt, train_cfg, steps_per_epoch)

    history: list[dict[str, Any]] = []
    start_epoch, best_val, best_epoch = 0, -1.0, -1
    if resume:
        st_path, json_path = checkpoint_paths(files.resume)
        tensors = load_tensors(st_path, read_pair_tensors(st_path, json_path, doc))
        model_tensors = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
        validate_state(model_tensors, model.state_dict(), checkpoint_paths(files.resume)[0])
        model.load_state_dict(model_tensors)
        try:
            _restore_optimizer(opt, tensors, doc["optimizer"])
            sched.load_state_dict(doc["scheduler"])
        except (KeyError, ValueError) as err:
            raise CheckpointError(f"{files.resume}.json: optimizer/scheduler state is inconsistent ({err})") from None
        history = doc["history"]
        start_epoch, best_val, best_epoch = doc["epoch"] + 1, doc["best_val_acc"], doc["best_epoch"]
        write_text_atomic(files.metrics, "".join(json.dumps(h) + "\n" for h in history))
    elif files.metrics.exists():
        files.metrics.unlink()

    meta_common = {"task": {"name": task.name, "params": task.params}, "train": train_cfg.model_dump()}
    if task.encoder is not None:  # the input code is part of the model: recorded, never refitted on load
        meta_common["encoder"] = task.encoder.to_dict()
    if resume:
        meta_common["task"] = doc["task"]
        if "encoder" in doc:  # the run's own recorded input code
            meta_common["encoder"] = doc["encoder"]
    if progress:
        tqdm.write(f"engine: {model.engine_description(train_cfg.engine)}")
    for epoch in range(start_epoch, train_cfg.epochs):
        t0 = time.perf_counter()
        train_metrics = _train_epoch(model, opt, sched, train_split, train_cfg, epoch, device, progress)
        val_metrics = evaluate(model, val_split, device=device) if len(val_split) else train_metrics
        row = {
            "epoch": epoch,
            "lr": sched.get_last_lr()[0],
            **{f"train_{k}": v for k, v in train_metrics.items()},
            **{f"val_{k}": v for k, v in val_metrics.items()},
            "seconds": time.perf_counter() - t0,
        }
        history.append(row)
        with files.metrics.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        if val_metrics["acc"] > best_val:
            best_val, best_epoch = val_metrics["acc"], epoch
            save_checkpoint(model, files.best, **meta_common, metrics={"val_acc": best_val, "epoch": epoch})
        _save_resume(
            files, model, opt, sched, model_cfg, train_cfg, epoch, best_val, best_epoch, history, meta_common["task"]
        )
        if progress:
            tqdm.write(
                f"epoch {epoch + 1}/{train_cfg.epochs}  loss {train_metrics['loss']:.3f}  "
                f"train {train_metrics['acc']:.3f}  val {val_metrics['acc']:.3f}  rate {train_metrics['rate']:.3f}"
            )
        if on_epoch is not None:
            on_epoch(epoch, row)

    return _finish(files, task, meta_common, best_epoch, history, device)


def _splits(task: Task, cfg: TrainConfig) -> tuple[Split, Split]:
    split = task.train
    if cfg.limit is not None and cfg.limit < len(split):
        split = split.subset(np.arange(cfg.limit))
    if cfg.val_fraction > 0:
        return split_validation(split, cfg.val_fraction, cfg.seed)
    return split, split.subset(np.arange(0))


def _train_epoch(
    model: RSNN,
    opt: torch.optim.Optimizer,
    sched: Any,
    split: Split,
    cfg: TrainConfig,
    epoch: int,
    device: torch.device,
    progress: bool,
) -> dict[str, float]:
    model.train()
    order = np.random.default_rng([cfg.seed, epoch]).permutation(len(split))
    n_batches = math.ceil(len(order) / cfg.batch_size)
    loss_sum = correct = rate_sum = 0.0
    seen = 0
    bar = tqdm(range(n_batches), desc=f"epoch {epoch + 1}", leave=False, disable=not progress, unit="batch")
    for b in bar:
        idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
        x, y = batch_tensor(split, idx, device)
        out = model(x, engine=cfg.engine)
        ce = nn.functional.cross_entropy(out.logits, y)
        loss = ce + cfg.rate_reg * rate_penalty(out.spikes, cfg.target_rate)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        model.clamp_time_constants()
        n = len(idx)
        seen += n
        loss_sum += ce.item() * n
        correct += (out.logits.argmax(1) == y).sum().item()
        rate_sum += out.spikes.mean().item() * n
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}", rate=f"{rate_sum / seen:.3f}")
    return {"loss": loss_sum / seen, "acc": correct / seen, "rate": rate_sum / seen}


def _save_resume(files, model, opt, sched, model_cfg, train_cfg, epoch, best_val, best_epoch, history, task) -> None:
    """resume.{safetensors,json} after a finished epoch, as one pair that a kill at any moment leaves loadable."""
    opt_tensors, opt_doc = _optimizer_tensors(opt)
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()} | opt_tensors
    st_path, json_path = checkpoint_paths(files.resume)
    doc = {
        "model": model_cfg.model_dump(),
        "train": train_cfg.model_dump(),
        "task": task,
        "epoch": epoch,
        "best_val_acc": best_val,
        "best_epoch": best_epoch,
        "optimizer": opt_doc,
        "scheduler": sched.state_dict(),
        "history": history,
    }
    write_pair_atomic(st_path, json_path, tensors_blob(tensors), doc)


def _finish(files: _RunFiles, task: Task, meta_common: dict[str, Any], best_epoch: int, history, device) -> TrainResult:
    """Score the best checkpoint on the test split and record it in the checkpoint's JSON."""
    from rsnn_deploy.checkpoint import load_checkpoint

    ckpt = load_checkpoint(files.best)
    model = ckpt.model.to(device)
    qat = meta_common["train"].get("qat_profile")
    if qat:  # score the model as it was selected: on the profile's grid
        from rsnn_deploy.quantize import attach_fake_quant

        attach_fake_quant(model, qat)
    test = evaluate(model, task.test, device=device)
    model.fake_quant = None
    metrics = {
        "val_acc": ckpt.metrics.get("val_acc"),
        "best_epoch": best_epoch,
        "test_acc": test["acc"],
        "test_loss": test["loss"],
        "test_rate": test["rate"],
        "epochs_run": len(history),
        "scored_with_fake_quant": bool(qat),
    }
    save_checkpoint(model.cpu(), files.best, **meta_common, metrics=metrics)
    return TrainResult(checkpoint=checkpoint_paths(files.best)[1], metrics=metrics, history=history)
