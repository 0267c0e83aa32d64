"""Semantics ``lava-lif-atrlif``: Lava 0.10's fixed-point LIF and ATRLIF (profile ``loihi2``).

The integer step is :func:`loihi2_step` (numpy is the definition; the ONNX integer graph and
Lava's own processes are tested against it). :data:`SEMANTICS` is the registry entry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from rsnn_deploy.semantics._base import Semantics
from rsnn_deploy.semantics._int import _clip_into, _decay_into, _fresh_like, _outside, q_bound, wrap_lava

if TYPE_CHECKING:
    from rsnn_deploy.hardware import HardwareProfile
    from rsnn_deploy.qnet import QuantizedNetwork

__all__ = ["SEMANTICS", "Loihi2Params", "Loihi2State", "decay_factors", "loihi2_step"]


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
    q_max : int, the largest ``|q|`` any neuron can receive in one step (``q_bound``; -1: unknown).
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
    q_max: int = -1


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


def params(qnet: QuantizedNetwork, profile: HardwareProfile) -> Loihi2Params:
    """The step parameters of ``qnet`` under ``profile``: the profile's widths and decay rule."""
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
        q_max=int(q_bound(qnet).max(initial=0)),
    )


def initial_state(batch: int, n_hidden: int, dtype: type = np.int64) -> Loihi2State:
    """All-zero state (the chip at rest)."""
    z: np.ndarray = np.zeros((batch, n_hidden), dtype=dtype)
    s = np.zeros((batch, n_hidden), dtype=bool)
    return Loihi2State(u=z, v=z.copy(), theta=z.copy(), r=z.copy(), spikes=s, overflow=np.zeros(3, dtype=np.int64))


def state_from_signals(
    u: np.ndarray,
    v: np.ndarray,
    adaptation: np.ndarray,
    ref_count: np.ndarray,
    spikes: np.ndarray,
    overflow: np.ndarray,
) -> Loihi2State:
    """A state viewing a nengo neuron type's signals: ATRLIF's r lives in the ``ref_count`` signal."""
    return Loihi2State(u, v, adaptation, ref_count, spikes, overflow)


def decay_factors(p: Loihi2Params) -> np.ndarray:
    """int64 ``[4, H]``: the factors ``2**bits - offset - decay`` of u, v, theta and r (what a decay multiplies by)."""
    decay_r = p.decay_r if p.decay_r is not None else np.zeros_like(p.decay_theta)
    decays = (p.decay_u, p.decay_v, p.decay_theta, decay_r)
    one = 1 << p.decay_bits
    return np.stack([one - off - np.asarray(d, dtype=np.int64) for d, off in zip(decays, p.offsets, strict=True)])


def native_ok(p: Loihi2Params) -> bool:
    """Whether ``emulator_kernels.c`` (``rsnn_loihi2_run``) computes exactly this step for ``p``.

    The C loop holds the weights and q in int32 and the states in int64, and does Lava's wrap
    of u and every overflow count itself; so it needs every sum of weights to fit int32
    (``q_max < 2**31``; Lava's 16-bit a_in << 6 is far below), decay factors in
    ``[0, 2**bits]`` (a negative factor rounds differently in the two int paths of numpy), and
    widths whose bounds fit int64 arithmetic. Every network the loihi2 profile accepts passes.
    """
    if not 0 <= p.q_max < (1 << 31) or not 0 < p.decay_bits < 32:
        return False
    if not all(0 < n < 48 for n in (p.q_bits, p.u_bits, p.theta_bits)):
        return False
    if not -(1 << 62) < p.vmin <= p.vmax < (1 << 62):
        return False
    f = decay_factors(p)
    return bool(f.size == 0 or (f.min() >= 0 and f.max() <= (1 << p.decay_bits)))


SEMANTICS = Semantics(
    key="lava-lif-atrlif",
    short="loihi2",
    description="Lava's PyLifModelBitAcc (v > vth, reset 0) and PyATRLIFModelFixed (v - r >= theta, no reset)",
    comparison=">",
    q_overflow="none",
    overflow_names=("q", "u", "theta"),
    extra_state=("theta", "r"),
    adaptation=("atrlif",),
    refractory=False,
    voltage_floor=False,
    synapse=True,
    records_adaptation=True,
    params=params,
    initial_state=initial_state,
    step=loihi2_step,
    state_from_signals=state_from_signals,
    native_ok=native_ok,
    native=True,
    chip_backend="lava",
    deploy_backends=("nengo", "lava"),
    u_decay_never_max=False,
    anchor_input=False,
)
