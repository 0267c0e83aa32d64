"""The vendor's bit-accurate simulator, ``xylosim`` (SynSense, C++ via pybind11), driven directly.

Rockpool's ``XyloSim`` wraps the same ``xylosim.v2.XyloLayer``; going to the layer ourselves
needs neither Rockpool nor ``samna`` (whose PyPI package is a stub that downloads at import).
The synapse lists are built exactly as Rockpool's ``XyloSim.from_specification`` builds them
(per source: synapse 1 targets, then synapse 2 targets, zero weights left out), so the order of
the saturating additions is the one Rockpool users get.

Install: ``pip install xylosim`` builds it from its sdist (a C++ compiler and ``pybind11`` are needed);
``.ci/run`` caches the wheel under ``~/.cache/rsnn-deploy/wheels``.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from rsnn_deploy.errors import UnsupportedError
from rsnn_deploy.xylo.emulator import XyloRun
from rsnn_deploy.xylo.network import XyloNetwork

__all__ = ["available", "run_xylosim", "xylosim_version"]


def _module() -> Any:
    try:
        return importlib.import_module("xylosim.v2")
    except ImportError as err:
        raise UnsupportedError(
            f"xylosim: not installed ({err}); `pip install xylosim` (builds from source with a C++ compiler)"
        ) from None


def available() -> bool:
    try:
        _module()
    except UnsupportedError:
        return False
    return True


def xylosim_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("xylosim")
    except PackageNotFoundError:
        return "absent"


def _synapses(mod: Any, w: np.ndarray) -> list[list[Any]]:
    """Per source row of ``w`` [P, N, S]: its nonzero synapses, synapse 0 targets first."""
    out = []
    for pre in range(w.shape[0]):
        row = []
        for syn in range(w.shape[2]):
            for post in np.nonzero(w[pre, :, syn])[0]:
                row.append(mod.XyloSynapse(int(post), syn, int(w[pre, post, syn])))
        out.append(row)
    return out


class _Layer:
    """A ``xylosim.v2.XyloLayer`` and the Python synapse objects it points to.

    The C++ layer keeps raw ``XyloSynapse*`` pointers: the synapse lists must outlive it, or
    ``evolve`` reads freed memory (a segmentation fault; Rockpool keeps them in ``_xylo_sim_params``).
    """

    def __init__(self, layer: Any, synapses: tuple[Any, ...]):
        self.layer = layer
        self._synapses = synapses


def make_layer(net: XyloNetwork) -> _Layer:
    """A ``xylosim.v2.XyloLayer`` holding ``net`` (with its synapse objects kept alive)."""
    mod = _module()
    syn = (_synapses(mod, net.w_in), _synapses(mod, net.w_rec), _synapses(mod, net.w_out[:, :, None]))
    layer = mod.XyloLayer(
        synapses_in=syn[0],
        synapses_rec=syn[1],
        synapses_out=syn[2],
        aliases=[[] for _ in range(net.n_hidden)],
        threshold=[int(v) for v in net.threshold],
        threshold_out=[int(v) for v in net.threshold_out],
        has_bias=net.has_bias,
        bias=[int(v) for v in net.bias],
        bias_out=[int(v) for v in net.bias_out],
        weight_shift_inp=int(net.shift_in),
        weight_shift_rec=int(net.shift_rec),
        weight_shift_out=int(net.shift_out),
        dash_mem=[int(v) for v in net.dash_mem],
        dash_mem_out=[int(v) for v in net.dash_mem_out],
        dash_syns=[[int(v) for v in row] for row in net.dash_syn],
        dash_syns_out=[[int(v)] for v in net.dash_syn_out],
        name="rsnn-deploy",
    )
    return _Layer(layer, syn)


def run_xylosim(net: XyloNetwork, x: np.ndarray) -> XyloRun:
    """Run each sample of ``x`` [B, T, C] (spike counts, < 256) through xylosim from rest.

    Returns the same :class:`XyloRun` as :func:`rsnn_deploy.xylo.emulator.run` (``saturated`` empty:
    xylosim does not count it).
    """
    x = np.asarray(x)
    holder = make_layer(net)
    layer = holder.layer
    h, k, s = net.n_hidden, net.n_out, net.n_synapses
    recs: dict[str, list[np.ndarray]] = {name: [] for name in ("n", "no", "i", "v", "io", "vo")}
    for sample in x:
        layer.reset_all()
        out = np.asarray(layer.evolve(sample.astype(np.uint8).tolist()), np.int64).reshape(-1, k)
        t_steps = out.shape[0]
        recs["no"].append(out)
        recs["n"].append(np.asarray(layer.rec_recurrent_spikes, np.int64).reshape(t_steps, h))
        i1 = np.asarray(layer.rec_i_syn, np.int64).reshape(h, t_steps).T
        if s == 2:
            i2 = np.asarray(layer.rec_i_syn2, np.int64).reshape(h, t_steps).T
            recs["i"].append(np.stack([i1, i2], axis=-1))
        else:
            recs["i"].append(i1[:, :, None])
        recs["v"].append(np.asarray(layer.rec_v_mem, np.int64).reshape(h, t_steps).T)
        recs["io"].append(np.asarray(layer.rec_i_syn_out, np.int64).reshape(k, t_steps).T)
        recs["vo"].append(np.asarray(layer.rec_v_mem_out, np.int64).reshape(k, t_steps).T)
    return XyloRun(
        spikes=np.stack(recs["n"]),
        spikes_out=np.stack(recs["no"]),
        i_syn=np.stack(recs["i"]),
        v_mem=np.stack(recs["v"]),
        i_syn_out=np.stack(recs["io"]),
        v_mem_out=np.stack(recs["vo"]),
        saturated={},
    )
