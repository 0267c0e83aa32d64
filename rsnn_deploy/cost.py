"""What a network costs on the chip: exact operation counts, NeuroBench metrics, energy and latency.

Counts come from a :class:`~rsnn_deploy.trace.Trace` (integer or float) and the network's
connectivity (which weights are non-zero, how neurons split into cores), never from rates
or estimates, so that two backends that produce the same spikes give the same counts.

Per sample, split by source and per core (one core per block of
:meth:`QuantizedNetwork.block_slices`):

- **synaptic events**: a spike times the non-zero weights it drives. Input spikes ``x[t]``
  reach their targets at trace step ``t``; a hidden spike of step ``t`` reaches its
  recurrent targets at step ``t + 1``, so spikes of the last step are not delivered within
  the sample (exactly what the float model and NeuroBench count). The readout consumes
  ``z[t]`` at every step; it runs on the host, so it is counted but not charged to the chip.
  Events are charged to the core of the *target* neuron (where the accumulation happens).
- **neuron updates**: every compartment is updated every step; an update is *active* when the
  neuron is not at rest (``u != 0`` or ``v != 0`` or it spiked or ``theta != 0``), else
  *inactive*. Needs the states (``record_states=True``); without them only the total is known.
- **spikes**, and spike messages: a hidden spike is sent once to every core it projects to.
- **static footprint**: non-zero weights, synapse memory (``qnet.placement``), state bits per
  neuron per the profile, and connection sparsity.

Energy and latency multiply these counts by the profile's ``[cost]`` table
(``hardware/*.toml``)::

    energy  = sum_chip(synaptic events) * E_syn + active * E_active + inactive * E_inactive
              + spike messages (within a tile: E_tile; across tiles: |tile hops| * E_hop)
    latency = sum_t [ max_core( events[t, core] * t_syn + active[t, core] * t_active
                                + inactive[t, core] * t_inactive ) + t_sync ]

with cores placed in order, ``cores_per_tile`` to a tile, tiles in one east-west row, and
``t_sync`` the one-tile barrier when every core fits in one tile, else the table's upper
figure. A profile without published figures (``loihi2``) reports operations and states why
energy and latency are absent, instead of inventing them. The ``input_latency`` steps a chip
runs before the first input arrives lie outside the trace and are not counted.

NeuroBench-named metrics (``neurobench`` 2.3 definitions, per sample): ``ActivationSparsity``,
``SynapticOperations`` (``Effective_MACs``, ``Effective_ACs``, ``Dense``), ``MembraneUpdates``
(``H`` at the first step plus every later neuron-step whose membrane changed), ``Footprint``
(bytes) and ``ConnectionSparsity``. A test checks them against the ``neurobench`` package on
the float model.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rsnn_deploy.errors import ValidationError

__all__ = [
    "Connectivity",
    "OperationCounts",
    "cost_of_counts",
    "count_trace",
    "float_model_footprint_bytes",
    "measure_cost",
    "measure_float_cost",
    "neurobench_metrics",
    "synaptic_ops_per_sample",
]

SOURCES: tuple[str, ...] = ("input", "recurrent", "readout")


@dataclass(frozen=True)
class Connectivity:
    """Which weights exist, per target core: all a count needs from a network.

    ``nnz_in[j, c]``: non-zero weights from input channel ``c`` into core ``j``;
    ``nnz_rec[j, h]``: from hidden neuron ``h`` into core ``j`` (None without recurrence);
    ``nnz_out[h]``: readout weights of neuron ``h``.
    """

    nnz_in: np.ndarray
    nnz_rec: np.ndarray | None
    nnz_out: np.ndarray
    block_sizes: tuple[int, ...]
    weights_total: int
    weights_zero: int
    n_outputs: int

    @classmethod
    def of(cls, w_in: np.ndarray, w_rec: np.ndarray | None, w_out: np.ndarray,
           block_sizes: Sequence[int] | None = None) -> Connectivity:
        """From weight matrices ``w_in [H, C]``, ``w_rec [H, H]`` (post, pre) and ``w_out [K, H]``."""
        w_in, w_out = np.asarray(w_in), np.asarray(w_out)
        h = w_in.shape[0]
        sizes = tuple(int(s) for s in (block_sizes or (h,)))
        if sum(sizes) != h:
            raise ValidationError(f"Connectivity.block_sizes: must sum to {h} (got {list(sizes)})")
        edges = np.cumsum((0, *sizes))
        blocks = [slice(int(a), int(b)) for a, b in itertools.pairwise(edges)]
        nz_in = w_in != 0
        nnz_in = np.stack([nz_in[sl].sum(axis=0) for sl in blocks]).astype(np.int64)
        nnz_rec = None
        mats = [w_in, w_out]
        if w_rec is not None:
            w_rec = np.asarray(w_rec)
            nz_rec = w_rec != 0
            nnz_rec = np.stack([nz_rec[sl].sum(axis=0) for sl in blocks]).astype(np.int64)
            mats.append(w_rec)
        nnz_out = (w_out != 0).sum(axis=0).astype(np.int64)
        total = sum(int(m.size) for m in mats)
        zero = sum(int((m == 0).sum()) for m in mats)
        return cls(nnz_in, nnz_rec, nnz_out, sizes, total, zero, int(w_out.shape[0]))

    @classmethod
    def from_qnet(cls, qnet: Any) -> Connectivity:
        return cls.of(qnet.w_in, qnet.w_rec, qnet.w_out, qnet.block_sizes)

    @classmethod
    def from_model(cls, model: Any) -> Connectivity:
        """The float model's effective weights (one core: the float model has no placement)."""
        import torch

        with torch.no_grad():
            p = model.effective_params()
            w_rec = None if p.w_rec is None else p.w_rec.detach().cpu().numpy()
            return cls.of(p.w_in.detach().cpu().numpy(), w_rec, model.w_out.detach().cpu().numpy())

    @property
    def n_cores(self) -> int:
        return len(self.block_sizes)

    @property
    def n_hidden(self) -> int:
        return int(sum(self.block_sizes))

    @property
    def n_inputs(self) -> int:
        return int(self.nnz_in.shape[1])

    @property
    def block_slices(self) -> list[slice]:
        edges = np.cumsum((0, *self.block_sizes))
        return [slice(int(a), int(b)) for a, b in itertools.pairwise(edges)]

    @property
    def connection_sparsity(self) -> float:
        return self.weights_zero / max(self.weights_total, 1)


@dataclass
class OperationCounts:
    """Exact counts, one row per sample (int64); per-core arrays are ``[B, n_cores]``.

    ``active``/``inactive``/``membrane_updates`` are None when the trace had no states;
    ``critical_path_ns`` (sum over steps of the slowest core's time, sync excluded) is None
    without states or without a time table.
    """

    n_steps: int
    block_sizes: tuple[int, ...]
    recurrent: bool
    input_spikes: np.ndarray  # [B]
    syn_input: np.ndarray  # [B, cores]
    syn_recurrent: np.ndarray  # [B, cores]
    syn_readout: np.ndarray  # [B]
    spikes: np.ndarray  # [B, cores]
    spike_messages: np.ndarray  # [B, cores_src, cores_dst]
    active: np.ndarray | None  # [B, cores]
    inactive: np.ndarray | None  # [B, cores]
    membrane_updates: np.ndarray | None  # [B]
    critical_path_ns: np.ndarray | None  # [B]

    @property
    def n_samples(self) -> int:
        return int(self.input_spikes.shape[0])

    @property
    def neuron_updates(self) -> np.ndarray:
        """Per sample and core: every compartment, every step."""
        return np.broadcast_to(np.asarray(self.block_sizes, dtype=np.int64) * self.n_steps,
                               self.spikes.shape).copy()

    @property
    def syn_chip(self) -> np.ndarray:
        """Synaptic events the chip performs, per sample and core (input + recurrent)."""
        return self.syn_input + self.syn_recurrent

    @staticmethod
    def concat(parts: Sequence[OperationCounts]) -> OperationCounts:
        if not parts:
            raise ValidationError("OperationCounts.concat: no parts")
        first = parts[0]

        def cat(name: str) -> np.ndarray | None:
            vals = [getattr(p, name) for p in parts]
            return None if any(v is None for v in vals) else np.concatenate(vals)

        return OperationCounts(
            n_steps=first.n_steps, block_sizes=first.block_sizes, recurrent=first.recurrent,
            **{f: cat(f) for f in ("input_spikes", "syn_input", "syn_recurrent", "syn_readout", "spikes",
                                   "spike_messages", "active", "inactive", "membrane_updates", "critical_path_ns")},
        )


def _active_mask(trace: Any) -> np.ndarray | None:
    if trace.current is None or trace.voltage is None:
        return None
    active = (trace.current != 0) | (trace.voltage != 0) | trace.spikes.astype(bool)
    if trace.adaptation is not None:
        active |= trace.adaptation != 0
    return active


def _step_times(cost: Any) -> tuple[float, float, float] | None:
    if cost is None or not cost.has_time:
        return None
    return float(cost.synaptic_op_ns), float(cost.neuron_update_active_ns), float(cost.neuron_update_inactive_ns)


def count_trace(conn: Connectivity, spikes_in: np.ndarray, trace: Any, cost: Any = None) -> OperationCounts:
    """Count the operations of one batch: ``spikes_in [B, T, C]`` and the ``trace`` it produced.

    ``cost`` (a profile's :class:`~rsnn_deploy.hardware.CostTable`) is only needed for the
    per-step critical path, which cannot be rebuilt from per-sample totals.
    """
    x = np.asarray(spikes_in)
    z = np.asarray(trace.spikes).astype(bool, copy=False)
    if x.ndim != 3 or z.ndim != 3 or x.shape[:2] != z.shape[:2]:
        raise ValidationError(f"count_trace: inputs {x.shape} and spikes {z.shape} must be [B, T, C] and [B, T, H]")
    if x.shape[2] != conn.n_inputs or z.shape[2] != conn.n_hidden:
        raise ValidationError(
            f"count_trace: network has {conn.n_inputs} inputs and {conn.n_hidden} neurons "
            f"(got {x.shape[2]} and {z.shape[2]})"
        )
    b, t_steps, _ = z.shape
    # sums of the 0/1 arrays go straight to int64 (``sum(dtype=...)``): no int64 copy of [B, T, H]
    xb = x != 0
    x_count = xb.sum(axis=1, dtype=np.int64)  # [B, C]
    z_count = z.sum(axis=1, dtype=np.int64)  # [B, H]
    z_sent = z_count - z[:, -1] if t_steps > 1 else np.zeros_like(z_count)  # delivered recurrently
    syn_in = x_count @ conn.nnz_in.T
    syn_rec = z_sent @ conn.nnz_rec.T if conn.nnz_rec is not None else np.zeros_like(syn_in)
    blocks = conn.block_slices
    spikes = np.stack([z_count[:, sl].sum(axis=1) for sl in blocks], axis=1)
    n_cores = conn.n_cores
    messages = np.zeros((b, n_cores, n_cores), dtype=np.int64)
    if conn.nnz_rec is not None:
        for j in range(n_cores):  # one message per spike per destination core with a synapse from it
            reach = conn.nnz_rec[j] > 0
            for i, sl in enumerate(blocks):
                messages[:, i, j] = z_sent[:, sl] @ reach[sl].astype(np.int64)
    active_mask = _active_mask(trace)
    active = inactive = mem = crit = None
    if active_mask is not None:
        act_t = np.stack([active_mask[:, :, sl].sum(axis=2, dtype=np.int64) for sl in blocks], axis=2)  # [B, T, cores]
        active = act_t.sum(axis=1)
        inactive = np.asarray(conn.block_sizes, dtype=np.int64) * t_steps - active
        v = np.asarray(trace.voltage)
        mem = conn.n_hidden + (v[:, 1:] != v[:, :-1]).sum(axis=(1, 2), dtype=np.int64)
        times = _step_times(cost)
        if times is not None:
            t_syn, t_act, t_idle = times
            ev = xb.astype(np.float64) @ conn.nnz_in.T.astype(np.float64)  # [B, T, cores], exact integers
            if conn.nnz_rec is not None and t_steps > 1:
                ev[:, 1:] += z[:, :-1].astype(np.float64) @ conn.nnz_rec.T.astype(np.float64)
            idle_t = np.asarray(conn.block_sizes, dtype=np.float64) - act_t
            core_ns = ev * t_syn + act_t * t_act + idle_t * t_idle
            crit = core_ns.max(axis=2).sum(axis=1)
    return OperationCounts(
        n_steps=t_steps, block_sizes=conn.block_sizes, recurrent=conn.nnz_rec is not None,
        input_spikes=x_count.sum(axis=1), syn_input=syn_in,
        syn_recurrent=syn_rec, syn_readout=z_count @ conn.nnz_out, spikes=spikes, spike_messages=messages,
        active=active, inactive=inactive, membrane_updates=mem, critical_path_ns=crit,
    )


# ----------------------------------------------------------------------------- energy and latency


def _tile_of(core: int, cost: Any) -> int:
    return core // max(int(cost.cores_per_tile), 1)


def _message_energy_pj(messages: np.ndarray, cost: Any) -> np.ndarray:
    """Per sample: within-tile messages at ``spike_within_tile_pj``, others at E-W hops times ``tile_hop``."""
    n = messages.shape[1]
    e = np.zeros(messages.shape[0])
    for i in range(n):
        for j in range(n):
            hops = abs(_tile_of(i, cost) - _tile_of(j, cost))
            per = cost.spike_within_tile_pj if hops == 0 else hops * cost.tile_hop_east_west_pj
            e += messages[:, i, j] * per
    return e


def _sync_ns(n_cores: int, cost: Any) -> float:
    one, many = cost.barrier_sync_ns
    return float(one if _tile_of(n_cores - 1, cost) == 0 else many)


def _stat(values: np.ndarray) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()) if v.size else 0.0, "min": float(v.min()) if v.size else 0.0,
            "max": float(v.max()) if v.size else 0.0}


def cost_of_counts(counts: OperationCounts, profile: Any = None, static: dict[str, Any] | None = None,
                   connection_sparsity: float | None = None, n_outputs: int | None = None,
                   n_inputs: int | None = None) -> dict[str, Any]:
    """The JSON-able cost section: counts per sample (mean / min / max) and in total, per source and per
    core, NeuroBench metrics, and energy / latency per inference when the profile has figures."""
    b, t_steps = counts.n_samples, counts.n_steps
    per = {
        "input": counts.syn_input.sum(axis=1),
        "recurrent": counts.syn_recurrent.sum(axis=1),
        "readout": counts.syn_readout,
    }
    out: dict[str, Any] = {
        "samples": b,
        "steps": t_steps,
        "definitions": "synaptic events = spikes x non-zero fan-out (recurrent: delivered at the next step); "
                       "events are charged to the target neuron's core; readout runs on the host",
        "synaptic_events": {
            "per_sample": {k: _stat(v) for k, v in per.items()},
            "total": {k: int(v.sum()) for k, v in per.items()},
            "chip_per_sample": _stat(per["input"] + per["recurrent"]),
        },
        "spikes": {"hidden_per_sample": _stat(counts.spikes.sum(axis=1)),
                   "input_per_sample": _stat(counts.input_spikes),
                   "hidden_total": int(counts.spikes.sum()), "input_total": int(counts.input_spikes.sum()),
                   "messages_per_sample": _stat(counts.spike_messages.sum(axis=(1, 2)))},
        "neuron_updates": {
            "per_sample": int(sum(counts.block_sizes) * t_steps),
            "active_per_sample": None if counts.active is None else _stat(counts.active.sum(axis=1)),
            "inactive_per_sample": None if counts.inactive is None else _stat(counts.inactive.sum(axis=1)),
        },
        "per_core": [
            {"core": j, "neurons": int(size),
             "synaptic_events_per_sample": float(counts.syn_chip[:, j].mean()) if b else 0.0,
             "spikes_per_sample": float(counts.spikes[:, j].mean()) if b else 0.0,
             "active_updates_per_sample": None if counts.active is None else float(counts.active[:, j].mean()),
             "inactive_updates_per_sample": None if counts.inactive is None else float(counts.inactive[:, j].mean())}
            for j, size in enumerate(counts.block_sizes)
        ],
    }
    if static is not None:
        out["static"] = static
    out["neurobench"] = neurobench_metrics(counts, n_inputs=n_inputs, n_outputs=n_outputs,
                                           connection_sparsity=connection_sparsity,
                                           footprint_bytes=(static or {}).get("footprint_bytes"))
    out.update(_energy_latency(counts, profile))
    return out


def _energy_latency(counts: OperationCounts, profile: Any) -> dict[str, Any]:
    cost = getattr(profile, "cost", None) if profile is not None else None
    name = getattr(profile, "name", None)
    if cost is None:
        reason = f"profile {name} has no [cost] table" if name else "no hardware profile"
        return {"energy": {"available": False, "reason": reason}, "latency": {"available": False, "reason": reason}}
    res: dict[str, Any] = {"cost_source": cost.source}
    if not cost.has_energy:
        res["energy"] = {"available": False, "reason": cost.energy_unset_reason}
    elif counts.active is None:
        res["energy"] = {"available": False, "reason": "the trace has no states (active / inactive updates unknown)"}
    else:
        parts = {
            "synaptic_pj": counts.syn_chip.sum(axis=1) * cost.synaptic_op_pj,
            "neuron_active_pj": counts.active.sum(axis=1) * cost.neuron_update_active_pj,
            "neuron_inactive_pj": counts.inactive.sum(axis=1) * cost.neuron_update_inactive_pj,
            "spike_messages_pj": _message_energy_pj(counts.spike_messages, cost),
        }
        total = sum(parts.values())
        res["energy"] = {
            "available": True,
            "per_inference_nj": _stat(total / 1e3),
            "per_inference_parts_nj": {k.removesuffix("_pj"): float(v.mean() / 1e3) for k, v in parts.items()},
            "per_step_nj": float(total.mean() / 1e3 / max(counts.n_steps, 1)),
            "total_uj": float(total.sum() / 1e6),
            "excludes": "host readout, host input I/O, static (leakage) power",
        }
    if not cost.has_time:
        res["latency"] = {"available": False, "reason": cost.time_unset_reason}
    elif counts.critical_path_ns is None:
        res["latency"] = {"available": False, "reason": "the trace has no states (active / inactive updates unknown)"}
    else:
        sync = _sync_ns(len(counts.block_sizes), cost)
        per_inf = counts.critical_path_ns + sync * counts.n_steps
        res["latency"] = {
            "available": True,
            "per_inference_us": _stat(per_inf / 1e3),
            "per_step_ns": float(per_inf.mean() / max(counts.n_steps, 1)),
            "barrier_sync_ns_per_step": sync,
            "model": "per step: slowest core's synaptic events and neuron updates, plus barrier sync",
        }
    return res


# ----------------------------------------------------------------------------- NeuroBench names


def neurobench_metrics(counts: OperationCounts, *, n_inputs: int | None = None, n_outputs: int | None = None,
                       connection_sparsity: float | None = None,
                       footprint_bytes: int | None = None) -> dict[str, Any]:
    """NeuroBench 2.3's metrics under its own names and definitions, per sample.

    ``SynapticOperations`` counts every connection layer (input, recurrent, readout) the way
    NeuroBench's hooks on ``nn.Linear`` do: binary inputs make accumulates (ACs), so
    ``Effective_MACs`` is 0; ``Dense`` is every weight every step.
    """
    b, t_steps = counts.n_samples, counts.n_steps
    h = int(sum(counts.block_sizes))
    eff = counts.syn_input.sum(axis=1) + counts.syn_recurrent.sum(axis=1) + counts.syn_readout
    dense = None
    if n_inputs is not None and n_outputs is not None:
        rec = h * h if counts.recurrent else 0
        dense = t_steps * (n_inputs * h + rec + h * n_outputs)
    total_spikes = counts.spikes.sum()
    return {
        "ActivationSparsity": float(1.0 - total_spikes / max(b * t_steps * h, 1)),
        "SynapticOperations": {"Effective_MACs": 0.0, "Effective_ACs": float(eff.mean()) if b else 0.0,
                               "Dense": dense},
        "MembraneUpdates": None if counts.membrane_updates is None else float(counts.membrane_updates.mean()),
        "Footprint": footprint_bytes,
        "ConnectionSparsity": connection_sparsity,
    }


# ----------------------------------------------------------------------------- running it


def static_footprint(qnet: Any, profile: Any) -> dict[str, Any]:
    """Weights, synapse memory and state bits of the integer network on ``profile`` (per the profile's widths)."""
    from rsnn_deploy.qnet import placement

    pl = placement(qnet, profile)
    mats = [qnet.w_in] + ([qnet.w_rec] if qnet.w_rec is not None else [])
    nonzero = sum(int(np.count_nonzero(m)) for m in mats)
    st = profile.state
    per_neuron = (st.u_bits + 1) + (st.v_bits + 1) + ((st.theta_bits + 1) if qnet.has_adaptation else 0)
    state_bits = per_neuron * qnet.n_hidden
    readout_bytes = int(qnet.w_out.size + qnet.b_out.size) * 4
    return {
        "weights_nonzero": nonzero,
        "weights_total": sum(int(m.size) for m in mats),
        "weight_bits": int(profile.weight.mantissa_bits),
        "weight_bits_nonzero": nonzero * int(profile.weight.mantissa_bits),
        "synapse_memory_bits": int(pl.synapse_bits),
        "state_bits_per_neuron": int(per_neuron),
        "state_bits": int(state_bits),
        "host_readout_bytes": readout_bytes,
        "footprint_bytes": math.ceil((pl.synapse_bits + state_bits) / 8) + readout_bytes,
        "footprint_definition": "chip synapse memory + neuron state (profile widths) + float32 host readout",
    }


def _chunks(n: int, size: int) -> Iterator[np.ndarray]:
    for start in range(0, n, size):
        yield np.arange(start, min(n, start + size))


def _x_of(x: Any, idx: np.ndarray) -> np.ndarray:
    return x.spikes(idx) if hasattr(x, "spikes") and callable(x.spikes) else np.asarray(x)[idx]


def measure_counts(qnet: Any, x: Any, profile: Any = None, n: int | None = None, chunk: int = 256,
                   trace: Any = None) -> OperationCounts:
    """Run the integer emulator with states on ``x`` (an array ``[B, T, C]`` or a split) and count.

    ``trace``: the emulator's trace of ``x`` with states, already computed (``verify`` has
    one): counted instead of a second emulator run; it must cover the first ``n`` samples.
    """
    import warnings

    from rsnn_deploy.emulator import run as emulate
    from rsnn_deploy.hardware import load_profile

    prof = profile if profile is not None and not isinstance(profile, str) else load_profile(profile or qnet.profile)
    conn = Connectivity.from_qnet(qnet)
    total = len(x) if n is None else int(n)
    if trace is not None and (trace.voltage is None or trace.current is None or trace.spikes.shape[0] < total):
        raise ValidationError("measure_counts.trace: needs the states of every sample counted (record_states=True)")
    parts = []
    for idx in _chunks(total, chunk):
        xs = _x_of(x, idx)
        if trace is not None:
            sl = slice(int(idx[0]), int(idx[-1]) + 1)
            tr: Any = _States(trace.spikes[sl], trace.current[sl], trace.voltage[sl],
                              None if trace.adaptation is None else trace.adaptation[sl])
        else:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="emulator: states wrapped")
                tr = emulate(qnet, xs, prof, record_states=True)
        parts.append(count_trace(conn, xs, tr, prof.cost))
    return OperationCounts.concat(parts)


def measure_cost(qnet: Any, x: Any, profile: Any = None, n: int | None = None, chunk: int = 256,
                 trace: Any = None) -> dict[str, Any]:
    """The cost section for ``qnet`` on ``profile``, from the emulator's integer traces of ``x``
    (``trace``: that trace, already computed with states; see :func:`measure_counts`)."""
    from rsnn_deploy.hardware import load_profile

    prof = profile if profile is not None and not isinstance(profile, str) else load_profile(profile or qnet.profile)
    counts = measure_counts(qnet, x, prof, n, chunk, trace)
    conn = Connectivity.from_qnet(qnet)
    out = cost_of_counts(counts, prof, static=static_footprint(qnet, prof),
                         connection_sparsity=conn.connection_sparsity, n_outputs=qnet.n_outputs,
                         n_inputs=qnet.n_inputs)
    out["profile"] = prof.name
    out["network"] = "integer (emulator)"
    return out


def float_model_footprint_bytes(model: Any) -> int:
    """NeuroBench's ``Footprint`` of the float model: bytes of its parameters and buffers."""
    return int(sum(p.numel() * p.element_size() for p in model.parameters())
               + sum(b.numel() * b.element_size() for b in model.buffers()))


def float_counts(model: Any, x: np.ndarray, chunk: int = 256) -> OperationCounts:
    """Counts of the float model (its own spikes and membrane), for the NeuroBench comparison."""
    import torch

    conn = Connectivity.from_model(model)
    parts = []
    for idx in _chunks(len(x), chunk):
        xs = np.asarray(x)[idx]
        tr = model.trace(torch.from_numpy(xs).float())
        ftr = _States(tr.spikes.numpy() > 0, tr.current.numpy(), tr.voltage.numpy(),
                          tr.adaptation.numpy() if model.cfg.adaptation else None)
        parts.append(count_trace(conn, xs, ftr))
    return OperationCounts.concat(parts)


@dataclass(frozen=True)
class _States:
    """Spikes and states for :func:`count_trace` (the float model's, or a slice of an integer trace)."""

    spikes: np.ndarray
    current: np.ndarray | None
    voltage: np.ndarray | None
    adaptation: np.ndarray | None


def measure_float_cost(model: Any, x: np.ndarray, chunk: int = 256) -> dict[str, Any]:
    """NeuroBench metrics of the float model on ``x`` (the numbers NeuroBench itself reports)."""
    counts = float_counts(model, x, chunk)
    conn = Connectivity.from_model(model)
    return neurobench_metrics(counts, n_inputs=conn.n_inputs, n_outputs=conn.n_outputs,
                              connection_sparsity=conn.connection_sparsity,
                              footprint_bytes=float_model_footprint_bytes(model))


def synaptic_ops_per_sample(checkpoint_path: str, profile: str | None = None, split: str = "val",
                            limit: int | None = None, calib: int = 200, data_dir: Any = None) -> float:
    """Mean synaptic events per sample on the chip (input + recurrent) on ``split``: the ``ops`` objective.

    With ``profile``: the quantized network on its integer emulator; without: the float model.
    """
    from rsnn_deploy.checkpoint import load_checkpoint
    from rsnn_deploy.verify import evaluation_split, quantize_checkpoint, task_of

    ckpt = load_checkpoint(checkpoint_path)
    task = task_of(ckpt, data_dir)
    data = evaluation_split(task, ckpt.meta, split)
    n = len(data) if limit is None else min(int(limit), len(data))
    if profile:
        qnet, _ = quantize_checkpoint(ckpt, profile, calib, task)
        counts = measure_counts(qnet, data, profile, n)
    else:
        counts = float_counts(ckpt.model, data.spikes(np.arange(n)))
    return float(counts.syn_chip.sum(axis=1).mean()) if counts.n_samples else 0.0


def cost_section(qnet: Any, profile: Any, x: np.ndarray, model: Any = None, trace: Any = None) -> dict[str, Any]:
    """What ``verify`` reports: the integer network's cost on ``profile`` and, given the float
    model, NeuroBench's metrics of the float model on the same samples.

    ``trace``: the emulator's trace of ``x`` with states when the caller has one (``verify``
    records it for the agreement checks); the counts then need no second emulator run.
    """
    out = measure_cost(qnet, x, profile, trace=trace)
    if model is not None:
        out["neurobench_float_model"] = measure_float_cost(model, x)
    return out


def cost_headline(cost: dict[str, Any]) -> str:
    """One line for the terminal: synaptic events, energy and latency per inference."""
    ev = cost["synaptic_events"]["per_sample"]
    parts = [f"cost on {cost.get('profile')}: {ev['input']['mean']:,.0f} input + {ev['recurrent']['mean']:,.0f} "
             f"recurrent synaptic events per sample (+ {ev['readout']['mean']:,.0f} on the host readout)"]
    en, la = cost["energy"], cost["latency"]
    parts.append(f"{en['per_inference_nj']['mean']:,.1f} nJ" if en["available"] else f"energy n/a ({en['reason']})")
    if la["available"]:
        parts.append(f"{la['per_inference_us']['mean']:,.1f} us per inference")
    return "; ".join(parts)
