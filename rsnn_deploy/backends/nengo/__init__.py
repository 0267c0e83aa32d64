"""Compile a :class:`~rsnn_deploy.qnet.QuantizedNetwork` (or the float model) to Nengo.

Three targets, one network shape (input spikes -> recurrent hidden population, host readout):

``nengo-loihi``
    ``nengo.LIF`` ensembles whose floats nengo-loihi 1.1.0 discretizes back to exactly
    our integers (:func:`loihi_floats`; the formulas are in ``_loihi.py``). Every build is
    read back and refused, in one line naming the field and first differing index, if
    any integer differs (:func:`open_checked`). Blocks follow ``qnet.block_sizes`` via
    ``nengo_loihi.BlockShape``. Threshold adaptation is refused: nengo-loihi has none on
    Loihi 1 and silently builds ``nengo.AdaptiveLIF`` as LIF.
``nengo`` (integer)
    nengo core with :class:`QuantizedNeurons`, a custom ``NeuronType`` whose step is the
    profile's integer step from :mod:`rsnn_deploy.emulator` (any profile, adaptation
    included). Bit-exact with the emulator by construction and by test.
``nengo`` (float)
    nengo core with :class:`FloatRSNNNeurons`, which runs ``neuron.neuron_step`` on numpy
    in float64 (``nengo.LIF`` integrates differently; see ``_neurons.py``). It agrees
    with torch's float32 up to rounding.

All runners return a :class:`~rsnn_deploy.trace.Trace` aligned to the float model's steps.

Example
-------
>>> from rsnn_deploy.backends.nengo import compile_qnet
>>> summary = compile_qnet(qnet, "nengo-loihi")      # doctest: +SKIP
>>> summary["readback"], summary["parity"]["spikes_equal"]   # doctest: +SKIP
('identical', True)
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from rsnn_deploy.backends.nengo._core import (
    CoreBuild,
    build_core_network,
    build_float_network,
    run_nengo_core,
    run_nengo_float,
)
from rsnn_deploy.backends.nengo._loihi import (
    ANCHOR_INT,
    LoihiBuild,
    LoihiFloats,
    ReadbackError,
    block_summary,
    build_loihi_network,
    check_readback,
    loihi_floats,
    nengo_loihi_quiet,
    open_checked,
    run_nengo_loihi,
)
from rsnn_deploy.backends.nengo._neurons import FloatNeuronParams, FloatRSNNNeurons, QuantizedNeurons, one_step_delay
from rsnn_deploy.errors import ParityError, UnsupportedError
from rsnn_deploy.hardware import load_profile
from rsnn_deploy.qnet import QuantizedNetwork, placement
from rsnn_deploy.trace import first_divergence

__all__ = [
    "ANCHOR_INT",
    "COMPILE_BACKENDS",
    "CoreBuild",
    "FloatNeuronParams",
    "FloatRSNNNeurons",
    "LoihiBuild",
    "LoihiFloats",
    "QuantizedNeurons",
    "ReadbackError",
    "build_core_network",
    "build_float_network",
    "build_loihi_network",
    "check_readback",
    "check_spikes",
    "compile_float",
    "compile_qnet",
    "first_divergence",
    "loihi_floats",
    "nengo_loihi_quiet",
    "one_step_delay",
    "open_checked",
    "refuse_adaptive_on_loihi",
    "run_nengo_core",
    "run_nengo_float",
    "run_nengo_loihi",
]

COMPILE_BACKENDS: tuple[str, ...] = ("nengo-loihi", "nengo")


def refuse_adaptive_on_loihi(qnet: QuantizedNetwork) -> None:
    """nengo-loihi cannot run threshold adaptation; say so instead of building plain LIF."""
    if qnet.has_adaptation:
        raise UnsupportedError(
            f"--backend nengo-loihi: the network adapts its threshold ({qnet.profile}), which nengo-loihi cannot "
            "run (Loihi 1 has no adaptation; nengo.AdaptiveLIF is silently built as LIF); use --backend nengo"
        )


def check_spikes(n_steps: int, n_channels: int, rate: float = 0.2, seed: int = 0) -> np.ndarray:
    """A deterministic random input ``[1, T, C]`` for the compile-time parity run."""
    return (np.random.default_rng(seed).random((1, n_steps, n_channels)) < rate).astype(np.uint8)


def compile_qnet(qnet: QuantizedNetwork, backend: str = "nengo-loihi", check_steps: int = 100,
                 seed: int = 0) -> dict[str, Any]:
    """Build ``qnet`` for ``backend``, check it, and return a JSON-able summary of the build.

    ``nengo-loihi``: the integers are read back and compared (refusal on any difference),
    then one random input of ``check_steps`` steps runs on nengo-loihi and on our
    emulator; ``nengo``: the same parity run in nengo core. Any disagreement raises.

    Raises
    ------
    UnsupportedError
        Adaptation asked of nengo-loihi, or a field nengo-loihi cannot express.
    ReadbackError
        nengo-loihi discretized to other integers (names field and index).
    ParityError
        The parity run differs from the emulator (names sample, step, neuron, variable).
    """
    from rsnn_deploy.emulator import run as emulate

    if backend not in COMPILE_BACKENDS:
        raise UnsupportedError(f"compile.backend: unknown (got {backend!r}); choose {' or '.join(COMPILE_BACKENDS)}")
    prof = load_profile(qnet.profile)
    x = check_spikes(check_steps, qnet.n_inputs, seed=seed)
    ref = emulate(qnet, x, prof, record_states=True)
    pl = placement(qnet, prof)
    summary: dict[str, Any] = {
        "backend": backend,
        "profile": qnet.profile,
        "source": qnet.source,
        "neurons": qnet.n_hidden,
        "inputs": qnet.n_inputs,
        "adaptation": qnet.has_adaptation,
        "resources_profile": {"cores": pl.n_cores, "input_axons": pl.input_axons,
                              "output_axons": pl.output_axons, "synapse_bits": pl.synapse_bits},
    }
    t0 = time.perf_counter()
    if backend == "nengo-loihi":
        refuse_adaptive_on_loihi(qnet)
        build = build_loihi_network(qnet, x, record_states=True)
        sim = open_checked(qnet, build)
        try:
            summary["readback"] = "identical"
            summary["anchor_channel"] = bool(build.floats.anchor_rows)
            summary["floats"] = {"tau_s": build.floats.tau_s, "tau_rc": build.floats.tau_rc,
                                 "tau_ref": build.floats.tau_ref, "min_voltage": build.floats.min_voltage,
                                 "w_scale": list(build.floats.w_scale)}
            summary["blocks"] = block_summary(sim, build)
            with nengo_loihi_quiet():
                sim.run_steps(check_steps + qnet.input_latency)
            lat = qnet.input_latency
            got = {k: np.stack([sim.data[p][lat:] for p in v]) for k, v in build.probes.items() if v}
        finally:
            sim.close()
        from rsnn_deploy.trace import Trace

        trace = Trace(spikes=got["output"] > 0, readout=ref.readout, logits=ref.logits,
                      voltage=got["voltage"].astype(np.int64), current=got["input"].astype(np.int64))
        summary["resources_nengo_loihi"] = {
            "cores": len(summary["blocks"]),
            "input_axons": sum(b["input_axons"] for b in summary["blocks"]),
            "output_axons": sum(b["output_axons"] for b in summary["blocks"]),
            "synapse_bits": sum(b["synapse_bits"] for b in summary["blocks"]),
        }
    else:
        trace = run_nengo_core(qnet, x, prof, record_states=True)
        summary["neuron_type"] = f"QuantizedNeurons ({prof.semantics})"
    div = first_divergence(ref, trace)
    summary["parity"] = {"steps": check_steps, "spikes": int(ref.spikes.sum()), "spikes_equal": div is None,
                         "first_divergence": div}
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    if div is not None:
        raise ParityError(
            f"compile --backend {backend}: differs from the emulator at step {div['step']}, neuron {div['neuron']}, "
            f"{div['variable']} ({div['b']} vs emulator {div['a']}) on a random input; this is a bug, please report it"
        )
    return summary


def compile_float(model: Any, check_steps: int = 100, seed: int = 0) -> dict[str, Any]:
    """Build the float model as a nengo-core network and compare it with torch on one random input.

    Float parity is up to rounding (float64 here, float32 in torch), so the summary
    reports agreement instead of raising.
    """
    import torch

    x = check_spikes(check_steps, model.cfg.n_in, seed=seed)
    t0 = time.perf_counter()
    tr = run_nengo_float(model, x, record_states=True)
    with torch.no_grad():
        fq, model.fake_quant = model.fake_quant, None
        try:
            ref = model.trace(torch.from_numpy(x).float())
        finally:
            model.fake_quant = fq
    ref_spikes = ref.spikes.numpy() > 0
    return {
        "backend": "nengo",
        "neuron_type": "FloatRSNNNeurons (float64, neuron.neuron_step)",
        "neurons": model.cfg.n_hidden,
        "variant": model.cfg.variant,
        "parity": {
            "steps": check_steps,
            "spike_agreement": float((tr.spikes == ref_spikes).mean()),
            "voltage_max_abs_diff": float(np.abs(tr.voltage - ref.voltage.numpy()).max()),
        },
        "seconds": round(time.perf_counter() - t0, 3),
    }
