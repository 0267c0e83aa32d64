"""Throughput of our batched integer emulator against nengo-loihi's own emulator, same network, same spikes.

One random recurrent network (64 inputs -> 128 LIF neurons, T = 40 as for MNIST-1D) is
built in nengo and discretized by nengo-loihi; its integers are read back
(``qnet_from_nengo_loihi``), so both sides run the very same integers. nengo-loihi is
run as a user would: one ``Simulator`` per sample (it cannot reset), build included.

How it measures (interleaved, the same statistic on both sides)
---------------------------------------------------------------
Each repetition times, in a rotated order: nengo-loihi on one sample (build + run);
our ``emulator.run`` on that one sample (batch 1: a host loop stepping samples one by
one; averaged over ``--batch1-calls`` calls so that the clock resolves it); and our
``emulator.run`` on ``--samples`` samples at once (batch 1000 by default). Each is
reported as samples/s, the median over repetitions, by CPU time (one thread: other jobs
on the machine disturb it least) and by wall clock; each ratio is taken per repetition,
then the median. Batch 1 and batch 1000 are reported separately. The hidden spikes of
every sample nengo-loihi ran are compared bit for bit with both of ours.

Usage::

    python benchmarks/emulator_throughput.py                 # 15 repetitions
    python benchmarks/emulator_throughput.py --quick         # 5
    python benchmarks/emulator_throughput.py --out results/emulator_throughput.json

On ``loihi1`` networks whose q and u cannot wrap (this one), ``emulator.run`` runs its
time loop in C (``rsnn_deploy/emulator_kernels.c``) where a compiler is present;
``RSNN_DEPLOY_NATIVE=0`` measures the numpy loop instead. The JSON records the CPU
model and SIMD flags, threads, load before and after, library versions and the commit.
"""

from __future__ import annotations

import os

# One BLAS thread: the per-step GEMMs are small, and on a shared 2-core machine OpenBLAS's
# threads spin against each other (measured 5x slower). Set before numpy is imported;
# an explicit OPENBLAS_NUM_THREADS / OMP_NUM_THREADS in the environment wins.
from rsnn_deploy.threads import BLAS_THREAD_VARIABLES  # imports neither numpy nor torch

for _var in BLAS_THREAD_VARIABLES:
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402


def build_network(seed: int, x: np.ndarray, n_hidden: int, w_in: float, w_rec: float) -> tuple:
    """The benchmark network in nengo, fed exact spikes ``x`` [T, C]; returns (net, hidden, input, probe)."""
    import nengo
    import nengo_loihi

    from rsnn_deploy.backends.nengo.readback import add_spike_input

    rng = np.random.RandomState(seed)
    c = x.shape[1]
    with nengo.Network(seed=seed) as net:
        nengo_loihi.add_params(net)
        inp = add_spike_input(net, x)
        hid = nengo.Ensemble(
            n_hidden,
            1,
            neuron_type=nengo.LIF(tau_rc=0.01, tau_ref=0.0),
            gain=np.ones(n_hidden),
            bias=np.zeros(n_hidden),
        )
        nengo.Connection(inp.neurons, hid.neurons, transform=rng.randn(n_hidden, c) * w_in, synapse=0.002)
        nengo.Connection(hid.neurons, hid.neurons, transform=rng.randn(n_hidden, n_hidden) * w_rec, synapse=0.002)
        probe = nengo.Probe(hid.neurons, "output")
    return net, hid, inp, probe


def load_inputs(args: argparse.Namespace) -> tuple[np.ndarray, str]:
    """[N, T, C] uint8 spikes: MNIST-1D test split (level crossing) or Bernoulli noise."""
    if args.data == "mnist1d":
        from rsnn_deploy.tasks import load_task

        task = load_task("mnist1d")
        x = np.asarray(task.test.spikes(slice(0, args.samples)), dtype=np.uint8)
        return x, f"MNIST-1D test split, {x.shape[2]} level-crossing channels"
    rng = np.random.default_rng(args.seed)
    x = (rng.random((args.samples, args.steps, args.inputs)) < args.rate).astype(np.uint8)
    return x, f"Bernoulli p={args.rate}"


def _clocked(fn) -> tuple[float, float]:
    """(wall, CPU) seconds of one call of ``fn``."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=1000, help="batch size of the large-batch runs (default 1000)")
    parser.add_argument("--reps", type=int, default=15, help="interleaved repetitions = samples nengo-loihi runs")
    parser.add_argument("--batch1-calls", type=int, default=50, help="batch-1 calls averaged per repetition")
    parser.add_argument("--inputs", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rate", type=float, default=0.1, help="input spike probability per step")
    parser.add_argument("--w-in", type=float, default=0.003, help="std of the float input weights")
    parser.add_argument("--w-rec", type=float, default=0.001, help="std of the float recurrent weights")
    parser.add_argument("--data", choices=("random", "mnist1d"), default="random")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="threads of our C loop (default 1)")
    parser.add_argument("--quick", action="store_true", help="5 repetitions")
    parser.add_argument("--out", type=str, default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.quick:
        args.reps = min(args.reps, 5)
    args.samples = max(args.samples, args.reps)

    # nengo / nengo-loihi build chatter (version check, NaN placeholders, LIF initial voltage, lossy
    # weight exponents): none of it changes the integers, which are read back and compared
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"nengo(_loihi)?\.")
    warnings.filterwarnings("ignore", message="invalid value encountered in cast")
    import nengo_loihi
    import torch

    from rsnn_deploy import native, provenance
    from rsnn_deploy.backends.nengo.readback import qnet_from_nengo_loihi
    from rsnn_deploy.emulator import run

    torch.set_num_threads(args.threads)  # the C loop's OpenMP team follows torch's thread count
    record = provenance.collect(args.threads, ["benchmarks/emulator_throughput.py", *(argv or sys.argv[1:])])
    print(provenance.summary(record))
    x, what = load_inputs(args)
    n, t_steps, c = x.shape
    latency = 1

    def nengo_one(i: int) -> np.ndarray:
        net, hid, inp, probe = build_network(args.seed, x[i], args.hidden, args.w_in, args.w_rec)
        with nengo_loihi.Simulator(net, target="sim", progress_bar=False) as sim:
            sim.run_steps(t_steps + latency)
            if state.get("qnet") is None:
                state["qnet"] = qnet_from_nengo_loihi(sim, hid, inp, source="benchmark")
        return sim.data[probe][latency:] > 0

    state: dict[str, object] = {}
    ref0 = nengo_one(0)  # also reads back the integers (and warms nengo-loihi up)
    qnet = state["qnet"]
    big = run(qnet, x)  # warm-up (and the compile of the C loop, once per machine)
    same = np.array_equal(big.spikes[0], ref0)
    times: dict[str, list[tuple[float, float]]] = {"nengo-loihi": [], "ours-batch1": [], "ours-batch": []}
    for r in range(args.reps):
        i = r % n
        out: dict[str, object] = {}

        def nl(i: int = i, out: dict = out) -> None:
            out["ref"] = nengo_one(i)

        def one(i: int = i, out: dict = out) -> None:
            for _ in range(args.batch1_calls):
                out["one"] = run(qnet, x[i : i + 1])

        def batch(out: dict = out) -> None:
            out["big"] = run(qnet, x)

        jobs = [("nengo-loihi", nl, 1), ("ours-batch1", one, args.batch1_calls), ("ours-batch", batch, n)]
        for name, fn, samples in jobs[r % 3 :] + jobs[: r % 3]:
            wall, cpu = _clocked(fn)
            times[name].append((samples / wall, samples / max(cpu, 1e-9)))
        ref = out["ref"]
        same = same and np.array_equal(out["one"].spikes[0], ref) and np.array_equal(out["big"].spikes[i], ref)
        print(f"  rep {r + 1}/{args.reps}: " + "  ".join(f"{k} {v[-1][1]:.0f}" for k, v in times.items())
              + " samples/s (CPU)", flush=True)  # fmt: skip
    rate = float(big.spikes.mean())
    print(f"network : {c} inputs -> {qnet.n_hidden} recurrent LIF, T = {t_steps}; input {what}")
    print(f"activity: {rate * 1000:.0f} Hz mean hidden rate (dt = 1 ms); overflow {dict(big.overflow)}")
    table: dict[str, dict[str, float]] = {}
    for clock, k in (("cpu", 1), ("wall", 0)):
        for name, v in times.items():
            row = table.setdefault(name, {})
            row[f"{clock}_samples_per_s"] = statistics.median(s[k] for s in v)
            if name != "nengo-loihi":
                row[f"{clock}_speedup"] = statistics.median(
                    a[k] / b[k] for a, b in zip(v, times["nengo-loihi"], strict=True)
                )
    label = {"nengo-loihi": f"nengo-loihi {nengo_loihi.__version__} (build + run per sample)",
             "ours-batch1": "emulator.run, batch 1", "ours-batch": f"emulator.run, batch {n}"}  # fmt: skip
    print(f"\n{'':42} {'CPU samples/s':>14} {'vs nengo-loihi':>15} {'wall samples/s':>15} {'vs nengo-loihi':>15}")
    for name, row in table.items():
        sp_c, sp_w = row.get("cpu_speedup"), row.get("wall_speedup")
        print(f"{label[name]:42} {row['cpu_samples_per_s']:14.1f} {'' if sp_c is None else f'{sp_c:.0f}x':>15}"
              f" {row['wall_samples_per_s']:15.1f} {'' if sp_w is None else f'{sp_w:.0f}x':>15}")  # fmt: skip
    targets = {"ours-batch": 1000.0, "ours-batch1": 200.0}
    met = {k: table[k]["cpu_speedup"] >= v for k, v in targets.items()}
    print(f"targets (CPU time): batch {n} >= 1000x {'MET' if met['ours-batch'] else 'NOT MET'}, "
          f"batch 1 >= 200x {'MET' if met['ours-batch1'] else 'NOT MET'}")  # fmt: skip
    print(f"bit-identical hidden spikes on the {min(args.reps, n)} samples nengo-loihi ran: {'yes' if same else 'NO'}")
    provenance.finish(record)
    print(f"load average after: {record['load_average_after']}")
    if args.out:
        import json

        from rsnn_deploy.io import atomic_path

        record.update({
            "nengo_loihi": nengo_loihi.__version__,
            "network": {"inputs": c, "hidden": qnet.n_hidden, "steps": t_steps, "hidden_rate_hz": rate * 1000},
            "batch": n,
            "repetitions": args.reps,
            "batch1_calls_per_rep": args.batch1_calls,
            "native_loop": native.enabled(),
            "results": table,
            "targets": targets,
            "targets_met": met,
            "bit_identical": same,
        })  # fmt: skip
        with atomic_path(args.out) as tmp:
            tmp.write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0 if same else 1


# ----------------------------------------------------------------------------- loihi2: ours vs Lava
# Self-contained (``--lava`` selects it):
#
#     python benchmarks/emulator_throughput.py --lava            # LIF, 1000 samples, Lava on 20
#     python benchmarks/emulator_throughput.py --lava --atrlif   # the adaptive neuron (ATRLIF)
#
# One random loihi2 network (64 inputs -> 128 neurons, recurrent, T = 40) runs on our emulator and
# on Lava 0.10's own processes through the bundle that ``rsnn-deploy export --format lava`` writes
# (``rsnn_deploy.backends._lava.run_lava``): one Python 3.10 process that imports Lava once, then
# builds, runs and reads back each sample (chunk 1), as a Lava user would; ``--lava-chunk 8``
# measures the lava backend's side-by-side copies instead. Each of ``--repeats`` repetitions times,
# in a rotated order: Lava on 1 sample and on ``--lava-samples`` samples (its start-up is the
# difference, so its per-sample cost is also given without it); our ``emulator.run`` at batch 1 (a
# host loop, ``--batch1-calls`` calls) and at batch ``--samples``. Medians over repetitions, ratios
# per repetition then the median, by CPU time (Lava's: its child process) and by wall clock; the
# C loop (``rsnn_loihi2_run``) runs ours unless ``RSNN_DEPLOY_NATIVE=0``.


def _lava_network(seed: int, c: int, h: int, atrlif: bool):
    from rsnn_deploy.hardware import load_profile
    from rsnn_deploy.qnet import QuantizedNetwork, check_representable, validate_for

    prof = load_profile("loihi2")
    rng = np.random.default_rng(seed)
    kw = dict(decay_theta=np.full(h, 40), theta_step=np.full(h, 20 << 6), decay_r=np.full(h, 800)) if atrlif else {}
    q = QuantizedNetwork(
        w_in=rng.integers(-50, 71, (h, c)) << 7, w_rec=rng.integers(-40, 31, (h, h)) << 7,
        bias=np.zeros(h, np.int64), decay_u=np.full(h, 1500), decay_v=np.full(h, 800),
        vth=np.full(h, 800 << 6),  # about 80 Hz (LIF) / 70 Hz (ATRLIF) at 10 % input rate
        refractory=np.ones(h, np.int64), vmin=-(2**23 - 1), vmax=2**23 - 1,
        w_out=rng.standard_normal((10, h)), b_out=np.zeros(10), readout_decay=0.9, readout_mode="mean",
        profile="loihi2", profile_sha256=prof.sha256, input_latency=1, source="benchmark", **kw,
    )  # fmt: skip
    check_representable(q, prof)
    validate_for(q, prof)
    return q


def lava_main(argv: list[str]) -> int:
    import resource

    parser = argparse.ArgumentParser(description="loihi2: our emulator vs Lava 0.10 on the same network")
    parser.add_argument("--lava", action="store_true", help="(selects this benchmark)")
    parser.add_argument("--atrlif", action="store_true", help="adaptive network (Lava ATRLIF) instead of LIF")
    parser.add_argument("--samples", type=int, default=1000, help="batch size of our large-batch runs")
    parser.add_argument("--lava-samples", type=int, default=20, help="samples run on Lava per repetition")
    parser.add_argument(
        "--lava-chunk", type=int, default=1, help="samples per Lava network (1: one per sample, as a Lava user runs it)"
    )
    parser.add_argument("--batch1-calls", type=int, default=50, help="batch-1 calls averaged per repetition")
    parser.add_argument("--inputs", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rate", type=float, default=0.1, help="input spike probability per step")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repetitions")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="threads of our C loop (default 1)")
    parser.add_argument("--quick", action="store_true", help="200 samples, Lava on 5, 2 repetitions")
    parser.add_argument("--out", type=str, default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.quick:
        args.samples, args.lava_samples, args.repeats = min(args.samples, 200), min(args.lava_samples, 5), 2
    args.lava_samples = max(2, min(args.lava_samples, args.samples))

    import torch

    from rsnn_deploy import native, provenance
    from rsnn_deploy.backends._lava import run_lava
    from rsnn_deploy.emulator import _native_ok, params_for, run
    from rsnn_deploy.hardware import load_profile
    from rsnn_deploy.lava_env import LAVA_VERSION, ensure_env

    torch.set_num_threads(args.threads)
    record = provenance.collect(args.threads, ["benchmarks/emulator_throughput.py", *argv])
    print(provenance.summary(record))
    py = ensure_env()
    q = _lava_network(args.seed, args.inputs, args.hidden, args.atrlif)
    c_loop = _native_ok(load_profile("loihi2"), params_for(q, load_profile("loihi2")))
    x = np.random.default_rng(args.seed + 1).random((args.samples, args.steps, args.inputs)) < args.rate
    x = x.astype(np.uint8)
    k = args.lava_samples

    def child_cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    out: dict[str, object] = {}

    def lava(n: int) -> tuple[float, float]:
        c0, t0 = child_cpu(), time.perf_counter()
        out[f"lava{n}"] = run_lava(q, x[:n], python=py, chunk=args.lava_chunk)
        return time.perf_counter() - t0, child_cpu() - c0

    def ours(n: int, calls: int) -> tuple[float, float]:
        def go() -> None:
            for i in range(calls):
                out[f"ours{n}"] = run(q, x[i % args.samples : i % args.samples + 1] if n == 1 else x)

        return _clocked(go)

    times: dict[str, list[tuple[float, float]]] = {"lava": [], "lava-1": [], "ours-batch1": [], "ours-batch": []}
    run(q, x)  # warm-up (and the compile of the C loop, once per machine)
    same = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for r in range(max(1, args.repeats)):
            jobs = [
                ("lava-1", lambda: lava(1)),
                ("lava", lambda: lava(k)),
                ("ours-batch1", lambda: ours(1, args.batch1_calls)),
                ("ours-batch", lambda: ours(args.samples, 1)),
            ]
            for name, fn in jobs[r % 4 :] + jobs[: r % 4]:
                wall, cpu = fn()
                times[name].append((wall, cpu))
            ref = out[f"lava{k}"].spikes  # type: ignore[attr-defined]
            last = (args.batch1_calls - 1) % args.samples
            same = same and bool(np.array_equal(out[f"ours{args.samples}"].spikes[:k], ref))  # type: ignore[attr-defined]
            same = same and bool(np.array_equal(out["ours1"].spikes[0], out[f"ours{args.samples}"].spikes[last]))  # type: ignore[attr-defined]
            print(f"  rep {r + 1}/{args.repeats}: " + "  ".join(f"{nm} {v[-1][1]:.2f} s" for nm, v in times.items())
                  + " (CPU)", flush=True)  # fmt: skip
    provenance.finish(record)
    tr = out[f"ours{args.samples}"]
    rate = float(tr.spikes.mean())  # type: ignore[attr-defined]
    kind = "ATRLIF" if args.atrlif else "LIF"
    table: dict[str, dict[str, float]] = {}
    for clock, j in (("cpu", 1), ("wall", 0)):
        per = {  # samples/s per repetition
            "lava": [k / t[j] for t in times["lava"]],
            "lava-without-startup": [
                (k - 1) / max(a[j] - b[j], 1e-9) for a, b in zip(times["lava"], times["lava-1"], strict=True)
            ],
            "ours-batch1": [args.batch1_calls / max(t[j], 1e-9) for t in times["ours-batch1"]],
            "ours-batch": [args.samples / max(t[j], 1e-9) for t in times["ours-batch"]],
        }
        for name, v in per.items():
            row = table.setdefault(name, {})
            row[f"{clock}_samples_per_s"] = statistics.median(v)
            if name.startswith("ours"):
                row[f"{clock}_speedup"] = statistics.median(a / b for a, b in zip(v, per["lava"], strict=True))
                row[f"{clock}_speedup_without_lava_startup"] = statistics.median(
                    a / b for a, b in zip(v, per["lava-without-startup"], strict=True)
                )
    print(f"network : {args.inputs} inputs -> {args.hidden} recurrent {kind} (loihi2), T = {args.steps}; "
          f"hidden rate {rate * 1000:.0f} Hz; overflow {dict(tr.overflow)}; our loop: {'C' if c_loop else 'numpy'}")  # type: ignore[attr-defined]  # fmt: skip
    label = {"lava": f"Lava {LAVA_VERSION} (chunk {args.lava_chunk}, {k} samples, start-up in)",
             "lava-without-startup": f"Lava {LAVA_VERSION} without its start-up",
             "ours-batch1": "emulator.run, batch 1", "ours-batch": f"emulator.run, batch {args.samples}"}  # fmt: skip
    print(f"\n{'':46} {'CPU samples/s':>14} {'vs Lava':>9} {'(no start-up)':>14} {'wall samples/s':>15} {'vs Lava':>9}")
    for name, row in table.items():
        sp, sp0, spw = row.get("cpu_speedup"), row.get("cpu_speedup_without_lava_startup"), row.get("wall_speedup")
        print(f"{label[name]:46} {row['cpu_samples_per_s']:14.2f} {'' if sp is None else f'{sp:.0f}x':>9} "
              f"{'' if sp0 is None else f'{sp0:.0f}x':>14} {row['wall_samples_per_s']:15.2f} "
              f"{'' if spw is None else f'{spw:.0f}x':>9}")  # fmt: skip
    print(f"bit-identical hidden spikes on the {k} compared samples (and batch 1 = batch {args.samples}): "
          f"{'yes' if same else 'NO'}")  # fmt: skip
    print(f"load average after: {record['load_average_after']}")
    if args.out:
        import json

        from rsnn_deploy.io import atomic_path

        record.update({
            "lava": LAVA_VERSION, "neuron": kind, "lava_chunk": args.lava_chunk,
            "network": {"inputs": args.inputs, "hidden": args.hidden, "steps": args.steps,
                        "hidden_rate_hz": rate * 1e3},
            "samples": args.samples, "lava_samples": k, "repetitions": args.repeats,
            "batch1_calls_per_rep": args.batch1_calls, "native_loop": bool(c_loop and native.enabled()),
            "results": table, "bit_identical": same,
        })  # fmt: skip
        with atomic_path(args.out) as tmp:
            tmp.write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(lava_main(sys.argv[1:]) if "--lava" in sys.argv[1:] else main())
