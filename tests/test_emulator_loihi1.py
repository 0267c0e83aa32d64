"""The loihi1 emulator against the real nengo-loihi 1.1.0 emulator, bit for bit.

Random recurrent networks are built in nengo, discretized by nengo-loihi
(``Simulator(net, target='sim')``), read back with ``qnet_from_nengo_loihi`` and run by
our batched emulator on the same input spikes; spikes and voltages must be identical
at every step. Overflow of q and u is included (``strict=False`` wraps, like the chip).
"""

from __future__ import annotations

import warnings

import nengo
import nengo_loihi
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nengo_loihi.builder.discretize import decay_int as nl_decay_int
from nengo_loihi.builder.discretize import overflow_signed

from rsnn_deploy.backends.nengo.readback import add_spike_input, qnet_from_nengo_loihi
from rsnn_deploy.emulator import (
    EmulatorOverflowError,
    Loihi1State,
    decay_int,
    initial_state,
    loihi1_step,
    params_for,
    run,
    wrap,
)
from rsnn_deploy.errors import ValidationError
from rsnn_deploy.hardware import load_profile

pytestmark = pytest.mark.filterwarnings(
    # expected chatter of building these networks; none of it changes the integers compared
    "ignore:invalid value encountered in cast:RuntimeWarning",  # NaN placeholders at emulator start-up
    "ignore:This version of `nengo_loihi`:UserWarning",
    "ignore:emulator. states wrapped:RuntimeWarning",  # our overflow report (the overflow cases)
    "ignore:Overflow in:UserWarning",  # nengo-loihi's overflow report (strict=False)
    "ignore:NengoLoihi does not support initial values:UserWarning",  # chip starts at v = 0, as we do
    "ignore:Lost .* extra bits in weight rounding:UserWarning",  # read back as is
    "ignore:Non-finite values detected in `max_rates`:UserWarning",  # gain 1, bias 0: no rate curve
    "ignore::RuntimeWarning:nengo.neurons",  # same, log1p of the undefined rate curve
    "ignore:Model is precomputable:UserWarning",  # precompute=False on purpose
)

DT = 0.001
LATENCY = load_profile("loihi1").timing.input_latency_steps


def build(seed, x, *, c=20, h=30, tau_s=0.005, tau_rc=0.02, tau_ref=0.0, min_voltage=0.0, rec=True,
          w_in=0.1, w_rec=0.05, bias=0.0, relu=False, positive=False, block=None):
    """A random network in nengo with input ``x`` [T, C]; returns (net, hidden, input, probes)."""
    rng = np.random.RandomState(seed)
    with nengo.Network(seed=seed) as net:
        nengo_loihi.add_params(net)
        inp = add_spike_input(net, x, DT)
        neuron = nengo.SpikingRectifiedLinear() if relu else nengo.LIF(
            tau_rc=tau_rc, tau_ref=tau_ref, min_voltage=min_voltage)
        b = rng.uniform(-bias, bias, h) if bias else np.zeros(h)
        hid = nengo.Ensemble(h, 1, neuron_type=neuron, gain=np.ones(h), bias=b)
        if block is not None:
            net.config[hid].block_shape = nengo_loihi.BlockShape((block,), (h,))
        if positive:  # same-sign inputs: half the neurons get all-positive, half all-negative weights
            win = rng.uniform(0.8, 1.0, (h, c))
            win[h // 2:] *= -1
        else:
            win = rng.randn(h, c) * w_in
        nengo.Connection(inp.neurons, hid.neurons, transform=win, synapse=tau_s)
        if rec:
            nengo.Connection(hid.neurons, hid.neurons, transform=rng.randn(h, h) * w_rec, synapse=tau_s)
        pv = nengo.Probe(hid.neurons, "voltage")
        ps = nengo.Probe(hid.neurons, "output")
    return net, hid, inp, (ps, pv)


def nengo_run(seed, x, **cfg):
    """Run nengo-loihi for T + latency steps; return its aligned spikes, voltages and our qnet."""
    net, hid, inp, (ps, pv) = build(seed, x, c=x.shape[1], **cfg)
    with nengo_loihi.Simulator(net, target="sim", dt=DT, progress_bar=False) as sim:
        sim.run_steps(x.shape[0] + LATENCY)
        qnet = qnet_from_nengo_loihi(sim, hid, inp)
    return sim.data[ps][LATENCY:] > 0, sim.data[pv][LATENCY:].astype(np.int64), qnet


def spikes(seed, t, c, p):
    return (np.random.RandomState(1000 + seed).rand(t, c) < p).astype(np.uint8)


CASES = {
    "default": dict(),
    "low-rate": dict(w_in=0.03, w_rec=0.01),
    "bias-driven": dict(bias=2.0),
    "refractory": dict(tau_ref=0.003, bias=1.0),
    "negative-floor": dict(min_voltage=-1.0, bias=1.0),
    "no-floor": dict(min_voltage=-1e12, bias=1.0),  # vmin = -2**31 + 1: the int32 wrap of v is live
    "du0-dv0": dict(relu=True, tau_s=5.0),
    "du0-dv4095": dict(tau_rc=1e-5, tau_s=5.0),
    "no-synapse-du4094": dict(tau_s=None),
    "feedforward": dict(rec=False, bias=0.5),
    "split-blocks": dict(block=16, bias=0.5),
    "overflow-q": dict(c=200, p=0.8, positive=True, rec=False),
    "overflow-u": dict(c=60, p=0.5, positive=True, tau_s=2.0),
}


@pytest.mark.nengo_loihi
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("case", list(CASES))
def test_bit_exact_against_nengo_loihi(case, seed):
    cfg = dict(CASES[case])
    c, p = cfg.pop("c", 20), cfg.pop("p", 0.2)
    x = spikes(seed, 50, c, p)
    ref_spikes, ref_v, qnet = nengo_run(seed, x, **cfg)
    tr = run(qnet, x[None], record_states=True)
    assert tr.spikes.shape == (1, 50, qnet.n_hidden)
    bad = np.argwhere(tr.voltage[0] != ref_v)
    assert bad.size == 0, f"first voltage mismatch at (step, neuron) {tuple(bad[0])}"
    assert np.array_equal(tr.spikes[0], ref_spikes)
    fast = run(qnet, x[None])  # no states recorded: the C loop where it applies (_native_loihi1_ok)
    assert np.array_equal(fast.spikes[0], ref_spikes)
    np.testing.assert_array_equal(fast.logits, tr.logits)
    assert fast.overflow == tr.overflow
    rate = ref_spikes.mean()
    assert 0 < rate < 1 or case == "du0-dv0", f"degenerate case: rate {rate}"
    if case.startswith("overflow"):
        assert tr.overflow[case.split("-")[1]] > 0, tr.overflow
    if case == "split-blocks":
        assert len(qnet.block_sizes) == 2
    if case == "du0-dv0":
        assert qnet.decay_u.max() == 0 and qnet.decay_v.max() == 0
    if case == "du0-dv4095":
        assert qnet.decay_u.max() == 0 and qnet.decay_v.min() == 4095


@pytest.mark.nengo_loihi
def test_batch_matches_per_sample_nengo_runs():
    """One batched run (chunked) equals separate nengo-loihi runs of the same network."""
    xs = np.stack([spikes(s, 40, 20, 0.1 + 0.1 * s) for s in range(4)])
    refs = [nengo_run(7, x, bias=1.0) for x in xs]
    qnet = refs[0][2]
    tr = run(qnet, xs, record_states=True, batch_chunk=3)
    for b, (ref_s, ref_v, _) in enumerate(refs):
        assert np.array_equal(tr.voltage[b], ref_v), f"sample {b}"
        assert np.array_equal(tr.spikes[b], ref_s), f"sample {b}"


@pytest.mark.nengo_loihi
@pytest.mark.parametrize("precompute", [True, False])
def test_measured_input_latency_is_one_step(precompute):
    """A lone input spike at host step k first moves v at chip step k + 1 (the profile's latency),
    whether nengo-loihi precomputes the host or steps host and chip in lockstep."""
    x = np.zeros((12, 3), dtype=np.uint8)
    x[4, 1] = 1
    net, _, _, (_, pv) = build(0, x, c=3, h=4, rec=False, w_in=0.01)
    with nengo_loihi.Simulator(net, target="sim", dt=DT, progress_bar=False, precompute=precompute) as sim:
        assert sim.precompute is precompute
        sim.run_steps(12)
    first = np.flatnonzero(np.any(sim.data[pv] != 0, axis=1))[0]
    assert first == 4 + LATENCY == 5


@pytest.mark.nengo_loihi
def test_strict_raises_and_lenient_counts():
    x = spikes(0, 30, 200, 0.8)
    *_, qnet = nengo_run(0, x, positive=True, rec=False)
    with pytest.raises(EmulatorOverflowError, match=r"run\.strict: q overflowed at chip step \d+"):
        run(qnet, x[None], strict=True)
    with pytest.warns(RuntimeWarning, match=r"states wrapped on loihi1 \(q: \d+"):
        tr = run(qnet, x[None])
    assert tr.overflow["q"] > 0


# ----------------------------------------------------------------------------- properties


@settings(max_examples=300, deadline=None)
@given(
    x=st.lists(st.integers(-(2**23), 2**23 - 1), min_size=1, max_size=20),
    decay=st.integers(0, 4095),
    offset=st.sampled_from([0, 1]),
)
def test_decay_int_matches_nengo_loihi(x, decay, offset):
    # The emulator passes per-compartment decay *arrays*, which make nengo-loihi's product int64.
    # (With a scalar decay, numpy 1.26 keeps int32 and |x| * 4096 overflows for |x| >= 2**19;
    # nengo-loihi never calls it that way.)
    arr = np.array(x, dtype=np.int32)
    d = np.full(arr.shape, decay, dtype=np.int32)
    assert np.array_equal(decay_int(arr, d, offset=offset), nl_decay_int(arr, d, offset=offset))
    assert np.array_equal(decay_int(arr, decay, offset=offset), nl_decay_int(arr, d, offset=offset))


@settings(max_examples=300, deadline=None)
@given(x=st.lists(st.integers(-(2**31), 2**31 - 1), min_size=1, max_size=20), bits=st.sampled_from([7, 21, 23]))
def test_wrap_matches_nengo_loihi_overflow_signed(x, bits):
    arr = np.array(x, dtype=np.int32)
    expected, overflowed = overflow_signed(arr.copy(), bits=bits)
    got = wrap(arr.astype(np.int64), bits)
    assert np.array_equal(got, expected)
    assert np.array_equal(got != arr, overflowed)


# ----------------------------------------------------------------------------- step and run contract


def _tiny_qnet():
    """A valid 3-input, 5-neuron loihi1 network with integers chosen by hand."""
    from rsnn_deploy.qnet import QuantizedNetwork

    prof = load_profile("loihi1")
    rng = np.random.default_rng(0)
    return QuantizedNetwork(
        w_in=rng.integers(-127, 128, (5, 3)) * 128, w_rec=rng.integers(-127, 128, (5, 5)) * 64,
        bias=np.full(5, 100), decay_u=np.full(5, 741), decay_v=np.full(5, 200), vth=np.full(5, 64 * 50),
        refractory=np.full(5, 2), vmin=0, vmax=2**23 - 1, w_out=rng.standard_normal((3, 5)),
        b_out=np.zeros(3), readout_decay=0.8, readout_mode="mean", profile="loihi1",
        profile_sha256=prof.sha256, input_latency=1,
    )


def test_step_is_pure():
    qnet = _tiny_qnet()
    prof = load_profile("loihi1")
    s0 = initial_state(prof, 2, 5)
    assert isinstance(s0, Loihi1State)
    copies = [a.copy() for a in s0]
    q = np.full((2, 5), 10**6, dtype=np.int64)
    _, s1 = loihi1_step(s0, q, params_for(qnet, prof))  # type: ignore[arg-type]
    for before, after in zip(copies, s0, strict=True):
        assert np.array_equal(before, after)
    assert s1.u is not s0.u


def test_run_rejects_bad_input():
    qnet = _tiny_qnet()
    with pytest.raises(ValidationError, match=r"run\.spikes_in: must be \[B, T, 3\] \(got shape \(4, 3\)\)"):
        run(qnet, np.zeros((4, 3)))
    with pytest.raises(ValidationError, match=r"run\.spikes_in: must hold only 0 and 1"):
        run(qnet, np.full((1, 4, 3), 2))
    with pytest.raises(ValidationError, match=r"run\.profile: network was quantized for 'loihi1' \(got 'loihi2'\)"):
        run(qnet, np.zeros((1, 4, 3)), profile="loihi2")


def test_readout_and_alignment_contract():
    """Trace has T steps; predictions come from the host readout of the aligned spikes."""
    qnet = _tiny_qnet()
    x = (np.random.default_rng(0).random((3, 9, 3)) < 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        tr = run(qnet, x)
    assert tr.spikes.shape == (3, 9, 5) and tr.readout.shape == (3, 9, 3) and tr.logits.shape == (3, 3)
    assert tr.current is None and tr.voltage is None and tr.adaptation is None
    assert tr.predictions.shape == (3,)
    y = np.zeros((3, 3))
    for t in range(9):
        y = qnet.readout_decay * y + tr.spikes[:, t].astype(float) @ qnet.w_out.T.astype(float) + qnet.b_out
        assert np.allclose(tr.readout[:, t], y, rtol=1e-6, atol=1e-5)


@settings(max_examples=200, deadline=None)
@given(
    x=st.lists(st.integers(-(2**23), 2**23 - 1), min_size=1, max_size=20),
    decay=st.integers(0, 4095),
    offset=st.sampled_from([0, 1]),
)
def test_float64_decay_path_matches_nengo_loihi(x, decay, offset):
    """run() keeps states as float64 integers and decays by trunc(x * r / 4096): same integers."""
    from rsnn_deploy.emulator import _decay_into

    arr = np.array(x, dtype=np.int32)
    d = np.full(arr.shape, decay, dtype=np.int64)
    out = np.empty(arr.shape, dtype=np.float64)
    _decay_into(arr.astype(np.float64), d, offset, out)
    assert np.array_equal(out.astype(np.int64), nl_decay_int(arr, d.astype(np.int32), offset=offset))


def test_pure_int64_steps_equal_batched_run():
    """The pure int64 step, looped by hand, gives run()'s float64-state results: refractory,
    negative floor, bias, q and u wrap-around all exercised."""
    from rsnn_deploy.qnet import QuantizedNetwork

    prof = load_profile("loihi1")
    rng = np.random.default_rng(5)
    h, c, t_steps = 16, 250, 60
    qnet = QuantizedNetwork(
        w_in=np.abs(rng.integers(100, 128, (h, c))) * 128 * np.where(np.arange(h)[:, None] % 2, 1, -1),
        w_rec=rng.integers(-127, 128, (h, h)) * 64, bias=rng.integers(-4095, 4096, h) * 8,
        decay_u=np.full(h, 3), decay_v=np.full(h, 100), vth=rng.integers(1000, 100000, h) * 64,
        refractory=rng.integers(1, 5, h), vmin=1 - 2**20, vmax=2**21 - 1,
        w_out=np.zeros((1, h)), b_out=np.zeros(1), readout_decay=0.0, readout_mode="mean",
        profile="loihi1", profile_sha256=prof.sha256, input_latency=1,
    )
    x = (rng.random((3, t_steps, c)) < 0.75).astype(np.uint8)
    tr = run(qnet, x, record_states=True)
    assert tr.overflow["q"] > 0 and tr.overflow["u"] > 0 and tr.spikes.any()
    params = params_for(qnet, prof)
    state = initial_state(prof, 3, h)
    for n in range(t_steps + 1):
        q = np.zeros((3, h), dtype=np.int64)
        if n >= 1:
            q += x[:, n - 1].astype(np.int64) @ qnet.w_in.T
            q += state.spikes.astype(np.int64) @ qnet.w_rec.T
        _, state = loihi1_step(state, q, params)  # type: ignore[arg-type]
        if n >= 1:
            assert np.array_equal(state.v, tr.voltage[:, n - 1]), f"step {n}"
            assert np.array_equal(state.u, tr.current[:, n - 1]), f"step {n}"
    assert np.array_equal(state.overflow, [tr.overflow[k] for k in ("q", "u", "u2")])


@pytest.mark.nengo_loihi
@pytest.mark.requires("cc")
@pytest.mark.parametrize(
    "case", ["default", "bias-driven", "negative-floor", "no-floor", "feedforward", "split-blocks"]
)
def test_native_loop_equals_numpy_loop(case, monkeypatch):
    """The C time loop (used where no state can wrap) gives the numpy loop's spikes on a batch."""
    from rsnn_deploy.emulator import _native_loihi1_ok, params_for

    cfg = dict(CASES[case])
    x = spikes(0, 60, 20, 0.2)
    _, _, qnet = nengo_run(0, x, **cfg)
    prof = load_profile("loihi1")
    assert _native_loihi1_ok(prof, params_for(qnet, prof))
    assert params_for(qnet, prof).wrap_v32 == (case == "no-floor")
    batch = (np.random.RandomState(7).rand(33, 60, 20) < 0.25).astype(np.uint8)
    fast = run(qnet, batch)
    fast_states = run(qnet, batch, record_states=True)  # the C loop records u and v too
    monkeypatch.setenv("RSNN_DEPLOY_NATIVE", "0")
    slow = run(qnet, batch, record_states=True)
    assert 0.0 < slow.spikes.mean() < 1.0
    np.testing.assert_array_equal(fast.spikes, slow.spikes)
    np.testing.assert_array_equal(fast.logits, slow.logits)
    for name in ("spikes", "current", "voltage", "logits"):
        np.testing.assert_array_equal(getattr(fast_states, name), getattr(slow, name), err_msg=name)
    assert fast_states.adaptation is None and fast_states.refractory is None and slow.adaptation is None


def test_native_loop_wraps_v_at_32_bits_without_a_floor(monkeypatch):
    """No voltage floor (vmin = -2**31 + 1) and a leak-free voltage driven down: v leaves int32 and
    wraps to a large positive value, which spikes (nengo-loihi keeps v in int32). The C loop runs
    this network too and gives the numpy loop's spikes."""
    from dataclasses import replace

    from rsnn_deploy import native
    from rsnn_deploy.emulator import _native_loihi1_ok, params_for

    if native.library() is None:
        pytest.skip("no C compiler: the native loop cannot be built")
    prof = load_profile("loihi1")
    # weights 0 so that no state but v can wrap; bias -2**22 per step reaches -2**31 in ~512 steps
    qnet = replace(
        _tiny_qnet(), w_in=np.zeros((5, 3), dtype=np.int64), w_rec=np.zeros((5, 5), dtype=np.int64),
        bias=-(np.arange(1, 6) << 20), decay_v=np.zeros(5, dtype=np.int64), refractory=np.ones(5, dtype=np.int64),
        vmin=-(2**31) + 1,
    )  # fmt: skip
    params = params_for(qnet, prof)
    assert params.wrap_v32 and _native_loihi1_ok(prof, params)
    x = np.zeros((2, 3000, 3), dtype=np.uint8)
    fast = run(qnet, x)
    monkeypatch.setenv("RSNN_DEPLOY_NATIVE", "0")
    slow = run(qnet, x)
    assert slow.spikes.any()  # the wrap happened (without it v would sit at the floor, silent)
    np.testing.assert_array_equal(fast.spikes, slow.spikes)
    np.testing.assert_array_equal(fast.logits, slow.logits)
