"""Integer arithmetic every semantics shares: the decay, the two wraps, in-place kernels, the |q| bound.

Moved here unchanged from ``rsnn_deploy.emulator`` (which re-exports the public names) so that each
semantics module (:mod:`.loihi1`, :mod:`.loihi2`) is written over one set of exact helpers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from rsnn_deploy.qnet import QuantizedNetwork

__all__ = ["decay_int", "q_bound", "wrap", "wrap_lava"]


def decay_int(x: np.ndarray, decay: np.ndarray | int, offset: int = 0, bits: int = 12) -> np.ndarray:
    """Integer leak ``sign(x) * ((|x| * (2**bits - offset - decay)) >> bits)``.

    Identical to ``nengo_loihi.builder.discretize.decay_int`` and to the decays in Lava's
    ``PyLifModelBitAcc`` / ``PyATRLIFModelFixed`` (rounding toward zero, in int64 so the
    product of a 24-bit state and a 13-bit factor cannot overflow).
    """
    r = (1 << bits) - offset - np.asarray(decay, dtype=np.int64)
    x = np.asarray(x, dtype=np.int64)
    mag = (np.abs(x) * r) >> bits
    return np.where(x < 0, -mag, mag)


def wrap(x: np.ndarray, bits: int) -> np.ndarray:
    """Two's-complement wrap into ``[-2**bits, 2**bits)`` (nengo-loihi ``overflow_signed``)."""
    x = np.asarray(x, dtype=np.int64)
    half = 1 << bits
    return ((x + half) & ((half << 1) - 1)) - half


def wrap_lava(x: np.ndarray, bits: int) -> np.ndarray:
    """Lava's current wrap, literally: ``x > 2**b -> x - 2**(b+1)``; ``x <= -2**b -> x + 2**(b+1)``.

    Unlike two's complement it keeps ``+2**b`` and maps ``-2**b`` to ``+2**b`` (range
    ``(-2**b, 2**b]``), and it wraps once only (enough, since Lava's input is 16-bit).
    """
    x = np.asarray(x, dtype=np.int64)
    m = 1 << bits
    out = np.where(x > m, x - 2 * m, x)
    return np.where(out <= -m, x + 2 * m, out)


def _decay_into(
    x: np.ndarray, decay: np.ndarray, offset: int, out: np.ndarray, signed: bool = True, bits: int = 12
) -> None:
    """``out = decay_int(x, decay, offset, bits)``; ``out`` may be ``x`` itself.

    float64 states (holding integers, as :func:`run` keeps them): ``trunc(x * (r / 2**bits))``,
    exact because ``r / 2**bits`` is a dyadic fraction and ``|x| * r < 2**53``; truncation
    toward zero is ``sign(x) * floor(|x| * r / 2**bits)``. int64 states: shifts;
    ``signed=False`` declares ``x >= 0`` and skips the sign handling.
    """
    r = (1 << bits) - offset - decay
    if out.dtype.kind == "f":
        np.multiply(x, r / float(1 << bits), out=out)
        np.trunc(out, out=out)
    elif not signed:
        np.multiply(x, r, out=out)
        np.right_shift(out, bits, out=out)
    else:
        mag = (np.abs(x) * r) >> bits
        np.copyto(out, np.where(x < 0, -mag, mag))  # not negative(where=): masked ufuncs are slow


def _outside(x: np.ndarray, low: int, high: int) -> bool:
    """Whether any entry lies outside ``[low, high]`` (two reductions, no temporaries)."""
    return bool(x.size) and (int(x.min()) < low or int(x.max()) > high)


def _clip_into(x: np.ndarray, low: int, high: int) -> None:
    """``np.clip(x, low, high, out=x)``, touching only the sides that need it (numpy's clip is slow)."""
    if x.size and int(x.min()) < low:
        np.maximum(x, low, out=x)
    if x.size and int(x.max()) > high:
        np.minimum(x, high, out=x)


def _wrap_counted(x: np.ndarray, bits: int) -> tuple[np.ndarray, int]:
    """``wrap(x, bits)`` and how many entries it changed; returns ``x`` itself when nothing wraps."""
    half = 1 << bits
    if not _outside(x, -half, half - 1):
        return x, 0
    w = wrap(x, bits)
    return w, int(np.count_nonzero(w != x))


def _fresh_like(state: tuple[np.ndarray, ...]) -> list[np.ndarray]:
    return [np.zeros_like(a) for a in state[:-1]] + [state[-1].copy()]


def q_bound(qnet: QuantizedNetwork) -> np.ndarray:
    """Largest |q| each neuron can receive in one step (all positive or all negative inputs at once)."""
    pos = np.maximum(qnet.w_in, 0).sum(axis=1)
    neg = -np.minimum(qnet.w_in, 0).sum(axis=1)
    if qnet.w_rec is not None:
        pos = pos + np.maximum(qnet.w_rec, 0).sum(axis=1)
        neg = neg - np.minimum(qnet.w_rec, 0).sum(axis=1)
    return np.maximum(pos, neg)
