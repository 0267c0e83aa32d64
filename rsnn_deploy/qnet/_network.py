"""The :class:`QuantizedNetwork`: the integers every hardware backend runs, and its files.

A quantized network is pure data (like nengo-loihi's ``LoihiBlock``, but a separate,
frozen type instead of floats discretized in place). Every backend consumes it and
none re-derives integers on its own. Integer fields are int64 in memory and int32 on
disk; the host readout is the only float part.

Files: ``NAME.safetensors`` (arrays) + ``NAME.json`` (scalars, profile name and hash,
provenance, SHA-256 of the tensor file), both written atomically. Loading checks names,
shapes, dtypes and that every integer lies in the profile's representable set; any
problem is one :class:`~rsnn_deploy.errors.CheckpointError` line naming file and field.

Fields (H hidden neurons, C inputs, K outputs)
----------------------------------------------
w_in : [H, C]
    Integer added to ``q`` of neuron h per input spike of channel c, *after* the
    chip's mantissa/exponent scaling (what nengo-loihi's emulator adds).
w_rec : [H, H] or None
    Same for hidden spikes of the previous step (``w_rec[post, pre]``).
bias : [H]
    Integer bias (``mantissa << exponent``).
decay_u, decay_v : [H]
    12-bit decay registers ``d``: ``x <- sign(x) * ((|x| * (4096 - offset - d)) >> 12)``
    with the profile's offsets (loihi1/loihi2: 1 for u, 0 for v).
vth : [H]
    Effective threshold ``mantissa << 6`` (loihi2: ATRLIF's ``theta_0``).
refractory : [H]
    nengo-loihi ``ref`` (1 = no refractory step beyond the spike step).
vmin, vmax : int
    Voltage clip range (loihi1 default floor 0).
decay_theta, theta_step : [H] or None
    Threshold adaptation (loihi2): decay register of ``theta - theta_0`` and the
    effective increment per spike (``mantissa << 6``); None when absent.
decay_r : [H] or None
    Set for Lava ATRLIF neurons (loihi2 adaptive networks): decay register of the
    refractory state ``r`` (``r += 2 theta`` on a spike; spike if ``v - r >= theta``; no
    voltage reset). None: LIF neurons (reset to zero).
input_latency : int
    Steps between a host input spike and its arrival in ``q`` (the profile's).
w_out [K, H], b_out [K], readout_decay, readout_mode
    Host readout (float32), see :func:`rsnn_deploy.trace.host_readout`.
block_sizes, float_scale
    How the hidden neurons split into blocks (one core each, quantized separately)
    and each block's scale: integer voltage units per float unit of the float model.
encoder
    The input code of the model it was quantized from (the JSON record of
    :class:`~rsnn_deploy.tasks.input_encoder.InputEncoder`), so that a host can turn raw
    signals into its input spikes; None for networks that only take spikes.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from rsnn_deploy.errors import CheckpointError, UnsupportedError, ValidationError
from rsnn_deploy.hardware import HardwareProfile, WeightFormat, load_profile
from rsnn_deploy.io import (
    artifact_paths,
    git_commit,
    package_versions,
    read_json_object,
    read_pair_tensors,
    write_pair_atomic,
)

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "CoreUsage",
    "Placement",
    "QuantizedNetwork",
    "check_representable",
    "load_qnet",
    "placement",
    "qnet_paths",
    "save_qnet",
    "validate_for",
    "weight_exponent",
]

FORMAT = "rsnn-deploy/qnet"
FORMAT_VERSION = 1

_INT_VECTORS = ("bias", "decay_u", "decay_v", "vth", "refractory")
_OPTIONAL_INT_VECTORS = ("decay_theta", "theta_step", "decay_r")
_INT32_MAX = (1 << 31) - 1


def _int_array(name: str, value: Any, ndim: int) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise ValidationError(f"QuantizedNetwork.{name}: must be an integer array (got dtype {arr.dtype})")
    if arr.ndim != ndim:
        raise ValidationError(f"QuantizedNetwork.{name}: must have {ndim} dimensions (got shape {arr.shape})")
    out = arr.astype(np.int64, copy=True)
    if out.size and (out.max() > _INT32_MAX or out.min() < -_INT32_MAX):
        raise ValidationError(f"QuantizedNetwork.{name}: values must fit in int32 (got {out.max()})")
    out.flags.writeable = False
    return out


def _float_array(name: str, value: Any, ndim: int) -> np.ndarray:
    arr = np.asarray(value)
    if not np.issubdtype(arr.dtype, np.floating) and not np.issubdtype(arr.dtype, np.integer):
        raise ValidationError(f"QuantizedNetwork.{name}: must be a float array (got dtype {arr.dtype})")
    if arr.ndim != ndim:
        raise ValidationError(f"QuantizedNetwork.{name}: must have {ndim} dimensions (got shape {arr.shape})")
    out = arr.astype(np.float32, copy=True)
    if not np.isfinite(out).all():
        raise ValidationError(f"QuantizedNetwork.{name}: must be finite (got non-finite values)")
    out.flags.writeable = False
    return out


@dataclass(frozen=True, eq=False)
class QuantizedNetwork:
    """Integer network for one hardware profile; see the module docstring for each field.

    Arrays are copied to read-only int64 (integers) or float32 (readout) on
    construction, so an instance cannot change after it was validated.
    """

    w_in: np.ndarray
    w_rec: np.ndarray | None
    bias: np.ndarray
    decay_u: np.ndarray
    decay_v: np.ndarray
    vth: np.ndarray
    refractory: np.ndarray
    vmin: int
    vmax: int
    w_out: np.ndarray
    b_out: np.ndarray
    readout_decay: float
    readout_mode: str
    profile: str
    profile_sha256: str
    input_latency: int
    decay_theta: np.ndarray | None = None
    theta_step: np.ndarray | None = None
    decay_r: np.ndarray | None = None
    block_sizes: tuple[int, ...] = ()
    float_scale: tuple[float, ...] = ()
    source: str = ""
    format_version: int = FORMAT_VERSION
    encoder: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        put("w_in", _int_array("w_in", self.w_in, 2))
        h, c = self.w_in.shape
        if h < 1 or c < 1:
            raise ValidationError(f"QuantizedNetwork.w_in: must be [H, C] with H, C >= 1 (got shape {(h, c)})")
        if self.w_rec is not None:
            put("w_rec", _int_array("w_rec", self.w_rec, 2))
            if self.w_rec.shape != (h, h):
                raise ValidationError(f"QuantizedNetwork.w_rec: must be [{h}, {h}] (got shape {self.w_rec.shape})")
        for name in _INT_VECTORS:
            put(name, _int_array(name, getattr(self, name), 1))
            if getattr(self, name).shape != (h,):
                raise ValidationError(
                    f"QuantizedNetwork.{name}: must have shape [{h}] (got {getattr(self, name).shape})"
                )
        if (self.decay_theta is None) != (self.theta_step is None):
            raise ValidationError(
                "QuantizedNetwork.theta_step: decay_theta and theta_step must be given together "
                f"(got decay_theta={'set' if self.decay_theta is not None else None}, "
                f"theta_step={'set' if self.theta_step is not None else None})"
            )
        for name in _OPTIONAL_INT_VECTORS:
            if getattr(self, name) is not None:
                put(name, _int_array(name, getattr(self, name), 1))
                if getattr(self, name).shape != (h,):
                    raise ValidationError(
                        f"QuantizedNetwork.{name}: must have shape [{h}] (got {getattr(self, name).shape})"
                    )
        if self.decay_r is not None and self.decay_theta is None:
            raise ValidationError(
                "QuantizedNetwork.decay_r: ATRLIF's refractory decay needs decay_theta and theta_step (got none)"
            )
        for name in ("decay_u", "decay_v", "decay_theta", "decay_r"):
            arr = getattr(self, name)
            if arr is not None and arr.size and arr.min() < 0:
                raise ValidationError(f"QuantizedNetwork.{name}: must be >= 0 (got {arr.min()})")
        if self.vth.min() <= 0:
            raise ValidationError(f"QuantizedNetwork.vth: must be positive (got {self.vth.min()})")
        if self.refractory.min() < 0:
            raise ValidationError(f"QuantizedNetwork.refractory: must be >= 0 (got {self.refractory.min()})")
        if self.theta_step is not None and self.theta_step.min() < 0:
            raise ValidationError(f"QuantizedNetwork.theta_step: must be >= 0 (got {self.theta_step.min()})")
        put("vmin", int(self.vmin))
        put("vmax", int(self.vmax))
        if not self.vmin <= 0 < self.vmax:
            raise ValidationError(
                f"QuantizedNetwork.vmin: need vmin <= 0 < vmax (got vmin={self.vmin}, vmax={self.vmax})"
            )
        put("w_out", _float_array("w_out", self.w_out, 2))
        if self.w_out.shape[1] != h or self.w_out.shape[0] < 1:
            raise ValidationError(f"QuantizedNetwork.w_out: must be [K, {h}], K >= 1 (got shape {self.w_out.shape})")
        put("b_out", _float_array("b_out", self.b_out, 1))
        if self.b_out.shape != (self.w_out.shape[0],):
            raise ValidationError(
                f"QuantizedNetwork.b_out: must have shape [{self.w_out.shape[0]}] (got {self.b_out.shape})"
            )
        put("readout_decay", float(self.readout_decay))
        if not 0.0 <= self.readout_decay < 1.0:
            raise ValidationError(f"QuantizedNetwork.readout_decay: must lie in [0, 1) (got {self.readout_decay})")
        if self.readout_mode not in ("mean", "last"):
            raise ValidationError(
                f"QuantizedNetwork.readout_mode: must be 'mean' or 'last' (got {self.readout_mode!r})"
            )
        put("input_latency", int(self.input_latency))
        if not 0 <= self.input_latency <= 64:
            raise ValidationError(f"QuantizedNetwork.input_latency: must lie in [0, 64] (got {self.input_latency})")
        sizes = tuple(int(s) for s in self.block_sizes) or (h,)
        if any(s < 1 for s in sizes) or sum(sizes) != h:
            raise ValidationError(
                f"QuantizedNetwork.block_sizes: must be positive and sum to {h} (got {list(sizes)})"
            )
        put("block_sizes", sizes)
        scales = tuple(float(s) for s in self.float_scale)
        if scales and len(scales) != len(sizes):
            raise ValidationError(
                f"QuantizedNetwork.float_scale: needs one value per block ({len(sizes)}) (got {len(scales)})"
            )
        put("float_scale", scales)
        if not isinstance(self.profile, str) or not self.profile:
            raise ValidationError(f"QuantizedNetwork.profile: must be a profile name (got {self.profile!r})")
        if self.encoder is not None:
            from rsnn_deploy.tasks.input_encoder import InputEncoder

            enc = InputEncoder.from_dict(dict(self.encoder), "QuantizedNetwork.encoder")
            if enc.n_channels != c:
                raise ValidationError(
                    f"QuantizedNetwork.encoder: has {enc.n_channels} channels, the network {c} inputs"
                )
            put("encoder", enc.to_dict())

    @property
    def input_encoder(self) -> Any:
        """The recorded :class:`~rsnn_deploy.tasks.input_encoder.InputEncoder`, or None (spikes only)."""
        if self.encoder is None:
            return None
        from rsnn_deploy.tasks.input_encoder import InputEncoder

        return InputEncoder.from_dict(dict(self.encoder), "QuantizedNetwork.encoder")

    @property
    def n_inputs(self) -> int:
        return int(self.w_in.shape[1])

    @property
    def n_hidden(self) -> int:
        return int(self.w_in.shape[0])

    @property
    def n_outputs(self) -> int:
        return int(self.w_out.shape[0])

    @property
    def has_adaptation(self) -> bool:
        """True when some neuron's threshold adapts (a non-zero ``theta_step``)."""
        return self.theta_step is not None and bool(np.any(self.theta_step))

    @property
    def is_atrlif(self) -> bool:
        """True for Lava ATRLIF neurons (``decay_r`` set): refractory state ``r``, no voltage reset."""
        return self.decay_r is not None

    @property
    def adapt_kind(self) -> str | None:
        """The adaptation the integers need: ``"atrlif"``, ``"threshold"`` or None."""
        if self.is_atrlif:
            return "atrlif"
        return "threshold" if self.has_adaptation else None

    @property
    def block_slices(self) -> tuple[slice, ...]:
        edges = np.cumsum((0, *self.block_sizes))
        return tuple(slice(int(a), int(b)) for a, b in itertools.pairwise(edges))


# ----------------------------------------------------------------------------- representability


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
    dmax = profile.decay.max
    for name in ("decay_u", "decay_v", "decay_theta", "decay_r"):
        arr = getattr(qnet, name)
        if arr is not None and arr.size and arr.max() > dmax:
            raise ValidationError(
                f"QuantizedNetwork.{name}: must lie in [0, {dmax}] ({profile.decay.bits}-bit decay) "
                f"(got {arr.max()})"
            )
    # one exponent per synapse group: input -> block, and block -> block for the recurrence
    tiles = [("w_in", qnet.w_in[post], j, None) for j, post in enumerate(qnet.block_slices)]
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
    if qnet.input_latency != profile.timing.input_latency_steps:
        raise ValidationError(
            f"QuantizedNetwork.input_latency: {profile.name} delivers host input after "
            f"{profile.timing.input_latency_steps} steps (got {qnet.input_latency})"
        )


# ----------------------------------------------------------------------------- placement


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


# ----------------------------------------------------------------------------- files


def qnet_paths(path: str | Path) -> tuple[Path, Path]:
    """``(NAME.safetensors, NAME.json)`` for a path given as either file or the bare stem."""
    return artifact_paths(path)


def _tensors_of(qnet: QuantizedNetwork) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {"w_in": qnet.w_in.astype(np.int32)}
    if qnet.w_rec is not None:
        out["w_rec"] = qnet.w_rec.astype(np.int32)
    for name in (*_INT_VECTORS, *_OPTIONAL_INT_VECTORS):
        arr = getattr(qnet, name)
        if arr is not None:
            out[name] = arr.astype(np.int32)
    out["w_out"] = np.ascontiguousarray(qnet.w_out, dtype=np.float32)
    out["b_out"] = np.ascontiguousarray(qnet.b_out, dtype=np.float32)
    return out


_SCALARS = (
    "vmin",
    "vmax",
    "readout_decay",
    "readout_mode",
    "profile",
    "profile_sha256",
    "input_latency",
    "block_sizes",
    "float_scale",
    "source",
)


def save_qnet(qnet: QuantizedNetwork, path_stem: str | Path, **meta: Any) -> Path:
    """Write ``NAME.safetensors`` then ``NAME.json`` atomically; returns the JSON path.

    The JSON records the SHA-256 of the tensor file, so a pair written by two
    different runs is detected on load. ``meta`` is stored as is (e.g. metrics).
    """
    st_path, json_path = qnet_paths(path_stem)
    blob = st_save(_tensors_of(qnet))
    doc: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        **{name: getattr(qnet, name) for name in _SCALARS},
        "n_inputs": qnet.n_inputs,
        "n_hidden": qnet.n_hidden,
        "n_outputs": qnet.n_outputs,
        "tensors_sha256": hashlib.sha256(blob).hexdigest(),
        "meta": meta,
        "versions": package_versions(),
        "git_commit": git_commit(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    doc["block_sizes"] = list(qnet.block_sizes)
    doc["float_scale"] = list(qnet.float_scale)
    if qnet.encoder is not None:
        doc["encoder"] = dict(qnet.encoder)
    write_pair_atomic(st_path, json_path, blob, doc)  # a kill at any moment leaves a loadable pair
    return json_path



def _expected_tensors(doc: Mapping[str, Any], names: set[str]) -> dict[str, tuple[tuple[int, ...], str]]:
    h, c, k = int(doc["n_hidden"]), int(doc["n_inputs"]), int(doc["n_outputs"])
    exp: dict[str, tuple[tuple[int, ...], str]] = {"w_in": ((h, c), "int32")}
    if "w_rec" in names:
        exp["w_rec"] = ((h, h), "int32")
    for name in _INT_VECTORS:
        exp[name] = ((h,), "int32")
    for name in _OPTIONAL_INT_VECTORS:
        if name in names:
            exp[name] = ((h,), "int32")
    exp["w_out"] = ((k, h), "float32")
    exp["b_out"] = ((k,), "float32")
    return exp


def load_qnet(path: str | Path, profile: HardwareProfile | str | Path | None = None) -> QuantizedNetwork:
    """Load and validate ``NAME``, ``NAME.json`` or ``NAME.safetensors``.

    Parameters
    ----------
    profile
        The profile to check the integers against; by default the built-in profile the
        JSON names. Its SHA-256 must equal the one recorded at quantization time.

    Raises
    ------
    CheckpointError
        One line naming the file and the field: missing/corrupt/truncated files, a tensor
        file from another save, wrong names, shapes or dtypes, integers the profile cannot
        represent, or a profile that changed since quantization.
    """
    st_path, json_path = qnet_paths(path)
    doc = read_json_object(json_path)
    if doc.get("format") != FORMAT:
        raise CheckpointError(f"{json_path}: format: not an rsnn-deploy quantized network (got {doc.get('format')!r})")
    if doc.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{json_path}: format_version: unsupported (got {doc.get('format_version')!r}); "
            f"this version reads {FORMAT_VERSION}, re-run rsnn-deploy quantize"
        )
    for key in (*_SCALARS, "n_inputs", "n_hidden", "n_outputs", "tensors_sha256"):
        if key not in doc:
            raise CheckpointError(f"{json_path}: {key}: missing")
    for key in ("n_inputs", "n_hidden", "n_outputs", "vmin", "vmax", "input_latency"):
        if not isinstance(doc[key], int) or isinstance(doc[key], bool):
            raise CheckpointError(f"{json_path}: {key}: must be an integer (got {doc[key]!r})")
    try:
        blob = read_pair_tensors(st_path, json_path, doc)
    except CheckpointError as err:
        raise CheckpointError(f"{err}; re-run rsnn-deploy quantize") from None
    try:
        tensors = st_load(blob)
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{st_path}: not a valid safetensors file ({err})") from None
    expected = _expected_tensors(doc, set(tensors))
    missing = sorted(set(expected) - set(tensors))
    if missing:
        raise CheckpointError(f"{st_path}: {missing[0]}: tensor missing")
    unexpected = sorted(set(tensors) - set(expected))
    if unexpected:
        raise CheckpointError(f"{st_path}: {unexpected[0]}: unexpected tensor")
    for name, (shape, dtype) in expected.items():
        t = tensors[name]
        if tuple(t.shape) != shape:
            raise CheckpointError(
                f"{st_path}: {name}: shape {list(t.shape)} does not match {json_path.name} ({list(shape)})"
            )
        if str(t.dtype) != dtype:
            raise CheckpointError(f"{st_path}: {name}: dtype must be {dtype} (got {t.dtype})")
    kwargs: dict[str, Any] = {name: tensors.get(name) for name in (f.name for f in fields(QuantizedNetwork))}
    kwargs.update({name: doc[name] for name in _SCALARS})
    kwargs["block_sizes"] = tuple(doc["block_sizes"])
    kwargs["float_scale"] = tuple(doc["float_scale"])
    kwargs["format_version"] = doc["format_version"]
    kwargs["encoder"] = doc.get("encoder")  # optional: files written before the encoder travelled with them
    try:
        qnet = QuantizedNetwork(**kwargs)
    except (TypeError, ValueError) as err:  # ValidationError is a ValueError
        raise CheckpointError(f"{json_path}: {err}") from None
    try:
        prof = profile if isinstance(profile, HardwareProfile) else load_profile(profile or qnet.profile)
    except ValidationError as err:
        raise CheckpointError(
            f"{json_path}: profile: cannot load {qnet.profile!r} ({err}); "
            "pass --profile PATH (profile= in Python), the TOML it was quantized for"
        ) from None
    if prof.name != qnet.profile:
        raise CheckpointError(f"{json_path}: profile: quantized for {qnet.profile!r}, given {prof.name!r}")
    if prof.sha256 != qnet.profile_sha256:
        raise CheckpointError(
            f"{json_path}: profile_sha256: profile {prof.name!r} changed since quantization "
            f"(got {prof.sha256[:12]}, file says {qnet.profile_sha256[:12]}); re-run rsnn-deploy quantize"
        )
    try:
        check_representable(qnet, prof)
    except ValidationError as err:
        raise CheckpointError(f"{st_path}: {err}") from None
    return qnet

