"""Training end to end: beats chance, writes checkpoints and metrics, resumes exactly, protects outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rsnn_deploy.checkpoint import load_checkpoint
from rsnn_deploy.cli import main
from rsnn_deploy.config import TrainConfig
from rsnn_deploy.errors import ValidationError
from rsnn_deploy.tasks import load_task
from rsnn_deploy.train import model_config_for, train


@pytest.fixture(scope="module")
def task():
    return load_task("mnist1d")


def _cfgs(task, epochs=3, **train_kw):
    model_cfg = model_config_for(task, variant="rec-syn", n_hidden=48, tau_syn_ms=2.0)
    train_kw = {"limit": 600, **train_kw}
    train_cfg = TrainConfig(epochs=epochs, batch_size=50, lr=5e-3, seed=3, **train_kw)
    return model_cfg, train_cfg


def test_short_run_beats_chance_and_writes_everything(task, tmp_path):
    model_cfg, train_cfg = _cfgs(task, epochs=6, limit=1000)
    res = train(task, model_cfg, train_cfg, tmp_path / "run", progress=False)
    assert res.metrics["test_acc"] > 0.3  # chance is 0.1
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1, 2, 3, 4, 5]
    assert {"train_loss", "train_acc", "train_rate", "val_acc", "lr"} <= rows[0].keys()
    ck = load_checkpoint(res.checkpoint)
    assert ck.metrics["test_acc"] == res.metrics["test_acc"]
    assert ck.meta["task"]["name"] == "mnist1d" and ck.meta["train"]["seed"] == 3
    assert ck.metrics["val_acc"] == max(r["val_acc"] for r in rows)


def test_resume_after_interruption_gives_the_same_model(task, tmp_path):
    torch.set_num_threads(1)
    model_cfg, train_cfg = _cfgs(task, epochs=3)
    full = train(task, model_cfg, train_cfg, tmp_path / "full", progress=False)

    class Stop(Exception):
        pass

    def stop_after_first(epoch, row):
        if epoch == 1:
            raise Stop

    with pytest.raises(Stop):
        train(task, model_cfg, train_cfg, tmp_path / "cut", progress=False, on_epoch=stop_after_first)
    resumed = train(task, model_cfg, train_cfg, tmp_path / "cut", resume=True, progress=False)
    assert [h["val_acc"] for h in resumed.history] == [h["val_acc"] for h in full.history]
    a = load_checkpoint(full.checkpoint).model.state_dict()
    b = load_checkpoint(resumed.checkpoint).model.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    lines = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [0, 1, 2]


def test_existing_run_is_not_overwritten(task, tmp_path):
    model_cfg, train_cfg = _cfgs(task, epochs=1)
    train(task, model_cfg, train_cfg, tmp_path / "r", progress=False)
    before = (tmp_path / "r" / "model.safetensors").read_bytes()
    with pytest.raises(ValidationError, match=r"--resume .* --overwrite"):
        train(task, model_cfg, train_cfg, tmp_path / "r", progress=False)
    assert (tmp_path / "r" / "model.safetensors").read_bytes() == before
    with pytest.raises(ValidationError, match=r"no resume\.json"):
        train(task, model_cfg, train_cfg, tmp_path / "empty", resume=True, progress=False)


def test_qat_training_runs_and_records_the_profile(task, tmp_path):
    model_cfg = model_config_for(task, variant="rec-syn", n_hidden=32, v_floor=0.0)
    train_cfg = TrainConfig(epochs=1, batch_size=50, limit=200, qat_profile="loihi1")
    res = train(task, model_cfg, train_cfg, tmp_path / "q", progress=False)
    assert load_checkpoint(res.checkpoint).meta["train"]["qat_profile"] == "loihi1"


def test_cli_train_and_evaluate_on_a_users_npz(tmp_path, capsys):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 240)
    x = (rng.random((240, 20, 6)) < 0.05).astype(np.uint8)
    x[y == 1, :10, :3] |= (rng.random(((y == 1).sum(), 10, 3)) < 0.5).astype(np.uint8)  # class 1: early burst
    np.savez(tmp_path / "d.npz", x=x, y=y)
    out = tmp_path / "run"
    code = main(["train", "--task", "npz", "--data", str(tmp_path / "d.npz"), "--hidden", "16", "--epochs", "6",
                 "--batch-size", "20", "--quiet", "-o", str(out)])
    assert code == 0
    assert "test" in capsys.readouterr().out
    code = main(["evaluate", str(out / "model.json"), "--json"])
    metrics = json.loads(capsys.readouterr().out)
    assert code == 0 and metrics["acc"] > 0.7


def test_cli_bad_flags_are_one_line_errors(tmp_path, capsys):
    code = main(["train", "--task", "mnist1d", "--tau-mem", "-5", "--quiet", "-o", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and "model.tau_mem_ms" in err and err.count("\n") == 1
    code = main(["train", "--task", "nope", "--quiet", "-o", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and "unknown task" in err
    code = main(["train", "--device", "cuda:0", "--quiet", "-o", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and "--device" in err


def test_config_file_is_used_and_flags_override_it(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[model]\nvariant = "rec-adapt"\nn_hidden = 12\ntau_mem_ms = 7.0\n'
                   '[train]\nepochs = 1\nlimit = 100\n')
    out = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--tau-mem", "9", "--quiet", "-o", str(out)]) == 0
    meta = load_checkpoint(out / "model.json").meta
    got = (meta["model"]["variant"], meta["model"]["n_hidden"], meta["model"]["tau_mem_ms"])
    assert got == ("rec-adapt", 12, 9.0)
    cfg.write_text("[model]\ntau_mme_ms = 7.0\n")
    assert main(["train", "--config", str(cfg), "--quiet", "-o", str(tmp_path / "r2")]) == 2


def test_config_file_task_table(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[task]\nname = "store-recall"\nn_train = 40\nn_test = 10\ndelay = 20\n'
                   '[model]\nn_hidden = 8\n[train]\nepochs = 1\n')
    out = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--quiet", "-o", str(out)]) == 0
    task = load_checkpoint(out / "model.json").meta["task"]
    assert task["name"] == "store-recall" and task["params"]["delay"] == 20 and task["params"]["n_train"] == 40
