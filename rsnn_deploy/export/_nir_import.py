"""NIR graphs into float checkpoints: ``rsnn-deploy import GRAPH.nir -o DIR``.

Reads the shape every NIR-writing framework gives a one-layer recurrent network::

    Input -> Affine|Linear -> LIF|CubaLIF (<-> Affine|Linear recurrence) -> Affine|Linear -> LI -> Output

The recurrence may be flat (``lif <-> w_rec``) or nested (snnTorch ``RSynaptic`` and
``braille.nir``: a sub-graph ``{input, lif, w_rec, output}``, which nirtorch flattens to
``lif1.lif <-> lif1.w_rec``); nested graphs are flattened here first.

**Time step.** NIR is continuous time; every reader discretizes it with forward Euler
at *its own* ``dt`` (snnTorch 1.0 and SpikingJelly assume 1e-4 s, Norse 1e-3 s, this
toolkit's exports record ``metadata["dt_s"]``). The file's ``dt`` (``dt_s`` or ``dt``
in its metadata) is used when present; otherwise ``--dt`` is required. With ``dt``,
one Euler step of the NIR ODEs is one step of this toolkit's model::

    CubaLIF: a_s = 1 - dt/tau_syn, a_m = 1 - dt/tau_mem
             i[t] = a_s i + g (W x + W_rec z[t-1]),  g = (dt/tau_syn) w_in (dt/tau_mem) r
             v[t] = a_m v + i[t] + (dt/tau_mem) v_leak;  z = v > v_threshold;  v = v_reset = 0
    LIF:     v[t] = a_m v + (dt/tau) r (W x + b + W_rec z[t-1] + b_rec) + (dt/tau) v_leak
    LI:      y[t] = a_o y + (dt/tau) r (W_out z + b_out) + (dt/tau) v_leak

The model's own ``dt_ms`` is 1 (one model step per source step, as the chips need) and
its time constants are ``-1 / ln(a)`` steps; the source's seconds are in the JSON.
Per-neuron thresholds are folded into the incoming weights (threshold 1).

**Reset convention** (``--convention``): ``nir`` (default: Norse, SpikingJelly and this
toolkit) resets in the step that spikes; ``snntorch`` is snnTorch's ``reset_mechanism=
"zero"``, which also discards the next step's membrane input (``mem = (beta mem + syn)
(1 - reset[t-1])``): exactly a one-step refractory period here.

**Refused by name** (one line each): any other node type or topology, ``v_reset != 0``,
a threshold <= 0, a time constant not longer than ``dt``, non-uniform readout time
constants, shapes that do not chain. **Approximations, only when asked**
(``--approximate``): ``synaptic-bias`` (an Affine bias before a CubaLIF feeds the
*synaptic current*; the model's bias feeds the membrane, so it becomes the membrane bias
``b / (1 - a_s)`` with the same steady state, differing while the current settles) and
``readout`` (a CubaLI, LIF or CubaLIF readout read as a single-pole leaky readout on its
membrane time constant with the synapse's steady-state gain; spikes and synapse dropped).
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rsnn_deploy.errors import UnsupportedError, ValidationError

__all__ = [
    "APPROXIMATIONS", "CONVENTIONS", "ImportedGraph", "flatten_graph", "graph_dt", "hidden_subgraph", "import_nir_file",
    "import_nir_graph",
]

CONVENTIONS: tuple[str, ...] = ("nir", "snntorch")
APPROXIMATIONS: tuple[str, ...] = ("synaptic-bias", "readout")
SHAPE = "Input -> Affine|Linear -> LIF|CubaLIF (+ recurrent Affine|Linear) -> Affine|Linear -> LI -> Output"


@dataclass
class ImportedGraph:
    """The model's config and tensors, and how each NIR parameter was mapped."""

    config: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    mapping: dict[str, Any] = field(default_factory=dict)
    hidden: str = ""  # name of the spiking node (flattened)
    readout: str = ""  # name of the readout node (flattened)


def _arr(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def flatten_graph(graph: Any, prefix: str = "") -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Nodes and edges of ``graph`` with every nested ``NIRGraph`` inlined as ``outer.inner``.

    A sub-graph's own Input and Output nodes become pass-throughs: an edge into the
    sub-graph goes to its Input's successors, an edge out of it leaves from its Output's
    predecessors.
    """
    import nir

    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    entry: dict[str, list[str]] = {}  # sub-graph name -> flattened nodes its input feeds
    exit_: dict[str, list[str]] = {}  # sub-graph name -> flattened nodes feeding its output
    for name, node in graph.nodes.items():
        full = prefix + name
        if isinstance(node, nir.NIRGraph):
            sub_nodes, sub_edges = flatten_graph(node, full + ".")
            ins = [k for k, v in sub_nodes.items() if isinstance(v, nir.Input)]
            outs = [k for k, v in sub_nodes.items() if isinstance(v, nir.Output)]
            entry[full] = [b for a, b in sub_edges if a in ins]
            exit_[full] = [a for a, b in sub_edges if b in outs]
            nodes.update({k: v for k, v in sub_nodes.items() if k not in ins and k not in outs})
            edges += [(a, b) for a, b in sub_edges if a not in ins and b not in outs]
        else:
            nodes[full] = node
    for a, b in graph.edges:
        srcs = exit_.get(prefix + a, [prefix + a])
        dsts = entry.get(prefix + b, [prefix + b])
        edges += [(s, d) for s in srcs for d in dsts]
    return nodes, list(dict.fromkeys(edges))


def graph_dt(graph: Any) -> float | None:
    """The time step (s) a graph records in its metadata (``dt_s``, as this toolkit writes, or ``dt``)."""
    meta = getattr(graph, "metadata", None) or {}
    for key in ("dt_s", "dt"):
        if key in meta:
            try:
                value = float(np.asarray(meta[key]).reshape(-1)[0])
            except (TypeError, ValueError, IndexError):
                continue
            if math.isfinite(value) and value > 0:
                return value
    return None


def _uniform(value: np.ndarray) -> bool:
    return bool(np.allclose(value, value.reshape(-1)[0], rtol=1e-6, atol=0.0))


class _Mapper:
    """One import: the graph walked node by node, each parameter recorded or refused."""

    def __init__(self, where: str, dt: float, convention: str, approximate: set[str]):
        self.where = where
        self.dt = dt
        self.convention = convention
        self.approximate = approximate
        self.params: dict[str, str] = {}
        self.approximations: list[str] = []

    def fail(self, field_: str, msg: str) -> UnsupportedError:
        return UnsupportedError(f"{self.where}: {field_}: {msg}")

    def retention(self, name: str, tau: np.ndarray) -> np.ndarray:
        if np.any(~np.isfinite(tau)) or np.any(tau <= self.dt):
            bad = float(tau.reshape(-1)[np.argmin(tau.reshape(-1))])
            raise self.fail(name, f"time constant {bad:g} s is not longer than dt = {self.dt:g} s, so one Euler step "
                                  "does not decay (a <= 0); is --dt right?")
        return 1.0 - self.dt / tau

    def weight(self, name: str, node: Any, n_in: int | None) -> tuple[np.ndarray, np.ndarray | None]:
        import nir

        if not isinstance(node, (nir.Affine, nir.Linear)):
            raise self.fail(name, f"expected Affine or Linear here, got {type(node).__name__} ({SHAPE})")
        w = _arr(node.weight)
        if w.ndim != 2:
            raise self.fail(f"{name}.weight", f"must be 2-D [out, in] (got shape {list(w.shape)})")
        if n_in is not None and w.shape[1] != n_in:
            raise self.fail(f"{name}.weight", f"has {w.shape[1]} inputs, the node before gives {n_in}")
        self.params[f"{name}.weight"] = "weight (scaled by the neuron's Euler gain)"
        b = None
        if isinstance(node, nir.Affine) and node.bias is not None:
            b = _arr(node.bias).reshape(-1)
            if b.shape[0] != w.shape[0]:
                raise self.fail(f"{name}.bias", f"has {b.shape[0]} entries for {w.shape[0]} outputs")
            if not np.any(b):
                self.params[f"{name}.bias"] = "zero: dropped"
                b = None
        return w, b


def _successors(edges: list[tuple[str, str]], name: str) -> list[str]:
    return [b for a, b in edges if a == name]


def _chain(m: _Mapper, nodes: dict[str, Any], edges: list[tuple[str, str]]) -> dict[str, str | None]:
    """Names of the nodes in the one shape imported, or a one-line refusal."""
    import nir

    inputs = [k for k, v in nodes.items() if isinstance(v, nir.Input)]
    outputs = [k for k, v in nodes.items() if isinstance(v, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise m.fail("graph", f"needs exactly one Input and one Output (got {len(inputs)} and {len(outputs)}); "
                              f"import reads {SHAPE}")
    known = (nir.Input, nir.Output, nir.Affine, nir.Linear, nir.LIF, nir.CubaLIF, nir.LI, nir.CubaLI)
    for k, v in nodes.items():
        if not isinstance(v, known):
            raise m.fail(k, f"node type {type(v).__name__} is not supported; import reads {SHAPE}")

    def one(after: str, what: str) -> str:
        nxt = _successors(edges, after)
        if len(nxt) != 1:
            raise m.fail(after, f"must feed exactly one node ({what}), feeds {nxt}; import reads {SHAPE}")
        return nxt[0]

    w_in = one(inputs[0], "the input weights")
    lif = one(w_in, "the spiking layer")
    if not isinstance(nodes[lif], (nir.LIF, nir.CubaLIF)):
        raise m.fail(lif, f"expected LIF or CubaLIF after {w_in}, got {type(nodes[lif]).__name__}")
    after = _successors(edges, lif)
    rec = [k for k in after if lif in _successors(edges, k)]
    if len(rec) > 1:
        raise m.fail(lif, f"has {len(rec)} recurrent loops {rec}; import reads one")
    fwd = [k for k in after if k not in rec]
    if len(fwd) != 1:
        raise m.fail(lif, f"must feed one readout weight besides its recurrence, feeds {fwd}")
    into_lif = sorted(a for a, b in edges if b == lif)
    if into_lif != sorted([w_in, *rec]):
        raise m.fail(lif, f"receives {into_lif}; import reads one input weight and at most one recurrent weight")
    w_out = fwd[0]
    readout = one(w_out, "the readout")
    if isinstance(nodes[readout], nir.Output):
        raise m.fail(w_out, "feeds the Output directly; import needs a LI readout node after the readout weights")
    end = one(readout, "the Output")
    if end != outputs[0]:
        raise m.fail(readout, f"must feed the Output, feeds {end}")
    used = {inputs[0], w_in, lif, w_out, readout, end, *rec}
    extra = sorted(set(nodes) - used)
    if extra:
        raise m.fail(extra[0], f"is not part of {SHAPE}")
    return {"input": inputs[0], "w_in": w_in, "lif": lif, "w_rec": rec[0] if rec else None, "w_out": w_out,
            "readout": readout}


def _vec(m: _Mapper, node: Any, name: str, attr: str, n: int) -> np.ndarray:
    value = getattr(node, attr, None)
    if value is None:
        raise m.fail(f"{name}.{attr}", "missing")
    a = _arr(value).reshape(-1)
    if a.size == 1:
        a = np.full(n, float(a[0]))
    if a.size != n:
        raise m.fail(f"{name}.{attr}", f"has {a.size} entries for {n} neurons")
    if not np.all(np.isfinite(a)):
        raise m.fail(f"{name}.{attr}", "has non-finite values")
    return a


def _tau_ms(a: np.ndarray) -> np.ndarray:
    """Model time constants (ms, model dt = 1 ms) giving retention ``a`` per step."""
    return -1.0 / np.log(a)


def import_nir_graph(graph: Any, where: str, dt: float | None = None, convention: str = "nir",
                     approximate: tuple[str, ...] = ()) -> ImportedGraph:
    """Map ``graph`` (a ``nir.NIRGraph``) onto this toolkit's model; see the module docstring.

    ``dt`` (seconds) overrides nothing: when the file records one, a different ``dt`` is
    refused (the time constants would be read at the wrong scale).

    Raises
    ------
    ValidationError
        No ``dt`` anywhere, a ``dt`` that contradicts the file's, an unknown convention.
    UnsupportedError
        A node, topology or parameter value that has no exact equivalent (names it).
    """
    import nir

    if convention not in CONVENTIONS:
        raise ValidationError(f"--convention: must be one of {', '.join(CONVENTIONS)} (got {convention!r})")
    bad = sorted(set(approximate) - set(APPROXIMATIONS))
    if bad:
        raise ValidationError(f"--approximate: must be among {', '.join(APPROXIMATIONS)} (got {bad[0]!r})")
    file_dt = graph_dt(graph)
    if dt is not None and (not math.isfinite(dt) or dt <= 0):
        raise ValidationError(f"--dt: must be a positive time step in seconds (got {dt!r})")
    if file_dt is not None and dt is not None and not math.isclose(file_dt, dt, rel_tol=1e-9):
        raise ValidationError(f"--dt: {dt:g} s contradicts the file's recorded dt = {file_dt:g} s; drop --dt")
    use_dt = file_dt if file_dt is not None else dt
    if use_dt is None:
        raise ValidationError(
            f"{where}: the graph records no time step; pass --dt SECONDS: the step the writer simulated "
            "(snnTorch 1.0 and SpikingJelly assume 1e-4, Norse 1e-3)"
        )
    m = _Mapper(where, use_dt, convention, set(approximate))
    nodes, edges = flatten_graph(graph)
    names = _chain(m, nodes, edges)
    lif_name, ro_name = names["lif"], names["readout"]
    assert lif_name is not None and ro_name is not None
    lif = nodes[lif_name]

    w_in, b_in = m.weight(names["w_in"], nodes[names["w_in"]], None)
    h, c = w_in.shape
    w_rec = b_rec = None
    if names["w_rec"] is not None:
        w_rec, b_rec = m.weight(names["w_rec"], nodes[names["w_rec"]], h)
        if w_rec.shape[0] != h:
            raise m.fail(f"{names['w_rec']}.weight", f"has {w_rec.shape[0]} outputs for {h} neurons")
    synapse = isinstance(lif, nir.CubaLIF)
    thr = _vec(m, lif, lif_name, "v_threshold", h)
    v_reset = _vec(m, lif, lif_name, "v_reset", h)
    v_leak = _vec(m, lif, lif_name, "v_leak", h)
    r = _vec(m, lif, lif_name, "r", h)
    if np.any(v_reset != 0):
        raise m.fail(f"{lif_name}.v_reset", f"must be 0 (got {float(v_reset[v_reset != 0][0]):g}); this model "
                                            "resets the membrane to 0")
    if np.any(thr <= 0):
        raise m.fail(f"{lif_name}.v_threshold", f"must be positive (got {float(thr.min()):g})")
    tau_mem = _vec(m, lif, lif_name, "tau_mem" if synapse else "tau", h)
    a_m = m.retention(f"{lif_name}.{'tau_mem' if synapse else 'tau'}", tau_mem)
    g_m = (use_dt / tau_mem) * r
    bias = (use_dt / tau_mem) * v_leak
    syn_bias = (b_in if b_in is not None else 0.0) + (b_rec if b_rec is not None else 0.0)
    taus: dict[str, np.ndarray] = {"tau_mem": _tau_ms(a_m)}
    m.params[f"{lif_name}.{'tau_mem' if synapse else 'tau'}"] = "a_mem = 1 - dt/tau -> model tau_mem_ms = -1/ln(a_mem)"
    m.params[f"{lif_name}.r"] = "(dt/tau_mem) r folded into the incoming weights"
    m.params[f"{lif_name}.v_leak"] = "bias = (dt/tau_mem) v_leak"
    m.params[f"{lif_name}.v_reset"] = "0: reset to 0"
    if synapse:
        tau_syn = _vec(m, lif, lif_name, "tau_syn", h)
        a_s = m.retention(f"{lif_name}.tau_syn", tau_syn)
        gain = (use_dt / tau_syn) * _vec(m, lif, lif_name, "w_in", h) * g_m
        taus["tau_syn"] = _tau_ms(a_s)
        m.params[f"{lif_name}.tau_syn"] = "a_syn = 1 - dt/tau_syn -> model tau_syn_ms = -1/ln(a_syn)"
        m.params[f"{lif_name}.w_in"] = "(dt/tau_syn) w_in folded into the incoming weights"
        if np.any(syn_bias != 0):
            which = names["w_in"] if b_in is not None else names["w_rec"]
            if "synaptic-bias" not in m.approximate:
                raise m.fail(f"{which}.bias", "a bias into a CubaLIF's synaptic current has no exact equivalent here "
                                              "(the model's bias feeds the membrane); pass --approximate synaptic-bias "
                                              "to use the membrane bias b/(1 - a_syn) (same steady state)")
            bias = bias + gain * syn_bias / (1.0 - a_s)
            m.approximations.append(f"{which}.bias: synaptic-current bias -> membrane bias b/(1 - a_syn); the first "
                                    f"steps differ while the current settles (time constant {taus['tau_syn'].max():.3g}"
                                    " steps)")
        for nm in (names["w_in"], names["w_rec"]):
            if nm is not None and f"{nm}.bias" not in m.params:
                m.params[f"{nm}.bias"] = "membrane bias b/(1 - a_syn) (approximate)" if np.any(syn_bias) else "none"
    else:
        gain = g_m
        bias = bias + gain * syn_bias
        for nm in (names["w_in"], names["w_rec"]):
            if nm is not None and f"{nm}.bias" not in m.params:
                m.params[f"{nm}.bias"] = "membrane bias (dt/tau) r b"
    m.params[f"{lif_name}.v_threshold"] = ("threshold" if _uniform(thr) else
                                          "per-neuron threshold folded into the incoming weights (threshold 1)")
    scale = gain.copy()
    threshold = float(thr[0])
    if not _uniform(thr):
        scale, bias, threshold = scale / thr, bias / thr, 1.0
    w_in_eff = w_in * scale[:, None]
    w_rec_eff = w_rec * scale[:, None] if w_rec is not None else None

    w_out, b_out = m.weight(names["w_out"], nodes[names["w_out"]], h)
    k = w_out.shape[0]
    w_out_eff, b_out_eff, a_o = _readout(m, ro_name, nodes[ro_name], w_out, b_out, k)
    if b_out is not None:
        m.params[f"{names['w_out']}.bias"] = "b_out (times the readout's gain)"

    if synapse and w_rec_eff is None:
        w_rec_eff = np.zeros((h, h))  # a feed-forward CubaLIF: the synaptic variant without recurrence
        m.params["(recurrence)"] = "none: w_rec = 0 (the synaptic variant is recurrent)"
    variant = "rec-syn" if synapse else ("rec" if w_rec_eff is not None else "lif")
    per_neuron = any(not _uniform(t) for t in taus.values())
    tau_out_ms = float(_tau_ms(np.array([a_o]))[0])
    meta = getattr(graph, "metadata", None) or {}
    readout_mode = str(meta.get("readout_mode", "mean"))
    if readout_mode not in ("mean", "last"):
        readout_mode = "mean"
    cfg: dict[str, Any] = {
        "n_in": int(c), "n_hidden": int(h), "n_out": int(k), "variant": variant, "dt_ms": 1.0,
        "tau_mem_ms": float(taus["tau_mem"][0]), "tau_out_ms": tau_out_ms, "threshold": threshold,
        "bias": bool(np.any(bias != 0)), "per_neuron_tau": per_neuron, "readout_mode": readout_mode,
        "refractory_steps": 1 if convention == "snntorch" else 0,
    }
    if synapse:
        cfg["tau_syn_ms"] = float(taus["tau_syn"][0])
    f32 = torch.float32
    tensors: dict[str, torch.Tensor] = {
        "w_in": torch.tensor(w_in_eff, dtype=f32),
        "w_out": torch.tensor(w_out_eff, dtype=f32),
        "b_out": torch.tensor(b_out_eff, dtype=f32),
    }
    if w_rec_eff is not None:
        tensors["w_rec"] = torch.tensor(w_rec_eff, dtype=f32)
    if cfg["bias"]:
        tensors["bias"] = torch.tensor(bias, dtype=f32)
    for name, t in taus.items():
        tensors[name] = torch.tensor(t if per_neuron else t[:1], dtype=f32)
    mapping = {
        "dt_s": use_dt,
        "dt_from": "file metadata" if file_dt is not None else "--dt",
        "convention": convention,
        "discretization": "forward Euler at dt_s; one source step = one model step (model dt_ms = 1)",
        "nodes": {k_: v for k_, v in names.items() if v is not None},
        "parameters": m.params,
        "approximations": m.approximations,
        "source_metadata_keys": sorted(str(x) for x in meta),
    }
    return ImportedGraph(cfg, tensors, mapping, hidden=lif_name, readout=ro_name)


def _readout(m: _Mapper, name: str, node: Any, w: np.ndarray, b: np.ndarray | None,
             k: int) -> tuple[np.ndarray, np.ndarray, float]:
    """``(W_out, b_out, a_out)`` of the model's readout ``y = a y + W z + b`` for the NIR readout node."""
    import nir

    b = np.zeros(k) if b is None else b
    dt = m.dt
    if isinstance(node, nir.LI):
        tau = _vec(m, node, name, "tau", k)
        g = (dt / tau) * _vec(m, node, name, "r", k)
        leak = (dt / tau) * _vec(m, node, name, "v_leak", k)
        what = "tau"
        m.params.update({f"{name}.tau": "a_out = 1 - dt/tau -> tau_out_ms", f"{name}.r": "(dt/tau) r folded into W_out",
                         f"{name}.v_leak": "(dt/tau) v_leak added to b_out"})
    elif isinstance(node, (nir.CubaLI, nir.CubaLIF, nir.LIF)):
        kind = type(node).__name__
        if "readout" not in m.approximate:
            raise m.fail(name, f"a {kind} readout has no exact equivalent (this model's readout is one non-spiking "
                               "leaky integrator); pass --approximate readout to read its membrane through one pole")
        syn = not isinstance(node, nir.LIF)
        tau = _vec(m, node, name, "tau_mem" if syn else "tau", k)
        g = (dt / tau) * _vec(m, node, name, "r", k)
        if syn:
            tau_syn = _vec(m, node, name, "tau_syn", k)
            m.retention(f"{name}.tau_syn", tau_syn)
            g = g * _vec(m, node, name, "w_in", k)  # (dt/tau_syn) w_in / (1 - a_syn) = w_in: steady-state gain
        leak = (dt / tau) * _vec(m, node, name, "v_leak", k)
        what = "tau_mem" if syn else "tau"
        m.params.update({f"{name}.{what}": "a_out = 1 - dt/tau_mem -> tau_out_ms", f"{name}.r": "folded into W_out",
                         f"{name}.v_leak": "(dt/tau) v_leak added to b_out"})
        if syn:
            m.params[f"{name}.tau_syn"] = "dropped (approximate readout); its steady-state gain w_in is kept"
            m.params[f"{name}.w_in"] = "steady-state synaptic gain folded into W_out"
        if kind != "CubaLI":
            m.params[f"{name}.v_threshold"] = "dropped (approximate readout: the membrane is read, not spikes)"
            m.params[f"{name}.v_reset"] = "dropped (approximate readout)"
        m.approximations.append(f"{name}: {kind} readout read as one leaky integrator (tau = its membrane's); "
                                + ("its synapse is dropped; " if syn else "") + "no spikes, no reset")
    else:  # pragma: no cover - _chain admits only these types
        raise m.fail(name, f"unsupported readout {type(node).__name__}")
    if not _uniform(tau):
        raise m.fail(f"{name}.{what}", "differs between outputs; this model's readout has one time constant")
    a_o = float(m.retention(f"{name}.{what}", tau)[0])
    return w * g[:, None], b * g + leak, a_o


def hidden_subgraph(graph: Any) -> Any:
    """The graph cut after its spiking layer: ``Input -> w_in -> lif (<-> w_rec) -> Output``, flattened.

    Readers that drop or lack the readout node (Norse and SpikingJelly have no ``nir.LI``;
    snnTorch 1.0 neither) can still simulate this part of the *same* file; its output is the
    hidden spikes, compared spike for spike with the imported model's.
    """
    import nir

    nodes, edges = flatten_graph(graph)
    m = _Mapper("graph", 1.0, "nir", set(APPROXIMATIONS))
    names = _chain(m, nodes, edges)
    keep = [names["input"], names["w_in"], names["lif"]] + ([names["w_rec"]] if names["w_rec"] else [])
    sub = {k: nodes[k] for k in keep if k is not None}
    h = int(_arr(nodes[names["w_in"]].weight).shape[0])
    sub["output"] = nir.Output(output_type={"output": np.array([h])})
    sub_edges = [(a, b) for a, b in edges if a in sub and b in sub] + [(names["lif"], "output")]
    return nir.NIRGraph(nodes=sub, edges=sub_edges, metadata=dict(getattr(graph, "metadata", None) or {}),
                        type_check=False)


def import_nir_file(path: str | Path, out: str | Path, dt: float | None = None, convention: str = "nir",
                    approximate: tuple[str, ...] = (), data: str | Path | None = None, overwrite: bool = False,
                    check: tuple[str, ...] = ("auto",), check_steps: int = 200,
                    check_samples: int = 8) -> dict[str, Any]:
    """Import ``path`` into the folder ``out`` as ``out/model.{safetensors,json}``; returns the JSON's ``nir_import``.

    ``data`` (an ``.npz`` of ``x`` [N, T, C], ``y`` [N]) becomes the checkpoint's task, so that
    ``quantize`` calibrates and ``verify`` runs on it. ``check`` names readers (``norse``,
    ``spikingjelly``, ``snntorch``) whose simulation of the same file is compared spike for
    spike with the imported model on generated input (``check_samples`` x ``check_steps``);
    ``("auto",)`` (default) uses every installed one and records a reader that cannot load the
    file instead of failing; ``()`` checks nothing.
    """
    from rsnn_deploy.checkpoint import save_checkpoint
    from rsnn_deploy.config import ModelConfig, validate_config
    from rsnn_deploy.export._nir import read_nir
    from rsnn_deploy.export._nir_parity import READERS, compare_spikes, generated_spikes, reader_hidden_spikes
    from rsnn_deploy.model import RSNN
    from rsnn_deploy.tasks._npz import _sha256  # the one file hasher (the npz task records its data's)

    src = Path(path)
    out_dir = Path(out)
    if out_dir.exists() and not overwrite:
        raise ValidationError(f"{out_dir}: already exists; pass --overwrite to replace its model, or choose another -o")
    if out_dir.exists() and not out_dir.is_dir():
        raise ValidationError(f"{out_dir}: exists and is not a folder")
    graph = read_nir(src)
    imp = import_nir_graph(graph, str(src), dt=dt, convention=convention, approximate=approximate)
    cfg = validate_config(ModelConfig, imp.config, owner=f"{src}: imported model")
    model = RSNN(cfg)
    model.load_state_dict(imp.tensors)
    model.eval()
    task = None
    if data is not None:
        from rsnn_deploy.tasks import load_task

        t = load_task("npz", path=data, encoding="spikes")
        if t.n_channels != cfg.n_in:
            raise ValidationError(f"--data: {data} has {t.n_channels} input channels, the graph {cfg.n_in}")
        if t.n_classes > cfg.n_out:
            raise ValidationError(f"--data: {data} has {t.n_classes} classes, the graph {cfg.n_out} outputs")
        task = {"name": t.name, "params": t.params}
    parity: dict[str, Any] = {}
    auto = check == ("auto",)
    readers = tuple(r for r in READERS if importlib.util.find_spec(r) is not None) if auto else check
    if readers:
        x = generated_spikes(check_samples, check_steps, cfg.n_in, seed=0)
        with torch.no_grad():
            ours = model.hidden_spikes(torch.from_numpy(x)).numpy()
        for reader in readers:
            try:
                ref = reader_hidden_spikes(reader, graph, imp.mapping["dt_s"], x.transpose(1, 0, 2))
            except UnsupportedError as err:
                if not auto:
                    raise
                parity[reader] = {"unsupported": str(err)}  # auto: a reader that cannot load the file is a result
                continue
            parity[reader] = compare_spikes(ours, ref)
            parity[reader]["input"] = f"generated Bernoulli(0.1) spikes, seed 0, {check_samples} x {check_steps} steps"
            # snnTorch's Synaptic / RSynaptic / RLeaky discard the step after a spike; its Leaky does not
            snn_style = reader == "snntorch" and (cfg.synapse or cfg.recurrent)
            parity[reader]["reader_convention"] = "snntorch" if snn_style else "nir"
            parity[reader]["convention_matches"] = parity[reader]["reader_convention"] == convention
    record = {"source": str(src), "source_sha256": _sha256(src), **imp.mapping,
              **({"parity": parity} if parity else {})}
    out_dir.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {"nir_import": record}
    if task is not None:
        meta["task"] = task
    save_checkpoint(model, out_dir / "model", **meta)
    return record
