"""``rsnn-deploy tune`` and ``rsnn-deploy experiment {steps,tau-sweep}``.

Registered on the main group by ``rsnn_deploy.cli._register_optional_commands``. The
commands only translate flags into :class:`rsnn_deploy.tune.TuneSettings` /
:mod:`rsnn_deploy.experiment` calls; errors stay :class:`RsnnError` so that the CLI
prints them as one line.
"""

from __future__ import annotations

from pathlib import Path

import click

from rsnn_deploy.cli._app import cli
from rsnn_deploy.cli.train import _parse_task_params, _task_options, load_task_from_options
from rsnn_deploy.config import VARIANTS
from rsnn_deploy.errors import RsnnError, ValidationError


def _set_threads(threads: int) -> None:
    """Pin torch's intra-op threads.

    Why: these networks are small (tens to hundreds of neurons), so OpenMP's thread
    hand-offs cost more than they save, and on a shared machine spinning threads of
    several workers starve each other (measured here: 16x slower per step with two
    threads on a loaded 2-core machine). Run more workers instead of more threads.
    """
    import torch

    if threads < 1:
        raise ValidationError(f"--threads: must be at least 1 (got {threads})")
    torch.set_num_threads(threads)


def _quiet_optuna() -> None:
    """Optuna's INFO lines duplicate the worker's own one-line summaries; keep its warnings."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _runtime_options(f):
    f = click.option(
        "--threads",
        type=int,
        default=1,
        show_default=True,
        help="torch threads per worker (small nets: 1 is fastest; start more workers instead).",
    )(f)
    f = click.option(
        "--heartbeat-interval",
        type=int,
        default=10,
        show_default=True,
        help="Seconds between a running trial's heartbeats.",
    )(f)
    f = click.option(
        "--grace-period",
        type=int,
        default=None,
        help="Seconds without heartbeat before a trial counts as dead and is retried [default: 3 heartbeats].",
    )(f)
    f = click.option(
        "--max-retry", type=int, default=3, show_default=True, help="Retries of a trial whose worker died."
    )(f)
    return f


@cli.command()
@_task_options
@click.option("--variant", type=click.Choice(VARIANTS), default="rec-syn-adapt", show_default=True)
@click.option(
    "--trials",
    "n_trials",
    type=int,
    required=True,
    help="Finished trials the study must hold in total (shared by all workers).",
)
@click.option("--study", "study_name", required=True, help="Study name; the same name joins the same study.")
@click.option(
    "--storage",
    default=None,
    help="Database URL [default: sqlite:///OUT/study.db]; a PostgreSQL URL lets many machines share it.",
)
@click.option(
    "--space",
    "space_path",
    type=click.Path(),
    default=None,
    help="Search-space TOML [default: configs/search_space.toml].",
)
@click.option(
    "--objective",
    type=click.Choice(["float", "emulated"]),
    default="float",
    show_default=True,
    help="float: validation accuracy; emulated: accuracy of the quantized model on --target's emulator.",
)
@click.option("--target", default=None, metavar="PROFILE", help="Hardware profile (loihi1, loihi2 or a .toml).")
@click.option(
    "--multi-objective",
    type=click.Choice(["neurons", "spikes", "ops"]),
    default=None,
    help="Second objective to minimise (ops: synaptic operations per validation sample, on --target's emulator "
    "when given); writes the Pareto front (JSON + PNG).",
)
@click.option("--pruner", type=click.Choice(["median", "none"]), default="median", show_default=True)
@click.option("--epochs", type=int, default=None, help="Epochs per trial (overrides the space file).")
@click.option("--limit", type=click.IntRange(1), default=None, help="Train on the first N training samples only.")
@click.option("--hidden", "n_hidden", type=int, default=None, help="Hidden neurons (overrides the space file).")
@click.option("--seed", type=int, default=0, show_default=True, help="Training seed of every trial.")
@click.option(
    "--sampler-seed",
    type=int,
    default=None,
    help="Seed of the TPE sampler (reproducible single worker; leave unset for several workers).",
)
@_runtime_options
@click.option("-o", "--out", type=click.Path(), required=True, help="Folder of the study's trials and reports.")
def tune(
    task_name,
    data_path,
    data_dir,
    task_params,
    variant,
    n_trials,
    study_name,
    storage,
    space_path,
    objective,
    target,
    multi_objective,
    pruner,
    epochs,
    limit,
    n_hidden,
    seed,
    sampler_seed,
    threads,
    heartbeat_interval,
    grace_period,
    max_retry,
    out,
) -> None:
    """Tune one variant's neuron and training parameters with Optuna.

    Run the same command in more processes or on more machines (same --study and
    --storage) to share the work; a worker killed mid-trial has its trial retried.
    """
    from rsnn_deploy.io import check_writable_path
    from rsnn_deploy.tune import TuneSettings, check_settings, load_search_space, run_worker

    _set_threads(threads)
    check_writable_path(out, "-o", is_dir=True)
    settings = TuneSettings(
        variant=variant,
        n_trials=n_trials,
        study_name=study_name,
        out=Path(out),
        space=load_search_space(space_path),
        storage=storage,
        objective=objective,
        target=target,
        multi_objective=multi_objective,
        epochs=epochs,
        limit=limit,
        n_hidden=n_hidden,
        pruner=pruner,
        seed=seed,
        sampler_seed=sampler_seed,
        heartbeat_interval=heartbeat_interval,
        grace_period=grace_period,
        max_retry=max_retry,
    )
    check_settings(settings)
    if storage is not None:
        from rsnn_deploy.tune import check_storage_url

        check_storage_url(storage)
    task = load_task_from_options(task_name, data_path, data_dir, task_params)
    _quiet_optuna()
    outcome = run_worker(task, settings, echo=click.echo)
    c = outcome.counts
    click.echo(
        f"study {outcome.study_name}: {c['complete']} complete, {c['pruned']} pruned, {c['fail']} failed "
        f"-> {outcome.summary_path}"
    )
    if outcome.best is not None:
        b = outcome.best
        nan = float("nan")
        click.echo(
            f"best trial {b['number']}: objective {b['values'][0]:.4f} "
            f"(float val {b.get('val_acc', nan):.4f}, test {b.get('test_acc', nan):.4f}) "
            + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in b["params"].items())
        )
    if outcome.pareto:
        click.echo(f"Pareto front: {len(outcome.pareto)} trials -> {Path(out) / 'pareto.json'}, pareto.png")


# ----------------------------------------------------------------------------- experiment


def _float_list(text: str, flag: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValidationError(f"{flag}: expected comma-separated numbers (got {text!r})") from None
    if not values or any(v <= 0 for v in values):
        raise ValidationError(f"{flag}: expected positive numbers, e.g. 2,5,10 (got {text!r})")
    return values


def _variant_list(text: str | None) -> list[str]:
    if text is None:
        return list(VARIANTS)
    names = [x.strip() for x in text.split(",") if x.strip()]
    for n in names:
        if n not in VARIANTS:
            raise ValidationError(f"--variants: unknown variant (got {n!r}); choose from {', '.join(VARIANTS)}")
    return names


@cli.group()
def experiment() -> None:
    """The paper's experiments: the step-by-step variant study and the time-constant sweep."""


def _common_experiment_options(f):
    f = click.option("--seeds", type=int, default=3, show_default=True, help="Seeds per retrained model.")(f)
    f = click.option(
        "--final-epochs", type=int, default=None, help="Epochs of the retrained models [default: --epochs]."
    )(f)
    f = click.option(
        "--final-limit",
        type=click.IntRange(1),
        default=None,
        help="Training samples of the retrained models [default: all].",
    )(f)
    f = click.option(
        "--target",
        default=None,
        metavar="PROFILE",
        help="Also report the emulated accuracy on this profile (when available).",
    )(f)
    f = click.option(
        "--report-dir",
        type=click.Path(),
        default=None,
        help="Where results.json/.md and the figure go [default: OUT].",
    )(f)
    f = click.option("-o", "--out", type=click.Path(), required=True, help="Working folder (checkpoints).")(f)
    return f


@experiment.command("steps")
@_task_options
@click.option("--trials", "n_trials", type=int, default=8, show_default=True, help="Tuning trials per variant.")
@click.option("--control-trials", type=int, default=None, help="Tuning trials of the LSNN control [default: --trials].")
@click.option("--variants", default=None,
              help="Comma-separated subset of the five variants [default: all]; '' for none. The report keeps "
                   "the arms an earlier run of the same budget left in --report-dir.")
@click.option("--no-control", is_flag=True, help="Skip the LSNN-style control.")
@click.option("--control-hidden", type=int, default=220, show_default=True)
@click.option("--control-tau-adapt", type=float, default=700.0, show_default=True)
@click.option("--epochs", type=int, default=None, help="Epochs per tuning trial [default: the space file's].")
@click.option("--limit", type=click.IntRange(1), default=None, help="Training samples per tuning trial [default: all].")
@click.option("--hidden", "n_hidden", type=int, default=None, help="Neurons of the five variants [default: space].")
@click.option("--space", "space_path", type=click.Path(), default=None)
@click.option("--storage", default=None, help="Shared database URL for the studies [default: SQLite in OUT].")
@click.option("--study-prefix", default=None, help="Prefix of the study names [default: steps-TASK].")
@click.option("--sampler-seed", type=int, default=0, show_default=True)
@click.option("--lsnn-published", is_flag=True, help="Add Bellec et al. 2018's LSNN (120 LIF + 100 ALIF), untuned.")
@click.option("--delays", default=None, help="store-recall: one run per delay (steps), e.g. 50,100,200,400.")
@_common_experiment_options
@_runtime_options
def steps(
    task_name,
    data_path,
    data_dir,
    task_params,
    n_trials,
    control_trials,
    variants,
    no_control,
    control_hidden,
    control_tau_adapt,
    epochs,
    limit,
    n_hidden,
    space_path,
    storage,
    study_prefix,
    sampler_seed,
    lsnn_published,
    delays,
    seeds,
    final_epochs,
    final_limit,
    target,
    report_dir,
    out,
    threads,
    heartbeat_interval,
    grace_period,
    max_retry,
) -> None:
    """Tune each variant (lif, rec, rec-syn, rec-adapt, rec-syn-adapt); retrain the best with N seeds."""
    from rsnn_deploy.experiment import StepsPlan, run_steps
    from rsnn_deploy.io import check_writable_path
    from rsnn_deploy.tune import load_search_space

    _set_threads(threads)
    check_writable_path(out, "-o", is_dir=True)
    if report_dir:
        check_writable_path(report_dir, "--report-dir", is_dir=True)
    plan = StepsPlan(
        variants=_variant_list(variants),
        n_trials=n_trials,
        control_trials=n_trials if control_trials is None else control_trials,
        control=not no_control,
        control_hidden=control_hidden,
        control_tau_adapt_ms=control_tau_adapt,
        epochs=epochs,
        limit=limit,
        n_hidden=n_hidden,
        space=load_search_space(space_path),
        storage=storage,
        study_prefix=study_prefix,
        sampler_seed=sampler_seed,
        seeds=seeds,
        final_epochs=final_epochs,
        final_limit=final_limit,
        target=target,
        out=Path(out),
        report_dir=Path(report_dir or out),
        heartbeat_interval=heartbeat_interval,
        grace_period=grace_period,
        max_retry=max_retry,
        lsnn_published=lsnn_published,
    )
    _quiet_optuna()
    if delays is not None:
        from rsnn_deploy.experiment import run_delay_sweep

        if task_name != "store-recall":
            raise ValidationError(f"--delays: only for --task store-recall (got --task {task_name})")
        params = _parse_task_params(task_params)
        if "delay" in params:
            raise ValidationError("--task-param delay: give the delays with --delays, not both")
        run_delay_sweep(lambda d: load_task_from_options(task_name, data_path, data_dir, {**params, "delay": d}),
                        [int(v) for v in _float_list(delays, "--delays")], plan, echo=click.echo)
        return
    task = load_task_from_options(task_name, data_path, data_dir, task_params)
    run_steps(task, plan, echo=click.echo)


@experiment.command("spread")
@click.argument("results", nargs=-1, type=click.Path())
@click.option("--report-dir", type=click.Path(), required=True, help="Where spread.json/.md go.")
def spread(results, report_dir) -> None:
    """How far re-tuning with another sampler seed moves each arm (RESULTS: steps results.json, same budget)."""
    from rsnn_deploy.checkpoint import read_json
    from rsnn_deploy.experiment import tuning_spread, write_spread_report
    from rsnn_deploy.io import check_writable_path

    check_writable_path(report_dir, "--report-dir", is_dir=True)
    docs = {}
    for r in results:
        try:
            docs[r] = read_json(Path(r))
        except RsnnError as err:
            raise ValidationError(f"RESULTS: {err}") from None
    write_spread_report(tuning_spread(docs), Path(report_dir), echo=click.echo)


@experiment.command("tau-sweep")
@_task_options
@click.option("--tau-syn", "tau_syn", default="2,5,10,20", show_default=True, help="Synaptic time constants (ms).")
@click.option(
    "--tau-adapt",
    "tau_adapt",
    default="20,50,100,200,700",
    show_default=True,
    help="Adaptation time constants (ms).",
)
@click.option(
    "--base",
    type=click.Path(),
    default=None,
    help="results.json of `experiment steps`: start from its tuned rec-syn-adapt settings.",
)
@click.option("--epochs", type=int, default=None, help="Epochs per cell [default: base's, else 30].")
@click.option("--limit", type=click.IntRange(1), default=None, help="Training samples per cell [default: all].")
@click.option("--hidden", "n_hidden", type=int, default=None, help="Neurons [default: base's, else 64].")
@click.option("--seeds", type=int, default=3, show_default=True)
@click.option("--target", default=None, metavar="PROFILE")
@click.option("--report-dir", type=click.Path(), default=None)
@click.option("--threads", type=int, default=1, show_default=True)
@click.option("-o", "--out", type=click.Path(), required=True)
def tau_sweep(
    task_name,
    data_path,
    data_dir,
    task_params,
    tau_syn,
    tau_adapt,
    base,
    epochs,
    limit,
    n_hidden,
    seeds,
    target,
    report_dir,
    threads,
    out,
) -> None:
    """Grid over tau_syn x tau_adapt with rec-syn-adapt; heatmap of test accuracy."""
    from rsnn_deploy.experiment import SweepPlan, run_tau_sweep
    from rsnn_deploy.io import check_writable_path

    _set_threads(threads)
    check_writable_path(out, "-o", is_dir=True)
    if report_dir:
        check_writable_path(report_dir, "--report-dir", is_dir=True)
    plan = SweepPlan(
        tau_syn_ms=_float_list(tau_syn, "--tau-syn"),
        tau_adapt_ms=_float_list(tau_adapt, "--tau-adapt"),
        base=Path(base) if base else None,
        epochs=epochs,
        limit=limit,
        n_hidden=n_hidden,
        seeds=seeds,
        target=target,
        out=Path(out),
        report_dir=Path(report_dir or out),
    )
    task = load_task_from_options(task_name, data_path, data_dir, task_params)
    run_tau_sweep(task, plan, echo=click.echo)
