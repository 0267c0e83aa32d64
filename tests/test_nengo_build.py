"""Compiling QuantizedNetworks to nengo-loihi / nengo core, and the read-back check that guards it.

Random integer networks are compiled to floats, built by nengo-loihi, read back and run:
integers, spikes, voltages and currents must equal our emulator's. Networks nengo-loihi
cannot express (a connection weaker than 1/128 of its block max, which hits the
weight-exponent clamp) must be refused with the field and index named.
"""

from __future__ import annotations

from pathlib import Path

import nengo
import numpy as np
import pytest
from conftest import require

from rsnn_deploy.backends.nengo import (
    ANCHOR_INT,
    QuantizedNeurons,
    ReadbackError,
    build_loihi_network,
    compile_float,
    compile_qnet,
    first_divergence,
    loihi_floats,
    one_step_delay,
    open_checked,
    run_nengo_core,
    run_nengo_float,
    run_nengo_loihi,
)
from rsnn_deploy.emulator import run as emulate
from rsnn_deploy.errors import UnsupportedError
from rsnn_deploy.hardware import load_profile
from rsnn_deploy.qnet import QuantizedNetwork

pytestmark = pytest.mark.filterwarnings(
    "ignore:invalid value encountered in cast:RuntimeWarning",
    "ignore:This version of `nengo_loihi`:UserWarning",
    "ignore:emulator. states wrapped:RuntimeWarning",
)

MODELS = Path(__file__).resolve().parents[1] / "models"


def rec_weights(rng: np.random.Generator, shape: tuple[int, int], exp: int) -> np.ndarray:
    """Integers of one connection at nengo-loihi weight exponent ``exp``: multiples of 64, max |w| in range."""
    unit = 2 ** (7 + exp)
    w = np.rint(rng.integers(-127, 128, shape) * unit / 64).astype(np.int64) * 64
    w.flat[0] = (100 * unit) // 64 * 64 if 100 * unit >= 64 else 64  # largest |w| within [64, 127] * unit
    return w


def make_qnet(seed: int = 0, h: int = 24, c: int = 16, *, rec_exp: int | None = -1, anchor: bool = True,
              blocks: tuple[int, ...] | None = None, du: int = 741, dv: int = 205, ref: int = 1, vmin: int = 0,
              bias: bool = True, vth: int = 64 * 300, profile: str = "loihi1", weak: bool = False) -> QuantizedNetwork:
    """A random loihi1 (or loihi2) network; ``anchor`` puts a 127 << 7 input weight into every block."""
    prof = load_profile(profile)
    rng = np.random.default_rng(seed)
    sizes = blocks or (h,)
    w_in = rng.integers(-120, 121, (h, c)) * 128
    if anchor:
        for start in np.cumsum((0, *sizes[:-1])):
            w_in[start, 0] = ANCHOR_INT
    w_rec = None
    if rec_exp is not None:
        w_rec = rng.choice([-64, 0, 64], (h, h)) if weak else rec_weights(rng, (h, h), rec_exp)
    adapt = profile == "loihi2"
    return QuantizedNetwork(
        w_in=w_in, w_rec=w_rec, bias=(rng.integers(-40, 41, h) * 64 if bias else np.zeros(h, np.int64)),
        decay_u=np.full(h, du), decay_v=np.full(h, dv), vth=np.full(h, vth), refractory=np.full(h, ref),
        vmin=vmin if not adapt else prof.voltage.vmin_choices[0], vmax=prof.voltage.vmax_choices[-1],
        w_out=rng.standard_normal((3, h)), b_out=np.zeros(3), readout_decay=0.8, readout_mode="mean",
        profile=prof.name, profile_sha256=prof.sha256, input_latency=prof.timing.input_latency_steps,
        decay_theta=np.full(h, 40) if adapt else None, theta_step=np.full(h, 64 * 50) if adapt else None,
        decay_r=np.full(h, 300) if adapt else None, block_sizes=sizes, source=f"test-{seed}",
    )


def inputs(seed: int, b: int, t: int, c: int, p: float = 0.2) -> np.ndarray:
    return (np.random.default_rng(1000 + seed).random((b, t, c)) < p).astype(np.uint8)


CASES = {
    "anchor-in-input": dict(),
    "anchor-channel": dict(anchor=False),
    "rec-exp-0": dict(rec_exp=0),
    "rec-exp-3": dict(rec_exp=-3),
    "rec-exp-6-lossy": dict(rec_exp=-6),
    "no-synapse-filter": dict(du=4094),
    "refractory": dict(ref=4),
    "deep-floor": dict(vmin=1 - 2**31),
    "mid-floor": dict(vmin=1 - 2**12),
    "no-bias": dict(bias=False),
    "feedforward": dict(rec_exp=None),
    "split-blocks": dict(blocks=(16, 14), h=30),
    "split-no-anchor": dict(blocks=(16, 14), h=30, anchor=False),
}


@pytest.mark.nengo_loihi
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("case", list(CASES))
def test_nengo_loihi_reads_back_and_runs_exactly(case, seed):
    qnet = make_qnet(seed, **CASES[case])
    x = inputs(seed, 2, 40, qnet.n_inputs)
    tr = run_nengo_loihi(qnet, x, record_states=True)  # reads back before it runs
    ref = emulate(qnet, x, record_states=True)
    assert first_divergence(ref, tr) is None
    assert 0 < ref.spikes.mean() < 0.9, f"degenerate case: rate {ref.spikes.mean()}"
    assert bool(loihi_floats(qnet).anchor_rows) == (not CASES[case].get("anchor", True))


@pytest.mark.nengo_loihi
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weak_connection_hits_the_clamp_and_is_refused(seed):
    """Recurrent weights of +-64 against a 16256 block max need weight_exp -7: nengo-loihi doubles them."""
    qnet = make_qnet(seed, weak=True)
    build = build_loihi_network(qnet, inputs(0, 1, 5, qnet.n_inputs))
    with pytest.raises(ReadbackError, match=r"^nengo-loihi read-back: w_rec\[\d+, \d+\] = -?128, QuantizedNetwork has "
                                            r"-?64 \(\d+ entries differ\); nengo-loihi's weight-exponent clamp.*2x"):
        open_checked(qnet, build)


@pytest.mark.nengo_loihi
def test_over_one_core_is_split_by_blockshape_and_checked():
    """1100 neurons: two blocks (1024 + 76) via BlockShape, each read back on its own."""
    qnet = make_qnet(3, h=1100, c=8, rec_exp=None, blocks=(1024, 76))
    summary = compile_qnet(qnet, "nengo-loihi", check_steps=30)
    assert summary["readback"] == "identical" and summary["parity"]["spikes_equal"]
    assert [b["compartments"] for b in summary["blocks"]] == [1024, 76]
    assert summary["resources_nengo_loihi"]["cores"] == 2


@pytest.mark.nengo_loihi
def test_weight_change_after_build_is_caught():
    """The check compares every field: tamper with one integer of the target and the build is refused."""
    qnet = make_qnet(0)
    build = build_loihi_network(qnet, inputs(0, 1, 5, qnet.n_inputs))
    bias = qnet.bias.copy()
    bias[5] += 64
    other = QuantizedNetwork(**{**qnet.__dict__, "bias": bias})
    with pytest.raises(ReadbackError, match=r"bias\[5\] = .*QuantizedNetwork has"):
        open_checked(other, build)


def test_adaptation_is_refused_for_nengo_loihi_with_the_reason():
    qnet = make_qnet(0, profile="loihi2", rec_exp=1)
    with pytest.raises(UnsupportedError, match="AdaptiveLIF is silently built as LIF"):
        compile_qnet(qnet, "nengo-loihi", check_steps=5)
    with pytest.raises(UnsupportedError, match="has no threshold adaptation"):
        loihi_floats(qnet)


def test_unexpressible_fields_are_refused():
    with pytest.raises(UnsupportedError, match=r"decay_v: nengo-loihi builds one ensemble"):
        qnet = make_qnet(0)
        dv = qnet.decay_v.copy()
        dv[3] += 1
        loihi_floats(QuantizedNetwork(**{**qnet.__dict__, "decay_v": dv}))
    with pytest.raises(UnsupportedError, match=r"decay_v: nengo-loihi LIF needs a leak \(got dv = 0\)"):
        loihi_floats(make_qnet(0, dv=0))


@pytest.mark.parametrize("profile", ["loihi1", "loihi2"])
def test_nengo_core_integer_neurons_match_the_emulator(profile):
    qnet = make_qnet(4, profile=profile, rec_exp=-1 if profile == "loihi1" else 1, ref=2 if profile == "loihi1" else 1)
    x = inputs(4, 3, 50, qnet.n_inputs)
    tr = run_nengo_core(qnet, x, record_states=True, chunk=2)
    ref = emulate(qnet, x, record_states=True)
    assert first_divergence(ref, tr) is None
    assert ref.spikes.any()
    if profile == "loihi2":
        assert ref.adaptation.any()
    assert np.allclose(tr.logits, ref.logits)


def test_compile_nengo_core_summary():
    summary = compile_qnet(make_qnet(5, profile="loihi2", rec_exp=1), "nengo", check_steps=20)
    assert summary["parity"]["spikes_equal"] and summary["adaptation"]
    assert "QuantizedNeurons (lava-lif-atrlif)" in summary["neuron_type"]


def test_float_nengo_network_follows_the_torch_model():
    import torch

    from rsnn_deploy.config import ModelConfig
    from rsnn_deploy.model import RSNN

    torch.manual_seed(0)
    cfg = ModelConfig(n_in=10, n_hidden=20, n_out=3, variant="rec-syn-adapt", v_floor=-0.5, refractory_steps=2,
                      bias=True, init_in_gain=3.0)
    model = RSNN(cfg)
    with torch.no_grad():
        model.bias.uniform_(-0.05, 0.1)
    x = inputs(0, 4, 60, 10, 0.3)
    tr = run_nengo_float(model, x, record_states=True)
    ref = model.trace(torch.from_numpy(x).float())
    assert ref.spikes.numpy().mean() > 0.01
    assert (tr.spikes == (ref.spikes.numpy() > 0)).mean() > 0.999
    assert np.array_equal(tr.predictions, ref.logits.argmax(1).numpy())
    summary = compile_float(model, check_steps=30)
    assert summary["parity"]["spike_agreement"] > 0.99


def test_one_step_delay_and_builder_checks():
    """The recurrence sees the previous step exactly; ensembles with gain != 1 are refused."""
    qnet = make_qnet(0, h=4, c=2)
    with nengo.Network() as net:
        nengo.Ensemble(4, 1, neuron_type=QuantizedNeurons(qnet), gain=np.full(4, 2.0), bias=np.zeros(4))
    with pytest.raises(nengo.exceptions.BuildError, match="needs gain=1 and bias=0"):
        nengo.Simulator(net, progress_bar=False)
    with nengo.Network() as net:
        node = nengo.Node(lambda t: 1.0 if round(t / 0.001) == 3 else 0.0)
        out = nengo.Node(size_in=1)
        nengo.Connection(node, out, synapse=one_step_delay())
        p_in, p_out = nengo.Probe(node), nengo.Probe(out)
    with nengo.Simulator(net, progress_bar=False) as sim:
        sim.run_steps(6)
    assert np.flatnonzero(sim.data[p_in][:, 0])[0] + 1 == np.flatnonzero(sim.data[p_out][:, 0])[0]


# ----------------------------------------------------------------------------- shipped models


def _shipped(profile: str) -> list[Path]:
    import json

    return sorted(p.with_suffix("") for p in MODELS.glob("*.json")
                  if json.loads(p.read_text()).get("format") == "rsnn-deploy/checkpoint" and profile in p.stem)


def _quantized(path: Path, profile: str):
    from rsnn_deploy.checkpoint import load_checkpoint
    from rsnn_deploy.verify import quantize_checkpoint, task_of

    ckpt = load_checkpoint(path)
    if ckpt.task.get("name", "").startswith("sfmnist"):
        require("fashion-mnist")  # Debian's dataset-fashion-mnist (installed by .ci/run)
    task = task_of(ckpt)
    qnet, _ = quantize_checkpoint(ckpt, profile, 200, task)
    return ckpt, task, qnet


@pytest.mark.nengo_loihi
@pytest.mark.parametrize("path", _shipped("loihi1"), ids=lambda p: p.name)
def test_shipped_loihi1_models_agree_on_every_spike(path):
    _, task, qnet = _quantized(path, "loihi1")
    x = task.test.spikes(np.arange(30))
    tr = run_nengo_loihi(qnet, x, record_states=True)
    ref = emulate(qnet, x, record_states=True)
    assert first_divergence(ref, tr) is None


@pytest.mark.parametrize("path", _shipped("loihi2"), ids=lambda p: p.name)
def test_shipped_adaptive_model_agrees_on_nengo_core(path):
    _, task, qnet = _quantized(path, "loihi2")
    assert qnet.has_adaptation
    x = task.test.spikes(np.arange(20))
    tr = run_nengo_core(qnet, x, record_states=True)
    ref = emulate(qnet, x, record_states=True)
    assert first_divergence(ref, tr) is None
