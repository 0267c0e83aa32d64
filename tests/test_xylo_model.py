"""Xylo model, quantizer, export and CLI: the shipped model through float -> fake-quant -> emulator -> xylosim."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rsnn_deploy.cli import main
from rsnn_deploy.errors import CheckpointError, UnsupportedError
from rsnn_deploy.semantics.xylo_profile import load_xylo_profile
from rsnn_deploy.xylo import emulator
from rsnn_deploy.xylo.export import load_spec, spec_of, write_spec
from rsnn_deploy.xylo.model import XyloModelConfig, XyloRSNN, dash_to_tau_ms, tau_to_dash, weight_grid_step
from rsnn_deploy.xylo.quantize import quantize_model
from rsnn_deploy.xylo.train import load_xylo_checkpoint
from rsnn_deploy.xylo.verify import verify_xylo

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "models" / "mnist1d8-xylo-audio2"
needs_xylosim = pytest.mark.requires("xylosim")  # skips with the install line (tests/conftest.py), fails in CI


def test_dash_grid():
    assert float(dash_to_tau_ms(1, 1.0)) == pytest.approx(1.0 / np.log(2))
    assert float(dash_to_tau_ms(4, 1.0)) == pytest.approx(15.495, abs=1e-3)
    # nearest in log(tau): 2.0 ms lies between 1.44 (dash 1) and 3.48 (dash 2), nearer 1.44 in log
    assert tau_to_dash(torch.tensor([2.0, 2.4, 15.0, 1e6]), 1.0, 15).tolist() == [1, 2, 4, 15]


def test_qat_weights_lie_on_the_int8_shift_grid():
    m = XyloRSNN(XyloModelConfig(n_in=4, n_hidden=8, n_out=2)).qat(True)
    scale = m.cfg.threshold_int / m.cfg.threshold
    q = m._fq(m.w_in, scale).detach()
    step = weight_grid_step(m.w_in, scale, 8, 7)
    assert torch.allclose(q / step, torch.round(q / step), atol=1e-4)
    assert float((q / step).abs().max()) <= 128


def _small_model(**kw):
    torch.manual_seed(0)
    return XyloRSNN(XyloModelConfig(**{"n_in": 16, "n_hidden": 12, "n_out": 4, **kw}))


@pytest.mark.parametrize(
    ("profile", "kw", "match"),
    [
        ("xylo-audio2", {"n_out": 10}, r"^xylo-audio2: 10 output neurons exceed the maximum 8$"),
        ("xylo-audio2", {"n_in": 17}, r"^xylo-audio2: 17 input channels exceed the maximum 16$"),
        ("xylo-imu", {}, r"^xylo-imu: 2 synaptic currents per hidden neuron exceed the maximum 1$"),
    ],
)
def test_quantizer_refuses_what_the_chip_cannot_hold(profile, kw, match):
    m = _small_model(**kw)
    x = np.zeros((2, 5, m.cfg.n_in), np.uint8)
    with pytest.raises(UnsupportedError, match=match):
        quantize_model(m, load_xylo_profile(profile), x)


def test_imu_takes_one_synapse_models():
    m = _small_model(n_syn=1, tau_syn_ms=(4.0,))
    rng = np.random.default_rng(0)
    x = (rng.random((4, 20, 16)) < 0.2).astype(np.uint8)
    net, rep = quantize_model(m, load_xylo_profile("xylo-imu"), x)
    assert net.n_synapses == 1 and rep["profile"] == "xylo-imu"


@pytest.fixture(scope="module")
def shipped():
    model, meta = load_xylo_checkpoint(SHIPPED)
    sys.path.insert(0, str(REPO / "scripts"))
    from xylo_reference import data

    x_tr, _ = data("train")
    net, rep = quantize_model(model, load_xylo_profile("xylo-audio2"), x_tr[:200])
    x, y = data("test")
    return model, meta, net, rep, x, y


@needs_xylosim
def test_shipped_model_emulator_equals_xylosim_and_keeps_fake_quant_accuracy(shipped):
    model, _, net, rep, x, y = shipped
    out = verify_xylo(x[:200], y[:200], model, net)
    agr = out["agreement_emulator_vs_xylosim_pct"]
    assert all(v == 100.0 for v in agr.values()), agr
    acc = {k: v["accuracy"] for k, v in out["backends"].items()}
    assert acc["emulator"] == acc["xylosim"]
    assert acc["emulator"] > 0.5  # well above chance (1/8); the card: 68.50 % on all 800
    assert abs(acc["emulator"] - acc["fake-quant"]) <= 0.05, acc
    kinds = {t["tau"] for t in rep["time_constants"]}
    assert kinds == {"tau_mem", "tau_syn[0]", "tau_syn[1]", "tau_out"}


def test_spec_round_trip_and_refusals(shipped, tmp_path):
    net = shipped[2]
    path = write_spec(net, tmp_path / "spec.json")
    back = load_spec(path)
    for k in ("w_in", "w_rec", "w_out", "dash_mem", "dash_syn", "threshold", "bias_out"):
        assert np.array_equal(getattr(back, k), getattr(net, k)), k
    body = json.loads(path.read_text())
    body["spec"]["weights_out_rec"] = [[1]]
    bad = tmp_path / "rec_out.json"
    bad.write_text(json.dumps(body))
    with pytest.raises(UnsupportedError, match=r"^xylo-audio2: output neurons cannot be recurrent"):
        load_spec(bad)
    del body["spec"]["weights_out_rec"], body["spec"]["threshold"]
    bad.write_text(json.dumps(body))
    with pytest.raises(CheckpointError, match=r"rec_out\.json: spec\.threshold: missing$"):
        load_spec(bad)


@needs_xylosim
def test_rockpool_xylosim_loads_the_spec_and_matches_our_emulator(shipped):
    """Rockpool 3.1's own XyloSim (syns61201) built from our exported keyword arguments. samna (a
    download-at-import stub on PyPI) is replaced, for this test only, by tests/_samna_stub.py."""
    pytest.importorskip("rockpool", reason="rockpool not installed: pip install --no-deps rockpool==3.1.0")
    sys.path.insert(0, str(Path(__file__).parent))
    from _samna_stub import samna_stubbed

    with samna_stubbed():
        from rockpool.devices.xylo.syns61201.xylo_sim import XyloSim

    net, x = shipped[2], shipped[4]
    sim = XyloSim.from_specification(**spec_of(net))
    ours = emulator.run(net, x[:5])
    for b in range(5):
        sim.reset_state()
        out, _, rec = sim.evolve(x[b].astype(int), record=True)
        assert np.array_equal(np.asarray(rec["Spikes"]), ours.spikes[b])
        assert np.array_equal(np.asarray(rec["Vmem_out"]), ours.v_mem_out[b])
        assert np.array_equal(np.asarray(out), ours.spikes_out[b])


@needs_xylosim
def test_cli_xylo_verify_and_export(tmp_path, capsys):
    assert main(["xylo", "verify", "--limit", "20", "-o", str(tmp_path / "rep")]) == 0
    text = capsys.readouterr().out
    assert "emulator vs xylosim: spikes 100.000 %" in text
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert rep["n"] == 20 and rep["backends"]["xylosim"]["accuracy"] == rep["backends"]["emulator"]["accuracy"]
    # the project's verify dispatches on a Xylo target
    assert (
        main(
            ["verify", "--target", "xylo-audio2", "--limit", "10", "--backends", "emulator", "-o", str(tmp_path / "v")]
        )
        == 0
    )
    spec = tmp_path / "spec.json"
    assert main(["xylo", "export", "-o", str(spec)]) == 0
    assert load_spec(spec).n_in == 16
    assert main(["xylo", "export", "-o", str(spec)]) == 2  # no silent overwrite
    assert "exists; pass --overwrite" in capsys.readouterr().err


def test_cli_quantize_dispatches_on_a_xylo_target(tmp_path, capsys):
    assert main(["quantize", str(SHIPPED) + ".json", "--target", "xylo-audio2", "-o", str(tmp_path / "q")]) == 0
    assert load_spec(tmp_path / "q.json").n_hidden == 128
    rep = json.loads((tmp_path / "q.report.json").read_text())
    assert rep["profile"] == "xylo-audio2" and len(rep["time_constants"]) == 4
    loihi = REPO / "models" / "mnist1d-rec-syn-loihi1.json"
    assert main(["quantize", str(loihi), "--target", "xylo-audio2", "-o", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "Loihi-style) checkpoint does not map onto xylo-audio2" in err and len(err.strip().splitlines()) == 1


def test_cli_one_line_errors(tmp_path, capsys):
    assert main(["xylo", "verify", str(tmp_path / "nope"), "--backends", "emulator"]) == 2
    assert "Xylo checkpoint file not found" in capsys.readouterr().err
    assert main(["xylo", "verify", "--target", "xylo-nano"]) == 2
    assert "XyloProfile.name: unknown profile" in capsys.readouterr().err
    assert main(["xylo", "verify", "--backends", "emulator,loihi"]) == 2
    assert "--backends: unknown Xylo backend 'loihi'" in capsys.readouterr().err


SMALL_RECALL = [
    "--task",
    "store-recall",
    "--task-param",
    "n_values=4",
    "--task-param",
    "pop_size=1",
    "--task-param",
    "delay=10",
    "--task-param",
    "n_train=120",
    "--task-param",
    "n_test=60",
]


@needs_xylosim  # its checkpoint is verified against xylosim
def test_cli_train_qat_on_a_xylo_profile_trains_on_its_grid(tmp_path, capsys, monkeypatch):
    """``train --qat xylo-audio2`` trains Xylo's model with fake quantization on from the first step, and its
    checkpoint goes through ``xylo verify``: fake-quant and the integer runs agree on the recorded accuracy."""
    seen: list[bool] = []
    forward = XyloRSNN.forward

    def spy(self, x, record=False):
        seen.append(self.quantized)
        return forward(self, x, record)

    monkeypatch.setattr(XyloRSNN, "forward", spy)
    out = tmp_path / "run"
    args = ["train", *SMALL_RECALL, "--hidden", "12", "--epochs", "2", "--batch-size", "40", "--threads", "1"]
    assert main([*args, "--qat", "xylo-audio2", "--quiet", "-o", str(out)]) == 0
    assert "xylo-audio2 grid" in capsys.readouterr().out
    n_batches = 2 * 3  # 120 samples less the 10 % validation split, batches of 40
    assert len(seen) > n_batches and all(seen[:n_batches])  # every training step ran on the grid
    model, meta = load_xylo_checkpoint(out / "model")
    assert meta["task"]["name"] == "store-recall" and model.cfg.readout_mode == "last"
    assert meta["train"]["qat_profile"] == "xylo-audio2" and model.cfg.n_syn == 2
    metrics = json.loads((out / "metrics.json").read_text())
    monkeypatch.setattr(XyloRSNN, "forward", forward)
    assert main(["xylo", "verify", str(out / "model"), "-o", str(tmp_path / "rep")]) == 0
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())["backends"]
    assert rep["fake-quant"]["accuracy"] == pytest.approx(metrics["test_acc_fake_quant"])
    assert rep["emulator"]["accuracy"] == rep["xylosim"]["accuracy"]
    # the IMU profile has one synaptic current: the model follows the profile
    assert main([*args, "--epochs", "1", "--qat", "xylo-imu", "--quiet", "-o", str(tmp_path / "imu")]) == 0
    assert load_xylo_checkpoint(tmp_path / "imu" / "model")[0].cfg.n_syn == 1
    assert main([*args, "--qat", "xylo-audio2", "--quiet", "-o", str(out)]) == 2  # no silent overwrite


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--variant", "lif"], "--qat xylo-audio2: model setting 'variant' belongs to the Loihi-style RSNN"),
        (["--task-param", "n_values=9"], "xylo-audio2: store-recall has 9 classes, over the maximum 8 output neurons"),
        (["--device", "cuda:0"], "--device: Xylo's model trains on cpu only"),
    ],
)
def test_cli_train_qat_xylo_refuses_in_one_line(tmp_path, capsys, extra, match):
    args = ["train", *SMALL_RECALL, *extra, "--epochs", "1", "--qat", "xylo-audio2", "--quiet", "-o", str(tmp_path)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and len(err.splitlines()) == 1
