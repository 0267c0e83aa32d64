"""The float neuron, written once: its parameters, its step and its surrogate gradients.

One step, in the order a Loihi core computes it (``ARCHITECTURE.md``, dt = 1 ms)::

    i[t]     = a_s * i[t-1] + W_in x[t] + W_rec z[t-1]          # synapse (a_s = 0 without)
    n[t]     = a_a * n[t-1]                                      # adaptation state decays
    v[t]     = a_m * v[t-1] + i[t] + bias  (- n[t] for current adaptation)
    v[t]     = max(v[t], v_floor);   v[t] = 0 while refractory
    z[t]     = v[t] > threshold + n[t]     (threshold adaptation)  or  v[t] > threshold
    on spike: v = 0; refractory count = R; n += adapt_strength

ATRLIF (``adapt_kind = "atrlif"``, Lava's ``PyATRLIFModelFixed``, the adaptive neuron of
loihi2): a refractory state ``r`` decays with ``a_r = exp(-dt / tau_refr)``, the neuron
spikes on ``v - r > threshold + n`` (Lava: ``>=``, equal only on a measure-zero set in
float), then ``r += 2 (threshold + n)`` and ``n += adapt_strength``; ``v`` is never reset.

The float model's readout is a non-spiking leaky integrator of the spikes::

    y[t]     = a_o * y[t-1] + (W_out z[t] + b_out)

with ``a = exp(-dt / tau)`` (:func:`decay`). Quantization (integers, truncation, wrap)
is then the only difference from the chip. The reset is detached from the graph (a
common choice that trains better).

Why one module: the step used to be written five times (the torch model, the fast
engine, the C kernels, the nengo neuron type, the ONNX graph) and the surrogates three.
Now :func:`neuron_step` is the definition. It runs on torch tensors (training, with
autograd), on numpy arrays (the nengo neuron type, ``ops=NUMPY``) and on symbolic
values that append ONNX nodes (``rsnn_deploy.export._onnx_float``), so that the graph
holds these operations in this order. The fast engine (``fast_bptt``) and its C loops
(``bptt_kernels.c``) repeat the operations kernel by kernel for speed; tests
(``tests/test_neuron.py``) hold each of them to this step: states bit for bit, gradients
to float tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Generic, NamedTuple, TypeVar

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "ADAPT_KINDS",
    "NUMPY",
    "SURROGATES",
    "TORCH",
    "NeuronParams",
    "NeuronState",
    "SpikeFunction",
    "StepOps",
    "decay",
    "heaviside",
    "initial_state",
    "input_drive",
    "neuron_step",
    "params_as_numpy",
    "readout_drive",
    "readout_step",
    "surrogate_grad",
    "surrogate_grad_",
]

ADAPT_KINDS = ("threshold", "current", "atrlif")
SURROGATES = ("fast-sigmoid", "triangle", "arctan", "sigmoid")

A = TypeVar("A")  # the array type: torch.Tensor, numpy.ndarray, or a symbolic ONNX value


class NeuronParams(NamedTuple, Generic[A]):
    """Effective per-step parameters (after any fake quantization).

    Torch tensors for training (``RSNN.effective_params``); :func:`params_as_numpy` gives
    the numpy copy the nengo neuron type and the ONNX exporter read. ``w_rec`` is None
    without recurrence, ``bias`` None without bias. Decays are [H] (or broadcastable to it).
    """

    w_in: A  # [H, C]
    w_rec: A | None  # [H, H]
    bias: A | None  # [H]
    a_syn: A  # [H], 0 without synapse
    a_mem: A  # [H]
    a_adapt: A  # [H], unused without adaptation
    adapt_strength: float
    threshold: float
    v_floor: float | None
    refractory_steps: int
    adapt_kind: str | None  # None, "threshold", "current" or "atrlif"
    a_refr: A | None = None  # [H], ATRLIF's refractory-state decay (adapt_kind "atrlif")


class NeuronState(NamedTuple, Generic[A]):
    """State carried from one step to the next, each [B, H]."""

    i: A
    v: A
    n: A  # adaptation (threshold increase or adaptation current)
    ref: A  # remaining refractory steps (float for simplicity of autograd)
    z: A  # spikes of the previous step
    r: A | None = None  # ATRLIF refractory state (adapt_kind "atrlif")


# ----------------------------------------------------------------------------- parameters


def decay(tau: Any, dt: float) -> Any:
    """Per-step retention ``a = exp(-dt / tau)`` of a time constant (tensor or float, same units as ``dt``)."""
    if isinstance(tau, Tensor):
        return torch.exp(-dt / tau)
    return math.exp(-dt / float(tau))


def params_as_numpy(p: NeuronParams[Tensor], dtype: Any) -> NeuronParams[np.ndarray]:
    """``p`` as detached numpy arrays of ``dtype``, each decay broadcast to [H] (a copy: no shared memory)."""
    h = p.w_in.shape[0]

    def arr(t: Tensor) -> np.ndarray:
        return t.detach().cpu().to(torch.float64).numpy().astype(dtype)

    def vec(t: Tensor) -> np.ndarray:
        return np.broadcast_to(arr(t).reshape(-1), (h,)).copy()

    return NeuronParams(
        w_in=arr(p.w_in),
        w_rec=arr(p.w_rec) if p.w_rec is not None else None,
        bias=vec(p.bias) if p.bias is not None else None,
        a_syn=vec(p.a_syn),
        a_mem=vec(p.a_mem),
        a_adapt=vec(p.a_adapt),
        adapt_strength=float(p.adapt_strength),
        threshold=float(p.threshold),
        v_floor=None if p.v_floor is None else float(p.v_floor),
        refractory_steps=int(p.refractory_steps),
        adapt_kind=p.adapt_kind,
        a_refr=vec(p.a_refr) if p.a_refr is not None else None,
    )


# ----------------------------------------------------------------------------- surrogates


def surrogate_grad(x: Tensor, kind: str, slope: float) -> Tensor:
    """d spike / d x of the chosen smooth stand-in for the Heaviside step (the definition)."""
    if kind == "fast-sigmoid":
        return 1.0 / (1.0 + slope * x.abs()) ** 2
    if kind == "triangle":
        return torch.clamp(1.0 - slope * x.abs(), min=0.0)
    if kind == "arctan":
        return 1.0 / (1.0 + (math.pi * slope * x) ** 2)
    if kind == "sigmoid":
        s = torch.sigmoid(slope * x)
        return slope * s * (1.0 - s)
    raise ValueError(f"unknown surrogate {kind!r}")


def surrogate_grad_(u: Tensor, kind: str, slope: float) -> Tensor:
    """:func:`surrogate_grad` computed in place over a whole block (few passes: it is memory-bound).

    The same formulas, to float rounding (tests/test_neuron.py compares the two); the fast
    engine's backward pass uses it, ``bptt_kernels.c`` has the same formulas in C.
    """
    one = torch.ones((), dtype=u.dtype, device=u.device)
    if kind == "fast-sigmoid":  # 1 / (1 + slope |u|)^2
        torch.add(one, u.abs_(), alpha=slope, out=u).pow_(-2)
    elif kind == "triangle":  # max(1 - slope |u|, 0)
        torch.add(one, u.abs_(), alpha=-slope, out=u).clamp_min_(0.0)
    elif kind == "arctan":  # 1 / (1 + (pi slope u)^2)
        torch.addcmul(one, u, u, value=(math.pi * slope) ** 2, out=u).reciprocal_()
    elif kind == "sigmoid":  # slope s (1 - s), s = sigmoid(slope u)
        s = u.mul_(slope).sigmoid_()
        torch.ops.aten.sigmoid_backward(torch.full_like(s, slope), s, grad_input=u)
    else:
        raise ValueError(f"unknown surrogate {kind!r}")
    return u


class SpikeFunction(torch.autograd.Function):
    """Heaviside forward (strict ``x > 0``), surrogate derivative backward."""

    @staticmethod
    def forward(ctx, x: Tensor, kind: str, slope: float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.kind = kind
        ctx.slope = slope
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad * surrogate_grad(x, ctx.kind, ctx.slope), None, None


# ----------------------------------------------------------------------------- the step


class StepOps:
    """The few operations of :func:`neuron_step` that are not arithmetic operators, for torch tensors.

    Subclasses run the same step on other array types (:data:`NUMPY`; the ONNX exporter's
    symbolic values). Everything else in the step is ``+ - * @`` and ``.T``.
    """

    def floor(self, v: Any, lo: float) -> Any:
        """``max(v, lo)``."""
        return torch.clamp(v, min=lo)

    def free(self, ref: Any, like: Any) -> Any:
        """1 where the refractory count ``ref`` is over (``ref <= 0``), else 0, in ``like``'s dtype."""
        return (ref <= 0).to(like.dtype)

    def detach(self, x: Any) -> Any:
        """``x`` without its gradient (the reset and the refractory state carry none)."""
        return x.detach()

    def count(self, ref: Any, z: Any, steps: int) -> Any:
        """The refractory count after spikes ``z`` (detached): ``steps`` on a spike, else ``max(ref - 1, 0)``."""
        return torch.where(z > 0, torch.full_like(ref, float(steps)), torch.clamp(ref - 1, min=0))

    def zeros_like(self, x: Any) -> Any:
        return torch.zeros_like(x)


class _NumpyOps(StepOps):
    """:func:`neuron_step` over numpy arrays (no gradients)."""

    def floor(self, v: Any, lo: float) -> Any:
        return np.maximum(v, lo)

    def free(self, ref: Any, like: Any) -> Any:
        return (ref <= 0).astype(like.dtype)

    def detach(self, x: Any) -> Any:
        return x

    def count(self, ref: Any, z: Any, steps: int) -> Any:
        return np.where(z > 0, float(steps), np.maximum(ref - 1, 0))

    def zeros_like(self, x: Any) -> Any:
        return np.zeros_like(x)


TORCH = StepOps()
NUMPY = _NumpyOps()


def heaviside(x: Any) -> Any:
    """The forward pass of every spike function: 1 where ``x > 0`` (strict), in ``x``'s dtype (numpy)."""
    return (x > 0).astype(x.dtype)


def input_drive(x: Any, p: NeuronParams) -> Any:
    """The feed-forward input ``W_in x`` of inputs ``x`` [..., C] (a whole sequence at once, in training)."""
    return x @ p.w_in.T


def neuron_step(
    drive: Any,
    state: NeuronState,
    p: NeuronParams,
    spike_fn: Callable[[Any], Any],
    ops: StepOps = TORCH,
) -> tuple[Any, NeuronState]:
    """Advance all neurons by one step; returns the spikes and the new state.

    ``drive`` is the feed-forward input ``W_in x[t]`` [B, H] (precomputed for the whole
    sequence by the caller, since it does not depend on the state). ``spike_fn`` maps
    ``v - threshold`` to spikes (:class:`SpikeFunction` in training, :func:`heaviside`).
    """
    i = p.a_syn * state.i + drive
    if p.w_rec is not None:
        i = i + state.z @ p.w_rec.T
    n = p.a_adapt * state.n if p.adapt_kind is not None else state.n
    v = p.a_mem * state.v + i
    if p.bias is not None:
        v = v + p.bias
    if p.adapt_kind == "current":
        v = v - n
    if p.v_floor is not None:
        v = ops.floor(v, p.v_floor)
    if p.refractory_steps > 0:
        v = v * ops.free(state.ref, v)
    if p.adapt_kind == "atrlif":
        return _atrlif_spike(v, i, n, state, p, spike_fn, ops)
    threshold = p.threshold + n if p.adapt_kind == "threshold" else p.threshold
    z = spike_fn(v - threshold)
    v = v * (1.0 - ops.detach(z))
    if p.adapt_kind is not None:
        n = n + p.adapt_strength * z
    ref = state.ref
    if p.refractory_steps > 0:
        ref = ops.count(ref, ops.detach(z), p.refractory_steps)
    return z, NeuronState(i, v, n, ref, z)


def _atrlif_spike(
    v: Any, i: Any, n: Any, state: NeuronState, p: NeuronParams, spike_fn: Callable[[Any], Any], ops: StepOps
) -> tuple[Any, NeuronState]:
    """ATRLIF's spike and post-spike update: ``r`` decays, spike on ``v - r > theta``, ``r += 2 theta``.

    ``r`` plays the part of the reset (which is detached for the other kinds): its
    increment is detached too; ``v`` keeps its value.
    """
    a_r = p.a_refr if p.a_refr is not None else ops.zeros_like(p.a_mem)
    r_prev = state.r if state.r is not None else ops.zeros_like(v)
    r = a_r * r_prev
    theta = p.threshold + n
    z = spike_fn(v - r - theta)
    zd = ops.detach(z)
    r = r + 2.0 * ops.detach(theta) * zd
    n = n + p.adapt_strength * z
    return z, NeuronState(i, v, n, state.ref, z, r)


def initial_state(batch: int, n_hidden: int, device: torch.device, dtype: torch.dtype) -> NeuronState[Tensor]:
    """All-zero state (every neuron at rest) for a batch."""
    zeros = torch.zeros(batch, n_hidden, device=device, dtype=dtype)
    return NeuronState(zeros, zeros, zeros, zeros, zeros, zeros)


# ----------------------------------------------------------------------------- readout


def readout_drive(z: Any, w_out: Any, b_out: Any) -> Any:
    """The readout's input ``W_out z + b_out`` (over any leading dimensions of ``z`` [..., H])."""
    return z @ w_out.T + b_out


def readout_step(y: Any, drive: Any, a_out: Any) -> Any:
    """One readout step ``y = a_o y + drive``."""
    return a_out * y + drive
