"""Recurrent CUBA networks as NIR graphs (``nir`` 1.0), from a float model or a quantized network.

NIR describes continuous-time ODEs; our network is a discrete map with ``dt`` = 1 ms.
Frameworks disagree on how to go from one to the other (norse issue 411: norse
multiplied ``tau`` by ``dt``; snnTorch 1.0 hard-codes ``dt = 1e-4`` s in its importer),
so the convention is fixed here and recorded in the graph's metadata:

**Forward Euler at the graph's ``dt``** (``metadata["dt_s"]``, seconds). Time constants
are chosen so that one Euler step of the NIR ODEs *is* one step of our model::

    CubaLIF:  tau_syn dI/dt = -I + w_in S        I[t] = I + dt/tau_syn (-I + w_in S[t])
              tau_mem dv/dt = (v_leak - v) + r I  v[t] = v + dt/tau_mem (v_leak - v + r I[t])

    with  tau_syn = dt / (1 - a_s),  w_in = 1 / (1 - a_s)     ->  I[t] = a_s I + S[t]
          tau_mem = dt / (1 - a_m),  r    = 1 / (1 - a_m)     ->  v[t] = a_m v + I[t] + bias
          v_leak  = bias / (1 - a_m),  v_reset = 0

where ``a = exp(-dt / tau_model)`` is our per-step retention. These are *not* the
model's ``tau_*_ms`` (10 ms becomes 10.51 ms: ``dt / (1 - exp(-dt/tau))``); the exact
values are in ``metadata["tau_exact_ms"]``. A consumer that integrates exactly
(``exp(-dt/tau)``) should use those instead. Variants without a synapse use
``nir.LIF`` with ``tau = dt/(1 - a_m)``, ``r = 1`` and ``v_leak = 0`` (what Norse and
SpikingJelly read): the gain ``1/(1 - a_m)`` is folded into ``w_in`` and ``w_rec``, and
the bias (times that gain) is the input node's ``Affine`` bias.

Order within a step (NIR leaves it open; ours, recorded as ``metadata["update_order"]``):
current first, then the membrane with the *new* current, then ``z = v > v_threshold``
(strict), then reset to ``v_reset``. The recurrent edge ``lif -> w_rec -> lif`` carries
the spikes of the previous step (the one-step delay every NIR simulator gives a cycle).

Graph: ``input -> w_in (Linear, or Affine for a biased LIF) -> lif (CubaLIF | LIF) <-> w_rec
(Linear)``, and the readout ``lif -> w_out (Affine, b_out) -> readout (LI, tau = dt/(1 - a_o),
r = 1/(1 - a_o)) -> output``; with ``readout="affine"`` the graph ends at ``w_out`` (readers
without ``nir.LI`` keep it) and ``metadata["readout"]`` gives the leak ``y = a_o y + w_out(z)``.
Logits are the time mean (or the last step) of ``output``
(``metadata["readout_mode"]``).

A quantized network exports the same graph in integer units (weights, threshold,
``bias`` as floats; time constants from the decay registers' retention
``(4096 - offset - d) / 4096``), i.e. the chip *without* truncation and wrap-around,
and carries every integer, the profile and its hash under ``metadata["quantization"]``.
The threshold is ``vth`` for a ``>`` profile (loihi1, and loihi2's LIF) and ``vth - 1``
for a ``>=`` profile, the strict threshold that fires on the same integers.

Not representable in NIR 1.0, hence refused with one line (never silently dropped):
spike-frequency adaptation (no adaptive neuron), refractory periods, voltage floors.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from rsnn_deploy.errors import UnsupportedError, ValidationError
from rsnn_deploy.model import RSNN
from rsnn_deploy.qnet import QuantizedNetwork

__all__ = ["export_nir", "nir_from_model", "nir_from_qnet", "read_nir", "write_nir"]

UPDATE_ORDER = "synaptic current, then membrane with the new current, then z = v > v_threshold, then reset to v_reset"
DISCRETIZATION = "forward-euler: x[t] = x[t-1] + dt/tau * (rhs with the inputs of step t); dt = metadata dt_s"

_WHERE = "export --format nir"
READOUTS: tuple[str, ...] = ("li", "affine")
COMPATS: tuple[str | None, ...] = (None, "1.0.4")  # nir versions a file can be written for (None: the installed)


def _nir() -> ModuleType:
    try:
        import nir
    except ImportError:  # pragma: no cover - nir is a core dependency
        raise UnsupportedError(f"{_WHERE}: the 'nir' package is missing; install rsnn-deploy's dependencies") from None
    return nir


def _euler(a: np.ndarray, dt_s: float, what: str) -> tuple[np.ndarray, np.ndarray]:
    """``(tau_s, gain)`` such that one Euler step of ``tau dx/dt = -x + gain*in`` is ``x = a x + in``."""
    a = np.asarray(a, dtype=np.float64)
    if np.any(a >= 1.0) or np.any(a < 0.0):
        raise UnsupportedError(
            f"{_WHERE}: {what} retention must lie in [0, 1) for a finite NIR time constant "
            f"(got {float(a.max()):g}); nothing would decay"
        )
    leak = 1.0 - a
    return dt_s / leak, 1.0 / leak


def _readout_nodes(nir: ModuleType, w_out: np.ndarray, b_out: np.ndarray, a_out: float, dt_s: float,
                   readout: str = "li") -> dict[str, Any]:
    k = w_out.shape[0]
    nodes = {
        "w_out": nir.Affine(weight=np.asarray(w_out, np.float32), bias=np.asarray(b_out, np.float32)),
        "output": nir.Output(output_type={"output": np.array([k])}),
    }
    if readout == "li":
        tau, gain = _euler(np.full(k, a_out), dt_s, "readout")
        nodes["readout"] = nir.LI(tau=tau, r=gain, v_leak=np.zeros(k))
    return nodes


def _readout_meta(a_out: float, readout: str) -> dict[str, Any]:
    """How the logits follow from the graph's output, for either readout form."""
    eq = ("y = the LI node's state; logits = readout_mode of y over time" if readout == "li" else
          "the graph outputs c[t] = w_out(z[t]); y[t] = retention * y[t-1] + c[t]; logits = readout_mode of y")
    return {"node": readout, "retention": float(a_out), "equation": eq}


def _graph(nir: ModuleType, nodes: dict[str, Any], recurrent: bool, metadata: dict[str, Any]) -> Any:
    if "readout" in nodes:
        edges = [("input", "w_in"), ("w_in", "lif"), ("lif", "w_out"), ("w_out", "readout"), ("readout", "output")]
    else:  # readout "affine": readers without nir.LI (Norse, SpikingJelly) keep the whole graph
        edges = [("input", "w_in"), ("w_in", "lif"), ("lif", "w_out"), ("w_out", "output")]
    if recurrent:
        edges += [("lif", "w_rec"), ("w_rec", "lif")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def _neuron(nir: ModuleType, a_s: np.ndarray | None, a_m: np.ndarray, bias: np.ndarray, threshold: np.ndarray,
            dt_s: float) -> tuple[Any, np.ndarray | None, np.ndarray | None]:
    """``(node, fold, input_bias)``: the neuron node, the per-neuron factor folded into its incoming
    weights (plain LIF: ``r = 1``, what Norse and SpikingJelly assume) and the input Affine's bias."""
    tau_mem, r = _euler(a_m, dt_s, "membrane")
    thr = np.asarray(threshold, np.float64)
    b = np.asarray(bias, np.float64)
    if a_s is None:
        # r = 1: the Euler gain 1/(1 - a_m) goes into the weights and the bias into the input Affine
        # (v_leak = 0, which SpikingJelly requires and Norse reads as NIR says)
        node = nir.LIF(tau=tau_mem, r=np.ones_like(r), v_leak=np.zeros_like(thr), v_threshold=thr,
                       v_reset=np.zeros_like(thr))
        return node, r, (b * r if np.any(b != 0) else None)
    tau_syn, w_in = _euler(a_s, dt_s, "synaptic")
    node = nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau_mem, r=r, v_leak=b * r, v_threshold=thr,
                       v_reset=np.zeros_like(thr), w_in=w_in)
    return node, None, None


def _weights(nir: ModuleType, nodes: dict[str, Any], w_in: np.ndarray, w_rec: np.ndarray | None,
             fold: np.ndarray | None, in_bias: np.ndarray | None) -> None:
    """``w_in`` (Linear, or Affine with the folded bias) and ``w_rec`` with ``fold`` applied per neuron."""
    f = np.ones(w_in.shape[0]) if fold is None else fold
    w_in_f = np.asarray(w_in, np.float64) * f[:, None]
    nodes["w_in"] = nir.Linear(weight=w_in_f) if in_bias is None else nir.Affine(weight=w_in_f, bias=in_bias)
    if w_rec is not None:
        nodes["w_rec"] = nir.Linear(weight=np.asarray(w_rec, np.float64) * f[:, None])


def _check_readout(readout: str) -> None:
    if readout not in READOUTS:
        raise ValidationError(f"export --nir-readout: must be one of {', '.join(READOUTS)} (got {readout!r})")


def nir_from_model(model: RSNN, source: str = "", readout: str = "li") -> Any:
    """The float model as a ``nir.NIRGraph`` (effective parameters; see the module docstring).

    Raises
    ------
    UnsupportedError
        Adaptation, refractory period or voltage floor (no NIR 1.0 primitive).
    """
    from rsnn_deploy.export._onnx_float import float_params

    nir = _nir()
    _check_readout(readout)
    cfg = model.cfg
    if cfg.adaptation:
        raise UnsupportedError(
            f"{_WHERE}: variant {cfg.variant} uses spike-frequency adaptation ({cfg.adapt_kind}), which has no "
            "NIR 1.0 primitive; export --format onnx instead"
        )
    if cfg.refractory_steps > 0:
        raise UnsupportedError(
            f"{_WHERE}: refractory_steps={cfg.refractory_steps} has no NIR 1.0 equivalent; export --format onnx instead"
        )
    if cfg.v_floor is not None:
        raise UnsupportedError(
            f"{_WHERE}: v_floor={cfg.v_floor:g} (voltage floor) has no NIR 1.0 equivalent; export --format onnx instead"
        )
    p = float_params(model)
    n = p.neuron
    h, c = n.w_in.shape
    dt_s = cfg.dt_ms * 1e-3
    lif, fold, in_bias = _neuron(
        nir,
        n.a_syn if cfg.synapse else None,
        n.a_mem,
        n.bias if n.bias is not None else np.zeros(h),
        np.full(h, n.threshold),
        dt_s,
    )
    nodes: dict[str, Any] = {
        "input": nir.Input(input_type={"input": np.array([c])}),
        "lif": lif,
        **_readout_nodes(nir, p.w_out, p.b_out, p.a_out, dt_s, readout),
    }
    _weights(nir, nodes, n.w_in, n.w_rec, fold, in_bias)
    tau_exact = {name: np.asarray(getattr(model, name).detach().double().numpy()) for name in model.tau_names()}
    tau_exact["tau_out"] = np.array([cfg.tau_out_ms])
    metadata = {
        "producer": "rsnn-deploy",
        "kind": "float",
        "dt_s": dt_s,
        "discretization": DISCRETIZATION,
        "update_order": UPDATE_ORDER,
        "recurrent_delay_steps": 1,
        "readout_mode": p.readout_mode,
        "readout": _readout_meta(float(p.a_out), readout),
        "tau_exact_ms": tau_exact,
        "model_config": json.dumps(cfg.model_dump()),
        "source": source,
    }
    return _graph(nir, nodes, n.w_rec is not None, metadata)


def _quantization_meta(qnet: QuantizedNetwork, prof: Any, a_s: np.ndarray, a_m: np.ndarray, dt_s: float
                       ) -> dict[str, Any]:
    """``metadata["quantization"]`` of an integer graph: the profile's rules and the integers themselves."""
    from rsnn_deploy.quantize import effective_tau_ms

    quant: dict[str, Any] = {
        "profile": qnet.profile,
        "profile_sha256": qnet.profile_sha256,
        "semantics": prof.semantics,
        "comparison": prof.threshold.comparison,
        "decay_bits": prof.decay.bits,
        "decay_offsets": np.array([prof.decay.u_offset, prof.decay.v_offset, prof.decay.theta_offset]),
        "state_bits": np.array([prof.state.q_bits, prof.state.u_bits, prof.state.v_bits]),
        "input_latency": qnet.input_latency,
        "vmin": qnet.vmin,
        "vmax": qnet.vmax,
        "block_sizes": np.array(qnet.block_sizes, dtype=np.int64),
        "w_in": qnet.w_in,
        "bias": qnet.bias,
        "decay_u": qnet.decay_u,
        "decay_v": qnet.decay_v,
        "vth": qnet.vth,
        "refractory": qnet.refractory,
    }
    # the time constants the chip's registers realise, ms at the profile's dt: -dt / ln(retention)
    dt_ms = dt_s * 1e3
    quant["tau_effective_ms"] = {
        "tau_syn": effective_tau_ms(a_s, dt_ms), "tau_mem": effective_tau_ms(a_m, dt_ms),
        "tau_out": effective_tau_ms(np.array([qnet.readout_decay]), dt_ms),
    }
    if qnet.float_scale:
        quant["float_scale"] = np.array(qnet.float_scale, dtype=np.float64)
    if qnet.w_rec is not None:
        quant["w_rec"] = qnet.w_rec
    return quant


def nir_from_qnet(qnet: QuantizedNetwork, readout: str = "li") -> Any:
    """The quantized network as a ``nir.NIRGraph`` in integer units, the integers in ``metadata``.

    Raises
    ------
    UnsupportedError
        Threshold adaptation, refractory period or a voltage floor (no NIR 1.0 primitive).
    """
    from rsnn_deploy.hardware import load_profile
    from rsnn_deploy.quantize import retention_of

    nir = _nir()
    _check_readout(readout)
    prof = load_profile(qnet.profile)
    where = f"{_WHERE}: QuantizedNetwork[{qnet.source or qnet.profile}]"
    if qnet.has_adaptation or qnet.is_atrlif:
        raise UnsupportedError(
            f"{where}.theta_step: threshold adaptation (ATRLIF) has no NIR 1.0 primitive; "
            "export --format onnx or --format lava instead"
        )
    if int(qnet.refractory.max()) > 1:
        raise UnsupportedError(
            f"{where}.refractory: a refractory period ({int(qnet.refractory.max()) - 1} steps) has no NIR 1.0 "
            "equivalent; export --format onnx instead"
        )
    word = (1 << prof.state.v_bits) - 1
    if qnet.vmin > -word:
        raise UnsupportedError(
            f"{where}.vmin: a voltage floor (vmin={qnet.vmin}) has no NIR 1.0 equivalent; "
            "export --format onnx instead, or quantize a model trained without --v-floor"
        )
    dt_s = (prof.dt_ms or 1.0) * 1e-3
    a_s = retention_of(qnet.decay_u, prof, prof.decay.u_offset)
    a_m = retention_of(qnet.decay_v, prof, prof.decay.v_offset)
    c = qnet.n_inputs
    # NIR spikes on v > v_threshold; a '>=' chip (loihi2) fires on integers v > vth - 1
    strict_vth = qnet.vth - (1 if prof.threshold.comparison == ">=" else 0)
    lif, fold, in_bias = _neuron(nir, a_s, a_m, qnet.bias.astype(np.float64), strict_vth.astype(np.float64), dt_s)
    nodes: dict[str, Any] = {
        "input": nir.Input(input_type={"input": np.array([c])}),
        "lif": lif,
        **_readout_nodes(nir, qnet.w_out, qnet.b_out, qnet.readout_decay, dt_s, readout),
    }
    _weights(nir, nodes, qnet.w_in, qnet.w_rec, fold, in_bias)
    quant = _quantization_meta(qnet, prof, a_s, a_m, dt_s)
    metadata = {
        "producer": "rsnn-deploy",
        "kind": "int",
        "dt_s": dt_s,
        "discretization": DISCRETIZATION + "; the chip also truncates each decay toward zero and wraps u",
        "update_order": UPDATE_ORDER,
        "recurrent_delay_steps": 1,
        "readout_mode": qnet.readout_mode,
        "readout": _readout_meta(float(qnet.readout_decay), readout),
        "units": "integer voltage units of the chip (float_scale per block = units per float unit)",
        "quantization": quant,
        "source": qnet.source,
    }
    return _graph(nir, nodes, qnet.w_rec is not None, metadata)


def export_nir(obj: RSNN | QuantizedNetwork, source: str = "", readout: str = "li") -> Any:
    """``nir_from_model`` or ``nir_from_qnet``, by type."""
    if isinstance(obj, QuantizedNetwork):
        return nir_from_qnet(obj, readout=readout)
    return nir_from_model(obj, source=source, readout=readout)


def write_nir(graph: Any, path: str | Path, compat: str | None = None) -> Path:
    """Write ``graph`` with ``nir.write`` (HDF5); returns the path.

    ``compat="1.0.4"`` writes a file that nir 1.0.4 reads, for Rockpool 3.1 and Sinabs 3.1,
    which pin ``nir <= 1.0.4``: that version's ``LIF`` / ``CubaLIF`` have no ``v_reset``
    (they reset to 0) and refuse the keyword, so the all-zero ``v_reset`` datasets are
    removed from the file (a non-zero one is refused).
    """
    out = Path(path)
    if compat not in COMPATS:
        raise ValidationError(f"export --nir-compat: must be one of {', '.join(c for c in COMPATS if c)} "
                              f"(got {compat!r})")
    _nir().write(str(out), graph)
    if compat == "1.0.4":
        _strip_v_reset(out)
    return out


def _strip_v_reset(path: Path) -> None:
    import h5py

    with h5py.File(path, "r+") as f:
        groups: list[Any] = []
        f.visititems(lambda _n, obj: groups.append(obj) if isinstance(obj, h5py.Group) and "v_reset" in obj else None)
        for g in groups:
            if np.any(np.asarray(g["v_reset"][()]) != 0):
                raise UnsupportedError(f"{_WHERE} --nir-compat 1.0.4: {g.name}.v_reset is non-zero; nir 1.0.4 "
                                       "resets to 0 and has no v_reset")
            del g["v_reset"]


def read_nir(path: str | Path) -> Any:
    """``nir.read`` with a one-line error for a missing or foreign file."""
    p = Path(path)
    if not p.is_file():
        raise ValidationError(f"{p}: file not found")
    try:
        return _nir().read(str(p))
    except (OSError, KeyError, ValueError) as err:
        raise ValidationError(f"{p}: not a NIR file ({err})") from None
