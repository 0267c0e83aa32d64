"""Tuning on SQLite, end to end and in parts: study, pruning, Pareto front, one-line errors.

Tiny budgets (store-recall with 200 samples, 16 neurons, 2 epochs) keep the file at a
few seconds per test on 2 cores; the PostgreSQL / multi-worker tests are in
``test_tune_postgres.py``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import optuna
import pytest

from rsnn_deploy.cli import main
from rsnn_deploy.errors import UnsupportedError, ValidationError
from rsnn_deploy.tasks import load_task
from rsnn_deploy.tune import (
    StudyLock,
    TuneSettings,
    check_storage_url,
    load_search_space,
    parse_search_space,
    run_worker,
)
from rsnn_deploy.tuning import _study

TASK = ["--task", "store-recall", "--task-param", "n_train=200", "--task-param", "n_test=100"]
TINY = ["--epochs", "2", "--hidden", "16"]


pytestmark = pytest.mark.usefixtures("restore_torch_threads")


@pytest.fixture(scope="module")
def task():
    return load_task("store-recall", n_train=200, n_test=100)


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


# ----------------------------------------------------------------------------- end to end


def test_tiny_study_end_to_end_and_rejoin(tmp_path, capsys):
    out = tmp_path / "study"

    def args(n_trials: int) -> list[str]:
        return ["tune", *TASK, "--variant", "rec-syn", "--trials", str(n_trials), "--study", "e2e", *TINY,
                "--pruner", "none", "-o", str(out)]  # fmt: skip

    def n_trials() -> int:
        return len(optuna.load_study(study_name="e2e", storage=f"sqlite:///{out / 'study.db'}").trials)

    assert main(args(2)) == 0
    stdout = capsys.readouterr().out
    assert stdout.count("[e2e] trial ") == 2  # one summary line per trial
    summary = json.loads((out / "study.json").read_text())
    assert summary["counts"]["complete"] == 2 and summary["counts"]["fail"] == 0
    assert summary["best"]["values"][0] == max(t["values"][0] for t in summary["trials"])
    for n in range(2):
        assert (out / "trials" / f"{n:04d}" / "model.json").is_file()

    study = optuna.load_study(study_name="e2e", storage=f"sqlite:///{out / 'study.db'}")
    t0 = study.trials[0]
    # configs and metrics are user attributes (what optuna-dashboard shows)
    assert t0.user_attrs["model"]["variant"] == "rec-syn" and t0.user_attrs["model"]["n_hidden"] == 16
    assert t0.user_attrs["train"]["epochs"] == 2
    assert {"val_acc", "test_acc", "val_spikes_per_sample", "trial_dir", "worker"} <= set(t0.user_attrs)
    assert set(t0.params) == {"tau_mem_ms", "tau_syn_ms", "threshold", "refractory_steps", "lr", "rate_reg"}
    assert study.user_attrs["rsnn_deploy"]["variant"] == "rec-syn"

    # the same command again joins the study; it is full, so nothing more runs
    assert main(args(2)) == 0
    assert n_trials() == 2
    # a bigger budget continues it
    assert main(args(3)) == 0
    assert n_trials() == 3


def test_joining_with_other_settings_is_refused(tmp_path, capsys):
    out = tmp_path / "s"
    base = ["tune", *TASK, "--trials", "1", "--study", "mix", *TINY, "--pruner", "none", "-o", str(out)]
    assert main([*base, "--variant", "rec"]) == 0
    capsys.readouterr()
    assert main([*base, "--variant", "rec-syn"]) == 2
    line = _one_error_line(capsys)
    assert "--study mix" in line and "variant" in line


def test_multi_objective_writes_pareto_front(tmp_path, task):
    out = tmp_path / "mo"
    s = TuneSettings(
        variant="rec",
        n_trials=3,
        study_name="mo",
        out=out,
        space=load_search_space(),
        epochs=1,
        multi_objective="neurons",
        sampler_seed=1,
    )
    outcome = run_worker(task, s, echo=lambda _: None)
    front = json.loads((out / "pareto.json").read_text())["front"]
    assert front and outcome.pareto == front
    assert all(len(t["values"]) == 2 and t["values"][1] == t["n_hidden"] for t in front)
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {p["params"]["n_hidden"] for p in front} <= set(range(16, 257))


# ----------------------------------------------------------------------------- pruning


def test_pruning_stops_training_after_the_reported_epoch(tmp_path, task, monkeypatch):
    # A pruner that always prunes from the first report: each trial must stop after epoch 1
    # (train's on_epoch raises TrialPruned), be recorded PRUNED, and still count towards N.
    monkeypatch.setattr(_study, "_make_pruner", lambda s, epochs: optuna.pruners.ThresholdPruner(lower=1.5))
    out = tmp_path / "prune"
    s = TuneSettings(
        variant="rec", n_trials=2, study_name="prune", out=out, space=load_search_space(), epochs=4, n_hidden=16
    )
    outcome = run_worker(task, s, echo=lambda _: None)
    assert outcome.counts["pruned"] == 2 and outcome.counts["complete"] == 0
    study = optuna.load_study(study_name="prune", storage=f"sqlite:///{out / 'study.db'}")
    for t in study.trials:
        assert t.state == optuna.trial.TrialState.PRUNED
        assert list(t.intermediate_values) == [0] and t.user_attrs["pruned_at_epoch"] == 0
        lines = (out / "trials" / f"{t.number:04d}" / "metrics.jsonl").read_text().splitlines()
        assert len(lines) == 1  # epochs 2-4 never ran


def test_default_pruner_is_median_with_warmup():
    s = TuneSettings(variant="rec", n_trials=5, study_name="x", out=Path("."), space=load_search_space())
    p = _study._make_pruner(s, epochs=15)
    assert isinstance(p, optuna.pruners.MedianPruner) and p._n_warmup_steps == 5
    multi = TuneSettings(
        variant="rec", n_trials=5, study_name="x", out=Path("."), space=load_search_space(), multi_objective="spikes"
    )
    assert isinstance(_study._make_pruner(multi, epochs=15), optuna.pruners.NopPruner)


# ----------------------------------------------------------------------------- one-line errors


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("not a url", "not a database URL"),
        ("mysql://u:p@localhost/db", "unsupported database"),
        ("sqlite:///:memory:", "in-memory"),
        ("sqlite:////no/such/folder/study.db", "does not exist"),
        ("postgresql+psycopg2://u:secret@127.0.0.1:1/db", "cannot open"),
        ("postgresql://u:secret@127.0.0.1:1/db", "cannot open"),  # plain URL: psycopg2, closed local port
        ("postgresql://u@127.0.0.1:1/db", "cannot open"),
        ("postgresql+asyncpg://u:secret@127.0.0.1:1/db", "driver"),
        ("postgresql://u:secret@127.0.0.1:notaport/db", "not a database URL"),
    ],
)
def test_bad_storage_url_is_one_line(tmp_path, capsys, url, needle):
    rc = main(["tune", *TASK, "--trials", "1", "--study", "x", *TINY, "--storage", url, "-o", str(tmp_path)])
    assert rc == 2
    line = _one_error_line(capsys)
    assert line.startswith("rsnn-deploy: error: --storage") and needle in line
    assert "secret" not in line  # passwords never printed


def _space_file(tmp_path, text: str) -> Path:
    p = tmp_path / "space.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    ("text", "key", "needle"),
    [
        ("[search.tau_mem_ms]\nlow = 0.0\nhigh = 10.0\n", "search.tau_mem_ms.low", "greater than 0"),
        ("[search.tau_mem_ms]\nlow = 10.0\nhigh = 2.0\n", "search.tau_mem_ms", "low must be below high"),
        ("[search.tau_mem]\nlow = 1.0\nhigh = 2.0\n", "search.tau_mem", "unknown parameter"),
        ("[search.lr]\nlow = 0.0\nhigh = 0.1\nlog = true\n", "search.lr.low", "positive with log"),
        ("[search.refractory_steps]\nlow = 0.5\nhigh = 3\n", "search.refractory_steps.low", "integer"),
        ("[search.lr]\nlow = 0.001\nhigh = 0.1\nlogg = true\n", "search.lr.logg", "unknown key"),
        ("[search.surrogate]\nlow = 1\nhigh = 2\n", "search.surrogate", "choices"),
        ("[search.variant]\nchoices = ['rec']\n", "search.variant", "--variant"),
        ("[model]\nn_hiden = 3\n", "model.n_hiden", "unknown ModelConfig field"),
        ("[train]\nepochs = 0\n", "train.epochs", "greater than or equal to 1"),
        ("[searches]\n", "searches", "unknown table"),
        ("format_version = 2\n", "format_version", "unsupported"),
        ("[search.lr\n", "", "not a valid toml"),
    ],
)
def test_bad_search_space_names_file_and_key(tmp_path, text, key, needle):
    path = _space_file(tmp_path, text)
    with pytest.raises(ValidationError) as info:
        load_search_space(path)
    msg = str(info.value)
    assert msg.startswith(str(path)) and key in msg and needle.lower() in msg.lower(), msg
    assert "\n" not in msg


def test_bad_search_space_via_cli_is_one_line(tmp_path, capsys):
    path = _space_file(tmp_path, "[search.tau_syn_ms]\nlow = -1.0\nhigh = 5.0\n")
    rc = main(["tune", *TASK, "--trials", "1", "--study", "x", "--space", str(path), "-o", str(tmp_path / "o")])
    assert rc == 2
    line = _one_error_line(capsys)
    assert str(path) in line and "search.tau_syn_ms.low" in line


def test_default_space_is_valid_and_variant_aware():
    space = load_search_space()
    names = {v: [p.name for p in space.for_variant(v)] for v in ("lif", "rec", "rec-syn", "rec-syn-adapt")}
    assert "tau_syn_ms" not in names["rec"] and "tau_syn_ms" in names["rec-syn"]
    assert "tau_adapt_ms" in names["rec-syn-adapt"] and "adapt_strength" not in names["rec-syn"]
    neurons = [p.name for p in space.for_variant("rec", search_neurons=True)]
    assert neurons[-1] == "n_hidden"
    with pytest.raises(ValidationError, match=r"multi_objective\.n_hidden"):
        parse_search_space({}, "x.toml").for_variant("rec", search_neurons=True)


def test_emulated_objective_without_emulator_is_unsupported(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "rsnn_deploy.verify", None)  # import fails, as before it exists
    with pytest.raises(UnsupportedError, match="emulated"):
        _study.emulated_fn()
    rc = main(
        [
            "tune",
            *TASK,
            "--trials",
            "1",
            "--study",
            "x",
            "--objective",
            "emulated",
            "--target",
            "loihi2",
            "-o",
            str(tmp_path),
        ]
    )
    assert rc == 2
    assert "--objective emulated" in _one_error_line(capsys)
    rc = main(["tune", *TASK, "--trials", "1", "--study", "x", "--objective", "emulated", "-o", str(tmp_path)])
    assert rc == 2
    assert "--target" in _one_error_line(capsys)


def test_emulated_objective_tunes_for_the_target(tmp_path, task):
    out = tmp_path / "emu"
    s = TuneSettings(variant="rec-syn", n_trials=2, study_name="emu", out=out, space=load_search_space(), epochs=1,
                     n_hidden=16, objective="emulated", target="loihi2", sampler_seed=3)  # fmt: skip
    outcome = run_worker(task, s, echo=lambda _: None)
    assert outcome.counts["complete"] == 2
    for t in optuna.load_study(study_name="emu", storage=f"sqlite:///{out / 'study.db'}").trials:
        # loihi2 has no refractory period: pinned to 0, never searched (no wasted, undeployable trials)
        assert "refractory_steps" not in t.params and t.user_attrs["model"]["refractory_steps"] == 0
        assert t.values[0] == t.user_attrs["emulated_val_acc"]


def test_target_that_cannot_run_the_variant_is_refused_up_front(tmp_path, capsys):
    rc = main(["tune", *TASK, "--variant", "rec-adapt", "--trials", "1", "--study", "x", "--target", "loihi1",
               "-o", str(tmp_path)])  # fmt: skip
    assert rc == 2
    line = _one_error_line(capsys)
    assert "loihi1" in line and "adaptation" in line
    assert not (tmp_path / "trials").exists()


def test_storage_helpers(tmp_path):
    assert check_storage_url(f"sqlite:///{tmp_path}/a.db") == "sqlite"
    assert check_storage_url("postgresql+psycopg2://u:p@h/db") == "postgresql"
    assert check_storage_url("postgresql://u:p@h/db") == "postgresql"  # the installed driver (psycopg2) is chosen
    lock = StudyLock(f"sqlite:///{tmp_path}/a.db", "s")
    with lock.hold(), lock.hold():  # re-entrant within a worker
        assert (tmp_path / "a.db").exists()
    assert not (tmp_path / "a.db.lock").exists()  # the database file itself is locked: nothing left behind


# ----------------------------------------------------------------------------- experiments


def test_tau_sweep_is_resumable_and_refuses_mixed_configs(tmp_path, task):
    from rsnn_deploy.experiment import SweepPlan, run_tau_sweep

    def plan(epochs: int) -> SweepPlan:
        out, rep = tmp_path / "sweep", tmp_path / "rep"
        return SweepPlan(tau_syn_ms=[2.0], tau_adapt_ms=[20.0, 700.0], base=None, epochs=epochs, limit=None,
                         n_hidden=8, seeds=1, target=None, out=out, report_dir=rep)  # fmt: skip

    lines: list[str] = []
    first = run_tau_sweep(task, plan(1), echo=lines.append)
    assert [c["tau_adapt_ms"] for c in first["cells"]] == [20.0, 700.0]
    assert (tmp_path / "rep" / "tau_sweep.png").is_file() and (tmp_path / "rep" / "results.json").is_file()
    lines.clear()
    again = run_tau_sweep(task, plan(1), echo=lines.append)  # a rerun reads the checkpoints back
    assert sum("done before" in line for line in lines) == 2
    assert [c["test_acc_mean"] for c in again["cells"]] == [c["test_acc_mean"] for c in first["cells"]]
    with pytest.raises(ValidationError, match="different configuration"):
        run_tau_sweep(task, plan(2), echo=lines.append)
