"""The loihi2 emulator against trajectories worked out by hand from Lava's equations.

Each expected value below is derived step by step from the fixed-point equations of
``PyLifModelBitAcc`` and ``PyATRLIFModelFixed`` (``rsnn_deploy.emulator.loihi2_step``
lists them); ``tests/test_lava.py`` checks the same emulator against Lava itself:

    u     = wrap_lava(sign(u) * ((|u| * (4096 - du - 1)) >> 12) + q, 23)
    v     = clip(sign(v) * ((|v| * (4096 - dv)) >> 12) + u + bias, -(2^23 - 1), 2^23 - 1)
    LIF:    z = v > vth;   v[z] = 0
    ATRLIF: theta = decay(theta, dtheta) (theta - theta_0);  r = decay(r, dr)
            z = v - r >= vth + theta;   r[z] += 2 (vth + theta);   theta[z] += theta_step   (no reset of v)

Input latency is one step (Lava's Dense buffers a step): chip step 0 carries no input
and is dropped, so trace step t integrates x[t].
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rsnn_deploy.emulator import EmulatorOverflowError, decay_int, run, wrap_lava
from rsnn_deploy.hardware import load_profile
from rsnn_deploy.qnet import QuantizedNetwork, check_representable, validate_for

PROF = load_profile("loihi2")
VMAX = 2**23 - 1


def qnet(w_in, *, bias=0, du=0, dv=0, vth=64, dtheta=0, theta_step=0, w_rec=None, dr=None):
    """One-input network on loihi2 (ATRLIF when ``dr`` is given, else LIF); scalars broadcast over ``w_in`` [H, 1]."""
    w_in = np.asarray(w_in).reshape(-1, 1)
    h = w_in.shape[0]

    def full(x):
        return np.broadcast_to(np.asarray(x, dtype=np.int64), (h,)).copy()

    q = QuantizedNetwork(
        w_in=w_in, w_rec=w_rec, bias=full(bias), decay_u=full(du), decay_v=full(dv), vth=full(vth),
        refractory=full(1), vmin=-VMAX, vmax=VMAX, w_out=np.ones((1, h)), b_out=np.zeros(1),
        readout_decay=0.0, readout_mode="last", profile="loihi2", profile_sha256=PROF.sha256,
        input_latency=1, decay_theta=None if dr is None else full(dtheta),
        theta_step=None if dr is None else full(theta_step), decay_r=None if dr is None else full(dr),
    )
    check_representable(q, PROF)
    validate_for(q, PROF)
    return q


def test_lif_trajectory_and_strict_comparison():
    # du = 1023: u keeps (4096 - 1023 - 1) / 4096 = 3/4; dv = 2048: v keeps 1/2. w = 6400 = 50 * 2^7.
    # neuron 0: vth = 12800 (200 << 6); neuron 1: vth = 6400 (100 << 6), reached exactly at t = 0.
    net = qnet([6400, 6400], du=1023, dv=2048, vth=[12800, 6400])
    x = np.array([1, 1, 1, 0, 0, 0, 0], dtype=np.uint8).reshape(1, 7, 1)
    tr = run(net, x, record_states=True)
    # neuron 0, by hand:
    # t0: u = 0 + 6400 = 6400;                 v = 0 + 6400 = 6400            < 12800
    # t1: u = 6400*3/4 + 6400 = 11200;         v = 3200 + 11200 = 14400     >= 12800: spike, v = 0
    # t2: u = 8400 + 6400 = 14800;             v = 0 + 14800                >= 12800: spike, v = 0
    # t3: u = 11100;                           v = 11100                      < 12800
    # t4: u = 8325;                            v = 5550 + 8325 = 13875      >= 12800: spike, v = 0
    # t5: u = floor(8325*3/4) = 6243;          v = 6243
    # t6: u = floor(6243*3/4) = 4682;          v = floor(6243/2) + 4682 = 7803
    assert tr.current[0, :, 0].tolist() == [6400, 11200, 14800, 11100, 8325, 6243, 4682]
    assert tr.voltage[0, :, 0].tolist() == [6400, 0, 0, 11100, 0, 6243, 7803]
    assert tr.spikes[0, :, 0].astype(int).tolist() == [0, 1, 1, 0, 1, 0, 0]
    # neuron 1: v = 6400 == vth = 6400 at t0 does not spike (Lava's LIF compares v > vth);
    # t1: v = 3200 + 11200 = 14400 > 6400 does
    assert tr.voltage[0, 0, 1] == 6400 and tr.spikes[0, :2, 1].tolist() == [False, True]
    assert tr.overflow == {"q": 0, "u": 0, "theta": 0}
    assert tr.adaptation is not None and not tr.adaptation.any() and tr.refractory is None


def test_atrlif_trajectory_no_reset_refractory_state():
    # ATRLIF: bias 2000 drives v; dv = 0 keeps v (4096/4096); vth = theta_0 = 3200 (50 << 6);
    # dtheta = 2048 halves theta - theta_0, dr = 2048 halves r; theta_step = 640 (10 << 6).
    net = qnet([0], bias=2000, dv=0, vth=3200, dtheta=2048, theta_step=640, dr=2048)
    tr = run(net, np.zeros((1, 6, 1), dtype=np.uint8), record_states=True)
    # chip step 0 (dropped): v = 2000 < 3200
    # t0: v = 4000, r = 0:                 4000 >= 3200 spike; r = 2 * 3200 = 6400, theta = 640
    # t1: v = 6000, theta 320, r = 3200:   2800 <  3520
    # t2: v = 8000, theta 160, r = 1600:   6400 >= 3360 spike; r = 1600 + 6720 = 8320, theta = 800
    # t3: v = 10000, theta 400, r = 4160:  5840 >= 3600 spike; r = 4160 + 7200 = 11360, theta = 1040
    # t4: v = 12000, theta 520, r = 5680:  6320 >= 3720 spike; r = 13120, theta = 1160
    # t5: v = 14000, theta 580, r = 6560:  7440 >= 3780 spike; r = 14120, theta = 1220
    assert tr.spikes[0, :, 0].astype(int).tolist() == [1, 0, 1, 1, 1, 1]
    assert tr.voltage[0, :, 0].tolist() == [4000, 6000, 8000, 10000, 12000, 14000]  # never reset
    assert tr.adaptation[0, :, 0].tolist() == [640, 320, 800, 1040, 1160, 1220]
    assert tr.refractory[0, :, 0].tolist() == [6400, 3200, 8320, 11360, 13120, 14120]


def test_current_wraps_like_lava_and_voltage_clips():
    # w = 127 * 2^14 = 2080768 (mantissa 127, exponent 7); du = 0 keeps 4095/4096 of u; dv = 0 keeps v;
    # vth = (2^17 - 1) << 6 = 8388544, the largest threshold.
    net = qnet([127 << 14], du=0, dv=0, vth=((1 << 17) - 1) << 6)
    x = np.array([1, 1, 1, 1, 1, 1, 0], dtype=np.uint8).reshape(1, 7, 1)
    with pytest.warns(RuntimeWarning, match=r"states wrapped on loihi2 \(u: 1 neuron-steps\)"):
        tr = run(net, x, record_states=True)
    # t0: u = 2080768                                       v = 2080768
    # t1: u = 2080768 - 508 + 2080768 = 4161028             v = 6241796
    # t2: u = 4161028 - ceil(1015.9) + 2080768 = 6240780    v = 12482576 -> clip 8388607 >= vth: spike, 0
    # t3: u = 6240780 - 1524 + 2080768 = 8320024            v = 8320024 < 8388544
    # t4: u = 8320024 - 2032 + 2080768 = 10398760 > 2^23  -> wraps to 10398760 - 2^24 = -6378456
    #     v = 8320024 - 6378456 = 1941568
    # t5: u = -(6378456 - 1558) + 2080768 = -4296130        v = -2354562
    # t6: u = -(4296130 - 1049) = -4295081                  v = -6649643
    assert tr.current[0, :, 0].tolist() == [2080768, 4161028, 6240780, 8320024, -6378456, -4296130, -4295081]
    assert tr.voltage[0, :, 0].tolist() == [2080768, 6241796, 0, 8320024, 1941568, -2354562, -6649643]
    assert tr.spikes[0, :, 0].astype(int).tolist() == [0, 0, 1, 0, 0, 0, 0]
    assert tr.overflow["u"] == 1
    with pytest.raises(EmulatorOverflowError, match=r"run\.strict: u overflowed at chip step 5 \(trace step 4\)"):
        run(net, x, strict=True)


def test_recurrence_arrives_next_step():
    # neuron 0 fires from its input at t0; its spike reaches neuron 1 (w_rec = 128) at t1, not t0.
    w_rec = np.array([[0, 0], [128, 0]])
    net = qnet([6400, 0], vth=[64, 64], dv=4095, du=4094, w_rec=w_rec)
    tr = run(net, np.array([1, 0, 0], dtype=np.uint8).reshape(1, 3, 1), record_states=True)
    assert tr.spikes[0, :, 0].astype(int).tolist() == [1, 0, 0]
    assert tr.current[0, :, 1].tolist() == [0, 128, 0]  # du = 4094 keeps 1/4096: 128 -> 0
    assert tr.spikes[0, :, 1].astype(int).tolist() == [0, 1, 0]  # v = 128 >= 64


def test_wrap_lava_edges():
    m = 1 << 23
    got = wrap_lava(np.array([m - 1, m, m + 1, -m + 1, -m, -m - 1, 2 * m - 1]), 23)
    # Lava keeps +2^23, maps -2^23 to +2^23 (range (-2^23, 2^23]), wraps once
    assert got.tolist() == [m - 1, m, -m + 1, -m + 1, m, m - 1, -1]


def test_decay_int_rounds_toward_zero():
    assert decay_int(np.array([7, -7, 4096, -4096]), 2048).tolist() == [3, -3, 2048, -2048]
    assert decay_int(np.array([4096]), 0, offset=1).tolist() == [4095]
    assert decay_int(np.array([4095, -4095]), 4095, offset=1).tolist() == [0, 0]


def test_q_beyond_16_bit_a_in_is_counted_not_wrapped():
    # two inputs of 2080768 each: q = 4161536 >= 2^21, i.e. Lava's a_in >= 2^15; Lava does not wrap it
    net = dataclasses.replace(qnet([127 << 14]), w_in=np.full((1, 2), 127 << 14))
    with pytest.warns(RuntimeWarning, match=r"q: 1"):
        tr = run(net, np.array([[[1, 1]]], dtype=np.uint8), record_states=True)
    assert tr.current[0, 0, 0] == 4161536


def test_batch_equals_single_samples():
    rng = np.random.default_rng(0)
    h, c = 6, 4
    net = QuantizedNetwork(
        w_in=rng.integers(-128, 128, (h, c)) * 128, w_rec=rng.integers(-128, 128, (h, h)) * 64,
        bias=rng.integers(-4096, 4096, h), decay_u=np.full(h, 500), decay_v=np.full(h, 300),
        vth=np.full(h, 64 * 80), refractory=np.ones(h, dtype=np.int64), vmin=-VMAX, vmax=VMAX,
        w_out=rng.standard_normal((2, h)), b_out=np.zeros(2), readout_decay=0.5, readout_mode="mean",
        profile="loihi2", profile_sha256=PROF.sha256, input_latency=1, decay_theta=np.full(h, 100),
        theta_step=np.full(h, 64 * 20), decay_r=np.full(h, 700),
    )
    x = (rng.random((5, 30, c)) < 0.3).astype(np.uint8)
    full = run(net, x, record_states=True, batch_chunk=2)
    assert full.spikes.any() and full.adaptation.any()
    for b in range(5):
        one = run(net, x[b : b + 1], record_states=True)
        assert np.array_equal(one.voltage[0], full.voltage[b])
        assert np.array_equal(one.adaptation[0], full.adaptation[b])
        assert np.array_equal(one.refractory[0], full.refractory[b])
        assert np.array_equal(one.spikes[0], full.spikes[b])
        assert np.allclose(one.logits[0], full.logits[b])


def test_pure_int64_steps_equal_batched_run():
    """The pure int64 loihi2 step, looped by hand, gives run()'s float64-state results."""
    from rsnn_deploy.emulator import initial_state, loihi2_step, params_for

    rng = np.random.default_rng(1)
    h, c, t_steps = 10, 40, 50
    net = QuantizedNetwork(
        w_in=rng.integers(-128, 128, (h, c)) * 2**12, w_rec=rng.integers(-128, 128, (h, h)) * 128,
        bias=rng.integers(-4096, 4096, h) * 4, decay_u=np.full(h, 7), decay_v=np.full(h, 90),
        vth=np.full(h, 64 * 3000), refractory=np.ones(h, dtype=np.int64), vmin=-VMAX, vmax=VMAX,
        w_out=np.zeros((1, h)), b_out=np.zeros(1), readout_decay=0.0, readout_mode="mean",
        profile="loihi2", profile_sha256=PROF.sha256, input_latency=1, decay_theta=np.full(h, 200),
        theta_step=np.full(h, 64 * 500), decay_r=np.full(h, 300),
    )
    x = (rng.random((2, t_steps, c)) < 0.5).astype(np.uint8)
    with pytest.warns(RuntimeWarning, match="states wrapped"):
        tr = run(net, x, record_states=True)
    assert tr.overflow["u"] > 0 and tr.spikes.any() and tr.adaptation.any()
    params = params_for(net, PROF)
    state = initial_state(PROF, 2, h)
    for n in range(t_steps + 1):
        q = np.zeros((2, h), dtype=np.int64)
        if n >= 1:
            q += x[:, n - 1].astype(np.int64) @ net.w_in.T + state.spikes.astype(np.int64) @ net.w_rec.T
        _, state = loihi2_step(state, q, params)  # type: ignore[arg-type]
        if n >= 1:
            for got, ref in ((state.u, tr.current), (state.v, tr.voltage), (state.theta, tr.adaptation),
                             (state.r, tr.refractory)):
                assert np.array_equal(got, ref[:, n - 1]), f"step {n}"


# ----------------------------------------------------------------------------- the C loop (emulator_kernels.c)
# rsnn_loihi2_run must give the numpy step's bits: spikes, every recorded state and the wrap counts,
# on random networks chosen to reach the edges: u wrapping (large weights, slow leak), q beyond
# Lava's 16-bit a_in, theta and r leaving 24 bits, v clipping at both ends, and voltages landing
# exactly on the threshold (small integer weights and thresholds on a coarse grid).


def _random_net(seed: int, atrlif: bool, regime: str) -> QuantizedNetwork:
    rng = np.random.default_rng(seed)
    h, c = int(rng.integers(1, 40)), int(rng.integers(1, 30))
    if regime == "exact":  # coarse grid: v == vth (LIF) and v - r == theta (ATRLIF) happen often
        w_in, w_rec = rng.integers(-2, 4, (h, c)) * 64, rng.integers(-2, 3, (h, h)) * 64
        bias, vth = rng.integers(-1, 2, h) * 64, rng.integers(1, 5, h) * 64
        du, dv = rng.choice([0, 2048, 4095]), rng.choice([0, 4095, 2048])
    elif regime == "overflow":  # mantissa 127 at large exponents: u wraps, q >= 2^21, v clips
        w_in, w_rec = rng.integers(-127, 128, (h, c)) << 14, rng.integers(-127, 128, (h, h)) << 13
        bias, vth = rng.integers(-4096, 4096, h) << 7, rng.integers(1, 1 << 17, h) << 6
        du, dv = rng.integers(0, 20), rng.integers(0, 20)
    else:  # typical trained networks
        w_in, w_rec = rng.integers(-128, 128, (h, c)) << 7, rng.integers(-128, 128, (h, h)) << 6
        bias, vth = rng.integers(-4096, 4096, h), rng.integers(20, 3000, h) << 6
        du, dv = rng.integers(0, 4096), rng.integers(0, 4096)
    kw = {}
    if atrlif:
        vth = np.minimum(vth, 4095 << 6)  # ATRLIF's theta_0 has a 12-bit mantissa
    if atrlif:  # one decay per block (the profile's rule); overflow: theta and r never leak
        big = regime == "overflow"
        kw = dict(decay_theta=np.full(h, 0 if big else rng.integers(0, 4096)),
                  theta_step=rng.integers(0, 1 << (12 if big else 10), h) << 6,
                  decay_r=np.full(h, 0 if big else rng.integers(0, 4096)))  # fmt: skip
    net = QuantizedNetwork(
        w_in=w_in, w_rec=w_rec if rng.random() < 0.8 else None, bias=bias, decay_u=np.full(h, du),
        decay_v=np.full(h, dv), vth=vth,
        refractory=np.ones(h, np.int64), vmin=-VMAX, vmax=VMAX, w_out=rng.standard_normal((3, h)),
        b_out=rng.standard_normal(3), readout_decay=0.7, readout_mode="mean", profile="loihi2",
        profile_sha256=PROF.sha256, input_latency=1, **kw,
    )  # fmt: skip
    check_representable(net, PROF)
    validate_for(net, PROF)
    return net


def _exact_hits(net, tr, atrlif: bool) -> int:
    """Neuron-steps (t >= 1) on which the threshold comparison compared equal operands."""
    if not atrlif:  # v is recorded after the reset: v == vth there did not spike (v > vth)
        return int(np.count_nonzero(tr.voltage[:, 1:] == net.vth))
    r_pre = decay_int(tr.refractory[:, :-1], net.decay_r)  # r and theta decayed, before this step's spike
    th_pre = decay_int(tr.adaptation[:, :-1], net.decay_theta) + net.vth
    return int(np.count_nonzero(tr.voltage[:, 1:] - r_pre == th_pre))


def _both(net, x, monkeypatch, **kw):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fast = run(net, x, **kw)
        with monkeypatch.context() as m:
            m.setenv("RSNN_DEPLOY_NATIVE", "0")
            slow = run(net, x, **kw)
    return fast, slow


@pytest.mark.requires("cc")
@pytest.mark.parametrize("regime", ["typical", "exact", "overflow"])
@pytest.mark.parametrize("atrlif", [False, True], ids=["lif", "atrlif"])
def test_native_loop_equals_numpy_step_on_random_networks(regime, atrlif, monkeypatch):
    from rsnn_deploy.emulator import _native_ok, params_for

    hits = {"exact": 0, "u": 0, "q": 0, "theta": 0, "spikes": 0}
    for seed in range(12):
        net = _random_net(100 * seed + 7, atrlif, regime)
        assert _native_ok(PROF, params_for(net, PROF))
        rng = np.random.default_rng(seed)
        x = (rng.random((int(rng.integers(1, 9)), int(rng.integers(1, 50)), net.n_inputs)) < rng.random()).astype(
            np.uint8
        )
        fast, slow = _both(net, x, monkeypatch, record_states=True, batch_chunk=3)
        for name in ("spikes", "current", "voltage", "adaptation", "refractory", "logits", "readout"):
            a, b = getattr(fast, name), getattr(slow, name)
            assert (a is None) == (b is None), name
            assert a is None or np.array_equal(a, b), f"{name}, seed {seed}"
        assert fast.overflow == slow.overflow, f"seed {seed}"
        lean, _ = _both(net, x, monkeypatch)  # without the states: the same spikes and counts
        assert np.array_equal(lean.spikes, slow.spikes) and lean.overflow == slow.overflow
        hits["exact"] += _exact_hits(net, slow, atrlif)
        hits["spikes"] += int(slow.spikes.sum())
        for k in ("u", "q", "theta"):
            hits[k] += slow.overflow[k]
    assert hits["spikes"] > 0
    if regime == "exact":
        assert hits["exact"] > 0  # the comparison's equality case was reached, in both loops
    if regime == "overflow":
        assert hits["u"] > 0 and hits["q"] > 0
        if atrlif:
            assert hits["theta"] > 0


@pytest.mark.requires("cc")
def test_native_loop_strict_still_names_the_step(monkeypatch):
    net = qnet([127 << 14], du=0, dv=0, vth=((1 << 17) - 1) << 6)
    x = np.array([1, 1, 1, 1, 1, 1, 0], dtype=np.uint8).reshape(1, 7, 1)
    with pytest.raises(EmulatorOverflowError, match=r"u overflowed at chip step 5 \(trace step 4\)"):
        run(net, x, strict=True)
    fast, slow = _both(net, x, monkeypatch)
    assert fast.overflow == slow.overflow == {"q": 0, "u": 1, "theta": 0}


def test_native_ok_is_honest():
    from rsnn_deploy import semantics
    from rsnn_deploy.emulator import params_for

    sem = semantics.for_profile(PROF)
    assert sem.native
    p = params_for(_random_net(3, True, "typical"), PROF)
    assert sem.native_ok(p)
    assert p.q_max == int(np.abs(p.q_max))  # filled in by params
    assert not sem.native_ok(p._replace(q_max=1 << 31))  # weight sums beyond the C loop's int32
    assert not sem.native_ok(p._replace(q_max=-1))  # unknown bound
    assert not sem.native_ok(p._replace(decay_v=np.full_like(p.decay_v, 4097)))  # negative decay factor
    assert not sem.native_ok(p._replace(decay_bits=40))


def test_numpy_loop_runs_what_the_c_loop_declines(monkeypatch):
    """A network whose weight sums leave int32 runs on numpy (and the result is still the step's)."""
    from rsnn_deploy.emulator import _native_ok, params_for

    big = dataclasses.replace(qnet([127 << 14]), w_in=np.full((1, 1100), 127 << 14))
    assert not _native_ok(PROF, params_for(big, PROF))
    x = np.ones((1, 2, 1100), dtype=np.uint8)
    with pytest.warns(RuntimeWarning, match="q: "):
        tr = run(big, x, record_states=True)
    # Lava wraps u once: q - 2^24, still above 2^23 (a_in this large is outside Lava's 16 bits; counted)
    assert tr.current[0, 0, 0] == 1100 * (127 << 14) - (1 << 24)
    assert tr.overflow["q"] == 2 and tr.overflow["u"] == 2


@pytest.mark.requires("cc")
def test_native_loop_current_at_minus_two_to_the_23(monkeypatch):
    # four inputs of -2^21 at once: q = -2^23 (counted: beyond Lava's a_in), u = -2^23, which Lava's
    # wrap maps to +2^23 (its range is (-2^23, 2^23]); v = 2^23 clips to 2^23 - 1 and spikes
    net = dataclasses.replace(qnet([0], vth=64), w_in=np.full((1, 4), -(1 << 21)))
    fast, slow = _both(net, np.ones((1, 1, 4), dtype=np.uint8), monkeypatch, record_states=True)
    assert slow.current[0, 0, 0] == 1 << 23 and slow.spikes[0, 0, 0]
    assert fast.current[0, 0, 0] == 1 << 23 and fast.overflow == slow.overflow == {"q": 1, "u": 1, "theta": 0}
