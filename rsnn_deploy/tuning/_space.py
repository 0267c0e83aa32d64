"""The search space of a tuning study: a TOML file, validated up front, turned into Optuna suggestions.

Why a file and not flags: the step-by-step experiment tunes five variants with the same
ranges, and a study shared by many workers must search the same space everywhere; a file
is one reviewable, versioned thing (``configs/search_space.toml`` documents the format).

Format (every key is a field of :class:`~rsnn_deploy.config.ModelConfig` or
:class:`~rsnn_deploy.config.TrainConfig`)::

    format_version = 1
    [model]                 # fixed model settings of every trial
    n_hidden = 64
    [train]                 # fixed training settings of every trial
    epochs = 15
    [search.tau_mem_ms]     # a searched value: low/high (+ log, step) or choices
    low = 2.0
    high = 40.0
    log = true
    [multi_objective.n_hidden]   # searched only with --multi-objective neurons
    low = 16
    high = 256
    log = true

A parameter that a variant does not use (``tau_syn_ms`` without synapse, adaptation
parameters without adaptation, ``init_rec_gain`` without recurrence) is not suggested
for that variant, so its trials do not carry meaningless values. Every error names the
file and the dotted key and fits on one line.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsnn_deploy.config import ModelConfig, TrainConfig, read_config_file, validate_config
from rsnn_deploy.errors import ValidationError

FORMAT_VERSION = 1

#: Parameters that only exist in some variants: name -> ModelConfig property that must be true.
APPLIES_WHEN: dict[str, str] = {
    "tau_syn_ms": "synapse",
    "tau_adapt_ms": "adaptation",
    "adapt_strength": "adaptation",
    "adapt_kind": "adaptation",
    "init_rec_gain": "recurrent",
}
#: Set by the task or by a command-line flag, never by the search-space file.
RESERVED: dict[str, str] = {
    "n_in": "set by the task",
    "n_out": "set by the task",
    "readout_mode": "set by the task",
    "variant": "set by --variant",
    "seed": "set by --seed",
    "device": "set by --device",
}
# Sizes that a task fills in later; only there so that a config can be validated without one.
_PLACEHOLDER: dict[str, Any] = {"n_in": 1, "n_hidden": 1, "n_out": 1}
_ENTRY_KEYS = {"low", "high", "log", "step", "choices"}


def default_space_path() -> Path:
    """``configs/search_space.toml`` of this checkout, else the copy shipped in the package (kept identical)."""
    repo = Path(__file__).resolve().parents[2] / "configs" / "search_space.toml"
    if repo.is_file():
        return repo
    return Path(__file__).resolve().parents[1] / "_configs" / "search_space.toml"


@dataclass(frozen=True)
class ParamRange:
    """One searched parameter: a numeric range or a list of choices.

    ``kind`` is ``"int"``, ``"float"`` or ``"categorical"``, decided by the config
    field's type, so that ``refractory_steps`` is never suggested as 1.7.
    """

    name: str
    section: str  # "model" or "train"
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        """Ask an Optuna trial for this parameter's value."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            step = int(self.step) if self.step is not None else 1
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=step, log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), step=self.step, log=self.log)

    def to_dict(self) -> dict[str, Any]:
        """JSON form of the range (study attributes, reports)."""
        d: dict[str, Any] = {"section": self.section, "kind": self.kind}
        if self.kind == "categorical":
            d["choices"] = list(self.choices)
        else:
            d.update(low=self.low, high=self.high, log=self.log, step=self.step)
        return d


@dataclass(frozen=True)
class SearchSpace:
    """Fixed settings plus searched ranges, as read from one file."""

    path: str
    fixed_model: dict[str, Any] = field(default_factory=dict)
    fixed_train: dict[str, Any] = field(default_factory=dict)
    params: tuple[ParamRange, ...] = ()
    neurons: ParamRange | None = None  # searched only for --multi-objective neurons

    def for_variant(
        self, variant: str, *, search_neurons: bool = False, drop: tuple[str, ...] = ()
    ) -> list[ParamRange]:
        """The parameters searched for ``variant`` (those it uses), in file order.

        ``drop`` removes parameters that the caller pins (e.g. the LSNN control pins
        ``tau_adapt_ms``); ``search_neurons`` adds the ``[multi_objective.n_hidden]`` range.
        """
        probe = validate_config(ModelConfig, {**_PLACEHOLDER, "variant": variant}, owner="model")
        out = [
            p
            for p in self.params
            if p.name not in drop and (p.name not in APPLIES_WHEN or getattr(probe, APPLIES_WHEN[p.name]))
        ]
        if search_neurons:
            if self.neurons is None:
                raise ValidationError(
                    f"{self.path}: multi_objective.n_hidden: missing; --multi-objective neurons needs the "
                    "range of neurons to search, e.g. [multi_objective.n_hidden] low = 16, high = 256"
                )
            out = [p for p in out if p.name != "n_hidden"] + [self.neurons]
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON form, stored in the study's user attributes (what every worker searched)."""
        return {
            "path": self.path,
            "model": dict(self.fixed_model),
            "train": dict(self.fixed_train),
            "search": {p.name: p.to_dict() for p in self.params},
            "neurons": self.neurons.to_dict() if self.neurons is not None else None,
        }


def _field_kind(name: str) -> tuple[str, str] | None:
    """``(section, kind)`` of a config field, or None when no config has it."""
    for section, cls in (("model", ModelConfig), ("train", TrainConfig)):
        info = cls.model_fields.get(name)
        if info is None:
            continue
        ann = info.annotation
        args = set(typing.get_args(ann)) if isinstance(ann, types.UnionType) or typing.get_origin(ann) else {ann}
        args.discard(type(None))
        if (
            args == {bool}
            or typing.get_origin(ann) is typing.Literal
            or any(typing.get_origin(a) is typing.Literal for a in args)
        ):
            return section, "categorical"
        if args == {int}:
            return section, "int"
        if args <= {int, float} and float in args:
            return section, "float"
        return section, "categorical"
    return None


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValidationError(f"{where}: must be a finite number (got {value!r})")
    return float(value)


def _check_value(
    section: str, name: str, value: Any, fixed_model: dict[str, Any], fixed_train: dict[str, Any], where: str
) -> None:
    """Build the config with ``name = value`` so that a range bound outside the config's limits fails now."""
    if section == "model":
        data = {**_PLACEHOLDER, "variant": "rec-syn-adapt", **fixed_model, name: value}
        cls: type = ModelConfig
    else:
        data = {**fixed_train, name: value}
        cls = TrainConfig
    try:
        validate_config(cls, data, owner=section)
    except ValidationError as err:
        raise ValidationError(f"{where}: {err}") from None


def _parse_entry(
    name: str, raw: Any, where: str, fixed_model: dict[str, Any], fixed_train: dict[str, Any]
) -> ParamRange:
    if name in RESERVED:
        raise ValidationError(f"{where}: cannot be searched ({RESERVED[name]})")
    found = _field_kind(name)
    if found is None:
        known = sorted(set(ModelConfig.model_fields) | set(TrainConfig.model_fields))
        raise ValidationError(
            f"{where}: unknown parameter; use a field of ModelConfig or TrainConfig (e.g. {', '.join(known[:6])}, ...)"
        )
    section, kind = found
    if not isinstance(raw, dict):
        raise ValidationError(f"{where}: must be a table with low/high or choices (got {raw!r})")
    unknown = sorted(set(raw) - _ENTRY_KEYS)
    if unknown:
        raise ValidationError(f"{where}.{unknown[0]}: unknown key; a range has {', '.join(sorted(_ENTRY_KEYS))}")
    if "choices" in raw:
        choices = raw["choices"]
        if set(raw) != {"choices"}:
            raise ValidationError(f"{where}: give either choices or low/high, not both")
        if not isinstance(choices, list) or not choices:
            raise ValidationError(f"{where}.choices: must be a non-empty array (got {choices!r})")
        for c in choices:
            _check_value(section, name, c, fixed_model, fixed_train, f"{where}.choices")
        return ParamRange(name, section, "categorical", choices=tuple(choices))
    if kind == "categorical":
        raise ValidationError(f"{where}: {name} takes discrete values; give choices = [...]")
    for key in ("low", "high"):
        if key not in raw:
            raise ValidationError(f"{where}.{key}: missing")
    low, high = _number(raw["low"], f"{where}.low"), _number(raw["high"], f"{where}.high")
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise ValidationError(f"{where}.log: must be true or false (got {log!r})")
    step = raw.get("step")
    if step is not None:
        step = _number(step, f"{where}.step")
        if step <= 0:
            raise ValidationError(f"{where}.step: must be positive (got {step!r})")
        if log:
            raise ValidationError(f"{where}.step: cannot be combined with log = true")
    if kind == "int":
        for key, v in (("low", low), ("high", high), ("step", step)):
            if v is not None and not float(v).is_integer():
                raise ValidationError(f"{where}.{key}: {name} is an integer field (got {v!r})")
    if not low < high:
        raise ValidationError(f"{where}: low must be below high (got low={low:g}, high={high:g})")
    if log and low <= 0:
        raise ValidationError(f"{where}.low: must be positive with log = true (got {low:g})")
    for key, v in (("low", low), ("high", high)):
        _check_value(section, name, int(v) if kind == "int" else v, fixed_model, fixed_train, f"{where}.{key}")
    return ParamRange(name, section, kind, low=low, high=high, log=log, step=step)


def _fixed_table(raw: Any, section: str, path: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValidationError(f"{path}: {section}: must be a table (got {raw!r})")
    cls = ModelConfig if section == "model" else TrainConfig
    for key in raw:
        if key in RESERVED:
            raise ValidationError(f"{path}: {section}.{key}: cannot be set here ({RESERVED[key]})")
        if key not in cls.model_fields:
            raise ValidationError(f"{path}: {section}.{key}: unknown {cls.__name__} field")
    return dict(raw)


def parse_search_space(data: dict[str, Any], path: str) -> SearchSpace:
    """Validate a search-space document (already parsed TOML/JSON); ``path`` names it in errors."""
    unknown = sorted(set(data) - {"format_version", "model", "train", "search", "multi_objective"})
    if unknown:
        raise ValidationError(
            f"{path}: {unknown[0]}: unknown table; a search space has format_version, model, train, "
            "search, multi_objective"
        )
    version = data.get("format_version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise ValidationError(f"{path}: format_version: unsupported (got {version!r}, this version reads 1)")
    fixed_model = _fixed_table(data.get("model"), "model", path)
    fixed_train = _fixed_table(data.get("train"), "train", path)
    _check_value("model", "variant", "rec-syn-adapt", fixed_model, fixed_train, f"{path}: model")
    _check_value("train", "seed", 0, fixed_model, fixed_train, f"{path}: train")
    search = data.get("search", {})
    if not isinstance(search, dict):
        raise ValidationError(f"{path}: search: must be a table of parameter ranges")
    params = tuple(
        _parse_entry(name, raw, f"{path}: search.{name}", fixed_model, fixed_train) for name, raw in search.items()
    )
    for p in params:
        table = fixed_model if p.section == "model" else fixed_train
        if p.name in table:
            raise ValidationError(f"{path}: search.{p.name}: also fixed in [{p.section}]; keep one of the two")
    mo = data.get("multi_objective", {})
    if not isinstance(mo, dict) or sorted(set(mo) - {"n_hidden"}):
        raise ValidationError(f"{path}: multi_objective: only n_hidden can be given there")
    neurons = None
    if "n_hidden" in mo:
        neurons = _parse_entry(
            "n_hidden",
            mo["n_hidden"],
            f"{path}: multi_objective.n_hidden",
            {k: v for k, v in fixed_model.items() if k != "n_hidden"},
            fixed_train,
        )
    return SearchSpace(path, fixed_model, fixed_train, params, neurons)


def load_search_space(path: str | Path | None = None) -> SearchSpace:
    """Read and validate a search-space file (default: :func:`default_space_path`)."""
    p = Path(path) if path is not None else default_space_path()
    if path is None and not p.is_file():
        raise ValidationError(f"--space: the default search space {p} is not in this installation; pass --space FILE")
    return parse_search_space(read_config_file(p), str(p))
