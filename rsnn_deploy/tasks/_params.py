"""Checking task parameters: one ``ValidationError`` line naming ``<task>.<param>``.

Parameters arrive as ``**params`` from the CLI, a config file or a checkpoint's JSON,
so a typo must fail loudly (never be ignored) and a value of the wrong type must fail
before hours of training, with the allowed range in the message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from rsnn_deploy.errors import DataError, ValidationError


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


def recorded_thresholds(
    task: str,
    given: Any,
    fitted: np.ndarray,
    data: dict[str, np.ndarray],
    encode: Callable[[np.ndarray, np.ndarray], np.ndarray],
    hint: str,
) -> np.ndarray:
    """The thresholds to encode with: the recorded ``given`` ones when there are any, else ``fitted``.

    ``params["thresholds"]`` records a model's input code, and a model is only ever fed that
    code: the recorded values are used as they are, never recomputed (on another CPU, numpy's
    SIMD loops give MNIST-1D's quantiles a few ulp apart). Whether the *data* still are the ones
    the model was trained on is measured where it matters, on the spikes: ``data`` (named raw
    arrays) are encoded with both threshold sets. Identical spikes pass silently; a difference
    means the data changed (another file, another package release) and is refused, showing the
    first differing spike and threshold, and ``hint`` (what to do).
    """
    if given is None:
        return fitted
    try:
        arr = np.array(given, dtype=np.float64)
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.shape != fitted.shape:
        shape = None if arr is None else list(arr.shape)
        raise ValidationError(
            f"{task}.thresholds: must be {list(fitted.shape)} numbers as recorded with the model (got shape {shape})"
        )
    if np.array_equal(arr, fitted):
        return arr
    from rsnn_deploy.tasks.input_encoder import first_spike_difference

    for name, x in data.items():
        rec, now = encode(x, arr), encode(x, fitted)
        where = first_spike_difference(rec, now)
        if where is None:
            continue
        # the threshold behind the differing channel (level-crossing layout: feature d owns 2K channels)
        n_k = fitted.shape[-1]
        d, j = divmod(where[2], 2 * n_k)
        k = d * n_k + j % n_k if fitted.ndim == 2 else j % n_k
        flat_rec, flat_now = arr.ravel(), fitted.ravel()
        raise DataError(
            f"{task}.thresholds: the rebuilt data no longer give the model's input spikes ({name} sample {where[0]}, "
            f"step {where[1]}, channel {where[2]}: {int(rec[where])} with the recorded encoder, {int(now[where])} "
            f"with one fitted to these data; threshold {k}: recorded {flat_rec[k]!r}, fitted {flat_now[k]!r}); "
            f"the data changed since the model was trained: {hint}"
        )
    return arr
