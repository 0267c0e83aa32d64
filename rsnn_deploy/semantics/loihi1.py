"""Semantics ``nengo-loihi-1.1``: nengo-loihi 1.1.0's emulator (profile ``loihi1``).

The integer step is :func:`loihi1_step` (numpy is the definition: ``emulator_kernels.c``
and the ONNX integer graph are tested against it). The object :data:`SEMANTICS` is this
module's one registry entry (:mod:`rsnn_deploy.semantics`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from rsnn_deploy.semantics._base import Semantics
from rsnn_deploy.semantics._int import _decay_into, _fresh_like, _outside, _wrap_counted, q_bound, wrap

if TYPE_CHECKING:
    from rsnn_deploy.hardware import HardwareProfile
    from rsnn_deploy.qnet import QuantizedNetwork

__all__ = ["SEMANTICS", "Loihi1Params", "Loihi1State", "loihi1_step"]


class Loihi1Params(NamedTuple):
    """Per-neuron integers of the ``loihi1`` step (all int64 ``[H]`` unless noted).

    decay_u, decay_v : decay registers (``decay_bits`` wide; u uses ``u_offset``, v ``v_offset``).
    bias : added to u (``u2 = wrap(u + bias)``).
    vth : effective threshold; spike when ``v > vth``.
    vmin, vmax : int, voltage clip range.
    refractory : nengo-loihi ``ref`` (1 = no extra step).
    q_bits, u_bits : int, magnitude bits of the wrap of q and of u / u2.
    wrap_q, wrap_u, wrap_u2, wrap_v32, has_refractory, clip_vmax : bool
        False when static facts prove the operation a no-op for this network (skipping
        it is exact); see :func:`params_for`. True is always correct.
    """

    decay_u: np.ndarray
    decay_v: np.ndarray
    bias: np.ndarray
    vth: np.ndarray
    vmin: int
    vmax: int
    refractory: np.ndarray
    q_bits: int = 21
    u_bits: int = 23
    wrap_q: bool = True
    wrap_u: bool = True
    wrap_u2: bool = True
    wrap_v32: bool = True
    has_refractory: bool = True
    clip_vmax: bool = True
    decay_bits: int = 12
    u_offset: int = 1
    v_offset: int = 0


class Loihi1State(NamedTuple):
    """State of ``loihi1`` after a step, ``[B, H]`` each; ``overflow`` counts wraps of (q, u, u2)."""

    u: np.ndarray
    v: np.ndarray
    ref_count: np.ndarray
    spikes: np.ndarray
    overflow: np.ndarray


def loihi1_step(
    state: Loihi1State, q: np.ndarray, p: Loihi1Params, out: Loihi1State | None = None
) -> tuple[np.ndarray, Loihi1State]:
    """One step of nengo-loihi 1.1.0's emulator (``CompartmentState.update``), batched.

    ``q`` is the synaptic input of this step: the sum of integer weights of all spikes
    arriving now (host input of step ``t - L``, hidden spikes of step ``t - 1``)::

        q  = wrap(q, 21)
        u  = wrap(decay_int(u, du, offset=1) + q, 23)
        u2 = wrap(u + bias, 23)
        v  = clip(decay_int(v, dv) + u2, vmin, vmax);  v[ref_count > 0] = 0
        z  = v > vth;  v[z] = 0;  ref_count[z] = ref;  ref_count = max(ref_count - 1, 0)

    nengo-loihi keeps v in int32; the cast only matters for floors below
    ``-2**31 + 2**23`` and is reproduced (``wrap_v32``). Noise is not modelled
    (nengo-loihi only enables it on request).

    Parameters
    ----------
    out : Loihi1State, optional
        Buffers for the new state (may be ``state`` itself, to update in place, as
        :func:`run` does). By default a new state is allocated and ``state`` is untouched.

    Returns
    -------
    spikes : bool ndarray [B, H]
        ``out.spikes``.
    state : Loihi1State
    """
    if out is None:
        out = Loihi1State(*_fresh_like(state))
    elif out.overflow is not state.overflow:
        out.overflow[:] = state.overflow
    over = out.overflow
    scratch = out.spikes  # bool [B, H], free until the spikes are computed
    q = np.asarray(q)
    if p.wrap_q:
        q, n = _wrap_counted(q, p.q_bits)
        over[0] += n
    _decay_into(state.u, p.decay_u, p.u_offset, out.u, bits=p.decay_bits)
    np.add(out.u, q, out=out.u)
    half = 1 << p.u_bits
    bmin, bmax = int(p.bias.min()), int(p.bias.max())
    u2 = None
    # one range check covers both wraps: inside it neither u nor u + bias can leave 24 bits
    lo = max(-half if p.wrap_u else -(1 << 62), -half - bmin if p.wrap_u2 else -(1 << 62))
    hi = min(half - 1 if p.wrap_u else 1 << 62, half - 1 - bmax if p.wrap_u2 else 1 << 62)
    if (p.wrap_u or p.wrap_u2) and _outside(out.u, lo, hi):
        if p.wrap_u:
            u, n = _wrap_counted(out.u, p.u_bits)
            if n:
                out.u[...] = u
                over[1] += n
        if p.wrap_u2:
            u2, n = _wrap_counted(out.u + p.bias, p.u_bits)
            over[2] += n
    _decay_into(state.v, p.decay_v, p.v_offset, out.v, signed=p.vmin < 0, bits=p.decay_bits)
    if u2 is None:
        np.add(out.v, out.u, out=out.v)
        if bmin or bmax:
            np.add(out.v, p.bias, out=out.v)
    else:
        np.add(out.v, u2, out=out.v)
    if p.wrap_v32:
        out.v[...] = wrap(out.v, 31)
    np.maximum(out.v, p.vmin, out=out.v)
    # Above vmax > vth a neuron spikes and resets either way: the ceiling only matters
    # where a threshold is not below it (then v must stay at vmax without spiking).
    if p.clip_vmax and int(out.v.max(initial=p.vmax)) > p.vmax:
        np.minimum(out.v, p.vmax, out=out.v)
    if p.has_refractory:
        np.greater(state.ref_count, 0, out=scratch)
        np.putmask(out.v, scratch, 0)
    spikes = out.spikes
    np.greater(out.v, p.vth, out=spikes)
    np.putmask(out.v, spikes, 0)  # putmask: ufunc where= masks are ~10x slower on random masks
    if p.has_refractory:
        np.copyto(out.ref_count, np.where(spikes, p.refractory, state.ref_count))
        np.subtract(out.ref_count, 1, out=out.ref_count)
        np.maximum(out.ref_count, 0, out=out.ref_count)
    return spikes, out


def params(qnet: QuantizedNetwork, profile: HardwareProfile) -> Loihi1Params:
    """The step parameters of ``qnet`` under ``profile`` (see :func:`rsnn_deploy.emulator.params_for`).

    Wraps that static bounds prove to be no-ops are switched off, and so is the refractory
    bookkeeping when every ``ref <= 1`` (then ``ref_count`` stays 0) and the ceiling clip
    when every ``vth < vmax`` (a voltage above vmax spikes and resets to 0 with or without
    the clip); skipping a no-op is exact.
    """
    st = profile.state
    qb = q_bound(qnet)
    wrap_q = bool(qb.max() >= (1 << st.q_bits))
    q_eff = np.minimum(qb, 1 << st.q_bits)
    # |u_t| <= r/2^bits |u_{t-1}| + |q|  =>  |u| <= |q| * 2^bits / (2^bits - r), r = 2^bits - offset - du
    one = 1 << profile.decay.bits
    leak = profile.decay.u_offset + qnet.decay_u
    u_bound = np.where(leak > 0, -((-q_eff * one) // np.maximum(leak, 1)), 1 << 62)
    wrap_u = bool(u_bound.max() >= (1 << st.u_bits))
    u_lim = np.minimum(u_bound, 1 << st.u_bits)
    wrap_u2 = bool((u_lim + np.abs(qnet.bias)).max() >= (1 << st.u_bits))
    wrap_v32 = qnet.vmin - (1 << st.u_bits) < -(1 << 31)
    return Loihi1Params(
        decay_u=qnet.decay_u,
        decay_v=qnet.decay_v,
        bias=qnet.bias,
        vth=qnet.vth,
        vmin=qnet.vmin,
        vmax=qnet.vmax,
        refractory=qnet.refractory,
        q_bits=st.q_bits,
        u_bits=st.u_bits,
        wrap_q=wrap_q,
        wrap_u=wrap_u,
        wrap_u2=wrap_u2,
        wrap_v32=wrap_v32,
        has_refractory=bool(qnet.refractory.max() > 1),
        clip_vmax=bool(qnet.vth.max() >= qnet.vmax),
        decay_bits=profile.decay.bits,
        u_offset=profile.decay.u_offset,
        v_offset=profile.decay.v_offset,
    )


def initial_state(batch: int, n_hidden: int, dtype: type = np.int64) -> Loihi1State:
    """All-zero state (the chip at rest); ``ref_count`` is always int64."""
    z: np.ndarray = np.zeros((batch, n_hidden), dtype=dtype)
    s = np.zeros((batch, n_hidden), dtype=bool)
    rc = np.zeros((batch, n_hidden), dtype=np.int64)
    return Loihi1State(u=z, v=z.copy(), ref_count=rc, spikes=s, overflow=np.zeros(3, dtype=np.int64))


def state_from_signals(
    u: np.ndarray,
    v: np.ndarray,
    adaptation: np.ndarray,
    ref_count: np.ndarray,
    spikes: np.ndarray,
    overflow: np.ndarray,
) -> Loihi1State:
    """A state viewing a nengo neuron type's signals (``adaptation`` is unused: loihi1 has none)."""
    return Loihi1State(u, v, ref_count, spikes, overflow)


def native_ok(p: Loihi1Params) -> bool:
    """Whether ``emulator_kernels.c`` covers a run with ``p``: the wraps of q and u, the refractory
    bookkeeping and the voltage ceiling proven no-ops (see :func:`params`), 12-bit decays with
    offsets 1/0; the int32 wrap of v (networks without a voltage floor) is in the C loop too."""
    if p.wrap_q or p.wrap_u or p.wrap_u2 or p.has_refractory or p.clip_vmax:
        return False
    return (p.decay_bits, p.u_offset, p.v_offset) == (12, 1, 0)


SEMANTICS = Semantics(
    key="nengo-loihi-1.1",
    short="loihi1",
    description="nengo-loihi 1.1.0's emulator: q and u wrap, v > vth resets to 0, refractory counter, voltage floor",
    comparison=">",
    q_overflow="wrap",
    overflow_names=("q", "u", "u2"),
    extra_state=("ref",),
    adaptation=(),
    refractory=True,
    voltage_floor=True,
    synapse=True,
    records_adaptation=False,
    params=params,
    initial_state=initial_state,
    step=loihi1_step,
    state_from_signals=state_from_signals,
    native_ok=native_ok,
    native=True,
    chip_backend="nengo-loihi",
    deploy_backends=("nengo-loihi",),
    u_decay_never_max=True,
    anchor_input=True,
)
