"""Xylo: our batched emulator against the vendor's xylosim, state for state; profiles and design rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import require

from rsnn_deploy.errors import UnsupportedError, ValidationError
from rsnn_deploy.profiles import is_xylo_profile
from rsnn_deploy.semantics import xylo as xylo_semantics
from rsnn_deploy.semantics.xylo_profile import XYLO_PROFILES, load_xylo_profile
from rsnn_deploy.xylo import emulator
from rsnn_deploy.xylo._xylosim import run_xylosim
from rsnn_deploy.xylo.network import XyloNetwork, check_design_rules

REPO = Path(__file__).resolve().parent.parent
needs_xylosim = pytest.mark.requires("xylosim")  # skips with the install line (tests/conftest.py), fails in CI
FIELDS = ("spikes", "spikes_out", "i_syn", "v_mem", "i_syn_out", "v_mem_out")


def random_net(rng, c=8, h=24, k=3, s=2, w_max=127, shifts=(4, 4, 4), th=(100, 5000), bias=True, p_rec=0.3):
    def w(shape, p):
        return rng.integers(-w_max, w_max + 1, shape) * (rng.random(shape) < p)

    return XyloNetwork(
        w_in=w((c, h, s), 0.7),
        w_rec=w((h, h, s), p_rec),
        w_out=w((h, k), 0.8),
        shift_in=shifts[0],
        shift_rec=shifts[1],
        shift_out=shifts[2],
        dash_mem=rng.integers(0, 16, h),
        dash_syn=rng.integers(0, 16, (h, s)),
        dash_mem_out=rng.integers(0, 16, k),
        dash_syn_out=rng.integers(0, 16, k),
        threshold=rng.integers(*th, h),
        threshold_out=rng.integers(*th, k),
        bias=rng.integers(-300, 300, h) if bias else np.zeros(h, int),
        bias_out=rng.integers(-300, 300, k) if bias else np.zeros(k, int),
    )


def random_input(rng, b=3, t=50, c=8, p=0.3, k_max=4):
    x = rng.integers(0, k_max, (b, t, c)) * (rng.random((b, t, c)) < p)
    x[0, 3] = 20  # more than the 15 input spikes a step xylosim accepts
    return x.astype(np.uint8)


def assert_same(a, b):
    for f in FIELDS:
        A, B = getattr(a, f), getattr(b, f)
        assert A.shape == B.shape, f
        if not np.array_equal(A, B):
            idx = tuple(np.argwhere(A != B)[0])
            raise AssertionError(f"{f} differs first at [b, t, ...] = {idx}: emulator {A[idx]}, xylosim {B[idx]}")


CASES = {
    # name: network kwargs; seeds differ per case
    "saturating, multi-spike": dict(shifts=(6, 6, 6), th=(1, 60)),
    "saturating, large shifts": dict(shifts=(8, 8, 8), th=(1000, 30000)),
    "moderate": dict(shifts=(2, 1, 2), th=(200, 3000), p_rec=0.2),
    "no bias, one synapse": dict(s=1, bias=False, shifts=(5, 3, 4)),
    "feed-forward": dict(p_rec=0.0, shifts=(3, 0, 3)),
}


@needs_xylosim
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("seed", range(4))
def test_emulator_matches_xylosim_on_random_networks(case, seed):
    rng = np.random.default_rng([seed, sorted(CASES).index(case)])
    net = random_net(rng, **CASES[case])
    x = random_input(rng)
    ours, theirs = emulator.run(net, x), run_xylosim(net, x)
    assert_same(ours, theirs)
    assert ours.spikes.sum() > 0


@needs_xylosim
def test_saturation_order_matters_and_the_cases_exercise_it(monkeypatch):
    """Clipping only the summed input (ignoring xylosim's order of saturating adds) must fail here,
    so the agreement above is not an accident of networks that never saturate."""
    rng = np.random.default_rng([0, sorted(CASES).index("saturating, multi-spike")])
    net = random_net(rng, **CASES["saturating, multi-spike"])
    x = random_input(rng)
    ours = emulator.run(net, x)
    assert ours.saturated["synapse"] > 0 and ours.saturated["hidden"] > 0
    assert ours.spikes.max() > 1  # multi-spike steps occur

    def naive(state, counts, ws):
        return np.clip(state + counts @ ws[0], emulator.S16_MIN, emulator.S16_MAX), 0

    monkeypatch.setattr(xylo_semantics, "deliver", naive)
    wrong = emulator.run(net, x)
    theirs = run_xylosim(net, x)
    assert not all(np.array_equal(getattr(wrong, f), getattr(theirs, f)) for f in FIELDS)


def _one_neuron(threshold: int, w: int = 100, dash_syn: int = 1) -> XyloNetwork:
    z = np.zeros
    return XyloNetwork(
        w_in=np.full((1, 1, 1), w),
        w_rec=z((1, 1, 1), int),
        w_out=z((1, 1), int),
        shift_in=0,
        shift_rec=0,
        shift_out=0,
        dash_mem=np.array([4]),
        dash_syn=np.array([[dash_syn]]),
        dash_mem_out=np.array([1]),
        dash_syn_out=np.array([1]),
        threshold=np.array([threshold]),
        threshold_out=np.array([1000]),
        bias=z(1, int),
        bias_out=z(1, int),
    )


@pytest.mark.parametrize("backend", ["emulator", "xylosim"])
def test_exact_threshold_spikes_one_above_does_not(backend):
    """One input spike of weight 100 with dash_syn = 1: i = 100 - (100 >> 1) = 50 reaches v at once;
    v >= th spikes (and v -= th), so th = 50 spikes and th = 51 does not."""
    if backend == "xylosim":
        require("xylosim")
    runner = emulator.run if backend == "emulator" else run_xylosim
    x = np.zeros((1, 3, 1), np.uint8)
    x[0, 0, 0] = 1
    at = runner(_one_neuron(50), x)
    above = runner(_one_neuron(51), x)
    assert at.spikes[0, 0, 0] == 1 and at.v_mem[0, 0, 0] == 0
    assert above.spikes[0, 0, 0] == 0 and above.v_mem[0, 0, 0] == 50
    # next step: v = 50 - (50 >> 4) + i[1] with i[1] = 50 - (50 >> 1) = 25: 72 >= 51 spikes, leaves 21
    assert above.spikes[0, 1, 0] == 1 and above.v_mem[0, 1, 0] == 50 - 3 + 25 - 51
    twice = runner(_one_neuron(25), x)  # v = 50 = 2 * th: two spikes in one step
    assert twice.spikes[0, 0, 0] == 2


def test_bitshift_decay_has_a_minimum_of_one():
    v = np.array([-32768, -5, -1, 0, 1, 5, 15, 16, 32767])
    d = emulator.bitshift_decay(v, np.full_like(v, 4))
    assert d.tolist() == [-2048, -1, -1, 0, 1, 1, 1, 1, 2047]


# ----------------------------------------------------------------------------- profiles and design rules


@pytest.mark.parametrize("name", XYLO_PROFILES)
def test_xylo_profiles_load_and_are_packaged(name):
    prof = load_xylo_profile(name)
    assert prof.name == name and is_xylo_profile(name)
    repo = (REPO / "hardware" / f"{name}.toml").read_bytes()
    assert repo == (REPO / "rsnn_deploy" / "_profiles" / f"{name}.toml").read_bytes()
    assert not is_xylo_profile("loihi2")


def test_bad_xylo_profile_names_file_and_key(tmp_path):
    text = (REPO / "hardware" / "xylo-audio2.toml").read_text().replace("dash_bits = 4", "dash_bits = 0")
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    with pytest.raises(ValidationError, match=r"bad\.toml: bitshift\.dash_bits: .*greater than or equal to 1"):
        load_xylo_profile(bad)


def _sized(rng, c=4, h=8, k=2, s=2, **kw):
    return random_net(rng, c=c, h=h, k=k, s=s, **kw)


@pytest.mark.parametrize(
    ("profile", "kwargs", "match"),
    [
        ("xylo-audio2", dict(c=17), r"^xylo-audio2: 17 input channels exceed the maximum 16$"),
        ("xylo-audio2", dict(k=9), r"^xylo-audio2: 9 output neurons exceed the maximum 8$"),
        ("xylo-audio2", dict(h=1001, p_rec=0.0), r"^xylo-audio2: 1001 hidden neurons exceed the maximum 1000$"),
        ("xylo-imu", dict(h=497, p_rec=0.0), r"^xylo-imu: 497 hidden neurons exceed the maximum 496$"),
        ("xylo-imu", dict(s=2), r"^xylo-imu: 2 synaptic currents per hidden neuron exceed the maximum 1$"),
    ],
)
def test_design_rules_refuse_in_one_line(profile, kwargs, match):
    net = _sized(np.random.default_rng(0), **kwargs)
    with pytest.raises(UnsupportedError, match=match):
        check_design_rules(net, load_xylo_profile(profile))


def test_design_rules_recurrent_fanout_and_words():
    rng = np.random.default_rng(1)
    imu = load_xylo_profile("xylo-imu")
    net = random_net(rng, c=4, h=496, k=2, s=1, p_rec=0.0)
    w_rec = net.w_rec.copy()
    w_rec[7, :, 0] = 1  # neuron 7 projects to all 496 > 512? no: 496 <= 512, allowed
    ok = XyloNetwork(**{**net.__dict__, "w_rec": w_rec})
    check_design_rules(ok, imu)
    w_rec[:70, :, 0] = 1  # 70 * 496 = 34,720 recurrent weights > 31,744
    with pytest.raises(UnsupportedError, match=r"^xylo-imu: 34720 recurrent weights exceed the maximum 31744$"):
        check_design_rules(XyloNetwork(**{**net.__dict__, "w_rec": w_rec}), imu)
    small = _sized(rng)
    audio = load_xylo_profile("xylo-audio2")
    check_design_rules(small, audio)
    bad_th = XyloNetwork(**{**small.__dict__, "threshold": np.zeros(8, int)})
    with pytest.raises(ValidationError, match=r"^XyloNetwork\.threshold: values must lie in \[1, 32767\] \(got 0\)$"):
        check_design_rules(bad_th, audio)
    bad_w = XyloNetwork(**{**small.__dict__, "w_in": np.full((4, 8, 2), 128)})
    with pytest.raises(ValidationError, match=r"^XyloNetwork\.w_in: values must lie in \[-128, 127\]"):
        check_design_rules(bad_w, audio)
    bad_dash = XyloNetwork(**{**small.__dict__, "dash_mem": np.full(8, 16)})
    with pytest.raises(ValidationError, match=r"^XyloNetwork\.dash_mem: values must lie in \[0, 15\] \(got 16\)$"):
        check_design_rules(bad_dash, audio)


def test_xylo_is_a_registry_entry_and_its_profiles_load_through_the_same_lookup(tmp_path):
    """Consumers ask the semantics registry: the Xylo entry names its network type and its profile loader,
    and Loihi profiles still load through the same lookup."""
    from rsnn_deploy import profiles, semantics
    from rsnn_deploy.hardware import load_profile

    sem = semantics.get("xylo-bitshift")
    assert sem is xylo_semantics.SEMANTICS and sem.network == "XyloNetwork" and sem.chip_backend == "xylosim"
    for name in XYLO_PROFILES:
        prof = profiles.load_any_profile(name)
        assert prof.name == name and semantics.for_profile(prof) is sem
        assert profiles.profile_semantics(REPO / "hardware" / f"{name}.toml") is sem
    loihi = profiles.load_any_profile("loihi2")
    assert loihi is load_profile("loihi2") and semantics.for_profile(loihi).network == "QuantizedNetwork"
    with pytest.raises(ValidationError, match="'xylo-bitshift' profiles have their own schema"):
        load_profile("xylo-audio2")
    with pytest.raises(ValidationError, match=r"xylo-imu\.toml: semantics: 'xylo-bitshift'"):
        load_profile(REPO / "hardware" / "xylo-imu.toml")
    bad = tmp_path / "chip.toml"
    bad.write_text('semantics = "no-such"\n')
    with pytest.raises(ValidationError, match=r"chip\.toml: semantics: unknown integer semantics"):
        profiles.profile_semantics(bad)
    with pytest.raises(ValueError, match="built in"):
        semantics.unregister("xylo-bitshift")


def test_registry_step_caps_spikes_from_the_profile():
    """The step reads its spike caps from the profile it is given: a profile with lower caps changes the run."""
    rng = np.random.default_rng(5)
    net = random_net(rng, **CASES["saturating, multi-spike"])
    prof = load_xylo_profile("xylo-audio2")
    sem = xylo_semantics.SEMANTICS
    x = random_input(rng)[:, 3]  # holds a count of 20 (over the 15 xylosim accepts)
    low = prof.model_copy(update={"spikes": prof.spikes.model_copy(update={"max_per_input_step": 2})})
    st = sem.initial_state(len(x), net.n_hidden, n_synapses=net.n_synapses, n_out=net.n_out)
    _, a = sem.step(st, x, sem.params(net, prof))
    _, b = sem.step(st, x, sem.params(net, low))
    _, c = sem.step(st, np.minimum(x, 2), sem.params(net, prof))
    assert not np.array_equal(a.i_syn, b.i_syn) and np.array_equal(b.i_syn, c.i_syn)
    assert np.array_equal(a.i_syn, emulator.run(net, x[:, None]).i_syn[:, 0])
