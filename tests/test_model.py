"""Neuron dynamics against trajectories computed by hand, and gradient flow."""

from __future__ import annotations

import math

import pytest
import torch

from rsnn_deploy.config import VARIANTS, ModelConfig
from rsnn_deploy.model import RSNN

HALF = 1.0 / math.log(2.0)  # tau (ms) whose decay exp(-1/tau) is exactly 1/2 at dt = 1 ms


def one_neuron(variant: str, w_in: float, w_rec: float = 0.0, **kw) -> RSNN:
    cfg = ModelConfig(n_in=1, n_hidden=1, n_out=1, variant=variant, tau_mem_ms=HALF, tau_syn_ms=HALF,
                      tau_adapt_ms=HALF, **kw)
    m = RSNN(cfg).double()
    with torch.no_grad():
        m.w_in.fill_(w_in)
        if m.w_rec is not None:
            m.w_rec.fill_(w_rec)
    return m


def run(m: RSNN, x: list[float]):
    tr = m.trace(torch.tensor(x, dtype=torch.float64).view(1, -1, 1))
    return tuple(t[0, :, 0].tolist() for t in (tr.spikes, tr.voltage, tr.current, tr.adaptation))


def test_lif_no_synapse_no_recurrence():
    # i = 0.6 x ; v = v/2 + i ; spike when v > 1, then v = 0
    z, v, i, _ = run(one_neuron("lif", 0.6), [1, 1, 1, 0, 1])
    assert i == pytest.approx([0.6, 0.6, 0.6, 0.0, 0.6])
    # v: 0.6, 0.9, 1.05 -> spike -> 0, 0, 0.6
    assert z == [0, 0, 1, 0, 0]
    assert v == pytest.approx([0.6, 0.9, 0.0, 0.0, 0.6])


def test_rec_syn_trajectory():
    # i = i/2 + 0.6 x - 0.2 z[t-1] ; v = v/2 + i
    z, v, i, _ = run(one_neuron("rec-syn", 0.6, -0.2), [1, 1, 0, 0, 1])
    # t0 i .6 v .6 | t1 i .9 v 1.2 spike -> 0 | t2 i .45-.2=.25 v .25 | t3 i .125 v .25 | t4 i .6625 v .7875
    assert i == pytest.approx([0.6, 0.9, 0.25, 0.125, 0.6625])
    assert v == pytest.approx([0.6, 0.0, 0.25, 0.25, 0.7875])
    assert z == [0, 1, 0, 0, 0]


def test_rec_without_synapse_uses_recurrent_input_directly():
    # i = 1.2 x + 0.5 z[t-1] ; v = v/2 + i
    z, v, i, _ = run(one_neuron("rec", 1.2, 0.5), [1, 0, 0, 0])
    # t0 v 1.2 spike | t1 i .5 v .5 | t2 i 0 v .25 | t3 v .125
    assert z == [1, 0, 0, 0]
    assert i == pytest.approx([1.2, 0.5, 0.0, 0.0])
    assert v == pytest.approx([0.0, 0.5, 0.25, 0.125])


def test_threshold_adaptation_trajectory():
    # threshold = 1 + n ; n decays by 1/2 each step, += 0.5 on spike ; i = 1.1 x (no synapse)
    z, v, _, n = run(one_neuron("rec-adapt", 1.1, 0.0, adapt_strength=0.5), [1, 1, 1, 1])
    # t0 v 1.1 > 1 spike, n .5 | t1 n .25, v 1.1 > 1.25? no | t2 n .125, v .55+1.1=1.65 > 1.125 spike, n .625
    # t3 n .3125 v 1.1 < 1.3125
    assert z == [1, 0, 1, 0]
    assert n == pytest.approx([0.5, 0.25, 0.625, 0.3125])
    assert v == pytest.approx([0.0, 1.1, 0.0, 1.1])


def test_current_adaptation_trajectory():
    # v = v/2 + i - n ; n decays by 1/2, += 0.8 on spike ; i = 1.5 x
    z, v, _, n = run(one_neuron("rec-adapt", 1.5, 0.0, adapt_strength=0.8, adapt_kind="current"), [1, 1, 1])
    # t0 v 1.5 spike n .8 | t1 n .4 v 1.5-.4=1.1 spike n 1.2 | t2 n .6 v .9 no spike
    assert z == [1, 1, 0]
    assert n == pytest.approx([0.8, 1.2, 0.6])
    assert v == pytest.approx([0.0, 0.0, 0.9])


def test_refractory_and_floor():
    # 2 refractory steps: v is held at 0 for two steps after a spike; floor 0 clips negative input
    z, v, _, _ = run(one_neuron("lif", 2.0, refractory_steps=2), [1, 1, 1, 1, 1])
    assert z == [1, 0, 0, 1, 0]
    assert v == pytest.approx([0.0, 0.0, 0.0, 0.0, 0.0])
    z, v, _, _ = run(one_neuron("lif", -1.0, v_floor=0.0), [1, 0, 1])
    assert v == pytest.approx([0.0, 0.0, 0.0])
    z, v, _, _ = run(one_neuron("lif", -1.0), [1, 0])
    assert v == pytest.approx([-1.0, -0.5])


def test_strict_threshold():
    z, _, _, _ = run(one_neuron("lif", 1.0), [1])
    assert z == [0]  # v == threshold does not spike


def test_readout_is_leaky_integrator_of_spikes():
    m = one_neuron("lif", 2.0, tau_out_ms=HALF)
    with torch.no_grad():
        m.w_out.fill_(1.0)
        m.b_out.fill_(0.0)
    tr = m.trace(torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1).double())
    assert tr.readout[0, :, 0].tolist() == pytest.approx([1.0, 0.5, 0.25])
    assert tr.logits[0, 0].item() == pytest.approx(1.75 / 3)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("train_tau", [False, True])
def test_gradients_reach_every_parameter(variant: str, train_tau: bool):
    torch.manual_seed(0)
    cfg = ModelConfig(n_in=5, n_hidden=16, n_out=3, variant=variant, train_tau=train_tau, bias=True,
                      init_in_gain=3.0)
    m = RSNN(cfg)
    x = (torch.rand(4, 30, 5) < 0.3).float()
    out = m(x, engine="eager")
    assert out.spikes.sum() > 0
    (out.logits.sum() + out.spikes.mean()).backward()
    for name, p in m.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_forward_matches_trace():
    torch.manual_seed(1)
    m = RSNN(ModelConfig(n_in=4, n_hidden=10, n_out=3, variant="rec-syn-adapt", refractory_steps=1))
    x = (torch.rand(3, 25, 4) < 0.4).float()
    out = m(x, engine="eager")
    tr = m.trace(x)
    assert torch.equal(out.spikes.transpose(0, 1), tr.spikes)
    assert torch.allclose(out.logits, tr.logits)


def test_time_constants_are_clamped_to_bounds():
    m = RSNN(ModelConfig(n_in=2, n_hidden=3, n_out=2, variant="rec-syn", train_tau=True, tau_min_ms=2,
                         tau_max_ms=50, per_neuron_tau=True))
    with torch.no_grad():
        m.tau_mem.fill_(1000.0)
        m.tau_syn.fill_(0.1)
    m.clamp_time_constants()
    assert m.tau_mem.max().item() == 50.0
    assert m.tau_syn.min().item() == 2.0
    assert m.tau_mem.shape == (3,)
