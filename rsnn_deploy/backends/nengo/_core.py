"""Networks for nengo core: the integer QuantizedNetwork (any profile) and the float model.

Both are built as ``B`` independent copies, one per input sample, so that one
``nengo.Simulator`` runs a batch from rest. Per copy::

    Node (the sample's spikes) --W_in, synapse=None--> Ensemble(neuron_type) --W_rec, one-step delay--+
                                                             ^-----------------------------------------+

Integer copies run :class:`~._neurons.QuantizedNeurons`; ``J`` is exactly the emulator's
``q``: the node emits ``x[n - L]`` at chip step ``n`` (``L`` = the profile's input latency)
and the recurrence delivers ``z[n - 1]``. The first ``L`` steps are dropped, as in
:func:`rsnn_deploy.emulator.run`. Float copies run :class:`~._neurons.FloatRSNNNeurons`
with no latency.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rsnn_deploy.hardware import HardwareProfile, load_profile
from rsnn_deploy.qnet import QuantizedNetwork
from rsnn_deploy.trace import Trace, host_readout

__all__ = [
    "CoreBuild",
    "build_core_network",
    "build_float_network",
    "float_network_params",
    "run_core_build",
    "run_nengo_core",
    "run_nengo_float",
]


@dataclass
class CoreBuild:
    """A built nengo-core network of ``B`` copies and what to read from it."""

    network: Any
    latency: int
    n_steps: int
    hidden: list[Any] = field(default_factory=list)
    probes: dict[str, list[Any]] = field(default_factory=dict)


def _copies(
    spikes: np.ndarray,
    latency: int,
    make_neurons: Callable[[], Any],
    w_in: np.ndarray,
    w_rec: np.ndarray | None,
    dt: float,
    record: tuple[str, ...],
    label: str,
) -> CoreBuild:
    import nengo

    from rsnn_deploy.backends.nengo._neurons import one_step_delay

    x = np.asarray(spikes, dtype=np.float64)
    b, t_steps, c = x.shape
    h = w_in.shape[0]
    shifted = np.zeros((t_steps + latency, b * c))
    shifted[latency:] = x.transpose(1, 0, 2).reshape(t_steps, b * c)
    zero = np.zeros(b * c)

    def feed(t: float) -> np.ndarray:
        n = round(t / dt) - 1  # nengo step n (0-based) runs at t = (n + 1) dt
        return shifted[n] if 0 <= n < shifted.shape[0] else zero

    out = CoreBuild(network=None, latency=latency, n_steps=t_steps, probes={k: [] for k in ("output", *record)})
    with nengo.Network(seed=0, label=label) as net:
        node = nengo.Node(feed, size_out=b * c, label="spikes")
        for k in range(b):
            ens = nengo.Ensemble(h, 1, neuron_type=make_neurons(), gain=np.ones(h), bias=np.zeros(h),
                                 label=f"hidden{k}")
            nengo.Connection(node[k * c:(k + 1) * c], ens.neurons, transform=w_in, synapse=None)
            if w_rec is not None:
                nengo.Connection(ens.neurons, ens.neurons, transform=w_rec * dt, synapse=one_step_delay())
            out.hidden.append(ens)
            for key in out.probes:
                out.probes[key].append(nengo.Probe(ens.neurons, key))
    out.network = net
    return out


def build_core_network(
    qnet: QuantizedNetwork,
    spikes: np.ndarray,
    profile: HardwareProfile | str | None = None,
    dt: float = 0.001,
    record_states: bool = False,
) -> CoreBuild:
    """Integer copies of ``qnet`` for ``spikes`` ``[B, T, C]`` (see the module docstring)."""
    from rsnn_deploy.backends.nengo._neurons import QuantizedNeurons

    prof = profile if isinstance(profile, HardwareProfile) else load_profile(profile or qnet.profile)
    neuron = QuantizedNeurons(qnet, prof)
    w_rec = qnet.w_rec.astype(np.float64) if qnet.w_rec is not None and qnet.w_rec.any() else None
    record = ("current", "voltage") + (("adaptation",) if qnet.theta_step is not None else ())
    return _copies(spikes, qnet.input_latency, lambda: neuron, qnet.w_in.astype(np.float64), w_rec, dt,
                   record if record_states else (), f"rsnn-int[{qnet.source or 'qnet'}]")


def float_network_params(model: Any) -> tuple[Any, np.ndarray, np.ndarray | None]:
    """``(FloatNeuronParams, w_in, w_rec)`` of the float model, float64, without fake quantization."""
    from rsnn_deploy.backends.nengo._neurons import FloatNeuronParams
    from rsnn_deploy.neuron import params_as_numpy

    fq, model.fake_quant = model.fake_quant, None
    try:
        p = params_as_numpy(model.effective_params(), np.float64)
    finally:
        model.fake_quant = fq
    return FloatNeuronParams(p), p.w_in, p.w_rec


def build_float_network(model: Any, spikes: np.ndarray, dt: float = 0.001, record_states: bool = False) -> CoreBuild:
    """Float copies of the torch ``model`` (an ``RSNN``) for ``spikes`` ``[B, T, C]``, in float64."""
    from rsnn_deploy.backends.nengo._neurons import FloatRSNNNeurons

    params, w_in, w_rec = float_network_params(model)
    neuron = FloatRSNNNeurons(params)
    record = ("current", "voltage", "adaptation") if record_states else ()
    return _copies(spikes, 0, lambda: neuron, w_in, w_rec, dt, record, "rsnn-float")


def run_core_build(build: CoreBuild, dt: float = 0.001) -> dict[str, np.ndarray]:
    """Simulate a :class:`CoreBuild`; returns ``{probe key: [B, T, H]}`` aligned to float steps."""
    import nengo

    with nengo.Simulator(build.network, dt=dt, progress_bar=False, optimize=False) as sim:
        sim.run_steps(build.n_steps + build.latency)
        data = {key: np.stack([sim.data[p][build.latency:] for p in probes]) for key, probes in build.probes.items()}
        over = [sim.signals[sim.model.sig[ens.neurons]["overflow"]].copy() for ens in build.hidden
                if "overflow" in sim.model.sig[ens.neurons]]
    if over:
        data["overflow"] = np.sum(over, axis=0)
    return data


def run_nengo_core(
    qnet: QuantizedNetwork,
    spikes: np.ndarray,
    profile: HardwareProfile | str | None = None,
    record_states: bool = False,
    chunk: int = 50,
    dt: float = 0.001,
    on_chunk: Callable[[int], None] | None = None,
) -> Trace:
    """Run ``qnet`` in nengo core (integer neuron type), ``chunk`` samples per simulator."""
    from rsnn_deploy import semantics

    prof = profile if isinstance(profile, HardwareProfile) else load_profile(profile or qnet.profile)
    x = np.asarray(spikes)
    parts: dict[str, list[np.ndarray]] = {}
    over = np.zeros(3, dtype=np.int64)
    for start in range(0, x.shape[0], chunk):
        data = run_core_build(build_core_network(qnet, x[start:start + chunk], prof, dt, record_states), dt)
        over += data.pop("overflow", np.zeros(3, dtype=np.int64))
        for key, value in data.items():
            parts.setdefault(key, []).append(value)
        if on_chunk is not None:
            on_chunk(min(chunk, x.shape[0] - start))
    spikes_out = np.concatenate(parts["output"]) > 0
    readout, logits = host_readout(spikes_out, qnet.w_out, qnet.b_out, qnet.readout_decay, qnet.readout_mode)  # type: ignore[arg-type]

    def states(key: str) -> np.ndarray | None:
        return np.concatenate(parts[key]).astype(np.int64) if key in parts else None

    names = semantics.for_profile(prof).overflow_names
    return Trace(spikes=spikes_out, readout=readout, logits=logits, current=states("current"),
                 voltage=states("voltage"), adaptation=states("adaptation"),
                 overflow={n: int(v) for n, v in zip(names, over, strict=True)})


def run_nengo_float(
    model: Any,
    spikes: np.ndarray,
    record_states: bool = False,
    chunk: int = 50,
    dt: float = 0.001,
    on_chunk: Callable[[int], None] | None = None,
) -> Trace:
    """Run the float ``model`` (an ``RSNN``) in nengo core with :class:`FloatRSNNNeurons` (float64)."""
    x = np.asarray(spikes)
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, x.shape[0], chunk):
        data = run_core_build(build_float_network(model, x[start:start + chunk], dt, record_states), dt)
        for key, value in data.items():
            parts.setdefault(key, []).append(value)
        if on_chunk is not None:
            on_chunk(min(chunk, x.shape[0] - start))
    spikes_out = np.concatenate(parts["output"]) > 0
    readout, logits = host_readout(
        spikes_out, model.w_out.detach().cpu().double().numpy(), model.b_out.detach().cpu().double().numpy(),
        float(model.readout_decay()), model.cfg.readout_mode,
    )

    def states(key: str) -> np.ndarray | None:
        return np.concatenate(parts[key]) if key in parts else None

    return Trace(spikes=spikes_out, readout=readout, logits=logits, current=states("current"),
                 voltage=states("voltage"), adaptation=states("adaptation"))
