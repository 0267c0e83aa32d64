"""The parity verifier: run every backend on the same encoded inputs and say, number by number, what survives.

:func:`verify` quantizes a checkpoint (or takes a quantized network), runs the chosen
backends on one split through the :class:`~rsnn_deploy.backends.Backend` protocol only,
and returns a report (written by :mod:`rsnn_deploy.report` as ``report.json``,
``report.md`` and PNG figures):

- accuracy per backend with Wilson 95 % intervals, and the gaps along
  ``torch-float -> torch-fakequant -> emulator -> nengo-loihi``, each measured on the
  samples both backends ran;
- spike agreement of every other integer backend with the emulator: anything below
  100 % is a bug, reported with the first divergent sample, step, neuron and variable;
- float vs emulator: first divergent step, per-neuron rate correlation, membrane RMSE
  in float units (integer ``v`` divided by the block's ``float_scale``);
- quantization summary (effective time constants, weight bits), resources, wall time.

Slow backends (nengo, nengo-loihi: ~2-3k steps/s; lava: Lava 0.10's own processes,
about 0.2 s a sample) run on the first ``slow_limit`` samples; fast ones on the whole
split (or ``limit``). By default ``nengo-loihi`` runs for loihi1 and ``lava`` for loihi2;
each is skipped with its reason where it does not apply or cannot run here.

:func:`emulated_accuracy` is the short path for hardware-aware tuning: quantize and
run the emulator on the validation split the training used.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rsnn_deploy.errors import CheckpointError, RsnnError, UnsupportedError, ValidationError

__all__ = [
    "DEFAULT_BACKENDS",
    "GAP_CHAIN",
    "GapExceededError",
    "VerifyResult",
    "calibration_input",
    "default_checkpoint",
    "emulated_accuracy",
    "evaluation_split",
    "quantize_checkpoint",
    "target_of",
    "task_of",
    "training_part",
    "verify",
    "wilson_interval",
]

DEFAULT_BACKENDS: tuple[str, ...] = ("torch-float", "torch-fakequant", "emulator", "nengo", "nengo-loihi", "lava")
GAP_CHAIN: tuple[str, ...] = ("torch-float", "torch-fakequant", "emulator", "nengo-loihi")
INTEGER_REFERENCE = "emulator"
DEFAULT_MODEL = "mnist1d-rec-syn-loihi1"
REPORT_FORMAT = "rsnn-deploy/parity-report"
REPORT_VERSION = 1


class GapExceededError(RsnnError):
    """``--fail-over``: the float -> emulator accuracy gap is larger than allowed."""


# ----------------------------------------------------------------------------- inputs


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


# ----------------------------------------------------------------------------- statistics


def wilson_interval(correct: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval of a proportion (95 % by default); (0, 1) for ``n = 0``.

    Unlike the normal approximation it stays inside [0, 1] and is sensible at 100 %
    accuracy or on a few hundred samples, which is what slow backends run.
    """
    if n <= 0:
        return 0.0, 1.0
    p = correct / n
    denom = 1.0 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, center - half), min(1.0, center + half)


def _rate_correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson correlation of per-neuron firing rates (None when one side is constant)."""
    ra, rb = a.mean(axis=(0, 1)), b.mean(axis=(0, 1))
    if ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def _neuron_scale(qnet: Any, model: Any) -> np.ndarray:
    """Integer voltage units per float unit, per neuron (the block's ``float_scale``)."""
    scales = np.empty(qnet.n_hidden)
    for j, sl in enumerate(qnet.block_slices):
        if qnet.float_scale:
            scales[sl] = qnet.float_scale[j]
        else:  # a network read back from nengo-loihi: the threshold sets the scale
            scales[sl] = qnet.vth[sl] / model.cfg.threshold
    return scales


def float_vs_emulator(float_tr: Any, emu_tr: Any, qnet: Any, model: Any, spikes_float: np.ndarray,
                      spikes_emu: np.ndarray) -> dict[str, Any]:
    """Divergence of the integer network from the float model.

    ``float_tr``/``emu_tr`` hold states for a few samples; ``spikes_*`` are the main runs
    (same samples, all of them) for agreement and rate correlation.
    """
    n_diag = emu_tr.spikes.shape[0]
    first = []
    for s in range(n_diag):
        bad = np.flatnonzero(np.any(float_tr.spikes[s] != emu_tr.spikes[s], axis=1))
        first.append(int(bad[0]) if bad.size else None)
    scale = _neuron_scale(qnet, model)
    v_emu = emu_tr.voltage / scale
    err = v_emu - float_tr.voltage
    before = [err[s, : (first[s] if first[s] is not None else err.shape[1])] for s in range(n_diag)]
    before_cat = np.concatenate([b.reshape(-1, b.shape[-1]) for b in before]) if n_diag else np.zeros((0, 1))
    diverged = [f for f in first if f is not None]
    return {
        "samples_with_states": n_diag,
        "first_divergent_step": {
            "per_sample": first,
            "min": min(diverged) if diverged else None,
            "median": float(np.median(diverged)) if diverged else None,
            "never_diverged": int(sum(f is None for f in first)),
        },
        "spike_agreement": float((spikes_float == spikes_emu).mean()),
        "rate_correlation": _rate_correlation(spikes_float, spikes_emu),
        "rates": {"float": float(spikes_float.mean()), "emulator": float(spikes_emu.mean())},
        "membrane_rmse_float_units": {
            "all_steps": float(np.sqrt(np.mean(err**2))) if err.size else None,
            "before_first_divergence": float(np.sqrt(np.mean(before_cat**2))) if before_cat.size else None,
            "threshold": float(model.cfg.threshold),
        },
    }


def agreement(ref: Any, other: Any) -> dict[str, Any]:
    """Agreement of an integer backend with the emulator on the samples it ran (below 100 % is a bug)."""
    from rsnn_deploy.trace import first_divergence

    n = other.spikes.shape[0]
    a, b = ref.spikes[:n], other.spikes
    div = None
    if ref.voltage is not None and other.voltage is not None:
        sub = type(ref)(spikes=a, readout=ref.readout[:n], logits=ref.logits[:n], current=_cut(ref.current, n),
                        voltage=_cut(ref.voltage, n), adaptation=_cut(ref.adaptation, n))
        div = first_divergence(sub, other)
    elif not np.array_equal(a, b):
        bad = np.argwhere(a != b)
        s, t, h = (int(v) for v in bad[np.lexsort((bad[:, 2], bad[:, 0], bad[:, 1]))[0]])
        div = {"sample": s, "step": t, "neuron": h, "variable": "spikes", "a": bool(a[s, t, h]), "b": bool(b[s, t, h])}
    return {
        "samples": n,
        "spike_agreement": float((a == b).mean()),
        "identical_samples": float(np.mean([np.array_equal(a[s], b[s]) for s in range(n)])) if n else 1.0,
        "prediction_agreement": float((ref.predictions[:n] == other.predictions).mean()) if n else 1.0,
        "first_divergence": div,
        "bug": div is not None,
    }


def _cut(x: np.ndarray | None, n: int) -> np.ndarray | None:
    return None if x is None else x[:n]


# ----------------------------------------------------------------------------- verify


@dataclass
class VerifyResult:
    """The report (JSON-able) plus the arrays the figures need."""

    report: dict[str, Any]
    figure_data: dict[str, Any] = field(default_factory=dict)

    @property
    def gap_pp(self) -> float | None:
        """Float -> emulator accuracy gap in percentage points (the ``--fail-over`` number)."""
        return self.report.get("headline_gap_pp")


def _resolve_backends(names: Sequence[str], qnet: Any, explicit: bool) -> tuple[list[str], list[dict[str, str]]]:
    """The backends to run: by default each one asked whether it supports ``qnet`` (skipped with its reason).

    Named explicitly, a backend runs or refuses itself. The integer reference is added when
    a chosen backend declares a comparison with it.
    """
    from rsnn_deploy.backends import backend_spec

    chosen, skipped = [], []
    for name in names:
        spec = backend_spec(name)  # unknown names fail here, in one line
        reason = None if explicit else spec.unsupported(qnet)
        if reason:
            skipped.append({"backend": name, "reason": reason})
            continue
        chosen.append(name)
    if INTEGER_REFERENCE not in chosen and any(_compares(n, "agreement") for n in chosen):
        chosen.insert(0, INTEGER_REFERENCE)  # the reference every integer backend is compared with
    return chosen, skipped


def _compares(name: str, comparison: str) -> bool:
    """Whether backend ``name`` declares ``comparison`` with the integer reference (``Backend`` registry)."""
    from rsnn_deploy.backends import backend_spec

    return comparison in backend_spec(name).compare


def verify(
    checkpoint: str | Path,
    target: str | None = None,
    *,
    backends: Sequence[str] | None = None,
    split: str = "test",
    limit: int | None = None,
    slow_limit: int = 100,
    qnet_path: str | Path | None = None,
    calib: int = 200,
    diag_samples: int = 20,
    data_dir: str | Path | None = None,
    progress: bool = True,
) -> VerifyResult:
    """Run ``backends`` on ``split`` of the checkpoint's task; see the module docstring for what is measured.

    Parameters
    ----------
    checkpoint : path
        Float checkpoint (``NAME``, ``NAME.json`` or ``NAME.safetensors``).
    target : str, optional
        Hardware profile; defaults to the checkpoint's QAT profile.
    backends : sequence of str, optional
        Backend names (default :data:`DEFAULT_BACKENDS`; ``nengo-loihi`` is skipped with a
        reason for networks it cannot run unless named explicitly, then it refuses).
    limit : int, optional
        Samples for the fast backends (default: the whole split).
    slow_limit : int
        Samples for slow backends (``nengo``, ``nengo-loihi``): the first ``slow_limit``.
    qnet_path : path, optional
        Use this quantized network instead of quantizing (must be for ``target``).
    calib : int
        Training samples for the quantizer's calibration.
    diag_samples : int
        Samples whose states are recorded for the float vs emulator divergence.
    """
    from tqdm import tqdm

    from rsnn_deploy.backends import BackendSource, backend_spec, create_backend
    from rsnn_deploy.checkpoint import load_checkpoint
    from rsnn_deploy.hardware import load_profile
    from rsnn_deploy.qnet import load_qnet, placement

    t_start = time.perf_counter()
    ckpt = load_checkpoint(checkpoint)
    prof = load_profile(target_of(ckpt, target))
    task = task_of(ckpt, data_dir)
    data = evaluation_split(task, ckpt.meta, split)
    n = len(data) if limit is None else min(int(limit), len(data))
    if n < 1:
        raise ValidationError(f"--limit: must leave at least one sample (got {limit})")

    qreport: dict[str, Any] | None = None
    if qnet_path is not None:
        qnet = load_qnet(qnet_path)
        if qnet.profile != prof.name:
            raise ValidationError(f"--qnet: quantized for {qnet.profile!r}, --target is {prof.name!r}")
        qreport = (_qnet_meta(qnet_path) or {}).get("quantize_report")
    else:
        qnet, qreport = quantize_checkpoint(ckpt, prof, calib, task)

    names, skipped = _resolve_backends(list(backends or DEFAULT_BACKENDS), qnet, explicit=backends is not None)
    x = data.spikes(np.arange(n))
    y = data.labels[:n]
    n_slow = min(n, slow_limit)
    n_diag = min(n, diag_samples)
    traces: dict[str, Any] = {}
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        spec = backend_spec(name)
        n_b = n_slow if spec.slow else n
        # integer backends record states on the slow subset, so that any divergence is located exactly
        record = spec.record_in_verify  # lava: spikes only (Lava reads states one element at a time)
        with tqdm(total=n_b, desc=f"{name:>15}", unit="sample", disable=not progress, leave=False) as bar:
            source = BackendSource(model=ckpt.model, qnet=qnet, profile=prof, record_states=record,
                                   progress=bar.update)
            backend = create_backend(name, source)
            t0 = time.perf_counter()
            tr = backend.run(x[:n_b])
            wall = time.perf_counter() - t0
        correct = int((tr.predictions == y[:n_b]).sum())
        lo, hi = wilson_interval(correct, n_b)
        traces[name] = tr
        results[name] = {
            "accuracy": correct / n_b, "correct": correct, "samples": n_b, "ci95": [lo, hi],
            "wall_s": round(wall, 3), "samples_per_s": round(n_b / wall, 1) if wall > 0 else None,
            "mean_rate": float(tr.spikes.mean()), "overflow": dict(tr.overflow),
        }

    gaps = _gaps(results, traces, y)
    has_pair = {"torch-float", INTEGER_REFERENCE} <= set(traces)
    headline = _gap(traces, y, "torch-float", INTEGER_REFERENCE) if has_pair else None

    agree: dict[str, Any] = {}
    emu_states = None
    if INTEGER_REFERENCE in traces:
        m = max((traces[k].spikes.shape[0] for k in traces if _compares(k, "agreement")), default=0)
        m = max(m, n_diag)
        emu_states = create_backend(INTEGER_REFERENCE, BackendSource(qnet=qnet, profile=prof, record_states=True)
                                    ).run(x[:m])
        for name in names:
            if _compares(name, "agreement"):
                agree[f"{INTEGER_REFERENCE}_vs_{name}"] = agreement(emu_states, traces[name])
    divergence = None
    float_states = None
    if {"torch-float", INTEGER_REFERENCE} <= set(traces) and emu_states is not None:
        float_states = create_backend("torch-float", BackendSource(model=ckpt.model, record_states=True)
                                      ).run(x[:n_diag])
        emu_diag = type(emu_states)(spikes=emu_states.spikes[:n_diag], readout=emu_states.readout[:n_diag],
                                    logits=emu_states.logits[:n_diag], voltage=emu_states.voltage[:n_diag],
                                    current=emu_states.current[:n_diag])
        divergence = float_vs_emulator(float_states, emu_diag, qnet, ckpt.model, traces["torch-float"].spikes,
                                       traces[INTEGER_REFERENCE].spikes)

    pl = placement(qnet, prof)
    report: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "format_version": REPORT_VERSION,
        "checkpoint": {
            "path": str(ckpt.path), "name": ckpt.name, "task": ckpt.task.get("name"),
            "variant": ckpt.model.cfg.variant, "neurons": ckpt.model.cfg.n_hidden,
            "training_metrics": ckpt.metrics, "qat_profile": (ckpt.meta.get("train") or {}).get("qat_profile"),
        },
        "profile": prof.name,
        "qnet": str(qnet_path) if qnet_path else None,
        "split": split,
        "samples": {"fast": n, "slow": n_slow, "split_size": len(data)},
        "backends": results,
        "skipped_backends": skipped,
        "gaps": gaps,
        "headline_gap_pp": headline["gap_pp"] if headline else None,
        "agreement": agree,
        "float_vs_emulator": divergence,
        "quantization": _quant_summary(qreport, qnet),
        "resources": {"cores": pl.n_cores, "input_axons": pl.input_axons, "output_axons": pl.output_axons,
                      "synapse_bits": pl.synapse_bits,
                      "synapse_bits_per_core_max": max(c.synapse_bits for c in pl.cores),
                      "synapse_bits_per_core_limit": prof.limits.synapse_memory_bits_per_core,
                      "compartments_per_core_limit": prof.limits.compartments_per_core},
        "wall_time_s": {**{k: v["wall_s"] for k, v in results.items()}, "total": None},
    }
    report["cost"] = _cost(qnet, prof, x, ckpt.model)
    report["wall_time_s"]["total"] = round(time.perf_counter() - t_start, 3)
    fig = {"traces": traces, "float_states": float_states, "emu_states": emu_states, "labels": y,
           "qreport": qreport, "qnet": qnet}
    return VerifyResult(report=_jsonable(report), figure_data=fig)


def _cost(qnet: Any, prof: Any, x: np.ndarray, model: Any) -> dict[str, Any]:
    """Operation counts, NeuroBench metrics, energy and latency (:mod:`rsnn_deploy.cost`) on the fast samples."""
    from rsnn_deploy.cost import cost_section

    return cost_section(qnet, prof, x, model)


def _gap(traces: dict[str, Any], y: np.ndarray, a: str, b: str) -> dict[str, Any]:
    m = min(traces[a].spikes.shape[0], traces[b].spikes.shape[0])
    acc_a = float((traces[a].predictions[:m] == y[:m]).mean())
    acc_b = float((traces[b].predictions[:m] == y[:m]).mean())
    return {"from": a, "to": b, "samples": m, "from_accuracy": acc_a, "to_accuracy": acc_b,
            "gap_pp": round(100.0 * (acc_a - acc_b), 4)}


def _gaps(results: dict[str, Any], traces: dict[str, Any], y: np.ndarray) -> list[dict[str, Any]]:
    chain = [name for name in GAP_CHAIN if name in traces]
    out = [_gap(traces, y, a, b) for a, b in itertools.pairwise(chain)]
    pairs = {(g["from"], g["to"]) for g in out}
    if "torch-float" in traces and INTEGER_REFERENCE in traces and ("torch-float", INTEGER_REFERENCE) not in pairs:
        out.append(_gap(traces, y, "torch-float", INTEGER_REFERENCE))
    from rsnn_deploy.backends import available_backends

    for other in available_backends():  # registration order
        if INTEGER_REFERENCE in traces and other in traces and _compares(other, "gap"):
            out.append(_gap(traces, y, INTEGER_REFERENCE, other))
    return out


def _qnet_meta(path: str | Path) -> dict[str, Any] | None:
    import json

    from rsnn_deploy.qnet import qnet_paths

    try:
        return json.loads(qnet_paths(path)[1].read_text()).get("meta")
    except (OSError, ValueError):
        return None


def _quant_summary(qreport: dict[str, Any] | None, qnet: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "float_scale": list(qnet.float_scale), "block_sizes": list(qnet.block_sizes),
        "vth": sorted({int(v) for v in qnet.vth}), "adaptation": qnet.has_adaptation,
    }
    if qreport:
        out.update({k: qreport.get(k) for k in ("time_constants", "weights", "clipped_weights",
                                                "headroom_float_calibration", "threshold")})
    return out


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    return obj


def check_fail_over(result: VerifyResult, fail_over: float | None, out_dir: str | Path | None = None) -> None:
    """Raise :class:`GapExceededError` (one line) when the float -> emulator gap exceeds ``fail_over`` points."""
    if fail_over is None:
        return
    gap = result.gap_pp
    if gap is None:
        raise UnsupportedError("--fail-over: needs the torch-float and emulator backends")
    if gap > fail_over:
        where = f"; report in {out_dir}" if out_dir else ""
        raise GapExceededError(
            f"verify --fail-over {fail_over:g}: float -> emulator gap {gap:.2f} pp exceeds {fail_over:g} pp{where}"
        )


# ----------------------------------------------------------------------------- tuning


def emulated_accuracy(checkpoint_path: str | Path, profile: str, split: str = "val", limit: int | None = None,
                      calib: int = 200, data_dir: str | Path | None = None) -> float:
    """Accuracy of the quantized checkpoint on ``profile``'s integer emulator (hardware-aware tuning).

    ``split='val'`` is the hold-out ``rsnn_deploy.train`` used (``limit``, then
    ``split_validation(train, val_fraction, seed)`` from the checkpoint's train config);
    calibration uses the first ``calib`` samples of the training part.
    """
    from rsnn_deploy.checkpoint import load_checkpoint
    from rsnn_deploy.emulator import run as emulate

    ckpt = load_checkpoint(checkpoint_path)
    task = task_of(ckpt, data_dir)
    data = evaluation_split(task, ckpt.meta, split)
    n = len(data) if limit is None else min(int(limit), len(data))
    qnet, _ = quantize_checkpoint(ckpt, profile, calib, task)
    correct = 0
    for start in range(0, n, 1024):
        idx = np.arange(start, min(n, start + 1024))
        import warnings

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="emulator: states wrapped")
            tr = emulate(qnet, data.spikes(idx))
        correct += int((tr.predictions == data.labels[idx]).sum())
    return correct / max(n, 1)
