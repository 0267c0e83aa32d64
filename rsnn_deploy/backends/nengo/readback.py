"""Exact spike input into nengo-loihi, and reading its discretized integers back.

nengo-loihi discretizes a network in place when it builds a ``Simulator``; the
integers it then runs are the truth for the ``loihi1`` profile. This module reads
them back from ``sim.model.blocks`` into a :class:`~rsnn_deploy.qnet.QuantizedNetwork`
(:func:`qnet_from_nengo_loihi`), so that our emulator can be checked against
nengo-loihi bit for bit, and so that a compile step can refuse to run when the
integers nengo-loihi chose differ from the ones we quantized.

Feeding exact spikes (measured on nengo-loihi 1.1.0, nengo 4.1.0)
-----------------------------------------------------------------
A ``Node -> Ensemble.neurons`` connection is *not* exact: nengo-loihi encodes a node's
value with on/off "decode" neurons on the chip. Exact spikes come from an off-chip
spiking ensemble connected ``neurons -> neurons`` (:func:`add_spike_input`):

1. a ``nengo.Node`` outputs ``1.5 / dt`` on channel c at host step ``k + 1``
   (``t = (k + 1) dt``) when ``x[k, c] = 1``, else 0;
2. it drives, with ``synapse=None``, the neurons of an ensemble of
   ``nengo.SpikingRectifiedLinear`` neurons (gain 1, bias 0) configured
   ``on_chip = False``. Their voltage rises by 1.5 per input and they fire
   ``floor(v)`` spikes, keeping ``v - floor(v) < 1``: a neuron fires at step ``k``
   exactly when ``x[k] = 1``, whatever the float rounding;
3. the ``ens.neurons -> hidden.neurons`` connection becomes a ``HostSendNode`` on the
   host and a ``ChipReceiveNeurons`` / ``SpikeInput`` on the chip. The host sends the
   indices of every non-zero output (the spike count is lost, hence one spike), and
   the emulator adds them to ``q`` one step later: input ``x[k]`` reaches ``q`` at chip
   step ``k + 1`` (0-based), i.e. ``input_latency_steps = 1``. The transform becomes
   integer weights like any on-chip ``neurons -> neurons`` connection
   (``transform / dt * amplitude``, then the block's weight scale).

Other integer facts (nengo-loihi 1.1.0)
---------------------------------------
- Weights: 8-bit mixed-sign mantissa (|m| <= 127) shifted left by ``7 + weight_exp``;
  ``weight_exp`` is per connection in [-6, 0] (block scale ``255 / w_max``): weights
  are multiples of 128 at exponent 0, of 64 below it (losing mantissa bits).
- Thresholds: ``vth = round(vth_float * v_scale / 64) * 64``, mantissa < 2**17.
- Bias: ``mantissa << exponent`` with |mantissa| <= 4095 and exponent in [0, 7].
- Decays: ``du = round(clip(decay * 4095 - 1, 0, 4095))`` (the chip adds 1 back),
  ``dv = round(decay * 4095)``; LIF needs ``dv >= 1``, ``SpikingRectifiedLinear`` gives 0.
- ``vmin = 1 - 2**round(log2(1 - vmin_float * v_scale))`` (0 for ``min_voltage=0``),
  ``vmax = 2**23 - 1`` for LIF; ``ref = round(tau_ref / dt) + 1``.
- Voltage probes on ``ens.neurons`` return the raw integer ``v`` after the spike reset.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rsnn_deploy.errors import UnsupportedError, ValidationError
from rsnn_deploy.hardware import HardwareProfile, load_profile
from rsnn_deploy.qnet import QuantizedNetwork, check_representable

__all__ = ["SPIKE_DRIVE", "add_spike_input", "qnet_from_nengo_loihi"]

SPIKE_DRIVE = 1.5
"""Voltage added per input spike to the off-chip SpikingRectifiedLinear neurons (any value >= 1 works)."""


def add_spike_input(net: Any, spikes: np.ndarray, dt: float = 0.001, label: str = "spike_input") -> Any:
    """Add to ``net`` an off-chip ensemble whose neurons fire exactly ``spikes`` ``[T, C]``.

    ``x[k]`` is emitted at host step ``k + 1`` (time ``(k + 1) dt``); nothing after ``T``
    steps. Connect ``returned.neurons`` to on-chip neurons with a ``transform``. ``net``
    must have nengo-loihi's config parameters (``nengo_loihi.add_params(net)``).

    Returns
    -------
    nengo.Ensemble
        The input ensemble (``n_neurons = C``).
    """
    import nengo

    x = np.asarray(spikes)
    if x.ndim != 2:
        raise ValidationError(f"add_spike_input.spikes: must be [T, C] (got shape {x.shape})")
    drive = (x != 0).astype(np.float64) * (SPIKE_DRIVE / dt)
    n_steps, n_ch = drive.shape
    zero = np.zeros(n_ch)

    def output(t: float) -> np.ndarray:
        k = round(t / dt) - 1
        return drive[k] if 0 <= k < n_steps else zero

    with net:
        node = nengo.Node(output, size_out=n_ch, label=f"{label}_node")
        ens = nengo.Ensemble(
            n_ch,
            1,
            neuron_type=nengo.SpikingRectifiedLinear(initial_state={"voltage": nengo.dists.Choice([0.0])}),
            gain=np.ones(n_ch),
            bias=np.zeros(n_ch),
            label=label,
        )
        net.config[ens].on_chip = False
        nengo.Connection(node, ens.neurons, synapse=None)
    return ens


def _blocks_of(sim: Any, ens: Any) -> list[Any]:
    objs = sim.model.objs.get(ens)
    if not objs or "out" not in objs:
        raise ValidationError(f"qnet_from_nengo_loihi.hidden: {ens} is not on the chip of this simulator")
    out = objs["out"]
    return list(out) if isinstance(out, list | tuple) else [out]


def _scatter(w: np.ndarray, axon: Any, syn: Any, post_off: int, pre_off: int, n_pre: int) -> None:
    """Add the integer weights that ``axon`` (from ``n_pre`` sources) carries into ``syn``."""
    ids = np.asarray(axon.map_axon(np.arange(n_pre)))
    atoms = axon.map_atoms(np.arange(n_pre))
    for i in range(n_pre):
        axon_id = int(ids[i])
        if axon_id < 0:
            continue
        base = syn.axon_compartment_base(axon_id)
        if base is None:
            continue
        weights, indices = syn.axon_weights_indices(axon_id, atom=int(atoms[i]))
        np.add.at(w, (post_off + base + np.asarray(indices), pre_off + i), np.asarray(weights, dtype=np.int64))


def _check_discretized(blocks: list[Any]) -> None:
    """Integer compartments without noise: what a QuantizedNetwork can hold."""
    for blk in blocks:
        comp = blk.compartment
        if comp.vth.dtype != np.int32:
            raise UnsupportedError(f"{blk}: compartment is not discretized (dtype {comp.vth.dtype}); use target='sim'")
        if np.any(comp.enable_noise):
            raise UnsupportedError(f"{blk}: compartment noise is not part of a QuantizedNetwork")


def _voltage_range(hidden: Any, blocks: list[Any]) -> tuple[int, int]:
    """The one ``(vmin, vmax)`` of every block (a QuantizedNetwork has one voltage range)."""
    vmins = {int(b.compartment.vmin) for b in blocks}
    vmaxs = {int(b.compartment.vmax) for b in blocks}
    if len(vmins) > 1 or len(vmaxs) > 1:
        raise UnsupportedError(f"{hidden}: blocks have different voltage ranges (vmin {vmins}, vmax {vmaxs})")
    return vmins.pop(), vmaxs.pop()


def _read_weights(sim: Any, hidden: Any, blocks: list[Any], offsets: np.ndarray,
                  c: int) -> tuple[np.ndarray, np.ndarray | None]:
    """``(w_in, w_rec)`` from the synapses of the hidden blocks: one host spike input and the blocks' own axons.

    ``w_rec`` is None without recurrence; any other synapse into the blocks is refused.
    """
    h = int(offsets[-1])
    syn_post: dict[int, int] = {}
    for j, blk in enumerate(blocks):
        for syn in blk.synapses:
            if syn.learning:
                raise UnsupportedError(f"{syn}: learning synapses are not part of a QuantizedNetwork")
            syn_post[id(syn)] = int(offsets[j])
    covered: set[int] = set()

    w_in = np.zeros((h, c), dtype=np.int64)
    spike_inputs = [
        inp for inp in sim.model.inputs if any(id(ax.target) in syn_post for ax in getattr(inp, "axons", []))
    ]
    if len(spike_inputs) != 1 or spike_inputs[0].n_neurons != c:
        raise UnsupportedError(
            f"{hidden}: expected exactly one host spike input of {c} neurons into the hidden blocks "
            f"(got {[getattr(i, 'n_neurons', None) for i in spike_inputs]}); feed input through add_spike_input"
        )
    for ax in spike_inputs[0].axons:
        if id(ax.target) in syn_post:
            _scatter(w_in, ax, ax.target, syn_post[id(ax.target)], 0, c)
            covered.add(id(ax.target))

    w_rec = np.zeros((h, h), dtype=np.int64)
    has_rec = False
    for j, blk in enumerate(blocks):
        for ax in blk.axons:
            if id(ax.target) in syn_post:
                _scatter(w_rec, ax, ax.target, syn_post[id(ax.target)], int(offsets[j]), blk.n_neurons)
                covered.add(id(ax.target))
                has_rec = True
    stray = [str(s) for blk in blocks for s in blk.synapses if id(s) not in covered]
    if stray:
        raise UnsupportedError(f"{hidden}: synapses {stray} come from neither the input nor the hidden neurons")
    return w_in, (w_rec if has_rec else None)


def qnet_from_nengo_loihi(
    sim: Any,
    hidden: Any,
    input_ensemble: Any,
    *,
    profile: HardwareProfile | str = "loihi1",
    w_out: np.ndarray | None = None,
    b_out: np.ndarray | None = None,
    readout_decay: float = 0.0,
    readout_mode: str = "mean",
    source: str = "nengo-loihi",
) -> QuantizedNetwork:
    """Read the integers nengo-loihi built for ``hidden`` (fed by ``input_ensemble``) into a QuantizedNetwork.

    Parameters
    ----------
    sim : nengo_loihi.Simulator
        Built with ``target='sim'`` (integer emulator).
    hidden : nengo.Ensemble
        The on-chip recurrent population (possibly split into several blocks).
    input_ensemble : nengo.Ensemble
        The off-chip spiking ensemble feeding it (see :func:`add_spike_input`).
    w_out, b_out, readout_decay, readout_mode
        Host readout to attach (defaults: one zero output).

    Raises
    ------
    UnsupportedError
        The built model holds something a QuantizedNetwork cannot express (float blocks,
        noise, learning, other inputs into the hidden blocks, blocks with different
        voltage ranges).
    """
    prof = profile if isinstance(profile, HardwareProfile) else load_profile(profile)
    blocks = _blocks_of(sim, hidden)
    _check_discretized(blocks)
    offsets = np.cumsum([0] + [b.n_neurons for b in blocks])
    h = int(offsets[-1])
    c = int(input_ensemble.n_neurons)

    def cat(attr: str) -> np.ndarray:
        return np.concatenate([np.asarray(getattr(b.compartment, attr), dtype=np.int64) for b in blocks])

    vmin, vmax = _voltage_range(hidden, blocks)
    w_in, w_rec = _read_weights(sim, hidden, blocks, offsets, c)

    k = 1 if w_out is None else int(np.asarray(w_out).shape[0])
    qnet = QuantizedNetwork(
        w_in=w_in,
        w_rec=w_rec,
        bias=cat("bias"),
        decay_u=cat("decay_u"),
        decay_v=cat("decay_v"),
        vth=cat("vth"),
        refractory=np.concatenate([np.asarray(b.compartment.refract_delay, dtype=np.int64) for b in blocks]),
        vmin=vmin,
        vmax=vmax,
        w_out=np.zeros((k, h), dtype=np.float32) if w_out is None else w_out,
        b_out=np.zeros(k, dtype=np.float32) if b_out is None else b_out,
        readout_decay=readout_decay,
        readout_mode=readout_mode,
        profile=prof.name,
        profile_sha256=prof.sha256,
        input_latency=prof.timing.input_latency_steps,
        block_sizes=tuple(int(b.n_neurons) for b in blocks),
        float_scale=tuple(float(b.compartment.discretize_info["v_scale"]) for b in blocks),
        source=source,
    )
    check_representable(qnet, prof)
    return qnet
