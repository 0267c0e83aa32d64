"""Run an rsnn-deploy Lava bundle on Lava's own fixed-point process models.

This file is copied verbatim into every bundle that ``rsnn-deploy export --format lava``
writes, and the ``lava`` backend of rsnn-deploy runs this same file: what is shipped is
what was checked. It needs only ``numpy`` and ``lava-nc`` (0.10, Python 3.10)::

    python run_lava.py network.json spikes.npz out.npz [--record-states]

``network.json`` (format in ``docs/lava.md``) holds the integers in Lava's own terms:
neuron groups (one ``LIF`` or ``ATRLIF`` process each, since a process holds one
threshold and one set of decays), and ``Dense`` connections (8-bit even weights in
``sign_mode=MIXED``, one ``weight_exp`` each) from the input or a group to a group.
``spikes.npz`` holds ``spikes``: uint8/bool ``[B, T, C]``. Samples run from rest on
freshly built processes under ``Loihi2SimCfg(select_tag="fixed_pt")``: ``RingBuffer``
source -> ``Dense`` -> neurons, recurrent ``Dense`` between groups, ``RingBuffer`` sinks.
``--chunk N`` samples (default 8) run side by side in one network as independent copies:
every process is N times wider and every ``Dense`` block-diagonal, so no copy sees
another (this saves Lava's per-run compile time; ``--chunk 1`` runs one sample a network).
A ``Dense`` delivers one step later, so a run lasts ``T + input_latency`` steps and output
step ``t`` is the neuron step that integrates input step ``t`` (the first
``input_latency`` steps are dropped).

``out.npz`` gets ``spikes`` bool ``[B, T, H]`` (neurons in the network's order) and,
with ``--record-states``, int64 ``current``, ``voltage``, ``theta``, ``r`` ``[B, T, H]``
read by Lava ``Monitor`` probes (``theta``/``r`` only for ATRLIF groups, else 0).
Progress goes to stderr as ``sample I/B``.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

FORMAT = "rsnn-deploy/lava-bundle"


def _build(net: dict, xs: np.ndarray, record: bool):
    """Processes for samples ``xs`` [b, T, C] side by side: (source, groups, sinks, monitors, n_steps)."""
    from lava.proc.atrlif.process import ATRLIF
    from lava.proc.dense.process import Dense
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.lif.process import LIF
    from lava.proc.monitor.process import Monitor
    from lava.utils.weightutils import SignMode

    lat = int(net["input_latency"])
    b, t_steps, n_in = xs.shape
    n_steps = t_steps + lat
    data = np.zeros((b * n_in, n_steps), dtype=np.int32)
    data[:, :t_steps] = np.concatenate([x.T for x in xs], axis=0)  # copy j holds rows j*C .. (j+1)*C - 1
    src = Source(data=data)
    groups = []
    for g in net["groups"]:
        n = len(g["neurons"])
        common = dict(shape=(b * n,), bias_mant=np.tile(np.array(g["bias_mant"]), b),
                      bias_exp=np.tile(np.array(g["bias_exp"]), b))
        if g["model"] == "LIF":
            p = g["params"]
            groups.append(LIF(du=int(p["du"]), dv=int(p["dv"]), vth=int(p["vth"]), **common))
        else:
            p = g["params"]
            unity = 1 << 12
            # ATRLIF takes its decays as fractions of 4096: d / 4096 (exact in float64)
            groups.append(ATRLIF(delta_i=p["delta_i"] / unity, delta_v=p["delta_v"] / unity,
                                 delta_theta=p["delta_theta"] / unity, delta_r=p["delta_r"] / unity,
                                 theta_0=int(p["theta_0"]), theta_step=int(p["theta_step"]), **common))
    for c in net["dense"]:
        w = np.kron(np.eye(b, dtype=np.int32), np.array(c["weights"], dtype=np.int32))  # block-diagonal
        dense = Dense(weights=w, weight_exp=int(c["weight_exp"]), num_weight_bits=8, sign_mode=SignMode.MIXED)
        post = groups[c["post"]]
        if c["pre"] == "input":
            src.s_out.connect(dense.s_in)
        else:
            groups[c["pre"]].s_out.connect(dense.s_in)
        dense.a_out.connect(post.a_in)
    sinks = []
    for proc in groups:
        sink = Sink(shape=proc.s_out.shape, buffer=n_steps)
        proc.s_out.connect(sink.a_in)
        sinks.append(sink)
    monitors = []
    if record:
        for g, proc in zip(net["groups"], groups, strict=True):
            names = ("u", "v") if g["model"] == "LIF" else ("i", "v", "theta", "r")
            mons = {}
            for name in names:
                mon = Monitor()
                mon.probe(getattr(proc, name), n_steps)
                mons[name] = mon
            monitors.append(mons)
    return src, groups, sinks, monitors, n_steps


def run_chunk(net: dict, xs: np.ndarray, record: bool = False) -> dict[str, np.ndarray]:
    """Samples ``xs`` [b, T, C] in one Lava network: spikes [b, T, H] and, with ``record``, the states."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    lat = int(net["input_latency"])
    b, t_steps = xs.shape[:2]
    h = int(net["n_hidden"])
    src, groups, sinks, monitors, n_steps = _build(net, xs, record)
    out = {"spikes": np.zeros((b, t_steps, h), dtype=bool)}
    if record:
        for key in ("current", "voltage", "theta", "r"):
            out[key] = np.zeros((b, t_steps, h), dtype=np.int64)
    src.run(condition=RunSteps(num_steps=n_steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
    try:
        for gi, (g, sink) in enumerate(zip(net["groups"], sinks, strict=True)):
            idx = np.asarray(g["neurons"], dtype=np.int64)
            s = np.asarray(sink.data.get()).reshape(b, len(idx), n_steps)  # [b * n, n_steps], copy-major
            out["spikes"][:, :, idx] = s[:, :, lat:].transpose(0, 2, 1) != 0
            if record:
                for name, mon in monitors[gi].items():
                    key = {"u": "current", "i": "current", "v": "voltage"}.get(name, name)
                    proc = groups[gi]
                    arr = np.asarray(mon.get_data()[proc.name][name]).reshape(n_steps, b, len(idx))
                    out[key][:, :, idx] = np.rint(arr[lat:]).astype(np.int64).transpose(1, 0, 2)
    finally:
        src.stop()
    return out


def run_batch(net: dict, spikes: np.ndarray, record: bool = False, progress=None,
              chunk: int = 8) -> dict[str, np.ndarray]:
    """Every sample of ``spikes`` [B, T, C] from rest, ``chunk`` samples per Lava network."""
    if net.get("format") != FORMAT:
        raise ValueError(f"network.json: format must be {FORMAT!r} (got {net.get('format')!r})")
    chunk = max(1, int(chunk))
    results = []
    n = spikes.shape[0]
    for start in range(0, n, chunk):
        results.append(run_chunk(net, np.asarray(spikes[start:start + chunk]), record))
        if progress is not None:
            progress(min(n, start + chunk), n)
    return {k: np.concatenate([r[k] for r in results]) for k in results[0]} if results else {}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Run an rsnn-deploy Lava bundle on Lava's fixed-point models.")
    ap.add_argument("network", help="network.json of the bundle")
    ap.add_argument("spikes", help=".npz with 'spikes' [B, T, C] (0/1)")
    ap.add_argument("out", help=".npz to write: 'spikes' [B, T, H] (+ states with --record-states)")
    ap.add_argument("--record-states", action="store_true", help="also write current, voltage, theta, r")
    ap.add_argument("--chunk", type=int, default=8, help="samples side by side in one Lava network (default 8)")
    args = ap.parse_args(argv)
    with open(args.network) as f:
        net = json.load(f)
    with np.load(args.spikes) as z:
        if "spikes" not in z:
            print(f"{args.spikes}: no array named 'spikes'", file=sys.stderr)
            return 2
        spikes = np.asarray(z["spikes"])
    if spikes.ndim != 3 or spikes.shape[2] != int(net["n_inputs"]):
        print(f"{args.spikes}: spikes must be [B, T, {net['n_inputs']}] (got {spikes.shape})", file=sys.stderr)
        return 2

    def progress(i: int, n: int) -> None:
        print(f"sample {i}/{n}", file=sys.stderr, flush=True)

    out = run_batch(net, spikes, args.record_states, progress, args.chunk)
    np.savez(args.out, **out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
