"""Hardware in the loop: streaming one step at a time must be the batched run, bit for bit.

Every chip stepper (our integer step, the ONNX step graph, nengo-loihi's simulator) is
driven by the same host session and compared with :func:`rsnn_deploy.emulator.run` on
the same inputs: spikes identical, final logits and predictions identical, wrap counts
identical. The CLI's stream files are validated with one-line errors (exit 2).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from rsnn_deploy.cli import main
from rsnn_deploy.emulator import run as emulate
from rsnn_deploy.errors import UnsupportedError, ValidationError
from rsnn_deploy.hardware import load_profile
from rsnn_deploy.hil import (
    EmulatorStepper,
    HilSession,
    latency_summary,
    load_stream,
    open_stepper,
    stream,
)
from rsnn_deploy.qnet import QuantizedNetwork, save_qnet

pytestmark = pytest.mark.filterwarnings(
    "ignore:invalid value encountered in cast:RuntimeWarning",
    "ignore:This version of `nengo_loihi`:UserWarning",
    "ignore:emulator. states wrapped:RuntimeWarning",
)

C, H, K = 12, 24, 4


def _spikes(seed: int, b: int = 3, t: int = 40, c: int = C, p: float = 0.25) -> np.ndarray:
    return (np.random.default_rng(seed).random((b, t, c)) < p).astype(np.uint8)


def _quantized(profile: str, seed: int = 0, readout_mode: str = "mean") -> QuantizedNetwork:
    """A random float RSNN quantized by the real quantizer (what users stream), active enough to matter."""
    import torch

    from rsnn_deploy.config import ModelConfig
    from rsnn_deploy.model import RSNN
    from rsnn_deploy.quantize import quantize_model

    torch.manual_seed(seed)
    variant = "rec" if profile == "loihi1" else "rec-syn-adapt"
    cfg = ModelConfig(n_in=C, n_hidden=H, n_out=K, variant=variant, init_in_gain=3.0, readout_mode=readout_mode,
                      v_floor=0.0 if profile == "loihi1" else None, adapt_kind="atrlif")
    qnet, _ = quantize_model(RSNN(cfg), profile, torch.from_numpy(_spikes(99, b=4)).float())
    return qnet


@pytest.fixture(scope="module")
def qnets() -> dict[str, QuantizedNetwork]:
    return {"loihi1": _quantized("loihi1"), "loihi2": _quantized("loihi2"),
            "loihi1-last": _quantized("loihi1", seed=1, readout_mode="last")}


def _wrapping_qnet(profile: str) -> QuantizedNetwork:
    """Weights far beyond a trained network's: q and u wrap, refractory counts run (loihi1)."""
    rng = np.random.default_rng(3)
    h, c, k = 6, 8, 3
    kw = dict(
        w_in=rng.integers(0, 2**19, (h, c)), w_rec=rng.integers(-(2**18), 2**18, (h, h)),
        bias=np.array([0, 64, -64, 2**22, -(2**22), 0]), decay_u=np.zeros(h, np.int64), decay_v=np.full(h, 200),
        vth=np.full(h, 2**22), refractory=np.full(h, 2), vmin=0, vmax=2**23 - 1, w_out=rng.normal(size=(k, h)),
        b_out=np.zeros(k), readout_decay=0.9, readout_mode="mean", profile=profile,
        profile_sha256=load_profile(profile).sha256, input_latency=1,
    )
    if profile == "loihi2":
        kw.update(vmin=-(2**23 - 1), refractory=np.ones(h, np.int64), decay_theta=np.full(h, 10),
                  theta_step=np.full(h, 2**21), bias=np.zeros(h, np.int64))
    return QuantizedNetwork(**kw)


# ----------------------------------------------------------------------------- streaming == batched


@pytest.mark.parametrize("backend", ["emulator", "onnx"])
@pytest.mark.parametrize("name", ["loihi1", "loihi2", "loihi1-last"])
def test_streaming_equals_batched_emulator(qnets, name, backend):
    qnet = qnets[name]
    x = _spikes(1)
    ref = emulate(qnet, x)
    assert 0.02 < ref.spikes.mean() < 0.6  # a network that does something
    got = stream(qnet, x, backend)
    np.testing.assert_array_equal(got.spikes, ref.spikes)
    np.testing.assert_array_equal(got.predictions, ref.predictions)
    np.testing.assert_allclose(got.logits, ref.logits, rtol=0, atol=1e-12)
    assert got.decisions.shape == (3, 40)
    assert len(got.step_seconds) == 3 * (40 + qnet.input_latency)


@pytest.mark.parametrize("profile", ["loihi1", "loihi2"])
@pytest.mark.parametrize("backend", ["emulator", "onnx"])
def test_streaming_reproduces_wrap_around_and_its_counts(profile, backend):
    qnet = _wrapping_qnet(profile)
    x = _spikes(5, b=2, t=30, c=8, p=0.6)
    ref = emulate(qnet, x)
    assert sum(ref.overflow.values()) > 0
    got = stream(qnet, x, backend)
    np.testing.assert_array_equal(got.spikes, ref.spikes)
    assert got.overflow == dict(ref.overflow)


@pytest.mark.nengo_loihi
def test_nengo_loihi_streaming_equals_emulator(qnets):
    qnet = qnets["loihi1"]
    x = _spikes(2, b=3, t=30)
    ref = emulate(qnet, x)
    got = stream(qnet, x, "nengo-loihi")
    np.testing.assert_array_equal(got.spikes, ref.spikes)
    np.testing.assert_array_equal(got.predictions, ref.predictions)


@pytest.mark.nengo_loihi
def test_three_backends_give_identical_spikes_from_one_stream_file(qnets, tmp_path):
    qnet = qnets["loihi1"]
    save_qnet(qnet, tmp_path / "q")
    x = _spikes(3, b=2, t=25)
    np.savez(tmp_path / "s.npz", x=x, y=np.array([0, 1]))
    docs = {}
    for backend in ("emulator", "onnx", "nengo-loihi"):
        out = tmp_path / f"{backend}.json"
        assert main(["hil", "--model", str(tmp_path / "q.json"), "--backend", backend, "--stream",
                     str(tmp_path / "s.npz"), "--quiet", "-o", str(out)]) == 0
        docs[backend] = json.loads(out.read_text())
    ref = emulate(qnet, x)
    for backend, doc in docs.items():
        assert doc["predictions"] == ref.predictions.tolist(), backend
        assert doc["spike_counts"] == ref.spikes.sum(axis=(1, 2)).tolist(), backend
        assert doc["decisions_per_step"] == docs["emulator"]["decisions_per_step"], backend
        assert doc["latency"]["steps"] == 2 * (25 + qnet.input_latency)
    spikes = {b: stream(qnet, x, b).spikes for b in ("emulator", "onnx", "nengo-loihi")}
    np.testing.assert_array_equal(spikes["onnx"], spikes["emulator"])
    np.testing.assert_array_equal(spikes["nengo-loihi"], spikes["emulator"])


# ----------------------------------------------------------------------------- the host session


def test_session_latency_contract_and_running_decisions(qnets):
    """Push n returns trace step n - L; finish brings the last L; the last decision is the prediction."""
    qnet = qnets["loihi1"]
    lat = qnet.input_latency
    assert lat == 1
    x = _spikes(4, b=1, t=20)[0]
    ref = emulate(qnet, x[None])
    with HilSession(qnet, EmulatorStepper(qnet)) as session:
        outs = [session.push(frame) for frame in x]
        assert outs[:lat] == [None] * lat
        tail = session.finish()
    got = [o for o in outs if o is not None] + tail
    assert [o.step for o in got] == list(range(20))
    np.testing.assert_array_equal(np.stack([o.spikes[0] for o in got]), ref.spikes[0])
    np.testing.assert_allclose(np.stack([o.readout[0] for o in got]), ref.readout[0], rtol=1e-6)
    mean_so_far = np.cumsum(ref.readout[0].astype(np.float64), axis=0) / np.arange(1, 21)[:, None]
    np.testing.assert_array_equal([int(o.decision[0]) for o in got], np.argmax(mean_so_far, axis=1))
    assert int(got[-1].decision[0]) == int(ref.predictions[0])


def test_session_reset_starts_from_rest_and_batches_are_independent(qnets):
    qnet = qnets["loihi2"]
    x = _spikes(6, b=2, t=15)
    ref = emulate(qnet, x)
    stepper = open_stepper(qnet, "emulator", batch=2)
    session = HilSession(qnet, stepper)
    for _ in range(2):  # the second pass after reset must repeat the first
        outs = [session.push(x[:, k]) for k in range(15)] + session.finish()
        spikes = np.stack([o.spikes for o in outs if o is not None], axis=1)
        np.testing.assert_array_equal(spikes, ref.spikes)
        session.reset()


def test_steps_truncate_or_pad_with_silence(qnets):
    qnet = qnets["loihi1"]
    x = _spikes(7, b=2, t=20)
    short = stream(qnet, x, "emulator", steps=8)
    np.testing.assert_array_equal(short.spikes, emulate(qnet, x[:, :8]).spikes)
    long = stream(qnet, x, "emulator", steps=30)
    padded = np.concatenate([x, np.zeros((2, 10, C), np.uint8)], axis=1)
    np.testing.assert_array_equal(long.spikes, emulate(qnet, padded).spikes)
    with pytest.raises(ValidationError, match="--steps"):
        stream(qnet, x, "emulator", steps=0)


def test_frames_are_validated(qnets):
    stepper = EmulatorStepper(qnets["loihi1"])
    with pytest.raises(ValidationError, match=r"must be \[1, 12\]"):
        stepper.step(np.zeros(5))
    with pytest.raises(ValidationError, match="only 0 and 1"):
        stepper.step(np.full(C, 2))


def test_nengo_loihi_refuses_loihi2_with_the_reason(qnets):
    with pytest.raises(UnsupportedError, match="nengo-loihi"):
        open_stepper(qnets["loihi2"], "nengo-loihi")
    with pytest.raises(UnsupportedError, match="unknown"):
        open_stepper(qnets["loihi1"], "lava")


def test_latency_summary():
    s = latency_summary([0.001, 0.002, 0.003, 0.004])
    assert s["steps"] == 4 and s["median_ms"] == pytest.approx(2.5) and s["max_ms"] == pytest.approx(4.0)
    assert s["steps_per_s"] == pytest.approx(400.0)
    assert latency_summary([])["steps"] == 0


# ----------------------------------------------------------------------------- the CLI and its stream files


def test_cli_hil_prints_latency_and_decisions(qnets, tmp_path, capsys):
    qnet = qnets["loihi1"]
    save_qnet(qnet, tmp_path / "q")
    x = _spikes(8, b=1, t=30)[0]  # a single [T, C] sequence
    np.savez(tmp_path / "one.npz", x=x)
    out = tmp_path / "d.json"
    assert main(["hil", "--model", str(tmp_path / "q"), "--stream", str(tmp_path / "one.npz"), "--steps", "25",
                 "--quiet", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "latency per chip step: median" in text and "p95" in text and "steps/s" in text
    pred = int(emulate(qnet, x[None, :25]).predictions[0])
    assert f"decisions (final prediction per sequence): {pred}" in text
    doc = json.loads(out.read_text())
    assert doc["predictions"] == [pred] and doc["steps"] == 25 and len(doc["decisions_per_step"][0]) == 25
    assert "accuracy" not in doc


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"z": np.zeros((2, 5, C), np.uint8)}, r"x: missing key \(got keys \['z'\]\)"),
        ({"x": np.zeros((C,), np.uint8)}, r"x: must be \[T, C\] or \[N, T, C\]"),
        ({"x": np.full((2, 5, C), 2, np.uint8)}, r"x: must hold only 0 and 1"),
        ({"x": np.full((2, 5, C), 0.5)}, r"x: must hold only 0 and 1"),
        ({"x": np.zeros((2, 5, C + 1), np.uint8)}, r"x: has 13 channels, the network has 12 inputs"),
        ({"x": np.zeros((2, 5, C), np.uint8), "y": np.zeros(3, np.int64)}, r"y: must be integer labels \[2\]"),
        ({"x": np.array([["a"] * C] * 5)}, r"x: must be bool or 0/1 numbers"),
    ],
)
def test_bad_stream_files_are_one_line_errors(qnets, tmp_path, capsys, arrays, match):
    save_qnet(qnets["loihi1"], tmp_path / "q")
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    assert main(["hil", "--model", str(tmp_path / "q"), "--stream", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(path) in err
    assert re.search(match, err), err


def test_missing_or_unreadable_stream_files(qnets, tmp_path, capsys):
    save_qnet(qnets["loihi1"], tmp_path / "q")
    (tmp_path / "text.npz").write_text("not a zip")
    np.save(tmp_path / "single.npy", np.zeros((5, C)))
    for name, match in [("nope.npz", "not found"), ("text.npz", "not a readable .npz"),
                        ("single.npy", "single array")]:
        assert main(["hil", "--model", str(tmp_path / "q"), "--stream", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and match in err and name in err
    with pytest.raises(ValidationError, match="single array"):
        load_stream(tmp_path / "single.npy", C)
    assert main(["hil", "--model", str(tmp_path / "q"), "--stream", str(tmp_path / "nope.npz"), "--steps", "0"]) == 2
    assert "--steps: must be at least 1" in capsys.readouterr().err
    assert main(["hil", "--model", str(tmp_path / "q"), "--stream", "x.npz", "--target", "loihi"]) == 2
    assert "only --backend nengo-loihi has targets" in capsys.readouterr().err


def test_cli_refuses_nengo_loihi_for_an_adaptive_network(qnets, tmp_path, capsys):
    save_qnet(qnets["loihi2"], tmp_path / "q2")
    np.savez(tmp_path / "s.npz", x=_spikes(0, b=1, t=5))
    assert main(["hil", "--model", str(tmp_path / "q2"), "--backend", "nengo-loihi", "--stream",
                 str(tmp_path / "s.npz"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nengo-loihi" in err
