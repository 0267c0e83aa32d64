"""loihi2 checked against Lava itself: the emulator and Lava 0.10's own processes give identical spikes and states.

Lava runs in its Python 3.10 side environment (``rsnn-deploy lava-env``; ``.ci/run``
builds it); without it these tests skip with the reason. Every network goes through the
same bundle ``rsnn-deploy export --format lava`` writes (``run_lava.py`` + ``network.json``).
"""

from __future__ import annotations

import subprocess
import warnings

import numpy as np
import pytest

from rsnn_deploy.backends._lava import run_lava
from rsnn_deploy.emulator import run
from rsnn_deploy.hardware import load_profile
from rsnn_deploy.qnet import QuantizedNetwork, check_representable, save_qnet, validate_for

pytestmark = pytest.mark.lava

PROF = load_profile("loihi2")
VMAX = 2**23 - 1
STATES = ("spikes", "current", "voltage", "adaptation", "refractory")


def _net(seed: int, *, atrlif: bool, rec: bool, e_in: int, e_rec: int, h: int = 9, c: int = 5,
         groups: int = 2) -> QuantizedNetwork:
    """A random loihi2 network: weights at exponents e_in / e_rec, parameters shared by ``groups`` populations."""
    rng = np.random.default_rng(seed)
    w_in = rng.integers(-128, 128, (h, c)) << (e_in + 7) if e_in >= -1 else rng.integers(-1, 2, (h, c)) * 64
    w_rec = (rng.integers(-128, 128, (h, h)) << (e_rec + 7)) if rec else None
    g = np.sort(rng.integers(0, groups, h))  # contiguous populations, one block each (one decay per block)
    sizes = tuple(int(n) for n in np.bincount(g) if n)

    def per(lo: int, hi: int) -> np.ndarray:
        return rng.integers(lo, hi, groups)[g]

    kw = {}
    if atrlif:
        kw = dict(decay_theta=per(0, 4096), theta_step=per(0, 4096) << 6, decay_r=per(0, 4096))
        vth = per(1, 4096) << 6  # ATRLIF's theta_0: 12 bits
    else:
        # 17-bit LIF vth near the weights' scale, so that neurons fire
        vth = np.minimum(per(1, 400) << max(6, e_in + 9), ((1 << 17) - 1) << 6)
    q = QuantizedNetwork(
        w_in=w_in, w_rec=w_rec, bias=rng.integers(-4096, 4096, h) << rng.integers(0, 8, h),
        decay_u=per(0, 4096), decay_v=per(0, 4096), vth=vth, refractory=np.ones(h, np.int64), vmin=-VMAX,
        vmax=VMAX, w_out=rng.standard_normal((2, h)), b_out=np.zeros(2), readout_decay=0.5, readout_mode="mean",
        profile="loihi2", profile_sha256=PROF.sha256, input_latency=1, block_sizes=sizes, **kw,
    )
    check_representable(q, PROF)
    validate_for(q, PROF)
    return q


def _compare(q: QuantizedNetwork, x: np.ndarray) -> tuple:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        em = run(q, x, record_states=True)
    lv = run_lava(q, x, record_states=True)
    for name in STATES:
        a, b = getattr(em, name), getattr(lv, name)
        if a is None and b is None:
            continue
        assert a is not None and b is not None, name
        if not np.array_equal(a, b):
            s, t, n = np.argwhere(a != b)[0]
            pytest.fail(f"{name} differs first at sample {s}, step {t}, neuron {n}: emulator {a[s, t, n]}, "
                        f"Lava {b[s, t, n]}")
    assert np.allclose(em.logits, lv.logits)
    return em, lv


CASES = [
    # (seed, atrlif, recurrent, e_in, e_rec)
    (0, False, True, 0, -1),
    (1, True, True, 2, 0),
    (2, False, False, 7, 0),
    (3, True, False, -1, 0),
    (4, False, True, 5, 3),  # large weights: u wraps
    (5, True, True, 6, 4),   # ATRLIF with wraps and large theta / r
    (6, False, True, -7, 1),  # exponent -7: Lava's Dense right-shifts the sum
    (7, True, True, 3, -1),
]


@pytest.mark.parametrize("seed,atrlif,rec,e_in,e_rec", CASES)
def test_random_networks_identical_to_lava(seed, atrlif, rec, e_in, e_rec):
    q = _net(seed, atrlif=atrlif, rec=rec, e_in=e_in, e_rec=e_rec)
    x = (np.random.default_rng(100 + seed).random((2, 24, q.n_inputs)) < 0.4).astype(np.uint8)
    em, _ = _compare(q, x)
    assert em.spikes.any()


def test_wrap_cases_reach_lava():
    """Both wrap directions of u, and a network whose q leaves Lava's 16-bit a_in, are still identical."""
    hits = {"u": 0, "q": 0}
    for seed in (4, 5):
        q = _net(seed, atrlif=seed == 5, rec=True, e_in=7, e_rec=5)
        x = np.ones((1, 20, q.n_inputs), np.uint8)
        em, _ = _compare(q, x)
        hits = {k: hits[k] + em.overflow[k] for k in hits}
    assert hits["u"] > 0 and hits["q"] > 0


def test_exact_threshold_lif_strict_atrlif_inclusive():
    """The issue's minimal case: v == vth does not fire Lava's LIF; v - r == theta fires ATRLIF."""
    one = dict(refractory=np.ones(1, np.int64), vmin=-VMAX, vmax=VMAX, w_out=np.ones((1, 1)), b_out=np.zeros(1),
               readout_decay=0.0, readout_mode="last", profile="loihi2", profile_sha256=PROF.sha256, input_latency=1)
    lif = QuantizedNetwork(w_in=np.array([[6400]]), w_rec=None, bias=np.zeros(1, np.int64), decay_u=np.array([4095]),
                           decay_v=np.array([4095]), vth=np.array([6400]), **one)
    x = np.zeros((1, 4, 1), np.uint8)
    x[0, 0, 0] = 1
    em, _ = _compare(lif, x)
    assert em.voltage[0, 0, 0] == 6400 and not em.spikes.any()
    atr = QuantizedNetwork(w_in=np.array([[3200]]), w_rec=None, bias=np.zeros(1, np.int64), decay_u=np.array([4095]),
                           decay_v=np.array([4095]), vth=np.array([3200]), decay_theta=np.array([0]),
                           theta_step=np.array([0]), decay_r=np.array([0]), **one)
    em, _ = _compare(atr, x)
    assert em.voltage[0, 0, 0] == 3200 and em.spikes[0, 0, 0] and em.refractory[0, 0, 0] == 6400


def test_lava_backend_on_a_trained_quantized_network():
    """A float ATRLIF model, quantized by the real quantizer, runs identically on Lava (and close to its QAT twin)."""
    import torch

    from rsnn_deploy.config import ModelConfig
    from rsnn_deploy.model import RSNN
    from rsnn_deploy.quantize import attach_fake_quant, quantize_model

    torch.manual_seed(0)
    cfg = ModelConfig(n_in=12, n_hidden=16, n_out=3, variant="rec-syn-adapt", adapt_kind="atrlif", tau_mem_ms=5,
                      init_in_gain=3.0)
    model = RSNN(cfg)
    x = (np.random.default_rng(0).random((3, 30, 12)) < 0.3).astype(np.uint8)
    q, _ = quantize_model(model, "loihi2", torch.from_numpy(x).float())
    assert q.is_atrlif
    em, _ = _compare(q, x)
    attach_fake_quant(model, "loihi2")
    fq = model.trace(torch.from_numpy(x).float()).spikes.numpy() > 0
    assert em.spikes.mean() > 0.02 and (fq == em.spikes).mean() > 0.97


def test_export_bundle_runs_in_lava_as_a_user_would(tmp_path, capsys):
    from rsnn_deploy.cli import main
    from rsnn_deploy.lava_env import ensure_env

    q = _net(11, atrlif=True, rec=True, e_in=1, e_rec=0)
    save_qnet(q, tmp_path / "q")
    out = tmp_path / "bundle"
    assert main(["export", str(tmp_path / "q"), "--format", "lava", "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "network.json", "run_lava.py"]
    x = (np.random.default_rng(3).random((2, 15, q.n_inputs)) < 0.4).astype(np.uint8)
    np.savez(tmp_path / "in.npz", spikes=x)
    subprocess.run([ensure_env(), str(out / "run_lava.py"), str(out / "network.json"), str(tmp_path / "in.npz"),
                    str(tmp_path / "out.npz")], check=True, capture_output=True)
    with np.load(tmp_path / "out.npz") as z:
        got = z["spikes"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert np.array_equal(got, run(q, x).spikes)
    # refusals: one line, exit 2, nothing overwritten
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "mine.txt").write_text("keep")
    capsys.readouterr()
    assert main(["export", str(tmp_path / "q"), "--format", "lava", "-o", str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "folder holds other files" in err
    assert (tmp_path / "other" / "mine.txt").read_text() == "keep"


def test_side_by_side_copies_equal_one_network_per_sample():
    """``--chunk``: samples as independent copies in one Lava network give what one network per sample gives."""
    q = _net(21, atrlif=True, rec=True, e_in=2, e_rec=1)
    x = (np.random.default_rng(21).random((5, 12, q.n_inputs)) < 0.4).astype(np.uint8)
    one = run_lava(q, x, chunk=1)
    side = run_lava(q, x, chunk=3)
    assert one.spikes.any() and np.array_equal(one.spikes, side.spikes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert np.array_equal(run(q, x).spikes, side.spikes)
