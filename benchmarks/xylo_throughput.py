"""Throughput of our batched Xylo emulator against SynSense's xylosim, shipped Xylo model, same spikes.

xylosim runs one sample at a time (``reset_all`` + ``evolve``, C++); ours runs the batch in numpy.
Rounds are interleaved (ours, theirs, ours, ...) and each reports single-thread CPU time beside
wall time; all hidden spike counts and states are compared. The JSON records where it ran
(``rsnn_deploy.provenance``: CPU model and flags, threads, load before and after, versions).

Usage::

    python benchmarks/xylo_throughput.py                 # 800 test samples, 3 rounds
    python benchmarks/xylo_throughput.py --quick         # 100 samples, 1 round
    python benchmarks/xylo_throughput.py --out results/xylo/throughput.json
"""

from __future__ import annotations

import os

from rsnn_deploy.threads import BLAS_THREAD_VARIABLES  # imports neither numpy nor torch

for _var in BLAS_THREAD_VARIABLES:
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    from xylo_reference import CKPT, _net, data

    from rsnn_deploy import provenance
    from rsnn_deploy.xylo import emulator
    from rsnn_deploy.xylo._xylosim import run_xylosim, xylosim_version
    from rsnn_deploy.xylo.train import load_xylo_checkpoint
    from rsnn_deploy.xylo.verify import agreement

    record = provenance.collect(1, ["benchmarks/xylo_throughput.py", *sys.argv[1:]])
    print(provenance.summary(record))
    model, _ = load_xylo_checkpoint(CKPT)
    net, _ = _net(model)
    x, _ = data("test")
    n = 100 if args.quick else len(x)
    x = x[:n]
    rounds = 1 if args.quick else args.rounds
    times: dict[str, list[tuple[float, float]]] = {"emulator": [], "xylosim": []}
    runs = {}
    for _ in range(rounds):
        for name, fn in (("emulator", emulator.run), ("xylosim", run_xylosim)):
            w0, c0 = time.perf_counter(), time.thread_time()
            runs[name] = fn(net, x)
            times[name].append((time.perf_counter() - w0, time.thread_time() - c0))
    agr = agreement(runs["emulator"], runs["xylosim"])
    res = {
        "samples": n,
        "steps": int(x.shape[1]),
        "hidden": net.n_hidden,
        "rounds": rounds,
        "xylosim": xylosim_version(),
        "agreement_pct": agr,
        "provenance": provenance.finish(record),
    }
    for name, ts in times.items():
        wall = min(t[0] for t in ts)
        cpu = min(t[1] for t in ts)
        res[name] = {"best_wall_s": wall, "best_cpu_s": cpu, "samples_per_s_wall": n / wall,
                     "median_wall_s": statistics.median(t[0] for t in ts),
                     "median_cpu_s": statistics.median(t[1] for t in ts)}
        print(f"{name:>9}: {n / wall:8.1f} samples/s wall (best {wall:.3f} s wall, {cpu:.3f} s CPU)")
    print("agreement: " + ", ".join(f"{k} {v:.3f} %" for k, v in agr.items()))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
    ok = all(v == 100.0 for v in agr.values())
    print(
        f"RESULT {'ok' if ok else 'fail'} emulator={res['emulator']['samples_per_s_wall']:.1f} "
        f"xylosim={res['xylosim']['samples_per_s_wall']:.1f}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
