"""Throughput of our batched integer emulator against nengo-loihi's own emulator, same network, same spikes.

One random recurrent network (64 inputs -> 128 LIF neurons, T = 40 as for MNIST-1D) is
built in nengo and discretized by nengo-loihi; its integers are read back
(``qnet_from_nengo_loihi``), so both sides run the very same integers. nengo-loihi is
run as a user would: one ``Simulator`` per sample (it cannot reset), build included.
Because that is slow, it runs on a subset (``--nengo-samples``) and its samples/s is
extrapolated; our emulator runs all samples in one batched call. The hidden spikes of
the subset are compared bit for bit.

Usage::

    python benchmarks/emulator_throughput.py            # 1000 samples, nengo-loihi on 50
    python benchmarks/emulator_throughput.py --quick    # 200 samples, nengo-loihi on 10
    python benchmarks/emulator_throughput.py --out results/emulator_throughput.json

On ``loihi1`` networks whose states cannot wrap (this one), ``emulator.run`` runs its time
loop in C (``rsnn_deploy/emulator_kernels.c``) where a compiler is present;
``RSNN_DEPLOY_NATIVE=0`` measures the numpy loop instead.
"""

from __future__ import annotations

import os

# One BLAS thread: the per-step GEMMs are small, and on a shared 2-core machine OpenBLAS's
# threads spin against each other (measured 5x slower). Set before numpy is imported;
# an explicit OPENBLAS_NUM_THREADS / OMP_NUM_THREADS in the environment wins.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402


def build_network(seed: int, x: np.ndarray, n_hidden: int, w_in: float, w_rec: float) -> tuple:
    """The benchmark network in nengo, fed exact spikes ``x`` [T, C]; returns (net, hidden, input, probe)."""
    import nengo
    import nengo_loihi

    from rsnn_deploy.nengo_loihi_readback import add_spike_input

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=1000, help="samples for our emulator (default 1000)")
    parser.add_argument("--nengo-samples", type=int, default=50, help="samples run through nengo-loihi")
    parser.add_argument("--inputs", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rate", type=float, default=0.1, help="input spike probability per step")
    parser.add_argument("--w-in", type=float, default=0.003, help="std of the float input weights")
    parser.add_argument("--w-rec", type=float, default=0.001, help="std of the float recurrent weights")
    parser.add_argument("--data", choices=("random", "mnist1d"), default="random")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of our emulator (best is reported)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="200 samples, nengo-loihi on 10")
    parser.add_argument("--out", type=str, default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.quick:
        args.samples, args.nengo_samples = min(args.samples, 200), min(args.nengo_samples, 10)
    args.nengo_samples = min(args.nengo_samples, args.samples)

    # nengo / nengo-loihi build chatter (version check, NaN placeholders, LIF initial voltage, lossy
    # weight exponents): none of it changes the integers, which are read back and compared
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"nengo(_loihi)?\.")
    warnings.filterwarnings("ignore", message="invalid value encountered in cast")
    import nengo_loihi

    from rsnn_deploy.emulator import run
    from rsnn_deploy.nengo_loihi_readback import qnet_from_nengo_loihi

    x, what = load_inputs(args)
    n, t_steps, c = x.shape
    latency = 1

    # nengo-loihi, sample by sample, as a user would run it (network + Simulator per sample)
    ref_spikes = []
    qnet = None
    run_s = 0.0
    t0 = time.perf_counter()
    for i in range(args.nengo_samples):
        net, hid, inp, probe = build_network(args.seed, x[i], args.hidden, args.w_in, args.w_rec)
        with nengo_loihi.Simulator(net, target="sim", progress_bar=False) as sim:
            t_run = time.perf_counter()
            sim.run_steps(t_steps + latency)
            run_s += time.perf_counter() - t_run
            if qnet is None:
                qnet = qnet_from_nengo_loihi(sim, hid, inp, source="benchmark")
        ref_spikes.append(sim.data[probe][latency:] > 0)
    nengo_s = time.perf_counter() - t0
    assert qnet is not None
    nengo_rate = args.nengo_samples / nengo_s
    nengo_run_rate = args.nengo_samples / run_s

    # ours: the whole batch at once, best of a few runs
    times = []
    for _ in range(max(1, args.repeats)):
        t1 = time.perf_counter()
        trace = run(qnet, x)
        times.append(time.perf_counter() - t1)
    ours_rate = n / min(times)

    same = all(np.array_equal(trace.spikes[i], ref_spikes[i]) for i in range(args.nengo_samples))
    rate = float(trace.spikes.mean())
    print(f"network : {c} inputs -> {qnet.n_hidden} recurrent LIF, T = {t_steps}; input {what}")
    print(f"activity: {rate * 1000:.0f} Hz mean hidden rate (dt = 1 ms); overflow {dict(trace.overflow)}")
    print(
        f"nengo-loihi {nengo_loihi.__version__} (target='sim'): {nengo_rate:8.1f} samples/s "
        f"(measured on {args.nengo_samples} samples, build + run per sample, extrapolated to {n})"
    )
    print(f"  of which Simulator.run_steps alone: {nengo_run_rate:8.1f} samples/s (build excluded)")
    print(f"rsnn_deploy.emulator.run (batch {n}): {ours_rate:8.0f} samples/s (best of {len(times)})")
    print(
        f"speed-up: {ours_rate / nengo_rate:.0f}x against nengo-loihi as a user runs it, "
        f"{ours_rate / nengo_run_rate:.0f}x against its stepping alone"
    )
    print(f"bit-identical hidden spikes on the {args.nengo_samples} compared samples: {'yes' if same else 'NO'}")
    if args.out:
        import datetime as dt
        import json

        from rsnn_deploy import native
        from rsnn_deploy.io import atomic_path

        record = {
            "command": "python " + " ".join(["benchmarks/emulator_throughput.py", *(argv or sys.argv[1:])]),
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "nengo_loihi": nengo_loihi.__version__,
            "network": {"inputs": c, "hidden": qnet.n_hidden, "steps": t_steps, "hidden_rate_hz": rate * 1000},
            "samples": n,
            "nengo_samples": args.nengo_samples,
            "native_loop": native.enabled(),
            "nengo_loihi_samples_per_s": nengo_rate,
            "nengo_loihi_stepping_samples_per_s": nengo_run_rate,
            "ours_samples_per_s": ours_rate,
            "speedup": ours_rate / nengo_rate,
            "speedup_vs_stepping": ours_rate / nengo_run_rate,
            "bit_identical": same,
        }
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
# One random loihi2 network (64 inputs -> 128 neurons, recurrent, T = 40) runs on our emulator
# (one batched call) and on Lava 0.10's own processes through the bundle that
# ``rsnn-deploy export --format lava`` writes (``rsnn_deploy.backends._lava.run_lava``): one Python
# 3.10 process that imports Lava once, then builds, runs and reads back each sample (chunk 1), as a
# Lava user would; ``--lava-chunk 8`` measures the lava backend's side-by-side copies instead.
# Lava's samples/s is given with and without its start-up (import), from runs on 1 and on
# ``--lava-samples`` samples; wall and CPU time (Lava's CPU time: its child process) are both reported.


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
    )
    check_representable(q, prof)
    validate_for(q, prof)
    return q


def lava_main(argv: list[str]) -> int:
    import resource

    parser = argparse.ArgumentParser(description="loihi2: our emulator vs Lava 0.10 on the same network")
    parser.add_argument("--lava", action="store_true", help="(selects this benchmark)")
    parser.add_argument("--atrlif", action="store_true", help="adaptive network (Lava ATRLIF) instead of LIF")
    parser.add_argument("--samples", type=int, default=1000, help="samples for our emulator")
    parser.add_argument("--lava-samples", type=int, default=20, help="samples run on Lava")
    parser.add_argument("--lava-chunk", type=int, default=1,
                        help="samples per Lava network (1: one network per sample, as a Lava user runs it)")
    parser.add_argument("--inputs", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rate", type=float, default=0.1, help="input spike probability per step")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="200 samples, Lava on 5")
    parser.add_argument("--out", type=str, default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.quick:
        args.samples, args.lava_samples = min(args.samples, 200), min(args.lava_samples, 5)
    args.lava_samples = max(2, min(args.lava_samples, args.samples))

    from rsnn_deploy.backends._lava import run_lava
    from rsnn_deploy.emulator import run
    from rsnn_deploy.lava_env import LAVA_VERSION, ensure_env

    py = ensure_env()
    q = _lava_network(args.seed, args.inputs, args.hidden, args.atrlif)
    x = (np.random.default_rng(args.seed + 1).random((args.samples, args.steps, args.inputs)) < args.rate)
    x = x.astype(np.uint8)

    def child_cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    lava_runs = {}
    for k in (1, args.lava_samples):
        c0, t0 = child_cpu(), time.perf_counter()
        tr_lava = run_lava(q, x[:k], python=py, chunk=args.lava_chunk)
        lava_runs[k] = (time.perf_counter() - t0, child_cpu() - c0)
    k = args.lava_samples
    (w1, c1), (wk, ck) = lava_runs[1], lava_runs[k]
    lava_rate, lava_cpu_rate = k / wk, k / ck
    lava_marginal = (k - 1) / max(wk - w1, 1e-9)  # start-up (Python + Lava import) excluded
    lava_marginal_cpu = (k - 1) / max(ck - c1, 1e-9)

    walls, cpus = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for _ in range(max(1, args.repeats)):
            c0, t0 = time.process_time(), time.perf_counter()
            tr = run(q, x)
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
    ours_rate, ours_cpu_rate = args.samples / min(walls), args.samples / min(cpus)
    same = bool(np.array_equal(tr.spikes[:k], tr_lava.spikes))
    kind = "ATRLIF" if args.atrlif else "LIF"
    rate = float(tr.spikes.mean())
    print(f"network : {args.inputs} inputs -> {args.hidden} recurrent {kind} (loihi2), T = {args.steps}; "
          f"hidden rate {rate * 1000:.0f} Hz; overflow {dict(tr.overflow)}")
    print(f"Lava {LAVA_VERSION} (fixed_pt, run_lava.py --chunk {args.lava_chunk}): {lava_rate:8.2f} samples/s wall, "
          f"{lava_cpu_rate:8.2f} "
          f"CPU ({k} samples, start-up included); {lava_marginal:.2f} / {lava_marginal_cpu:.2f} without start-up")
    print(f"rsnn_deploy.emulator.run (batch {args.samples}): {ours_rate:8.0f} samples/s wall, {ours_cpu_rate:8.0f} CPU "
          f"(best of {len(walls)})")
    print(f"speed-up: {ours_rate / lava_rate:.0f}x wall ({ours_rate / lava_marginal:.0f}x against Lava without "
          f"start-up); CPU {ours_cpu_rate / lava_cpu_rate:.0f}x ({ours_cpu_rate / lava_marginal_cpu:.0f}x)")
    print(f"bit-identical hidden spikes on the {k} compared samples: {'yes' if same else 'NO'}")
    if args.out:
        import datetime as dt
        import json

        from rsnn_deploy.io import atomic_path

        record = {
            "command": "python " + " ".join(["benchmarks/emulator_throughput.py", *argv]),
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "lava": LAVA_VERSION, "neuron": kind, "lava_chunk": args.lava_chunk,
            "network": {"inputs": args.inputs, "hidden": args.hidden, "steps": args.steps,
                        "hidden_rate_hz": rate * 1e3},
            "samples": args.samples, "lava_samples": k,
            "lava_samples_per_s": lava_rate, "lava_cpu_samples_per_s": lava_cpu_rate,
            "lava_samples_per_s_without_startup": lava_marginal,
            "lava_cpu_samples_per_s_without_startup": lava_marginal_cpu,
            "ours_samples_per_s": ours_rate, "ours_cpu_samples_per_s": ours_cpu_rate,
            "speedup": ours_rate / lava_rate, "speedup_without_lava_startup": ours_rate / lava_marginal,
            "speedup_cpu": ours_cpu_rate / lava_cpu_rate, "bit_identical": same,
        }
        with atomic_path(args.out) as tmp:
            tmp.write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(lava_main(sys.argv[1:]) if "--lava" in sys.argv[1:] else main())
