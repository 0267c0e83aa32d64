"""Deterministic spike encoders: real values -> binary spikes ``uint8 {0,1}``.

Every backend (torch, integer emulator, nengo-loihi, onnx) must see the *same* input,
so encoding is a pure function of the data and a few numbers stored in the task's
``params``: no randomness, no floating-point accumulation that could differ between
machines (only comparisons against fixed thresholds).

Two codes are used by the built-in tasks:

Level crossing (``level_crossing``)
    For thresholds ``th_0 < ... < th_{K-1}`` define the *level* of a value as the number
    of thresholds it has reached, ``L(x) = #{k : x >= th_k}``. Channel ``(k, up)`` spikes
    at step ``t`` when the signal crosses ``th_k`` upward between ``t-1`` and ``t``
    (``x[t-1] < th_k <= x[t]``), channel ``(k, down)`` when it crosses downward
    (``x[t] < th_k <= x[t-1]``). A jump over several thresholds in one step makes
    several channels spike at once.

    Step ``t = 0`` depends on ``start``:

    - ``"floor"`` (default): before ``t = 0`` the signal is taken to lie below every
      threshold, so ``t = 0`` emits up spikes on every threshold ``x[0]`` has reached
      (a thermometer code of the initial value). The code is then lossless up to
      quantization: ``cumsum(up - down, axis=time) == L(x)`` at every step
      (:func:`decode_level_crossing`).
    - ``"hold"``: the signal is taken to be ``x[0]`` before ``t = 0``; nothing spikes at
      ``t = 0`` and the starting level is lost (only changes are seen).

    Channel layout for ``D`` input features and ``K`` thresholds: feature ``d`` owns the
    ``2K`` consecutive channels ``[d*2K, (d+1)*2K)``; within them the ``K`` up channels come
    first (threshold order), then the ``K`` down channels.

Thermometer (``thermometer``)
    Channel ``(d, l)`` is on at every step where ``x[t, d] >= th_l`` (a level code, not an
    event code); layout ``d*L + l``.
"""

from __future__ import annotations

import functools

import numpy as np

from rsnn_deploy.errors import ValidationError

__all__ = [
    "START_MODES",
    "crossings",
    "decode_level_crossing",
    "even_thresholds",
    "level_crossing",
    "levels",
    "quantile_thresholds",
    "thermometer",
]

START_MODES: tuple[str, ...] = ("floor", "hold")


def even_thresholds(n: int) -> np.ndarray:
    """``n`` thresholds evenly spaced strictly inside (0, 1): ``(k + 1) / (n + 1)``.

    The ends are excluded so that a pixel at exactly 0 (background) emits nothing and a
    pixel at exactly 1 has reached every threshold.
    """
    return (np.arange(n, dtype=np.float64) + 1.0) / (n + 1.0)


def quantile_thresholds(values: np.ndarray, n: int, *, axis: int | None = None) -> np.ndarray:
    """``n`` thresholds at the interior quantiles ``(k + 1) / (n + 1)`` of ``values``.

    Quantiles spread the thresholds where the data actually lies, so each channel is
    about equally busy (what made level crossing beat a thermometer code on MNIST-1D).
    Compute them on *training* data only: thresholds are part of the model's input.

    Parameters
    ----------
    values : array
        Real values; with ``axis=None`` pooled over all entries, else one threshold set
        per remaining index (e.g. ``axis=0`` on ``[S, D]`` gives ``[D, n]``).
    n : int
        Number of thresholds.
    """
    q = (np.arange(n, dtype=np.float64) + 1.0) / (n + 1.0)
    th = np.quantile(np.asarray(values, dtype=np.float64), q, axis=axis)
    # np.quantile puts the quantile axis first; thresholds belong last.
    return np.ascontiguousarray(np.moveaxis(th, 0, -1)) if axis is not None else th


def levels(x: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """``L(x) = #{k : x >= th_k}`` per value (int64); thresholds ``[K]`` or ``[D, K]``."""
    if thresholds.ndim == 1:
        return np.searchsorted(thresholds, x, side="right")
    return np.count_nonzero(x[..., None] >= thresholds, axis=-1)


@functools.lru_cache(maxsize=16)
def _crossing_table(n_k: int) -> np.ndarray:
    """Spikes for every level change: ``table[a, b]`` is the ``[2K]`` up/down pattern of a step
    from level ``a`` to level ``b``. It depends on ``K`` only, so encoding is one gather."""
    a = np.arange(n_k + 1)[:, None, None]
    b = np.arange(n_k + 1)[None, :, None]
    k = np.arange(n_k)
    up = (a <= k) & (k < b)  # rising from a to b passes thresholds a .. b-1
    down = (b <= k) & (k < a)
    table = np.concatenate([up, down], axis=-1).astype(np.uint8)
    table.setflags(write=False)
    return table


def level_crossing(x: np.ndarray, thresholds: np.ndarray, *, start: str = "floor") -> np.ndarray:
    """Encode ``x`` [N, T, D] (or [N, T]) as up/down threshold-crossing spikes.

    Parameters
    ----------
    x : array, [N, T, D] or [N, T]
        Real-valued signals (time on axis 1). Must be finite.
    thresholds : array, [K] (shared) or [D, K] (per feature)
        Sorted ascending along the last axis.
    start : {"floor", "hold"}
        What the signal is before ``t = 0`` (see the module docstring).

    Returns
    -------
    uint8 array [N, T, D * 2K] of {0, 1}; layout as in the module docstring.
    """
    x = np.asarray(x)
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3:
        raise ValidationError(f"level_crossing.x: must have shape [N, T] or [N, T, D] (got shape {x.shape})")
    th = np.asarray(thresholds, dtype=np.float64)
    if th.ndim not in (1, 2) or th.shape[-1] == 0 or (th.ndim == 2 and th.shape[0] != x.shape[2]):
        raise ValidationError(
            f"level_crossing.thresholds: must have shape [K] or [D={x.shape[2]}, K] (got shape {th.shape})"
        )
    if np.any(np.diff(th, axis=-1) < 0):
        raise ValidationError("level_crossing.thresholds: must be sorted ascending (got unsorted values)")
    return crossings(levels(x, th), th.shape[-1], start=start)


def crossings(level: np.ndarray, n_thresholds: int, *, start: str = "floor") -> np.ndarray:
    """Level-crossing spikes from precomputed levels ``L(x)`` (int [N, T, D], values 0..K).

    Split from :func:`level_crossing` so that inputs with few distinct values (uint8
    pixels) can map values to levels with a lookup table built by :func:`levels` itself,
    which gives bit-identical spikes at a fraction of the cost.
    """
    if start not in START_MODES:
        raise ValidationError(f"level_crossing.start: must be one of {START_MODES} (got {start!r})")
    prev = np.empty_like(level)
    prev[:, 1:] = level[:, :-1]
    prev[:, 0] = 0 if start == "floor" else level[:, 0]
    out = _crossing_table(n_thresholds)[prev, level]  # [N, T, D, 2K]
    return out.reshape(level.shape[0], level.shape[1], -1)


def decode_level_crossing(spikes: np.ndarray, n_thresholds: int) -> np.ndarray:
    """Inverse of :func:`level_crossing` with ``start="floor"``: the level ``L(x)`` [N, T, D].

    Used by tests and sanity checks to show that the code loses nothing but quantization.
    """
    s = np.asarray(spikes, dtype=np.int16)
    s = s.reshape(s.shape[0], s.shape[1], -1, 2, n_thresholds)
    return np.cumsum(s[..., 0, :].sum(-1) - s[..., 1, :].sum(-1), axis=1)


def thermometer(x: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Level code: channel ``(d, l)`` is 1 at every step where ``x[..., d] >= thresholds[l]``.

    Parameters
    ----------
    x : array, [N, T, D]
    thresholds : array, [L], ascending

    Returns
    -------
    uint8 array [N, T, D * L]; channel ``d * L + l``.
    """
    x = np.asarray(x)
    th = np.asarray(thresholds)
    out = (x[..., None] >= th).astype(np.uint8)
    return out.reshape(x.shape[0], x.shape[1], -1)
