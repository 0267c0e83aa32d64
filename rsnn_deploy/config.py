"""Validated configuration of a model and of a training run.

Configs are frozen pydantic models with ``extra='forbid'``: a typo in a config file
is an error that names the field, never a silently ignored key. They serialise to
plain JSON, which is what checkpoints store next to their tensors.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic import ValidationError as PydanticValidationError

from rsnn_deploy.errors import ValidationError

Variant = Literal["lif", "rec", "rec-syn", "rec-adapt", "rec-syn-adapt"]
VARIANTS: tuple[str, ...] = ("lif", "rec", "rec-syn", "rec-adapt", "rec-syn-adapt")
Surrogate = Literal["fast-sigmoid", "triangle", "arctan", "sigmoid"]


# Sizes are capped before anything is allocated: an n_out of 1e9 in a JSON file must be a
# one-line error, not a 512 GB allocation. MAX_PARAMETERS (weights of one model) is ~1 GB of float32.
MAX_UNITS = 65536
MAX_PARAMETERS = 2**28


class _Frozen(BaseModel):
    # allow_inf_nan=False: "threshold": Infinity in a JSON file is refused by name, not crashed on later
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class ModelConfig(_Frozen):
    """The RSNN: sizes, neuron variant and neuron parameters.

    Time constants are in milliseconds; decays are ``a = exp(-dt/tau)``. The
    threshold is in the model's own voltage unit (the quantizer maps it to the
    chip's integer threshold).
    """

    n_in: int = Field(ge=1, le=MAX_UNITS)
    n_hidden: int = Field(ge=1, le=MAX_UNITS)
    n_out: int = Field(ge=1, le=MAX_UNITS)
    variant: Variant = "rec-syn"
    dt_ms: float = Field(default=1.0, gt=0, le=100)
    tau_mem_ms: float = Field(default=10.0, gt=0, le=1e5)
    tau_syn_ms: float = Field(default=2.0, gt=0, le=1e5)
    tau_adapt_ms: float = Field(default=100.0, gt=0, le=1e6)
    tau_out_ms: float = Field(default=20.0, gt=0, le=1e5)
    adapt_kind: Literal["threshold", "current", "atrlif"] = "threshold"
    # ATRLIF (Lava's adaptive neuron, adapt_kind "atrlif"): time constant of its refractory state r
    tau_refr_ms: float = Field(default=5.0, gt=0, le=1e5)
    adapt_strength: float = Field(default=0.2, ge=0, le=100)
    # LSNN's mixed population (Bellec et al. 2018: 120 LIF + 100 adaptive neurons): only the last
    # n_adaptive neurons adapt, the others are plain LIF (None: every neuron adapts). Float only:
    # the chips hold one adaptation decay per population, so the quantizer refuses a mixed one.
    n_adaptive: int | None = Field(default=None, ge=0, le=MAX_UNITS)
    threshold: float = Field(default=1.0, gt=0)
    refractory_steps: int = Field(default=0, ge=0, le=1000)
    v_floor: float | None = Field(default=None, le=0)
    bias: bool = False
    surrogate: Surrogate = "fast-sigmoid"
    surrogate_slope: float = Field(default=5.0, gt=0, le=1000)
    train_tau: bool = False
    per_neuron_tau: bool = False
    tau_min_ms: float = Field(default=1.0, gt=0)
    tau_max_ms: float = Field(default=5000.0, gt=0)
    readout_mode: Literal["mean", "last"] = "mean"
    init_in_gain: float = Field(default=1.0, gt=0)
    init_rec_gain: float = Field(default=0.5, ge=0)

    @property
    def recurrent(self) -> bool:
        return self.variant != "lif"

    @property
    def synapse(self) -> bool:
        return "syn" in self.variant

    @property
    def adaptation(self) -> bool:
        return "adapt" in self.variant

    @model_validator(mode="after")
    def _check_tau_bounds(self) -> ModelConfig:
        n_params = self.n_hidden * (self.n_in + self.n_hidden + self.n_out)
        if n_params > MAX_PARAMETERS:
            raise ValueError(
                f"n_hidden: {self.n_hidden} neurons with {self.n_in} inputs and {self.n_out} outputs need "
                f"{n_params} weights, more than the limit of {MAX_PARAMETERS}"
            )
        if self.tau_min_ms >= self.tau_max_ms:
            raise ValueError(f"tau_min_ms must be below tau_max_ms (got {self.tau_min_ms} >= {self.tau_max_ms})")
        if self.n_adaptive is not None and not (self.adaptation and self.n_adaptive <= self.n_hidden):
            raise ValueError(
                f"n_adaptive: needs an adaptive variant and at most n_hidden = {self.n_hidden} neurons "
                f"(got {self.n_adaptive} with variant {self.variant})"
            )
        used = ["tau_mem_ms"] + ["tau_syn_ms"] * self.synapse + ["tau_adapt_ms"] * self.adaptation
        used += ["tau_refr_ms"] * (self.adaptation and self.adapt_kind == "atrlif")
        for name in used:
            value = getattr(self, name)
            if self.train_tau and not self.tau_min_ms <= value <= self.tau_max_ms:
                raise ValueError(
                    f"{name} must lie within [tau_min_ms, tau_max_ms] when train_tau is set "
                    f"(got {value} outside [{self.tau_min_ms}, {self.tau_max_ms}])"
                )
        return self


class TrainConfig(_Frozen):
    """How a model is trained: optimiser, schedule, regularisation, split, seed."""

    epochs: int = Field(default=30, ge=1, le=100000)
    batch_size: int = Field(default=128, ge=1)
    lr: float = Field(default=5e-3, gt=0, le=10)
    schedule: Literal["onecycle", "cosine", "constant"] = "onecycle"
    weight_decay: float = Field(default=0.0, ge=0)
    grad_clip: float | None = Field(default=1.0, gt=0)
    rate_reg: float = Field(default=1.0, ge=0)
    target_rate: float = Field(default=0.02, ge=0, le=1)
    val_fraction: float = Field(default=0.1, ge=0, lt=1)
    seed: int = Field(default=0, ge=0)
    device: str = "cpu"
    engine: Literal["auto", "eager", "fast"] = "auto"
    qat_profile: str | None = None
    limit: int | None = Field(default=None, ge=1)


def _format_pydantic_error(err: PydanticValidationError, owner: str) -> str:
    first = err.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "<root>"
    msg = first["msg"]
    got = first.get("input")
    got_txt = "" if isinstance(got, dict) else f" (got {got!r})"
    if first["type"] == "value_error" and field == "<root>":  # our validators say "field: problem"
        head, sep, rest = msg.removeprefix("Value error, ").partition(": ")
        if sep and head.isidentifier():
            field, msg = head, rest
    return f"{owner}.{field}: {msg}{got_txt}"


def validate_config(cls: type[_Frozen], data: dict[str, Any], owner: str) -> Any:
    """Build ``cls`` from ``data``; a problem becomes one ``ValidationError`` line naming ``owner.field``."""
    try:
        return cls.model_validate(data)
    except PydanticValidationError as err:
        raise ValidationError(_format_pydantic_error(err, owner)) from None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML or JSON config file into a dict (errors name the file)."""
    p = Path(path)
    if not p.is_file():
        raise ValidationError(f"{p}: config file not found")
    try:
        text = p.read_text()
        data = json.loads(text) if p.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ValidationError(f"{p}: not a valid {p.suffix.lstrip('.') or 'TOML'} file: {err}") from None
    except RecursionError:
        raise ValidationError(f"{p}: nested too deeply to be a config file") from None
    except OSError as err:
        raise ValidationError(f"{p}: cannot read ({err.strerror or err})") from None
    if not isinstance(data, dict):
        raise ValidationError(f"{p}: top level must be a table/object")
    return data


def check_config_tables(data: dict[str, Any], path: str | Path, tables: dict[str, set[str] | None]) -> None:
    """Refuse unknown or misspelled tables and keys of a config file, naming them (``[modle]`` is not ignored).

    ``tables`` maps each allowed table to its allowed keys (None: any key, checked elsewhere).
    """
    for name, value in data.items():
        if name not in tables:
            raise ValidationError(f"{path}: [{name}]: unknown table; allowed: {', '.join(f'[{t}]' for t in tables)}")
        if not isinstance(value, dict):
            raise ValidationError(f"{path}: [{name}]: must be a table (got {value!r})")
        allowed = tables[name]
        if allowed is not None:
            for key in value:
                if key not in allowed:
                    raise ValidationError(f"{path}: [{name}].{key}: unknown key")
