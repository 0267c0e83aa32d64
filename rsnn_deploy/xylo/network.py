"""The integers of one network on a Xylo core, and the design rules that refuse what the chip cannot hold.

Layout (Rockpool's ``XyloSim.from_specification`` conventions, ``S`` synapses per hidden neuron)::

    w_in   int8  [C, H, S]   input channel -> hidden synapse
    w_rec  int8  [H, H, S]   hidden (pre) -> hidden (post) synapse
    w_out  int8  [H, K]      hidden -> output neuron (one synapse each)
    shift_in / shift_rec / shift_out   left shift applied to every weight of that matrix
    dash_mem [H], dash_syn [H, S], dash_mem_out [K], dash_syn_out [K]   bit-shift decays
    threshold [H], threshold_out [K], bias [H], bias_out [K]            int16

Output neurons are a separate, non-recurrent population (Rockpool's
``output_neurons_cannot_be_recurrent``): they receive hidden spikes only, spike at most once
per step, and their membrane ``v_out`` is what the host reads as the readout.
``readout_scale`` turns ``v_out`` back into the float model's units: ``y ~ v_out / readout_scale``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rsnn_deploy.errors import UnsupportedError, ValidationError
from rsnn_deploy.semantics.xylo_profile import XyloProfile

__all__ = ["XyloNetwork", "check_design_rules"]

_INT_FIELDS = (
    "w_in",
    "w_rec",
    "w_out",
    "dash_mem",
    "dash_syn",
    "dash_mem_out",
    "dash_syn_out",
    "threshold",
    "threshold_out",
    "bias",
    "bias_out",
)


@dataclass(frozen=True)
class XyloNetwork:
    """Integers only (int64 arrays holding int8 / int16 / 4-bit values); see the module docstring."""

    w_in: np.ndarray
    w_rec: np.ndarray
    w_out: np.ndarray
    shift_in: int
    shift_rec: int
    shift_out: int
    dash_mem: np.ndarray
    dash_syn: np.ndarray
    dash_mem_out: np.ndarray
    dash_syn_out: np.ndarray
    threshold: np.ndarray
    threshold_out: np.ndarray
    bias: np.ndarray
    bias_out: np.ndarray
    profile: str = "xylo-audio2"
    readout_scale: float = 1.0
    readout_mode: str = "mean"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.readout_mode not in ("mean", "last"):
            raise ValidationError(f"XyloNetwork.readout_mode: must be 'mean' or 'last' (got {self.readout_mode!r})")
        for name in _INT_FIELDS:
            arr = np.asarray(getattr(self, name))
            if arr.dtype.kind not in "iub":
                raise ValidationError(f"XyloNetwork.{name}: must hold integers (got dtype {arr.dtype})")
            object.__setattr__(self, name, arr.astype(np.int64))
        c, h, s = self.w_in.shape if self.w_in.ndim == 3 else (None, None, None)
        if c is None:
            raise ValidationError(f"XyloNetwork.w_in: must be [C, H, S] (got shape {self.w_in.shape})")
        k = self.w_out.shape[1] if self.w_out.ndim == 2 else -1
        shapes = {
            "w_rec": (h, h, s),
            "w_out": (h, k),
            "dash_mem": (h,),
            "dash_syn": (h, s),
            "dash_mem_out": (k,),
            "dash_syn_out": (k,),
            "threshold": (h,),
            "threshold_out": (k,),
            "bias": (h,),
            "bias_out": (k,),
        }
        for name, shape in shapes.items():
            if getattr(self, name).shape != shape:
                raise ValidationError(f"XyloNetwork.{name}: must have shape {shape} (got {getattr(self, name).shape})")

    @property
    def n_in(self) -> int:
        return int(self.w_in.shape[0])

    @property
    def n_hidden(self) -> int:
        return int(self.w_in.shape[1])

    @property
    def n_synapses(self) -> int:
        return int(self.w_in.shape[2])

    @property
    def n_out(self) -> int:
        return int(self.w_out.shape[1])

    @property
    def has_bias(self) -> bool:
        return bool(np.any(self.bias != 0) or np.any(self.bias_out != 0))


def _range(name: str, arr: np.ndarray, lo: int, hi: int) -> None:
    if arr.size and (arr.min() < lo or arr.max() > hi):
        bad = arr.min() if arr.min() < lo else arr.max()
        raise ValidationError(f"XyloNetwork.{name}: values must lie in [{lo}, {hi}] (got {int(bad)})")


def check_design_rules(net: XyloNetwork, profile: XyloProfile) -> None:
    """Refuse, in one line naming the rule, a network the profile's Xylo core cannot run.

    Raises
    ------
    UnsupportedError
        Too many inputs, hidden neurons, outputs or synapses; recurrent output neurons;
        recurrent fan-out or weight count over the limit.
    ValidationError
        A value outside its word (int8 weight, 4-bit dash, int16 threshold...).
    """
    lim = profile.limits
    p = profile.name
    if net.n_in > lim.max_inputs:
        raise UnsupportedError(f"{p}: {net.n_in} input channels exceed the maximum {lim.max_inputs}")
    if net.n_hidden > lim.max_hidden:
        raise UnsupportedError(f"{p}: {net.n_hidden} hidden neurons exceed the maximum {lim.max_hidden}")
    if net.n_out > lim.max_outputs:
        raise UnsupportedError(f"{p}: {net.n_out} output neurons exceed the maximum {lim.max_outputs}")
    if net.n_synapses > lim.synapses_per_hidden:
        raise UnsupportedError(
            f"{p}: {net.n_synapses} synaptic currents per hidden neuron exceed the maximum {lim.synapses_per_hidden}"
        )
    nz_rec = np.any(net.w_rec != 0, axis=2)  # [pre, post]
    fanout = nz_rec.sum(axis=1)
    if lim.max_recurrent_fanout and fanout.size and fanout.max() > lim.max_recurrent_fanout:
        raise UnsupportedError(
            f"{p}: hidden neuron {int(fanout.argmax())} has recurrent fan-out {int(fanout.max())} "
            f"over the maximum {lim.max_recurrent_fanout}"
        )
    n_rec = int(np.count_nonzero(net.w_rec))
    if lim.max_recurrent_weights and n_rec > lim.max_recurrent_weights:
        raise UnsupportedError(f"{p}: {n_rec} recurrent weights exceed the maximum {lim.max_recurrent_weights}")
    wmin, wmax = profile.weight.mantissa_min, profile.weight.mantissa_max
    for name in ("w_in", "w_rec", "w_out"):
        _range(name, getattr(net, name), wmin, wmax)
    for name in ("shift_in", "shift_rec", "shift_out"):
        _range(name, np.array([getattr(net, name)]), 0, profile.weight.shift_max)
    for name in ("dash_mem", "dash_syn", "dash_mem_out", "dash_syn_out"):
        _range(name, getattr(net, name), 0, profile.bitshift.dash_max)
    # a threshold <= 0 makes xylosim's `while (v >= th) v -= th` never lower v
    for name in ("threshold", "threshold_out"):
        _range(name, getattr(net, name), 1, profile.threshold.max)
    for name in ("bias", "bias_out"):
        _range(name, getattr(net, name), profile.state.min, profile.state.max)


def output_neurons_recurrent_error(profile: XyloProfile) -> UnsupportedError:
    """The refusal for a model whose readout neurons would need recurrent weights (Rockpool's
    ``output_neurons_cannot_be_recurrent``)."""
    return UnsupportedError(f"{profile.name}: output neurons cannot be recurrent; feed them from hidden neurons only")
