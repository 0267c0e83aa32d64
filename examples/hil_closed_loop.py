"""Closed loop: a spiking controller on the emulated chip keeps a drifting signal inside a band.

The environment lives on the host. Every step (1 ms of chip time):

1. the signal ``s`` is encoded to spikes (a place code: one of ``C`` input neurons fires,
   the one whose bin holds ``s``);
2. the host pushes that frame into the chip (:class:`rsnn_deploy.hil.HilSession`) and runs
   one chip step;
3. the readout of the spikes that came out picks an action: push down, nothing, push up;
4. the environment integrates it: ``s <- s + drift[t] + gain * action``.

``drift`` is a slow sine plus noise, so doing nothing lets ``s`` wander far outside the
band ``|s| <= 1``. The controller is a small recurrent spiking network trained here, in
a few seconds, by imitation of a simple expert (push back towards 0 once
``|s| > 0.4``) on windows of generated trajectories, then quantized for ``loihi1``.

What the chip sees is what Loihi would see: the input latency of one step means the
decision at step ``n`` is based on the signal at step ``n - 1``. After the episode the
recorded input frames are replayed through the batched emulator: the spikes from the
loop must be identical, bit for bit, to what the emulator gives for the same input (the
loop changed nothing about the chip's arithmetic).

Run::

    python examples/hil_closed_loop.py                   # nengo-loihi emulator in the loop, 5000 steps
    python examples/hil_closed_loop.py --backend emulator
    python examples/hil_closed_loop.py --quick           # CI: smaller training, 600-step episode

Last line: ``RESULT ok in_band=... baseline=... expert=... identical_spikes=True``.
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

N_BINS = 12  # input channels: place code of s over [-LIMIT, LIMIT]
LIMIT = 2.4
BAND = 1.0  # success: |s| <= BAND
DEADBAND = 0.4  # the expert pushes once |s| exceeds this (a bin edge)
GAIN = 0.2  # how far one push moves s
DOWN, NOTHING, UP = 0, 1, 2
ACTION = np.array([-1.0, 0.0, 1.0])


def encode(s: float) -> np.ndarray:
    """Place code: the input neuron whose bin holds ``s`` (clipped to the range) fires."""
    k = int(np.clip(np.floor((s + LIMIT) / (2 * LIMIT) * N_BINS), 0, N_BINS - 1))
    frame = np.zeros(N_BINS, dtype=np.uint8)
    frame[k] = 1
    return frame


def expert(s: float) -> int:
    """The policy to imitate: push back towards 0 outside the dead band."""
    return DOWN if s > DEADBAND else UP if s < -DEADBAND else NOTHING


def drift(n_steps: int, rng: np.random.Generator) -> np.ndarray:
    """Slow sine (period 150-250 steps, random phase) plus white noise: the disturbance per step."""
    t = np.arange(n_steps)
    period = rng.uniform(150, 250)
    return 0.08 * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi)) + 0.04 * rng.standard_normal(n_steps)


def episode(policy, d: np.ndarray, s0: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run ``policy(step, s) -> action`` against the drift ``d``; returns (signal, actions, frames)."""
    s = s0
    signal, actions, frames = np.zeros(len(d)), np.zeros(len(d), dtype=np.int64), np.zeros((len(d), N_BINS), np.uint8)
    for n in range(len(d)):
        frames[n] = encode(s)
        a = policy(n, s, frames[n])
        signal[n], actions[n] = s, a
        s = s + d[n] + GAIN * ACTION[a]
    return signal, actions, frames


def training_windows(n: int, window: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Windows of trajectories under an exploring policy (expert 70 %, random 30 %), labelled by the expert.

    Each window starts at a random signal level, so every bin and action is seen; its label
    is the expert's action for the signal at the window's last step (the readout mode is
    ``last``: the network answers for "now").
    """
    x = np.zeros((n, window, N_BINS), dtype=np.uint8)
    y = np.zeros(n, dtype=np.int64)

    def explore(_n: int, s: float, _f: np.ndarray) -> int:
        return expert(s) if rng.random() < 0.7 else int(rng.integers(3))

    for i in range(n):
        signal, _, frames = episode(explore, drift(window, rng), rng.uniform(-LIMIT, LIMIT))
        x[i], y[i] = frames, expert(signal[-1])
    return x, y


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller training set and a 600-step episode (CI)")
    p.add_argument("--backend", default="nengo-loihi", choices=["nengo-loihi", "emulator", "onnx"],
                   help="what runs the chip steps (default: nengo-loihi's emulator)")
    p.add_argument("--steps", type=int, default=None, help="episode length (default 5000, quick 600)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="keep the trained model and quantized network here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(1)
    import warnings

    warnings.filterwarnings("ignore", message="This version of `nengo_loihi`")
    from rsnn_deploy.config import TrainConfig
    from rsnn_deploy.emulator import run as emulate
    from rsnn_deploy.hil import HilSession, latency_summary, open_stepper
    from rsnn_deploy.quantize import quantize_model
    from rsnn_deploy.tasks import load_task
    from rsnn_deploy.train import model_config_for, train

    rng = np.random.default_rng(args.seed)
    n_steps = args.steps or (600 if args.quick else 5000)
    tmp = tempfile.TemporaryDirectory(prefix="rsnn-closed-loop-") if args.out is None else None
    out = Path(tmp.name) if tmp is not None else args.out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    # 1. train the controller by imitation (a .npz task, readout at the last step)
    x, y = training_windows(1500 if args.quick else 6000, 10, rng)
    np.savez(out / "imitation.npz", x=x, y=y)
    task = load_task("npz", path=out / "imitation.npz", readout_mode="last", seed=args.seed)
    cfg = model_config_for(task, variant="rec", n_hidden=32, tau_mem_ms=5.0, tau_out_ms=2.0, v_floor=0.0)
    result = train(task, cfg, TrainConfig(epochs=8 if args.quick else 20, batch_size=32, lr=1e-2, seed=args.seed),
                   out / "run", overwrite=True, progress=False)
    from rsnn_deploy.checkpoint import load_checkpoint

    model = load_checkpoint(result.checkpoint).model
    qnet, _ = quantize_model(model, "loihi1", torch.from_numpy(x[:300]).float(), source="closed-loop")
    print(f"controller: {cfg.n_hidden} neurons, imitation accuracy float {result.metrics['test_acc']:.3f}, "
          f"quantized for {qnet.profile} (input latency {qnet.input_latency}) [{time.perf_counter() - t0:.1f} s]")

    # 2. the environment and the policies to compare on the same drift
    d = drift(n_steps, np.random.default_rng(args.seed + 1))
    in_band = {}
    in_band["do nothing"] = float(np.mean(np.abs(episode(lambda n, s, f: NOTHING, d)[0]) <= BAND))
    in_band["expert"] = float(np.mean(np.abs(episode(lambda n, s, f: expert(s), d)[0]) <= BAND))
    last = {"s": 0.0}

    def delayed_expert(n: int, s: float, f: np.ndarray) -> int:  # what the expert could do with the chip's latency
        a = expert(last["s"]) if n else NOTHING
        last["s"] = s
        return a

    in_band["expert, 1-step delay"] = float(np.mean(np.abs(episode(delayed_expert, d)[0]) <= BAND))

    # 3. the chip in the loop: push the frame, run one chip step, act on the readout
    spikes_loop: list[np.ndarray] = []
    with HilSession(qnet, open_stepper(qnet, args.backend)) as session:

        def chip(n: int, s: float, frame: np.ndarray) -> int:
            out_step = session.push(frame)
            if out_step is None:  # the first frame is still on its way to the neurons
                return NOTHING
            spikes_loop.append(out_step.spikes[0])
            return int(out_step.decision[0])

        t1 = time.perf_counter()
        signal, actions, frames = episode(chip, d)
        loop_s = time.perf_counter() - t1
        lat = latency_summary(session.step_seconds)
        spikes_loop += [o.spikes[0] for o in session.finish()]  # the last frame's step, for the replay check
    in_band[f"RSNN on {args.backend}"] = float(np.mean(np.abs(signal) <= BAND))

    # 4. replay the recorded frames offline: the batched emulator must give the very same spikes
    replay = emulate(qnet, frames[None])
    identical = bool(np.array_equal(np.array(spikes_loop), replay.spikes[0]))
    agree = float(np.mean(actions[1:] == np.array([expert(s) for s in signal[:-1]])))

    for name, frac in in_band.items():
        print(f"  {name:<24} {100 * frac:5.1f} % of {n_steps} steps in band |s| <= {BAND:g}")
    print(f"chip in the loop: {lat['median_ms']:.3f} ms median, {lat['p95_ms']:.3f} ms p95 per step "
          f"({n_steps / loop_s:.0f} env steps/s); actions agree with the delayed expert on {100 * agree:.1f} %; "
          f"replayed spikes identical: {identical}")
    net = in_band[f"RSNN on {args.backend}"]
    ok = identical and net >= in_band["do nothing"] + 0.2 and net >= 0.8
    print(f"RESULT {'ok' if ok else 'fail'} in_band={net:.4f} baseline={in_band['do nothing']:.4f} "
          f"expert={in_band['expert']:.4f} identical_spikes={identical} median_ms={lat['median_ms']:.3f} "
          f"p95_ms={lat['p95_ms']:.3f}")
    if tmp is not None:
        tmp.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
