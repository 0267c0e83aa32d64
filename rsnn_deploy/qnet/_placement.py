"""Placement: which cores a :class:`QuantizedNetwork` takes, and whether its target can run it.

One core per block, with dense connections as nengo-loihi builds them;
:func:`validate_for` refuses a network whose features or per-core resources the
profile does not have, in one line.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rsnn_deploy.errors import UnsupportedError
from rsnn_deploy.hardware import HardwareProfile
from rsnn_deploy.qnet._network import QuantizedNetwork


@dataclass(frozen=True)
class CoreUsage:
    """Resources one block (core) uses."""

    compartments: int
    input_axons: int
    output_axons: int
    synapse_bits: int


@dataclass(frozen=True)
class Placement:
    """Where a network goes: one core per block, with each core's usage."""

    cores: tuple[CoreUsage, ...]

    @property
    def n_cores(self) -> int:
        return len(self.cores)

    @property
    def input_axons(self) -> int:
        return sum(c.input_axons for c in self.cores)

    @property
    def output_axons(self) -> int:
        return sum(c.output_axons for c in self.cores)

    @property
    def synapse_bits(self) -> int:
        return sum(c.synapse_bits for c in self.cores)


def _bits_per_axon(n_weights: int, profile: HardwareProfile) -> int:
    """Dense synapse memory of one axon (nengo-loihi ``SynapseConfig.bits_per_axon``, compression 3)."""
    lim = profile.limits
    bits = 0
    for start in range(0, n_weights, lim.synapses_per_group):
        n = min(n_weights - start, lim.synapses_per_group)
        raw = n * lim.synapse_weight_bits + lim.synapse_header_bits
        bits += -lim.synapse_word_bits * (-raw // lim.synapse_word_bits)
    return bits


def placement(qnet: QuantizedNetwork, profile: HardwareProfile) -> Placement:
    """Resources per core, one core per block, with dense connections as nengo-loihi builds them.

    Each block receives one input axon per input channel and, with recurrence, one per
    hidden neuron; each hidden neuron sends one output axon per block it projects to.
    """
    n_blocks = len(qnet.block_sizes)
    cores = []
    for size in qnet.block_sizes:
        in_axons = qnet.n_inputs + (qnet.n_hidden if qnet.w_rec is not None else 0)
        out_axons = size * n_blocks if qnet.w_rec is not None else 0
        cores.append(
            CoreUsage(
                compartments=size,
                input_axons=in_axons,
                output_axons=out_axons,
                synapse_bits=in_axons * _bits_per_axon(size, profile),
            )
        )
    return Placement(cores=tuple(cores))


def validate_for(qnet: QuantizedNetwork, profile: HardwareProfile) -> None:
    """Refuse, in one line, a network the target cannot run: missing features or core limits exceeded.

    Raises
    ------
    UnsupportedError
    """
    where = f"QuantizedNetwork[{qnet.source or 'network'}]"
    if qnet.profile != profile.name:
        raise UnsupportedError(
            f"{where}.profile: quantized for {qnet.profile!r}, not {profile.name!r}; "
            f"re-run quantize with --profile {profile.name}"
        )
    kind = qnet.adapt_kind
    if kind is not None and kind not in profile.features.adaptation:
        if not profile.features.adaptation:
            why = "no adaptation (nengo-loihi builds AdaptiveLIF as plain LIF); use --profile loihi2 with " \
                  "adapt_kind = \"atrlif\", or a variant without adaptation"
        else:
            why = f"no {kind!r} adaptation (it has {', '.join(profile.features.adaptation)}: Lava's only adaptive " \
                  "neuron is ATRLIF); train with adapt_kind = \"atrlif\""
        raise UnsupportedError(f"{where}.theta_step: {profile.name} has {why}")
    if not profile.features.refractory and qnet.refractory.max() > 1:
        raise UnsupportedError(
            f"{where}.refractory: {profile.name} has no refractory period (got {qnet.refractory.max()} steps); "
            "train with refractory_steps=0"
        )
    if not profile.features.synapse and np.any(qnet.decay_u != profile.decay.max):
        raise UnsupportedError(f"{where}.decay_u: {profile.name} has no synaptic current filter")
    if not profile.features.per_neuron_decays:
        names = ["decay_u", "decay_v"] + (["decay_theta"] if qnet.decay_theta is not None else [])
        names += ["decay_r"] if qnet.decay_r is not None else []
        for name in names:
            arr = getattr(qnet, name)
            for j, sl in enumerate(qnet.block_slices):
                if np.unique(arr[sl]).size > 1:
                    raise UnsupportedError(
                        f"{where}.{name}: {profile.name} has one decay per block, block {j} has "
                        f"{np.unique(arr[sl]).size}; use one time constant per layer or smaller blocks"
                    )
    lim = profile.limits
    for j, core in enumerate(placement(qnet, profile).cores):
        for what, used, cap in (
            ("compartments", core.compartments, lim.compartments_per_core),
            ("input axons", core.input_axons, lim.input_axons_per_core),
            ("output axons", core.output_axons, lim.output_axons_per_core),
            ("synapse bits", core.synapse_bits, lim.synapse_memory_bits_per_core),
        ):
            if used > cap:
                raise UnsupportedError(
                    f"{where}: block {j} needs {used} {what}, {profile.name} max {cap} per core; "
                    "split the layer into smaller blocks"
                )
