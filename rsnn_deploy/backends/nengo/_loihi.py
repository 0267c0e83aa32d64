"""``QuantizedNetwork`` -> nengo network whose nengo-loihi discretization is exactly our integers.

nengo-loihi (1.1.0, ``builder/discretize.py``) turns floats into integers per block
(one core). We invert its formulas, so that the floats we write come back as the
integers of the :class:`~rsnn_deploy.qnet.QuantizedNetwork` (``du``, ``dv`` 12-bit,
weights ``mantissa << (7 + weight_exp)``):

- ``decay_u = -expm1(-dt/tau_s)``, ``du = round(clip(decay_u*4095 - 1, 0, 4095))``: we set
  ``decay_u = (du + 1)/4095`` (``synapse=None`` gives ``du = 4094``);
  ``dv = round(decay_v*4095)``: we set ``decay_v = dv/4095`` via ``tau_rc``.
- The block scale is ``w_scale = 255 / w_max`` (``w_max``: largest float weight into
  the block), the voltage scale ``v_scale = w_scale * 2**(6 + w_exp) * dm_u * dm_v``
  (``dm``: nengo-loihi's ``decay_magnitude`` of the integer decays) and LIF's float
  threshold is 1, so ``vth = round(v_scale / 64) * 64``. We pick ``w_scale`` so that
  ``v_scale`` equals our ``vth``; representable ``vth`` and ``bias`` always make the
  exponent loop stop at ``w_exp = 0``.
- A float weight ``f`` becomes ``round(f * w_scale * 2**dw / 2) << (7 - dw)`` with
  ``dw = floor(log2(w_max / max|f| of its connection))``. Writing every weight as
  ``f = W / (64 * w_scale)`` makes this exactly ``W`` for any connection whose
  largest ``|W|`` lies in ``[128, 16256]``, provided the block's largest float weight is
  ``255 / w_scale`` (mantissa 127.5, which nengo-loihi rounds and clips to 127).
  Entries ``|W| = 16256`` are written as that "anchor" value. A block without such an
  entry gets an *anchor input channel*: one extra, always silent input neuron whose
  weight to the block's first neuron is the anchor (it never spikes, so it changes
  nothing but the scale; it costs one input axon).
- ``bias = b / (v_scale / dm_v)``; ``tau_ref = (ref - 1) dt``; ``min_voltage`` from
  ``vmin = 1 - 2**round(log2(1 - min_voltage * v_scale))``; LIF's ``vmax`` is always
  ``2**23 - 1``.

What cannot be inverted is left to nengo-loihi and caught afterwards: every build is
read back (:func:`~rsnn_deploy.backends.nengo.readback.qnet_from_nengo_loihi`) and compared
field by field (:func:`check_readback`). The known case is the weight-exponent clamp: a
connection whose largest ``|W|`` is below ``1/128`` of the block's largest weight
(e.g. only ``+-64`` against ``16256``) needs ``weight_exp < -6``; nengo-loihi clamps it at
-6 *after* scaling the weights up, so they come out 2x, 4x too large.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rsnn_deploy.errors import RsnnError, UnsupportedError
from rsnn_deploy.hardware import HardwareProfile, load_profile
from rsnn_deploy.qnet import QuantizedNetwork
from rsnn_deploy.trace import Trace, host_readout

__all__ = [
    "ANCHOR_INT",
    "LoihiBuild",
    "LoihiFloats",
    "ReadbackError",
    "block_summary",
    "build_loihi_network",
    "check_readback",
    "loihi_floats",
    "nengo_loihi_quiet",
    "open_checked",
    "run_nengo_loihi",
]

MANTISSA_MAX = 127
ANCHOR_MANTISSA = 127.5  # the block's largest float weight maps to 255/2; rounded to 128, clipped to 127
ANCHOR_INT = MANTISSA_MAX << 7  # 16256: what the anchor reads back as
VMAX_LIF = (1 << 23) - 1
_DECAY_MAX = 4095


class ReadbackError(UnsupportedError):
    """nengo-loihi discretized the network to integers other than the QuantizedNetwork's."""


@dataclass(frozen=True)
class LoihiFloats:
    """The floats of one nengo network that nengo-loihi discretizes to a QuantizedNetwork.

    Attributes
    ----------
    transform_in : float64 [H, C or C + 1]
        Input ``neurons -> neurons`` transform (``dt`` included); column ``C``, when
        present, is the silent anchor channel.
    transform_rec : float64 [H, H] or None
    bias : float64 [H]
        Ensemble bias (gain is 1).
    tau_s : float or None
        Lowpass time constant (s) of both connections; None means ``synapse=None``.
    tau_rc, tau_ref, min_voltage : float
        ``nengo.LIF`` parameters.
    w_scale : tuple of float
        nengo-loihi's ``255 / w_max`` of each block (what we aimed at).
    anchor_rows : tuple of int
        Rows (neurons) that receive the anchor channel; empty when no block needs it.
    """

    transform_in: np.ndarray
    transform_rec: np.ndarray | None
    bias: np.ndarray
    tau_s: float | None
    tau_rc: float
    tau_ref: float
    min_voltage: float
    w_scale: tuple[float, ...]
    anchor_rows: tuple[int, ...]

    @property
    def n_channels(self) -> int:
        """Input channels of the nengo network (our C, plus one for the anchor when used)."""
        return int(self.transform_in.shape[1])


def _uniform(qnet: QuantizedNetwork, name: str) -> int:
    arr = getattr(qnet, name)
    values = np.unique(arr)
    if values.size != 1:
        raise UnsupportedError(
            f"QuantizedNetwork.{name}: nengo-loihi builds one ensemble with one value for all neurons "
            f"(got {values.size} different values, e.g. {values[:3].tolist()}); quantize with shared time constants"
        )
    return int(values[0])


def _decay_magnitude(d: int, offset: int) -> float:
    """nengo-loihi's ``decay_magnitude`` of an integer decay, as ``discretize_compartment`` calls it."""
    from nengo_loihi.builder.discretize import decay_magnitude

    return float(decay_magnitude(np.array([d], dtype=np.int32), x0=2097152, offset=offset)[0])


def _block_vth(qnet: QuantizedNetwork, sl: slice, j: int) -> int:
    values = np.unique(qnet.vth[sl])
    if values.size != 1:
        raise UnsupportedError(
            f"QuantizedNetwork.vth: nengo-loihi gives every neuron of a block the same threshold "
            f"(block {j} has {values.size} values); quantize with one scale per block"
        )
    return int(values[0])


def loihi_floats(qnet: QuantizedNetwork, dt: float = 0.001) -> LoihiFloats:
    """Choose the floats that nengo-loihi 1.1.0 discretizes back to ``qnet``'s integers.

    See the module docstring for the formulas. Nothing here is verified: build the
    network and call :func:`check_readback`.

    Raises
    ------
    UnsupportedError
        A field nengo-loihi has no float for: per-neuron decays or refractory periods,
        ``dv = 0`` (no leak), ``du = 4095``, a ``vmax`` other than LIF's ``2**23 - 1``,
        threshold adaptation.
    """
    if qnet.has_adaptation:
        raise UnsupportedError(
            "QuantizedNetwork.theta_step: nengo-loihi has no threshold adaptation on Loihi 1 (it builds "
            "nengo.AdaptiveLIF as plain LIF); run it on --backend nengo (integer neuron type) instead"
        )
    du, dv, ref = _uniform(qnet, "decay_u"), _uniform(qnet, "decay_v"), _uniform(qnet, "refractory")
    if dv == 0:
        raise UnsupportedError("QuantizedNetwork.decay_v: nengo-loihi LIF needs a leak (got dv = 0)")
    if du > _DECAY_MAX - 1:
        raise UnsupportedError(f"QuantizedNetwork.decay_u: nengo-loihi reaches at most 4094 (got {du})")
    if ref < 1:
        raise UnsupportedError(f"QuantizedNetwork.refractory: nengo-loihi's smallest is 1 (got {ref})")
    if qnet.vmax != VMAX_LIF:
        raise UnsupportedError(f"QuantizedNetwork.vmax: nengo-loihi LIF always has {VMAX_LIF} (got {qnet.vmax})")

    tau_s = None if du == _DECAY_MAX - 1 else -dt / math.log1p(-(du + 1) / _DECAY_MAX)
    tau_rc = 1e-6 * dt if dv == _DECAY_MAX else -dt / math.log1p(-dv / _DECAY_MAX)
    dm_u, dm_v = _decay_magnitude(du, 1), _decay_magnitude(dv, 0)

    h, c = qnet.w_in.shape
    w_rec = qnet.w_rec
    t_in = np.zeros((h, c + 1))
    t_rec = np.zeros((h, h)) if w_rec is not None and w_rec.any() else None
    bias = np.zeros(h)
    scales: list[float] = []
    anchors: list[int] = []
    v_scales: list[float] = []
    for j, sl in enumerate(qnet.block_slices):
        vth = _block_vth(qnet, sl, j)
        v_scale = float(vth)  # LIF's float threshold is 1: vth_int = round(v_scale / 64) * 64
        w_scale = v_scale / (64.0 * dm_u * dm_v)
        unit = 1.0 / (64.0 * w_scale)  # float weight per integer unit (before dt)
        anchor = ANCHOR_MANTISSA * 2.0 / w_scale
        rows_in = qnet.w_in[sl].astype(np.float64)
        t_in[sl, :c] = np.where(np.abs(rows_in) == ANCHOR_INT, np.sign(rows_in) * anchor, rows_in * unit)
        has_anchor = bool((np.abs(qnet.w_in[sl]) == ANCHOR_INT).any())
        if t_rec is not None:
            rows = w_rec[sl].astype(np.float64)  # type: ignore[index]
            t_rec[sl] = np.where(np.abs(rows) == ANCHOR_INT, np.sign(rows) * anchor, rows * unit)
            has_anchor = has_anchor or bool((np.abs(w_rec[sl]) == ANCHOR_INT).any())  # type: ignore[index]
        if not has_anchor:
            t_in[sl.start, c] = anchor
            anchors.append(sl.start)
        bias[sl] = qnet.bias[sl] / (v_scale / dm_v)
        scales.append(w_scale)
        v_scales.append(v_scale)

    e_min = round(math.log2(1 - qnet.vmin)) if qnet.vmin < 0 else 0
    if e_min == 0:
        min_voltage = 0.0
    elif e_min >= 31:
        min_voltage = -1e30  # clipped to the 5-bit exponent's largest floor in every block
    else:
        min_voltage = -((1 << e_min) - 1) / min(v_scales)
    if not anchors:
        t_in = t_in[:, :c]
    return LoihiFloats(
        transform_in=t_in * dt,
        transform_rec=None if t_rec is None else t_rec * dt,
        bias=bias,
        tau_s=tau_s,
        tau_rc=tau_rc,
        tau_ref=(ref - 1) * dt,
        min_voltage=min_voltage,
        w_scale=tuple(scales),
        anchor_rows=tuple(anchors),
    )


# ----------------------------------------------------------------------------- network


@dataclass
class LoihiBuild:
    """A nengo network of ``n`` copies of one QuantizedNetwork, one copy per input sample.

    Copies are independent (own input, own blocks), so nengo-loihi runs ``n`` samples in
    one simulation from rest, as ``n`` chips would.
    """

    network: Any
    floats: LoihiFloats
    hidden: list[Any] = field(default_factory=list)
    inputs: list[Any] = field(default_factory=list)
    probes: dict[str, list[Any]] = field(default_factory=dict)


def build_loihi_network(
    qnet: QuantizedNetwork,
    spikes: np.ndarray,
    dt: float = 0.001,
    record_states: bool = False,
    floats: LoihiFloats | None = None,
) -> LoihiBuild:
    """Build one copy of ``qnet`` per sample of ``spikes`` ``[B, T, C]`` for nengo-loihi.

    Input spikes enter exactly through :func:`~rsnn_deploy.backends.nengo.readback.add_spike_input`
    (an off-chip spiking ensemble; input latency 1). Hidden neurons are one ``nengo.LIF``
    ensemble per copy, split into ``qnet.block_sizes`` with ``nengo_loihi.BlockShape``.
    Probes: ``output`` (spikes), and with ``record_states`` also ``voltage`` and ``input`` (u).
    """
    import nengo
    import nengo_loihi

    from rsnn_deploy.backends.nengo.readback import add_spike_input

    fl = loihi_floats(qnet, dt) if floats is None else floats
    x = np.asarray(spikes)
    h, c = qnet.n_hidden, qnet.n_inputs
    sizes = qnet.block_sizes
    if len(set(sizes[:-1])) > 1 or sizes[-1] > sizes[0]:
        raise UnsupportedError(
            f"QuantizedNetwork.block_sizes: nengo_loihi.BlockShape splits into equal blocks and a smaller last one "
            f"(got {list(sizes)})"
        )
    lif = nengo.LIF(
        tau_rc=fl.tau_rc,
        tau_ref=fl.tau_ref,
        min_voltage=fl.min_voltage,
        initial_state={"voltage": nengo.dists.Choice([0.0]), "refractory_time": nengo.dists.Choice([0.0])},
    )
    synapse = None if fl.tau_s is None else nengo.Lowpass(fl.tau_s)
    out = LoihiBuild(network=None, floats=fl, probes={"output": [], "voltage": [], "input": []})
    with nengo.Network(seed=0, label=f"rsnn[{qnet.source or 'qnet'}]") as net:
        nengo_loihi.add_params(net)
        for b in range(x.shape[0]):
            xb = np.zeros((x.shape[1], fl.n_channels), dtype=np.uint8)
            xb[:, :c] = x[b]
            inp = add_spike_input(net, xb, dt, label=f"input{b}")
            hid = nengo.Ensemble(h, 1, neuron_type=lif, gain=np.ones(h), bias=fl.bias, label=f"hidden{b}")
            if len(sizes) > 1:
                net.config[hid].block_shape = nengo_loihi.BlockShape((sizes[0],), (h,))
            nengo.Connection(inp.neurons, hid.neurons, transform=fl.transform_in, synapse=synapse)
            if fl.transform_rec is not None:
                nengo.Connection(hid.neurons, hid.neurons, transform=fl.transform_rec, synapse=synapse)
            out.hidden.append(hid)
            out.inputs.append(inp)
            out.probes["output"].append(nengo.Probe(hid.neurons, "output"))
            if record_states:
                out.probes["voltage"].append(nengo.Probe(hid.neurons, "voltage"))
                out.probes["input"].append(nengo.Probe(hid.neurons, "input"))
    out.network = net
    return out


@contextmanager
def nengo_loihi_quiet() -> Iterator[None]:
    """Silence nengo-loihi warnings that are expected here and checked otherwise.

    "Lost N extra bits in weight rounding" accompanies every connection below weight
    exponent -1 and is harmless when the read-back agrees (and caught when it does
    not); "invalid value encountered in cast" comes from NaN placeholders at start-up.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Lost .* extra bits in weight rounding")
        warnings.filterwarnings("ignore", message="invalid value encountered in cast")
        warnings.filterwarnings("ignore", message="Model is precomputable")
        warnings.filterwarnings("ignore", message="This version of `nengo_loihi`")
        warnings.filterwarnings("ignore", message="NengoLoihi does not support initial values")
        # nengo's LIF rate curve for gain 1 (computed by nengo, unused on the chip)
        warnings.filterwarnings("ignore", message="(divide by zero|invalid value) encountered in log1p")
        warnings.filterwarnings("ignore", message="Non-finite values detected in `max_rates`")
        yield


# ----------------------------------------------------------------------------- read-back


_FIELDS = ("w_in", "w_rec", "bias", "decay_u", "decay_v", "vth", "refractory", "vmin", "vmax", "block_sizes")


def _first_diff(name: str, want: np.ndarray, got: np.ndarray) -> str:
    bad = np.argwhere(want != got)
    idx = tuple(int(i) for i in bad[0])
    where = f"{name}[{', '.join(map(str, idx))}]"
    hint = ""
    if name in ("w_in", "w_rec") and want[idx] != 0 and got[idx] != 0:
        ratio = got[idx] / want[idx]
        if ratio >= 2 and float(ratio).is_integer() and (int(ratio) & (int(ratio) - 1)) == 0:
            hint = (
                f"; nengo-loihi's weight-exponent clamp: this connection is much weaker than its block's largest "
                f"weight ({int(ratio)}x too large; it needs |w| >= 1/128 of the block max), re-quantize with "
                "larger weights or without it"
            )
    if name in ("w_in", "w_rec") and not hint:
        hint = "; nengo-loihi cannot express these weights in one weight exponent per connection and block"
    return f"{where} = {got[idx]}, QuantizedNetwork has {want[idx]} ({bad.shape[0]} entries differ){hint}"


def check_readback(qnet: QuantizedNetwork, readback: QuantizedNetwork, floats: LoihiFloats, copy: int = 0) -> None:
    """Refuse (``ReadbackError``, one line) when nengo-loihi's integers differ from ``qnet``'s.

    ``readback`` is :func:`~rsnn_deploy.backends.nengo.readback.qnet_from_nengo_loihi` of one
    copy; its extra anchor column (if any) must hold exactly :data:`ANCHOR_INT` on the
    anchor rows. The message names the field and the first differing index.
    """
    c = qnet.n_inputs
    prefix = f"nengo-loihi read-back{'' if copy == 0 else f' (copy {copy})'}: "
    for name in _FIELDS:
        want: Any = getattr(qnet, name)
        got: Any = getattr(readback, name)
        if name == "w_in":
            got = got[:, :c]
        if name == "w_rec":
            want = np.zeros((qnet.n_hidden,) * 2, np.int64) if want is None else want
            got = np.zeros((qnet.n_hidden,) * 2, np.int64) if got is None else got
        if name in ("vmin", "vmax", "block_sizes"):
            if tuple(np.atleast_1d(want)) != tuple(np.atleast_1d(got)):
                raise ReadbackError(f"{prefix}{name} = {got}, QuantizedNetwork has {want}")
            continue
        if want.shape != got.shape:
            raise ReadbackError(f"{prefix}{name} has shape {got.shape}, QuantizedNetwork has {want.shape}")
        if not np.array_equal(want, got):
            raise ReadbackError(prefix + _first_diff(name, want, got))
    if floats.anchor_rows:
        col = readback.w_in[:, c]
        expect = np.zeros(qnet.n_hidden, np.int64)
        expect[list(floats.anchor_rows)] = ANCHOR_INT
        if not np.array_equal(col, expect):
            raise ReadbackError(prefix + _first_diff("anchor", expect, col))


# ----------------------------------------------------------------------------- simulate


def open_checked(qnet: QuantizedNetwork, build: LoihiBuild, dt: float = 0.001,
                 profile: HardwareProfile | str | None = None) -> Any:
    """Build ``nengo_loihi.Simulator(target='sim')`` and refuse it unless every copy reads back as ``qnet``.

    Returns the open simulator (the caller closes it).

    Raises
    ------
    ReadbackError
        The first field and index where nengo-loihi's integers differ from ``qnet``'s.
    """
    import nengo_loihi

    from rsnn_deploy.backends.nengo.readback import qnet_from_nengo_loihi

    prof = profile if isinstance(profile, HardwareProfile) else load_profile(profile or qnet.profile)
    with nengo_loihi_quiet():
        sim = nengo_loihi.Simulator(build.network, target="sim", dt=dt, progress_bar=False)
    try:
        for k, (hid, inp) in enumerate(zip(build.hidden, build.inputs, strict=True)):
            try:
                back = qnet_from_nengo_loihi(sim, hid, inp, profile=prof)
            except RsnnError as err:
                raise ReadbackError(f"nengo-loihi read-back: {err}") from None
            check_readback(qnet, back, build.floats, k)
    except BaseException:
        sim.close()
        raise
    return sim


def run_nengo_loihi(
    qnet: QuantizedNetwork,
    spikes: np.ndarray,
    record_states: bool = False,
    chunk: int = 25,
    dt: float = 0.001,
    on_chunk: Callable[[int], None] | None = None,
) -> Trace:
    """Run ``qnet`` on nengo-loihi's emulator (``target='sim'``), ``chunk`` samples per simulator.

    Every simulator is read back and checked before it runs (:func:`open_checked`). The
    first ``input_latency`` steps are dropped, so the trace aligns with the float model.
    ``voltage`` and ``current`` are nengo-loihi's raw integer ``v`` and ``u`` probes.
    """
    x = np.asarray(spikes)
    lat = qnet.input_latency
    floats = loihi_floats(qnet, dt)
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, x.shape[0], chunk):
        build = build_loihi_network(qnet, x[start:start + chunk], dt, record_states, floats)
        sim = open_checked(qnet, build, dt)
        try:
            with nengo_loihi_quiet():
                sim.run_steps(x.shape[1] + lat)
            for key, probes in build.probes.items():
                if probes:
                    parts.setdefault(key, []).append(np.stack([sim.data[p][lat:] for p in probes]))
        finally:
            sim.close()
        if on_chunk is not None:
            on_chunk(min(chunk, x.shape[0] - start))
    spikes_out = np.concatenate(parts["output"]) > 0
    readout, logits = host_readout(spikes_out, qnet.w_out, qnet.b_out, qnet.readout_decay, qnet.readout_mode)  # type: ignore[arg-type]

    def states(key: str) -> np.ndarray | None:
        return np.concatenate(parts[key]).astype(np.int64) if key in parts else None

    return Trace(spikes=spikes_out, readout=readout, logits=logits, current=states("input"),
                 voltage=states("voltage"))


def block_summary(sim: Any, build: LoihiBuild, copy: int = 0) -> list[dict[str, Any]]:
    """What nengo-loihi built for one copy: per block (core) its size, scales and synapses."""
    blocks = sim.model.objs[build.hidden[copy]]["out"]
    blocks = list(blocks) if isinstance(blocks, list | tuple) else [blocks]
    out = []
    for j, blk in enumerate(blocks):
        info = dict(blk.compartment.discretize_info)
        synapses = [
            {
                "label": str(syn.label),
                "axons": int(syn.n_axons),
                "weight_exp": int(syn.synapse_cfg.weight_exp),
                "max_abs_weight": int(max((np.abs(w).max() for w in syn.weights if w.size), default=0)),
                "bits": int(syn.bits()),
            }
            for syn in blk.synapses
        ]
        out.append({
            "block": j,
            "compartments": int(blk.n_neurons),
            "w_scale": float(info["w_scale"]),
            "w_exp": int(info["w_exp"]),
            "v_scale": float(info["v_scale"]),
            "input_axons": int(sum(s.n_axons for s in blk.synapses)),
            "output_axons": int(sum(a.axon_slots() for a in blk.axons)),
            "synapse_bits": int(sum(s.bits() for s in blk.synapses)),
            "synapses": synapses,
        })
    return out
