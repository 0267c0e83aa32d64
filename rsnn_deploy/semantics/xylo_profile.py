"""Xylo hardware profiles (``hardware/xylo-*.toml``): limits, word widths and spike-count caps.

Xylo's neuron is not Loihi's (bit-shift decays instead of 12-bit multipliers, int8 weights
with one left shift per weight matrix, 16-bit saturating state, two synaptic currents), so
its profiles have their own schema here instead of new fields in :mod:`rsnn_deploy.hardware`.
The loader shares the Loihi loader's file lookup and one-line error format (:mod:`rsnn_deploy.profile_files`)
(``FILE: dotted.key: problem (got value)``).
"""

from __future__ import annotations

import hashlib
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from rsnn_deploy.errors import ValidationError
from rsnn_deploy.profile_files import builtin_profile_path, format_profile_error

__all__ = ["XYLO_PROFILES", "XyloProfile", "load_xylo_profile"]

XYLO_PROFILES: tuple[str, ...] = ("xylo-audio2", "xylo-imu")  # the registry entry's built-in names (semantics/xylo.py)


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class XyloLimits(_Section):
    max_inputs: int = Field(ge=1)
    max_hidden: int = Field(ge=1)
    max_outputs: int = Field(ge=1)
    synapses_per_hidden: int = Field(ge=1, le=2)
    max_recurrent_fanout: int = Field(ge=0)  # 0: no limit
    max_recurrent_weights: int = Field(ge=0)  # 0: no limit


class BitshiftFormat(_Section):
    dash_bits: int = Field(ge=1, le=8)

    @property
    def dash_max(self) -> int:
        return (1 << self.dash_bits) - 1


class XyloWeightFormat(_Section):
    bits: int = Field(ge=2, le=8)
    # xylosim forms (int8 weight << shift) as an int16: shift <= 8 keeps every int8 weight exact
    shift_max: int = Field(ge=0, le=8)

    @property
    def mantissa_max(self) -> int:
        return (1 << (self.bits - 1)) - 1

    @property
    def mantissa_min(self) -> int:
        return -(1 << (self.bits - 1))


class XyloWordFormat(_Section):
    bits: int = Field(ge=2, le=16)

    @property
    def max(self) -> int:
        return (1 << (self.bits - 1)) - 1

    @property
    def min(self) -> int:
        return -(1 << (self.bits - 1))


class SpikeCaps(_Section):
    max_per_input_step: int = Field(ge=1, le=255)
    max_per_hidden_step: int = Field(ge=1, le=255)
    max_per_output_step: int = Field(ge=1, le=255)


class XyloProfile(_Section):
    """One validated Xylo profile; ``path`` and ``sha256`` say which file it came from."""

    schema_version: Literal[1]
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$")
    description: str
    semantics: Literal["xylo-bitshift"]
    dt_ms: float = Field(gt=0)
    limits: XyloLimits
    bitshift: BitshiftFormat
    weight: XyloWeightFormat
    state: XyloWordFormat
    threshold: XyloWordFormat
    spikes: SpikeCaps
    path: str = ""
    sha256: str = ""


@lru_cache(maxsize=16)
def _load_cached(path_str: str, sha256: str) -> XyloProfile:
    path = Path(path_str)
    try:
        raw: dict[str, Any] = tomllib.loads(path.read_text("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ValidationError(f"{path}: not a valid TOML file ({err})") from None
    for reserved in ("path", "sha256"):
        if reserved in raw:
            raise ValidationError(f"{path}: {reserved}: reserved key, set by the loader; remove it from the file")
    try:
        return XyloProfile.model_validate({**raw, "path": str(path), "sha256": sha256})
    except PydanticValidationError as err:
        raise ValidationError(format_profile_error(err, str(path))) from None


def load_xylo_profile(name_or_path: str | Path) -> XyloProfile:
    """Load and validate a Xylo profile given as a built-in name or a path to a TOML file.

    Raises
    ------
    ValidationError
        Unknown name, missing file, bad TOML or a bad key; the message names the file and key.
    """
    text = str(name_or_path)
    if text in XYLO_PROFILES:
        path = builtin_profile_path(text)
    elif text.endswith(".toml") or "/" in text:
        path = Path(text)
    else:
        raise ValidationError(
            f"XyloProfile.name: unknown profile (got {text!r}); use one of {', '.join(XYLO_PROFILES)} "
            "or a path to a .toml file"
        )
    if not path.is_file():
        raise ValidationError(f"{path}: hardware profile file not found")
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    return _load_cached(str(path.resolve()), sha256)
