"""The emulator honours the profile's decay rule (``decay.bits`` 1-16, offsets 0/1), as the ONNX graph does.

A profile may set ``x <- sign(x) * ((|x| * (2**bits - offset - d)) >> bits)`` with any width
and offsets; the quantizer and the ONNX integer graph follow it, and so must the numpy
emulator (both profiles). The C loop of loihi1 implements 12 bits with offsets 1/0 only
and must decline anything else (the numpy loop then runs).
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

from rsnn_deploy import emulator, native
from rsnn_deploy.backends._onnx import run_onnx_int
from rsnn_deploy.emulator import decay_int, run
from rsnn_deploy.export import export_int_onnx
from rsnn_deploy.hardware import builtin_profile_path, load_profile
from rsnn_deploy.qnet import QuantizedNetwork, check_representable


def _profile(tmp_path, base: str, bits: int, u_off: int, v_off: int, th_off: int = 0):
    text = builtin_profile_path(base).read_text()
    for key, value in (("bits", bits), ("u_offset", u_off), ("v_offset", v_off), ("theta_offset", th_off)):
        text, n = re.subn(rf"^{key} = \d+$", f"{key} = {value}", text, count=1, flags=re.M)
        assert n == 1, key
    text = text.replace(f'name = "{base}"', f'name = "{base}-d{bits}"')
    path = tmp_path / f"{base}-d{bits}-{u_off}{v_off}.toml"
    path.write_text(text)
    prof = load_profile(path)
    assert (prof.decay.bits, prof.decay.u_offset, prof.decay.v_offset) == (bits, u_off, v_off)
    return prof


def _net(prof, seed: int, atrlif: bool = False) -> QuantizedNetwork:
    rng = np.random.default_rng(seed)
    h, c = 7, 5
    dmax = prof.decay.max
    loihi1 = prof.semantics == "nengo-loihi-1.1"
    kw = {}
    if not loihi1 and atrlif:
        kw = dict(decay_theta=np.full(h, int(rng.integers(0, dmax + 1))), theta_step=np.full(h, 64 * 30),
                  decay_r=np.full(h, int(rng.integers(0, dmax + 1))))
    q = QuantizedNetwork(
        w_in=rng.integers(-100, 100, (h, c)) * 128, w_rec=rng.integers(-60, 60, (h, h)) * 128,
        bias=rng.integers(-300, 300, h) * 4, decay_u=np.full(h, int(rng.integers(0, dmax + 1))),
        decay_v=np.full(h, int(rng.integers(0, dmax + 1))), vth=np.full(h, 64 * 150), refractory=np.ones(h, np.int64),
        vmin=1 - 2**20 if loihi1 else prof.voltage.vmin_choices[0],
        vmax=prof.voltage.vmax_choices[-1], w_out=rng.standard_normal((2, h)), b_out=np.zeros(2),
        readout_decay=0.5, readout_mode="mean", profile=prof.name, profile_sha256=prof.sha256,
        input_latency=prof.timing.input_latency_steps, **kw,
    )
    check_representable(q, prof)
    return q


def _by_hand(q: QuantizedNetwork, prof, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The profile's rule written out with decay_int (LIF part of both profiles: no wrap reached here)."""
    b, t, _ = x.shape
    h = q.n_hidden
    u = np.zeros((b, h), np.int64)
    v = np.zeros((b, h), np.int64)
    z = np.zeros((b, h), bool)
    us, vs = [], []
    d = prof.decay
    for n in range(t + 1):
        qq = z.astype(np.int64) @ q.w_rec.T
        if n >= 1:
            qq += x[:, n - 1].astype(np.int64) @ q.w_in.T
        u = decay_int(u, q.decay_u, d.u_offset, d.bits) + qq
        v = np.clip(decay_int(v, q.decay_v, d.v_offset, d.bits) + u + q.bias, q.vmin, q.vmax)
        z = v > q.vth
        v = np.where(z, 0, v)
        if n >= 1:
            us.append(u)
            vs.append(v)
    return np.stack(us, 1), np.stack(vs, 1)


@pytest.mark.parametrize("base", ["loihi1", "loihi2"])
@pytest.mark.parametrize("bits,u_off,v_off", [(8, 1, 0), (10, 0, 1), (12, 0, 0), (12, 1, 1), (14, 1, 0), (16, 0, 1),
                                              (3, 1, 1)])
def test_emulator_follows_profile_decay_rule(tmp_path, base, bits, u_off, v_off):
    prof = _profile(tmp_path, base, bits, u_off, v_off)
    q = _net(prof, seed=bits + 3 * u_off + 5 * v_off)
    x = (np.random.default_rng(bits).random((3, 40, q.n_inputs)) < 0.4).astype(np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        em = run(q, x, prof, record_states=True)
        fast = run(q, x, prof)  # the default path (C loop for loihi1 where it applies)
        onnx_tr = run_onnx_int(export_int_onnx(q, "step", prof), x, record_states=True)
    assert em.spikes.any() and not em.spikes.all()
    assert np.array_equal(em.spikes, onnx_tr.spikes)
    assert np.array_equal(em.current, onnx_tr.current) and np.array_equal(em.voltage, onnx_tr.voltage)
    assert np.array_equal(fast.spikes, em.spikes)
    if not any(em.overflow.values()):
        u, v = _by_hand(q, prof, x)
        assert np.array_equal(em.current, u) and np.array_equal(em.voltage, v)


def test_native_loop_declines_other_decay_rules(tmp_path):
    l1 = load_profile("loihi1")
    q12 = _net(l1, seed=0)
    assert emulator._native_loihi1_ok(l1, emulator.params_for(q12, l1)) == native.enabled()
    for bits, u_off, v_off in ((10, 1, 0), (12, 0, 0), (12, 1, 1), (16, 1, 0)):
        prof = _profile(tmp_path, "loihi1", bits, u_off, v_off)
        p = emulator.params_for(_net(prof, seed=1), prof)
        assert not emulator._native_loihi1_ok(prof, p)


@pytest.mark.parametrize("bits", [9, 12, 15])
def test_atrlif_follows_profile_decay_rule(tmp_path, bits):
    prof = _profile(tmp_path, "loihi2", bits, 1, 0)
    q = _net(prof, seed=bits, atrlif=True)
    x = (np.random.default_rng(bits).random((3, 40, q.n_inputs)) < 0.4).astype(np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        em = run(q, x, prof, record_states=True)
        onnx_tr = run_onnx_int(export_int_onnx(q, "step", prof), x, record_states=True)
    assert em.spikes.any()
    for name in ("spikes", "current", "voltage", "adaptation"):
        assert np.array_equal(getattr(em, name), getattr(onnx_tr, name)), name
