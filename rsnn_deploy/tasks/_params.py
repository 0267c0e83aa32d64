"""Checking task parameters: one ``ValidationError`` line naming ``<task>.<param>``.

Parameters arrive as ``**params`` from the CLI, a config file or a checkpoint's JSON,
so a typo must fail loudly (never be ignored) and a value of the wrong type must fail
before hours of training, with the allowed range in the message.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rsnn_deploy.errors import ValidationError


def check_known(task: str, params: dict[str, Any], allowed: dict[str, Any]) -> dict[str, Any]:
    """Defaults overlaid with ``params``; an unknown key is an error listing the known ones."""
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValidationError(
            f"{task}.{unknown[0]}: unknown parameter (got {params[unknown[0]]!r}); "
            f"{task} accepts {', '.join(sorted(allowed)) or 'no parameters'}"
        )
    return {**allowed, **params}


def check_int(task: str, name: str, value: Any, low: int, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]`` (bool and non-integral floats refused)."""
    ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok and isinstance(value, float) and value.is_integer():
        value, ok = int(value), True
    if not ok or value < low or (high is not None and value > high):
        rng = f">= {low}" if high is None else f"between {low} and {high}"
        raise ValidationError(f"{task}.{name}: must be an integer {rng} (got {value!r})")
    return int(value)


def check_float(task: str, name: str, value: Any, low: float, high: float) -> float:
    """``value`` as a float in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= float(value) <= high:
        raise ValidationError(f"{task}.{name}: must be a number between {low} and {high} (got {value!r})")
    return float(value)


def check_choice(task: str, name: str, value: Any, choices: tuple[str, ...]) -> str:
    """``value`` as one of ``choices``."""
    if value not in choices:
        raise ValidationError(f"{task}.{name}: must be one of {', '.join(choices)} (got {value!r})")
    return str(value)


def check_thresholds(task: str, given: Any, computed: np.ndarray) -> None:
    """Refuse a rebuild whose data-derived thresholds differ from the recorded ones.

    ``params["thresholds"]`` records the encoder's thresholds so that a checkpoint pins its
    input code; passing them back does not override the computation but *checks* it: a
    difference means the data changed (another file, another package version), and the
    network would silently see a different input code.
    """
    if given is None:
        return
    try:
        arr = np.asarray(given, dtype=np.float64)
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.shape != computed.shape or not np.array_equal(arr, computed):
        raise ValidationError(
            f"{task}.thresholds: differ from the thresholds computed from the data "
            f"(got {np.asarray(given, dtype=object).ravel()[:3].tolist()}..., computed "
            f"{computed.ravel()[:3].tolist()}...); the data changed since these params were recorded: "
            "drop 'thresholds' to accept the new encoding, and retrain"
        )
