"""Float :class:`~rsnn_deploy.xylo.model.XyloRSNN` -> integer :class:`~rsnn_deploy.xylo.network.XyloNetwork`.

- Decays: each trained tau goes to the nearest grid point ``tau(dash) = -dt / ln(1 - 2^-dash)``
  (nearest in log tau); :func:`tau_report` lists trained vs grid tau and the relative error.
- Hidden weights: integer = float * ``threshold_int`` / threshold, then per matrix the smallest
  left shift whose int8 mantissa holds the largest weight (the same grid QAT trains on).
- Readout: output neurons with ``dash_mem_out = 0`` (``v_out = i_out + bias_out``); their scale is
  the largest that keeps the calibration run's peak ``|v_out|`` inside 90 % of the 16-bit range,
  capped where the largest output weight fills the int8 mantissa at ``shift_max``.
- Thresholds of the output neurons sit at the 16-bit maximum: they are read, not spiking.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from rsnn_deploy.errors import UnsupportedError
from rsnn_deploy.semantics.xylo_profile import XyloProfile
from rsnn_deploy.xylo.model import XyloRSNN, dash_to_tau_ms, tau_to_dash, weight_grid_step
from rsnn_deploy.xylo.network import XyloNetwork, check_design_rules

__all__ = ["quantize_model", "tau_report"]


def _int_weights(w: torch.Tensor, scale: float, bits: int, shift_max: int) -> tuple[np.ndarray, int]:
    step = weight_grid_step(w, scale, bits, shift_max)
    shift = round(math.log2(step * scale))
    m_max = (1 << (bits - 1)) - 1
    m = torch.clamp(torch.round(w.detach().double() / step), -m_max - 1, m_max)
    return m.numpy().astype(np.int64), shift


def tau_report(model: XyloRSNN, dash_max: int) -> list[dict[str, Any]]:
    """Per time-constant kind: trained tau (ms; min / mean / max), the grid dash values and taus they
    snap to, and the worst relative error ``tau_grid / tau - 1``."""
    dt = model.cfg.dt_ms
    rows = []
    for name in ("tau_mem", "tau_syn", "tau_out"):
        tau = getattr(model, name).detach().double()
        kinds = [(name, tau)] if tau.ndim == 1 else [(f"{name}[{s}]", tau[:, s]) for s in range(tau.shape[1])]
        for label, t in kinds:
            dash = tau_to_dash(t, dt, dash_max)
            grid = dash_to_tau_ms(dash, dt)
            err = grid / t - 1.0
            worst = int(err.abs().argmax())
            rows.append(
                {
                    "tau": label,
                    "trained_ms": {"min": float(t.min()), "mean": float(t.mean()), "max": float(t.max())},
                    "dash": sorted({int(d) for d in dash}),
                    "grid_ms": sorted({round(float(g), 3) for g in grid}),
                    "worst_rel_error": round(float(err[worst]), 4),
                }
            )
    return rows


def quantize_model(
    model: XyloRSNN, profile: XyloProfile, calib_x: np.ndarray, dash_override: dict[str, int] | None = None
) -> tuple[XyloNetwork, dict[str, Any]]:
    """Integers for ``model`` on ``profile``, checked against its design rules.

    ``calib_x`` [N, T, C] sizes the readout scale. ``dash_override`` (``{"dash_mem": 3}``...) forces
    one dash for every neuron of a kind, for the accuracy-vs-dash sweep.

    Raises
    ------
    UnsupportedError
        A design rule of the profile (too many inputs / outputs / synapses...).
    """
    cfg = model.cfg
    if cfg.n_syn > profile.limits.synapses_per_hidden:
        raise UnsupportedError(
            f"{profile.name}: {cfg.n_syn} synaptic currents per hidden neuron exceed the maximum "
            f"{profile.limits.synapses_per_hidden}"
        )
    dmax = profile.bitshift.dash_max
    dt = cfg.dt_ms
    dash_mem = tau_to_dash(model.tau_mem.detach(), dt, dmax).numpy()
    dash_syn = tau_to_dash(model.tau_syn.detach(), dt, dmax).numpy()
    dash_syn_out = tau_to_dash(model.tau_out.detach(), dt, dmax).numpy()
    for key, val in (dash_override or {}).items():
        target = {"dash_mem": dash_mem, "dash_syn": dash_syn, "dash_syn_out": dash_syn_out}[key.split("[")[0]]
        if "[" in key:
            target[:, int(key[key.index("[") + 1 : -1])] = val
        else:
            target[...] = val
    scale = cfg.threshold_int / cfg.threshold
    bits, smax = profile.weight.bits, profile.weight.shift_max
    w_in, shift_in = _int_weights(model.w_in, scale, bits, smax)
    w_rec, shift_rec = _int_weights(model.w_rec, scale, bits, smax)
    # readout scale from a float run of the calibration input, decays on the grid
    was = model.quantized
    model.qat(True)
    with torch.no_grad():
        rec = model(torch.as_tensor(calib_x, dtype=torch.float32), record=True)
    model.qat(was)
    peak_o = float(torch.cat([rec["v_mem_out"].abs().flatten(), rec["i_syn_out"].abs().flatten()]).max())
    m_max = profile.weight.mantissa_max
    w_peak = float(model.w_out.detach().abs().max())
    scale_o = min(0.9 * profile.state.max / max(peak_o, 1e-9), m_max * 2.0**smax / max(w_peak, 1e-12))
    w_out, shift_out = _int_weights(model.w_out, scale_o, bits, smax)
    h, k = cfg.n_hidden, cfg.n_out
    net = XyloNetwork(
        w_in=w_in,
        w_rec=w_rec,
        w_out=w_out,
        shift_in=shift_in,
        shift_rec=shift_rec,
        shift_out=shift_out,
        dash_mem=dash_mem,
        dash_syn=dash_syn,
        dash_mem_out=np.zeros(k, np.int64),
        dash_syn_out=dash_syn_out,
        threshold=np.full(h, cfg.threshold_int),
        threshold_out=np.full(k, profile.threshold.max),
        bias=np.zeros(h, np.int64),
        bias_out=np.round(model.b_out.detach().double().numpy() * scale_o).astype(np.int64),
        profile=profile.name,
        readout_scale=scale_o,
        readout_mode=cfg.readout_mode,
        meta={"profile_sha256": profile.sha256},
    )
    check_design_rules(net, profile)
    report = {
        "profile": profile.name,
        "threshold_int": cfg.threshold_int,
        "weight_shift": {"in": shift_in, "rec": shift_rec, "out": shift_out},
        "readout_scale": scale_o,
        "time_constants": tau_report(model, dmax),
        "dash_override": dict(dash_override or {}),
    }
    return net, report
