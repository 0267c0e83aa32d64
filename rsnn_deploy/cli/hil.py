"""``rsnn-deploy hil``: stream spikes into a quantized network step by step (registered on ``cli``).

The command-line face of :mod:`rsnn_deploy.hil`: the host loop one chip runs, with
live progress, per-step latency and the decision per sequence. It exists so that the
streaming path (the one a closed-loop application uses) can be checked against the
offline ``verify`` numbers on any recorded input, without writing Python.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from rsnn_deploy.cli._app import cli

_MAX_PRINTED = 20


def _format_decisions(pred: list[int]) -> str:
    shown = " ".join(str(p) for p in pred[:_MAX_PRINTED])
    return shown + (f" ... ({len(pred) - _MAX_PRINTED} more, see -o)" if len(pred) > _MAX_PRINTED else "")


@cli.command("hil")
@click.option("--model", "model_path", type=click.Path(), required=True, metavar="QNET",
              help="Quantized network (NAME, NAME.json or NAME.safetensors).")
@click.option("--backend", type=click.Choice(["emulator", "onnx", "nengo-loihi"]), default="emulator",
              show_default=True, help="What runs the chip steps: our integer step, the exported ONNX step graph "
              "(onnxruntime), or nengo_loihi.Simulator.")
@click.option("--stream", "stream_path", type=click.Path(), required=True, metavar="FILE",
              help=".npz with x: [T, C] or [N, T, C] 0/1 spikes (optional y: [N] labels); "
              "rsnn-deploy encode makes one from raw signals.")
@click.option("--steps", type=int, default=None,
              help="Steps to stream per sequence (default: all T; beyond T the input is silent).")
@click.option("--target", type=click.Choice(["sim", "loihi"]), default="sim", show_default=True,
              help="nengo-loihi only: its emulator (sim) or a real board (loihi: needs NxSDK; untested).")
@click.option("-o", "--out", type=click.Path(), default=None, help="Write decisions and latencies as JSON here.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--overwrite", is_flag=True, help="Replace an existing -o file.")
@click.option("--profile", "profile_path", type=click.Path(), default=None, metavar="PATH",
              help="Hardware profile TOML the network was quantized with (needed for your own profiles).")
def hil_cmd(model_path: str, backend: str, stream_path: str, steps: int | None, target: str, out: str | None,
            quiet: bool, overwrite: bool, profile_path: str | None) -> None:
    """Stream FILE into QNET one step at a time on BACKEND; print latency and decisions.

    Every sequence starts from rest. Each chip step is timed on the host (frame in,
    chip step, readout, decision). The spikes equal the batched emulator's bit for bit
    on every backend; the decision after the last step is the offline prediction.
    """
    import numpy as np
    from tqdm import tqdm

    from rsnn_deploy.errors import ValidationError
    from rsnn_deploy.hil import latency_summary, load_stream, stream
    from rsnn_deploy.io import write_json_atomic
    from rsnn_deploy.qnet import load_qnet

    if target != "sim" and backend != "nengo-loihi":
        raise ValidationError(f"hil --target: only --backend nengo-loihi has targets (got --target {target} "
                              f"with --backend {backend})")
    if steps is not None and steps < 1:
        raise ValidationError(f"hil --steps: must be at least 1 (got {steps})")
    from rsnn_deploy.cli.deploy import _profile_inputs, use_profile
    from rsnn_deploy.io import artifact_inputs, guard_outputs

    if out is not None:
        guard_outputs([out], inputs=[*artifact_inputs(model_path), stream_path, *_profile_inputs(profile_path)],
                      overwrite=overwrite)
    use_profile(profile_path)
    qnet = load_qnet(model_path)
    data = load_stream(stream_path, qnet.n_inputs)
    n, t_file, _ = data.x.shape
    t_steps = t_file if steps is None else steps
    click.echo(f"hil: {model_path} ({qnet.profile}, {qnet.n_hidden} neurons) on {backend}"
               f"{'' if backend != 'nengo-loihi' else f' (target {target})'}: {n} sequence(s) x {t_steps} steps "
               f"from {stream_path}")
    options: dict[str, Any] = {"target": target} if backend == "nengo-loihi" else {}
    with tqdm(total=n * max(t_steps, 0), desc=f"hil {backend}", unit="step", disable=quiet, leave=False) as bar:
        result = stream(qnet, data.x, backend, steps=steps, on_step=lambda _o: bar.update(1), **options)
    lat = latency_summary(result.step_seconds)
    click.echo(
        f"latency per chip step: median {lat['median_ms']:.3f} ms  p95 {lat['p95_ms']:.3f} ms  "
        f"max {lat['max_ms']:.3f} ms  ({lat['steps_per_s']:.0f} steps/s over {lat['steps']} chip steps, "
        f"input latency {qnet.input_latency}; setup {result.setup_seconds:.2f} s)"
    )
    pred = [int(p) for p in result.predictions]
    click.echo(f"decisions (final prediction per sequence): {_format_decisions(pred)}")
    doc: dict[str, Any] = {
        "format": "rsnn-deploy/hil",
        "format_version": 1,
        "model": str(model_path),
        "profile": qnet.profile,
        "backend": backend,
        "target": target if backend == "nengo-loihi" else None,
        "stream": str(stream_path),
        "sequences": n,
        "steps": t_steps,
        "input_latency": qnet.input_latency,
        "predictions": pred,
        "logits": result.logits.tolist(),
        "decisions_per_step": result.decisions.tolist(),
        "spike_counts": result.spikes.sum(axis=(1, 2)).tolist(),
        "latency": lat,
        "setup_s": result.setup_seconds,
        "overflow": result.overflow,
    }
    if data.y is not None:
        correct = int((np.asarray(pred) == data.y).sum())
        doc["labels"] = data.y.tolist()
        doc["accuracy"] = correct / n
        click.echo(f"accuracy vs y: {correct}/{n} = {correct / n:.3f}")
    if any(result.overflow.values()):
        click.echo(f"overflow (neuron-steps wrapped, as the chip would): {result.overflow}")
    if out is not None:
        write_json_atomic(Path(out), doc)
        click.echo(f"-> {out}")
