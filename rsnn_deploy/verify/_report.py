"""The parity report: its JSON document, the quantization and resource sections, and ``--fail-over``.

:mod:`rsnn_deploy.report` writes it as ``report.json``, ``report.md`` and PNG figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rsnn_deploy.errors import RsnnError, UnsupportedError

REPORT_FORMAT = "rsnn-deploy/parity-report"
REPORT_VERSION = 1


class GapExceededError(RsnnError):
    """``--fail-over``: the float -> emulator accuracy gap is larger than allowed."""


@dataclass
class VerifyResult:
    """The report (JSON-able) plus the arrays the figures need."""

    report: dict[str, Any]
    figure_data: dict[str, Any] = field(default_factory=dict)

    @property
    def gap_pp(self) -> float | None:
        """Float -> emulator accuracy gap in percentage points (the ``--fail-over`` number)."""
        return self.report.get("headline_gap_pp")


def _cost(qnet: Any, prof: Any, x: np.ndarray, model: Any, emu_states: Any = None) -> dict[str, Any]:
    """Operation counts, NeuroBench metrics, energy and latency (:mod:`rsnn_deploy.cost`) on the fast samples.

    ``emu_states``: the integer reference's trace with states; counted when it covers every
    fast sample (it does when ``onnx`` or another agreement backend ran on all of them),
    instead of running the emulator a second time.
    """
    from rsnn_deploy.cost import cost_section

    covers = emu_states is not None and emu_states.voltage is not None and emu_states.spikes.shape[0] >= len(x)
    return cost_section(qnet, prof, x, model, trace=emu_states if covers else None)


def _checkpoint_section(ckpt: Any) -> dict[str, Any]:
    """Which float checkpoint the report is about, and what its training measured."""
    return {
        "path": str(ckpt.path), "name": ckpt.name, "task": ckpt.task.get("name"),
        "variant": ckpt.model.cfg.variant, "neurons": ckpt.model.cfg.n_hidden,
        "training_metrics": ckpt.metrics, "qat_profile": (ckpt.meta.get("train") or {}).get("qat_profile"),
    }


def _resources(qnet: Any, prof: Any) -> dict[str, Any]:
    """Cores, axons and synapse memory the network takes (:func:`~rsnn_deploy.qnet.placement`), with the limits."""
    from rsnn_deploy.qnet import placement

    pl = placement(qnet, prof)
    return {"cores": pl.n_cores, "input_axons": pl.input_axons, "output_axons": pl.output_axons,
            "synapse_bits": pl.synapse_bits,
            "synapse_bits_per_core_max": max(c.synapse_bits for c in pl.cores),
            "synapse_bits_per_core_limit": prof.limits.synapse_memory_bits_per_core,
            "compartments_per_core_limit": prof.limits.compartments_per_core}


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
