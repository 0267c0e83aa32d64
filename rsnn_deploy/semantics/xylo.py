"""``xylo-bitshift``: SynSense Xylo's integer step (bit-shift decays, 16-bit saturating state), as xylosim computes it.

Why it is here: every consumer asks the semantics registry what a profile's step is; Xylo's step is
one entry like Loihi's, although it steps its own network type (``network = "XyloNetwork"``,
:class:`rsnn_deploy.xylo.network.XyloNetwork`) and its profiles have their own schema and loader
(``profile_loader``). One step ``t`` (read from xylosim 0.1.3 ``src/v2/cpp``, in its order)::

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
:func:`deliver` takes the fast path (one matrix product) wherever no partial sum can leave the
16-bit range, and adds source by source, in order, only for the synapses where one could.

The step's input ``q`` is the input spike *counts* of the step ``[B, C]``, not a summed current as
for Loihi: the per-source saturation needs the counts. This module and its profile schema
(:mod:`.xylo_profile`) import nothing from :mod:`rsnn_deploy.xylo` (that package builds on this entry).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from rsnn_deploy.errors import UnsupportedError
from rsnn_deploy.semantics._base import Semantics
from rsnn_deploy.semantics.xylo_profile import XYLO_PROFILES, load_xylo_profile

if TYPE_CHECKING:
    from rsnn_deploy.semantics.xylo_profile import XyloProfile
    from rsnn_deploy.xylo.network import XyloNetwork

__all__ = [
    "BUILTIN_PROFILES",
    "SEMANTICS",
    "XyloParams",
    "XyloState",
    "bitshift_decay",
    "deliver",
    "initial_state",
    "params",
    "xylo_step",
]

BUILTIN_PROFILES: tuple[str, ...] = XYLO_PROFILES
# xylosim's MAX_NUM_INP_SPIKES / MAX_NUM_SPIKES / MAX_NUM_OUT_SPIKES (the profiles' [spikes] table)
MAX_IN_SPIKES, MAX_HIDDEN_SPIKES, MAX_OUT_SPIKES = 15, 31, 1
S16_MIN, S16_MAX = -(1 << 15), (1 << 15) - 1
OVERFLOW_NAMES = ("synapse", "hidden", "output")


class XyloParams(NamedTuple):
    """The step's integers, laid out for it: weights as arriving increments, sources x targets."""

    w_src: tuple[np.ndarray, np.ndarray, np.ndarray]  # :func:`split` of [C + H, H * S] (inputs, then hidden)
    w_out: tuple[np.ndarray, np.ndarray, np.ndarray]  # :func:`split` of [H, K]
    dash_syn: np.ndarray  # [1, H, S]
    dash_mem: np.ndarray  # [1, H]
    dash_syn_out: np.ndarray  # [1, K, 1]
    dash_mem_out: np.ndarray  # [1, K]
    bias: np.ndarray  # [1, H]
    bias_out: np.ndarray  # [1, K]
    threshold: np.ndarray  # [1, H]
    threshold_out: np.ndarray  # [1, K]
    n_synapses: int
    max_in: int
    max_hidden: int
    max_out: int


class XyloState(NamedTuple):
    """Batch-first state; ``spikes`` are this step's hidden counts (the next step's recurrent input)."""

    i_syn: np.ndarray  # [B, H, S]
    v: np.ndarray  # [B, H]
    i_out: np.ndarray  # [B, K]
    v_out: np.ndarray  # [B, K]
    spikes_out: np.ndarray  # [B, K]
    spikes: np.ndarray  # [B, H]
    overflow: np.ndarray  # 3 counters: entries saturated in the synapses, hidden neurons, output neurons


def sat16(x: np.ndarray) -> np.ndarray:
    return np.clip(x, S16_MIN, S16_MAX)


def wrap16(x: np.ndarray) -> np.ndarray:
    return ((x + (1 << 15)) & 0xFFFF) - (1 << 15)


def bitshift_decay(v: np.ndarray, dash: np.ndarray) -> np.ndarray:
    """``v >> dash``, or ``sign(v)`` where that is 0 (xylosim's ``decay``)."""
    dv = v >> dash
    return np.where(dv == 0, np.sign(v), dv)


def split(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``w`` with its positive and negative parts as float64, for :func:`deliver`."""
    return w, np.maximum(w, 0).astype(np.float64), np.minimum(w, 0).astype(np.float64)


def deliver(
    state: np.ndarray, counts: np.ndarray, ws: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> tuple[np.ndarray, int]:
    """``state [B, N] = sat16(... sat16(state + k_0 w_0) ... + k_P w_P)`` for counts [B, P], w [P, N]
    (``ws`` = :func:`split` of w).

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
        val = sat16(val + sub[:, j] * w[j, ni])
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
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Decay the synapses, integrate, spike. ``i_syn`` [B, N, S], ``v`` [B, N]; last: saturated entries."""
    i_syn = i_syn - bitshift_decay(i_syn, dash_syn)
    dv_raw = wrap16(-bitshift_decay(v, dash_mem)) + i_syn.sum(axis=2)
    dv = sat16(dv_raw)
    dv2 = sat16(dv + bias)
    v_raw = v + dv2
    v_new = sat16(v_raw)
    n_sat = int(np.count_nonzero((dv_raw != dv) | (dv + bias != dv2) | (v_raw != v_new)))
    n = np.where(v_new >= threshold, np.minimum(v_new // threshold, max_spikes), 0)
    return i_syn, v_new - n * threshold, n, n_sat


def xylo_step(
    state: XyloState, q: np.ndarray, p: XyloParams, out: XyloState | None = None
) -> tuple[np.ndarray, XyloState]:
    """One Xylo step on input spike counts ``q`` [B, C] (non-negative integers); returns the hidden
    counts and the new state (``out`` is accepted for the registry's signature; a new state is built)."""
    b, h = state.v.shape
    s = p.n_synapses
    k_rec = np.minimum(state.spikes, p.max_hidden)
    counts = np.concatenate([np.minimum(np.asarray(q, np.int64), p.max_in), k_rec], axis=1)
    new, n_sat = deliver(state.i_syn.reshape(b, h * s), counts, p.w_src)
    i_o_new, n_sat_o = deliver(state.i_out, k_rec, p.w_out)
    i_syn, v, n, sat_h = _evolve(
        new.reshape(b, h, s), state.v, p.dash_syn, p.dash_mem, p.bias, p.threshold, p.max_hidden
    )
    i_o, v_o, n_o, sat_o = _evolve(
        i_o_new[:, :, None], state.v_out, p.dash_syn_out, p.dash_mem_out, p.bias_out, p.threshold_out, p.max_out
    )
    overflow = state.overflow + np.array([n_sat + n_sat_o, sat_h, sat_o], dtype=np.int64)
    return n, XyloState(i_syn, v, i_o[:, :, 0], v_o, n_o, n, overflow)


def params(net: XyloNetwork, profile: XyloProfile | None = None) -> XyloParams:
    """The step's parameters for ``net``; the spike caps come from ``profile`` (xylosim's when None)."""
    h, k, s = net.n_hidden, net.n_out, net.n_synapses
    w_src = np.concatenate(
        [
            wrap16(net.w_in << net.shift_in).reshape(net.n_in, h * s),
            wrap16(net.w_rec << net.shift_rec).reshape(h, h * s),
        ]
    )
    caps = profile.spikes if profile is not None else None
    return XyloParams(
        w_src=split(w_src),
        w_out=split(wrap16(net.w_out << net.shift_out)),
        dash_syn=net.dash_syn[None],
        dash_mem=net.dash_mem[None],
        dash_syn_out=net.dash_syn_out[None, :, None],
        dash_mem_out=net.dash_mem_out[None],
        bias=net.bias[None] if net.has_bias else np.zeros((1, h), np.int64),
        bias_out=net.bias_out[None] if net.has_bias else np.zeros((1, k), np.int64),
        threshold=net.threshold[None],
        threshold_out=net.threshold_out[None],
        n_synapses=s,
        max_in=caps.max_per_input_step if caps else MAX_IN_SPIKES,
        max_hidden=caps.max_per_hidden_step if caps else MAX_HIDDEN_SPIKES,
        max_out=caps.max_per_output_step if caps else MAX_OUT_SPIKES,
    )


def initial_state(batch: int, n_hidden: int, dtype: type = np.int64, n_synapses: int = 2, n_out: int = 0) -> XyloState:
    """All-zero state (the core at rest)."""
    return XyloState(
        i_syn=np.zeros((batch, n_hidden, n_synapses), dtype),
        v=np.zeros((batch, n_hidden), dtype),
        i_out=np.zeros((batch, n_out), dtype),
        v_out=np.zeros((batch, n_out), dtype),
        spikes_out=np.zeros((batch, n_out), dtype),
        spikes=np.zeros((batch, n_hidden), dtype),
        overflow=np.zeros(3, dtype=np.int64),
    )


def _no_nengo(*_args: Any) -> XyloState:
    raise UnsupportedError("semantics 'xylo-bitshift': there is no nengo neuron type for Xylo's step")


SEMANTICS = Semantics(
    key="xylo-bitshift",
    short="xylo",
    description="SynSense Xylo (xylosim v2): bit-shift decays, int8 weights << shift, 16-bit saturating state, "
    "v >= th multi-spike with reset by subtraction, two synaptic currents",
    comparison=">=",
    q_overflow="saturate",
    overflow_names=OVERFLOW_NAMES,
    extra_state=("i_out", "v_out"),
    adaptation=(),
    refractory=False,
    voltage_floor=False,
    synapse=True,
    records_adaptation=False,
    params=params,
    initial_state=initial_state,
    step=xylo_step,
    state_from_signals=_no_nengo,
    native_ok=lambda p: False,
    chip_backend="xylosim",
    network="XyloNetwork",
    profile_loader=load_xylo_profile,
    builtin_profiles=BUILTIN_PROFILES,
)
