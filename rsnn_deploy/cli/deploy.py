"""``rsnn-deploy quantize | compile | verify | model-card``: from a float checkpoint to a verified deployment.

Registered on the ``cli`` group of :mod:`rsnn_deploy.cli` when that module loads its
optional commands. Every refusal is an :class:`~rsnn_deploy.errors.RsnnError`, which
``rsnn_deploy.cli.main`` prints as one line (exit code 2).

Examples
--------
::

    rsnn-deploy quantize models/mnist1d-rec-syn-loihi1 --target loihi1 -o q/mnist1d
    rsnn-deploy compile q/mnist1d --backend nengo-loihi -o q/mnist1d.compile.json
    rsnn-deploy verify --default -o report
    rsnn-deploy verify CKPT --target loihi1 --backends torch-float,emulator --fail-over 1.0 -o report
    rsnn-deploy model-card models/NAME --target loihi1 -o models/NAME.md
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import numpy as np

from rsnn_deploy.cli._app import cli
from rsnn_deploy.errors import ValidationError

__all__ = ["model_card_cost", "model_card_markdown", "quantize_report_markdown", "training_command"]


def _progress_enabled(quiet: bool) -> bool:
    return not quiet


def _profile_inputs(target: str | None) -> list[str]:
    """A profile given as a TOML path is an input too (never to be overwritten)."""
    return [target] if target and (target.endswith(".toml") or "/" in target) else []


def profile_option(f):
    """``--profile PATH``: the TOML a quantized network was made for, when it is not a built-in profile."""
    return click.option("--profile", "profile_path", type=click.Path(), default=None, metavar="PATH",
                        help="Hardware profile TOML the network was quantized with (needed for your own profiles).")(f)


def use_profile(profile_path: str | None) -> None:
    """Make ``--profile PATH`` known by its name, so every later ``load_profile(qnet.profile)`` finds it."""
    if profile_path:
        from rsnn_deploy.hardware import register_profile

        register_profile(profile_path)


# ----------------------------------------------------------------------------- quantize


def quantize_report_markdown(report: dict[str, Any], source: str) -> str:
    """``OUT.report.md``: time constants trained vs effective, weight bits, clipping, headroom, placement."""
    lines = [f"# Quantization of {source} for {report['profile']}", "",
             f"- block scale(s) (integer units per float unit): {', '.join(f'{s:g}' for s in report['float_scale'])}",
             f"- threshold: float {report['threshold']['float']:g} -> integer {report['threshold']['int']}",
             f"- clipped weights: {report['clipped_weights']}", "",
             "| time constant | trained (ms) | decay register | effective (ms) | relative error |",
             "|---|---:|---:|---:|---:|"]
    for t in report["time_constants"]:
        def one(v: Any) -> str:
            return f"{np.mean(v):.4g} (mean)" if isinstance(v, list) else f"{v:.4g}"

        d = "per neuron" if isinstance(t["decay_int"], list) else t["decay_int"]
        lines.append(f"| {t['name']} | {one(t['trained_ms'])} | {d} | {one(t['effective_ms'])} | "
                     f"{100 * t['max_rel_error']:.2f} % |")
    lines += ["", "| connection | block | exponent | step | bits used | levels | clipped | zeroed | RMS error (rel.) |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {w['connection']} | {w['block']} | {w['exponent']} | {w['step']} | {w['bits_used']} | "
              f"{w['levels_used']} | {w['clipped']} | {w['zeroed']} | {w['rms_error_rel']:.2e} |"
              for w in report["weights"]]
    head = report.get("headroom_float_calibration")
    if head:
        lines += ["", "| state | predicted peak | wrap limit | fraction used |", "|---|---:|---:|---:|"]
        lines += [f"| {k} | {v['predicted_peak']:.0f} | {v['limit']} | {100 * v['fraction']:.1f} % |"
                  for k, v in head.items()]
    pl = report["placement"]
    lines += ["", f"Placement: {pl['cores']} core(s), {pl['input_axons']} input axons, {pl['output_axons']} output "
              f"axons, {pl['synapse_bits']} synapse bits.", ""]
    return "\n".join(lines)


@cli.command()
@click.argument("checkpoint", type=click.Path())
@click.option("--target", required=True, help="Hardware profile: loihi1, loihi2 or a .toml path.")
@click.option("-o", "--out", required=True, type=click.Path(), help="Output stem: writes OUT.{safetensors,json}.")
@click.option("--calib", type=click.IntRange(0), default=200, show_default=True,
              help="Training samples used to calibrate the scale (0: none).")
@click.option("--data-dir", type=click.Path(), default=None, help="Folder of the Fashion-MNIST IDX files.")
@click.option("--overwrite", is_flag=True, help="Replace existing output files (never the input checkpoint).")
def quantize(checkpoint: str, target: str, out: str, calib: int, data_dir: str | None, overwrite: bool) -> None:
    """Quantize a float checkpoint for a hardware profile; write the QuantizedNetwork and its report."""
    from rsnn_deploy.checkpoint import load_checkpoint
    from rsnn_deploy.io import artifact_inputs, check_writable_path, guard_outputs, write_json_atomic, write_text_atomic
    from rsnn_deploy.profiles import is_xylo_profile
    from rsnn_deploy.qnet import qnet_paths, save_qnet
    from rsnn_deploy.verify import quantize_checkpoint

    if is_xylo_profile(target):  # Xylo checkpoints and integers have their own types (rsnn_deploy/xylo/)
        from rsnn_deploy.cli.xylo import run_xylo_quantize

        run_xylo_quantize(checkpoint, target, out, overwrite)
        return
    check_writable_path(out, "-o")
    st_out, json_out = qnet_paths(out)
    stem = json_out.with_suffix("")
    guard_outputs([st_out, json_out, f"{stem}.report.json", f"{stem}.report.md"],
                  inputs=[*artifact_inputs(checkpoint), *_profile_inputs(target)], overwrite=overwrite)
    ckpt = load_checkpoint(checkpoint)
    qnet, report = quantize_checkpoint(ckpt, target, calib, data_dir=data_dir)
    json_path = save_qnet(qnet, stem, checkpoint=str(ckpt.path), calibration_samples=calib, quantize_report=report)
    write_json_atomic(f"{stem}.report.json", report)
    write_text_atomic(f"{stem}.report.md", quantize_report_markdown(report, ckpt.name))
    taus = ", ".join(f"{t['name']} {t['trained_ms']} -> {t['effective_ms']:.4g} ms" for t in report["time_constants"]
                     if not isinstance(t["effective_ms"], list))
    click.echo(f"{ckpt.name} -> {report['profile']}: {report['placement']['cores']} core(s), threshold "
               f"{report['threshold']['int']}, {taus}; clipped weights {report['clipped_weights']} -> {json_path}")


# ----------------------------------------------------------------------------- compile


def _file_format(path: str) -> str | None:
    from rsnn_deploy.qnet import qnet_paths

    js = qnet_paths(path)[1]
    try:
        return json.loads(js.read_text()).get("format")
    except (OSError, ValueError, AttributeError, RecursionError):
        return None


@cli.command(name="compile")
@click.argument("source", type=click.Path())
@click.option("--backend", type=click.Choice(["nengo-loihi", "nengo"]), default="nengo-loihi", show_default=True)
@click.option("--steps", type=click.IntRange(1), default=100, show_default=True,
              help="Steps of the random-input parity run after the build.")
@click.option("-o", "--out", type=click.Path(), default=None, help="Write the build summary as JSON.")
@click.option("--overwrite", is_flag=True, help="Replace an existing summary file.")
@profile_option
def compile_(source: str, backend: str, steps: int, out: str | None, overwrite: bool,
             profile_path: str | None) -> None:
    """Build a QuantizedNetwork (or a float checkpoint, --backend nengo) as a Nengo network and check it.

    nengo-loihi: the integers nengo-loihi discretizes are read back and must equal the
    QuantizedNetwork's; then one random input runs on nengo-loihi and on the emulator and
    must agree spike for spike. Nengo networks cannot be saved safely (no pickle), so -o
    writes a JSON summary of the build instead.
    """
    from rsnn_deploy.backends.nengo import compile_float, compile_qnet
    from rsnn_deploy.io import artifact_inputs, guard_outputs, write_json_atomic

    if out is not None:
        guard_outputs([out], inputs=[*artifact_inputs(source), *_profile_inputs(profile_path)], overwrite=overwrite)
    use_profile(profile_path)
    fmt = _file_format(source)
    if fmt == "rsnn-deploy/checkpoint":
        if backend != "nengo":
            raise ValidationError(
                f"compile: {source} is a float checkpoint; quantize it first "
                f"(rsnn-deploy quantize {source} --target loihi1 -o Q) or use --backend nengo for the float network"
            )
        from rsnn_deploy.checkpoint import load_checkpoint

        summary = compile_float(load_checkpoint(source).model, check_steps=steps)
        p = summary["parity"]
        click.echo(f"float network in nengo core ({summary['neuron_type']}): spike agreement with torch "
                   f"{100 * p['spike_agreement']:.3f} % over {steps} steps")
    else:
        from rsnn_deploy.qnet import load_qnet

        summary = compile_qnet(load_qnet(source), backend, check_steps=steps)
        p = summary["parity"]
        if backend == "nengo-loihi":
            blocks = summary["blocks"]
            click.echo(f"nengo-loihi: {len(blocks)} block(s) {[b['compartments'] for b in blocks]}, weight exponents "
                       f"{[[s['weight_exp'] for s in b['synapses']] for b in blocks]}, anchor channel "
                       f"{'yes' if summary['anchor_channel'] else 'no'}; integers read back: identical")
        else:
            click.echo(f"nengo core: {summary['neuron_type']}")
        click.echo(f"parity run ({steps} steps, {p['spikes']} spikes): identical to the emulator")
    if out:
        write_json_atomic(out, summary)
        click.echo(f"summary -> {out}")


# ----------------------------------------------------------------------------- verify


def _backend_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise ValidationError(f"--backends: give a comma-separated list (got {value!r})")
    return names


@cli.command(name="verify")
@click.argument("checkpoint", type=click.Path(), required=False)
@click.option("--default", "use_default", is_flag=True, help="Verify the shipped default model.")
@click.option("--target", default=None, help="Hardware profile (default: the checkpoint's QAT profile).")
@click.option("--backends", default=None,
              help="Comma-separated backends (default torch-float,torch-fakequant,emulator,nengo,nengo-loihi).")
@click.option("--split", type=click.Choice(["test", "val", "train"]), default="test", show_default=True)
@click.option("--limit", type=click.IntRange(1), default=None, help="Samples for the fast backends (default: all).")
@click.option("--slow-limit", type=click.IntRange(1), default=100, show_default=True,
              help="Samples for the slow backends (nengo, nengo-loihi).")
@click.option("--qnet", "qnet_path", type=click.Path(), default=None, help="Use this quantized network.")
@click.option("--calib", type=click.IntRange(0), default=200, show_default=True)
@click.option("--fail-over", type=float, default=None, metavar="PP",
              help="Exit non-zero when the float -> emulator gap exceeds PP percentage points.")
@click.option("--data-dir", type=click.Path(), default=None)
@click.option("--no-figures", is_flag=True, help="Skip the PNG figures.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--overwrite", is_flag=True, help="Replace an existing report in OUT.")
@profile_option
@click.option("-o", "--out", required=True, type=click.Path(), help="Report folder.")
def verify_cmd(checkpoint: str | None, use_default: bool, target: str | None, backends: str | None, split: str,
               limit: int | None, slow_limit: int, qnet_path: str | None, calib: int, fail_over: float | None,
               data_dir: str | None, no_figures: bool, quiet: bool, overwrite: bool, profile_path: str | None,
               out: str) -> None:
    """Run the backends on the same encoded inputs; write report.json, report.md and figures to OUT."""
    from rsnn_deploy.backends import load_plugins
    from rsnn_deploy.io import artifact_inputs, check_writable_path, guard_outputs
    from rsnn_deploy.report import FIGURES, gap_table, write_report
    from rsnn_deploy.verify import check_fail_over, default_checkpoint, verify

    if use_default and checkpoint:
        raise ValidationError("verify: pass either CHECKPOINT or --default, not both")
    from rsnn_deploy.profiles import is_xylo_profile

    if target and is_xylo_profile(target):  # Xylo has its own model and pipeline (rsnn_deploy/xylo/)
        from rsnn_deploy.cli.xylo import run_xylo_verify

        run_xylo_verify(None if use_default else checkpoint, target, "train" if split == "train" else "test", limit,
                        backends or "float,fake-quant,emulator,xylosim", out, overwrite)
        return
    path = default_checkpoint() if (use_default or not checkpoint) else checkpoint
    folder = check_writable_path(out, "-o", is_dir=True)
    inputs: list[str | Path] = [*artifact_inputs(path), *(artifact_inputs(qnet_path) if qnet_path else []),
                                *_profile_inputs(target), *_profile_inputs(profile_path)]
    guard_outputs([folder / n for n in ("report.json", "report.md", *([] if no_figures else FIGURES))],
                  inputs=inputs, overwrite=overwrite)
    use_profile(profile_path)
    import torch

    from rsnn_deploy.threads import default_threads

    torch.set_num_threads(default_threads()[0])  # all cores made every backend wait on a loaded machine
    load_plugins()
    result = verify(path, target, backends=_backend_list(backends), split=split, limit=limit, slow_limit=slow_limit,
                    qnet_path=qnet_path, calib=calib, data_dir=data_dir, progress=_progress_enabled(quiet))
    write_report(result, out, figures=not no_figures)
    rep = result.report
    click.echo(f"{rep['checkpoint']['name']} on {rep['profile']} ({rep['split']} split)")
    click.echo(gap_table(rep))
    if rep.get("cost"):
        from rsnn_deploy.cost import cost_headline

        click.echo(cost_headline(rep["cost"]))
    click.echo(f"report: {Path(out) / 'report.md'} (total {rep['wall_time_s']['total']:.1f} s)")
    check_fail_over(result, fail_over, out)


# ----------------------------------------------------------------------------- model card

_FLAG_OF = {
    "n_hidden": "--hidden", "tau_mem_ms": "--tau-mem", "tau_syn_ms": "--tau-syn", "tau_adapt_ms": "--tau-adapt",
    "tau_out_ms": "--tau-out", "adapt_kind": "--adapt-kind", "adapt_strength": "--adapt-strength",
    "refractory_steps": "--refractory", "v_floor": "--v-floor", "surrogate": "--surrogate",
    "surrogate_slope": "--slope", "dt_ms": "--dt", "tau_refr_ms": "--tau-refr",
}
_TRAIN_FLAG_OF = {"epochs": "--epochs", "batch_size": "--batch-size", "lr": "--lr", "rate_reg": "--rate-reg",
                  "target_rate": "--target-rate", "limit": "--limit", "seed": "--seed", "qat_profile": "--qat"}


def training_command(meta: dict[str, Any], out: str = "OUT") -> str:
    """The ``rsnn-deploy train`` command that reproduces a checkpoint, rebuilt from its recorded configs.

    Only values that differ from the defaults are spelled out (plus the essentials), so
    the command stays short and still determines the run.
    """
    from rsnn_deploy.config import ModelConfig, TrainConfig

    model, train = meta.get("model") or {}, meta.get("train") or {}
    task = meta.get("task") or {}
    parts = ["rsnn-deploy train", f"--task {task.get('name', '?')}", f"--variant {model.get('variant', 'rec-syn')}"]
    defaults = ModelConfig.model_fields
    for key, flag in _FLAG_OF.items():
        if key in model and (key == "n_hidden" or model[key] != defaults[key].default):
            parts.append(f"{flag} {model[key]:g}" if isinstance(model[key], float) else f"{flag} {model[key]}")
    if model.get("train_tau"):
        parts.append("--train-tau")
    tdefaults = TrainConfig.model_fields
    for key, flag in _TRAIN_FLAG_OF.items():
        if train.get(key) is not None and (key in ("epochs", "seed") or train[key] != tdefaults[key].default):
            parts.append(f"{flag} {train[key]:g}" if isinstance(train[key], float) else f"{flag} {train[key]}")
    return " ".join(parts) + f" -o {out}"


def model_card_markdown(report: dict[str, Any], meta: dict[str, Any], command: str, files: dict[str, int]) -> str:
    """A model card: what the model is, how it was trained, and what survives on hardware (with sample counts)."""
    ck, b = report["checkpoint"], report["backends"]
    model = meta.get("model") or {}

    def row(name: str, label: str) -> str:
        r = b[name]
        lo, hi = r["ci95"]
        return (f"| {label} | {100 * r['accuracy']:.2f} % | [{100 * lo:.1f}, {100 * hi:.1f}] % | {r['samples']} | "
                f"{r['mean_rate']:.4f} |")

    lines = [f"# {ck['name']}", "",
             f"Recurrent spiking network for `{ck['task']}` (variant `{ck['variant']}`, {ck['neurons']} hidden "
             f"neurons, {model.get('n_in')} inputs, {model.get('n_out')} classes), trained with quantization-aware "
             f"training for `{report['profile']}`.", "", "## Training", "", "```", command, "```", "",
             f"Validation accuracy (float, best epoch): {ck['training_metrics'].get('val_acc')}; "
             f"epochs run: {ck['training_metrics'].get('epochs_run')}.", "",
             f"## Accuracy on the `{report['split']}` split", "",
             "| backend | accuracy | 95 % interval (Wilson) | samples | mean rate (spikes/step) |",
             "|---|---:|---|---:|---:|"]
    labels = {"torch-float": "float (torch)", "torch-fakequant": "fake-quant (torch)",
              "emulator": f"emulated ({report['profile']} integers)", "nengo-loihi": "nengo-loihi (target='sim')",
              "nengo": "nengo core (integer neuron type)",
              "lava": "Lava 0.10 (its fixed-point LIF/ATRLIF + Dense processes)"}
    lines += [row(name, labels.get(name, name)) for name in b]
    lines += ["", "| gap | pp | samples |", "|---|---:|---:|"]
    lines += [f"| {g['from']} -> {g['to']} | {g['gap_pp']:+.2f} | {g['samples']} |" for g in report["gaps"]]
    for key, a in report["agreement"].items():
        lines.append("")
        lines.append(f"Spikes {key.replace('_vs_', ' vs ')}: {100 * a['spike_agreement']:.3f} % agreement on "
                     f"{a['samples']} samples ({'identical' if not a['bug'] else 'DIVERGES: a bug'}).")
    for s in report.get("skipped_backends", []):
        lines.append(f"\n{s['backend']}: not run ({s['reason']}).")
    if "nengo-loihi" not in b and "nengo" in b:
        lines += ["", "nengo-loihi: not applicable (it emulates Loihi 1, which has no adaptation; nengo-loihi builds "
                  "`nengo.AdaptiveLIF` as plain LIF). The integer network runs in nengo core through a custom neuron "
                  "type whose step is the profile's integer arithmetic"
                  + (", and on Lava's own processes (the `lava` backend, the bundle of "
                     "`rsnn-deploy export --format lava`)." if "lava" in b else ".")]
    q = report["quantization"]
    lines += ["", "## Neurons and time constants", "",
              f"- threshold {model.get('threshold')} (integer {q['vth']}), voltage floor {model.get('v_floor')}, "
              f"refractory steps {model.get('refractory_steps')}, readout `{model.get('readout_mode')}` "
              f"(tau_out {model.get('tau_out_ms')} ms)",
              f"- block sizes {q['block_sizes']} ({report['resources']['cores']} core(s), "
              f"{report['resources']['synapse_bits']} synapse bits)", "",
              "| time constant | trained (ms) | effective on hardware (ms) | relative error |", "|---|---:|---:|---:|"]
    for t in q.get("time_constants") or []:
        def one(v: Any) -> str:
            return f"{np.mean(v):.4g} (mean)" if isinstance(v, list) else f"{v:.4g}"

        lines.append(f"| {t['name']} | {one(t['trained_ms'])} | {one(t['effective_ms'])} | "
                     f"{100 * t['max_rel_error']:.2f} % |")
    lines += model_card_cost(report)
    lines += ["", "## Files", ""] + [f"- `{name}`: {size} bytes" for name, size in files.items()]
    lines += ["", "Generated by `rsnn-deploy model-card`; reproduce the numbers with "
              f"`rsnn-deploy verify {ck['path'].removesuffix('.json')} --target {report['profile']} -o report`.", ""]
    return "\n".join(lines)


def model_card_cost(report: dict[str, Any]) -> list[str]:
    """The model card's ``## Cost on the chip`` section (from ``report['cost']``, :mod:`rsnn_deploy.cost`)."""
    c = report.get("cost")
    if not c:
        return []
    ev, nb = c["synaptic_events"]["per_sample"], c["neurobench"]
    sp = c["spikes"]["hidden_per_sample"]
    lines = ["", "## Cost on the chip", "",
             f"Exact counts from the emulator's integer traces on the {c['samples']} `{report['split']}` samples "
             f"({c['steps']} steps each); per sample:", "",
             "| synaptic events (input) | synaptic events (recurrent) | readout on host | hidden spikes | "
             "activation sparsity | energy per inference | latency per inference |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    en, la = c["energy"], c["latency"]
    energy = f"{en['per_inference_nj']['mean']:,.1f} nJ" if en["available"] else f"not reported ({en['reason']})"
    latency = f"{la['per_inference_us']['mean']:,.1f} us" if la["available"] else "not reported"
    lines.append(f"| {ev['input']['mean']:,.0f} | {ev['recurrent']['mean']:,.0f} | {ev['readout']['mean']:,.0f} | "
                 f"{sp['mean']:,.1f} | {nb['ActivationSparsity']:.4f} | {energy} | {latency} |")
    st = c.get("static") or {}
    lines += ["", f"NeuroBench (2.3 definitions): Effective_ACs {nb['SynapticOperations']['Effective_ACs']:,.0f}, "
              f"Dense {nb['SynapticOperations']['Dense'] or 0:,}, MembraneUpdates "
              f"{nb['MembraneUpdates'] or 0:,.0f}, ConnectionSparsity {nb['ConnectionSparsity']:.4f}, "
              f"Footprint {st.get('footprint_bytes', 0):,} bytes on the chip."]
    if en["available"] or la["available"]:
        lines.append(f"Energy and latency: counts x the `[cost]` figures of `{c['profile']}` ({c.get('cost_source')}); "
                     f"energy excludes {en.get('excludes', 'host work')}.")
    return lines


@cli.command(name="model-card")
@click.argument("checkpoint", type=click.Path())
@click.option("--target", default=None, help="Hardware profile (default: the checkpoint's QAT profile).")
@click.option("--training-command", "train_cmd", default=None,
              help="The exact training command (default: rebuilt from the checkpoint's JSON).")
@click.option("--slow-limit", type=click.IntRange(1), default=300, show_default=True,
              help="Test samples for nengo-loihi / nengo / lava.")
@click.option("--data-dir", type=click.Path(), default=None)
@click.option("--quiet", is_flag=True)
@click.option("--overwrite", is_flag=True, help="Replace an existing model card (never the checkpoint).")
@click.option("-o", "--out", required=True, type=click.Path(), help="Markdown file to write.")
def model_card(checkpoint: str, target: str | None, train_cmd: str | None, slow_limit: int, data_dir: str | None,
               quiet: bool, overwrite: bool, out: str) -> None:
    """Write a model card: training command, float / emulated / nengo-loihi accuracy with sample counts, gap, taus."""
    from rsnn_deploy.checkpoint import checkpoint_paths, load_checkpoint
    from rsnn_deploy.hardware import load_profile
    from rsnn_deploy.io import artifact_inputs, guard_outputs, write_text_atomic
    from rsnn_deploy.verify import target_of, verify

    guard_outputs([out], inputs=[*artifact_inputs(checkpoint), *_profile_inputs(target)], overwrite=overwrite)
    ckpt = load_checkpoint(checkpoint)
    prof = target_of(ckpt, target)
    from rsnn_deploy import semantics

    # loihi1: nengo-loihi; loihi2: nengo core and Lava's own processes
    deploy_backends = semantics.for_profile(load_profile(prof)).deploy_backends
    integer = deploy_backends[0]
    chosen = ["torch-float", "emulator", *deploy_backends]
    result = verify(checkpoint, prof, backends=chosen, slow_limit=slow_limit, data_dir=data_dir,
                    progress=not quiet)
    st, js = checkpoint_paths(checkpoint)
    files = {p.name: p.stat().st_size for p in (st, js)}
    text = model_card_markdown(result.report, ckpt.meta, train_cmd or training_command(ckpt.meta), files)
    write_text_atomic(out, text)
    b = result.report["backends"]
    click.echo(f"{ckpt.name}: float {100 * b['torch-float']['accuracy']:.2f} %, emulated "
               f"{100 * b['emulator']['accuracy']:.2f} %, {integer} {100 * b[integer]['accuracy']:.2f} % "
               f"({b[integer]['samples']} samples)"
               + (f", lava {100 * b['lava']['accuracy']:.2f} %" if "lava" in b else "") + f" -> {out}")
