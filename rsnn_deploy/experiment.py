"""The paper's two experiments: the step-by-step variant study and the time-constant sweep.

Zeng et al. (ICONS 2022) add one mechanism at a time (recurrence, then a current-based
synapse, then spike-frequency adaptation) and tune the neuron parameters anew at every
step, so that each variant is compared at its best. They find that the synapse helps
more than adaptation, and that with both, small time constants and few neurons match an
LSNN (adaptation with tau_adapt = 700 ms, more neurons).

``run_steps``: for each of the five variants (and an LSNN-style control: ``rec-adapt``
with ``tau_adapt = 700 ms`` and 220 neurons, its other parameters tuned the same way),
tune with Optuna, then retrain the best configuration with several seeds and report
mean +- std of test accuracy. Selection uses validation accuracy only; the test split is
touched once per retrained seed.

``run_tau_sweep``: ``rec-syn-adapt`` over a grid of ``tau_syn x tau_adapt``, everything
else fixed (by default the tuned settings of a ``steps`` run), several seeds per cell.

Both are resumable: a finished run (a checkpoint with a test accuracy and the same
configuration) is read back, an interrupted one resumes from its last epoch, and the
studies continue where they stopped. Layout of ``OUT``::

    tune/VARIANT/                   study.db, study.json, trials/NNNN (steps)
    final/VARIANT/trialNNNN/seedS   model.{safetensors,json}, metrics.jsonl; NNNN = best trial (steps)
    cells/synX_adaptY/seedS         (tau sweep)

and of the report folder: ``results.json`` (all numbers), ``results.md`` (tables), one PNG.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from rsnn_deploy.config import VARIANTS, ModelConfig, TrainConfig, validate_config
from rsnn_deploy.errors import RsnnError, UnsupportedError, ValidationError
from rsnn_deploy.io import atomic_path, write_json_atomic, write_text_atomic

Echo = Callable[[str], None]
CONTROL = "lsnn-control"
PUBLISHED = "lsnn-published"
_TASK_FIELDS = ("n_in", "n_out", "readout_mode")


# ----------------------------------------------------------------------------- shared helpers


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1; 0 for a single value)."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def _emulated_or_none(target: str | None, echo: Echo) -> Callable[..., float] | None:
    """The emulator's accuracy function when a target is given and it exists; says so when it does not."""
    if not target:
        return None
    from rsnn_deploy.hardware import load_profile
    from rsnn_deploy.tune import emulated_fn

    for t in target_list(target):
        load_profile(t)
    try:
        return emulated_fn()
    except RsnnError as err:
        echo(f"note: no emulated accuracy for --target {target}: {err}")
        return None


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return {k: v for k, v in a.items() if k != "limit" or v is not None} == {
        k: v for k, v in b.items() if k != "limit" or v is not None
    }


def train_or_load(
    task: Any, model: dict[str, Any], train: dict[str, Any], run_dir: Path, echo: Echo, label: str
) -> dict[str, Any]:
    """Train one configuration into ``run_dir``, or read it back if it finished before.

    A folder holding a different configuration is an error (never silently mixed), an
    interrupted run resumes from its last finished epoch.
    """
    from rsnn_deploy.checkpoint import checkpoint_paths, read_json
    from rsnn_deploy.train import model_config_for
    from rsnn_deploy.train import train as run_training

    model_cfg = model_config_for(task, **{k: v for k, v in model.items() if k not in _TASK_FIELDS})
    train_cfg = validate_config(TrainConfig, train, owner="train")
    best_json = checkpoint_paths(run_dir / "model")[1]
    resume_json = checkpoint_paths(run_dir / "resume")[1]
    for doc_path in (best_json, resume_json):
        if doc_path.is_file():
            doc = read_json(doc_path)
            if not _same_model(doc.get("model"), model_cfg) or not _same(doc.get("train", {}), train_cfg.model_dump()):
                raise ValidationError(
                    f"{run_dir}: holds a run with a different configuration; use another -o or delete the folder"
                )
    if best_json.is_file():
        doc = read_json(best_json)
        if "test_acc" in doc.get("metrics", {}) and not (
            resume_json.is_file() and read_json(resume_json)["epoch"] + 1 < train_cfg.epochs
        ):
            echo(f"{label}: done before, test {doc['metrics']['test_acc']:.4f} ({run_dir})")
            return {**_run_metrics(doc["metrics"], model_cfg, task, best_json), "wall_s": _wall_s(run_dir)}
    resume = resume_json.is_file()
    t0 = time.perf_counter()
    result = run_training(task, model_cfg, train_cfg, run_dir, resume=resume, overwrite=not resume, progress=False)
    wall = _wall_s(run_dir, add=time.perf_counter() - t0)
    echo(
        f"{label}: test {result.metrics['test_acc']:.4f} val {result.metrics['val_acc']:.4f} "
        f"({'resumed' if resume else 'trained'}, {len(result.history)} epochs, {wall:.0f} s) -> {run_dir}"
    )
    return {**_run_metrics(result.metrics, model_cfg, task, result.checkpoint), "wall_s": wall}


def _same_model(recorded: Any, model_cfg: ModelConfig) -> bool:
    """Whether a checkpoint's recorded model is ``model_cfg``, fields added since then taking their defaults."""
    if not isinstance(recorded, dict):
        return False
    try:
        return bool(validate_config(ModelConfig, recorded, owner="model").model_dump() == model_cfg.model_dump())
    except ValidationError:
        return False


def _wall_s(run_dir: Path, add: float | None = None) -> float | None:
    """Training wall time of ``run_dir`` in seconds, summed over the sittings that trained it (``wall_s.json``).

    None for a run trained before this was recorded (its time is unknown, not zero).
    """
    from rsnn_deploy.checkpoint import read_json

    path = run_dir / "wall_s.json"
    known = float(read_json(path)["seconds"]) if path.is_file() else None
    if add is None:
        return known
    total = (known or 0.0) + add
    write_json_atomic(path, {"seconds": total})
    return total


def _run_metrics(m: dict[str, Any], model_cfg: ModelConfig, task: Any, checkpoint: Path) -> dict[str, Any]:
    return {
        "test_acc": m["test_acc"],
        "val_acc": m["val_acc"],
        "test_rate": m["test_rate"],
        "test_spikes_per_sample": m["test_rate"] * model_cfg.n_hidden * task.n_steps,
        "best_epoch": m["best_epoch"],
        "checkpoint": str(checkpoint),
    }


def _emulated_test(
    fn: Callable[..., float] | None, target: str | None, run: dict[str, Any], run_dir: Path, echo: Echo
) -> float | None:
    """Emulated test accuracy of a run, cached in ``run_dir`` so that a rerun does not repeat it.

    A model the profile cannot run (e.g. a refractory period on loihi2) gets None and a
    note in ``run["emulated_note"]``: the float result stands, the gap is reported, not hidden.
    """
    if fn is None or not target:
        return None
    from rsnn_deploy.checkpoint import read_json

    cache = run_dir / f"emulated_{Path(target).stem}.json"
    if cache.is_file():
        doc = read_json(cache)
        if doc.get("note"):
            run["emulated_note"] = doc["note"]
        return None if doc["test_acc"] is None else float(doc["test_acc"])
    try:
        acc: float | None = float(fn(run["checkpoint"], target, split="test"))
        note = None
    except UnsupportedError as err:
        acc, note = None, str(err)
        run["emulated_note"] = note
        echo(f"note: {run_dir}: not run on {target}: {note}")
    write_json_atomic(cache, {"target": target, "split": "test", "test_acc": acc, "note": note})
    return acc


def _synaptic_ops_test(target: str | None, run: dict[str, Any], run_dir: Path, echo: Echo) -> tuple[float, str]:
    """Synaptic events per test sample on the chip (input + recurrent, :mod:`rsnn_deploy.cost`), cached.

    On ``target``'s integer emulator when the run can be quantized for it, else the float model's.
    """
    from rsnn_deploy.checkpoint import read_json
    from rsnn_deploy.cost import synaptic_ops_per_sample

    key = Path(target).stem if target else "float"
    cache = run_dir / f"synops_{key}.json"
    if cache.is_file():
        doc = read_json(cache)
        return float(doc["synaptic_ops_per_sample"]), str(doc["source"])
    source = f"emulator ({target})" if target and not run.get("emulated_note") else "float model"
    try:
        ops = synaptic_ops_per_sample(run["checkpoint"], target if source != "float model" else None, split="test")
    except UnsupportedError as err:
        echo(f"note: {run_dir}: synaptic operations from the float model ({err})")
        source = "float model"
        ops = synaptic_ops_per_sample(run["checkpoint"], None, split="test")
    write_json_atomic(cache, {"target": target, "split": "test", "synaptic_ops_per_sample": ops, "source": source})
    return ops, source


def pareto_front(points: dict[str, tuple[float, float]]) -> list[str]:
    """Names not dominated in (higher accuracy, fewer operations): ``points[name] = (accuracy, ops)``."""
    front = []
    for a, (acc_a, ops_a) in points.items():
        dominated = any(
            acc_b >= acc_a and ops_b <= ops_a and (acc_b > acc_a or ops_b < ops_a)
            for b, (acc_b, ops_b) in points.items() if b != a
        )
        if not dominated:
            front.append(a)
    return sorted(front, key=lambda n: points[n][1])


def _save_png(fig: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)


def _pct(mean: float, std: float, n: int) -> str:
    return f"{100 * mean:.1f} ± {100 * std:.1f} (n={n})" if n else "n/a"


# ----------------------------------------------------------------------------- steps


@dataclass(frozen=True)
class StepsPlan:
    """Budgets and options of ``experiment steps`` (see the CLI's help for each)."""

    variants: list[str]
    n_trials: int
    control_trials: int
    control: bool
    control_hidden: int
    control_tau_adapt_ms: float
    epochs: int | None
    limit: int | None
    n_hidden: int | None
    space: Any
    storage: str | None
    study_prefix: str | None
    sampler_seed: int | None
    seeds: int
    final_epochs: int | None
    final_limit: int | None
    target: str | None
    out: Path
    report_dir: Path
    heartbeat_interval: int = 10
    grace_period: int | None = None
    max_retry: int = 3
    lsnn_published: bool = False


def _arms(plan: StepsPlan) -> list[tuple[str, str, dict[str, Any], int]]:
    arms: list[tuple[str, str, dict[str, Any], int]] = [(v, v, {}, plan.n_trials) for v in plan.variants]
    if plan.control:
        pin = {"tau_adapt_ms": plan.control_tau_adapt_ms, "n_hidden": plan.control_hidden}
        arms.append((CONTROL, "rec-adapt", pin, plan.control_trials))
    return arms


# Bellec et al. 2018 (NeurIPS), LSNN on sequential MNIST, as the authors' code sets it
# (IGITUGraz/LSNN-official, bin/tutorial_sequential_mnist_with_LSNN.py): 120 regular + 100 adaptive
# neurons, tau_a = 700 ms, beta = 1.8, baseline threshold 0.01, membrane and readout tau 20 ms,
# 5 refractory steps, Adam lr 0.01, firing-rate target 10 Hz. Their threshold is thr + beta * b with
# b <- rho b + (1 - rho) z (rho = exp(-dt/tau_a)): each spike raises it by beta (1 - rho); relative to
# the baseline that is beta (1 - rho) / thr, which is adapt_strength here with threshold 1.
LSNN_PUBLISHED: dict[str, float] = {
    "n_regular": 120, "n_adaptive": 100, "tau_a_ms": 700.0, "beta": 1.8, "thr": 0.01, "tau_m_ms": 20.0,
    "n_ref": 5, "lr": 1e-2, "rate_hz": 10.0,
}


def lsnn_published_model() -> dict[str, Any]:
    """Model fields of the published LSNN (threshold 1: adapt_strength is relative to the baseline)."""
    p = LSNN_PUBLISHED
    rho = math.exp(-1.0 / p["tau_a_ms"])
    return {
        "variant": "rec-adapt",
        "n_hidden": int(p["n_regular"] + p["n_adaptive"]),
        "n_adaptive": int(p["n_adaptive"]),
        "adapt_kind": "threshold",
        "tau_mem_ms": p["tau_m_ms"],
        "tau_out_ms": p["tau_m_ms"],
        "tau_adapt_ms": p["tau_a_ms"],
        "adapt_strength": p["beta"] * (1.0 - rho) / p["thr"],
        "threshold": 1.0,
        "refractory_steps": int(p["n_ref"]),
    }


def _published_best(plan: StepsPlan) -> dict[str, Any]:
    """The published LSNN as a 'best trial' (nothing tuned): the paper's settings.

    The surrogate and the readout's time constant come from the space file when it sets them, so
    that every arm of one experiment is read out the same way (the readout is not under test).
    """
    fixed = {k: v for k, v in plan.space.fixed_model.items() if k in ("surrogate", "surrogate_slope", "tau_out_ms")}
    train = {**plan.space.fixed_train, "lr": LSNN_PUBLISHED["lr"], "target_rate": LSNN_PUBLISHED["rate_hz"] / 1000}
    if plan.epochs is not None:
        train["epochs"] = plan.epochs
    return {"number": None, "values": [None], "params": {}, "model": {**lsnn_published_model(), **fixed},
            "train": train}


def target_list(target: str | None) -> list[str]:
    """``--target`` as a list: one profile, or several ("loihi1,loihi2": each arm on the first that runs it)."""
    return [t.strip() for t in (target or "").split(",") if t.strip()]


def deploy_target(targets: list[str], model: dict[str, Any]) -> str | None:
    """The profile an arm is emulated on: the first of ``targets`` whose features fit its adaptation.

    With loihi1,loihi2 non-adaptive arms run on loihi1 (nengo-loihi), adaptive ones on loihi2
    (Lava's ATRLIF). None fits: the last one, whose refusal is then reported as the reason.
    """
    if len(targets) <= 1:
        return targets[0] if targets else None
    from rsnn_deploy.hardware import load_profile

    adaptive = "adapt" in str(model.get("variant", ""))
    kind = model.get("adapt_kind", "threshold")
    for t in targets:
        feats = load_profile(t).features.adaptation
        if (kind in feats) if adaptive else True:
            return t
    return targets[-1]


def decay_grid_ms(tau_ms: float, target: str, offset: str = "theta") -> float:
    """The time constant ``target``'s decay register holds for ``tau_ms`` (12-bit decays: the nearest step)."""
    from rsnn_deploy.hardware import load_profile
    from rsnn_deploy.quantize import decay_to_int, effective_tau_ms, retention_of

    prof = load_profile(target)
    off = int(getattr(prof.decay, f"{offset}_offset"))
    dt = prof.dt_ms or 1.0
    d = decay_to_int(math.exp(-dt / tau_ms), prof, off)
    return float(effective_tau_ms(retention_of(d, prof, off), dt))


def memoryless_floor(task: Any) -> dict[str, Any]:
    """The best test accuracy without using the input: the majority class's share of the test labels.

    On store-recall this is what a network without memory can score: at the readout the input
    holds noise and the recall cue, both independent of the stored value.
    """
    labels = np.asarray(task.test.labels)
    counts = np.bincount(labels, minlength=task.n_classes)
    return {"test_acc": float(counts.max() / counts.sum()), "kind": "majority class of the test labels",
            "chance": 1.0 / task.n_classes}


def _study_wall_s(outcome: Any) -> float:
    """Seconds spent in the study's trials (finished, pruned and failed), over every sitting and worker."""
    import optuna

    study = optuna.load_study(study_name=outcome.study_name, storage=outcome.storage)
    return float(sum(t.duration.total_seconds() for t in study.get_trials(deepcopy=False) if t.duration))


def run_steps(task: Any, plan: StepsPlan, echo: Echo = print) -> dict[str, Any]:
    """Tune every arm, retrain its best configuration with ``plan.seeds`` seeds, write the report."""
    from rsnn_deploy.tune import TuneSettings, check_settings, run_worker

    if plan.seeds < 1:
        raise ValidationError(f"--seeds: must be at least 1 (got {plan.seeds})")
    if not plan.variants and not plan.control and not plan.lsnn_published:
        raise ValidationError("--variants: nothing to run (no variant and --no-control)")
    from rsnn_deploy.provenance import collect, finish

    budget = _steps_budget(plan)
    earlier_steps_report(plan.report_dir, task, plan.target, budget)  # refused now, not after the tuning
    machine = collect(argv=["rsnn-deploy", *sys.argv[1:]])
    emulate = _emulated_or_none(plan.target, echo)
    targets = target_list(plan.target)
    prefix = plan.study_prefix or f"steps-{task.name}"
    arms: dict[str, Any] = {}
    for name, variant, pin, n_trials in _arms(plan):
        settings = TuneSettings(
            variant=variant,
            n_trials=n_trials,
            study_name=f"{prefix}-{name}",
            out=plan.out / "tune" / name,
            space=plan.space,
            storage=plan.storage,
            epochs=plan.epochs,
            limit=plan.limit,
            n_hidden=None if name == CONTROL else plan.n_hidden,
            pin_model=pin,
            sampler_seed=plan.sampler_seed,
            heartbeat_interval=plan.heartbeat_interval,
            grace_period=plan.grace_period,
            max_retry=plan.max_retry,
        )
        check_settings(settings)
        echo(f"== {name}: tuning ({n_trials} trials)")
        outcome = run_worker(task, settings, echo=echo)
        if outcome.best is None:
            raise RsnnError(f"{name}: no trial of study {settings.study_name} completed; see {outcome.summary_path}")
        best = outcome.best
        runs = _retrain(task, plan, name, best, f"trial{best['number']:04d}", emulate, targets, echo)
        arms[name] = _arm_summary(name, variant, best, outcome.counts, _study_wall_s(outcome), runs)
    if plan.lsnn_published:
        echo(f"== {PUBLISHED}: not tuned (Bellec et al. 2018's parameters)")
        best = _published_best(plan)
        runs = _retrain(task, plan, PUBLISHED, best, "published", emulate, targets, echo)
        arms[PUBLISHED] = _arm_summary(PUBLISHED, "rec-adapt", best, {"complete": 0, "pruned": 0, "fail": 0}, 0.0,
                                       runs)
    # The machine, threads and load of the process that built these arms' summaries. Each arm keeps its
    # own (a report can merge arms of several processes); its wall times are its sittings' own.
    finish(machine)
    for a in arms.values():
        a["provenance"] = machine
    # read again: another process may have added arms to the report while this one tuned
    earlier = earlier_steps_report(plan.report_dir, task, plan.target, budget)
    if earlier is not None:
        kept = [n for n in earlier["arms"] if n not in arms]
        if kept:
            echo(f"report: keeping {', '.join(kept)} from the earlier run of this budget in {plan.report_dir}")
            if CONTROL in kept:
                budget["control_trials"] = earlier["budget"].get("control_trials")
        merged = {**{n: earlier["arms"][n] for n in kept}, **arms}
        arms = {n: merged[n] for n in (*VARIANTS, CONTROL, PUBLISHED) if n in merged}
    results = {
        "experiment": "steps",
        "task": task.name,
        "task_params": task.params,
        "target": plan.target,
        "emulated_available": emulate is not None,
        "memoryless_floor": memoryless_floor(task),
        "budget": budget,
        "arms": arms,
        "comparisons": _comparisons(arms),
        "pareto_accuracy_vs_synaptic_ops": pareto_front(
            {n: (a["test_acc_mean"], a["synaptic_ops_per_sample_mean"]) for n, a in arms.items()}
        ),
    }
    _write_steps_report(results, plan.report_dir, echo)
    return results


def _steps_budget(plan: StepsPlan) -> dict[str, Any]:
    return {
        "trials": plan.n_trials,
        "control_trials": plan.control_trials if plan.control else None,
        "tune_epochs": plan.epochs,
        "tune_limit": plan.limit,
        "seeds": plan.seeds,
        "final_epochs": plan.final_epochs,
        "final_limit": plan.final_limit,
        "sampler_seed": plan.sampler_seed,
    }


def _comparable_budget(budget: dict[str, Any], ignore: tuple[str, ...] = ()) -> dict[str, Any]:
    # whether the control ran (and with how many trials) is the control arm's own budget
    return {k: v for k, v in budget.items() if k != "control_trials" and k not in ignore}


def earlier_steps_report(report_dir: Path, task: Any, target: str | None,
                         budget: dict[str, Any]) -> dict[str, Any] | None:
    """The ``results.json`` an earlier steps run left in ``report_dir``, if it is of this budget.

    Running a subset of the arms (``--variants``, ``--no-control``) into a report folder that
    holds the others must not drop them: ``run_steps`` keeps the arms this run does not redo.
    A report of another task, target or budget would be silently replaced, so that is refused
    before any tuning starts (the user picks another ``--report-dir`` or removes the file).
    """
    from rsnn_deploy.checkpoint import read_json

    path = report_dir / "results.json"
    if not path.exists():
        return None
    try:
        doc = read_json(path)
    except RsnnError as err:
        raise ValidationError(f"--report-dir: {err}; remove it or choose another folder") from None
    same = (doc.get("experiment") == "steps" and doc.get("task") == task.name
            and doc.get("task_params") == json.loads(json.dumps(task.params)) and doc.get("target") == target
            and isinstance(doc.get("budget"), dict) and isinstance(doc.get("arms"), dict)
            and _comparable_budget(doc["budget"]) == _comparable_budget(budget))
    if not same:
        raise ValidationError(
            f"--report-dir: {path} holds a report of another task, target or budget; "
            "choose another --report-dir or remove it (it would be replaced)"
        )
    return doc


def _retrain(
    task: Any,
    plan: StepsPlan,
    name: str,
    best: dict[str, Any],
    tag: str,
    emulate: Callable[..., float] | None,
    targets: list[str],
    echo: Echo,
) -> list[dict[str, Any]]:
    """Retrain one arm's configuration with ``plan.seeds`` seeds (or read the runs back); emulate and count."""
    final_train = dict(best["train"])
    if plan.final_epochs is not None:
        final_train["epochs"] = plan.final_epochs
    final_train["limit"] = plan.final_limit
    target = deploy_target(targets, best["model"])
    runs = []
    for seed in range(plan.seeds):
        # keyed by the best trial: a rerun with more trials that finds a better one retrains beside it
        run_dir = plan.out / "final" / name / tag / f"seed{seed}"
        run = train_or_load(task, best["model"], {**final_train, "seed": seed}, run_dir, echo, f"[{name}] seed {seed}")
        run["seed"] = seed
        run["emulated_target"] = target
        run["emulated_test_acc"] = _emulated_test(emulate, target, run, run_dir, echo)
        run["synaptic_ops_per_sample"], run["synaptic_ops_source"] = _synaptic_ops_test(
            target if emulate is not None else None, run, run_dir, echo
        )
        runs.append(run)
    return runs


def _arm_summary(
    name: str, variant: str, best: dict[str, Any], counts: dict[str, int], tune_wall_s: float,
    runs: list[dict[str, Any]]
) -> dict[str, Any]:
    model = best["model"]
    accs = [r["test_acc"] for r in runs]
    mean, std = mean_std(accs)
    emu = [r["emulated_test_acc"] for r in runs if r["emulated_test_acc"] is not None]
    emu_mean, emu_std = mean_std(emu)
    probe = validate_config(ModelConfig, {"n_in": 1, "n_out": 1, **model}, owner="model")
    targets = sorted({r["emulated_target"] for r in runs if r.get("emulated_target")})
    walls = [r.get("wall_s") for r in runs]
    grid = None
    if probe.adaptation and targets:
        grid = {t: decay_grid_ms(float(model["tau_adapt_ms"]), t) for t in targets}
    return {
        "variant": variant,
        "n_hidden": model["n_hidden"],
        "n_adaptive": probe.n_adaptive if probe.adaptation else None,
        "tau_mem_ms": model["tau_mem_ms"],
        "tau_syn_ms": model["tau_syn_ms"] if probe.synapse else None,
        "tau_adapt_ms": model["tau_adapt_ms"] if probe.adaptation else None,
        "tau_adapt_grid_ms": grid,
        "tuned_val_acc": best["values"][0],
        "best_trial": best["number"],
        "best_params": best["params"],
        "tuning_counts": {k: counts[k] for k in ("complete", "pruned", "fail")},
        "model": model,
        "train": best["train"],
        "test_acc_mean": mean,
        "test_acc_std": std,
        "test_accs": accs,
        "spikes_per_sample_mean": mean_std([r["test_spikes_per_sample"] for r in runs])[0],
        "emulated_targets": targets,
        "emulated_test_acc_mean": emu_mean if emu else None,
        "emulated_test_acc_std": emu_std if emu else None,
        "emulated_n": len(emu),
        "emulated_notes": sorted({r["emulated_note"] for r in runs if r.get("emulated_note")}),
        "synaptic_ops_per_sample_mean": mean_std([r["synaptic_ops_per_sample"] for r in runs])[0],
        "synaptic_ops_per_sample_std": mean_std([r["synaptic_ops_per_sample"] for r in runs])[1],
        "synaptic_ops_sources": sorted({r["synaptic_ops_source"] for r in runs}),
        "wall_s": {
            "tuning": tune_wall_s,
            "retrain": None if any(w is None for w in walls) else float(sum(walls)),  # type: ignore[arg-type]
        },
        "runs": runs,
    }


def _diff(arms: dict[str, Any], a: str, b: str) -> dict[str, Any] | None:
    """``a - b`` in mean test accuracy with its standard error; 'clear' when beyond two standard errors."""
    if a not in arms or b not in arms:
        return None
    xa, xb = arms[a]["test_accs"], arms[b]["test_accs"]
    d = float(np.mean(xa) - np.mean(xb))
    se = math.sqrt(mean_std(xa)[1] ** 2 / len(xa) + mean_std(xb)[1] ** 2 / len(xb))
    return {"a": a, "b": b, "diff": d, "se": se, "clear": abs(d) > 2 * se and len(xa) > 1 and len(xb) > 1}


def _comparisons(arms: dict[str, Any]) -> dict[str, Any]:
    pairs = {
        "recurrence (rec - lif)": ("rec", "lif"),
        "synapse (rec-syn - rec)": ("rec-syn", "rec"),
        "adaptation (rec-adapt - rec)": ("rec-adapt", "rec"),
        "synapse vs adaptation (rec-syn - rec-adapt)": ("rec-syn", "rec-adapt"),
        "both (rec-syn-adapt - rec)": ("rec-syn-adapt", "rec"),
        "small taus vs LSNN control (rec-syn-adapt - lsnn-control)": ("rec-syn-adapt", CONTROL),
        "small taus vs published LSNN (rec-syn-adapt - lsnn-published)": ("rec-syn-adapt", PUBLISHED),
        "tuned vs published LSNN (lsnn-control - lsnn-published)": (CONTROL, PUBLISHED),
    }
    return {k: d for k, (a, b) in pairs.items() if (d := _diff(arms, a, b)) is not None}


def _fmt_ms(v: float | None) -> str:
    return "–" if v is None else f"{v:.3g}"


def steps_markdown(results: dict[str, Any]) -> str:
    """The results table and the comparisons, as Markdown."""
    arms = results["arms"]
    emu = any(a["emulated_test_acc_mean"] is not None for a in arms.values())
    several = len(target_list(results.get("target"))) > 1
    head = (
        "| model | neurons | tau_mem ms | tau_syn ms | tau_adapt ms | tuned val % "
        "| test % (mean ± std) | spikes/sample |"
    )
    lines = [head + (" emulated test % |" if emu else ""), "|" + "---|" * (8 + emu)]
    for name, a in arms.items():
        neurons = f"{a['n_hidden']}" + (f" ({a['n_adaptive']} adaptive)" if a.get("n_adaptive") is not None else "")
        val = "– (not tuned)" if a["tuned_val_acc"] is None else f"{100 * a['tuned_val_acc']:.1f}"
        row = (
            f"| {name} | {neurons} | {_fmt_ms(a['tau_mem_ms'])} | {_fmt_ms(a['tau_syn_ms'])} | "
            f"{_fmt_ms(a['tau_adapt_ms'])} | {val} | "
            f"{_pct(a['test_acc_mean'], a['test_acc_std'], len(a['test_accs']))} | "
            f"{a['spikes_per_sample_mean']:.0f} |"
        )
        if emu:
            m, s = a["emulated_test_acc_mean"], a["emulated_test_acc_std"]
            on = f" on {', '.join(a.get('emulated_targets') or [])}" if several else ""
            row += f" {_pct(m, s, a['emulated_n']) + on if m is not None else 'not run' + on} |"
        lines.append(row)
    floor = results.get("memoryless_floor")
    if floor:
        lines += ["", f"Memoryless floor: {100 * floor['test_acc']:.1f} % ({floor['kind']}; chance "
                  f"{100 * floor['chance']:.1f} %): what a network that ignores the input scores."]
    lines += steps_cost_markdown(results)
    lines += steps_time_markdown(results)
    lines += ["", "| comparison | difference (points) | 2 SE | beyond 2 SE? |", "|---|---|---|---|"]
    for k, d in results["comparisons"].items():
        lines.append(f"| {k} | {100 * d['diff']:+.1f} | {200 * d['se']:.1f} | {'yes' if d['clear'] else 'no'} |")
    notes = [(name, n) for name, a in arms.items() for n in a.get("emulated_notes", [])]
    if notes:
        lines += ["", f"Not run on {results['target']}:"] + [f"- {name}: {n}" for name, n in notes]
    lines += [
        "",
        "SE: standard error over the retrained seeds of each arm's one tuned configuration. It does not",
        "include the spread of the tuning itself (another sampler seed or budget can pick other settings).",
    ]
    return "\n".join(lines) + "\n"


def steps_time_markdown(results: dict[str, Any]) -> list[str]:
    """Wall time per arm and, for adaptive arms, tau_adapt on the chip's decay grid."""
    arms = results["arms"]
    if not all("wall_s" in a for a in arms.values()):
        return []

    def mins(v: float | None) -> str:
        return "unknown" if v is None else f"{v / 60:.1f}"

    lines = ["", "| model | tuning trials (complete / pruned / failed) | tuning min | retrain min (all seeds) "
             "| tau_adapt ms: trained -> chip grid |", "|---|---|---:|---:|---|"]
    for name, a in arms.items():
        c = a["tuning_counts"]
        grid = a.get("tau_adapt_grid_ms") or {}
        g = ", ".join(f"{_fmt_ms(a['tau_adapt_ms'])} -> {v:.4g} ({t})" for t, v in grid.items()) or "–"
        lines.append(f"| {name} | {c['complete']} / {c['pruned']} / {c['fail']} | {mins(a['wall_s']['tuning'])} | "
                     f"{mins(a['wall_s']['retrain'])} | {g} |")
    from rsnn_deploy.provenance import summary

    machines = sorted({summary(a["provenance"]) if "provenance" in a else "not recorded" for a in arms.values()})
    lines += ["", "Wall time as the runs went, load included; the grid value is the time constant the chip's 12-bit "
              "decay register holds for the trained one. Summarized by: " + "; ".join(machines) + "."]
    return lines


def steps_cost_markdown(results: dict[str, Any]) -> list[str]:
    """Accuracy against synaptic operations per arm (the paper's trade-off) and the Pareto front."""
    arms = results["arms"]
    if not all("synaptic_ops_per_sample_mean" in a for a in arms.values()):
        return []
    front = set(results.get("pareto_accuracy_vs_synaptic_ops") or [])
    lines = ["", "| model | test % (mean ± std) | synaptic ops / sample (mean ± std) | counted on | Pareto front |",
             "|---|---|---:|---|---|"]
    for name, a in sorted(arms.items(), key=lambda kv: kv[1]["synaptic_ops_per_sample_mean"]):
        lines.append(
            f"| {name} | {_pct(a['test_acc_mean'], a['test_acc_std'], len(a['test_accs']))} | "
            f"{a['synaptic_ops_per_sample_mean']:,.0f} ± {a['synaptic_ops_per_sample_std']:,.0f} | "
            f"{', '.join(a['synaptic_ops_sources'])} | {'yes' if name in front else ''} |"
        )
    lines += ["", "Synaptic ops: input + recurrent synaptic events per test sample on the chip (spikes x non-zero "
              "fan-out, `rsnn_deploy.cost`); Pareto front: no other arm is both more accurate and cheaper."]
    return lines


def _write_pareto_png(results: dict[str, Any], path: Path) -> None:
    import matplotlib.pyplot as plt

    arms = results["arms"]
    front = results.get("pareto_accuracy_vs_synaptic_ops") or []
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (name, a) in enumerate(arms.items()):
        color = "0.55" if name == CONTROL else f"C{i}"
        on_float = a["synaptic_ops_sources"] == ["float model"] and results.get("target")
        ax.errorbar(a["synaptic_ops_per_sample_mean"], 100 * a["test_acc_mean"], xerr=a["synaptic_ops_per_sample_std"],
                    yerr=100 * a["test_acc_std"], fmt="o", color=color, capsize=3, mfc="white" if on_float else color,
                    label=f"{name} ({a['n_hidden']} n{', float model' if on_float else ''})")
    if front:
        ax.plot([arms[n]["synaptic_ops_per_sample_mean"] for n in front],
                [100 * arms[n]["test_acc_mean"] for n in front], "k--", lw=0.8, label="Pareto front")
    ax.set_xlabel("synaptic operations per sample (input + recurrent, on the chip)")
    ax.set_ylabel("test accuracy % (mean ± std over seeds)")
    ax.set_title(f"{results['task']}: accuracy vs synaptic operations", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save_png(fig, path)
    plt.close(fig)


def _write_steps_report(results: dict[str, Any], report_dir: Path, echo: Echo) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(report_dir / "results.json", results)
    md = steps_markdown(results)
    write_text_atomic(report_dir / "results.md", f"# Step-by-step variants on {results['task']}\n\n{md}")
    names = list(results["arms"])
    arms = [results["arms"][n] for n in names]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    x = np.arange(len(names))
    colors = ["0.55" if n == CONTROL else f"C{i}" for i, n in enumerate(names)]
    ax.bar(
        x,
        [100 * a["test_acc_mean"] for a in arms],
        yerr=[100 * a["test_acc_std"] for a in arms],
        color=colors,
        capsize=4,
        alpha=0.85,
    )
    for i, a in enumerate(arms):
        ax.scatter([i] * len(a["test_accs"]), [100 * v for v in a["test_accs"]], c="k", s=10, zorder=3)
    ax.set_xticks(x, [f"{n}\n{a['n_hidden']} n" for n, a in zip(names, arms, strict=True)], fontsize=8)
    lows = [100 * min(a["test_accs"]) for a in arms]
    highs = [100 * max(a["test_accs"]) for a in arms]
    ax.set_ylim(max(0.0, min(lows) - 10), min(100.0, max(highs) + 5))
    ax.set_ylabel("test accuracy % (mean ± std over seeds)")
    ax.set_title(f"{results['task']}: tuned variants, retrained with {results['budget']['seeds']} seeds", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    _save_png(fig, report_dir / "steps.png")
    plt.close(fig)
    _write_pareto_png(results, report_dir / "steps_pareto.png")
    echo(md)
    echo(f"report: {report_dir / 'results.json'}, results.md, steps.png, steps_pareto.png")


# ----------------------------------------------------------------------------- store-recall delay sweep


def run_delay_sweep(
    make_task: Callable[[int], Any], delays: list[int], plan: StepsPlan, echo: Echo = print
) -> dict[str, Any]:
    """``run_steps`` once per store-recall delay, shortest first, each in ``OUT/delayD`` and ``REPORT/delayD``.

    Every delay is its own resumable steps run (own studies, prefix ``...-delayD``), so a rerun of
    the same command skips the finished delays and continues the interrupted one; the combined
    report (accuracy vs delay per arm) is rewritten after each delay, listing the ones still to run.
    """
    if not delays or any(d < 0 for d in delays) or len(set(delays)) != len(delays):
        raise ValidationError(f"--delays: expected distinct non-negative step counts, e.g. 50,100,200 (got {delays})")
    prefix = plan.study_prefix or "steps-store-recall"
    per: dict[int, dict[str, Any]] = {}
    for d in sorted(delays):
        echo(f"==== store-recall delay {d} steps")
        sub = replace(plan, out=plan.out / f"delay{d}", report_dir=plan.report_dir / f"delay{d}",
                      study_prefix=f"{prefix}-delay{d}")
        per[d] = run_steps(make_task(d), sub, echo)
        summary = delay_sweep_summary(per, sorted(delays))
        _write_delay_report(summary, plan.report_dir, echo)
    return summary


def delay_sweep_summary(per: dict[int, dict[str, Any]], delays: list[int]) -> dict[str, Any]:
    """Per arm and delay: test accuracy, emulated accuracy, synaptic ops; the floor per delay."""
    names: list[str] = []
    for res in per.values():
        names += [n for n in res["arms"] if n not in names]
    arms: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for d, res in sorted(per.items()):
        for n, a in res["arms"].items():
            arms[n].append({
                "delay": d, "test_acc_mean": a["test_acc_mean"], "test_acc_std": a["test_acc_std"],
                "n": len(a["test_accs"]), "emulated_test_acc_mean": a["emulated_test_acc_mean"],
                "emulated_targets": a.get("emulated_targets", []),
                "synaptic_ops_per_sample_mean": a["synaptic_ops_per_sample_mean"],
                "tau_mem_ms": a["tau_mem_ms"], "tau_adapt_ms": a["tau_adapt_ms"], "n_hidden": a["n_hidden"],
            })
    first = next(iter(per.values()))
    return {
        "experiment": "delay-sweep",
        "task": "store-recall",
        "delays": delays,
        "done": sorted(per),
        "pending": [d for d in delays if d not in per],
        "budget": first["budget"],
        "target": first["target"],
        "floor": {d: res["memoryless_floor"] for d, res in sorted(per.items())},
        "arms": arms,
    }


def delay_sweep_markdown(summary: dict[str, Any]) -> str:
    done = summary["done"]
    lines = ["| model | " + " | ".join(f"delay {d}" for d in done) + " |", "|---|" + "---|" * len(done)]
    for name, rows in summary["arms"].items():
        by = {r["delay"]: r for r in rows}
        cells = [_pct(by[d]["test_acc_mean"], by[d]["test_acc_std"], by[d]["n"]) if d in by else "–" for d in done]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    floors = summary["floor"]
    lines.append("| memoryless floor | " + " | ".join(f"{100 * floors[d]['test_acc']:.1f}" for d in done) + " |")
    emu = [(n, r) for n, rows in summary["arms"].items() for r in rows if r["emulated_test_acc_mean"] is not None]
    if emu:
        lines += ["", "Emulated (integer) test accuracy %, mean over seeds:", "",
                  "| model | " + " | ".join(f"delay {d}" for d in done) + " |", "|---|" + "---|" * len(done)]
        for name, rows in summary["arms"].items():
            by = {r["delay"]: r for r in rows}
            cells = []
            for d in done:
                r = by.get(d)
                if r is None or r["emulated_test_acc_mean"] is None:
                    cells.append("not run" if r is not None else "–")
                else:
                    cells.append(f"{100 * r['emulated_test_acc_mean']:.1f} ({', '.join(r['emulated_targets'])})")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if summary["pending"]:
        lines += ["", f"Not run yet: delay {', '.join(str(d) for d in summary['pending'])} (rerun the same command)."]
    lines += ["", "Memoryless floor: the majority class's share of the test labels (at the readout the input holds "
              "only noise and the recall cue)."]
    return "\n".join(lines) + "\n"


def _write_delay_report(summary: dict[str, Any], report_dir: Path, echo: Echo) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(report_dir / "delay_sweep.json", summary)
    md = delay_sweep_markdown(summary)
    write_text_atomic(report_dir / "delay_sweep.md", f"# Store-recall: test accuracy % vs delay\n\n{md}")
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4))
    for i, (name, rows) in enumerate(summary["arms"].items()):
        color = "0.55" if name == CONTROL else ("0.2" if name == PUBLISHED else f"C{i}")
        d = [r["delay"] for r in rows]
        ax.errorbar(d, [100 * r["test_acc_mean"] for r in rows], yerr=[100 * r["test_acc_std"] for r in rows],
                    fmt="o-", color=color, capsize=3, label=f"{name} ({rows[0]['n_hidden']} n)")
        bx.scatter([r["synaptic_ops_per_sample_mean"] for r in rows], [100 * r["test_acc_mean"] for r in rows],
                   color=color, label=name)
        for r in rows:
            bx.annotate(str(r["delay"]), (r["synaptic_ops_per_sample_mean"], 100 * r["test_acc_mean"]), fontsize=6)
    done = summary["done"]
    ax.plot(done, [100 * summary["floor"][d]["test_acc"] for d in done], "k:", marker="_", ms=14,
            label="memoryless floor")
    ax.set_ylim(0, 102)
    ax.set_xscale("log")
    ax.set_xticks(done, [str(d) for d in done])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel("delay between store and recall (steps = ms)")
    ax.set_ylabel("test accuracy % (mean ± std over seeds)")
    ax.set_title("store-recall: accuracy vs delay", fontsize=9)
    bx.set_xscale("log")
    bx.set_xlabel("synaptic operations per test sample (labels: delay)")
    bx.set_ylabel("test accuracy %")
    bx.set_title("accuracy vs synaptic operations", fontsize=9)
    for a in (ax, bx):
        a.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save_png(fig, report_dir / "delay_sweep.png")
    plt.close(fig)
    echo(md)
    echo(f"report: {report_dir / 'delay_sweep.json'}, delay_sweep.md, delay_sweep.png")


# ----------------------------------------------------------------------------- tuning-seed spread


def tuning_spread(docs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """How far re-tuning moves each arm: ``docs`` maps a label to a steps ``results.json`` of the same budget.

    Per tuned arm present in every document: the retrained test mean of each, and max - min. Refuses
    documents whose task, task parameters or budget (other than the sampler seed) differ.
    """
    if len(docs) < 2:
        raise ValidationError("RESULTS: give at least two results.json of `experiment steps` to compare")
    items = list(docs.items())
    for label, doc in items:
        if doc.get("experiment") != "steps":
            raise ValidationError(f"RESULTS: {label} is not a results.json of `experiment steps`")

    def key(doc: dict[str, Any]) -> Any:
        # the arms' budget; which arms ran (control or not) and the sampler seed may differ
        return doc["task"], doc["task_params"], _comparable_budget(doc["budget"], ignore=("sampler_seed",))

    ref_label, ref = items[0]
    for label, doc in items[1:]:
        if key(doc) != key(ref):
            raise ValidationError(f"RESULTS: {label} has another task or budget than {ref_label}; not comparable")
    # an arm that was not tuned (the published LSNN) has no tuning spread
    names = [n for n, a in ref["arms"].items()
             if a["best_trial"] is not None and all(n in d["arms"] for _, d in items)]
    arms = {}
    for n in names:
        means = {label: d["arms"][n]["test_acc_mean"] for label, d in items}
        arms[n] = {"test_acc_means": means, "spread": max(means.values()) - min(means.values()),
                   "tau_mem_ms": {label: d["arms"][n]["tau_mem_ms"] for label, d in items}}
    return {"experiment": "tuning-spread", "task": ref["task"], "budget": ref["budget"],
            "runs": [lb for lb, _ in items], "arms": arms,
            "max_spread": max((a["spread"] for a in arms.values()), default=None)}


def spread_markdown(spread: dict[str, Any]) -> str:
    runs = spread["runs"]
    lines = ["| model | " + " | ".join(runs) + " | spread (points) | tau_mem ms |", "|---|" + "---|" * (len(runs) + 2)]
    for n, a in spread["arms"].items():
        taus = ", ".join(_fmt_ms(a["tau_mem_ms"][r]) for r in runs)
        lines.append(f"| {n} | " + " | ".join(f"{100 * a['test_acc_means'][r]:.1f}" for r in runs)
                     + f" | {100 * a['spread']:.1f} | {taus} |")
    return "\n".join(lines) + "\n"


def write_spread_report(spread: dict[str, Any], report_dir: Path, echo: Echo) -> None:
    report_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(report_dir / "spread.json", spread)
    md = spread_markdown(spread)
    write_text_atomic(report_dir / "spread.md", f"# Tuning-seed spread on {spread['task']}\n\n{md}")
    echo(md)
    echo(f"report: {report_dir / 'spread.json'}, spread.md")


# ----------------------------------------------------------------------------- tau sweep


@dataclass(frozen=True)
class SweepPlan:
    """Grid and budgets of ``experiment tau-sweep``."""

    tau_syn_ms: list[float]
    tau_adapt_ms: list[float]
    base: Path | None
    epochs: int | None
    limit: int | None
    n_hidden: int | None
    seeds: int
    target: str | None
    out: Path
    report_dir: Path


def _sweep_base(plan: SweepPlan) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Model and training settings every cell shares: a steps run's tuned rec-syn-adapt, or defaults."""
    if plan.base is None:
        return {"variant": "rec-syn-adapt", "n_hidden": 64}, {"epochs": 30, "batch_size": 100}, "defaults"
    from rsnn_deploy.checkpoint import read_json

    try:
        doc = read_json(plan.base)
    except RsnnError as err:
        raise ValidationError(f"--base: {err}") from None
    arm = doc.get("arms", {}).get("rec-syn-adapt")
    if doc.get("experiment") != "steps" or arm is None:
        raise ValidationError(f"--base: {plan.base} is not a results.json of `experiment steps` with rec-syn-adapt")
    model = {k: v for k, v in arm["model"].items() if k not in _TASK_FIELDS}
    return model, dict(arm["train"]), str(plan.base)


def run_tau_sweep(task: Any, plan: SweepPlan, echo: Echo = print) -> dict[str, Any]:
    """Train rec-syn-adapt at every (tau_syn, tau_adapt) with ``plan.seeds`` seeds; heatmap + JSON."""
    if plan.seeds < 1:
        raise ValidationError(f"--seeds: must be at least 1 (got {plan.seeds})")
    model, train, source = _sweep_base(plan)
    if plan.n_hidden is not None:
        model["n_hidden"] = plan.n_hidden
    if plan.epochs is not None:
        train["epochs"] = plan.epochs
    train["limit"] = plan.limit
    emulate = _emulated_or_none(plan.target, echo)
    cells = []
    for ts in plan.tau_syn_ms:
        for ta in plan.tau_adapt_ms:
            runs = []
            for seed in range(plan.seeds):
                run_dir = plan.out / "cells" / f"syn{ts:g}_adapt{ta:g}" / f"seed{seed}"
                cell_model = {**model, "tau_syn_ms": ts, "tau_adapt_ms": ta}
                run = train_or_load(
                    task,
                    cell_model,
                    {**train, "seed": seed},
                    run_dir,
                    echo,
                    f"[tau_syn {ts:g} tau_adapt {ta:g}] seed {seed}",
                )
                run["seed"] = seed
                run["emulated_test_acc"] = _emulated_test(emulate, plan.target, run, run_dir, echo)
                runs.append(run)
            mean, std = mean_std([r["test_acc"] for r in runs])
            emu = [r["emulated_test_acc"] for r in runs if r["emulated_test_acc"] is not None]
            cells.append(
                {
                    "tau_syn_ms": ts,
                    "tau_adapt_ms": ta,
                    "test_acc_mean": mean,
                    "test_acc_std": std,
                    "emulated_test_acc_mean": mean_std(emu)[0] if emu else None,
                    "runs": runs,
                }
            )
    results = {
        "experiment": "tau-sweep",
        "task": task.name,
        "task_params": task.params,
        "base": source,
        "model": model,
        "train": train,
        "seeds": plan.seeds,
        "target": plan.target,
        "tau_syn_ms": plan.tau_syn_ms,
        "tau_adapt_ms": plan.tau_adapt_ms,
        "cells": cells,
    }
    _write_sweep_report(results, plan.report_dir, echo)
    return results


def sweep_grid(results: dict[str, Any], key: str = "test_acc_mean") -> np.ndarray:
    """``[len(tau_syn), len(tau_adapt)]`` array of a cell metric."""
    ts, ta = results["tau_syn_ms"], results["tau_adapt_ms"]
    grid = np.full((len(ts), len(ta)), np.nan)
    for c in results["cells"]:
        if c.get(key) is not None:
            grid[ts.index(c["tau_syn_ms"]), ta.index(c["tau_adapt_ms"])] = c[key]
    return grid


def sweep_markdown(results: dict[str, Any]) -> str:
    ta = results["tau_adapt_ms"]
    lines = ["| tau_syn \\ tau_adapt (ms) | " + " | ".join(f"{v:g}" for v in ta) + " |", "|---|" + "---|" * len(ta)]
    by = {(c["tau_syn_ms"], c["tau_adapt_ms"]): c for c in results["cells"]}
    for ts in results["tau_syn_ms"]:
        row = [_pct(by[(ts, a)]["test_acc_mean"], by[(ts, a)]["test_acc_std"], len(by[(ts, a)]["runs"])) for a in ta]
        lines.append(f"| {ts:g} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _write_sweep_report(results: dict[str, Any], report_dir: Path, echo: Echo) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(report_dir / "results.json", results)
    md = sweep_markdown(results)
    write_text_atomic(
        report_dir / "results.md",
        f"# tau_syn x tau_adapt sweep (rec-syn-adapt) on {results['task']}\n\n"
        f"Test accuracy %, mean ± std over {results['seeds']} seeds.\n\n{md}",
    )
    grid = 100 * sweep_grid(results)
    fig, ax = plt.subplots(figsize=(1.1 * len(results["tau_adapt_ms"]) + 2.5, 0.8 * len(results["tau_syn_ms"]) + 1.8))
    im = ax.imshow(grid, cmap="viridis", aspect="auto", origin="lower")
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            ax.text(
                j,
                i,
                f"{grid[i, j]:.1f}",
                ha="center",
                va="center",
                fontsize=8,
                color="w" if grid[i, j] < np.nanmean(grid) else "k",
            )
    ax.set_xticks(range(len(results["tau_adapt_ms"])), [f"{v:g}" for v in results["tau_adapt_ms"]])
    ax.set_yticks(range(len(results["tau_syn_ms"])), [f"{v:g}" for v in results["tau_syn_ms"]])
    ax.set_xlabel("tau_adapt (ms)")
    ax.set_ylabel("tau_syn (ms)")
    ax.set_title(f"{results['task']} rec-syn-adapt, test acc % ({results['seeds']} seeds)", fontsize=9)
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    _save_png(fig, report_dir / "tau_sweep.png")
    plt.close(fig)
    echo(md)
    echo(f"report: {report_dir / 'results.json'}, results.md, tau_sweep.png")
