"""The memory experiments of issue 17: store-recall delay sweep, the published LSNN, deployed columns, spread.

Everything runs for real on tiny budgets (a few samples, one epoch): the sweep's layout and
resumption, the mixed LIF + adaptive population, the profile each arm is emulated on, the
decay-grid value of a time constant, the memoryless floor and the tuning-seed spread.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from rsnn_deploy.config import ModelConfig, validate_config
from rsnn_deploy.errors import UnsupportedError, ValidationError
from rsnn_deploy.experiment import (
    PUBLISHED,
    StepsPlan,
    decay_grid_ms,
    delay_sweep_summary,
    deploy_target,
    lsnn_published_model,
    memoryless_floor,
    run_delay_sweep,
    run_steps,
    tuning_spread,
)
from rsnn_deploy.model import RSNN
from rsnn_deploy.tasks import load_task
from rsnn_deploy.tune import load_search_space

pytestmark = pytest.mark.usefixtures("restore_torch_threads")
SPACE = Path(__file__).resolve().parents[1] / "configs" / "search_space_memory.toml"
TASK = {"n_train": 60, "n_test": 40, "n_values": 4, "n_distractors": 1}


def _plan(tmp: Path, **kw) -> StepsPlan:
    base = dict(
        variants=["lif", "rec-adapt"],
        n_trials=1,
        control_trials=1,
        control=False,
        control_hidden=16,
        control_tau_adapt_ms=700.0,
        epochs=1,
        limit=None,
        n_hidden=8,
        space=load_search_space(SPACE),
        storage=None,
        study_prefix=None,
        sampler_seed=0,
        seeds=1,
        final_epochs=1,
        final_limit=None,
        target="loihi1,loihi2",
        out=tmp / "work",
        report_dir=tmp / "report",
        lsnn_published=True,
    )
    base.update(kw)
    return StepsPlan(**base)  # type: ignore[arg-type]


def _task(delay: int):
    return load_task("store-recall", delay=delay, **TASK)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    lines: list[str] = []
    summary = run_delay_sweep(_task, [8, 4], _plan(tmp), echo=lines.append)
    return tmp, summary, lines


# ----------------------------------------------------------------------------- the mixed population


def _twin(variant: str, ref: RSNN, **kw) -> RSNN:
    m = RSNN(ref.cfg.model_copy(update={"variant": variant, **kw}))
    m.load_state_dict(ref.state_dict(), strict=False)
    return m


def test_mixed_population_only_the_last_n_adaptive_neurons_adapt():
    torch.manual_seed(0)
    x = (torch.rand(3, 60, 10) < 0.4).float()
    cfg = ModelConfig(
        n_in=10, n_hidden=12, n_out=3, variant="rec-adapt", adapt_strength=0.6, tau_adapt_ms=700.0, init_in_gain=3.0
    )
    full = RSNN(cfg)
    with torch.no_grad():
        full.w_rec.zero_()  # uncoupled neurons: each one's spikes depend on its own kind only
    lif = _twin("rec", full)
    mixed = _twin("rec-adapt", full, n_adaptive=5)
    z_full, z_lif, z_mixed = (m.hidden_spikes(x, engine="eager") for m in (full, lif, mixed))
    assert not torch.equal(z_full[..., :7], z_lif[..., :7])  # adaptation changes these neurons when on
    assert torch.equal(z_mixed[..., :7], z_lif[..., :7])
    assert torch.equal(z_mixed[..., 7:], z_full[..., 7:])
    assert torch.equal(_twin("rec-adapt", full, n_adaptive=12).hidden_spikes(x, engine="eager"), z_full)
    assert torch.equal(_twin("rec-adapt", full, n_adaptive=0).hidden_spikes(x, engine="eager"), z_lif)


@pytest.mark.parametrize("kind", ["threshold", "current", "atrlif"])
def test_mixed_population_fast_engine_matches_eager(kind):
    torch.manual_seed(1)
    x = (torch.rand(4, 50, 10) < 0.3).float()
    m = RSNN(
        ModelConfig(
            n_in=10, n_hidden=12, n_out=3, variant="rec-adapt", n_adaptive=5, adapt_kind=kind, adapt_strength=0.5
        )
    )
    assert m.engine_description("auto").startswith("fast BPTT engine")
    assert torch.equal(m.hidden_spikes(x, engine="eager"), m.hidden_spikes(x, engine="fast"))


@pytest.mark.parametrize("update", [{"n_adaptive": 13}, {"variant": "rec", "n_adaptive": 4}])
def test_bad_n_adaptive_is_named(update):
    data = {"n_in": 2, "n_hidden": 12, "n_out": 2, "variant": "rec-adapt", **update}
    with pytest.raises(ValidationError, match=r"^model\.n_adaptive: "):
        validate_config(ModelConfig, data, owner="model")


def test_mixed_population_is_refused_by_the_quantizer():
    from rsnn_deploy.quantize import quantize_model

    m = RSNN(ModelConfig(n_in=4, n_hidden=8, n_out=2, variant="rec-adapt", adapt_kind="atrlif", n_adaptive=3))
    with pytest.raises(UnsupportedError, match="n_adaptive=3 of 8 neurons adapt"):
        quantize_model(m, "loihi2")


def test_published_lsnn_parameters():
    m = lsnn_published_model()
    assert (m["n_hidden"], m["n_adaptive"], m["tau_adapt_ms"], m["tau_mem_ms"]) == (220, 100, 700.0, 20.0)
    # beta (1 - rho) per spike, relative to the 0.01 baseline threshold: 1.8 * 0.0014275 / 0.01
    assert m["adapt_strength"] == pytest.approx(1.8 * -math.expm1(-1 / 700) / 0.01, rel=1e-12)
    assert 0.256 < m["adapt_strength"] < 0.258


# ----------------------------------------------------------------------------- chips, floors


def test_700_ms_on_the_12_bit_decay_grid():
    # retention (4096 - d) / 4096 with d the nearest integer to 4096 (1 - exp(-1/700)) = 5.85 -> 6
    assert decay_grid_ms(700.0, "loihi2") == pytest.approx(-1 / math.log(4090 / 4096), rel=1e-12)
    assert 682 < decay_grid_ms(700.0, "loihi2") < 683


def test_each_arm_is_emulated_on_the_first_profile_that_runs_it():
    both = ["loihi1", "loihi2"]
    assert deploy_target(both, {"variant": "rec-syn"}) == "loihi1"
    assert deploy_target(both, {"variant": "rec-syn-adapt", "adapt_kind": "atrlif"}) == "loihi2"
    assert deploy_target(both, {"variant": "rec-adapt", "adapt_kind": "threshold"}) == "loihi2"  # refused there
    assert deploy_target(["loihi2"], {"variant": "rec"}) == "loihi2"
    assert deploy_target([], {"variant": "rec"}) is None


def test_memoryless_floor_is_the_majority_class_share():
    task = load_task("store-recall", n_train=10, n_test=97, n_values=3)
    _, counts = np.unique(task.test.labels, return_counts=True)
    floor = memoryless_floor(task)
    assert floor["test_acc"] == counts.max() / 97 and floor["chance"] == 1 / 3


# ----------------------------------------------------------------------------- the sweep


def test_delay_sweep_writes_one_tree_per_delay_and_a_combined_report(sweep):
    tmp, summary, lines = sweep
    assert summary["done"] == [4, 8] and summary["pending"] == []
    for d in (4, 8):
        res = json.loads((tmp / "report" / f"delay{d}" / "results.json").read_text())
        assert res["task_params"]["delay"] == d
        assert (tmp / "work" / f"delay{d}" / "tune" / "lif" / "study.db").is_file()
        arms = res["arms"]
        assert arms["lif"]["emulated_targets"] == ["loihi1"] and arms["lif"]["emulated_n"] == 1
        assert arms["rec-adapt"]["emulated_targets"] == ["loihi2"]
        assert arms["rec-adapt"]["model"]["adapt_kind"] == "atrlif"
        assert arms[PUBLISHED]["n_adaptive"] == 100 and arms[PUBLISHED]["tuned_val_acc"] is None
        assert arms[PUBLISHED]["emulated_test_acc_mean"] is None and arms[PUBLISHED]["emulated_notes"]
        assert arms[PUBLISHED]["tau_adapt_grid_ms"]["loihi2"] == pytest.approx(decay_grid_ms(700.0, "loihi2"))
        for a in arms.values():
            assert a["wall_s"]["retrain"] > 0
        assert arms["lif"]["wall_s"]["tuning"] > 0
        assert res["memoryless_floor"] == memoryless_floor(_task(d))
    md = (tmp / "report" / "delay_sweep.md").read_text()
    assert "| memoryless floor |" in md and "delay 4 | delay 8" in md
    assert (tmp / "report" / "delay_sweep.png").read_bytes()[:4] == b"\x89PNG"
    assert any("[lif] seed 0: test" in line and "trained" in line for line in lines)


def test_delay_sweep_rerun_reads_everything_back(sweep):
    tmp, summary, _ = sweep
    lines: list[str] = []
    again = run_delay_sweep(_task, [4, 8], _plan(tmp), echo=lines.append)
    assert again["arms"] == summary["arms"]
    assert not any("(trained" in line or "trial 0 complete" in line for line in lines)
    assert sum("done before" in line for line in lines) == 2 * 3  # 2 delays x 3 arms x 1 seed


def test_partial_sweep_lists_what_is_pending(sweep):
    tmp, _, _ = sweep
    res = json.loads((tmp / "report" / "delay4" / "results.json").read_text())
    summary = delay_sweep_summary({4: res}, [4, 8, 12])
    assert summary["done"] == [4] and summary["pending"] == [8, 12]


def test_bad_delays_are_refused(tmp_path):
    with pytest.raises(ValidationError, match="--delays"):
        run_delay_sweep(_task, [4, 4], _plan(tmp_path))


def test_a_subset_rerun_keeps_the_other_arms_of_the_report(tmp_path):
    """--variants into a report folder that holds other arms of the same budget adds to it, drops nothing."""
    first = run_steps(_task(4), _plan(tmp_path, variants=["lif"], lsnn_published=False, target=None),
                      echo=lambda _: None)
    lines: list[str] = []
    both = run_steps(_task(4), _plan(tmp_path, variants=["rec"], lsnn_published=False, target=None),
                     echo=lines.append)
    assert list(both["arms"]) == ["lif", "rec"]
    assert both["arms"]["lif"] == first["arms"]["lif"]  # its provenance too: the process that built it
    for a in both["arms"].values():
        prov = a["provenance"]
        assert prov["cpu"]["model"] and prov["threads"] >= 1 and "load_average_after" in prov
    assert "recurrence (rec - lif)" in both["comparisons"]
    assert any("keeping lif from the earlier run" in line for line in lines)
    on_disk = json.loads((tmp_path / "report" / "results.json").read_text())
    assert list(on_disk["arms"]) == ["lif", "rec"]


def test_a_report_of_another_budget_is_refused_before_tuning(tmp_path):
    run_steps(_task(4), _plan(tmp_path, variants=["lif"], lsnn_published=False, target=None), echo=lambda _: None)
    before = (tmp_path / "report" / "results.json").read_bytes()
    with pytest.raises(ValidationError, match=r"--report-dir: .*another task, target or budget"):
        run_steps(_task(4), _plan(tmp_path, variants=["rec"], lsnn_published=False, target=None, seeds=2),
                  echo=lambda _: None)
    assert (tmp_path / "report" / "results.json").read_bytes() == before
    assert not (tmp_path / "work" / "tune" / "rec").exists()


# ----------------------------------------------------------------------------- tuning-seed spread


def test_tuning_spread_between_sampler_seeds(tmp_path):
    docs = {}
    for seed in (0, 1):
        plan = _plan(tmp_path / f"s{seed}", variants=["rec"], sampler_seed=seed, target=None)
        docs[f"seed {seed}"] = run_steps(_task(4), plan, echo=lambda _: None)
    spread = tuning_spread(docs)
    means = [docs[k]["arms"]["rec"]["test_acc_mean"] for k in docs]
    assert spread["arms"]["rec"]["spread"] == pytest.approx(abs(means[0] - means[1]))
    assert PUBLISHED not in spread["arms"]  # not tuned: no tuning spread
    other = json.loads(json.dumps(docs["seed 1"]))
    other["budget"]["trials"] = 2
    with pytest.raises(ValidationError, match="another task or budget"):
        tuning_spread({"a": docs["seed 0"], "b": other})


def test_cli_delays_need_store_recall(tmp_path, capsys):
    from rsnn_deploy.cli import main

    rc = main(["experiment", "steps", "--task", "mnist1d", "--delays", "50", "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--delays: only for --task store-recall" in err[0]


def test_cli_spread_refuses_a_file_that_is_not_a_steps_result(tmp_path, capsys):
    from rsnn_deploy.cli import main

    bad, other = tmp_path / "bad.json", tmp_path / "other.json"
    bad.write_text(json.dumps({"experiment": "tau-sweep"}))
    other.write_text(json.dumps({"experiment": "tau-sweep"}))
    rc = main(["experiment", "spread", str(bad), str(other), "--report-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "is not a results.json of `experiment steps`" in err[0]
    assert not (tmp_path / "r").exists()
