"""``rsnn-deploy train | evaluate``: training a float network and scoring a checkpoint.

Also the task options (``--task``, ``--data``, ``--data-dir``, ``--task-param``) that
``tune`` shares.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from rsnn_deploy.cli._app import cli


def _merge_config_file(config: str | None) -> dict[str, Any]:
    if not config:
        return {}
    from rsnn_deploy.config import read_config_file

    return read_config_file(config)


def _task_options(f):
    f = click.option("--task", "task_name", default="mnist1d", show_default=True,
                     help="mnist1d | sfmnist-row | sfmnist-pixel | store-recall | npz")(f)
    f = click.option("--data", "data_path", type=click.Path(), default=None,
                     help="The .npz file for --task npz.")(f)
    f = click.option("--data-dir", type=click.Path(), default=None,
                     help="Folder of the Fashion-MNIST IDX files (default /usr/share/datasets/fashion-mnist).")(f)
    f = click.option("--task-param", "task_params", multiple=True, metavar="KEY=VALUE",
                     help="Extra task parameter, e.g. delay=50 for store-recall (repeatable).")(f)
    return f


def _parse_task_params(pairs: tuple[str, ...]) -> dict[str, Any]:
    from rsnn_deploy.errors import ValidationError

    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValidationError(f"--task-param: expected KEY=VALUE (got {pair!r})")
        key, value = pair.split("=", 1)
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def load_task_from_options(task_name: str, data_path: str | None, data_dir: str | None,
                           task_params: tuple[str, ...] | dict[str, Any], seed: int = 0):
    from rsnn_deploy.tasks import load_task

    params = task_params if isinstance(task_params, dict) else _parse_task_params(task_params)
    return load_task(task_name, data_dir=data_dir, path=data_path, seed=seed, **params)


@cli.command()
@_task_options
@click.option("--variant", type=click.Choice(["lif", "rec", "rec-syn", "rec-adapt", "rec-syn-adapt"]),
              default=None, help="Neuron variant [default: rec-syn].")
@click.option("--hidden", "n_hidden", type=int, default=None, help="Hidden neurons [default: 128].")
@click.option("--tau-mem", "tau_mem_ms", type=float, default=None, help="Membrane time constant (ms).")
@click.option("--tau-syn", "tau_syn_ms", type=float, default=None, help="Synaptic time constant (ms).")
@click.option("--tau-adapt", "tau_adapt_ms", type=float, default=None, help="Adaptation time constant (ms).")
@click.option("--tau-out", "tau_out_ms", type=float, default=None, help="Readout time constant (ms).")
@click.option("--adapt-kind", type=click.Choice(["threshold", "current", "atrlif"]), default=None,
              help="threshold, current, or atrlif (Lava's ATRLIF: refractory state r, no voltage reset; loihi2).")
@click.option("--tau-refr", "tau_refr_ms", type=float, default=None,
              help="ATRLIF refractory-state time constant (ms), adapt_kind atrlif.")
@click.option("--adapt-strength", type=float, default=None)
@click.option("--refractory", "refractory_steps", type=int, default=None, help="Refractory steps after a spike.")
@click.option("--v-floor", type=float, default=None, help="Voltage floor (e.g. 0 as on Loihi 1 / nengo-loihi).")
@click.option("--surrogate", type=click.Choice(["fast-sigmoid", "triangle", "arctan", "sigmoid"]), default=None)
@click.option("--slope", "surrogate_slope", type=float, default=None, help="Surrogate gradient slope.")
@click.option("--train-tau", is_flag=True, default=None, help="Learn the time constants (within bounds).")
@click.option("--dt", "dt_ms", type=float, default=None, help="Time step (ms), default 1.")
@click.option("--epochs", type=int, default=None)
@click.option("--batch-size", type=int, default=None)
@click.option("--lr", type=float, default=None)
@click.option("--weight-decay", type=float, default=None, help="Adam weight decay (1e-3 regularised MNIST-1D well).")
@click.option("--rate-reg", type=float, default=None, help="Weight of the firing-rate regulariser.")
@click.option("--target-rate", type=float, default=None, help="Target firing rate (spikes per step).")
@click.option("--limit", type=click.IntRange(1), default=None, help="Use only the first N training samples.")
@click.option("--seed", type=int, default=None)
@click.option("--device", default=None, help="cpu (default) or cuda.")
@click.option("--engine", type=click.Choice(["auto", "eager", "fast"]), default=None)
@click.option("--qat", "qat_profile", default=None, metavar="PROFILE",
              help="Quantization-aware training for a hardware profile (loihi1, loihi2, xylo-audio2, xylo-imu "
                   "or a .toml path).")
@click.option("--config", type=click.Path(), default=None,
              help="TOML/JSON file with [model], [train] and [task] (name, task parameters) tables; flags win.")
@click.option("--resume", is_flag=True, help="Continue the interrupted run in OUT.")
@click.option("--overwrite", is_flag=True, help="Replace a finished run in OUT.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--threads", type=int, default=None,
              help="torch CPU threads (default: the cores the load average leaves idle, at least 1).")
@click.option("-o", "--out", type=click.Path(), required=True, help="Output folder of the run.")
def train(task_name, data_path, data_dir, task_params, config, resume, overwrite, quiet, threads, out,
          **flags) -> None:
    """Train an RSNN variant; write the best checkpoint to OUT/model.{safetensors,json}."""
    import torch

    from rsnn_deploy.errors import ValidationError

    if threads is not None:
        if threads < 1:
            raise ValidationError(f"--threads: must be at least 1 (got {threads})")
        torch.set_num_threads(threads)
        thread_why = "--threads"
    else:  # all cores (torch's default) made an epoch several times slower on a loaded machine
        from rsnn_deploy.threads import default_threads

        n, thread_why = default_threads()
        torch.set_num_threads(n)
    if not quiet:
        click.echo(f"threads: {torch.get_num_threads()} ({thread_why})")
    from rsnn_deploy.config import ModelConfig, TrainConfig, validate_config
    from rsnn_deploy.io import check_writable_path, guard_outputs
    from rsnn_deploy.train import model_config_for
    from rsnn_deploy.train import train as run_training

    out_dir = check_writable_path(out, "-o", is_dir=True)
    # the run's files may not be any input of this command (e.g. --data OUT/model.json), even with --overwrite
    guard_outputs([out_dir / n for n in ("model.safetensors", "model.json", "resume.safetensors", "resume.json",
                                         "metrics.jsonl")],
                  inputs=[p for p in (data_path, config) if p], overwrite=True)
    model_keys = set(ModelConfig.model_fields)
    train_keys = set(TrainConfig.model_fields)
    if resume:
        _resume_from_recorded(out, flags, task_name, data_path, task_params, config, model_keys, train_keys,
                              data_dir, quiet)
        return
    file_cfg = _merge_config_file(config)
    if config:
        from rsnn_deploy.config import check_config_tables

        check_config_tables(file_cfg, config, {"model": model_keys - {"n_in", "n_out", "readout_mode"} | {"n_hidden"},
                                               "train": train_keys, "task": None})
        validate_config(TrainConfig, file_cfg.get("train", {}), owner=f"{config}: [train]")  # values, naming the file
    model_over = {"n_hidden": 128, **file_cfg.get("model", {}),
                  **{k: v for k, v in flags.items() if k in model_keys and v is not None}}
    train_over = {**file_cfg.get("train", {}), **{k: v for k, v in flags.items() if k in train_keys and v is not None}}
    train_cfg = validate_config(TrainConfig, train_over, owner="train")
    # a [task] table in the config file: name and task parameters; flags given on the command line win
    task_table = dict(file_cfg.get("task", {}))
    if click.get_current_context().get_parameter_source("task_name") == click.core.ParameterSource.DEFAULT:
        task_name = task_table.get("name", task_name)
    task_table.pop("name", None)
    data_path = data_path or task_table.pop("path", None)
    data_dir = data_dir or task_table.pop("data_dir", None)
    params = {**task_table, **_parse_task_params(task_params)}
    task = load_task_from_options(task_name, data_path, data_dir, params, seed=train_cfg.seed)
    from rsnn_deploy.profiles import is_xylo_profile

    if train_cfg.qat_profile and is_xylo_profile(train_cfg.qat_profile):  # Xylo's own model (rsnn_deploy/xylo/qat.py)
        from rsnn_deploy.xylo.qat import train_xylo_run

        m = train_xylo_run(task, model_over, train_cfg, out, overwrite=overwrite, log=None if quiet else click.echo)
        click.echo(f"{task.name} xylo ({model_over['n_hidden']} neurons, {m['profile']} grid): "
                   f"test {m['test_acc_fake_quant']:.4f} (fake-quant) -> {Path(out) / 'model.json'}")
        return
    model_cfg = model_config_for(task, **model_over)
    result = run_training(task, model_cfg, train_cfg, out, resume=resume, overwrite=overwrite, progress=not quiet)
    _echo_result(task, model_cfg, result)


def _echo_result(task: Any, model_cfg: Any, result: Any) -> None:
    m = result.metrics
    click.echo(
        f"{task.name} {model_cfg.variant} ({model_cfg.n_hidden} neurons): "
        f"val {m['val_acc']:.4f}  test {m['test_acc']:.4f}  rate {m['test_rate']:.4f}  -> {result.checkpoint}"
    )


# flags a resumed run may change: they decide where and how fast it runs, not what it computes
_RESUME_RUNTIME = {"device", "quiet", "threads", "data_dir"}


def _resume_from_recorded(out, flags, task_name, data_path, task_params, config, model_keys, train_keys, data_dir,
                          quiet) -> None:
    """``train --resume``: continue with the run's own recorded settings; a flag that contradicts them is refused.

    Why: a resume that took the command line's task or epochs would relabel or silently
    change a run (an mnist1d run continued as store-recall, ``--epochs 5`` ignored).
    """
    from rsnn_deploy.errors import ValidationError
    from rsnn_deploy.tasks import task_for_checkpoint
    from rsnn_deploy.train import read_resume_settings
    from rsnn_deploy.train import train as run_training

    ctx = click.get_current_context()
    rec = read_resume_settings(out)
    if config:
        raise ValidationError("--config: cannot be combined with --resume; a resume uses the run's recorded settings")
    by_name = {p.name: p for p in ctx.command.params}

    def given(name: str) -> bool:
        return ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE

    def flag(name: str) -> str:
        return max(by_name[name].opts, key=len)

    def refuse(name: str, recorded: Any, got: Any) -> None:
        raise ValidationError(
            f"{flag(name)}: conflicts with the run in {out} (recorded {recorded!r}, got {got!r}); "
            "--resume continues with the run's own settings: drop the flag, or start a new run with another -o"
        )

    rec_task = rec["task"]
    if given("task_name") and task_name != rec_task.get("name"):
        refuse("task_name", rec_task.get("name"), task_name)
    if given("data_path") and str(Path(data_path).expanduser().resolve()) != rec_task.get("params", {}).get("path"):
        refuse("data_path", rec_task.get("params", {}).get("path"), data_path)
    if given("task_params"):
        for key, value in _parse_task_params(task_params).items():
            if rec_task.get("params", {}).get(key) != value:
                refuse("task_params", f"{key}={rec_task.get('params', {}).get(key)!r}", f"{key}={value!r}")
    for name, value in flags.items():
        if value is None or name in _RESUME_RUNTIME or not given(name):
            continue
        section = rec["model"] if name in model_keys else rec["train"] if name in train_keys else None
        if section is not None and section.get(name) != value:
            refuse(name, section.get(name), value)
    # the run's own input code: its recorded encoder, else what its task and model sizes tell
    recorded = {"task": rec_task, "model": rec["model"], **({"encoder": rec["encoder"]} if "encoder" in rec else {})}
    task = task_for_checkpoint(recorded, data_dir=data_dir)
    result = run_training(task, rec["model_cfg"], rec["train_cfg"], out, resume=True,
                          device=flags.get("device"), progress=not quiet)
    _echo_result(task, rec["model_cfg"], result)


@cli.command()
@click.argument("checkpoint", type=click.Path())
@click.option("--split", type=click.Choice(["train", "test"]), default="test", show_default=True)
@click.option("--limit", type=click.IntRange(1), default=None, help="Score only the first N samples.")
@click.option("--data-dir", type=click.Path(), default=None)
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def evaluate(checkpoint, split, limit, data_dir, as_json) -> None:
    """Score a checkpoint on its task."""
    import numpy as np

    from rsnn_deploy.checkpoint import load_checkpoint
    from rsnn_deploy.tasks import task_for_checkpoint
    from rsnn_deploy.train import evaluate as run_eval

    ckpt = load_checkpoint(checkpoint)
    task = task_for_checkpoint(ckpt.meta, data_dir=data_dir)
    data = task.test if split == "test" else task.train
    if limit is not None:
        data = data.subset(np.arange(min(limit, len(data))))
    metrics = run_eval(ckpt.model, data)
    if as_json:
        click.echo(json.dumps(metrics))
    else:
        click.echo(f"{ckpt.name}: {split} accuracy {metrics['acc']:.4f} on {len(data)} samples, "
                   f"loss {metrics['loss']:.4f}, rate {metrics['rate']:.4f}")
