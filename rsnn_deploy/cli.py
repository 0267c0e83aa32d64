"""The ``rsnn-deploy`` command line.

One boundary for errors (as Optuna's ``cli.main``): anything derived from
:class:`RsnnError` prints one line and exits with code 2; ``--debug`` (or
``RSNN_DEPLOY_DEBUG=1``) shows the traceback instead.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from typing import Any

import click

from rsnn_deploy.errors import RsnnError

warnings.filterwarnings("ignore", message="This version of `nengo_loihi` has not been tested")


def _merge_config_file(config: str | None) -> dict[str, Any]:
    if not config:
        return {}
    from rsnn_deploy.config import read_config_file

    return read_config_file(config)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.version_option(package_name="rsnn-deploy")
def cli(debug: bool) -> None:
    """Train recurrent spiking networks, quantize them for a chip, and verify what survives."""


# ----------------------------------------------------------------------------- train


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
@click.option("--adapt-kind", type=click.Choice(["threshold", "current"]), default=None)
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
@click.option("--limit", type=int, default=None, help="Use only the first N training samples.")
@click.option("--seed", type=int, default=None)
@click.option("--device", default=None, help="cpu (default) or cuda.")
@click.option("--engine", type=click.Choice(["auto", "eager", "fast"]), default=None)
@click.option("--qat", "qat_profile", default=None, metavar="PROFILE",
              help="Quantization-aware training for a hardware profile (loihi1, loihi2 or a .toml path).")
@click.option("--config", type=click.Path(), default=None,
              help="TOML/JSON file with [model], [train] and [task] (name, task parameters) tables; flags win.")
@click.option("--resume", is_flag=True, help="Continue the interrupted run in OUT.")
@click.option("--overwrite", is_flag=True, help="Replace a finished run in OUT.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--threads", type=int, default=None,
              help="torch CPU threads (1 is often fastest for small networks on a busy machine).")
@click.option("-o", "--out", type=click.Path(), required=True, help="Output folder of the run.")
def train(task_name, data_path, data_dir, task_params, config, resume, overwrite, quiet, threads, out,
          **flags) -> None:
    """Train an RSNN variant; write the best checkpoint to OUT/model.{safetensors,json}."""
    if threads is not None:
        import torch

        torch.set_num_threads(max(1, threads))
    from rsnn_deploy.config import ModelConfig, TrainConfig, validate_config
    from rsnn_deploy.train import model_config_for
    from rsnn_deploy.train import train as run_training

    file_cfg = _merge_config_file(config)
    model_keys = set(ModelConfig.model_fields)
    train_keys = set(TrainConfig.model_fields)
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
    model_cfg = model_config_for(task, **model_over)
    result = run_training(task, model_cfg, train_cfg, out, resume=resume, overwrite=overwrite, progress=not quiet)
    m = result.metrics
    click.echo(
        f"{task.name} {model_cfg.variant} ({model_cfg.n_hidden} neurons): "
        f"val {m['val_acc']:.4f}  test {m['test_acc']:.4f}  rate {m['test_rate']:.4f}  -> {result.checkpoint}"
    )


@cli.command()
@click.argument("checkpoint", type=click.Path())
@click.option("--split", type=click.Choice(["train", "test"]), default="test", show_default=True)
@click.option("--limit", type=int, default=None, help="Score only the first N samples.")
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


def _register_optional_commands() -> None:
    """Commands that live in their own modules register themselves on ``cli``."""
    import importlib

    for mod in ("rsnn_deploy.cli_deploy", "rsnn_deploy.cli_tune", "rsnn_deploy.cli_export", "rsnn_deploy.cli_hil",
                "rsnn_deploy.cli_xylo"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as err:
            if err.name != mod:
                raise


def main(argv: list[str] | None = None) -> int:
    """Entry point: one line per user error (exit 2), tracebacks only with --debug."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("RSNN_DEPLOY_DEBUG") == "1"
    _register_optional_commands()
    try:
        cli.main(args=args, prog_name="rsnn-deploy", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as err:
        err.show()
        return err.exit_code
    except RsnnError as err:
        if debug:
            raise
        click.echo(f"rsnn-deploy: error: {err}", err=True)
        return 2
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    return 0


if __name__ == "__main__":
    # run the registered copy, not this __main__ module, so that optional command modules are on it
    from rsnn_deploy.cli import main as _main

    sys.exit(_main())
