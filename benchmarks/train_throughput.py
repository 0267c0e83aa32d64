"""Training throughput of the RSNN against snnTorch's ``RSynaptic``, at T = 28 and T = 784, engine by engine.

What it proves
--------------
Issue 2, item 7 and issue 19 set the targets: one training step (forward, backward,
Adam) of our ``rec-syn`` RSNN with the default engine processes at least 3x as many
samples per second as snnTorch with the same shapes, at both sequence lengths, on every
CPU (AVX2 and AVX-512), by single-thread CPU time; and it is at least as fast as the best
plain-torch technique, hand-written BPTT over ``torch.compile``-d blocks (built here:
:func:`compiled_blocks`). The shapes are 28 -> 128 recurrent CUBA neurons -> 10, batch
256. The snnTorch peer is a lean version of its tutorial loop (one loss on the summed
output instead of one per step, no output LIF layer): the stronger peer of the two.

Engines measured, interleaved in one process on the same random binary input spikes:
``snntorch``; ``default`` (what ``rsnn-deploy train`` runs: the variant the calibration in
``rsnn_deploy/native_choice.py`` chose); ``c-avx512``, ``c-avx2``, ``c-generic`` (each C
build this CPU can run, forced); ``torch-loops`` (the fast engine without C); ``compiled``
(the plain-torch reference); and ``eager`` (our autograd loop, unless ``--no-eager``).
An AVX-512 machine thus also measures the AVX2 build (``-march=haswell``), the one an
AVX2-only CPU runs.

How it measures
---------------
Each repetition times every engine once, in a rotated order. The CPU is shared, so a
slow phase hits all engines rather than one. Throughputs are medians over repetitions;
ratios are taken per repetition before the median. The headline statistic is
single-thread CPU time (``--threads 1``, the default), which other jobs on the machine
disturb least; wall clock is printed beside it. The dense-GEMM bound is the throughput
if all the step's matrix products (:data:`FLOP_PER_SAMPLE_STEP`) ran at the speed of one
dense single-thread ``torch.mm`` of the step's shape, measured in the same run.

``torch.compile`` costs a cold compile (tens of seconds; a few with inductor's disk cache
warm): it happens before the timed repetitions, once for both lengths (same block
shape), and its duration is printed and recorded.

Run ``python benchmarks/train_throughput.py --out results/train_throughput.json`` (a few
minutes) or add ``--quick``. The JSON records the CPU model and SIMD flags, threads, load
before and after, library versions and the commit (``rsnn_deploy/provenance.py``).
snnTorch is a benchmark-only extra: ``pip install -e .[bench]``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn

from rsnn_deploy import native, provenance
from rsnn_deploy.config import ModelConfig
from rsnn_deploy.model import RSNN

N_IN, N_HIDDEN, N_OUT = 28, 128, 10
TAU_MEM_MS, TAU_SYN_MS = 10.0, 5.0
TARGET = 3.0
BLOCK = 28  # steps per compiled block of the reference (784 = 28 blocks)
# Matrix-product FLOPs of one training step per sample and time step: forward W_in x, W_rec z, W_out z;
# backward g_i W_rec, the W_rec, W_in and W_out gradients and the readout's input gradient.
FLOP_PER_SAMPLE_STEP = 2 * (2 * N_IN * N_HIDDEN + 3 * N_HIDDEN * N_HIDDEN + 2 * N_HIDDEN * N_OUT)

Step = Callable[[Tensor, Tensor], None]


_DEFAULT = "default"


def ours(engine: str, isa: str | None = _DEFAULT) -> Step:
    """One Adam training step of our ``rec-syn`` RSNN on batch-first spikes [B, T, C].

    ``isa``: a C build forced for the step (None: the torch loops; ``"default"``: the default choice).
    """
    cfg = ModelConfig(
        n_in=N_IN,
        n_hidden=N_HIDDEN,
        n_out=N_OUT,
        variant="rec-syn",
        tau_mem_ms=TAU_MEM_MS,
        tau_syn_ms=TAU_SYN_MS,
    )
    # The same initial weights for every engine: the C loops sum over spikes, so a model that happened
    # to start with a higher firing rate would be slower for a reason that is not the engine's.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = RSNN(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def run(x: Tensor, y: Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x, engine=engine).logits, y)
        loss.backward()
        opt.step()

    if isa == _DEFAULT:
        return run

    def step(x: Tensor, y: Tensor) -> None:
        with native.use_isa(isa):
            run(x, y)

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


# ----------------------------------------------------------------------------- the plain-torch reference


def _fwd_block(drive: Tensor, i: Tensor, v: Tensor, z: Tensor, w_rec_t: Tensor, a_s: float, a_m: float):
    """``BLOCK`` neuron steps (unrolled for the compiler): spikes and pre-reset voltages of the block."""
    zs, ps = [], []
    for k in range(drive.shape[0]):
        i = a_s * i + drive[k] + z @ w_rec_t
        p = a_m * v + i
        z = (p > 1.0).to(p.dtype)
        v = p * (1.0 - z)
        zs.append(z)
        ps.append(p)
    return torch.stack(zs), torch.stack(ps), i, v, z


def _bwd_block(gz: Tensor, p: Tensor, z: Tensor, gi: Tensor, gp: Tensor, w_rec: Tensor, a_s: float, a_m: float):
    """Reverse-time adjoints of one block (fast-sigmoid surrogate, slope 5); returns g_i of each step."""
    sg = 1.0 / (1.0 + 5.0 * (p - 1.0).abs()) ** 2
    gis = []
    for k in range(gz.shape[0] - 1, -1, -1):
        g = gz[k] + gi @ w_rec
        gp = g * sg[k] + a_m * (1.0 - z[k]) * gp
        gi = gp + a_s * gi
        gis.append(gi)
    return torch.stack(gis[::-1]), gi, gp


def compiled_blocks() -> tuple[Step, Callable[[int], None]]:
    """Hand-written BPTT in a ``torch.autograd.Function`` over ``torch.compile``-d blocks of ``BLOCK`` steps.

    The best plain-torch technique of ``/work/shared/MEASURED.md``: the same network and
    step as ours (reset to zero, fast-sigmoid surrogate), the per-block input projection
    and weight gradients as big matmuls, the time loop inside compiled blocks. Returns the
    step and a function that compiles both blocks (called before timing).
    """
    fwd = torch.compile(_fwd_block, dynamic=False, fullgraph=True)
    bwd = torch.compile(_bwd_block, dynamic=False, fullgraph=True)
    a_s, a_m = math.exp(-1.0 / TAU_SYN_MS), math.exp(-1.0 / TAU_MEM_MS)

    class Rsnn(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x: Tensor, w_in: Tensor, w_rec: Tensor) -> Tensor:  # type: ignore[override]
            t_all, b, _ = x.shape
            h = w_in.shape[0]
            i, v, z = (x.new_zeros(b, h) for _ in range(3))
            w_rec_t = w_rec.t().contiguous()
            zs, ps = [], []
            for t0 in range(0, t_all, BLOCK):
                drive = (x[t0 : t0 + BLOCK].reshape(-1, x.shape[2]) @ w_in.t()).view(-1, b, h)
                zb, pb, i, v, z = fwd(drive, i, v, z, w_rec_t, a_s, a_m)
                zs.append(zb)
                ps.append(pb)
            ctx.save_for_backward(x, w_in, w_rec)
            ctx.blocks = (zs, ps)
            return torch.stack([zb.sum(0) for zb in zs]).sum(0)  # spike counts [B, H] feed the readout

        @staticmethod
        def backward(ctx, g_count: Tensor):  # type: ignore[override]
            x, w_in, w_rec = ctx.saved_tensors
            zs, ps = ctx.blocks
            b, h = g_count.shape
            gi, gp = g_count.new_zeros(b, h), g_count.new_zeros(b, h)
            g_w_in, g_w_rec = torch.zeros_like(w_in), torch.zeros_like(w_rec)
            w_rec_c = w_rec.contiguous()
            for n in range(len(zs) - 1, -1, -1):
                t0 = n * BLOCK
                gz = g_count.expand(zs[n].shape[0], b, h)
                gi_b, gi, gp = bwd(gz, ps[n], zs[n], gi, gp, w_rec_c, a_s, a_m)
                flat = gi_b.reshape(-1, h)
                g_w_in += flat.t() @ x[t0 : t0 + zs[n].shape[0]].reshape(-1, x.shape[2])
                z_prev = torch.cat([zs[n - 1][-1:] if n else torch.zeros_like(zs[n][:1]), zs[n][:-1]])
                g_w_rec += flat.t() @ z_prev.reshape(-1, h)
            return None, g_w_in, g_w_rec

    w_in = nn.Parameter(torch.randn(N_HIDDEN, N_IN) * (1.0 / math.sqrt(N_IN)))
    w_rec = nn.Parameter(torch.randn(N_HIDDEN, N_HIDDEN) * (0.5 / math.sqrt(N_HIDDEN)))
    readout = nn.Linear(N_HIDDEN, N_OUT)
    opt = torch.optim.Adam([w_in, w_rec, *readout.parameters()], lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def step(x: Tensor, y: Tensor) -> None:  # x time-major [T, B, C]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(readout(Rsnn.apply(x, w_in, w_rec)), y)
        loss.backward()
        opt.step()

    def warm(batch: int) -> None:
        g = torch.Generator().manual_seed(0)
        x = (torch.rand(BLOCK, batch, N_IN, generator=g) < 0.2).float()
        step(x, torch.zeros(batch, dtype=torch.long))

    return step, warm


def samples_per_s(step: Step, x: Tensor, y: Tensor, iters: int) -> tuple[float, float]:
    """Throughput of ``iters`` consecutive training steps on one batch, by wall clock and by CPU time.

    CPU time is of this process, all threads: use it with ``--threads 1`` (with more
    threads it includes OpenMP spin-waiting).
    """
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(iters):
        step(x, y)
    n = iters * y.shape[0]
    return n / (time.perf_counter() - wall), n / max(time.process_time() - cpu, 1e-9)


def gemm_gflops(batch: int) -> float:
    """Single-process dense ``torch.mm`` speed at the step's largest product ([B, H] x [H, H]), GFLOP/s (CPU time)."""
    a, b = torch.randn(batch, N_HIDDEN), torch.randn(N_HIDDEN, N_HIDDEN)
    out = torch.empty(batch, N_HIDDEN)
    for _ in range(50):
        torch.mm(a, b, out=out)
    best = 0.0
    for _ in range(5):
        cpu = time.process_time()
        for _ in range(400):
            torch.mm(a, b, out=out)
        best = max(best, 400 * 2 * batch * N_HIDDEN**2 / max(time.process_time() - cpu, 1e-9) / 1e9)
    return best


def engines(with_eager: bool) -> dict[str, tuple[Step, bool]]:
    """Name -> (step, whether it takes time-major input) for every engine this machine can run."""
    impls: dict[str, tuple[Step, bool]] = {"snntorch": (snntorch_tutorial(), True), "default": (ours("fast"), False)}
    for isa in native.cpu_isas():
        if native.library(isa) is not None:
            impls[f"c-{isa}"] = (ours("fast", isa), False)
    impls["torch-loops"] = (ours("fast", None), False)
    if with_eager:
        impls["eager"] = (ours("eager"), False)
    return impls


def bench_length(
    n_steps: int, batch: int, reps: int, iters: int, impls: dict[str, tuple[Step, bool]]
) -> dict[str, list[tuple[float, float]]]:
    """Interleaved repetitions at one sequence length: (wall, CPU) samples/s per engine and repetition."""
    g = torch.Generator().manual_seed(n_steps)
    x_bt = (torch.rand(batch, n_steps, N_IN, generator=g) < 0.2).float()  # [B, T, C] random binary spikes
    x_tb = x_bt.transpose(0, 1).contiguous()  # [T, B, C], a data loader's job: not timed
    y = torch.randint(0, N_OUT, (batch,), generator=g)
    for step, tm in impls.values():  # warm-up: first-call allocations, lazy init
        step(x_tb if tm else x_bt, y)
    names = list(impls)
    result: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for rep in range(reps):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for name in order:
            step, tm = impls[name]
            result[name].append(samples_per_s(step, x_tb if tm else x_bt, y, iters))
        line = "  ".join(f"{n} {result[n][-1][1]:.0f}" for n in names)
        print(f"  T={n_steps:4d} rep {rep + 1}/{reps}: {line}  samples/s (CPU)", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and iterations")
    parser.add_argument("--lengths", type=int, nargs="+", default=[28, 784], help="sequence lengths T")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--reps", type=int, default=None, help="interleaved repetitions (default 7, quick 3)")
    parser.add_argument("--no-eager", action="store_true", help="skip our eager autograd loop (saves time)")
    parser.add_argument("--no-compiled", action="store_true", help="skip the torch.compile reference")
    parser.add_argument("--threads", type=int, default=1, help="torch and OpenMP threads (default 1)")
    parser.add_argument("--out", type=str, default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    try:
        import snntorch  # noqa: F401
    except ImportError:
        print("snnTorch is not installed: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    if any(t % BLOCK for t in args.lengths) and not args.no_compiled:
        print(f"--lengths: multiples of {BLOCK} (the reference's block), or --no-compiled", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    record = provenance.collect(args.threads, ["benchmarks/train_throughput.py", *(argv or sys.argv[1:])])
    reps = args.reps or (3 if args.quick else 7)
    print(provenance.summary(record))
    print(f"torch {torch.__version__}, batch {args.batch}, {reps} reps")
    default_isa, why = native.training_isa()
    print(f"default engine: {'C ' + default_isa if default_isa else 'torch loops'} ({why})")
    load = record["load_average_before"]
    if isinstance(load, float) and load > (record["cpu"]["cpus"] or 1):  # type: ignore[index]
        print(f"warning: load average {load:.1f}: wall-clock figures are unreliable; read the CPU-time ones")
    impls = engines(not args.no_eager)
    compile_s = None
    if not args.no_compiled:
        step, warm = compiled_blocks()
        t0 = time.perf_counter()
        warm(args.batch)
        compile_s = time.perf_counter() - t0
        print(f"torch.compile of the reference's blocks: {compile_s:.1f} s (once, before timing)")
        impls["compiled"] = (step, True)
    gflops = gemm_gflops(args.batch)
    print(f"dense torch.mm [{args.batch}, {N_HIDDEN}] x [{N_HIDDEN}, {N_HIDDEN}]: {gflops:.1f} GFLOP/s")
    summary = []
    for n_steps in args.lengths:
        # aim at roughly 0.3 s (quick) or 1 s per measurement of the slowest engine (snnTorch)
        budget = (0.3 if args.quick else 1.0) * 3800 * 28 / (args.batch * n_steps)
        summary.append((n_steps, bench_length(n_steps, args.batch, reps, max(1, round(budget)), impls)))
    table: list[dict[str, object]] = []
    met = {"vs_snntorch": True, "vs_compiled": True}
    print(f"\nmedians over repetitions; ratios per repetition, then the median; bound: GEMM at {gflops:.0f} GFLOP/s")
    print(f"{'T':>5} {'engine':>12} {'CPU samples/s':>14} {'vs snnTorch':>12} {'vs compiled':>12} {'of bound':>9}"
          f" {'wall samples/s':>15} {'vs snnTorch':>12}")  # fmt: skip
    for n_steps, res in summary:
        bound = gflops * 1e9 / (FLOP_PER_SAMPLE_STEP * n_steps)
        for name, v in res.items():
            row: dict[str, object] = {"T": n_steps, "engine": name}
            for clock, c in (("cpu", 1), ("wall", 0)):
                row[f"{clock}_samples_per_s"] = statistics.median(r[c] for r in v)
                row[f"{clock}_vs_snntorch"] = statistics.median(
                    a[c] / b[c] for a, b in zip(v, res["snntorch"], strict=True)
                )
                if "compiled" in res:
                    row[f"{clock}_vs_compiled"] = statistics.median(
                        a[c] / b[c] for a, b in zip(v, res["compiled"], strict=True)
                    )
            row["fraction_of_gemm_bound"] = row["cpu_samples_per_s"] / bound  # type: ignore[operator]
            table.append(row)
            vc = row.get("cpu_vs_compiled")
            print(f"{n_steps:5d} {name:>12} {row['cpu_samples_per_s']:14.0f} {row['cpu_vs_snntorch']:11.2f}x"
                  f" {'' if vc is None else f'{vc:11.2f}x':>12} {row['fraction_of_gemm_bound']:8.0%}"
                  f" {row['wall_samples_per_s']:15.0f} {row['wall_vs_snntorch']:11.2f}x")  # fmt: skip
            if name == "default" or name in ("c-avx2", "c-avx512"):
                met["vs_snntorch"] = met["vs_snntorch"] and row["cpu_vs_snntorch"] >= TARGET  # type: ignore[operator]
                if vc is not None:
                    met["vs_compiled"] = met["vs_compiled"] and vc >= 1.0  # type: ignore[operator]
        print(f"{n_steps:5d} {'GEMM bound':>12} {bound:14.0f}")
    print(f"\ntarget (default, c-avx2 and c-avx512 >= {TARGET:.0f}x snnTorch by CPU time at every length): "
          f"{'MET' if met['vs_snntorch'] else 'NOT MET'}")  # fmt: skip
    if not args.no_compiled:
        print(f"target (the same engines >= the compiled reference): {'MET' if met['vs_compiled'] else 'NOT MET'}")
    provenance.finish(record)
    print(f"load average after: {record['load_average_after']}")
    if args.out:
        from rsnn_deploy.io import atomic_path

        record.update({
            "batch": args.batch,
            "repetitions": reps,
            "default_engine": default_isa or "torch-loops",
            "default_engine_why": why,
            "torch_compile_s": compile_s,
            "gemm_gflops": gflops,
            "flop_per_sample_step": FLOP_PER_SAMPLE_STEP,
            "target": TARGET,
            "target_met": met,
            "results": table,
        })  # fmt: skip
        with atomic_path(args.out) as tmp:
            tmp.write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
