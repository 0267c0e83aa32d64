"""Comparisons between backends: accuracy intervals and gaps, spike agreement, float vs integer divergence.

Integer backends are compared with :data:`INTEGER_REFERENCE` (the emulator) on what
their :class:`~rsnn_deploy.backends.BackendSpec` declares (``agreement``: spike by spike,
below 100 % is a bug; ``gap``: the accuracy gap); the float model along :data:`GAP_CHAIN`.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

GAP_CHAIN: tuple[str, ...] = ("torch-float", "torch-fakequant", "emulator", "nengo-loihi")
INTEGER_REFERENCE = "emulator"


def _compares(name: str, comparison: str) -> bool:
    """Whether backend ``name`` declares ``comparison`` with the integer reference (``Backend`` registry)."""
    from rsnn_deploy.backends import backend_spec

    return comparison in backend_spec(name).compare


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
