"""Quantizer: grids, refusals, PTQ report, and QAT's fake-quant model tracking the integer emulator."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rsnn_deploy import emulator
from rsnn_deploy.cli import main
from rsnn_deploy.config import ModelConfig
from rsnn_deploy.errors import UnsupportedError
from rsnn_deploy.hardware import load_profile
from rsnn_deploy.model import RSNN
from rsnn_deploy.qnet import check_representable
from rsnn_deploy.quantize import (
    attach_fake_quant,
    decay_to_int,
    effective_tau_ms,
    quantize_model,
    retention_of,
    weight_grid,
)

LOIHI1 = load_profile("loihi1")
LOIHI2 = load_profile("loihi2")


def make_model(variant="rec-syn", seed=0, **kw) -> RSNN:
    torch.manual_seed(seed)
    cfg = ModelConfig(n_in=20, n_hidden=48, n_out=4, variant=variant, init_in_gain=4.0, init_rec_gain=1.0, **kw)
    return RSNN(cfg)


def spikes(n=16, t=60, c=20, seed=0) -> np.ndarray:
    return (np.random.default_rng(seed).random((n, t, c)) < 0.15).astype(np.uint8)


@pytest.mark.parametrize("tau", [1.5, 2.0, 5.0, 10.0, 20.0, 50.0, 200.0])
def test_decay_is_nearest_on_grid_and_small_taus_are_nearly_exact(tau):
    a = math.exp(-1.0 / tau)
    for offset in (0, 1):
        d = int(decay_to_int(a, LOIHI1, offset))
        r = retention_of(d, LOIHI1, offset)
        # no other register value is closer to the float retention
        for other in (d - 1, d + 1):
            if 0 <= other <= 4094:
                assert abs(retention_of(other, LOIHI1, offset) - a) >= abs(r - a)
        err = abs(effective_tau_ms(r, 1.0) - tau) / tau
        assert err < (0.002 if tau <= 20 else 0.03)


def test_no_synapse_decays_current_almost_completely():
    d = int(decay_to_int(0.0, LOIHI1, 1))
    assert d == 4094  # nengo-loihi cannot express 4095 for u
    assert retention_of(d, LOIHI1, 1) == pytest.approx(1 / 4096)
    assert int(decay_to_int(0.0, LOIHI2, 1)) == 4095


def test_weight_grid_uses_smallest_exponent_that_fits():
    g = weight_grid(16256.0, LOIHI1)
    assert (g.exponent, g.step, g.hi) == (0, 128, 16256)
    g = weight_grid(5000.0, LOIHI1)
    assert g.exponent == -1 and g.step == 64 and g.hi >= 5000
    g = weight_grid(1e9, LOIHI1)  # too large: clipped at the largest exponent
    assert g.exponent == 0


@pytest.mark.parametrize("profile,variant,kw", [
    ("loihi1", "rec-syn", {"v_floor": 0.0, "refractory_steps": 1}),
    ("loihi1", "lif", {}),
    ("loihi2", "rec-syn-adapt", {"adapt_kind": "atrlif"}),
    ("loihi2", "rec", {}),
])
def test_ptq_produces_representable_integers_and_a_report(profile, variant, kw):
    m = make_model(variant, **kw)
    x = torch.from_numpy(spikes()).float()
    qnet, report = quantize_model(m, profile, x, source="t")
    check_representable(qnet, load_profile(profile))
    s = qnet.float_scale[0]
    assert qnet.vth[0] == round(m.cfg.threshold * s)
    # integer weights are the float weights times the scale, up to the grid step
    step = max(r["step"] for r in report["weights"])
    assert np.abs(qnet.w_in - m.w_in.detach().numpy() * s).max() <= step / 2 + 1e-6
    assert report["clipped_weights"] == 0
    assert {r["name"] for r in report["time_constants"]} >= {"tau_mem"}
    assert report["placement"]["cores"] == 1
    headroom = report["headroom_float_calibration"]
    assert headroom["q"]["fraction"] < 0.5 and headroom["u"]["fraction"] < 0.5
    if variant == "rec-syn-adapt":
        assert qnet.theta_step is not None and qnet.theta_step[0] == round(m.cfg.adapt_strength * s / 64) * 64


@pytest.mark.parametrize("profile,variant,kw", [
    ("loihi1", "rec-syn", {"v_floor": 0.0}),
    ("loihi2", "rec-syn-adapt", {"adapt_kind": "atrlif"}),
])
def test_fake_quant_model_tracks_the_integer_emulator(profile, variant, kw):
    """QAT's float twin equals the chip up to truncation: nearly every spike agrees, far more than plain PTQ."""
    m = make_model(variant, seed=3, **kw)
    x = spikes(n=32, t=80, seed=1)
    qnet, _ = quantize_model(m, profile, torch.from_numpy(x).float())
    emu = emulator.run(qnet, x)
    float_spikes = m.trace(torch.from_numpy(x).float()).spikes.numpy().astype(bool)
    attach_fake_quant(m, profile)
    fq_spikes = m.trace(torch.from_numpy(x).float()).spikes.numpy().astype(bool)
    agree_fq = (fq_spikes == emu.spikes).mean()
    agree_float = (float_spikes == emu.spikes).mean()
    assert emu.spikes.mean() > 0.01
    assert agree_fq > 0.97
    assert agree_fq >= agree_float


def test_qat_gradients_flow_through_fake_quant():
    m = make_model("rec-syn", v_floor=0.0, train_tau=True)
    attach_fake_quant(m, "loihi1")
    out = m(torch.from_numpy(spikes(n=4)).float(), engine="eager")
    out.logits.sum().backward()
    assert m.w_in.grad is not None and m.w_in.grad.abs().sum() > 0
    assert m.tau_mem.grad is not None


@pytest.mark.parametrize("profile,variant,kw,match", [
    ("loihi1", "rec-syn-adapt", {}, "needs adaptation"),
    ("loihi2", "rec-adapt", {"adapt_kind": "current"}, "adapt_kind 'current'"),
    ("loihi2", "rec-syn-adapt", {"adapt_kind": "threshold"}, "adapt_kind 'threshold'"),
    ("loihi2", "rec-syn", {"v_floor": 0.0}, "no voltage floor"),
    ("loihi2", "rec-syn", {"refractory_steps": 2}, "no refractory"),
    ("loihi1", "rec-syn", {"tau_mem_ms": 20000.0}, "beyond the 12-bit decay range"),
    ("loihi1", "rec-syn", {"per_neuron_tau": True, "train_tau": True}, "differs between neurons"),
])
def test_refusals_are_one_line(profile, variant, kw, match):
    m = make_model(variant, **kw)
    if kw.get("per_neuron_tau"):
        with torch.no_grad():
            m.tau_mem[0] = 7.0
    with pytest.raises(UnsupportedError, match=match) as info:
        quantize_model(m, profile)
    assert "\n" not in str(info.value)


def test_qat_refuses_what_the_profile_cannot_run():
    with pytest.raises(UnsupportedError, match="needs adaptation"):
        attach_fake_quant(make_model("rec-adapt"), "loihi1")


def test_cli_train_with_qat_for_unsupported_variant_exits_2(tmp_path, capsys):
    code = main(["train", "--task", "store-recall", "--task-param", "n_train=8", "--task-param", "n_test=4",
                 "--variant", "rec-adapt", "--qat", "loihi1", "--epochs", "1", "--quiet", "-o", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "needs adaptation" in err and err.count("\n") == 1


@pytest.mark.nengo_loihi
@pytest.mark.parametrize("seed,gain_in,gain_rec", [(1, 1.0, 8.0), (4, 0.5, 10.0), (5, 0.2, 0.2), (0, 30.0, 1.0)])
def test_every_loihi1_quantization_compiles_exactly_in_nengo_loihi(seed, gain_in, gain_rec):
    """Whatever scale PTQ picks (weight-limited, headroom-limited, calibration-halved), nengo-loihi can
    reproduce the integers: compile reads them back and refuses on any difference."""
    from rsnn_deploy.backends.nengo import compile_qnet

    torch.manual_seed(seed)
    m = RSNN(ModelConfig(n_in=20, n_hidden=48, n_out=4, variant="rec-syn", v_floor=0.0, init_in_gain=gain_in,
                         init_rec_gain=gain_rec, tau_syn_ms=50, tau_mem_ms=50))
    x = torch.from_numpy((np.random.default_rng(0).random((16, 60, 20)) < 0.5).astype(np.float32))
    qnet, _ = quantize_model(m, "loihi1", x)
    compile_qnet(qnet, "nengo-loihi", check_steps=40)
