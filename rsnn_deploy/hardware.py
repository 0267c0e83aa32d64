"""Hardware profiles: the integer formats, features and core limits of one target.

A profile is a TOML file (``hardware/NAME.toml``; schema in ``docs/hardware_profiles.md``)
validated on load by frozen pydantic models with ``extra='forbid'``, so that a typo is an
error naming the file and the dotted key, never a silently ignored setting. Every
backend reads the same profile, and a :class:`~rsnn_deploy.qnet.QuantizedNetwork`
records the profile's name and the SHA-256 of its file, so a network quantized for one
version of a profile is never run against another by accident.

Built-in names (``loihi1``, ``loihi2``) resolve to the repository's ``hardware/``
folder when running from a checkout and otherwise to the copies shipped inside the
package (``rsnn_deploy/_profiles/``), which must stay byte-identical (a test checks it).

Example
-------
>>> from rsnn_deploy.hardware import load_profile
>>> p = load_profile("loihi1")
>>> p.state.q_bits, p.threshold.comparison, p.timing.input_latency_steps
(21, '>', 1)
"""

from __future__ import annotations

import hashlib
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic import ValidationError as PydanticValidationError

from rsnn_deploy import semantics
from rsnn_deploy.errors import ValidationError
from rsnn_deploy.profile_files import builtin_profile_path, format_profile_error

__all__ = [
    "BUILTIN_PROFILES",
    "CostTable",
    "HardwareProfile",
    "builtin_profile_path",
    "load_profile",
]

BUILTIN_PROFILES: tuple[str, ...] = ("loihi1", "loihi2")
SCHEMA_VERSION = 1

class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WeightFormat(_Section):
    """Synaptic weight: ``integer = mantissa * 2**(exponent + exponent_offset)``.

    Every integer weight is also a multiple of ``granularity``. The exponent is shared
    by all weights of one connection (one synapse group).
    """

    mantissa_bits: int = Field(ge=2, le=16)
    mantissa_symmetric: bool
    exponent_min: int = Field(ge=-16, le=16)
    exponent_max: int = Field(ge=-16, le=16)
    exponent_offset: int = Field(ge=0, le=16)
    granularity: int = Field(ge=1, le=1 << 16)

    @property
    def mantissa_max(self) -> int:
        return (1 << (self.mantissa_bits - 1)) - 1

    @property
    def mantissa_min(self) -> int:
        return -self.mantissa_max if self.mantissa_symmetric else -(1 << (self.mantissa_bits - 1))

    @model_validator(mode="after")
    def _check(self) -> WeightFormat:
        if self.exponent_min > self.exponent_max:
            raise ValueError(
                f"exponent_min: must not exceed exponent_max (got {self.exponent_min} > {self.exponent_max})"
            )
        if self.granularity & (self.granularity - 1):
            raise ValueError(f"granularity: must be a power of two (got {self.granularity})")
        return self


class DecayFormat(_Section):
    """Integer decay ``x <- sign(x) * ((|x| * (2**bits - offset - d)) >> bits)``, ``0 <= d < 2**bits``."""

    bits: int = Field(ge=1, le=16)
    u_offset: int = Field(ge=0, le=1)
    v_offset: int = Field(ge=0, le=1)
    theta_offset: int = Field(ge=0, le=1)
    r_offset: int = Field(default=0, ge=0, le=1)

    @property
    def max(self) -> int:
        return (1 << self.bits) - 1


class StateFormat(_Section):
    """State widths as magnitude bits without the sign: a value lies in ``[-2**b, 2**b)``."""

    q_bits: int = Field(ge=1, le=40)
    u_bits: int = Field(ge=1, le=40)
    v_bits: int = Field(ge=1, le=40)
    theta_bits: int = Field(ge=0, le=40)
    q_overflow: Literal["wrap", "none"]
    u_overflow: Literal["wrap"]


class ThresholdFormat(_Section):
    """Firing threshold ``vth = mantissa << shift``; the comparison and the reset after a spike."""

    mantissa_bits: int = Field(ge=1, le=32)
    shift: int = Field(ge=0, le=16)
    comparison: Literal[">", ">="]
    reset: Literal["zero"]


class BiasFormat(_Section):
    """Constant bias ``mantissa << exponent`` added to the membrane each step."""

    mantissa_bits: int = Field(ge=2, le=32)
    mantissa_symmetric: bool
    exponent_max: int = Field(ge=0, le=16)

    @property
    def mantissa_max(self) -> int:
        return (1 << (self.mantissa_bits - 1)) - 1

    @property
    def mantissa_min(self) -> int:
        return -self.mantissa_max if self.mantissa_symmetric else -(1 << (self.mantissa_bits - 1))


class VoltageFormat(_Section):
    """Clip range of the membrane: ``vmin = 1 - 2**e``, ``vmax = 2**(base + step * e) - 1``."""

    floor_exponent_min: int = Field(ge=0, le=40)
    floor_exponent_max: int = Field(ge=0, le=40)
    ceiling_base_bits: int = Field(ge=1, le=40)
    ceiling_step_bits: int = Field(ge=0, le=8)
    ceiling_exponent_max: int = Field(ge=0, le=16)

    @property
    def vmin_choices(self) -> tuple[int, ...]:
        """Every floor the hardware can be configured with, highest first."""
        return tuple(1 - (1 << e) for e in range(self.floor_exponent_min, self.floor_exponent_max + 1))

    @property
    def vmax_choices(self) -> tuple[int, ...]:
        return tuple(
            (1 << (self.ceiling_base_bits + self.ceiling_step_bits * e)) - 1
            for e in range(self.ceiling_exponent_max + 1)
        )

    @model_validator(mode="after")
    def _check(self) -> VoltageFormat:
        if self.floor_exponent_min > self.floor_exponent_max:
            raise ValueError(
                "floor_exponent_min: must not exceed floor_exponent_max "
                f"(got {self.floor_exponent_min} > {self.floor_exponent_max})"
            )
        return self


class RefractoryFormat(_Section):
    """nengo-loihi's ``ref``: steps of forced ``v = 0`` after a spike, counting the spike step (1 = none)."""

    max_steps: int = Field(ge=1, le=1 << 16)


class AdaptationFormat(_Section):
    """Threshold adaptation: ``theta_step = mantissa << step_shift`` added to theta on each spike.

    ``theta0_mantissa_bits``: width of ATRLIF's base threshold ``theta_0`` (the adaptive
    neuron's ``vth``), narrower than LIF's ``vth`` on Lava (12 vs 17 bits); None: as ``threshold``.
    """

    step_mantissa_bits: int = Field(ge=1, le=32)
    step_shift: int = Field(ge=0, le=16)
    theta0_mantissa_bits: int | None = Field(default=None, ge=1, le=32)


class Features(_Section):
    """What the target's neuron model can do (``validate_for`` refuses networks that need more)."""

    synapse: bool
    adaptation: tuple[Literal["threshold", "atrlif"], ...]
    refractory: bool
    per_neuron_decays: bool
    voltage_floor: bool


class CoreLimits(_Section):
    """Per-core resources and the dense synapse-memory cost model (nengo-loihi's ``bits_per_axon``)."""

    compartments_per_core: int = Field(ge=1)
    input_axons_per_core: int = Field(ge=1)
    output_axons_per_core: int = Field(ge=1)
    synapse_memory_bits_per_core: int = Field(ge=1)
    synapse_weight_bits: int = Field(ge=1, le=64)
    synapse_header_bits: int = Field(ge=0, le=1024)
    synapses_per_group: int = Field(ge=1)
    synapse_word_bits: int = Field(ge=1)


class Timing(_Section):
    """Latencies in steps: host input spikes for step k reach q at step ``k + input_latency_steps``."""

    input_latency_steps: int = Field(ge=0, le=64)
    recurrent_latency_steps: Literal[1]


class CostTable(_Section):
    """Per-operation energy and time of the chip (``[cost]``), with the source of every figure.

    Energies in pJ, times in ns. A profile either gives every energy or none: when the
    chip's figures are unpublished, ``energy_unset_reason`` says why and energy is not
    reported (operations still are); the same holds for times and ``time_unset_reason``.
    ``rsnn_deploy.cost`` multiplies exact operation counts by these figures.
    """

    source: str = Field(min_length=1)
    energy_unset_reason: str | None = None
    time_unset_reason: str | None = None
    synaptic_op_pj: float | None = Field(default=None, ge=0)
    neuron_update_active_pj: float | None = Field(default=None, ge=0)
    neuron_update_inactive_pj: float | None = Field(default=None, ge=0)
    spike_within_tile_pj: float | None = Field(default=None, ge=0)
    tile_hop_east_west_pj: float | None = Field(default=None, ge=0)
    tile_hop_north_south_pj: float | None = Field(default=None, ge=0)
    synaptic_op_ns: float | None = Field(default=None, ge=0)
    neuron_update_active_ns: float | None = Field(default=None, ge=0)
    neuron_update_inactive_ns: float | None = Field(default=None, ge=0)
    spike_within_tile_ns: float | None = Field(default=None, ge=0)
    tile_hop_east_west_ns: float | None = Field(default=None, ge=0)
    tile_hop_north_south_ns: float | None = Field(default=None, ge=0)
    barrier_sync_ns: tuple[float, float] | None = None
    barrier_sync_tiles: int = Field(default=1, ge=1)
    cores_per_tile: int = Field(default=1, ge=1)

    ENERGY_KEYS: ClassVar[tuple[str, ...]] = (
        "synaptic_op_pj", "neuron_update_active_pj", "neuron_update_inactive_pj", "spike_within_tile_pj",
        "tile_hop_east_west_pj", "tile_hop_north_south_pj",
    )
    TIME_KEYS: ClassVar[tuple[str, ...]] = (
        "synaptic_op_ns", "neuron_update_active_ns", "neuron_update_inactive_ns", "spike_within_tile_ns",
        "tile_hop_east_west_ns", "tile_hop_north_south_ns", "barrier_sync_ns",
    )

    @property
    def has_energy(self) -> bool:
        return self.synaptic_op_pj is not None

    @property
    def has_time(self) -> bool:
        return self.synaptic_op_ns is not None

    @model_validator(mode="after")
    def _check(self) -> CostTable:
        for keys, reason_key in ((self.ENERGY_KEYS, "energy_unset_reason"), (self.TIME_KEYS, "time_unset_reason")):
            given = [k for k in keys if getattr(self, k) is not None]
            reason = getattr(self, reason_key)
            if given and len(given) != len(keys):
                missing = next(k for k in keys if getattr(self, k) is None)
                raise ValueError(f"{missing}: required when {given[0]} is set (give all of {', '.join(keys)} or none)")
            if given and reason:
                raise ValueError(f"{reason_key}: must be absent when the figures are given")
            if not given and not (reason and reason.strip()):
                raise ValueError(f"{reason_key}: required (a non-empty reason) when {keys[0]} and the rest are unset")
        if self.barrier_sync_ns is not None and self.barrier_sync_ns[0] > self.barrier_sync_ns[1]:
            raise ValueError(
                f"barrier_sync_ns: must be [one tile, {self.barrier_sync_tiles} tiles] with the first not larger "
                f"(got {list(self.barrier_sync_ns)})"
            )
        return self


class HardwareProfile(_Section):
    """One validated hardware profile. ``path`` and ``sha256`` say which file it came from."""

    schema_version: Literal[1]
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$")
    description: str
    semantics: str  # a key of rsnn_deploy.semantics (checked below: unknown keys are refused)
    dt_ms: float | None = Field(default=None, gt=0)
    weight: WeightFormat
    decay: DecayFormat
    state: StateFormat
    threshold: ThresholdFormat
    bias: BiasFormat
    voltage: VoltageFormat
    refractory: RefractoryFormat
    adaptation: AdaptationFormat | None = None
    features: Features
    limits: CoreLimits
    timing: Timing
    cost: CostTable | None = None
    # filled by load_profile, not read from the file
    path: str = ""
    sha256: str = ""

    @model_validator(mode="after")
    def _check_consistency(self) -> HardwareProfile:
        if self.semantics not in semantics.known():
            raise ValueError(
                f"semantics: unknown integer semantics (got {self.semantics!r}); "
                f"use one of {', '.join(semantics.known())}"
            )
        if self.features.adaptation and self.adaptation is None:
            raise ValueError("adaptation: section required when features.adaptation is not empty")
        if self.features.adaptation and self.state.theta_bits == 0:
            raise ValueError("state.theta_bits: must be positive when features.adaptation is not empty")
        if not self.features.refractory and self.refractory.max_steps != 1:
            raise ValueError(
                "refractory.max_steps: must be 1 when features.refractory is false "
                f"(got {self.refractory.max_steps})"
            )
        floor_fixed = self.voltage.floor_exponent_min == self.voltage.floor_exponent_max
        if self.features.voltage_floor == floor_fixed:
            raise ValueError(
                "features.voltage_floor: must be true exactly when voltage.floor_exponent_min < "
                f"floor_exponent_max (got voltage_floor={self.features.voltage_floor})"
            )
        refusal = semantics.get(self.semantics).refusal(self)  # fields its step cannot honour
        if refusal:
            raise ValueError(refusal)
        return self

    @property
    def adaptation_kinds(self) -> tuple[str, ...]:
        return tuple(self.features.adaptation)


@lru_cache(maxsize=1)
@lru_cache(maxsize=32)
def _load_cached(path_str: str, sha256: str) -> HardwareProfile:
    path = Path(path_str)
    data = path.read_bytes()
    try:
        raw: dict[str, Any] = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ValidationError(f"{path}: not a valid TOML file ({err})") from None
    for reserved in ("path", "sha256"):
        if reserved in raw:
            raise ValidationError(
                f"{path}: {reserved}: reserved key, set by the loader; remove it from the file"
            )
    own = _own_schema(raw.get("semantics"))
    if own:
        raise ValidationError(f"{path}: semantics: {own}")
    try:
        return HardwareProfile.model_validate({**raw, "path": str(path), "sha256": sha256})
    except PydanticValidationError as err:
        raise ValidationError(format_profile_error(err, str(path))) from None


def _own_schema(key: object) -> str | None:
    """Why a semantics' profiles are not this schema's (Xylo: its own schema and network), or None."""
    if not isinstance(key, str) or key not in semantics.known():
        return None
    sem = semantics.get(key)
    if sem.profile_loader is None:
        return None
    return (f"{key!r} profiles have their own schema and run a {sem.network}; "
            "load them with rsnn_deploy.profiles.load_any_profile")


_REGISTERED: dict[str, Path] = {}


def register_profile(path: str | Path) -> HardwareProfile:
    """Load a user's profile TOML and make its ``name`` resolvable by :func:`load_profile` in this process.

    Why: a quantized network records its profile by name (and SHA-256); the built-in
    names resolve to files, a user's own profile needs ``--profile PATH`` on every
    command that reads such a network. A name of a built-in profile cannot be taken over.
    """
    prof = load_profile(Path(path))
    if prof.name in BUILTIN_PROFILES and Path(prof.path).resolve() != builtin_profile_path(prof.name).resolve():
        raise ValidationError(
            f"--profile: {path}: name {prof.name!r} is a built-in profile; give your profile its own name"
        )
    _REGISTERED[prof.name] = Path(path)
    return prof


def load_profile(name_or_path: str | Path) -> HardwareProfile:
    """Load and validate a profile given as a built-in name or a path to a TOML file.

    Raises
    ------
    ValidationError
        The file is missing, is not TOML, or a key is unknown, missing or out of range;
        the message names the file and the dotted key.
    """
    text = str(name_or_path)
    if isinstance(name_or_path, str) and text in BUILTIN_PROFILES:
        path = builtin_profile_path(text)
    elif isinstance(name_or_path, str) and text in _REGISTERED:
        path = _REGISTERED[text]
    elif isinstance(name_or_path, Path) or text.endswith(".toml") or "/" in text:
        path = Path(name_or_path)
    else:
        for key in semantics.known():
            if text in semantics.get(key).builtin_profiles:
                raise ValidationError(f"HardwareProfile.name: {text!r}: {_own_schema(key)}")
        raise ValidationError(
            f"HardwareProfile.name: unknown profile (got {text!r}); "
            f"use one of {', '.join(BUILTIN_PROFILES)} or a path to a .toml file"
        )
    # The file is re-read and hashed only when its size or modification time changed: a host
    # loop calling emulator.run per sample paid that on every call.
    try:
        st = path.stat()
    except OSError:
        st = None
    if st is None or not path.is_file():
        raise ValidationError(f"{path}: hardware profile file not found")
    stamp = (text, st.st_mtime_ns, st.st_size, st.st_ino)
    hit = _STAT_CACHE.get(text)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    profile = _load_cached(str(path.resolve()), sha256)
    if len(_STAT_CACHE) > 64:
        _STAT_CACHE.clear()
    _STAT_CACHE[text] = (stamp, profile)
    return profile


_STAT_CACHE: dict[str, tuple[tuple[object, ...], HardwareProfile]] = {}
