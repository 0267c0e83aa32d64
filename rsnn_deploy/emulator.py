"""Bit-exact integer emulation of each hardware profile, batched over samples.

The integer step of each profile is written once, as a pure function over typed state
(NamedTuples, like Norse's ``lif_step``): :func:`loihi1_step` and :func:`loihi2_step`.
:func:`run` applies them to a whole batch at once and returns a
:class:`~rsnn_deploy.trace.Trace`.

How :func:`run` stays exact and fast
------------------------------------
- Spikes times integer weights go through BLAS: one GEMM per step,
  ``[hidden spikes of t-1 | input spikes] @ [w_rec.T ; w_in.T]``, in float32 when every
  possible sum stays below 2**24 (exact with a 24-bit mantissa), else float64 (2**53).
- States are float64 arrays holding integers (the steps accept int64 too): a decay is then
  ``trunc(x * (r / 4096))``, exact because ``r / 4096`` is dyadic and ``|x| * r < 2**53``.
  Wraps go through int64 on the rare steps a cheap min/max check says they are needed.
- Operations that static facts prove to be no-ops are skipped (:func:`params_for`).
- On small shared machines one BLAS thread is faster (``OPENBLAS_NUM_THREADS=1``).

Alignment contract
------------------
The float model sees ``x[t]`` at step ``t``. The hardware delivers a host input spike
``input_latency`` steps later. :func:`run` therefore feeds ``x[k]`` at chip step
``k`` (so it reaches ``q`` at chip step ``k + L``), runs ``T + L`` chip steps and drops
the first ``L``: trace step ``t`` is chip step ``t + L``, the step that integrates
``x[t]``. The ``L`` dropped steps are real hardware steps without input: the bias and
the recurrence already act during them (only a network with zero bias starts them, and
hence trace step 0, from rest).

Overflow
--------
Wrap-around is reproduced exactly. ``strict=False`` (nengo-loihi's default in its
emulator) counts the neuron-steps that wrapped, returns them in ``Trace.overflow`` and
warns once; ``strict=True`` raises :class:`EmulatorOverflowError` at the first one.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from rsnn_deploy.errors import RsnnError, ValidationError
from rsnn_deploy.hardware import HardwareProfile, load_profile
from rsnn_deploy.qnet import QuantizedNetwork
from rsnn_deploy.trace import Trace, host_readout

__all__ = [
    "EmulatorOverflowError",
    "Loihi1Params",
    "Loihi1State",
    "Loihi2Params",
    "Loihi2State",
    "decay_int",
    "initial_state",
    "loihi1_step",
    "loihi2_step",
    "params_for",
    "run",
    "wrap",
    "wrap_lava",
]


class EmulatorOverflowError(RsnnError, ArithmeticError):
    """``strict=True``: a state left its word width and the hardware would wrap it."""


# ----------------------------------------------------------------------------- integer helpers


def decay_int(x: np.ndarray, decay: np.ndarray | int, offset: int = 0, bits: int = 12) -> np.ndarray:
    """Integer leak ``sign(x) * ((|x| * (2**bits - offset - decay)) >> bits)``.

    Identical to ``nengo_loihi.builder.discretize.decay_int`` and to the decays in Lava's
    ``PyLifModelBitAcc`` / ``PyATRLIFModelFixed`` (rounding toward zero, in int64 so the
    product of a 24-bit state and a 13-bit factor cannot overflow).
    """
    r = (1 << bits) - offset - np.asarray(decay, dtype=np.int64)
    x = np.asarray(x, dtype=np.int64)
    mag = (np.abs(x) * r) >> bits
    return np.where(x < 0, -mag, mag)


def wrap(x: np.ndarray, bits: int) -> np.ndarray:
    """Two's-complement wrap into ``[-2**bits, 2**bits)`` (nengo-loihi ``overflow_signed``)."""
    x = np.asarray(x, dtype=np.int64)
    half = 1 << bits
    return ((x + half) & ((half << 1) - 1)) - half


def wrap_lava(x: np.ndarray, bits: int) -> np.ndarray:
    """Lava's current wrap, literally: ``x > 2**b -> x - 2**(b+1)``; ``x <= -2**b -> x + 2**(b+1)``.

    Unlike two's complement it keeps ``+2**b`` and maps ``-2**b`` to ``+2**b`` (range
    ``(-2**b, 2**b]``), and it wraps once only (enough, since Lava's input is 16-bit).
    """
    x = np.asarray(x, dtype=np.int64)
    m = 1 << bits
    out = np.where(x > m, x - 2 * m, x)
    return np.where(out <= -m, x + 2 * m, out)


# ----------------------------------------------------------------------------- shared kernels


def _decay_into(
    x: np.ndarray, decay: np.ndarray, offset: int, out: np.ndarray, signed: bool = True, bits: int = 12
) -> None:
    """``out = decay_int(x, decay, offset, bits)``; ``out`` may be ``x`` itself.

    float64 states (holding integers, as :func:`run` keeps them): ``trunc(x * (r / 2**bits))``,
    exact because ``r / 2**bits`` is a dyadic fraction and ``|x| * r < 2**53``; truncation
    toward zero is ``sign(x) * floor(|x| * r / 2**bits)``. int64 states: shifts;
    ``signed=False`` declares ``x >= 0`` and skips the sign handling.
    """
    r = (1 << bits) - offset - decay
    if out.dtype.kind == "f":
        np.multiply(x, r / float(1 << bits), out=out)
        np.trunc(out, out=out)
    elif not signed:
        np.multiply(x, r, out=out)
        np.right_shift(out, bits, out=out)
    else:
        mag = (np.abs(x) * r) >> bits
        np.copyto(out, np.where(x < 0, -mag, mag))  # not negative(where=): masked ufuncs are slow


def _outside(x: np.ndarray, low: int, high: int) -> bool:
    """Whether any entry lies outside ``[low, high]`` (two reductions, no temporaries)."""
    return bool(x.size) and (int(x.min()) < low or int(x.max()) > high)


def _clip_into(x: np.ndarray, low: int, high: int) -> None:
    """``np.clip(x, low, high, out=x)``, touching only the sides that need it (numpy's clip is slow)."""
    if x.size and int(x.min()) < low:
        np.maximum(x, low, out=x)
    if x.size and int(x.max()) > high:
        np.minimum(x, high, out=x)


def _wrap_counted(x: np.ndarray, bits: int) -> tuple[np.ndarray, int]:
    """``wrap(x, bits)`` and how many entries it changed; returns ``x`` itself when nothing wraps."""
    half = 1 << bits
    if not _outside(x, -half, half - 1):
        return x, 0
    w = wrap(x, bits)
    return w, int(np.count_nonzero(w != x))


def _fresh_like(state: tuple[np.ndarray, ...]) -> list[np.ndarray]:
    return [np.zeros_like(a) for a in state[:-1]] + [state[-1].copy()]


# ----------------------------------------------------------------------------- loihi1


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


# ----------------------------------------------------------------------------- loihi2


class Loihi2Params(NamedTuple):
    """Per-neuron integers of the ``loihi2`` step (int64 ``[H]`` unless noted).

    decay_u, decay_v, decay_theta, decay_r : decay registers (Lava's du/dv, ATRLIF's
        delta_i/delta_v/delta_theta/delta_r times 4096); offsets from the profile (1, 0, 0, 0).
    bias : Lava's ``bias_mant << bias_exp``, added to v.
    vth : LIF ``vth << 6``, or ATRLIF's ``theta_0 << 6``.
    theta_step : ATRLIF's ``theta_step << 6`` (0 for LIF).
    vmin, vmax : int, voltage clip (Lava: ``-(2**23 - 1)``, ``2**23 - 1``).
    u_bits, theta_bits : magnitude bits of u (wrapped) and of theta / r (checked only).
    q_bits : magnitude bits of q including Lava's ``<< 6`` of its 16-bit a_in (checked only).
    atrlif : bool, run ``PyATRLIFModelFixed`` instead of ``PyLifModelBitAcc``.
    decay_bits, offsets : the profile's decay rule (``decay.bits``; u, v, theta, r offsets).
    """

    decay_u: np.ndarray
    decay_v: np.ndarray
    decay_theta: np.ndarray
    bias: np.ndarray
    vth: np.ndarray
    theta_step: np.ndarray
    vmin: int
    vmax: int
    u_bits: int = 23
    theta_bits: int = 23
    q_bits: int = 21
    atrlif: bool = False
    decay_r: np.ndarray | None = None
    decay_bits: int = 12
    offsets: tuple[int, int, int, int] = (1, 0, 0, 0)


class Loihi2State(NamedTuple):
    """State of ``loihi2``, ``[B, H]`` each: ``theta`` is ATRLIF's ``theta - theta_0``, ``r`` its
    refractory state (both stay 0 for LIF); overflow counts (q, u, theta)."""

    u: np.ndarray
    v: np.ndarray
    theta: np.ndarray
    r: np.ndarray
    spikes: np.ndarray
    overflow: np.ndarray


def loihi2_step(
    state: Loihi2State, q: np.ndarray, p: Loihi2Params, out: Loihi2State | None = None
) -> tuple[np.ndarray, Loihi2State]:
    """One step of Lava's ``PyLifModelBitAcc`` (LIF) or ``PyATRLIFModelFixed`` (``p.atrlif``), batched.

    ``q`` is Lava's ``a_in << 6`` (the integer weights already include the shift). Both share
    (decays ``decay_int`` with the profile's bits and offsets, Lava: 12 bits, 1 for u, 0 else)::

        u     = wrap_lava(decay_int(u, du, offset=1) + q, 23)
        v     = clip(decay_int(v, dv) + u + bias, -(2**23 - 1), 2**23 - 1)

    LIF then spikes on ``v > vth`` (strict) and resets ``v = 0``. ATRLIF (``theta`` here is
    Lava's ``theta - theta_0``; ``vth`` is ``theta_0 << 6``)::

        theta = decay_int(theta, dtheta);   r = decay_int(r, dr)
        z     = v - r >= vth + theta
        r[z] += 2 * (vth + theta);  theta[z] += theta_step        # v is not reset

    Lava neither wraps nor clips theta and r ("TODO do clipping here?") and does not
    limit its 16-bit a_in; neither do we, but ``overflow`` counts neuron-steps where
    ``vth + theta`` or ``r`` leaves 24 bits, or ``q >> 6`` leaves 16 bits. No refractory
    period (``PyLifModelBitAcc`` lists it as missing). Every product is exact int64 (or
    exact float64, see :func:`_decay_into`). ``out`` works as in :func:`loihi1_step`.
    """
    if out is None:
        out = Loihi2State(*_fresh_like(state))
    elif out.overflow is not state.overflow:
        out.overflow[:] = state.overflow
    over = out.overflow
    bits = p.decay_bits
    off_u, off_v, off_t, off_r = p.offsets
    q = np.asarray(q)
    qlim = 1 << p.q_bits
    if _outside(q, -qlim, qlim - 1):
        over[0] += int(np.count_nonzero((q >= qlim) | (q < -qlim)))
    _decay_into(state.u, p.decay_u, off_u, out.u, bits=bits)
    np.add(out.u, q, out=out.u)
    m = 1 << p.u_bits
    if _outside(out.u, -m + 1, m):
        u = wrap_lava(out.u, p.u_bits)
        over[1] += int(np.count_nonzero(u != out.u))
        out.u[...] = u
    _decay_into(state.v, p.decay_v, off_v, out.v, bits=bits)
    np.add(out.v, out.u, out=out.v)
    np.add(out.v, p.bias, out=out.v)
    _clip_into(out.v, p.vmin, p.vmax)
    spikes = out.spikes
    if not p.atrlif:
        np.greater(out.v, p.vth, out=spikes)
        np.putmask(out.v, spikes, 0)
        return spikes, out
    _decay_into(state.theta, p.decay_theta, off_t, out.theta, bits=bits)
    np.add(out.theta, p.vth, out=out.theta)  # absolute threshold (Lava's theta)
    decay_r = p.decay_r if p.decay_r is not None else np.zeros_like(p.decay_theta)
    _decay_into(state.r, decay_r, off_r, out.r, bits=bits)
    np.greater_equal(out.v - out.r, out.theta, out=spikes)
    np.add(out.r, 2 * out.theta * spikes, out=out.r)
    np.add(out.theta, spikes * p.theta_step, out=out.theta)
    tlim = (1 << p.theta_bits) - 1
    if int(out.theta.max(initial=0)) > tlim or int(out.r.max(initial=0)) > tlim:
        over[2] += int(np.count_nonzero(out.theta > tlim) + np.count_nonzero(out.r > tlim))
    np.subtract(out.theta, p.vth, out=out.theta)
    return spikes, out


# ----------------------------------------------------------------------------- run


def _q_bound(qnet: QuantizedNetwork) -> np.ndarray:
    """Largest |q| each neuron can receive in one step (all positive or all negative inputs at once)."""
    pos = np.maximum(qnet.w_in, 0).sum(axis=1)
    neg = -np.minimum(qnet.w_in, 0).sum(axis=1)
    if qnet.w_rec is not None:
        pos = pos + np.maximum(qnet.w_rec, 0).sum(axis=1)
        neg = neg - np.minimum(qnet.w_rec, 0).sum(axis=1)
    return np.maximum(pos, neg)


def params_for(qnet: QuantizedNetwork, profile: HardwareProfile) -> Loihi1Params | Loihi2Params:
    """The step parameters of ``qnet`` under ``profile``'s semantics.

    For ``loihi1``, wraps that static bounds prove to be no-ops are switched off, and so
    is the refractory bookkeeping when every ``ref <= 1`` (then ``ref_count`` stays 0)
    and the ceiling clip when every ``vth < vmax`` (a voltage above vmax spikes and
    resets to 0 with or without the clip); skipping a no-op is exact.
    """
    if profile.semantics == "nengo-loihi-1.1":
        st = profile.state
        qb = _q_bound(qnet)
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
    h = qnet.n_hidden
    zeros = np.zeros(h, dtype=np.int64)
    dec = profile.decay
    return Loihi2Params(
        decay_u=qnet.decay_u,
        decay_v=qnet.decay_v,
        decay_theta=qnet.decay_theta if qnet.decay_theta is not None else zeros,
        bias=qnet.bias,
        vth=qnet.vth,
        theta_step=qnet.theta_step if qnet.theta_step is not None else zeros,
        vmin=qnet.vmin,
        vmax=qnet.vmax,
        u_bits=profile.state.u_bits,
        theta_bits=profile.state.theta_bits,
        q_bits=profile.state.q_bits,
        atrlif=qnet.is_atrlif,
        decay_r=qnet.decay_r if qnet.decay_r is not None else zeros,
        decay_bits=dec.bits,
        offsets=(dec.u_offset, dec.v_offset, dec.theta_offset, dec.r_offset),
    )


def initial_state(
    profile: HardwareProfile, batch: int, n_hidden: int, dtype: type = np.int64
) -> Loihi1State | Loihi2State:
    """All-zero state (the chip at rest) for ``batch`` samples.

    ``dtype`` of u, v, theta: int64, or float64 holding integers (exact below 2**40 and
    faster, as :func:`run` uses it); ``ref_count`` is always int64.
    """
    z = np.zeros((batch, n_hidden), dtype=dtype)
    s = np.zeros((batch, n_hidden), dtype=bool)
    over = np.zeros(3, dtype=np.int64)
    if profile.semantics == "nengo-loihi-1.1":
        rc = np.zeros((batch, n_hidden), dtype=np.int64)
        return Loihi1State(u=z, v=z.copy(), ref_count=rc, spikes=s, overflow=over)
    return Loihi2State(u=z, v=z.copy(), theta=z.copy(), r=z.copy(), spikes=s, overflow=over)


_OVERFLOW_NAMES = {"nengo-loihi-1.1": ("q", "u", "u2"), "lava-lif-atrlif": ("q", "u", "theta")}


def _resolve_profile(qnet: QuantizedNetwork, profile: HardwareProfile | str | None) -> HardwareProfile:
    prof = profile if isinstance(profile, HardwareProfile) else load_profile(profile or qnet.profile)
    if prof.name != qnet.profile:
        raise ValidationError(
            f"run.profile: network was quantized for {qnet.profile!r} (got {prof.name!r}); "
            f"re-quantize with --profile {prof.name}"
        )
    return prof


def _check_spikes(spikes_in: np.ndarray, n_inputs: int) -> np.ndarray:
    x = np.asarray(spikes_in)
    if x.ndim != 3 or x.shape[2] != n_inputs:
        raise ValidationError(f"run.spikes_in: must be [B, T, {n_inputs}] (got shape {x.shape})")
    if x.dtype != np.bool_:
        if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
            raise ValidationError(f"run.spikes_in: must be bool or 0/1 (got dtype {x.dtype})")
        if x.size and (x.min() < 0 or x.max() > 1 or (np.issubdtype(x.dtype, np.floating) and np.any(x % 1))):
            raise ValidationError(f"run.spikes_in: must hold only 0 and 1 (got values in [{x.min()}, {x.max()}])")
    return x


def _native_loihi1_ok(prof: HardwareProfile, p: Loihi1Params | Loihi2Params) -> bool:
    """Whether the C loop (``emulator_kernels.c``) covers this run: loihi1 with the wraps of q and u,
    the refractory bookkeeping and the voltage ceiling proven no-ops (see :func:`params_for`); the
    int32 wrap of v (networks without a voltage floor) is in the C loop too."""
    if prof.semantics != "nengo-loihi-1.1" or not isinstance(p, Loihi1Params):
        return False
    if p.wrap_q or p.wrap_u or p.wrap_u2 or p.has_refractory or p.clip_vmax:
        return False
    if (p.decay_bits, p.u_offset, p.v_offset) != (12, 1, 0):  # the C loop implements 12-bit decays, offsets 1/0
        return False
    from rsnn_deploy import native

    return native.enabled()


# Per network and profile: the step parameters and the C loop's arrays. A QuantizedNetwork is
# frozen and its arrays are read-only, so both stay valid as long as the network lives; a host
# loop calling run() per sample then pays neither the bounds of params_for nor the conversions.
_PREPARED: weakref.WeakKeyDictionary[QuantizedNetwork, dict[object, object]] = weakref.WeakKeyDictionary()


def _prepared(qnet: QuantizedNetwork, prof: HardwareProfile, what: str, make: Callable[[], Any]) -> Any:
    try:
        per = _PREPARED.setdefault(qnet, {})
    except TypeError:  # not weak-referenceable: compute every time
        return make()
    key = (what, prof.sha256 or id(prof), prof.semantics)
    if key not in per:
        per[key] = make()
    return per[key]


def _native_loihi1(qnet: QuantizedNetwork, x: np.ndarray, p: Loihi1Params, prof: HardwareProfile) -> np.ndarray:
    from rsnn_deploy import native

    def i64(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a, dtype=np.int64)

    def i32(a: np.ndarray) -> np.ndarray:  # exact: |q| < 2**21 bounds every weight and every sum
        return np.ascontiguousarray(a, dtype=np.int32)

    def arrays() -> tuple:
        w_rec = i32(qnet.w_rec.T) if qnet.w_rec is not None else None
        return i32(qnet.w_in.T), w_rec, i64(p.decay_u), i64(p.decay_v), i64(p.bias), i64(p.vth)

    w_in_t, w_rec_t, decay_u, decay_v, bias, vth = _prepared(qnet, prof, "native", arrays)
    return native.loihi1_run(
        np.ascontiguousarray(x, dtype=np.uint8),
        w_in_t,
        w_rec_t,
        decay_u,
        decay_v,
        bias,
        vth,
        int(p.vmin),
        int(qnet.input_latency),
        bool(p.wrap_v32),
    )


def _numpy_run(
    qnet: QuantizedNetwork,
    x: np.ndarray,
    prof: HardwareProfile,
    params: Loihi1Params | Loihi2Params,
    record_states: bool,
    strict: bool,
    batch_chunk: int,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None, np.ndarray | None, np.ndarray]:
    """The chip loop in numpy, chunk by chunk: spikes, recorded states (u, v, theta, r, or None), wrap counts."""
    b, t_steps, _ = x.shape
    h = qnet.n_hidden
    lat = qnet.input_latency
    step = loihi1_step if prof.semantics == "nengo-loihi-1.1" else loihi2_step
    names = _OVERFLOW_NAMES[prof.semantics]
    spikes = np.zeros((b, t_steps, h), dtype=bool)
    cur = np.zeros((b, t_steps, h), dtype=np.int64) if record_states else None
    vol = np.zeros((b, t_steps, h), dtype=np.int64) if record_states else None
    has_theta = record_states and prof.semantics == "lava-lif-atrlif"
    ada = np.zeros((b, t_steps, h), dtype=np.int64) if has_theta else None
    has_r = has_theta and bool(getattr(params, "atrlif", False))
    refr = np.zeros((b, t_steps, h), dtype=np.int64) if has_r else None
    # Spike counts times integer weights are exact in float32 while every sum stays below 2**24
    # (a 24-bit mantissa), else in float64 (2**53); sgemm is about 4x faster than dgemm here.
    # One GEMM per step, [previous hidden spikes | input spikes] @ [w_rec.T ; w_in.T], keeps
    # every operand in cache (a precomputed [T, B, H] input drive is slower: page faults).
    ftype = np.float32 if int(_q_bound(qnet).max()) < (1 << 24) else np.float64
    n_rec = h if qnet.w_rec is not None else 0
    w_cat = np.zeros((n_rec + qnet.n_inputs, h), dtype=ftype)
    if qnet.w_rec is not None:
        w_cat[:h] = qnet.w_rec.T
    w_cat[n_rec:] = qnet.w_in.T
    total_over = np.zeros(3, dtype=np.int64)
    chunk = max(1, int(batch_chunk))

    for start in range(0, b, chunk):
        sl = slice(start, min(b, start + chunk))
        nb = sl.stop - sl.start
        xb = x[sl]
        state = initial_state(prof, nb, h, dtype=np.float64)
        s_buf = np.zeros((nb, n_rec + qnet.n_inputs), dtype=ftype)
        drive = np.zeros((nb, h), dtype=ftype)
        for n in range(t_steps + lat):
            k = n - lat  # the input step arriving now, and the trace step this chip step becomes
            if n_rec:
                np.copyto(s_buf[:, :n_rec], state.spikes)
            if 0 <= k < t_steps:
                np.copyto(s_buf[:, n_rec:], xb[:, k], casting="unsafe")
            elif k == t_steps:
                s_buf[:, n_rec:] = 0
            np.matmul(s_buf, w_cat, out=drive)  # q, exact: integral values
            prev_over = state.overflow.copy()
            z, state = step(state, drive, params, out=state)  # type: ignore[arg-type]
            if strict and np.any(state.overflow != prev_over):
                which = names[int(np.flatnonzero(state.overflow != prev_over)[0])]
                raise EmulatorOverflowError(
                    f"run.strict: {which} overflowed at chip step {n} (trace step {k}) of samples "
                    f"{sl.start}..{sl.stop - 1}; the hardware wraps it, the float model does not; "
                    "lower the weights or run with strict=False"
                )
            if k >= 0:
                spikes[sl, k] = z
                if record_states:
                    cur[sl, k] = state.u  # type: ignore[index]
                    vol[sl, k] = state.v  # type: ignore[index]
                    if ada is not None:
                        ada[sl, k] = state.theta  # type: ignore[union-attr]
                    if refr is not None:
                        refr[sl, k] = state.r  # type: ignore[union-attr]
        total_over += state.overflow

    return spikes, cur, vol, ada, refr, total_over


def run(
    qnet: QuantizedNetwork,
    spikes_in: np.ndarray,
    profile: HardwareProfile | str | None = None,
    record_states: bool = False,
    strict: bool = False,
    batch_chunk: int = 512,
) -> Trace:
    """Run ``qnet`` bit-exactly on a batch of input spike trains.

    Parameters
    ----------
    qnet : QuantizedNetwork
    spikes_in : ndarray [B, T, C], bool or 0/1
        Input spikes; ``x[b, t]`` is what the float model sees at step ``t``.
    profile : HardwareProfile, name, or None
        Defaults to the built-in profile named by ``qnet.profile``.
    record_states : bool
        Also return ``current`` (u), ``voltage`` (v after reset) and, for loihi2,
        ``adaptation`` (theta - theta_0) and, for ATRLIF networks, ``refractory`` (r), int64 ``[B, T, H]``.
    strict : bool
        Raise :class:`EmulatorOverflowError` on the first wrap instead of counting it.
    batch_chunk : int
        Samples processed together (bounds memory; ~512 keeps states in cache).

    Returns
    -------
    Trace
        Aligned with the float model (see the module docstring): ``T`` steps, hidden
        spikes, host readout and logits, wrap counts in ``overflow``.
    """
    prof = _resolve_profile(qnet, profile)
    x = _check_spikes(spikes_in, qnet.n_inputs)
    params = _prepared(qnet, prof, "params", lambda: params_for(qnet, prof))
    names = _OVERFLOW_NAMES[prof.semantics]
    if not record_states and _native_loihi1_ok(prof, params):
        spikes = _native_loihi1(qnet, x, params, prof)  # type: ignore[arg-type]
        cur = vol = ada = refr = None
        total_over = np.zeros(3, dtype=np.int64)  # wraps were proven impossible (params_for)
    else:
        spikes, cur, vol, ada, refr, total_over = _numpy_run(qnet, x, prof, params, record_states, strict, batch_chunk)
    overflow = {name: int(c) for name, c in zip(names, total_over, strict=True)}
    if any(overflow.values()):
        warnings.warn(
            f"emulator: states wrapped on {qnet.profile} ({', '.join(f'{k}: {v}' for k, v in overflow.items() if v)}"
            " neuron-steps); the results are the hardware's, but the float model cannot follow",
            RuntimeWarning,
            stacklevel=2,
        )
    readout, logits = host_readout(spikes, qnet.w_out, qnet.b_out, qnet.readout_decay, qnet.readout_mode)  # type: ignore[arg-type]
    return Trace(
        spikes=spikes,
        readout=readout,
        logits=logits,
        current=cur,
        voltage=vol,
        adaptation=ada,
        refractory=refr,
        overflow=overflow,
    )
