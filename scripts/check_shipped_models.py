"""Every shipped model quantizes, verifies and streams from raw signals, with the user's commands.

For each ``models/*.json`` checkpoint: ``rsnn-deploy quantize``, ``rsnn-deploy verify`` (default
backends, ``--limit`` samples; nengo and nengo-loihi on ``--slow-limit``), then the first
``--stream`` test samples as raw values (MNIST-1D signals, Fashion-MNIST ``pixel / 255`` rows)
through ``rsnn-deploy encode`` and ``rsnn-deploy hil``, whose decisions must equal the
emulator's predictions in ``verify`` on the same samples. Exits 1 on the first mismatch.

    python scripts/check_shipped_models.py -o /tmp/shipped            # all models
    python scripts/check_shipped_models.py -o /tmp/shipped --limit 200 --slow-limit 30
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def raw_test_signals(ckpt, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` test samples of the checkpoint's task as the raw values its encoder takes."""
    from rsnn_deploy.tasks import _mnist1d, task_for_checkpoint

    name = ckpt.task["name"]
    if name == "mnist1d":
        raw, _ = _mnist1d._raw(int(ckpt.task["params"]["n_thresholds"]), int(ckpt.task["params"]["data_seed"]))
        return raw["x_test"][:n, :, None], raw["y_test"][:n]
    if name == "sfmnist-row":
        test = task_for_checkpoint(ckpt.meta).test
        images = test.source._raw[test.rows[:n]]  # uint8 [n, 28, 28], one row per step
        return images / 255.0, test.labels[:n]
    raise SystemExit(f"{ckpt.path}: no raw-signal reader for task {name!r} in this script")


def main() -> int:
    from rsnn_deploy.checkpoint import load_checkpoint
    from rsnn_deploy.cli import main as cli
    from rsnn_deploy.verify import verify

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", required=True, type=Path, help="Folder for the quantized networks and reports.")
    ap.add_argument("--limit", type=int, default=None, help="Samples for the fast backends (default: all).")
    ap.add_argument("--slow-limit", type=int, default=100, help="Samples for nengo and nengo-loihi.")
    ap.add_argument("--stream", type=int, default=100, help="Raw test samples to encode and stream.")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for json_path in sorted((ROOT / "models").glob("*.json")):
        ckpt = load_checkpoint(json_path)
        name, target = ckpt.name, ckpt.meta["train"]["qat_profile"]
        d = args.out / name
        d.mkdir(exist_ok=True)
        steps = [["quantize", str(json_path), "--target", target, "-o", str(d / "qnet")]]
        verify_args = [
            "verify",
            str(json_path),
            "--target",
            target,
            "--qnet",
            str(d / "qnet"),
            "--quiet",
            "--no-figures",
            "--slow-limit",
            str(args.slow_limit),
            "-o",
            str(d / "verify"),
        ]
        steps.append(verify_args + (["--limit", str(args.limit)] if args.limit else []))
        x, y = raw_test_signals(ckpt, args.stream)
        np.savez(d / "raw.npz", x=x, y=y)
        (d / "stream.npz").unlink(missing_ok=True)  # encode never overwrites: this run's stream is new
        steps.append(["encode", str(d / "qnet"), str(d / "raw.npz"), "-o", str(d / "stream.npz")])
        steps.append(
            ["hil", "--model", str(d / "qnet"), "--stream", str(d / "stream.npz"), "--quiet", "-o", str(d / "hil.json")]
        )
        for step in steps:
            print(f"$ rsnn-deploy {' '.join(step)}", flush=True)
            rc = cli(step)
            if rc != 0:
                print(f"FAILED ({name}): rsnn-deploy {step[0]} exited {rc}")
                return 1
        hil = json.loads((d / "hil.json").read_text())
        ref = (
            verify(json_path, target, backends=["emulator"], limit=args.stream, qnet_path=d / "qnet", progress=False)
            .figure_data["traces"]["emulator"]
            .predictions.tolist()
        )
        same = hil["predictions"] == ref
        failed += not same
        print(
            f"{name}: encode -> hil decisions {'equal' if same else 'DIFFER FROM'} verify's emulator predictions "
            f"on {len(ref)} samples (hil accuracy {hil['accuracy']:.3f})",
            flush=True,
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
