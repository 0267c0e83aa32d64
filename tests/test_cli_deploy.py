"""``rsnn-deploy quantize | compile | verify | model-card`` through ``rsnn_deploy.cli.main``.

Refusals must be one line on stderr and exit code 2 (no traceback).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_backends import make_tiny_checkpoint

from rsnn_deploy.cli import main

pytestmark = pytest.mark.filterwarnings(
    "ignore:invalid value encountered in cast:RuntimeWarning",
    "ignore:This version of `nengo_loihi`:UserWarning",
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("cli"))


@pytest.fixture(scope="module")
def tiny_adaptive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("cli2"), "rec-syn-adapt", "loihi2", epochs=2)


def one_line_error(capsys: pytest.CaptureFixture[str], pattern: str) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith("rsnn-deploy: error: "), err
    import re

    assert re.search(pattern, err), err
    return err


def test_quantize_writes_network_and_reports(tiny, tmp_path, capsys):
    out = tmp_path / "q" / "tiny"
    assert main(["quantize", str(tiny), "--target", "loihi1", "-o", str(out), "--calib", "40"]) == 0
    assert "-> loihi1: 1 core(s)" in capsys.readouterr().out
    for suffix in (".json", ".safetensors", ".report.json", ".report.md"):
        assert Path(f"{out}{suffix}").is_file(), suffix
    from rsnn_deploy.qnet import load_qnet

    qnet = load_qnet(out)
    assert qnet.profile == "loihi1"
    report = json.loads(Path(f"{out}.report.json").read_text())
    assert {"time_constants", "weights", "clipped_weights", "headroom_float_calibration", "placement"} <= set(report)
    md = Path(f"{out}.report.md").read_text()
    assert "| tau_mem | 10 |" in md and "Placement: 1 core(s)" in md


def test_quantize_refusals_are_one_line(tiny_adaptive, tmp_path, capsys):
    assert main(["quantize", str(tiny_adaptive), "--target", "loihi1", "-o", str(tmp_path / "x")]) == 2
    one_line_error(capsys, r"needs adaptation, which loihi1 cannot run")
    assert main(["quantize", str(tmp_path / "missing"), "--target", "loihi1", "-o", str(tmp_path / "y")]) == 2
    one_line_error(capsys, r"missing\.json: file not found")


@pytest.mark.nengo_loihi
def test_compile_reads_back_and_writes_a_summary(tiny, tmp_path, capsys):
    q = tmp_path / "q"
    assert main(["quantize", str(tiny), "--target", "loihi1", "-o", str(q)]) == 0
    capsys.readouterr()
    assert main(["compile", str(q), "--backend", "nengo-loihi", "--steps", "30", "-o", str(tmp_path / "c.json")]) == 0
    out = capsys.readouterr().out
    assert "integers read back: identical" in out and "identical to the emulator" in out
    summary = json.loads((tmp_path / "c.json").read_text())
    assert summary["readback"] == "identical" and summary["parity"]["spikes_equal"]
    assert summary["blocks"][0]["compartments"] == 16
    assert main(["compile", str(q), "--backend", "nengo", "--steps", "20"]) == 0
    assert main(["compile", str(tiny), "--backend", "nengo", "--steps", "20"]) == 0
    assert "spike agreement with torch" in capsys.readouterr().out


def test_compile_refusals_are_one_line(tiny, tiny_adaptive, tmp_path, capsys):
    assert main(["compile", str(tiny), "--backend", "nengo-loihi"]) == 2
    one_line_error(capsys, r"is a float checkpoint; quantize it first")
    q = tmp_path / "q2"
    assert main(["quantize", str(tiny_adaptive), "--target", "loihi2", "-o", str(q)]) == 0
    capsys.readouterr()
    assert main(["compile", str(q), "--backend", "nengo-loihi"]) == 2
    one_line_error(capsys, r"nengo-loihi cannot run .*AdaptiveLIF is silently built as LIF.*use --backend nengo")
    assert main(["compile", str(q), "--backend", "nengo", "--steps", "20"]) == 0


def test_verify_fail_over_exit_codes(tiny, tmp_path, capsys):
    args = ["verify", str(tiny), "--backends", "torch-float,torch-fakequant,emulator", "--quiet", "--no-figures"]
    assert main([*args, "--fail-over", "100", "-o", str(tmp_path / "ok")]) == 0
    out = capsys.readouterr().out
    assert "gap torch-float -> emulator" in out and (tmp_path / "ok" / "report.json").is_file()
    assert main([*args, "--fail-over", "-100", "-o", str(tmp_path / "bad")]) == 2
    one_line_error(capsys, r"verify --fail-over -100: float -> emulator gap .* exceeds -100 pp; report in")
    assert (tmp_path / "bad" / "report.md").is_file()  # the report is written before the verdict


def test_verify_refusals_are_one_line(tiny, tmp_path, capsys):
    assert main(["verify", str(tiny), "--backends", "torch-float,tpu", "-o", str(tmp_path / "r")]) == 2
    one_line_error(capsys, r"unknown backend \(got 'tpu'\)")
    assert main(["verify", str(tiny), "--default", "-o", str(tmp_path / "r")]) == 2
    one_line_error(capsys, r"either CHECKPOINT or --default")


def test_verify_default_model_runs(tmp_path, capsys):
    """The shipped default model (rsnn_deploy/_models) verifies without naming a checkpoint."""
    from rsnn_deploy.verify import default_checkpoint

    assert default_checkpoint().is_file()
    rc = main(["verify", "--default", "--backends", "torch-float,emulator", "--limit", "50", "--quiet",
               "--no-figures", "-o", str(tmp_path / "d")])
    assert rc == 0
    assert "mnist1d-rec-syn-loihi1 on loihi1" in capsys.readouterr().out


def test_model_card(tiny, tmp_path, capsys):
    card = tmp_path / "card.md"
    assert main(["model-card", str(tiny), "--slow-limit", "5", "--quiet", "-o", str(card),
                 "--training-command", "rsnn-deploy train --task npz ..."]) == 0
    text = card.read_text()
    for part in ("## Training", "rsnn-deploy train --task npz ...", "float (torch)", "emulated (loihi1 integers)",
                 "nengo-loihi (target='sim')", "| 32 |", "| 5 |", "## Neurons and time constants", "tau_mem"):
        assert part in text, part


def test_training_command_is_rebuilt_from_the_checkpoint(tiny):
    from rsnn_deploy.checkpoint import load_checkpoint
    from rsnn_deploy.cli.deploy import training_command

    cmd = training_command(load_checkpoint(tiny).meta, "runs/x")
    assert cmd.startswith("rsnn-deploy train --task npz --variant rec-syn --hidden 16")
    assert "--tau-syn 3" in cmd and "--v-floor 0" in cmd and "--qat loihi1" in cmd and cmd.endswith("-o runs/x")


def test_verify_accepts_a_quantized_network(tiny, tmp_path, capsys):
    q = tmp_path / "q"
    assert main(["quantize", str(tiny), "--target", "loihi1", "-o", str(q)]) == 0
    args = ["verify", str(tiny), "--backends", "emulator", "--quiet", "--no-figures"]
    assert main([*args, "-o", str(tmp_path / "a")]) == 0
    assert main([*args, "--qnet", str(q), "-o", str(tmp_path / "b")]) == 0
    a, b = (json.loads((tmp_path / d / "report.json").read_text()) for d in "ab")
    assert a["backends"]["emulator"]["accuracy"] == b["backends"]["emulator"]["accuracy"]
    assert b["qnet"] == str(q) and b["quantization"]["time_constants"] == a["quantization"]["time_constants"]
    capsys.readouterr()
    assert main([*args, "--qnet", str(q), "--target", "loihi2", "-o", str(tmp_path / "c")]) == 2
    one_line_error(capsys, r"--qnet: quantized for 'loihi1', --target is 'loihi2'")
