"""Training throughput of the RSNN against snnTorch's ``RSynaptic``, at T = 28 and T = 784.

What it proves
--------------
Issue 2, item 7 set a target: one training step (forward, backward, Adam) of our
``rec-syn`` RSNN with the fast BPTT engine processes at least 3x as many samples per
second as snnTorch with the same shapes, at both sequence lengths. The shapes are
28 -> 128 recurrent CUBA neurons -> 10, batch 256. The snnTorch peer is a lean version
of its tutorial loop (one loss on the summed output instead of one per step, no output
LIF layer): the stronger peer of the two.

The fast engine runs its time loops in C (``rsnn_deploy/bptt_kernels.c``) when a C
compiler is present; ``RSNN_DEPLOY_NATIVE=0`` measures its torch loops instead.

How it measures
---------------
Each repetition times every implementation once, in a rotated order, on the same
random binary input spikes. The CPU is shared, so a slow phase hits all
implementations rather than one. Throughputs are medians over repetitions. Ratios are
taken per repetition before the median, so that each ratio compares runs made at
nearly the same time. The eager autograd loop of our model is printed for reference.

Wall-clock throughput is meaningless while other jobs load the machine. With two
threads, every small kernel waits for an OpenMP thread that another process holds, and
everything ran about 10x slower in trials on a 2-core box at load 5-9. The script warns
when the load average exceeds the CPU count. It also prints CPU-time throughput, which
is robust to load when run with ``--threads 1``.

Run ``python benchmarks/train_throughput.py`` (a few minutes on an idle machine) or
add ``--quick`` (about a minute). ``--out FILE.json`` also writes the medians, ratios and
settings. snnTorch is a benchmark-only extra: ``pip install -e .[bench]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn

from rsnn_deploy.config import ModelConfig
from rsnn_deploy.model import RSNN

N_IN, N_HIDDEN, N_OUT = 28, 128, 10
TAU_MEM_MS, TAU_SYN_MS = 10.0, 5.0
TARGET = 3.0

Step = Callable[[Tensor, Tensor], None]


def ours(engine: str) -> Step:
    """One Adam training step of our ``rec-syn`` RSNN on batch-first spikes [B, T, C]."""
    cfg = ModelConfig(
        n_in=N_IN,
        n_hidden=N_HIDDEN,
        n_out=N_OUT,
        variant="rec-syn",
        tau_mem_ms=TAU_MEM_MS,
        tau_syn_ms=TAU_SYN_MS,
    )
    model = RSNN(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def step(x: Tensor, y: Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x, engine=engine).logits, y)
        loss.backward()
        opt.step()

    return step


def snntorch_tutorial() -> Step:
    """The snnTorch tutorial loop: Linear -> RSynaptic(all_to_all) -> Linear, loss on the summed output.

    Inputs are time-major [T, B, C], as the tutorials use them. Decays match our taus
    (alpha = synapse, beta = membrane), and the surrogate is snnTorch's default.
    """
    import snntorch as snn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = nn.Linear(N_IN, N_HIDDEN)
            self.lif1 = snn.RSynaptic(
                alpha=math.exp(-1.0 / TAU_SYN_MS),
                beta=math.exp(-1.0 / TAU_MEM_MS),
                all_to_all=True,
                linear_features=N_HIDDEN,
            )
            self.fc2 = nn.Linear(N_HIDDEN, N_OUT)

        def forward(self, x: Tensor) -> Tensor:
            spk1, syn1, mem1 = self.lif1.init_rsynaptic()
            out_rec = []
            for step in range(x.shape[0]):
                cur1 = self.fc1(x[step])
                spk1, syn1, mem1 = self.lif1(cur1, spk1, syn1, mem1)
                out_rec.append(self.fc2(spk1))
            return torch.stack(out_rec)

    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def step(x: Tensor, y: Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(x).sum(0), y)
        loss.backward()
        opt.step()

    return step


def samples_per_s(step: Step, x: Tensor, y: Tensor, iters: int) -> tuple[float, float]:
    """Throughput of ``iters`` consecutive training steps on one batch, by wall clock and by CPU time.

    The target is defined on the wall clock. CPU time (of this process, all threads) is
    printed as well, because it changes less when other jobs load the machine. Use it
    with ``--threads 1``: with more threads, CPU time includes OpenMP spin-waiting.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(iters):
        step(x, y)
    n = iters * y.shape[0]
    return n / (time.perf_counter() - wall), n / max(time.process_time() - cpu, 1e-9)


def bench_length(
    n_steps: int, batch: int, reps: int, iters: int, with_eager: bool
) -> dict[str, list[tuple[float, float]]]:
    """Interleaved repetitions at one sequence length: (wall, CPU) samples/s per implementation and repetition."""
    g = torch.Generator().manual_seed(n_steps)
    x_bt = (torch.rand(batch, n_steps, N_IN, generator=g) < 0.2).float()  # [B, T, C] random binary spikes
    x_tb = x_bt.transpose(0, 1).contiguous()  # [T, B, C], a data loader's job: not timed
    y = torch.randint(0, N_OUT, (batch,), generator=g)
    impls: dict[str, tuple[Step, Tensor]] = {
        "fast": (ours("fast"), x_bt),
        "snntorch": (snntorch_tutorial(), x_tb),
    }
    if with_eager:
        impls["eager"] = (ours("eager"), x_bt)
    for step, x in impls.values():  # warm-up: first-call allocations, lazy init
        step(x, y)
    names = list(impls)
    result: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for rep in range(reps):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for name in order:
            step, x = impls[name]
            result[name].append(samples_per_s(step, x, y, iters))
        line = "  ".join(f"{n} {result[n][-1][0]:8.1f}" for n in names)
        print(f"  T={n_steps:4d} rep {rep + 1}/{reps}: {line}  samples/s (wall)", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and iterations (about a minute)")
    parser.add_argument("--lengths", type=int, nargs="+", default=[28, 784], help="sequence lengths T")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--reps", type=int, default=None, help="interleaved repetitions (default 7, quick 3)")
    parser.add_argument("--no-eager", action="store_true", help="skip the eager reference (saves time)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--out", type=str, default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    try:
        import snntorch  # noqa: F401
    except ImportError:
        print("snnTorch is not installed: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    reps = args.reps or (3 if args.quick else 7)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, {reps} reps")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > (os.cpu_count() or 1):
        print(f"warning: load average {load:.1f} on {os.cpu_count()} CPUs: wall-clock figures are unreliable")
    summary = []
    for n_steps in args.lengths:
        # aim at roughly 0.3 s (quick) or 1 s per measurement of the slowest implementation
        budget = (0.3 if args.quick else 1.0) * 3800 * 28 / (args.batch * n_steps)
        res = bench_length(n_steps, args.batch, reps, max(1, round(budget)), not args.no_eager)
        summary.append((n_steps, res))
    met = True
    table: list[dict[str, object]] = []
    for clock, c in (("wall clock", 0), ("CPU time", 1)):
        print(f"\n{clock}: median samples/s, and the median over repetitions of the ratio to snnTorch")
        print(f"{'T':>5} {'impl':>9} {'samples/s':>10} {'vs snnTorch':>12}")
        for n_steps, res in summary:
            for name, v in res.items():
                med = statistics.median(r[c] for r in v)
                ratio = statistics.median(a[c] / b[c] for a, b in zip(v, res["snntorch"], strict=True))
                print(f"{n_steps:5d} {name:>9} {med:10.1f} {ratio:11.2f}x")
                table.append({"clock": clock, "T": n_steps, "impl": name, "samples_per_s": med, "ratio": ratio})
                if name == "fast" and c == 0:
                    met = met and ratio >= TARGET
    print(f"\ntarget (fast >= {TARGET:.0f}x snnTorch by wall clock at every length): {'MET' if met else 'NOT MET'}")
    if args.out:
        from rsnn_deploy import native
        from rsnn_deploy.io import atomic_path

        record = {
            "command": "python " + " ".join(["benchmarks/train_throughput.py", *(argv or sys.argv[1:])]),
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
            "machine": platform.processor() or platform.machine(),
            "load_average_at_start": load,
            "native_loops": native.enabled(),
            "batch": args.batch,
            "repetitions": reps,
            "target": TARGET,
            "target_met": met,
            "results": table,
        }
        with atomic_path(args.out) as tmp:
            tmp.write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
