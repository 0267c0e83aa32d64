"""``rsnn-deploy xylo verify | export``: the Xylo pipeline on the command line (registered by ``rsnn_deploy.cli``)."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from rsnn_deploy.cli._app import cli
from rsnn_deploy.errors import ValidationError


def _default_model() -> Path:
    """The shipped Xylo model: the checkout's ``models/`` first, else the packaged copy."""
    repo = Path(__file__).resolve().parents[2] / "models" / "mnist1d8-xylo-audio2"
    if repo.with_suffix(".json").is_file():
        return repo
    return Path(__file__).resolve().parents[1] / "_models" / "mnist1d8-xylo-audio2"


def _data(meta: dict, split: str, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    from rsnn_deploy.tasks import load_task

    task_meta = meta.get("task", {})
    task = load_task(task_meta.get("name", "mnist1d"), **task_meta.get("params", {}))
    s = task.test if split == "test" else task.train
    keep = np.nonzero(s.labels < int(task_meta.get("classes", s.labels.max() + 1)))[0]
    if limit is not None:
        keep = keep[:limit]
    return s.spikes(keep), s.labels[keep]


def _backends(value: str) -> list[str]:
    from rsnn_deploy.xylo.verify import XYLO_BACKENDS

    names = [n.strip() for n in value.split(",") if n.strip()]
    for n in names:
        if n not in XYLO_BACKENDS:
            raise ValidationError(f"--backends: unknown Xylo backend {n!r}; use {', '.join(XYLO_BACKENDS)}")
    return names


def run_xylo_verify(
    checkpoint: str | None, target: str, split: str, limit: int | None, backends: str, out: str | None,
    overwrite: bool = False,
) -> dict:
    """Quantize a Xylo checkpoint for ``target`` and run the backends; print and optionally write the report."""
    from rsnn_deploy.io import artifact_inputs, check_writable_path, guard_outputs, write_json_atomic

    if out:  # refuse before any work: an existing report is the user's (--overwrite replaces it)
        check_writable_path(out, "-o", is_dir=True)
        guard_outputs([Path(out) / "report.json"], inputs=artifact_inputs(checkpoint) if checkpoint else [],
                      overwrite=overwrite)
    from rsnn_deploy.semantics.xylo_profile import load_xylo_profile
    from rsnn_deploy.xylo.quantize import quantize_model
    from rsnn_deploy.xylo.train import load_xylo_checkpoint
    from rsnn_deploy.xylo.verify import verify_xylo

    names = _backends(backends)
    model, meta = load_xylo_checkpoint(checkpoint or _default_model())
    profile = load_xylo_profile(target)
    x_cal, _ = _data(meta, "train", 200)
    net, qrep = quantize_model(model, profile, x_cal)
    x, y = _data(meta, split, limit)
    rep = verify_xylo(x, y, model, net, backends=names)
    rep["quantization"] = qrep
    for name, r in rep["backends"].items():
        click.echo(f"{name:>11}: accuracy {100 * r['accuracy']:.2f} % on {rep['n']} {split} samples")
    agr = rep.get("agreement_emulator_vs_xylosim_pct")
    if agr:
        click.echo("emulator vs xylosim: " + ", ".join(f"{k} {v:.3f} %" for k, v in agr.items()))
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        write_json_atomic(Path(out) / "report.json", rep)
        click.echo(f"report: {Path(out) / 'report.json'}")
    return rep


def run_xylo_quantize(checkpoint: str, target: str, out: str, overwrite: bool = False) -> None:
    """``rsnn-deploy quantize CKPT --target xylo-*``: a Xylo checkpoint -> ``OUT.json`` (Rockpool spec) +
    ``OUT.report.json``; a Loihi-style checkpoint is refused in one line."""
    from rsnn_deploy.errors import UnsupportedError
    from rsnn_deploy.io import artifact_inputs, check_writable_path, guard_outputs, read_json_object, write_json_atomic
    from rsnn_deploy.semantics.xylo_profile import load_xylo_profile
    from rsnn_deploy.xylo.export import write_spec
    from rsnn_deploy.xylo.quantize import quantize_model
    from rsnn_deploy.xylo.train import FORMAT, load_xylo_checkpoint

    check_writable_path(out, "-o")
    stem = Path(out).with_suffix("")
    guard_outputs([stem.with_suffix(".json"), f"{stem}.report.json"], inputs=artifact_inputs(checkpoint),
                  overwrite=overwrite)
    js = Path(checkpoint).with_suffix(".json")
    if js.is_file() and read_json_object(js).get("format") != FORMAT:
        raise UnsupportedError(
            f"{js}: an rsnn-deploy (Loihi-style) checkpoint does not map onto {target}: Xylo resets by "
            "subtraction, spikes on v >= th and filters its input; train a XyloRSNN (docs/xylo.md)"
        )
    model, meta = load_xylo_checkpoint(checkpoint)
    x_cal, _ = _data(meta, "train", 200)
    net, rep = quantize_model(model, load_xylo_profile(target), x_cal)
    write_spec(net, stem.with_suffix(".json"))
    write_json_atomic(f"{stem}.report.json", rep)
    taus = ", ".join(f"{t['tau']} {t['trained_ms']['mean']:.3g} -> {t['grid_ms']} ms" for t in rep["time_constants"])
    click.echo(f"{Path(checkpoint).stem} -> {rep['profile']}: shifts {rep['weight_shift']}, {taus} -> {stem}.json")


@cli.group()
def xylo() -> None:
    """SynSense Xylo (profiles xylo-audio2, xylo-imu): verify against xylosim, export for Rockpool."""


@xylo.command(name="verify")
@click.argument("checkpoint", type=click.Path(), required=False)
@click.option("--target", default="xylo-audio2", show_default=True, help="xylo-audio2, xylo-imu or a .toml path.")
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True)
@click.option("--limit", type=click.IntRange(1), default=None, help="Samples (default: the whole split).")
@click.option("--backends", default="float,fake-quant,emulator,xylosim", show_default=True)
@click.option("-o", "--out", type=click.Path(), default=None, help="Folder for report.json.")
@click.option("--overwrite", is_flag=True, help="Replace an existing OUT/report.json.")
def xylo_verify(
    checkpoint: str | None, target: str, split: str, limit: int | None, backends: str, out: str | None,
    overwrite: bool,
) -> None:
    """Float -> fake-quant -> our emulator -> xylosim for a Xylo checkpoint (default: the shipped one)."""
    run_xylo_verify(checkpoint, target, split, limit, backends, out, overwrite)


@xylo.command(name="export")
@click.argument("checkpoint", type=click.Path(), required=False)
@click.option("--target", default="xylo-audio2", show_default=True)
@click.option("--format", "fmt", type=click.Choice(["spec", "nir"]), default="spec", show_default=True,
              help="spec: XyloSim.from_specification JSON (bit-exact); nir: a NIR graph Rockpool's from_nir loads "
                   "(nir 1.0.4, one synaptic current, float dynamics).")
@click.option("-o", "--out", required=True, type=click.Path(), help="The file to write.")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
def xylo_export(checkpoint: str | None, target: str, fmt: str, out: str, overwrite: bool) -> None:
    """Write a Xylo checkpoint for Rockpool: ``XyloSim.from_specification`` keyword arguments (JSON) or NIR."""
    from rsnn_deploy.io import artifact_inputs, guard_outputs
    from rsnn_deploy.semantics.xylo_profile import load_xylo_profile
    from rsnn_deploy.xylo.export import write_spec
    from rsnn_deploy.xylo.quantize import quantize_model
    from rsnn_deploy.xylo.train import load_xylo_checkpoint

    guard_outputs([out], inputs=artifact_inputs(checkpoint) if checkpoint else [], overwrite=overwrite)
    model, meta = load_xylo_checkpoint(checkpoint or _default_model())
    x_cal, _ = _data(meta, "train", 200)
    net, _ = quantize_model(model, load_xylo_profile(target), x_cal)
    if fmt == "nir":
        from rsnn_deploy.xylo.nir import write_xylo_nir

        write_xylo_nir(net, out)
    else:
        write_spec(net, out)
    sizes = {"hidden": net.n_hidden, "inputs": net.n_in, "outputs": net.n_out}
    click.echo(json.dumps({"wrote": out, "format": fmt, **sizes}))
