"""Xylo's integer step, batched over samples in numpy: bit-exact with the vendor's ``xylosim`` (v2).

The step itself is the registry's ``xylo-bitshift`` entry (:mod:`rsnn_deploy.semantics.xylo`, where
the rule is written out); this module runs it over time from rest and stacks the states.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rsnn_deploy.errors import ValidationError
from rsnn_deploy.semantics import xylo as _sem
from rsnn_deploy.xylo.network import XyloNetwork

__all__ = ["XyloRun", "bitshift_decay", "run"]

MAX_IN_SPIKES, MAX_HIDDEN_SPIKES, MAX_OUT_SPIKES = _sem.MAX_IN_SPIKES, _sem.MAX_HIDDEN_SPIKES, _sem.MAX_OUT_SPIKES
S16_MIN, S16_MAX = _sem.S16_MIN, _sem.S16_MAX
bitshift_decay = _sem.bitshift_decay


@dataclass(frozen=True)
class XyloRun:
    """States after each step, batch-first, int64 (spike counts included)."""

    spikes: np.ndarray  # [B, T, H] hidden spike counts
    spikes_out: np.ndarray  # [B, T, K] output spikes (0/1)
    i_syn: np.ndarray  # [B, T, H, S]
    v_mem: np.ndarray  # [B, T, H]
    i_syn_out: np.ndarray  # [B, T, K]
    v_mem_out: np.ndarray  # [B, T, K]
    saturated: dict[str, int]  # neuron-steps that hit the 16-bit limit, per state


def run(net: XyloNetwork, x: np.ndarray) -> XyloRun:
    """Run ``net`` on input spike counts ``x`` [B, T, C] (non-negative integers) from rest.

    Raises
    ------
    ValidationError
        ``x`` has the wrong shape or negative / non-integer entries.
    """
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[2] != net.n_in:
        raise ValidationError(f"xylo.run.x: must be [B, T, {net.n_in}] (got shape {x.shape})")
    if x.dtype.kind not in "biu" or (x.size and x.min() < 0):
        raise ValidationError("xylo.run.x: must hold non-negative integer spike counts")
    b, t_steps, _ = x.shape
    h, k, s = net.n_hidden, net.n_out, net.n_synapses
    sem = _sem.SEMANTICS
    p = sem.params(net)
    state = sem.initial_state(b, h, np.int64, n_synapses=s, n_out=k)
    rec: dict[str, list[np.ndarray]] = {name: [] for name in ("spikes", "spikes_out", "i_syn", "v", "i_out", "v_out")}
    xs = x.astype(np.int64)
    for t in range(t_steps):
        _, state = sem.step(state, xs[:, t], p)
        for name, val in rec.items():
            val.append(getattr(state, name))

    def stack(name: str, shape: tuple[int, ...]) -> np.ndarray:
        return np.stack(rec[name], axis=1) if rec[name] else np.zeros(shape, np.int64)

    return XyloRun(
        spikes=stack("spikes", (b, 0, h)),
        spikes_out=stack("spikes_out", (b, 0, k)),
        i_syn=stack("i_syn", (b, 0, h, s)),
        v_mem=stack("v", (b, 0, h)),
        i_syn_out=stack("i_out", (b, 0, k)),
        v_mem_out=stack("v_out", (b, 0, k)),
        saturated={name: int(n) for name, n in zip(sem.overflow_names, state.overflow, strict=True)},
    )
