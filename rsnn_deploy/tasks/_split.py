"""``Split`` and ``Task``: what every task hands to training, backends and the verifier.

A split does not need to hold its spikes: it holds a *source* (raw data plus a pure
encoder) and the row indices it covers. ``spikes(idx)`` encodes only the rows asked for,
which is what makes ``sfmnist-pixel`` (60000 x 784 steps x 80 channels, 3.7 GB as uint8)
usable, and makes subsets (validation split, ``--limit``) free: they share the source.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rsnn_deploy.errors import ValidationError

__all__ = ["ArraySource", "EncodedSource", "Source", "Split", "Task", "split_validation"]

READOUT_MODES: tuple[str, ...] = ("mean", "last")


class Source:
    """Rows of spike trains ``[T, C]`` addressed by integer row index; encoding on demand.

    Subclasses implement :meth:`rows`. A source is never mutated after construction
    (arrays are made read-only), so splits can share one.
    """

    n_rows: int
    n_steps: int
    n_channels: int

    def rows(self, rows: np.ndarray) -> np.ndarray:
        """Spikes of ``rows`` (int64 [B], valid row numbers) as a fresh uint8 [B, T, C] array."""
        raise NotImplementedError


class ArraySource(Source):
    """Spikes held in memory as a uint8 ``[N, T, C]`` array (small tasks)."""

    def __init__(self, spikes: np.ndarray) -> None:
        if spikes.ndim != 3 or spikes.dtype != np.uint8:
            raise ValueError(f"ArraySource needs uint8 [N, T, C], got {spikes.dtype} {spikes.shape}")
        spikes = np.ascontiguousarray(spikes)
        spikes.setflags(write=False)
        self._spikes = spikes
        self.n_rows, self.n_steps, self.n_channels = spikes.shape

    def rows(self, rows: np.ndarray) -> np.ndarray:
        return self._spikes[rows]  # fancy indexing: always a copy


class EncodedSource(Source):
    """Raw data ``[N, ...]`` plus a pure encoder applied per batch of rows.

    ``encode(raw[rows])`` must return uint8 ``[B, n_steps, n_channels]`` and depend on
    nothing but its argument (so results never depend on batch composition).
    """

    def __init__(
        self,
        raw: np.ndarray,
        encode: Callable[[np.ndarray], np.ndarray],
        n_steps: int,
        n_channels: int,
    ) -> None:
        raw = np.ascontiguousarray(raw)
        raw.setflags(write=False)
        self._raw = raw
        self._encode = encode
        self.n_rows = raw.shape[0]
        self.n_steps = n_steps
        self.n_channels = n_channels

    def rows(self, rows: np.ndarray) -> np.ndarray:
        out = self._encode(self._raw[rows])
        if out.shape != (len(rows), self.n_steps, self.n_channels) or out.dtype != np.uint8:
            raise AssertionError(  # a bug in a task module, not a user error
                f"encoder returned {out.dtype} {out.shape}, expected uint8 {(len(rows), self.n_steps, self.n_channels)}"
            )
        return out


def _as_rows(idx: np.ndarray | slice | None, n: int, owner: str) -> np.ndarray:
    """Normalise ``idx`` (None, slice, int array, bool mask) to int64 positions in ``[0, n)``."""
    if idx is None:
        return np.arange(n, dtype=np.int64)
    if isinstance(idx, slice):
        return np.arange(n, dtype=np.int64)[idx]
    arr = np.asarray(idx)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise IndexError(f"{owner}: boolean mask must have shape ({n},) (got {arr.shape})")
        return np.flatnonzero(arr).astype(np.int64)
    if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
        raise IndexError(f"{owner}: index must be a 1-D integer array, a slice or None (got {arr.dtype} {arr.shape})")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < -n or arr.max() >= n):
        raise IndexError(f"{owner}: index out of range for {n} samples (got {arr.min()}..{arr.max()})")
    return np.where(arr < 0, arr + n, arr)


@dataclass(frozen=True, eq=False)
class Split:
    """One split of a task: labels plus spikes encoded on demand.

    Attributes
    ----------
    labels : int64 [N]
        Class of each sample (read-only).
    n_steps : int
        Time steps ``T`` of every sample.
    n_channels : int
        Input channels ``C``.
    source : Source
        Where the spikes come from; shared between a split and its subsets.
    rows : int64 [N]
        Rows of ``source`` this split covers, in order.
    """

    labels: np.ndarray
    n_steps: int
    n_channels: int
    source: Source = field(repr=False)
    rows: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        labels = np.asarray(self.labels, dtype=np.int64)
        rows = np.asarray(self.rows, dtype=np.int64)
        if labels.shape != rows.shape or labels.ndim != 1:
            raise ValueError(f"Split: labels {labels.shape} and rows {rows.shape} must be equal 1-D shapes")
        if (self.n_steps, self.n_channels) != (self.source.n_steps, self.source.n_channels):
            raise ValueError("Split: n_steps/n_channels disagree with the source")
        rows.setflags(write=False)
        # labels stay writable: torch.as_tensor warns on read-only arrays. Treat them as read-only.
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "rows", rows)

    @classmethod
    def from_source(cls, source: Source, labels: np.ndarray) -> Split:
        """A split covering every row of ``source`` in order."""
        return cls(labels, source.n_steps, source.n_channels, source, np.arange(source.n_rows))

    @classmethod
    def from_spikes(cls, spikes: np.ndarray, labels: np.ndarray) -> Split:
        """A split holding uint8 spikes ``[N, T, C]`` in memory."""
        return cls.from_source(ArraySource(spikes), labels)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def spikes(self, idx: np.ndarray | slice | None = None) -> np.ndarray:
        """Binary spikes ``uint8 {0,1} [B, T, C]`` of the samples ``idx`` (all when None).

        Deterministic: the same sample always gives the same spikes, whatever batch it is
        requested in. The result is a fresh array the caller may modify. ``spikes()`` on
        ``sfmnist-pixel`` would need 3.7 GB: request batches there.
        """
        pos = _as_rows(idx, len(self), "Split.spikes.idx")
        return self.source.rows(self.rows[pos])

    def subset(self, idx: np.ndarray | slice) -> Split:
        """The samples ``idx`` of this split as a new split sharing the same source."""
        pos = _as_rows(idx, len(self), "Split.subset.idx")
        return Split(self.labels[pos], self.n_steps, self.n_channels, self.source, self.rows[pos])


def split_validation(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """Deterministically hold out ``round(fraction * N)`` samples of ``split`` for validation.

    The held-out samples are a seeded random choice (``numpy.random.default_rng(seed)``),
    so the split depends on nothing but ``(N, fraction, seed)``. Both parts keep the
    original sample order, which keeps lazy sources reading forward.

    Returns
    -------
    (train, val) : tuple of Split
    """
    if not isinstance(fraction, (int, float)) or not 0.0 < float(fraction) < 1.0:
        raise ValidationError(
            f"split_validation.fraction: must lie strictly between 0 and 1 (got {fraction!r}); "
            "use e.g. 0.1 to hold out 10 %"
        )
    n = len(split)
    n_val = round(float(fraction) * n)
    if n_val < 1 or n_val >= n:
        raise ValidationError(
            f"split_validation.fraction: leaves an empty part for {n} samples (got {fraction!r}); "
            "use a fraction that holds out at least one sample and keeps at least one"
        )
    perm = np.random.default_rng(seed).permutation(n)
    val_mask = np.zeros(n, dtype=bool)
    val_mask[perm[:n_val]] = True
    return split.subset(~val_mask), split.subset(val_mask)


@dataclass(frozen=True, eq=False)
class Task:
    """A classification task as binary spike trains.

    Attributes
    ----------
    name : str
        One of ``TASK_NAMES``.
    train, test : Split
    n_classes : int
        Labels lie in ``[0, n_classes)``.
    readout_mode : {"mean", "last"}
        ``"mean"``: logits are the time mean of the readout; ``"last"``: the readout at
        the last step (tasks whose answer is only known at the end, e.g. store-recall).
    params : dict
        JSON-serialisable; ``load_task(task.name, **task.params)`` rebuilds the same task
        (same spikes, same labels), encoder settings included.
    encoder : InputEncoder or None
        The complete input code (raw values -> these spikes) that a model trained on this
        task records and carries into every artifact (:mod:`rsnn_deploy.tasks.input_encoder`).
    """

    name: str
    train: Split
    test: Split
    n_classes: int
    readout_mode: str
    params: dict[str, Any]
    encoder: Any = None

    def __post_init__(self) -> None:
        if self.readout_mode not in READOUT_MODES:
            raise ValueError(f"Task.readout_mode must be one of {READOUT_MODES} (got {self.readout_mode!r})")

    @property
    def n_steps(self) -> int:
        return self.train.n_steps

    @property
    def n_channels(self) -> int:
        return self.train.n_channels
