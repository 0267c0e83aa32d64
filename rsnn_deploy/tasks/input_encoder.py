"""The input code as part of a model: :class:`InputEncoder` (raw signals -> the spikes a network was trained on).

A network only means something together with the code that turned its data into spikes.
That code is recorded once, when a model is trained, and travels with every artifact made
from it (checkpoint JSON ``encoder``, the ``QuantizedNetwork``, ONNX and NIR metadata), so
that loading a model never recomputes data-derived numbers (MNIST-1D's quantile thresholds
differ by a few ulp between CPUs whose SIMD code sums in another order) and a host can feed
raw sensor values (``rsnn-deploy encode``) instead of prepared spikes.

Kinds (``D`` raw features per step, ``K`` thresholds; see :mod:`rsnn_deploy.tasks.encoders`):

==================== ================ =====================================================
kind                 channels         layout
==================== ================ =====================================================
``level-crossing``   ``D * 2K``       feature ``d`` owns ``[d*2K, (d+1)*2K)``: K up, K down
``thermometer``      ``D * K``        channel ``d*K + k`` is on while ``x[t, d] >= th_k``
``thermometer+edges``  ``D * 3K``     the thermometer, then level crossing (``start=floor``)
``spikes``           ``D``            the input is already 0/1 spikes, used as is
==================== ================ =====================================================

Thresholds are ``[K]`` (shared by all features) or ``[D, K]`` (per feature), ascending. The
comparisons are exact float64 ``>=``: the same raw values give the same spikes on any machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rsnn_deploy.errors import ValidationError
from rsnn_deploy.tasks.encoders import START_MODES, level_crossing, thermometer
from rsnn_deploy.trace import is_binary

__all__ = ["ENCODER_FORMAT", "KINDS", "LAYOUTS", "InputEncoder", "first_spike_difference"]

ENCODER_FORMAT = "rsnn-deploy/encoder"
KINDS: tuple[str, ...] = ("level-crossing", "thermometer", "thermometer+edges", "spikes")
# The channel layout is recorded verbatim so that a future layout can never be read as this one.
LAYOUTS: dict[str, str] = {
    "level-crossing": "feature d owns channels [d*2K, (d+1)*2K): K up channels (threshold order), then K down",
    "thermometer": "channel d*K + k is on while x[t, d] >= thresholds[k]",
    "thermometer+edges": "channels [0, D*K): thermometer d*K + k; then [D*K, 3*D*K): level crossing of the same "
    "thresholds along time (start floor), feature d owns [D*K + d*2K, D*K + (d+1)*2K)",
    "spikes": "channel c is x[t, c] (0/1 spikes, no encoding)",
}


@dataclass(frozen=True, eq=False)
class InputEncoder:
    """A complete, recorded input code; :meth:`encode` maps raw ``x [N, T, D]`` to ``uint8 [N, T, C]``.

    Attributes
    ----------
    kind : one of :data:`KINDS`
    n_features : int
        ``D``, raw values per time step.
    thresholds : float64 [K] or [D, K], or None for ``spikes``
    start : "floor" or "hold"
        What the signal is before ``t = 0`` (level crossing; ``thermometer+edges`` uses floor).
    n_steps : int or None
        Steps per sample the model was trained on (information for hosts; any length encodes).
    raw : str
        What the raw values are, in words (e.g. "pixel / 255 of one image row").
    """

    kind: str
    n_features: int
    thresholds: np.ndarray | None = None
    start: str = "floor"
    n_steps: int | None = None
    raw: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValidationError(f"encoder.kind: must be one of {', '.join(KINDS)} (got {self.kind!r})")
        if (
            isinstance(self.n_features, bool)
            or not isinstance(self.n_features, (int, np.integer))
            or self.n_features < 1
        ):
            raise ValidationError(f"encoder.n_features: must be a positive integer (got {self.n_features!r})")
        object.__setattr__(self, "n_features", int(self.n_features))
        if self.start not in START_MODES:
            raise ValidationError(f"encoder.start: must be one of {', '.join(START_MODES)} (got {self.start!r})")
        if self.n_steps is not None and (
            isinstance(self.n_steps, bool) or not isinstance(self.n_steps, int) or self.n_steps < 1
        ):
            raise ValidationError(f"encoder.n_steps: must be a positive integer or null (got {self.n_steps!r})")
        if self.kind == "spikes":
            if self.thresholds is not None:
                raise ValidationError("encoder.thresholds: must be null for kind 'spikes' (got values)")
            return
        try:
            th = np.array(self.thresholds, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValidationError(
                f"encoder.thresholds: must be a list of numbers (got {str(self.thresholds)[:60]})"
            ) from None
        ok_shape = th.ndim == 1 or (th.ndim == 2 and th.shape[0] == self.n_features and self.kind == "level-crossing")
        if not ok_shape or th.shape[-1] == 0:
            raise ValidationError(
                f"encoder.thresholds: must have shape [K] or [D={self.n_features}, K] (got shape {list(th.shape)})"
            )
        if not np.isfinite(th).all() or np.any(np.diff(th, axis=-1) < 0):
            raise ValidationError("encoder.thresholds: must be finite and ascending (got other values)")
        th.setflags(write=False)
        object.__setattr__(self, "thresholds", th)

    # ------------------------------------------------------------------ shape

    @property
    def n_thresholds(self) -> int:
        return 0 if self.thresholds is None else int(self.thresholds.shape[-1])

    @property
    def n_channels(self) -> int:
        """Spike channels ``C`` the network sees."""
        per = {"level-crossing": 2, "thermometer": 1, "thermometer+edges": 3}
        return self.n_features if self.kind == "spikes" else self.n_features * per[self.kind] * self.n_thresholds

    # ------------------------------------------------------------------ encode

    def check_raw(self, x: Any, owner: str = "x") -> np.ndarray:
        """``x`` as a float64 ``[N, T, D]`` array, or one :class:`ValidationError` line naming ``owner``."""
        arr = np.asarray(x)
        if arr.dtype.kind not in "biuf":
            raise ValidationError(f"{owner}: must be a numeric array (got dtype {arr.dtype}); store float values")
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3 or 0 in arr.shape:
            raise ValidationError(f"{owner}: must have shape [N, T, D] or [T, D] with N, T, D >= 1 (got {arr.shape})")
        if arr.shape[2] != self.n_features:
            raise ValidationError(
                f"{owner}: has {arr.shape[2]} channels per step, the model's encoder takes {self.n_features}"
                + (f" ({self.raw})" if self.raw else "")
            )
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            bad = np.argwhere(~np.isfinite(arr))[0].tolist()
            raise ValidationError(f"{owner}: must be finite (got {arr[tuple(bad)]} at index {bad}); remove NaN/inf")
        if self.kind == "spikes" and not is_binary(arr):
            raise ValidationError(f"{owner}: the model takes 0/1 spikes (its encoder is 'spikes'); got other values")
        return arr.astype(np.float64, copy=False)

    def encode(self, x: Any, owner: str = "x") -> np.ndarray:
        """Spikes ``uint8 {0,1} [N, T, C]`` of raw ``x [N, T, D]`` (or ``[T, D]``), exactly as in training."""
        arr = self.check_raw(x, owner)
        if self.kind == "spikes":
            return arr.astype(np.uint8)
        if self.kind == "level-crossing":
            return level_crossing(arr, self.thresholds, start=self.start)
        code = thermometer(arr, self.thresholds)
        if self.kind == "thermometer":
            return code
        return np.concatenate([code, level_crossing(arr, self.thresholds, start="floor")], axis=2)

    # ------------------------------------------------------------------ record

    def to_dict(self) -> dict[str, Any]:
        """The JSON record (``checkpoint.encoder``, ``qnet.encoder``, export metadata)."""
        return {
            "format": ENCODER_FORMAT,
            "kind": self.kind,
            "n_features": self.n_features,
            "n_channels": self.n_channels,
            "thresholds": None if self.thresholds is None else self.thresholds.tolist(),
            "start": self.start,
            "layout": LAYOUTS[self.kind],
            "n_steps": self.n_steps,
            "raw": self.raw,
        }

    @classmethod
    def from_dict(cls, doc: Any, owner: str = "encoder") -> InputEncoder:
        """Parse and check a record written by :meth:`to_dict`; one ValidationError line naming ``owner.field``."""
        if not isinstance(doc, dict):
            raise ValidationError(f"{owner}: must be an object (got {type(doc).__name__})")
        if doc.get("format") != ENCODER_FORMAT:
            raise ValidationError(f"{owner}.format: not an rsnn-deploy encoder record (got {doc.get('format')!r})")
        kind = doc.get("kind")
        if kind in LAYOUTS and doc.get("layout") != LAYOUTS[kind]:
            raise ValidationError(
                f"{owner}.layout: unknown channel layout for {kind} (got {str(doc.get('layout'))[:60]!r}); "
                "the model was saved by another version of rsnn-deploy"
            )
        try:
            enc = cls(
                kind=kind,
                n_features=doc.get("n_features"),
                thresholds=doc.get("thresholds"),
                start=doc.get("start", "floor"),
                n_steps=doc.get("n_steps"),
                raw=str(doc.get("raw", "")),
            )
        except ValidationError as err:
            raise ValidationError(f"{owner}.{str(err).removeprefix('encoder.')}") from None
        if doc.get("n_channels") != enc.n_channels:
            raise ValidationError(
                f"{owner}.n_channels: {doc.get('n_channels')!r} does not match the code ({enc.n_channels} channels)"
            )
        return enc

    def same_code(self, other: InputEncoder) -> bool:
        """True when both give the same spikes for every input (kind, features, thresholds, start)."""
        same_th = (self.thresholds is None and other.thresholds is None) or (
            self.thresholds is not None
            and other.thresholds is not None
            and np.array_equal(self.thresholds, other.thresholds)
        )
        return (self.kind, self.n_features, self.start) == (other.kind, other.n_features, other.start) and same_th


def first_spike_difference(a: np.ndarray, b: np.ndarray) -> tuple[int, int, int] | None:
    """``(sample, step, channel)`` of the first differing spike of two equal-shape codes, or None."""
    if np.array_equal(a, b):
        return None
    bad = np.argwhere(a != b)
    return tuple(int(v) for v in bad[0])  # type: ignore[return-value]
