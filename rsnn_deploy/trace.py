"""What every backend returns: a :class:`Trace` of spikes, optional states and the host readout.

A backend is anything that runs a network on encoded inputs ``[B, T, C]``; the
verifier compares backends only through this type. Time is always aligned with the
float model: trace step ``t`` is the step at which the float model sees input
``x[t]`` (backends with input latency drop their leading steps, see
:func:`rsnn_deploy.emulator.run`).

The readout is the one float part of a deployed network. It runs on the host as a
non-spiking leaky integrator of the hidden spikes and is written once, here: the step
:func:`readout_update`, over a whole run :func:`host_readout`, step by step
:class:`HostReadout` (the hardware-in-the-loop session); the integer ONNX graph builds its
readout nodes by running :func:`readout_update` on symbolic values::

    y[t] = (a_out * y[t-1] + w_out @ z[t]) + b_out,   y[-1] = 0     (float64, in this order)
    logits = mean_t y[t]    (readout_mode 'mean')   or   y[T-1]   ('last')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from rsnn_deploy.errors import ValidationError

__all__ = [
    "HostReadout",
    "ReadoutMode",
    "Trace",
    "check_spikes",
    "first_divergence",
    "host_readout",
    "is_binary",
    "readout_update",
]

ReadoutMode = Literal["mean", "last"]


@dataclass(frozen=True)
class Trace:
    """Result of running a network on a batch.

    Attributes
    ----------
    spikes : bool ndarray [B, T, H]
        Hidden spikes ``z[t]``.
    readout : float32 ndarray [B, T, K]
        Host readout ``y[t]``.
    logits : float64 ndarray [B, K]
        ``mean_t y[t]`` or ``y[T-1]`` per the network's readout mode.
    current, voltage, adaptation : int64 ndarray [B, T, H] or None
        Integer states after step ``t`` (``u``; ``v`` after reset, as nengo-loihi probes
        it; threshold adaptation ``theta - theta_0``), present when recorded.
    refractory : int64 ndarray [B, T, H] or None
        ATRLIF's refractory state ``r`` (loihi2 adaptive networks), present when recorded.
    overflow : mapping of str to int
        How many neuron-steps overflowed each state and were wrapped
        (``q``, ``u``, ``u2``, ``theta``...): zero for a network that never relies on wrap-around.
    """

    spikes: np.ndarray
    readout: np.ndarray
    logits: np.ndarray
    current: np.ndarray | None = None
    voltage: np.ndarray | None = None
    adaptation: np.ndarray | None = None
    refractory: np.ndarray | None = None
    overflow: Mapping[str, int] = field(default_factory=dict)

    @property
    def predictions(self) -> np.ndarray:
        """Predicted class per sample: ``argmax`` of the logits, int64 ``[B]``."""
        return np.argmax(self.logits, axis=-1)

    @property
    def batch_size(self) -> int:
        return int(self.spikes.shape[0])

    @property
    def n_steps(self) -> int:
        return int(self.spikes.shape[1])


def host_readout(
    spikes: np.ndarray,
    w_out: np.ndarray,
    b_out: np.ndarray,
    decay: float,
    mode: ReadoutMode,
) -> tuple[np.ndarray, np.ndarray]:
    """Run the host readout over hidden spikes; the single implementation every backend uses.

    Parameters
    ----------
    spikes : ndarray [B, T, H]
        Hidden spikes (bool or 0/1).
    w_out : ndarray [K, H]
        Readout weights (float units of the float model).
    b_out : ndarray [K]
        Readout bias, added every step.
    decay : float
        ``a_out`` in ``[0, 1)``: the readout's leak per step (0 = no memory).
    mode : {'mean', 'last'}
        How logits are taken from ``y``.

    Returns
    -------
    readout : float32 ndarray [B, T, K]
    logits : float64 ndarray [B, K]
        Accumulated in float64 so that the mean over long sequences does not drift.
    """
    if spikes.ndim != 3:
        raise ValidationError(f"host_readout.spikes: must be [B, T, H] (got shape {spikes.shape})")
    b, t_steps, h = spikes.shape
    w, bias = _check_readout("host_readout", w_out, b_out, decay, mode, h)
    k = w.shape[0]
    readout = np.empty((b, t_steps, k), dtype=np.float32)
    y = np.zeros((b, k), dtype=np.float64)
    total = np.zeros((b, k), dtype=np.float64)
    if b == 0 or t_steps == 0:
        return readout, (total if mode == "mean" else y.copy())
    # The drive z @ W^T of every step of a batch chunk in one matmul (a per-step loop of small
    # matmuls was most of the cost at batch 1); chunks bound the float64 copy of the spikes.
    chunk = max(1, (1 << 20) // (t_steps * max(h, k)))
    drive = np.empty((min(b, chunk), t_steps, k), dtype=np.float64)
    wt = np.ascontiguousarray(w.T)
    for b0 in range(0, b, chunk):
        b1 = min(b, b0 + chunk)
        d = drive[: b1 - b0]
        np.matmul(spikes[b0:b1].reshape(-1, h).astype(np.float64), wt, out=d.reshape(-1, k))
        _integrate(d, bias, float(decay), readout[b0:b1], y[b0:b1], total[b0:b1])
    logits = total / max(t_steps, 1) if mode == "mean" else y.copy()
    return readout, logits


def readout_update(y: Any, drive: Any, bias: Any, decay: Any) -> Any:
    """One readout step, ``y = (decay * y + drive) + bias`` with ``drive = w_out @ z``: the one order.

    :func:`host_readout` (its numpy loop; its C scan ``rsnn_readout_scan`` has the same
    operations), :class:`HostReadout` and the integer ONNX graph (on symbolic values) all run it.
    """
    return decay * y + drive + bias


def _check_readout(
    owner: str, w_out: np.ndarray, b_out: np.ndarray, decay: float, mode: str, n_hidden: int
) -> tuple[np.ndarray, np.ndarray]:
    """The readout's weights and bias as float64, after checking every argument (one-line errors)."""
    w = np.asarray(w_out, dtype=np.float64)
    bias = np.asarray(b_out, dtype=np.float64)
    if w.ndim != 2 or w.shape[1] != n_hidden:
        raise ValidationError(f"{owner}.w_out: must be [K, {n_hidden}] (got shape {w.shape})")
    if bias.shape != (w.shape[0],):
        raise ValidationError(f"{owner}.b_out: must be [{w.shape[0]}] (got shape {bias.shape})")
    if mode not in ("mean", "last"):
        raise ValidationError(f"{owner}.mode: must be 'mean' or 'last' (got {mode!r})")
    if not 0.0 <= decay < 1.0:
        raise ValidationError(f"{owner}.decay: must lie in [0, 1) (got {decay!r})")
    return w, bias


class HostReadout:
    """The host readout one step at a time (a live loop), the same numbers as :func:`host_readout`.

    ``step(z)`` takes the hidden spikes ``[batch, H]`` of one trace step and returns the
    readout ``y`` and the running logits: ``mean(y[0..t])`` (mode ``mean``) or ``y[t]``.
    """

    def __init__(self, w_out: np.ndarray, b_out: np.ndarray, decay: float, mode: str, batch: int) -> None:
        w, self._bias = _check_readout("HostReadout", w_out, b_out, decay, mode, np.shape(w_out)[-1])
        self._w_t = np.ascontiguousarray(w.T)
        self._decay, self._mode, self.batch = float(decay), mode, batch
        self.reset()

    def reset(self) -> None:
        """Back to ``y = 0``, no steps seen."""
        k, h = self._w_t.shape[1], self._w_t.shape[0]
        self._y = np.zeros((self.batch, k), dtype=np.float64)
        self._total = np.zeros((self.batch, k), dtype=np.float64)
        self._z = np.empty((self.batch, h), dtype=np.float64)
        self._drive = np.empty((self.batch, k), dtype=np.float64)
        self.steps = 0

    def step(self, spikes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(y, logits)`` after the spikes ``[batch, H]`` of the next trace step (fresh arrays)."""
        np.copyto(self._z, spikes)
        np.matmul(self._z, self._w_t, out=self._drive)
        self._y[...] = readout_update(self._y, self._drive, self._bias, self._decay)
        self._total += self._y
        self.steps += 1
        logits = self._total / self.steps if self._mode == "mean" else self._y.copy()
        return self._y.copy(), logits


def _integrate(
    drive: np.ndarray, bias: np.ndarray, decay: float, readout: np.ndarray, y: np.ndarray, total: np.ndarray
) -> None:
    """y = decay y + drive[t] + bias step by step, into ``readout`` [B, T, K]; ``y``, ``total`` [B, K] (zeros in).

    In C where the native library is built (``rsnn_readout_scan``: the same operations in the
    same order, so the same bits), else this numpy loop.
    """
    from rsnn_deploy import native

    bias = np.ascontiguousarray(bias, dtype=np.float64)
    if native.readout_scan(drive, bias, decay, readout, y, total):
        return
    for t in range(drive.shape[1]):
        y[...] = readout_update(y, drive[:, t], bias, decay)
        readout[:, t] = y
        total += y


def first_divergence(a: Any, b: Any, fields: tuple[str, ...] = ("spikes", "voltage", "current", "adaptation")
                     ) -> dict[str, Any] | None:
    """The first (sample, step, neuron, variable) where two traces differ, or None when identical.

    Time comes first: the earliest step over all compared variables wins (a voltage
    difference usually precedes the spike difference it causes).
    """
    best: dict[str, Any] | None = None
    for name in fields:
        x, y = getattr(a, name), getattr(b, name)
        if x is None or y is None:
            continue
        bad = np.argwhere(np.asarray(x) != np.asarray(y))
        if bad.size == 0:
            continue
        order = np.lexsort((bad[:, 2], bad[:, 0], bad[:, 1]))  # by step, then sample, then neuron
        s, t, n = (int(v) for v in bad[order[0]])
        if best is None or (t, s) < (best["step"], best["sample"]):
            best = {"sample": s, "step": t, "neuron": n, "variable": name,
                    "a": np.asarray(x)[s, t, n].item(), "b": np.asarray(y)[s, t, n].item()}
    return best


def is_binary(x: np.ndarray) -> bool:
    """Whether every entry of ``x`` is 0 or 1: the one rule every runner checks its input spikes with.

    Bool always is; numbers by min/max and, for floats, integrality (NaN is not 0/1). Min/max
    rather than ``np.isin``, which sorts (94M values in one verify). :func:`check_spikes` is the
    check built on it (shape, dtype, values, one-line messages).
    """
    x = np.asarray(x)
    if x.dtype == np.bool_ or x.size == 0:
        return True
    if x.min() < 0 or x.max() > 1:
        return False
    return not np.issubdtype(x.dtype, np.floating) or bool(np.array_equal(x, x.astype(bool)))


def check_spikes(x: Any, field: str, shape: tuple[int | str, ...], floats: bool = True) -> np.ndarray:
    """``x`` as an array of 0/1 spikes of ``shape``, or a one-line ValidationError naming ``field``.

    The one input check of every runner. ``shape`` holds sizes and names (``("B", "T", 8)``:
    any batch and length, 8 channels). Bool passes; integers too, and floats unless
    ``floats`` is False, when :func:`is_binary` holds. The array is returned as it came
    (each caller converts it to what it runs on).
    """
    arr = np.asarray(x)
    if arr.ndim != len(shape) or any(isinstance(d, int) and n != d for n, d in zip(arr.shape, shape, strict=True)):
        raise ValidationError(f"{field}: must be [{', '.join(map(str, shape))}] (got shape {arr.shape})")
    numeric = np.issubdtype(arr.dtype, np.integer) or (floats and np.issubdtype(arr.dtype, np.floating))
    if arr.dtype != np.bool_ and not numeric:
        kind = "numbers" if floats else "integers"
        raise ValidationError(f"{field}: must be bool or 0/1 {kind} (got dtype {arr.dtype})")
    if not is_binary(arr):
        raise ValidationError(f"{field}: must hold only 0 and 1 (got values in [{arr.min()}, {arr.max()}])")
    return arr
