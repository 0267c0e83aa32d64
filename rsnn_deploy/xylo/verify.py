"""Float -> fake-quant -> our emulator -> xylosim on one split: accuracies and emulator-vs-xylosim agreement.

The parity claim is between the two integer runs (``emulator`` and ``xylosim``): every hidden spike
count, output spike and recorded state must be equal. Float and fake-quant are reported for the
accuracy the integers cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from rsnn_deploy.trace import Trace
from rsnn_deploy.xylo import _xylosim, emulator
from rsnn_deploy.xylo.emulator import XyloRun
from rsnn_deploy.xylo.model import XyloRSNN
from rsnn_deploy.xylo.network import XyloNetwork

__all__ = ["XYLO_BACKENDS", "agreement", "run_backend", "to_trace", "verify_xylo"]

XYLO_BACKENDS: tuple[str, ...] = ("float", "fake-quant", "emulator", "xylosim")
_STATES = ("spikes", "spikes_out", "i_syn", "v_mem", "i_syn_out", "v_mem_out")


def to_trace(run: XyloRun, net: XyloNetwork) -> Trace:
    """The project's :class:`Trace`: hidden spike *counts* (uint8, Xylo can spike up to 31 times a step),
    readout ``v_out / readout_scale`` and ``logits`` = its mean over steps, or its last step
    (``net.readout_mode``); states as int64."""
    readout = (run.v_mem_out / net.readout_scale).astype(np.float32)
    r64 = readout.astype(np.float64)
    logits = r64[:, -1] if net.readout_mode == "last" else r64.mean(axis=1)
    return Trace(
        spikes=run.spikes.astype(np.uint8),
        readout=readout,
        logits=logits,
        current=run.i_syn.sum(axis=-1),
        voltage=run.v_mem,
        overflow=dict(run.saturated),
    )


def _float_logits(model: XyloRSNN, x: np.ndarray, quantized: bool, batch: int = 250) -> np.ndarray:
    was = model.quantized
    model.qat(quantized)
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            logits, _ = model(torch.as_tensor(x[i : i + batch], dtype=torch.float32))
            out.append(logits.double().numpy())
    model.qat(was)
    return np.concatenate(out)


def run_backend(name: str, x: np.ndarray, model: XyloRSNN | None, net: XyloNetwork | None) -> dict[str, Any]:
    """Logits (and the integer run for ``emulator`` / ``xylosim``) of one backend."""
    if name in ("float", "fake-quant"):
        assert model is not None
        return {"logits": _float_logits(model, x, name == "fake-quant")}
    assert net is not None
    run = emulator.run(net, x) if name == "emulator" else _xylosim.run_xylosim(net, x)
    return {"logits": to_trace(run, net).logits, "run": run}


def agreement(a: XyloRun, b: XyloRun) -> dict[str, float]:
    """Percent of equal entries per recorded state (100.0 = identical)."""
    return {f: float(100.0 * np.mean(getattr(a, f) == getattr(b, f))) for f in _STATES}


def verify_xylo(
    x: np.ndarray,
    y: np.ndarray,
    model: XyloRSNN | None,
    net: XyloNetwork | None,
    backends: Sequence[str] = XYLO_BACKENDS,
) -> dict[str, Any]:
    """Accuracy per backend on ``(x, y)``; spike and state agreement emulator vs xylosim when both ran."""
    results: dict[str, Any] = {}
    runs: dict[str, XyloRun] = {}
    for name in backends:
        out = run_backend(name, x, model, net)
        results[name] = {"accuracy": float(np.mean(np.argmax(out["logits"], axis=1) == y))}
        if "run" in out:
            runs[name] = out["run"]
            results[name]["hidden_spikes_per_step"] = float(out["run"].spikes.sum(axis=2).mean())
    report: dict[str, Any] = {"n": len(y), "backends": results}
    if "emulator" in runs:
        report["saturated_neuron_steps"] = dict(runs["emulator"].saturated)
    if {"emulator", "xylosim"} <= runs.keys():
        report["agreement_emulator_vs_xylosim_pct"] = agreement(runs["emulator"], runs["xylosim"])
        report["xylosim_version"] = _xylosim.xylosim_version()
    return report
