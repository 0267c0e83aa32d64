"""Xylo's integer step, batched over samples in numpy: bit-exact with the vendor's ``xylosim`` (v2).

One step ``t`` (read from xylosim 0.1.3 ``src/v2/cpp``, in its order)::

    k_in  = min(x[t], 15)        k_rec = min(n[t-1], 31)       # spike counts per source
    for each source j (inputs, then hidden), for each synapse (post, s) of j:
        i[post, s] = sat16(i[post, s] + k_j * wrap16(w << shift))   # saturating, per source
    i_out[k] likewise from the hidden counts k_rec through w_out << shift_out
    i  <- i - dec(i, dash_syn)                                      # decay after the input arrives
    dv  = sat16(wrap16(-dec(v, dash_mem)) + sum_s i[s]);  dv = sat16(dv + bias)
    v   = sat16(v + dv)
    n   = min(v // th, 31) if v >= th else 0;   v -= n * th       # reset by subtraction, multi-spike
    (output neurons: the same with one synapse and at most 1 spike)

with ``dec(v, d) = v >> d`` (arithmetic), or ``sign(v)`` where that is 0: the decay never stalls.
Saturating additions do not commute, so the sum over sources is exact only in xylosim's order;
:func:`_deliver` takes the fast path (one matrix product) wherever no partial sum can leave the
16-bit range, and adds source by source, in order, only for the synapses where one could.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rsnn_deploy.errors import ValidationError
from rsnn_deploy.xylo.network import XyloNetwork

__all__ = ["XyloRun", "bitshift_decay", "run"]

MAX_IN_SPIKES = 15
MAX_HIDDEN_SPIKES = 31
MAX_OUT_SPIKES = 1
S16_MIN, S16_MAX = -(1 << 15), (1 << 15) - 1


@dataclass(frozen=True)
class XyloRun:
    """States after each step, batch-first, int64 (spike counts included)."""

    spikes: np.ndarray  # [B, T, H] hidden spike counts
    spikes_out: np.ndarray  # [B, T, K] output spikes (0/1)
    i_syn: np.ndarray  # [B, T, H, S]
    v_mem: np.ndarray  # [B, T, H]
    i_syn_out: np.ndarray  # [B, T, K]
    v_mem_out: np.ndarray  # [B, T, K]
    saturated: dict[str, int]  # neuron-steps that hit the 16-bit limit, per state


def _sat(x: np.ndarray) -> np.ndarray:
    return np.clip(x, S16_MIN, S16_MAX)


def _wrap16(x: np.ndarray) -> np.ndarray:
    return ((x + (1 << 15)) & 0xFFFF) - (1 << 15)


def bitshift_decay(v: np.ndarray, dash: np.ndarray) -> np.ndarray:
    """``v >> dash``, or ``sign(v)`` where that is 0 (xylosim's ``decay``)."""
    dv = v >> dash
    return np.where(dv == 0, np.sign(v), dv)


def _split(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``w`` with its positive and negative parts as float64, for :func:`_deliver`."""
    return w, np.maximum(w, 0).astype(np.float64), np.minimum(w, 0).astype(np.float64)


def _deliver(
    state: np.ndarray, counts: np.ndarray, ws: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> tuple[np.ndarray, int]:
    """``state [B, N] = sat16(... sat16(state + k_0 w_0) ... + k_P w_P)`` for counts [B, P], w [P, N]
    (``ws`` = :func:`_split` of w).

    Adding the same weight ``k`` times with saturation equals one saturating add of ``k w``
    (the partial sums are monotone), so only the order of sources matters. Also returns how many
    entries saturated (differ from the unbounded sum).
    """
    # float64 BLAS products are exact here (|sum| < 31 * 2^15 * 1016 < 2^53); int64 matmul has no BLAS
    w, w_pos, w_neg = ws
    c = counts.astype(np.float64)
    pos = state + (c @ w_pos).astype(np.int64)
    neg_part = (c @ w_neg).astype(np.int64)
    total = pos + neg_part
    neg = state + neg_part
    risky = (pos > S16_MAX) | (neg < S16_MIN)
    if not risky.any():
        return total, 0
    out = total.copy()
    bi, ni = np.nonzero(risky)
    val = state[bi, ni]
    sub = counts[bi]
    for j in np.nonzero(sub.any(axis=0))[0]:  # sources that spiked for some risky entry, in order
        val = _sat(val + sub[:, j] * w[j, ni])
    out[bi, ni] = val
    return out, int(np.count_nonzero(val != total[bi, ni]))


def _evolve(
    i_syn: np.ndarray,
    v: np.ndarray,
    dash_syn: np.ndarray,
    dash_mem: np.ndarray,
    bias: np.ndarray,
    threshold: np.ndarray,
    max_spikes: int,
    sat_count: dict[str, int],
    tag: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decay the synapses, integrate, spike. ``i_syn`` [B, N, S], ``v`` [B, N]."""
    i_syn = i_syn - bitshift_decay(i_syn, dash_syn)
    dv_raw = _wrap16(-bitshift_decay(v, dash_mem)) + i_syn.sum(axis=2)
    dv = _sat(dv_raw)
    dv2 = _sat(dv + bias)
    v_raw = v + dv2
    v_new = _sat(v_raw)
    sat_count[tag] += int(np.count_nonzero((dv_raw != dv) | (dv + bias != dv2) | (v_raw != v_new)))
    n = np.where(v_new >= threshold, np.minimum(v_new // threshold, max_spikes), 0)
    return i_syn, v_new - n * threshold, n


def run(net: XyloNetwork, x: np.ndarray) -> XyloRun:
    """Run ``net`` on input spike counts ``x`` [B, T, C] (non-negative integers) from rest.

    Raises
    ------
    ValidationError
        ``x`` has the wrong shape or negative / non-integer entries.
    """
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[2] != net.n_in:
        raise ValidationError(f"xylo.run.x: must be [B, T, {net.n_in}] (got shape {x.shape})")
    if x.dtype.kind not in "biu" or (x.size and x.min() < 0):
        raise ValidationError("xylo.run.x: must hold non-negative integer spike counts")
    b, t_steps, _ = x.shape
    h, k, s = net.n_hidden, net.n_out, net.n_synapses
    # weights as arriving increments, sources (inputs, then hidden) x targets (post neuron * S + s)
    w_src = np.concatenate(
        [
            _wrap16(net.w_in << net.shift_in).reshape(net.n_in, h * s),
            _wrap16(net.w_rec << net.shift_rec).reshape(h, h * s),
        ]
    )
    w_o = _wrap16(net.w_out << net.shift_out)
    ws_src, ws_o = _split(w_src), _split(w_o)
    dash_syn = net.dash_syn[None]
    dash_mem = net.dash_mem[None]
    bias = net.bias[None] if net.has_bias else np.zeros((1, h), np.int64)
    bias_o = net.bias_out[None] if net.has_bias else np.zeros((1, k), np.int64)
    i_syn = np.zeros((b, h, s), np.int64)
    v = np.zeros((b, h), np.int64)
    n_prev = np.zeros((b, h), np.int64)
    i_o = np.zeros((b, k, 1), np.int64)
    v_o = np.zeros((b, k), np.int64)
    rec: dict[str, list[np.ndarray]] = {name: [] for name in ("n", "no", "i", "v", "io", "vo")}
    sat = {"hidden": 0, "output": 0, "synapse": 0}
    xs = np.minimum(x.astype(np.int64), MAX_IN_SPIKES)
    for t in range(t_steps):
        k_rec = np.minimum(n_prev, MAX_HIDDEN_SPIKES)
        counts = np.concatenate([xs[:, t], k_rec], axis=1)
        flat = i_syn.reshape(b, h * s)
        new, n_sat = _deliver(flat, counts, ws_src)
        i_o_new, n_sat_o = _deliver(i_o[:, :, 0], k_rec, ws_o)
        sat["synapse"] += n_sat + n_sat_o
        i_syn, v, n = _evolve(
            new.reshape(b, h, s), v, dash_syn, dash_mem, bias, net.threshold[None], MAX_HIDDEN_SPIKES, sat, "hidden"
        )
        i_o, v_o, n_o = _evolve(
            i_o_new[:, :, None],
            v_o,
            net.dash_syn_out[None, :, None],
            net.dash_mem_out[None],
            bias_o,
            net.threshold_out[None],
            MAX_OUT_SPIKES,
            sat,
            "output",
        )
        n_prev = n
        for name, val in (("n", n), ("no", n_o), ("i", i_syn), ("v", v), ("io", i_o[:, :, 0]), ("vo", v_o)):
            rec[name].append(val)

    def stack(name: str, shape: tuple[int, ...]) -> np.ndarray:
        return np.stack(rec[name], axis=1) if rec[name] else np.zeros(shape, np.int64)

    return XyloRun(
        spikes=stack("n", (b, 0, h)),
        spikes_out=stack("no", (b, 0, k)),
        i_syn=stack("i", (b, 0, h, s)),
        v_mem=stack("v", (b, 0, h)),
        i_syn_out=stack("io", (b, 0, k)),
        v_mem_out=stack("vo", (b, 0, k)),
        saturated=sat,
    )
