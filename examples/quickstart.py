"""Quickstart: train an RSNN on MNIST-1D, quantize it for Loihi, and measure what survives.

The whole pipeline through the Python API, in three calls:

1. :func:`rsnn_deploy.train.train` trains a recurrent spiking network (float, torch);
2. :func:`rsnn_deploy.quantize.quantize_model` maps it onto the integers of a hardware
   profile (``loihi1``: nengo-loihi 1.1.0's emulator) and :func:`~rsnn_deploy.qnet.save_qnet`
   writes them;
3. :func:`rsnn_deploy.verify.verify` runs the float model and the bit-exact integer
   emulator on the same test spikes and reports the accuracy gap.

Run::

    python examples/quickstart.py            # 128 neurons, 30 epochs on all 3600 training samples
    python examples/quickstart.py --quick    # tiny and short: what CI runs (< 1 min on 2 cores)

The last line is machine-readable: ``RESULT ok float=... emulator=... gap_pp=...``
(``fail`` instead of ``ok`` when the emulated network does not clearly beat chance).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small matrices: one BLAS thread is faster on shared cores

CHANCE = 0.10  # ten classes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny model, few samples and epochs (CI smoke run)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: a temporary folder)")
    p.add_argument("--profile", default="loihi1", help="hardware profile: loihi1 or loihi2")
    p.add_argument("--hidden", type=int, default=None, help="hidden neurons (default 128, quick 64)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default 30, quick 6)")
    p.add_argument("--limit", type=int, default=None, help="training samples (default all, quick 1500)")
    p.add_argument("--test-limit", type=int, default=None, help="test samples verified (default all, quick 500)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(1)  # models this small: one thread beat two by 2-4x on a shared 2-core machine
    from rsnn_deploy.config import TrainConfig
    from rsnn_deploy.qnet import save_qnet
    from rsnn_deploy.quantize import quantize_model
    from rsnn_deploy.tasks import load_task
    from rsnn_deploy.train import model_config_for, train
    from rsnn_deploy.verify import calibration_input, verify

    quick = args.quick
    hidden = args.hidden or (64 if quick else 128)
    epochs = args.epochs or (6 if quick else 30)
    limit = args.limit or (1500 if quick else None)
    test_limit = args.test_limit or (500 if quick else None)
    tmp = None
    if args.out is None:
        tmp = tempfile.TemporaryDirectory(prefix="rsnn-quickstart-")
        out = Path(tmp.name)
    else:
        out = args.out
    t0 = time.perf_counter()

    # 1. train: a recurrent LIF network; v_floor=0 because nengo-loihi's LIF never goes below 0
    task = load_task("mnist1d")
    model_cfg = model_config_for(task, variant="rec", n_hidden=hidden, tau_mem_ms=5.0, v_floor=0.0)
    train_cfg = TrainConfig(epochs=epochs, batch_size=32 if quick else 100, lr=1e-2 if quick else 5e-3,
                            limit=limit, seed=args.seed)
    result = train(task, model_cfg, train_cfg, out / "run", overwrite=True, progress=not quick)
    print(f"trained {model_cfg.variant} ({hidden} neurons, {epochs} epochs): "
          f"val {result.metrics['val_acc']:.3f}  test {result.metrics['test_acc']:.3f}  "
          f"[{time.perf_counter() - t0:.1f} s]")

    # 2. quantize: integers for the chip, calibrated on training spikes, saved as qnet.{safetensors,json}
    from rsnn_deploy.checkpoint import load_checkpoint

    ckpt = load_checkpoint(result.checkpoint)
    qnet, qreport = quantize_model(ckpt.model, args.profile, calibration_input(task.train, 200), source=ckpt.name)
    qpath = save_qnet(qnet, out / "qnet", quantize_report=qreport)
    print(f"quantized for {qnet.profile}: vth {sorted({int(v) for v in qnet.vth})}, "
          f"{len(qnet.block_sizes)} core(s) -> {qpath}")

    # 3. verify: float model vs the bit-exact emulator on the same test spikes
    res = verify(result.checkpoint, args.profile, backends=("torch-float", "emulator"), split="test",
                 limit=test_limit, qnet_path=qpath, progress=False)
    rep = res.report
    acc_f = rep["backends"]["torch-float"]["accuracy"]
    acc_e = rep["backends"]["emulator"]["accuracy"]
    lo, hi = rep["backends"]["emulator"]["ci95"]
    n = rep["samples"]["fast"]
    print(f"test ({n} samples): float {acc_f:.3f}  emulator {acc_e:.3f} (95 % CI {lo:.3f}-{hi:.3f})  "
          f"gap {res.gap_pp:+.2f} pp  [{time.perf_counter() - t0:.1f} s total]")
    ok = lo > CHANCE + 0.1  # the emulated chip clearly beats chance (10 %)
    print(f"RESULT {'ok' if ok else 'fail'} float={acc_f:.4f} emulator={acc_e:.4f} gap_pp={res.gap_pp:.2f} "
          f"samples={n}")
    if tmp is not None:
        tmp.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
