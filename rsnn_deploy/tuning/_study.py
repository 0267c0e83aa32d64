"""One tuning worker: join (or create) a study, run trials until the study holds exactly N finished ones.

Every worker runs the same loop, on one machine or many::

    lock   : fail stale trials (dead workers) -> their retries are queued
             count finished / running / waiting trials
             finished >= N          -> done
             a retry is waiting, or finished + running < N -> ask() a trial (pops a retry first)
             otherwise              -> unlock, sleep, look again (a running trial may still die)
    unlock : train the trial into OUT/trials/NNNN with a heartbeat; report val accuracy per
             epoch for pruning; tell the result

Creating trials only inside the lock is what makes the count exact (see ``_storage``).
A worker waits for the other workers' running trials before it returns, so that a trial
whose worker dies near the end is still retried by someone.
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rsnn_deploy.config import ModelConfig, TrainConfig, validate_config
from rsnn_deploy.errors import RsnnError, UnsupportedError, ValidationError
from rsnn_deploy.tuning._report import StudyOutcome, study_counts, study_directions, write_study_reports
from rsnn_deploy.tuning._space import ParamRange, SearchSpace
from rsnn_deploy.tuning._storage import Heartbeat, StudyLock, default_storage_url, open_storage, safe_url

OBJECTIVES = ("float", "emulated")
MULTI_OBJECTIVES = ("neurons", "spikes", "ops")
PRUNERS = ("median", "none")
Echo = Callable[[str], None]


@dataclass(frozen=True)
class TuneSettings:
    """Everything one worker needs; workers of one study must agree on all but the runtime knobs.

    ``n_trials`` is the study's total of finished (complete or pruned) trials, shared by
    all workers. ``pin_model`` fixes model fields and removes them from the search (the
    LSNN control pins ``tau_adapt_ms`` and ``n_hidden``).
    """

    variant: str
    n_trials: int
    study_name: str
    out: Path
    space: SearchSpace
    storage: str | None = None
    objective: str = "float"
    target: str | None = None
    multi_objective: str | None = None
    epochs: int | None = None
    limit: int | None = None
    n_hidden: int | None = None
    pin_model: dict[str, Any] = field(default_factory=dict)
    pruner: str = "median"
    seed: int = 0
    sampler_seed: int | None = None
    heartbeat_interval: int = 10
    grace_period: int | None = None
    max_retry: int = 3
    poll_s: float = 2.0
    max_consecutive_failures: int = 3

    @property
    def storage_url(self) -> str:
        return self.storage or default_storage_url(self.out)

    def fixed_model(self) -> dict[str, Any]:
        model = {**self.space.fixed_model, **self.pin_model, "variant": self.variant}
        if self.n_hidden is not None and "n_hidden" not in self.pin_model:
            model["n_hidden"] = self.n_hidden
        return model

    def fixed_train(self) -> dict[str, Any]:
        train = {**self.space.fixed_train, "seed": self.seed}
        if self.epochs is not None:
            train["epochs"] = self.epochs
        if self.limit is not None:
            train["limit"] = self.limit
        return train

    def searched(self) -> list[ParamRange]:
        drop = tuple(self.pin_model) + (("n_hidden",) if self.n_hidden is not None else ())
        return self.space.for_variant(self.variant, search_neurons=self.multi_objective == "neurons", drop=drop)

    def identity(self, task: Any) -> dict[str, Any]:
        """What every worker of the study must share; stored as the study's user attribute."""
        import json

        identity = {
            "task": task.name,
            "task_params": task.params,
            "variant": self.variant,
            "objective": self.objective,
            "target": self.target,
            "multi_objective": self.multi_objective,
            "model": self.fixed_model(),
            "train": self.fixed_train(),
            "search": {p.name: p.to_dict() for p in self.searched()},
        }
        return json.loads(json.dumps(identity))  # as the storage will hand it back (lists, not tuples)


def check_settings(s: TuneSettings) -> None:
    """Flag combinations that can never run, before any trial or database is touched."""
    if s.n_trials < 1:
        raise ValidationError(f"--trials: must be at least 1 (got {s.n_trials})")
    if s.objective not in OBJECTIVES:
        raise ValidationError(f"--objective: must be one of {', '.join(OBJECTIVES)} (got {s.objective!r})")
    if s.multi_objective is not None and s.multi_objective not in MULTI_OBJECTIVES:
        raise ValidationError(f"--multi-objective: must be neurons, spikes or ops (got {s.multi_objective!r})")
    if s.pruner not in PRUNERS:
        raise ValidationError(f"--pruner: must be median or none (got {s.pruner!r})")
    if s.objective == "emulated":
        if not s.target:
            raise ValidationError("--target: required with --objective emulated (e.g. --target loihi2)")
        emulated_fn()
    if s.target:
        from rsnn_deploy.hardware import load_profile

        load_profile(s.target)
    if s.multi_objective == "neurons" and s.n_hidden is not None:
        raise ValidationError("--hidden: cannot be fixed with --multi-objective neurons (it is the second objective)")


def fit_to_target(s: TuneSettings) -> TuneSettings:
    """Restrict the search to what ``s.target`` can run, so that no trial is wasted on an undeployable config.

    A profile without a refractory period pins ``refractory_steps = 0``; a shorter one
    caps its range. A variant or fixed setting the profile cannot run at all (adaptation
    on loihi1, a voltage floor on loihi2) is a one-line UnsupportedError before any trial.
    """
    if not s.target:
        return s
    from rsnn_deploy.hardware import load_profile
    from rsnn_deploy.quantize import check_supported
    from rsnn_deploy.tuning._space import _PLACEHOLDER

    profile = load_profile(s.target)
    pin = dict(s.pin_model)
    space = s.space
    max_ref = profile.refractory.max_steps - 1 if profile.features.refractory else 0
    if max_ref == 0 and "refractory_steps" not in space.fixed_model:
        pin.setdefault("refractory_steps", 0)
    elif max_ref > 0:
        capped = tuple(
            replace(p, high=min(p.high, max_ref)) if p.name == "refractory_steps" and p.kind == "int" else p
            for p in space.params
        )
        space = replace(space, params=capped)
    probe = validate_config(ModelConfig, {**_PLACEHOLDER, **s.fixed_model(), **pin}, owner="model")
    check_supported(probe, profile, {})
    return replace(s, pin_model=pin, space=space)


def emulated_fn() -> Callable[..., float]:
    """``rsnn_deploy.verify.emulated_accuracy``, or a one-line UnsupportedError while it does not exist."""
    try:
        from rsnn_deploy.verify import emulated_accuracy
    except ImportError as err:
        raise UnsupportedError(
            f"--objective emulated: the integer emulator's accuracy is unavailable in this build ({err}); "
            "use --objective float"
        ) from None
    return emulated_accuracy


def _make_pruner(s: TuneSettings, epochs: int) -> Any:
    import optuna

    if s.pruner == "none" or s.multi_objective is not None:  # optuna cannot prune multi-objective trials
        return optuna.pruners.NopPruner()
    # Early epochs of a one-cycle schedule say little: compare from a third of the run on.
    return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=max(1, epochs // 3))


def _make_sampler(s: TuneSettings, n_existing: int) -> Any:
    import optuna

    seed = None if s.sampler_seed is None else s.sampler_seed + n_existing  # a resumed run samples anew
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=seed,
            n_startup_trials=max(3, min(10, s.n_trials // 3)),
            multivariate=True,
            constant_liar=True,
        )


def _open_study(s: TuneSettings, task: Any, lock: StudyLock, epochs: int) -> Any:
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    # Optuna creates its tables on first use; two workers doing that at once on a fresh
    # database collide, so the first open is serialised (one key for the whole database).
    schema_lock = StudyLock(s.storage_url, "<schema>")
    try:
        with schema_lock.hold():
            storage = open_storage(
                s.storage_url,
                heartbeat_interval=s.heartbeat_interval,
                grace_period=s.grace_period,
                max_retry=s.max_retry,
            )
    finally:
        schema_lock.close()
    identity = s.identity(task)
    with lock.hold():
        try:
            probe = optuna.load_study(study_name=s.study_name, storage=storage)
            n_existing = len(probe.get_trials(deepcopy=False))
        except KeyError:
            n_existing = 0
        except SQLAlchemyError as err:
            raise ValidationError(f"--storage: {safe_url(s.storage_url)!r}: {err}") from None
        try:
            study = optuna.create_study(
                study_name=s.study_name,
                storage=storage,
                directions=study_directions(s.multi_objective),
                sampler=_make_sampler(s, n_existing),
                pruner=_make_pruner(s, epochs),
                load_if_exists=True,
            )
        except ValueError as err:
            raise ValidationError(f"--study {s.study_name}: {err}") from None
        stored = study.user_attrs.get("rsnn_deploy")
        if stored is None:
            study.set_user_attr("rsnn_deploy", identity)
        else:
            for key, value in identity.items():
                if stored.get(key) != value:
                    raise ValidationError(
                        f"--study {s.study_name}: exists with a different {key} (has {stored.get(key)!r}, "
                        f"got {value!r}); join it with the same settings or choose another --study"
                    )
        study.set_user_attr("n_trials", s.n_trials)  # the latest budget asked for (it may grow on reruns)
    return study


def _suggest(trial: Any, s: TuneSettings) -> tuple[dict[str, Any], dict[str, Any]]:
    model = s.fixed_model()
    train = s.fixed_train()
    for p in s.searched():
        (model if p.section == "model" else train)[p.name] = p.suggest(trial)
    return model, train


def _prepare_dir(s: TuneSettings, trial: Any) -> tuple[Path, bool]:
    """The trial's folder; a retry continues from the folder of the trial it replaces, if reachable."""
    tdir = Path(s.out) / "trials" / f"{trial.number:04d}"
    # Trial objects do not expose system attributes; the storage's copy does (O(1), unlike study.trials).
    history = trial.study._storage.get_trial(trial._trial_id).system_attrs.get("retry_history", [])
    if tdir.exists():
        shutil.rmtree(tdir)
    if history:
        src = Path(s.out) / "trials" / f"{history[-1]:04d}"
        if (src / "resume.json").is_file():
            shutil.copytree(src, tdir, ignore=shutil.ignore_patterns(".*.tmp"))  # not the dead writer's temps
            return tdir, True
    return tdir, False


def _run_trial(trial: Any, s: TuneSettings, task: Any, objective_fn: Callable[..., float] | None) -> tuple[Any, dict]:
    """Train one trial; returns (objective value(s), user attributes). Raises TrialPruned on pruning."""
    import optuna

    from rsnn_deploy.train import model_config_for, train

    model_over, train_over = _suggest(trial, s)
    model_cfg = model_config_for(task, **model_over)
    train_cfg = validate_config(TrainConfig, train_over, owner="train")
    tdir, resume = _prepare_dir(s, trial)
    attrs: dict[str, Any] = {
        "trial_dir": str(tdir),
        "worker": f"{socket.gethostname()}:{os.getpid()}",
        "model": model_cfg.model_dump(),
        "train": train_cfg.model_dump(),
        "resumed_from_retry": resume,
    }
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    prune = s.multi_objective is None and s.pruner != "none"

    def on_epoch(epoch: int, row: dict[str, float]) -> None:
        if not prune:
            return
        trial.report(row["val_acc"], epoch)
        if trial.should_prune():
            trial.set_user_attr("pruned_at_epoch", epoch)
            raise optuna.TrialPruned(f"epoch {epoch + 1}: val {row['val_acc']:.4f} below the median")

    result = train(
        task,
        model_cfg,
        train_cfg,
        tdir,
        resume=resume,
        overwrite=not resume,
        progress=False,
        on_epoch=on_epoch,
    )
    m = result.metrics
    best = next((h for h in result.history if h["epoch"] == m["best_epoch"]), result.history[-1])
    per_sample = model_cfg.n_hidden * task.n_steps
    metrics = {
        "val_acc": m["val_acc"],
        "test_acc": m["test_acc"],
        "test_rate": m["test_rate"],
        "val_rate": best.get("val_rate"),
        "best_epoch": m["best_epoch"],
        "epochs_run": m["epochs_run"],
        "n_hidden": model_cfg.n_hidden,
        "val_spikes_per_sample": (best.get("val_rate") or 0.0) * per_sample,
        "test_spikes_per_sample": m["test_rate"] * per_sample,
        "checkpoint": str(result.checkpoint),
    }
    value = m["val_acc"]
    if objective_fn is not None:
        value = float(objective_fn(str(result.checkpoint), s.target, split="val"))
        metrics["emulated_val_acc"] = value
    for key, v in metrics.items():
        trial.set_user_attr(key, v)
        attrs[key] = v
    if s.multi_objective == "neurons":
        return (value, float(model_cfg.n_hidden)), attrs
    if s.multi_objective == "spikes":
        return (value, metrics["val_spikes_per_sample"]), attrs
    if s.multi_objective == "ops":
        ops = _val_synaptic_ops(str(result.checkpoint), s)
        trial.set_user_attr("val_synaptic_ops_per_sample", ops)
        attrs["val_synaptic_ops_per_sample"] = ops
        return (value, ops), attrs
    return value, attrs


def _val_synaptic_ops(checkpoint: str, s: TuneSettings) -> float:
    """``--multi-objective ops``: synaptic events per validation sample on the chip (input + recurrent),
    counted on ``--target``'s integer emulator when a target is given, else on the float model."""
    from rsnn_deploy.cost import synaptic_ops_per_sample

    return synaptic_ops_per_sample(checkpoint, s.target, split="val")


def _fmt_params(params: dict[str, Any]) -> str:
    def one(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    return " ".join(f"{k}={one(v)}" for k, v in params.items())


def run_worker(task: Any, s: TuneSettings, echo: Echo = print) -> StudyOutcome:
    """Run trials of study ``s.study_name`` until it holds ``s.n_trials`` finished ones.

    Safe to start many times, at once or later, on any machine that reaches the storage:
    each call joins the study (``load_if_exists``) and contributes trials.
    """
    check_settings(s)
    s = fit_to_target(s)
    objective_fn = emulated_fn() if s.objective == "emulated" else None
    epochs = validate_config(TrainConfig, s.fixed_train(), owner="train").epochs
    from rsnn_deploy.io import cleanup_new_dirs_on_error

    with cleanup_new_dirs_on_error(s.out):  # a study that cannot even be opened leaves no empty folder
        lock = StudyLock(s.storage_url, s.study_name)
        study = _open_study(s, task, lock, epochs)
    c = study_counts(study)
    echo(
        f"[{s.study_name}] {'joined' if c['all'] else 'created'} study in {safe_url(s.storage_url)}: "
        f"{c['finished']} of {s.n_trials} trials finished, {c['running']} running"
    )
    failures = 0
    try:
        while True:
            done, trial = _claim_trial(study, lock, s)
            if done:
                break
            if trial is None:
                time.sleep(s.poll_s)  # every slot is running elsewhere; one may still die and need us
                continue
            failures = _run_and_tell(study, trial, s, task, objective_fn, failures, echo)
    finally:
        lock.close()
    return write_study_reports(study, s, task)


def _claim_trial(study: Any, lock: StudyLock, s: TuneSettings) -> tuple[bool, Any]:
    """Under the study lock: ``(True, None)`` once enough trials finished, else ``(False, a new trial or None)``.

    None when every remaining slot is running elsewhere. Stale trials (dead workers) fail first.
    """
    import optuna
    from optuna.storages import fail_stale_trials

    with lock.hold():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            fail_stale_trials(study)
        c = study_counts(study)
        if c["finished"] >= s.n_trials:
            return True, None
        if c["waiting"] > 0 or c["finished"] + c["running"] < s.n_trials:
            with warnings.catch_warnings():  # we run the heartbeat ourselves (see Heartbeat)
                warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")
                trial = study.ask()
            # first heartbeat in the same critical section as ask(): a trial seen without one is dead
            study._storage.record_heartbeat(trial._trial_id)
            return False, trial
    return False, None


def _run_and_tell(
    study: Any, trial: Any, s: TuneSettings, task: Any, objective_fn: Any, failures: int, echo: Echo
) -> int:
    """Run one claimed trial under its heartbeat, record its outcome, log it; returns the consecutive failures."""
    import optuna
    from optuna.trial import TrialState

    t0 = time.perf_counter()
    values: Any = None
    state = TrialState.COMPLETE
    note = ""
    with Heartbeat(study._storage, trial._trial_id):
        try:
            values, attrs = _run_trial(trial, s, task, objective_fn)
        except optuna.TrialPruned as err:
            state, note = TrialState.PRUNED, str(err)
        except KeyboardInterrupt:
            study.tell(trial, state=TrialState.FAIL)
            raise
        except Exception as err:
            state, note = (
                TrialState.FAIL,
                f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}",
            )
            trial.set_user_attr("error", note)
    if state == TrialState.COMPLETE and any(not math.isfinite(v) for v in _as_list(values)):
        state, note = TrialState.FAIL, f"non-finite objective {values}"
    if state == TrialState.COMPLETE:
        study.tell(trial, values)
        extra = (
            f" test {attrs['test_acc']:.4f} spikes/sample {attrs['val_spikes_per_sample']:.1f}"
            f" neurons {attrs['n_hidden']}"
        )
        echo(
            f"[{s.study_name}] trial {trial.number} complete: "
            f"{_objective_label(s)} {_fmt_values(values)}{extra} "
            f"({time.perf_counter() - t0:.1f} s) {_fmt_params(trial.params)}"
        )
        return 0
    study.tell(trial, state=state)
    echo(
        f"[{s.study_name}] trial {trial.number} {state.name.lower()}: {note} "
        f"({time.perf_counter() - t0:.1f} s) {_fmt_params(trial.params)}"
    )
    if state != TrialState.FAIL:
        return 0
    failures += 1
    if failures >= s.max_consecutive_failures:
        raise RsnnError(f"study {s.study_name}: {failures} trials in a row failed; last: {note}")
    return failures


def _objective_label(s: TuneSettings) -> str:
    first = "emulated val acc" if s.objective == "emulated" else "val acc"
    second = {"neurons": ", neurons", "spikes": ", spikes/sample", "ops": ", synaptic ops/sample"}.get(
        s.multi_objective or "", ""
    )
    return first + second


def _as_list(values: Any) -> list[float]:
    return [float(v) for v in values] if isinstance(values, (tuple, list)) else [float(values)]


def _fmt_values(values: Any) -> str:
    return ", ".join(f"{v:.4g}" for v in _as_list(values))
