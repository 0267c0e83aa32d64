"""Bring your own data: a ``.npz`` file of your sequences, through the command line, onto the chip.

Your data only has to be one file with two arrays (``numpy.savez``)::

    x : [N, T, C]   N sequences of T steps with C channels (real values or 0/1 spikes)
    y : [N]         integer class labels 0..K-1

(optionally ``x_test``/``y_test``; otherwise 20 % of the samples, chosen with the seed, are
held out for testing). Real values are level-crossing encoded into spikes (8 thresholds
per channel at the training data's quantiles, an up and a down neuron each); 0/1 data
is used as spikes directly. This example writes such a file from a generated toy problem
(three classes of noisy two-channel pulse patterns that only differ in *when* things
happen, so the network needs memory), then runs the same commands you would::

    rsnn-deploy train --task npz --data toy.npz --variant rec --hidden 48 --v-floor 0 -o run
    rsnn-deploy quantize run/model.json --target loihi1 -o qnet
    rsnn-deploy verify run/model.json --target loihi1 --qnet qnet -o report
    rsnn-deploy hil --model qnet --stream stream.npz --backend emulator

and checks what they produced: a verified quantized network (``qnet.json`` +
``qnet.safetensors``), a report (``report/report.json``, ``report.md``) and the streamed
decisions agreeing with the report's emulator. Each command runs in this process through
``rsnn_deploy.cli.main`` (exactly what the ``rsnn-deploy`` script calls), and is printed
first so you can copy it.

Run::

    python examples/bring_your_own_data.py --out byod      # keep the files in ./byod
    python examples/bring_your_own_data.py --quick         # CI: fewer samples and epochs

Last line: ``RESULT ok float=... emulator=... gap_pp=... stream_agrees=True``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

N_CLASSES = 3
T_STEPS = 30


def make_toy(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Three classes of two-channel signals: a pulse on channel 0 at time a, one on channel 1 at time b.

    Class 0: channel 1 follows channel 0 by ~6 steps; class 1: by ~14 steps; class 2:
    channel 1 comes first. Pulse times jitter and Gaussian noise is added, so no single
    step gives the answer: the order and the delay do.
    """
    y = rng.integers(0, N_CLASSES, n)
    x = 0.3 * rng.standard_normal((n, T_STEPS, 2))
    t = np.arange(T_STEPS)
    for i in range(n):
        a = int(rng.integers(2, 10))
        gap = {0: 6, 1: 14, 2: -int(rng.integers(1, 3))}[int(y[i])] + int(rng.integers(-1, 2))
        b = int(np.clip(a + gap, 0, T_STEPS - 1))
        x[i, :, 0] += 2.0 * np.exp(-0.5 * ((t - a) / 1.2) ** 2)
        x[i, :, 1] += 2.0 * np.exp(-0.5 * ((t - b) / 1.2) ** 2)
    return x.astype(np.float32), y.astype(np.int64)


def rsnn_deploy(*args: str) -> None:
    """Run one ``rsnn-deploy`` command in this process; print it first; stop on a non-zero exit."""
    from rsnn_deploy.cli import main

    argv = [str(a) for a in args]
    print("$ rsnn-deploy " + " ".join(shlex.quote(a) for a in argv), flush=True)
    code = main(argv)
    if code != 0:
        raise SystemExit(f"RESULT fail: rsnn-deploy {argv[0]} exited with {code}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer samples and epochs (CI)")
    p.add_argument("--out", type=Path, default=None, help="folder for every file (default: a temporary folder)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(1)
    tmp = tempfile.TemporaryDirectory(prefix="rsnn-byod-") if args.out is None else None
    out = Path(tmp.name) if tmp is not None else args.out
    out.mkdir(parents=True, exist_ok=True)

    # 1. your data: one .npz with x [N, T, C] and y [N]
    x, y = make_toy(900 if args.quick else 4000, np.random.default_rng(args.seed))
    data = out / "toy.npz"
    np.savez(data, x=x, y=y)
    print(f"wrote {data}: x {x.dtype} {list(x.shape)}, y {list(y.shape)} ({N_CLASSES} classes)")

    # 2. the pipeline, through the command line
    run, qnet, report = out / "run", out / "qnet", out / "report"
    rsnn_deploy("train", "--task", "npz", "--data", data, "--variant", "rec", "--hidden", "48",
                "--tau-mem", "10", "--v-floor", "0", "--epochs", "8" if args.quick else "25", "--batch-size", "32",
                "--lr", "0.01", "--seed", str(args.seed), "--quiet", "--overwrite", "-o", run)
    rsnn_deploy("quantize", run / "model.json", "--target", "loihi1", "-o", qnet)
    rsnn_deploy("verify", run / "model.json", "--target", "loihi1", "--qnet", f"{qnet}.json",
                "--backends", "torch-float,emulator", "--no-figures", "--quiet", "-o", report)

    # 3. stream some test sequences through the host loop: the chip's view of your data is
    #    its spikes, so take the encoded test split the verifier used
    from rsnn_deploy.checkpoint import load_checkpoint
    from rsnn_deploy.tasks import task_for_checkpoint

    test = task_for_checkpoint(load_checkpoint(run / "model.json").meta).test
    n_stream = min(20, len(test))
    np.savez(out / "stream.npz", x=test.spikes(np.arange(n_stream)), y=test.labels[:n_stream])
    rsnn_deploy("hil", "--model", f"{qnet}.json", "--stream", out / "stream.npz", "--backend", "emulator",
                "--quiet", "-o", out / "decisions.json")

    # 4. check what the commands produced
    rep = json.loads((report / "report.json").read_text())
    acc_f = rep["backends"]["torch-float"]["accuracy"]
    acc_e = rep["backends"]["emulator"]["accuracy"]
    gap = rep["headline_gap_pp"]
    decisions = json.loads((out / "decisions.json").read_text())
    from rsnn_deploy.emulator import run as emulate
    from rsnn_deploy.qnet import load_qnet

    offline = emulate(load_qnet(f"{qnet}.json"), test.spikes(np.arange(n_stream))).predictions
    stream_agrees = decisions["predictions"] == offline.tolist()
    files = [f"{qnet}.json", f"{qnet}.safetensors", report / "report.json", report / "report.md"]
    missing = [str(f) for f in files if not Path(f).is_file()]
    print(f"test accuracy: float {acc_f:.3f}, emulated loihi1 {acc_e:.3f} (gap {gap:+.2f} pp, "
          f"{rep['samples']['fast']} samples); streamed decisions agree with the emulator: {stream_agrees}")
    print(f"files: {qnet}.json/.safetensors (quantized network), {report}/report.md, {out}/decisions.json")
    ok = not missing and stream_agrees and acc_e > 1.0 / N_CLASSES + 0.2
    detail = f"missing={missing}" if missing else ""
    print(f"RESULT {'ok' if ok else 'fail'} float={acc_f:.4f} emulator={acc_e:.4f} gap_pp={gap:.2f} "
          f"stream_agrees={stream_agrees} {detail}".rstrip())
    if tmp is not None:
        tmp.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
