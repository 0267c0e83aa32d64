"""An imported NIR graph against the frameworks' own simulation of the same file.

Each reader runs the file's spiking layer (``hidden_subgraph``: input weights, CubaLIF /
LIF, recurrence; the readout is cut off because Norse, SpikingJelly and snnTorch 1.0 have
no ``nir.LI``) on the same input spikes; the imported model's hidden spikes must be the
same, or the first divergence (step, sample, neuron) is reported.

Readers:

* ``norse``: ``norse.torch.from_nir(graph, dt=dt)``, stepped with its state.
* ``spikingjelly``: ``spikingjelly...nir_exchange.import_from_nir(graph, dt=dt)``, stepped.
* ``snntorch``: snnTorch's own neurons (``RSynaptic`` / ``RLeaky`` for a recurrent layer,
  ``Synaptic`` / ``Leaky`` otherwise, ``reset_mechanism="zero"``, as its importer builds them)
  with the file's weights and ``alpha = 1 - dt/tau_syn``, ``beta = 1 - dt/tau_mem``;
  its ``import_from_nir`` cannot load a recurrent graph
  (snnTorch issue 290), so the network is assembled from the file's parameters directly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rsnn_deploy.errors import UnsupportedError

__all__ = ["READERS", "compare_spikes", "generated_spikes", "reader_hidden_spikes"]

READERS: tuple[str, ...] = ("norse", "spikingjelly", "snntorch")


def generated_spikes(n: int, steps: int, channels: int, rate: float = 0.1, seed: int = 0) -> np.ndarray:
    """Deterministic Bernoulli input spikes ``[N, T, C]`` (float32 0/1)."""
    rng = np.random.default_rng(seed)
    return (rng.random((n, steps, channels)) < rate).astype(np.float32)


def _step_stateful(module: Any, x_tbc: np.ndarray) -> np.ndarray:
    state = None
    outs = []
    with torch.no_grad():
        for x_t in torch.from_numpy(np.ascontiguousarray(x_tbc, dtype=np.float32)):
            out, state = module(x_t, state)
            outs.append(out.detach().to(torch.float32).numpy())
    return np.stack(outs)


def _snntorch_hidden(graph: Any, dt: float, x_tbc: np.ndarray) -> np.ndarray:
    import nir
    import snntorch as snn

    from rsnn_deploy.export._nir_import import _chain, _Mapper, flatten_graph

    nodes, edges = flatten_graph(graph)
    names = _chain(_Mapper("graph", dt, "nir", {"synaptic-bias", "readout"}), nodes, edges)
    lif = nodes[names["lif"]]

    def linear(name: str | None) -> torch.nn.Linear | None:
        if name is None:
            return None
        node = nodes[name]
        w = torch.as_tensor(np.asarray(node.weight), dtype=torch.float32)
        lin = torch.nn.Linear(w.shape[1], w.shape[0], bias=isinstance(node, nir.Affine) and node.bias is not None)
        lin.weight.data = w
        if lin.bias is not None:
            lin.bias.data = torch.as_tensor(np.asarray(node.bias), dtype=torch.float32)
        return lin

    fc, rec = linear(names["w_in"]), linear(names["w_rec"])
    thr = np.asarray(lif.v_threshold, dtype=np.float64).reshape(-1)
    if not np.allclose(thr, thr[0]):
        raise UnsupportedError("snntorch: snnTorch neurons have one threshold per layer (the file's differ)")
    synapse = isinstance(lif, nir.CubaLIF)
    tau_mem = np.asarray(lif.tau_mem if synapse else lif.tau, dtype=np.float64)
    r = np.asarray(lif.r, dtype=np.float64)
    if not np.allclose(r, tau_mem / dt, rtol=1e-5):
        raise UnsupportedError("snntorch: snnTorch's neurons need r = tau_mem/dt (unit gain); the file's r differs")
    kw: dict[str, Any] = {"beta": torch.as_tensor(1.0 - dt / tau_mem, dtype=torch.float32),
                          "threshold": float(thr[0]), "reset_mechanism": "zero", "init_hidden": True}
    if synapse:
        tau_syn = np.asarray(lif.tau_syn, dtype=np.float64)
        if not np.allclose(np.asarray(lif.w_in, dtype=np.float64), tau_syn / dt, rtol=1e-5):
            raise UnsupportedError("snntorch: snnTorch's Synaptic needs w_in = tau_syn/dt; the file's w_in differs")
        kw["alpha"] = torch.as_tensor(1.0 - dt / tau_syn, dtype=torch.float32)
    if rec is not None:  # the modules snnTorch's importer builds for a recurrent sub-graph
        neuron = (snn.RSynaptic if synapse else snn.RLeaky)(linear_features=rec.weight.shape[0], **kw)
        neuron.recurrent = rec
    else:
        neuron = (snn.Synaptic if synapse else snn.Leaky)(**kw)
    x = torch.from_numpy(np.ascontiguousarray(x_tbc, dtype=np.float32))
    outs = []
    with torch.no_grad():
        for x_t in x:
            out = neuron(fc(x_t))
            outs.append((out[0] if isinstance(out, tuple) else out).numpy().astype(np.float32))
    return np.stack(outs)


def reader_hidden_spikes(reader: str, graph: Any, dt: float, x_tbc: np.ndarray) -> np.ndarray:
    """The spiking layer's spikes ``[T, B, H]`` as ``reader`` simulates ``graph`` at ``dt`` (seconds).

    Raises
    ------
    UnsupportedError
        The reader is not installed (names the package) or cannot represent the graph.
    """
    from rsnn_deploy.export._nir_import import hidden_subgraph

    if reader not in READERS:
        raise UnsupportedError(f"--check: unknown reader {reader!r}; one of {', '.join(READERS)}")
    package = {"norse": "norse", "spikingjelly": "spikingjelly", "snntorch": "snntorch"}[reader]
    try:
        __import__(package)
    except ImportError:
        raise UnsupportedError(f"--check {reader}: the '{package}' package is not installed") from None
    if reader == "snntorch":
        return _snntorch_hidden(graph, dt, x_tbc)
    sub = hidden_subgraph(graph)
    try:
        if reader == "norse":
            import norse.torch as norse_torch

            module = norse_torch.from_nir(sub, dt=dt)
        else:
            from spikingjelly.activation_based.nir_exchange import import_from_nir

            module = import_from_nir(sub, dt=dt)
    except (ValueError, NotImplementedError, AssertionError, KeyError) as err:
        raise UnsupportedError(f"--check {reader}: {reader} cannot load the graph ({err})") from None
    return _step_stateful(module, x_tbc)


def compare_spikes(ours: np.ndarray, ref: np.ndarray) -> dict[str, Any]:
    """Agreement of two spike arrays ``[T, B, H]`` and their first divergence (step, sample, neuron) or None."""
    if ours.shape != ref.shape:
        raise UnsupportedError(f"spike shapes differ: ours {list(ours.shape)} vs reader {list(ref.shape)}")
    diff = ours != ref
    first = None
    if diff.any():
        t, b, j = (int(i) for i in np.argwhere(diff)[0])
        first = {"step": t, "sample": b, "neuron": j, "ours": float(ours[t, b, j]), "reader": float(ref[t, b, j])}
    return {
        "spike_agreement": float(1.0 - diff.mean()),
        "identical": not bool(diff.any()),
        "first_divergence": first,
        "spikes_ours": int(ours.sum()),
        "spikes_reader": int(ref.sum()),
        "shape_tbh": list(ours.shape),
    }
