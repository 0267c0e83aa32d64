"""Streaming: feed MNIST-1D sequences into nengo-loihi one step at a time and read a decision every step.

Offline verification runs whole batches. A deployed chip is driven by a host loop
instead: send one frame of input spikes, let the chip run one step, read the hidden
spikes, update the readout, decide. This example runs that loop
(:func:`rsnn_deploy.hil.stream`) with ``nengo_loihi.Simulator`` (its Loihi emulator,
``target='sim'``) as the chip and shows that

- the decision is available after every step (printed for the first sequence: the
  network's answer if the sequence stopped there);
- the per-step latency of the whole host loop (frame in, chip step, readout, decision);
- the streamed spikes are identical, bit for bit, to those of the offline
  ``verify`` run (our batched emulator, and nengo-loihi run as a batch), and the final
  decisions are the offline predictions.

The real-board path is ``NengoLoihiStepper(target='loihi')`` (``rsnn-deploy hil --target
loihi``): the same network on ``nengo_loihi.Simulator(target='loihi')``. It is untested:
it needs Intel's NxSDK and a Loihi board.

Run::

    python examples/hil_streaming.py                          # trains a 128-neuron model first
    python examples/hil_streaming.py --checkpoint runs/x/model.json --sequences 50
    python examples/hil_streaming.py --quick                  # CI: tiny model, 8 sequences

Last line: ``RESULT ok identical_spikes=True identical_predictions=True median_ms=... p95_ms=...``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny model, 8 sequences (CI)")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="float checkpoint trained for MNIST-1D with --v-floor 0 (default: train one here)")
    p.add_argument("--sequences", type=int, default=None, help="test sequences to stream (default 30, quick 8)")
    p.add_argument("--backend", default="nengo-loihi", choices=["nengo-loihi", "emulator", "onnx"],
                   help="what runs the chip steps (default nengo-loihi)")
    return p.parse_args(argv)


def train_small(out: Path, quick: bool) -> Path:
    """A recurrent LIF network on MNIST-1D, as in quickstart.py (v_floor=0: nengo-loihi's LIF floor)."""
    from rsnn_deploy.config import TrainConfig
    from rsnn_deploy.tasks import load_task
    from rsnn_deploy.train import model_config_for, train

    task = load_task("mnist1d")
    cfg = model_config_for(task, variant="rec", n_hidden=64 if quick else 128, tau_mem_ms=5.0, v_floor=0.0)
    tcfg = TrainConfig(epochs=5 if quick else 30, batch_size=32 if quick else 100, lr=1e-2 if quick else 5e-3,
                       limit=1200 if quick else None)
    return train(task, cfg, tcfg, out, overwrite=True, progress=not quick).checkpoint


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(1)
    import warnings

    warnings.filterwarnings("ignore", message="This version of `nengo_loihi`")
    from rsnn_deploy.hil import latency_summary, stream
    from rsnn_deploy.verify import verify

    n = args.sequences or (8 if args.quick else 30)
    tmp = tempfile.TemporaryDirectory(prefix="rsnn-hil-streaming-")
    t0 = time.perf_counter()
    ckpt = args.checkpoint or train_small(Path(tmp.name) / "run", args.quick)
    print(f"model: {ckpt} [{time.perf_counter() - t0:.1f} s]")

    # offline: the verifier quantizes for loihi1 and runs the batched backends on the first n test samples
    offline = verify(ckpt, "loihi1", backends=("torch-float", "emulator", "nengo-loihi"), limit=n, slow_limit=n,
                     progress=False)
    qnet = offline.figure_data["qnet"]
    traces = offline.figure_data["traces"]
    from rsnn_deploy.checkpoint import load_checkpoint
    from rsnn_deploy.tasks import task_for_checkpoint

    test = task_for_checkpoint(load_checkpoint(ckpt).meta).test
    x, labels = test.spikes(np.arange(n)), test.labels[:n]

    # online: the host loop, one chip step at a time, a decision after every step
    t1 = time.perf_counter()
    online = stream(qnet, x, args.backend)
    wall = time.perf_counter() - t1
    lat = latency_summary(online.step_seconds)

    timeline = online.decisions[0]
    settled = int(np.flatnonzero(timeline != timeline[-1])[-1] + 1) if np.any(timeline != timeline[-1]) else 0
    print(f"sequence 0 (label {labels[0]}): decision after each of its {len(timeline)} steps:")
    print("  " + " ".join(str(int(d)) for d in timeline))
    print(f"  final decision {int(timeline[-1])}, unchanged from step {settled} on")

    same_spikes = {name: bool(np.array_equal(online.spikes, traces[name].spikes[:n]))
                   for name in ("emulator", "nengo-loihi")}
    same_pred = {name: bool(np.array_equal(online.predictions, traces[name].predictions[:n]))
                 for name in ("emulator", "nengo-loihi")}
    acc_online = float(np.mean(online.predictions == labels))
    print(f"streamed {n} sequences on {args.backend}: {lat['steps']} chip steps in {wall:.1f} s "
          f"(setup {online.setup_seconds:.1f} s: one simulator per sequence, built and read back)")
    print(f"latency per step: median {lat['median_ms']:.3f} ms, p95 {lat['p95_ms']:.3f} ms, "
          f"max {lat['max_ms']:.3f} ms ({lat['steps_per_s']:.0f} steps/s)")
    for name in ("emulator", "nengo-loihi"):
        print(f"online vs offline {name:<12}: spikes identical {same_spikes[name]}, "
              f"final predictions identical {same_pred[name]}")
    acc_float = offline.report["backends"]["torch-float"]["accuracy"]
    print(f"accuracy on these {n}: online {acc_online:.3f}, offline emulator "
          f"{offline.report['backends']['emulator']['accuracy']:.3f}, float {acc_float:.3f}")
    ok = all(same_spikes.values()) and all(same_pred.values())
    print(f"RESULT {'ok' if ok else 'fail'} identical_spikes={all(same_spikes.values())} "
          f"identical_predictions={all(same_pred.values())} median_ms={lat['median_ms']:.3f} "
          f"p95_ms={lat['p95_ms']:.3f} accuracy={acc_online:.4f} sequences={n}")
    tmp.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
