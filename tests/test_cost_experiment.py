"""Synaptic operations as a tuning objective and in ``experiment steps`` (accuracy vs ops, Pareto front)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from rsnn_deploy.experiment import StepsPlan, pareto_front, run_steps
from rsnn_deploy.tasks import load_task
from rsnn_deploy.tune import TuneSettings, load_search_space, run_worker

pytestmark = pytest.mark.usefixtures("restore_torch_threads")


@pytest.fixture(scope="module")
def task():
    return load_task("store-recall", n_train=200, n_test=100)


def _ops_by_hand(checkpoint: str, target: str, split: str) -> float:
    """Input + recurrent synaptic events per sample, straight from the emulator's spikes and the integers."""
    from rsnn_deploy.checkpoint import load_checkpoint
    from rsnn_deploy.emulator import run as emulate
    from rsnn_deploy.verify import evaluation_split, quantize_checkpoint, task_of

    ckpt = load_checkpoint(checkpoint)
    t = task_of(ckpt)
    data = evaluation_split(t, ckpt.meta, split)
    qnet, _ = quantize_checkpoint(ckpt, target, 200, t)
    x = data.spikes(np.arange(len(data))).astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        z = emulate(qnet, x, target).spikes.astype(np.float64)
    ops = np.einsum("btc,hc->b", x, (qnet.w_in != 0).astype(np.float64))
    if qnet.w_rec is not None:
        ops += np.einsum("bth,kh->b", z[:, :-1], (qnet.w_rec != 0).astype(np.float64))
    return float(ops.mean())


def test_pareto_front_keeps_the_non_dominated():
    pts = {"a": (0.9, 100.0), "b": (0.8, 50.0), "c": (0.7, 80.0), "d": (0.9, 120.0), "e": (0.95, 200.0)}
    assert pareto_front(pts) == ["b", "a", "e"]


def test_tune_multi_objective_ops_counts_on_the_target(tmp_path, task):
    out = tmp_path / "mo"
    s = TuneSettings(variant="rec", n_trials=2, study_name="mo-ops", out=out, space=load_search_space(), epochs=1,
                     n_hidden=16, multi_objective="ops", target="loihi1", sampler_seed=1)
    outcome = run_worker(task, s, echo=lambda _: None)
    front = json.loads((out / "pareto.json").read_text())
    assert front["objectives"][1] == "synaptic ops per sample (val, on the chip)"
    assert front["front"] and outcome.pareto == front["front"]
    for t in front["front"]:
        ckpt = Path(t["trial_dir"]) / "model"
        assert t["values"][1] == pytest.approx(_ops_by_hand(str(ckpt), "loihi1", "val"), rel=1e-12)
        assert t["values"][1] == t["val_synaptic_ops_per_sample"]


def test_steps_tables_accuracy_against_synaptic_ops(tmp_path, task):
    plan = StepsPlan(variants=["rec", "rec-syn"], n_trials=1, control_trials=1, control=False, control_hidden=16,
                     control_tau_adapt_ms=100.0, epochs=1, limit=None, n_hidden=16, space=load_search_space(),
                     storage=None, study_prefix=None, sampler_seed=0, seeds=1, final_epochs=1, final_limit=None,
                     target="loihi1", out=tmp_path / "work", report_dir=tmp_path / "report")
    results = run_steps(task, plan, echo=lambda _: None)
    arms = results["arms"]
    for a in arms.values():
        run = a["runs"][0]
        assert run["synaptic_ops_source"] == "emulator (loihi1)"
        assert a["synaptic_ops_per_sample_mean"] == pytest.approx(
            _ops_by_hand(run["checkpoint"], "loihi1", "test"), rel=1e-12)
    points = {n: (a["test_acc_mean"], a["synaptic_ops_per_sample_mean"]) for n, a in arms.items()}
    assert results["pareto_accuracy_vs_synaptic_ops"] == pareto_front(points)
    md = (tmp_path / "report" / "results.md").read_text()
    assert "synaptic ops / sample (mean ± std)" in md and "emulator (loihi1)" in md
    assert (tmp_path / "report" / "steps_pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a rerun reads the cached counts back
    again = run_steps(task, plan, echo=lambda _: None)
    assert again["arms"]["rec"]["synaptic_ops_per_sample_mean"] == arms["rec"]["synaptic_ops_per_sample_mean"]
