"""``verify``: run the chosen backends on one split through the Backend protocol and assemble the report."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rsnn_deploy.errors import ValidationError
from rsnn_deploy.verify._compare import (
    INTEGER_REFERENCE,
    _compares,
    _gap,
    _gaps,
    agreement,
    float_vs_emulator,
    wilson_interval,
)
from rsnn_deploy.verify._inputs import evaluation_split, quantize_checkpoint, target_of, task_of
from rsnn_deploy.verify._report import (
    REPORT_FORMAT,
    REPORT_VERSION,
    VerifyResult,
    _checkpoint_section,
    _cost,
    _jsonable,
    _qnet_meta,
    _quant_summary,
    _resources,
)

DEFAULT_BACKENDS: tuple[str, ...] = ("torch-float", "torch-fakequant", "emulator", "nengo", "nengo-loihi", "lava")


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
    from rsnn_deploy.checkpoint import load_checkpoint
    from rsnn_deploy.hardware import load_profile

    t_start = time.perf_counter()
    ckpt = load_checkpoint(checkpoint)
    prof = load_profile(target_of(ckpt, target))
    task = task_of(ckpt, data_dir)
    data = evaluation_split(task, ckpt.meta, split)
    n = len(data) if limit is None else min(int(limit), len(data))
    if n < 1:
        raise ValidationError(f"--limit: must leave at least one sample (got {limit})")
    qnet, qreport = _network_of(ckpt, prof, qnet_path, calib, task)

    names, skipped = _resolve_backends(list(backends or DEFAULT_BACKENDS), qnet, explicit=backends is not None)
    x = data.spikes(np.arange(n))
    y = data.labels[:n]
    n_slow = min(n, slow_limit)
    n_diag = min(n, diag_samples)
    traces, results = _run_backends(names, ckpt.model, qnet, prof, x, y, n_slow, progress)

    gaps = _gaps(results, traces, y)
    has_pair = {"torch-float", INTEGER_REFERENCE} <= set(traces)
    headline = _gap(traces, y, "torch-float", INTEGER_REFERENCE) if has_pair else None
    agree, emu_states = _agreements(names, traces, qnet, prof, x, n_diag)
    divergence, float_states = _float_divergence(traces, emu_states, ckpt.model, qnet, x, n_diag)

    report: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "format_version": REPORT_VERSION,
        "checkpoint": _checkpoint_section(ckpt),
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
        "resources": _resources(qnet, prof),
        "wall_time_s": {**{k: v["wall_s"] for k, v in results.items()}, "total": None},
    }
    report["cost"] = _cost(qnet, prof, x, ckpt.model, emu_states)
    report["wall_time_s"]["total"] = round(time.perf_counter() - t_start, 3)
    fig = {"traces": traces, "float_states": float_states, "emu_states": emu_states, "labels": y,
           "qreport": qreport, "qnet": qnet}
    return VerifyResult(report=_jsonable(report), figure_data=fig)


def _network_of(ckpt: Any, prof: Any, qnet_path: str | Path | None, calib: int,
                task: Any) -> tuple[Any, dict[str, Any] | None]:
    """The integers to verify, with their quantization report: ``--qnet``'s file, else the checkpoint quantized."""
    from rsnn_deploy.qnet import load_qnet

    if qnet_path is None:
        return quantize_checkpoint(ckpt, prof, calib, task)
    qnet = load_qnet(qnet_path)
    if qnet.profile != prof.name:
        raise ValidationError(f"--qnet: quantized for {qnet.profile!r}, --target is {prof.name!r}")
    return qnet, (_qnet_meta(qnet_path) or {}).get("quantize_report")


def _run_backends(names: Sequence[str], model: Any, qnet: Any, prof: Any, x: np.ndarray, y: np.ndarray,
                  n_slow: int, progress: bool) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Each backend on the fast samples (slow ones on the first ``n_slow``): its trace and its accuracy entry."""
    from tqdm import tqdm

    from rsnn_deploy.backends import BackendSource, backend_spec, create_backend

    n = len(y)
    traces: dict[str, Any] = {}
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        spec = backend_spec(name)
        n_b = n_slow if spec.slow else n
        # integer backends record states on the slow subset, so that any divergence is located exactly
        record = spec.record_in_verify  # lava: spikes only (Lava reads states one element at a time)
        if name == INTEGER_REFERENCE and _reference_states_cover(names):
            record = True  # the agreement checks and the cost counts need its states on every sample
        with tqdm(total=n_b, desc=f"{name:>15}", unit="sample", disable=not progress, leave=False) as bar:
            source = BackendSource(model=model, qnet=qnet, profile=prof, record_states=record,
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
    return traces, results


def _reference_states_cover(names: Sequence[str]) -> bool:
    """Whether the agreement checks need the integer reference's states on every fast sample: a
    fast backend (not ``slow``) declares an agreement with it. Its backend run then records them,
    instead of a second emulator run with states for :func:`_agreements` and the cost counts."""
    from rsnn_deploy.backends import backend_spec

    return any(_compares(n, "agreement") and not backend_spec(n).slow for n in names if n != INTEGER_REFERENCE)


def _agreements(names: Sequence[str], traces: dict[str, Any], qnet: Any, prof: Any, x: np.ndarray,
                n_diag: int) -> tuple[dict[str, Any], Any]:
    """Spike agreement of each backend that declares it with the integer reference, rerun with its states."""
    from rsnn_deploy.backends import BackendSource, create_backend

    agree: dict[str, Any] = {}
    if INTEGER_REFERENCE not in traces:
        return agree, None
    m = max((traces[k].spikes.shape[0] for k in traces if _compares(k, "agreement")), default=0)
    m = max(m, n_diag)
    ref = traces[INTEGER_REFERENCE]
    if ref.voltage is not None and ref.spikes.shape[0] >= m:
        emu_states = ref  # recorded with its states in the backend run (_reference_states_cover)
    else:
        emu_states = create_backend(INTEGER_REFERENCE, BackendSource(qnet=qnet, profile=prof, record_states=True)
                                    ).run(x[:m])
    for name in names:
        if _compares(name, "agreement"):
            agree[f"{INTEGER_REFERENCE}_vs_{name}"] = agreement(emu_states, traces[name])
    return agree, emu_states


def _float_divergence(traces: dict[str, Any], emu_states: Any, model: Any, qnet: Any, x: np.ndarray,
                      n_diag: int) -> tuple[dict[str, Any] | None, Any]:
    """Float vs emulator on the first ``n_diag`` samples with states (None without both backends)."""
    from rsnn_deploy.backends import BackendSource, create_backend

    if not ({"torch-float", INTEGER_REFERENCE} <= set(traces) and emu_states is not None):
        return None, None
    float_states = create_backend("torch-float", BackendSource(model=model, record_states=True)).run(x[:n_diag])
    emu_diag = type(emu_states)(spikes=emu_states.spikes[:n_diag], readout=emu_states.readout[:n_diag],
                                logits=emu_states.logits[:n_diag], voltage=emu_states.voltage[:n_diag],
                                current=emu_states.current[:n_diag])
    divergence = float_vs_emulator(float_states, emu_diag, qnet, model, traces["torch-float"].spikes,
                                   traces[INTEGER_REFERENCE].spikes)
    return divergence, float_states
