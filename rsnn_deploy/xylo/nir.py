"""A Xylo network as a NIR graph that Rockpool 3.1's ``rockpool.nn.modules.from_nir`` loads (nir 1.0.4).

Why this shape: Rockpool 3.1 pins ``nir <= 1.0.4`` and its reader knows exactly one recurrent form,
a nested graph of four nodes (``Input``, ``CubaLIF``, ``Linear`` recurrent weights, ``Output``),
which it turns into one ``LIFTorch(has_rec=True)``. ``LIFTorch`` steps Xylo's rule in float (input
and recurrent spikes into the current, both decays, ``v += sum(i) + bias``, ``floor(v / th)`` spikes,
reset by subtraction), so the graph is::

    input -> w_in (Linear) -> rnn [ input -> lif (CubaLIF) <-> w_rec (Linear) -> output ] -> w_out (Linear)
          -> readout (CubaLIF: dash_syn_out, dash_mem_out, threshold_out) -> output

Weights are the integers ``w << shift`` as floats and thresholds Xylo's, so the states are in Xylo's
integer units. Time constants are ``tau = -dt / ln(1 - 2^-dash)`` (exponential decay ``1 - 2^-dash``
per step, the grid value). Rockpool's reader ignores ``r`` except to recover ``dt = tau_mem / (1 + r)``,
so ``r = tau_mem / dt - 1`` here and every neuron gives back ``dt`` exactly.

What the format cannot carry, and is refused in one line: a second synaptic current per neuron
(``CubaLIF`` has one; Rockpool's NIR import and export refuse more), and biases (Rockpool's recurrent
import drops ``v_leak`` and the Affine bias). What it carries approximately: float decays instead of
``v - (v >> dash)`` (which rounds toward -inf and never stalls), no 16-bit saturation and no
spike-count caps (15 in, 31 hidden). So Rockpool's run of the file matches our integer emulator
closely, not bit for bit; :mod:`rsnn_deploy.xylo.export` (``XyloSim.from_specification``) is the
bit-exact route.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rsnn_deploy.errors import UnsupportedError
from rsnn_deploy.xylo.network import XyloNetwork

__all__ = ["read_xylo_nir", "tau_of_dash", "write_xylo_nir", "xylo_nir_graph"]

_ZERO_RETENTION_STEPS = 1.0 / 60.0  # tau for dash 0 (nothing retained), in steps: exp(-60) ~ 1e-26 per step


def tau_of_dash(dash: np.ndarray, dt_s: float) -> np.ndarray:
    """``-dt / ln(1 - 2^-dash)``: the time constant whose exponential decay per step is Xylo's ``1 - 2^-dash``;
    dash 0 (Xylo keeps nothing, e.g. the readout's ``dash_mem_out``) becomes a tau of dt / 60."""
    d = np.asarray(dash, np.float64)
    with np.errstate(divide="ignore"):
        tau = -dt_s / np.log1p(-(2.0 ** -np.maximum(d, 1)))
    return np.where(d < 1, dt_s * _ZERO_RETENTION_STEPS, tau)


def _cuba(nir: Any, tau_syn: np.ndarray, tau_mem: np.ndarray, threshold: np.ndarray, dt_s: float) -> Any:
    n = len(threshold)
    kw: dict[str, Any] = {}
    if "v_reset" in getattr(nir.CubaLIF, "__dataclass_fields__", {}):
        kw["v_reset"] = np.zeros(n)  # nir >= 1.0.5; write_xylo_nir strips it for nir 1.0.4
    return nir.CubaLIF(
        tau_syn=tau_syn,
        tau_mem=tau_mem,
        r=tau_mem / dt_s - 1.0,
        v_leak=np.zeros(n),
        v_threshold=np.asarray(threshold, np.float64),
        **kw,
    )


def xylo_nir_graph(net: XyloNetwork, dt_s: float = 1e-3) -> Any:
    """The NIR graph of ``net`` in the form Rockpool 3.1 reads (see the module docstring).

    Raises
    ------
    UnsupportedError
        Two synaptic currents per neuron, a non-zero bias, or a dash the format cannot hold.
    """
    import nir

    if net.n_synapses != 1:
        raise UnsupportedError(
            f"xylo NIR export: {net.n_synapses} synaptic currents per hidden neuron; NIR's CubaLIF (and Rockpool's "
            "NIR import) has one: use `rsnn-deploy xylo export` (XyloSim.from_specification) or train with one"
        )
    if net.has_bias:
        raise UnsupportedError("xylo NIR export: the network has biases; Rockpool's recurrent NIR import drops them")
    h, k = net.n_hidden, net.n_out
    w_in = (net.w_in[:, :, 0] << net.shift_in).astype(np.float64).T  # [H, C]
    w_rec = (net.w_rec[:, :, 0] << net.shift_rec).astype(np.float64).T  # [post, pre]
    w_out = (net.w_out << net.shift_out).astype(np.float64).T  # [K, H]
    lif = _cuba(nir, tau_of_dash(net.dash_syn[:, 0], dt_s), tau_of_dash(net.dash_mem, dt_s), net.threshold, dt_s)
    rnn = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([h])),
            "lif": lif,
            "w_rec": nir.Linear(weight=w_rec),
            "output": nir.Output(output_type=np.array([h])),
        },
        edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")],
    )
    readout = _cuba(
        nir, tau_of_dash(net.dash_syn_out, dt_s), tau_of_dash(net.dash_mem_out, dt_s), net.threshold_out, dt_s
    )
    meta = {
        "source": "rsnn-deploy xylo",
        "profile": net.profile,
        "dt_s": dt_s,
        "units": "Xylo integers: weights w << shift, thresholds and states as on the chip",
        "readout": {
            "node": "readout",
            "state": "v",
            "scale": net.readout_scale,
            "mode": net.readout_mode,
            "equation": "logits = readout_mode over time of v_readout / scale",
        },
        "dash_mem": net.dash_mem.tolist(),
        "dash_syn": net.dash_syn[:, 0].tolist(),
        "dash_syn_out": net.dash_syn_out.tolist(),
        "exact": "no: float decays, no 16-bit saturation, no spike caps (rsnn_deploy/xylo/nir.py)",
    }
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([net.n_in])),
            "w_in": nir.Linear(weight=w_in),
            "rnn": rnn,
            "w_out": nir.Linear(weight=w_out),
            "readout": readout,
            "output": nir.Output(output_type=np.array([k])),
        },
        edges=[("input", "w_in"), ("w_in", "rnn"), ("rnn", "w_out"), ("w_out", "readout"), ("readout", "output")],
        metadata=meta,
    )


def write_xylo_nir(net: XyloNetwork, path: str | Path, compat: str | None = "1.0.4", dt_s: float = 1e-3) -> Path:
    """Write :func:`xylo_nir_graph` (HDF5); ``compat="1.0.4"`` (default) for Rockpool 3.1's nir pin."""
    from rsnn_deploy.export._nir import write_nir

    return write_nir(xylo_nir_graph(net, dt_s), path, compat=compat)


def read_xylo_nir(path: str | Path) -> Any:
    """The graph of a file written by :func:`write_xylo_nir` (our reader, for tests and inspection)."""
    from rsnn_deploy.export._nir import read_nir

    return read_nir(path)
