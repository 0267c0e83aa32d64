"""Custom nengo neuron types that run our own step functions inside nengo core.

:class:`QuantizedNeurons` runs the hardware profile's integer step
(:func:`rsnn_deploy.emulator.loihi1_step` / :func:`~rsnn_deploy.emulator.loihi2_step`)
on the input current ``J``, which the network makes equal to the integer synaptic input
``q`` of the step. This is how threshold adaptation (``loihi2``) runs in nengo at all:
``nengo.AdaptiveLIF`` is a different (float) model and nengo-loihi builds it as plain LIF.

:class:`FloatRSNNNeurons` runs the float model's step itself,
:func:`rsnn_deploy.neuron.neuron_step` over numpy arrays (synapse, leak, bias, floor,
refractory, threshold, reset, adaptation). ``nengo.LIF`` cannot serve as the float reference: it integrates
``tau_rc dv/dt = J - v`` with an exact exponential over the step and a fractional
refractory time, and nengo's ``Lowpass`` scales its input by ``1 - a``; the float
model instead leaks ``v <- a v + i`` and ``i <- a_s i + W x`` with resets at step
boundaries.

Both types hold the synaptic current themselves; nengo connections only deliver the
weighted spikes (``synapse=None`` for the input, a pure one-step delay for the
recurrence). Each has a builder registered with ``nengo.builder.Builder``, which
refuses ensembles whose ``gain`` or ``bias`` would change ``J``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import nengo
import numpy as np
from nengo.builder import Builder
from nengo.builder.neurons import build_neurons
from nengo.exceptions import BuildError
from nengo.params import Parameter

from rsnn_deploy import semantics
from rsnn_deploy.emulator import params_for
from rsnn_deploy.hardware import HardwareProfile, load_profile
from rsnn_deploy.neuron import NUMPY, NeuronParams, NeuronState, heaviside, neuron_step
from rsnn_deploy.qnet import QuantizedNetwork

__all__ = ["FloatNeuronParams", "FloatRSNNNeurons", "QuantizedNeurons", "one_step_delay"]


def one_step_delay() -> nengo.synapses.LinearFilter:
    """A nengo synapse that delivers exactly the previous step's value (transfer function ``z^-1``).

    ``LinearFilter([1], [1], analog=False)`` is the identity in discrete time; as every nengo
    synapse it is applied as an *update*, so its output at step ``n`` is its input at
    step ``n - 1`` (measured on nengo 4.1). It carries the recurrent spikes ``z[t-1]``
    without filtering them, and it breaks the algebraic loop nengo forbids.
    """
    return nengo.synapses.LinearFilter([1.0], [1.0], analog=False)


class _NoRates:
    """Mixin: these neurons have no rate curve; nengo asks for one when gain/bias are given."""

    def max_rates_intercepts(self, gain: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        nan = np.full_like(np.asarray(gain, dtype=float), np.nan)
        return nan, nan.copy()

    def gain_bias(self, max_rates: np.ndarray, intercepts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = np.asarray(max_rates).shape
        return np.ones(n), np.zeros(n)


class QuantizedNeurons(_NoRates, nengo.neurons.NeuronType):
    """A population running a QuantizedNetwork's integer neuron step, one nengo step per chip step.

    ``J`` must be the integer synaptic input ``q`` (rounded with ``rint``; the float
    sum of integer weights is exact far beyond the 21-bit q range). States are int64
    signals: ``current`` (u), ``voltage`` (v after reset), ``adaptation`` (theta - theta_0,
    loihi2), ``ref_count`` (loihi1; loihi2: ATRLIF's refractory state ``r``) and ``overflow`` (wrap counts, length 3).

    Parameters
    ----------
    qnet : QuantizedNetwork
    profile : HardwareProfile
    """

    state: ClassVar[dict[str, Any]] = {"current": 0, "voltage": 0, "adaptation": 0, "ref_count": 0}
    spiking = True
    negative = False

    qnet = Parameter("qnet", readonly=True)
    profile = Parameter("profile", readonly=True)

    def __init__(self, qnet: QuantizedNetwork, profile: HardwareProfile | str | None = None):
        super().__init__()
        prof = profile if isinstance(profile, HardwareProfile) else load_profile(profile or qnet.profile)
        self.qnet = qnet
        self.profile = prof
        self._step_params = params_for(qnet, prof)
        self._semantics = semantics.for_profile(prof)

    def make_state(self, n_neurons: int, rng: Any = np.random, dtype: Any = None) -> dict[str, np.ndarray]:
        zeros = np.zeros(n_neurons, dtype=np.int64)
        return {
            "current": zeros,
            "voltage": zeros.copy(),
            "adaptation": zeros.copy(),
            "ref_count": zeros.copy(),
            "overflow": np.zeros(3, dtype=np.int64),
        }

    def step(self, dt: float, J: np.ndarray, output: np.ndarray, current: np.ndarray, voltage: np.ndarray,
             adaptation: np.ndarray, ref_count: np.ndarray, overflow: np.ndarray) -> None:
        q = np.rint(J).astype(np.int64)[None]
        spikes = np.zeros((1, J.shape[0]), dtype=bool)
        sem = self._semantics  # loihi2 keeps ATRLIF's refractory state r in the ref_count signal
        st = sem.state_from_signals(current[None], voltage[None], adaptation[None], ref_count[None], spikes, overflow)
        z, _ = sem.step(st, q, self._step_params, out=st)
        output[...] = z[0] / dt


@dataclass(frozen=True, eq=False)
class FloatNeuronParams:
    """The float model's effective per-step parameters for :class:`FloatRSNNNeurons`.

    :class:`rsnn_deploy.neuron.NeuronParams` as float64 numpy, in a holder nengo compares
    by identity (a tuple of arrays has no truth value). ``neuron.w_rec`` is ignored: nengo's
    connections deliver ``J = W_in x[t] + W_rec z[t-1]``, the step's whole input.
    """

    neuron: NeuronParams[np.ndarray]


class FloatRSNNNeurons(_NoRates, nengo.neurons.NeuronType):
    """The float RSNN's neuron, :func:`rsnn_deploy.neuron.neuron_step` over float64 numpy.

    ``J = W_in x[t] + W_rec z[t-1]`` is the step's whole input (the drive; the step adds the
    bias itself). The signals hold the state: ``current`` (i), ``voltage`` (v after reset),
    ``adaptation`` (n) and ``refractory``, the refractory count, or ATRLIF's refractory
    state ``r`` (``adapt_kind = "atrlif"``, which has no count).
    """

    state: ClassVar[dict[str, Any]] = {"current": 0.0, "voltage": 0.0, "adaptation": 0.0, "refractory": 0.0}
    spiking = True
    negative = False

    params = Parameter("params", readonly=True)

    def __init__(self, params: FloatNeuronParams):
        super().__init__()
        self.params = params

    def make_state(self, n_neurons: int, rng: Any = np.random, dtype: Any = None) -> dict[str, np.ndarray]:
        return {name: np.zeros(n_neurons) for name in self.state}

    def step(self, dt: float, J: np.ndarray, output: np.ndarray, current: np.ndarray, voltage: np.ndarray,
             adaptation: np.ndarray, refractory: np.ndarray) -> None:
        p = self.params.neuron._replace(w_rec=None)  # J already holds W_rec z[t-1]
        atr = p.adapt_kind == "atrlif"  # ATRLIF's refractory state r lives in the refractory signal
        state = NeuronState(current, voltage, adaptation, refractory, np.zeros_like(J), refractory if atr else None)
        z, new = neuron_step(J, state, p, heaviside, NUMPY)
        current[...] = new.i
        voltage[...] = new.v
        adaptation[...] = new.n
        refractory[...] = new.r if atr else new.ref
        output[...] = z / dt


def _check_plain_ensemble(model: Any, neurons: Any) -> None:
    """``J`` must be exactly the delivered input: gain 1 and bias 0 given as arrays (the step adds its own bias)."""
    ens = neurons.ensemble
    gain, bias = ens.gain, ens.bias
    ok = (isinstance(gain, np.ndarray) and isinstance(bias, np.ndarray)
          and bool(np.all(gain == 1)) and bool(np.all(bias == 0)))
    if not ok:
        raise BuildError(
            f"{ens}: {type(ens.neuron_type).__name__} needs gain=1 and bias=0 (its step adds the integer or "
            "float bias itself); pass gain=np.ones(n), bias=np.zeros(n)"
        )


@Builder.register(QuantizedNeurons)
def build_quantized_neurons(model: Any, neuron_type: QuantizedNeurons, neurons: Any) -> None:
    """Build a :class:`QuantizedNeurons` population (plain ``SimNeurons`` with int64 state)."""
    _check_plain_ensemble(model, neurons)
    if neurons.size_in != neuron_type.qnet.n_hidden:
        raise BuildError(f"{neurons.ensemble}: needs {neuron_type.qnet.n_hidden} neurons (got {neurons.size_in})")
    build_neurons(model, neuron_type, neurons)


@Builder.register(FloatRSNNNeurons)
def build_float_rsnn_neurons(model: Any, neuron_type: FloatRSNNNeurons, neurons: Any) -> None:
    """Build a :class:`FloatRSNNNeurons` population."""
    _check_plain_ensemble(model, neurons)
    build_neurons(model, neuron_type, neurons)
