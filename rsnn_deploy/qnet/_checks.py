"""Representability: every integer of a :class:`QuantizedNetwork` lies in its profile's formats.

The profile's weight, bias, threshold, voltage, refractory and adaptation formats decide
which integers a chip can hold; :func:`check_representable` refuses the first field out
of range in one line (the quantizer, the loader and the readback all call it).
"""

from __future__ import annotations

import numpy as np

from rsnn_deploy.errors import ValidationError
from rsnn_deploy.hardware import HardwareProfile, WeightFormat
from rsnn_deploy.qnet._network import QuantizedNetwork


def weight_exponent(w: np.ndarray, fmt: WeightFormat) -> int | None:
    """The smallest exponent that represents every entry of ``w`` exactly, or None if none does.

    An integer weight is ``mantissa * 2**(exponent + exponent_offset)``, a multiple of
    ``fmt.granularity``, with one exponent per synapse group (one connection into one
    block; nengo-loihi gives each block-to-block part of a split connection its own).
    """
    w = np.asarray(w, dtype=np.int64)
    if w.size == 0 or not w.any():
        return fmt.exponent_min
    if np.any(w % fmt.granularity):
        return None
    for e in range(fmt.exponent_min, fmt.exponent_max + 1):
        shift = e + fmt.exponent_offset
        if shift < 0:
            continue
        if np.any(w % (1 << shift)):
            continue
        m = w >> shift
        if m.min() >= fmt.mantissa_min and m.max() <= fmt.mantissa_max:
            return e
    return None


def _bias_representable(b: np.ndarray, profile: HardwareProfile) -> np.ndarray:
    fmt = profile.bias
    ok = np.zeros(b.shape, dtype=bool)
    for e in range(fmt.exponent_max + 1):
        m = b >> e
        ok |= ((b & ((1 << e) - 1)) == 0) & (m >= fmt.mantissa_min) & (m <= fmt.mantissa_max)
    return ok


def check_representable(qnet: QuantizedNetwork, profile: HardwareProfile) -> None:
    """Check that every integer of ``qnet`` lies in ``profile``'s formats.

    Raises
    ------
    ValidationError
        Naming the first field out of range, its offending value and the allowed set.
    """
    # in this order: the first field out of range is the one named
    _check_decays(qnet, profile)
    _check_weights(qnet, profile)
    _check_neuron_registers(qnet, profile)
    _check_adaptation(qnet, profile)
    if qnet.input_latency != profile.timing.input_latency_steps:
        raise ValidationError(
            f"QuantizedNetwork.input_latency: {profile.name} delivers host input after "
            f"{profile.timing.input_latency_steps} steps (got {qnet.input_latency})"
        )


def _check_decays(qnet: QuantizedNetwork, profile: HardwareProfile) -> None:
    """Every decay register within the profile's decay width."""
    dmax = profile.decay.max
    for name in ("decay_u", "decay_v", "decay_theta", "decay_r"):
        arr = getattr(qnet, name)
        if arr is not None and arr.size and arr.max() > dmax:
            raise ValidationError(
                f"QuantizedNetwork.{name}: must lie in [0, {dmax}] ({profile.decay.bits}-bit decay) "
                f"(got {arr.max()})"
            )


def _check_weights(qnet: QuantizedNetwork, profile: HardwareProfile) -> None:
    """One exponent per synapse group (input -> block, block -> block) represents every weight of it."""
    # one exponent per synapse group: input -> block, and block -> block for the recurrence
    tiles: list[tuple[str, np.ndarray, int, int | None]] = [
        ("w_in", qnet.w_in[post], j, None) for j, post in enumerate(qnet.block_slices)
    ]
    if qnet.w_rec is not None:
        tiles += [
            ("w_rec", qnet.w_rec[post][:, pre], j, i)
            for j, post in enumerate(qnet.block_slices)
            for i, pre in enumerate(qnet.block_slices)
        ]
    for name, w, post_j, pre_i in tiles:
        if weight_exponent(w, profile.weight) is None:
            fmt = profile.weight
            top = (1 << (fmt.exponent_max + fmt.exponent_offset)) * fmt.mantissa_max
            bad = w[(w % fmt.granularity) != 0]
            got = int(bad.flat[0]) if bad.size else int(np.abs(w).max())
            part = f"block {post_j}" if pre_i is None else f"block {pre_i} -> block {post_j}"
            raise ValidationError(
                f"QuantizedNetwork.{name}: not representable on {profile.name} ({part}) (got {got}); weights of one "
                f"connection must be mantissa * 2^(e + {fmt.exponent_offset}) with mantissa in "
                f"[{fmt.mantissa_min}, {fmt.mantissa_max}], e in [{fmt.exponent_min}, {fmt.exponent_max}], "
                f"multiples of {fmt.granularity}, |w| <= {top}"
            )


def _check_neuron_registers(qnet: QuantizedNetwork, profile: HardwareProfile) -> None:
    """Bias, threshold, voltage floor and ceiling, and refractory steps in the profile's formats."""
    bad_bias = ~_bias_representable(qnet.bias, profile)
    if bad_bias.any():
        raise ValidationError(
            f"QuantizedNetwork.bias: not representable on {profile.name} (got {int(qnet.bias[bad_bias][0])}); "
            f"bias = mantissa << e, mantissa in [{profile.bias.mantissa_min}, {profile.bias.mantissa_max}], "
            f"e in [0, {profile.bias.exponent_max}]"
        )
    th = profile.threshold
    man = qnet.vth >> th.shift
    bad_vth = ((qnet.vth & ((1 << th.shift) - 1)) != 0) | (man < 1) | (man > (1 << th.mantissa_bits) - 1)
    if bad_vth.any():
        raise ValidationError(
            f"QuantizedNetwork.vth: not representable on {profile.name} (got {int(qnet.vth[bad_vth][0])}); "
            f"vth = mantissa << {th.shift} with mantissa in [1, {(1 << th.mantissa_bits) - 1}]"
        )
    if qnet.vmin not in profile.voltage.vmin_choices:
        raise ValidationError(
            f"QuantizedNetwork.vmin: not a floor {profile.name} can set (got {qnet.vmin}); "
            f"allowed: 1 - 2^e for e in [{profile.voltage.floor_exponent_min}, {profile.voltage.floor_exponent_max}]"
        )
    if qnet.vmax not in profile.voltage.vmax_choices:
        raise ValidationError(
            f"QuantizedNetwork.vmax: not a ceiling {profile.name} can set (got {qnet.vmax}); "
            f"allowed: {list(profile.voltage.vmax_choices)}"
        )
    if qnet.refractory.max() > profile.refractory.max_steps:
        raise ValidationError(
            f"QuantizedNetwork.refractory: must lie in [0, {profile.refractory.max_steps}] "
            f"(got {qnet.refractory.max()})"
        )


def _check_adaptation(qnet: QuantizedNetwork, profile: HardwareProfile) -> None:
    """ATRLIF's ``theta_0`` and the threshold increment in the profile's adaptation formats."""
    th = profile.threshold
    if qnet.is_atrlif and profile.adaptation is not None and profile.adaptation.theta0_mantissa_bits is not None:
        top = (1 << profile.adaptation.theta0_mantissa_bits) - 1
        bad0 = (qnet.vth >> th.shift) > top
        if bad0.any():
            raise ValidationError(
                f"QuantizedNetwork.vth: not representable on {profile.name} as ATRLIF theta_0 "
                f"(got {int(qnet.vth[bad0][0])}); theta_0 = mantissa << {th.shift} with mantissa in [1, {top}] "
                f"({profile.adaptation.theta0_mantissa_bits} bits)"
            )
    if qnet.theta_step is not None and profile.adaptation is not None:
        ad = profile.adaptation
        tm = qnet.theta_step >> ad.step_shift
        bad_t = ((qnet.theta_step & ((1 << ad.step_shift) - 1)) != 0) | (tm > (1 << ad.step_mantissa_bits) - 1)
        if bad_t.any():
            raise ValidationError(
                f"QuantizedNetwork.theta_step: not representable on {profile.name} "
                f"(got {int(qnet.theta_step[bad_t][0])}); theta_step = mantissa << {ad.step_shift}, "
                f"mantissa in [0, {(1 << ad.step_mantissa_bits) - 1}]"
            )
