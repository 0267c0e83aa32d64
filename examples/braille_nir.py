"""The NIR paper's Braille network (``braille.nir``), imported and deployed on loihi1 and loihi2.

The NIR paper ran one recurrent CubaLIF network (12 inputs -> 38 recurrent CubaLIF -> 7
CubaLIF outputs, trained in snnTorch at dt = 1e-4 s) in several frameworks and lost 40-46
points on the chip simulators (snnTorch 95.0 %, Norse 94.3 %, Nengo 55.7 %, lava-dl 48.6 %).
This script follows that network through this toolkit::

    rsnn-deploy import braille.nir -o DIR --dt 1e-4 --convention snntorch \\
        --approximate synaptic-bias --approximate readout --data spikes.npz
    rsnn-deploy verify DIR/model.json --target loihi1   (float -> fake-quant -> emulator -> nengo-loihi)

The Braille recordings are not available here, so the input is a deterministic generated
spike set with Braille's dimensions (12 channels; Bernoulli spikes, seed 0). The labels are
**snnTorch's own prediction** for each sample (its RSynaptic + Synaptic network built from the
file, output-spike count argmax, ties to the lower class): every "accuracy" below is agreement
with the source framework's output, not Braille accuracy. Reported per stage: hidden-spike
agreement and prediction agreement with the stage before it.

Two imports: ``--convention snntorch`` (snnTorch's reset_mechanism="zero" = a one-step
refractory period; loihi1 has a refractory delay, loihi2's fixed-point LIF has none, so the
quantizer refuses it) and ``--convention nir`` (Norse / SpikingJelly semantics, on both chips).

Run::

    python examples/braille_nir.py                 # 200 samples x 256 steps -> results/braille_nir/
    python examples/braille_nir.py --quick         # CI: 40 samples x 100 steps, to a temporary folder

Last line: ``RESULT ok ...`` when the emulator and nengo-loihi agree spike for spike.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

CHANNELS, CLASSES, DT = 12, 7, 1e-4
CHAIN = ("torch-float", "torch-fakequant", "emulator", "nengo-loihi")


def braille_path() -> Path:
    import norse

    p = Path(norse.__file__).parent / "torch" / "utils" / "test" / "braille.nir"
    if not p.is_file():
        raise SystemExit(f"RESULT fail braille.nir not found in the norse package ({p})")
    return p


def snntorch_reference(graph: Any, x_btc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """snnTorch's simulation of the whole file: hidden spikes [T, B, H] and output-spike counts [B, K]."""
    import snntorch as snn
    import torch

    from rsnn_deploy.export._nir_parity import reader_hidden_spikes

    hidden = reader_hidden_spikes("snntorch", graph, DT, x_btc.transpose(1, 0, 2))
    fc2, out = graph.nodes["fc2"], graph.nodes["lif2"]
    lin = torch.nn.Linear(fc2.weight.shape[1], fc2.weight.shape[0])
    lin.weight.data = torch.as_tensor(np.asarray(fc2.weight), dtype=torch.float32)
    lin.bias.data = torch.as_tensor(np.asarray(fc2.bias), dtype=torch.float32)
    neuron = snn.Synaptic(alpha=torch.as_tensor(1 - DT / np.asarray(out.tau_syn), dtype=torch.float32),
                          beta=torch.as_tensor(1 - DT / np.asarray(out.tau_mem), dtype=torch.float32),
                          threshold=float(np.asarray(out.v_threshold).reshape(-1)[0]), reset_mechanism="zero",
                          init_hidden=True)
    counts = np.zeros((x_btc.shape[0], CLASSES))
    with torch.no_grad():
        for z_t in torch.from_numpy(hidden):
            counts += neuron(lin(z_t)).numpy()
    return hidden, counts


def _agreement(traces: dict[str, Any], a: str, b: str) -> dict[str, Any]:
    m = min(traces[a].spikes.shape[0], traces[b].spikes.shape[0])
    sa, sb = np.asarray(traces[a].spikes[:m]) > 0, np.asarray(traces[b].spikes[:m]) > 0
    return {"from": a, "to": b, "samples": m, "spike_agreement": float((sa == sb).mean()),
            "identical_samples": float((sa == sb).all(axis=(1, 2)).mean()),
            "prediction_agreement": float((traces[a].predictions[:m] == traces[b].predictions[:m]).mean())}


def run(out: Path, n: int, steps: int, slow: int, rate: float) -> dict[str, Any]:
    import nir
    import torch

    from rsnn_deploy.checkpoint import load_checkpoint
    from rsnn_deploy.cli import main as cli
    from rsnn_deploy.errors import RsnnError
    from rsnn_deploy.export._nir_parity import compare_spikes, generated_spikes, reader_hidden_spikes
    from rsnn_deploy.lava_env import lava_python
    from rsnn_deploy.model import logits_from_spikes
    from rsnn_deploy.verify import verify

    src = braille_path()
    graph = nir.read(str(src))
    x = generated_spikes(n, steps, CHANNELS, rate=rate, seed=0)
    ref_hidden, counts = snntorch_reference(graph, x)
    y = counts.argmax(1)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "spikes.npz", x=x, y=y, x_test=x, y_test=y)
    summary: dict[str, Any] = {
        "source": str(src), "input": f"generated Bernoulli({rate}) spikes, seed 0, {n} x {steps} steps x "
                                     f"{CHANNELS} channels; labels = snnTorch's prediction",
        "snntorch_reference": {"hidden_rate": float(ref_hidden.mean()), "output_spikes_per_sample":
                               float(counts.sum(1).mean()),
                               "tied_predictions": float(((counts == counts.max(1, keepdims=True)).sum(1) > 1).mean())},
        "runs": {},
    }
    plans = [("snntorch", ["loihi1", "loihi2"]), ("nir", ["loihi1", "loihi2"])]
    for convention, targets in plans:
        ck = out / f"import-{convention}"
        args = ["import", str(src), "-o", str(ck), "--dt", str(DT), "--convention", convention,
                "--approximate", "synaptic-bias", "--approximate", "readout", "--data", str(out / "spikes.npz"),
                "--overwrite"]
        print("rsnn-deploy " + " ".join(args), flush=True)
        if cli(args) != 0:
            raise SystemExit(f"RESULT fail import --convention {convention}")
        model = load_checkpoint(ck / "model.json").model
        with torch.no_grad():
            ours = model.hidden_spikes(torch.from_numpy(x)).numpy()
        readers = {"snntorch": compare_spikes(ours, ref_hidden)}
        # the readout approximation alone: our leaky readout fed snnTorch's own hidden spikes
        with torch.no_grad():
            logits = logits_from_spikes(torch.from_numpy(ref_hidden), model.w_out, model.b_out, model.readout_decay(),
                                        model.cfg.readout_mode).numpy()
        readout_only = float((logits.argmax(1) == y).mean())
        if convention == "nir":
            for reader in ("norse", "spikingjelly"):
                readers[reader] = compare_spikes(ours, reader_hidden_spikes(reader, graph, DT, x.transpose(1, 0, 2)))
        for r in readers.values():
            r.pop("shape_tbh", None)
        entry: dict[str, Any] = {"float_vs_frameworks_hidden_spikes": readers,
                                 "readout_on_snntorch_hidden_spikes_agrees": readout_only, "targets": {}}
        print(f"  {convention}: our readout on snnTorch's hidden spikes agrees with its prediction on "
              f"{100 * readout_only:.1f} %", flush=True)
        for target in targets:
            # loihi1's chip simulator is nengo-loihi; loihi2's is Lava itself (where its side environment exists)
            backends = list(CHAIN) if target == "loihi1" else [*CHAIN[:3], *(["lava"] if lava_python() else [])]
            try:
                res = verify(ck / "model.json", target, backends=backends, split="test", slow_limit=slow,
                             calib=min(n, 200), progress=False)
            except RsnnError as err:  # a refusal is a result here (loihi2 has no refractory period)
                entry["targets"][target] = {"refused": str(err)}
                print(f"  {convention} on {target}: refused: {err}", flush=True)
                continue
            rep, traces = res.report, res.figure_data["traces"]
            names = [b for b in (*CHAIN, "lava") if b in traces]
            stages = [_agreement(traces, a, b) for a, b in itertools.pairwise(names)]
            if "emulator" in traces and "torch-float" in traces:
                stages.append(_agreement(traces, "torch-float", "emulator"))
            entry["targets"][target] = {
                "agreement_with_snntorch_prediction": {b: rep["backends"][b]["accuracy"] for b in names},
                "stages": stages,
                "samples": rep["samples"],
                "effective_time_constants": rep["quantization"].get("time_constants"),
            }
            for s in stages:
                print(f"  {convention} on {target}: {s['from']} -> {s['to']}: spikes {100 * s['spike_agreement']:.2f} %"
                      f", predictions {100 * s['prediction_agreement']:.1f} % ({s['samples']} samples)", flush=True)
        summary["runs"][convention] = entry
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=float))
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="40 samples x 100 steps (CI)")
    ap.add_argument("--out", type=Path, default=None, help="default results/braille_nir (a temp folder with --quick)")
    ap.add_argument("--rate", type=float, default=0.1, help="input spike probability per channel and step")
    args = ap.parse_args(argv)
    n, steps, slow = (40, 100, 20) if args.quick else (200, 256, 100)
    out = args.out or (Path(tempfile.mkdtemp(prefix="braille-nir-")) if args.quick
                       else Path(__file__).resolve().parents[1] / "results" / "braille_nir")
    s = run(out, n, steps, slow, args.rate)
    l1 = s["runs"]["snntorch"]["targets"]["loihi1"]
    emu_nl = next((g for g in l1.get("stages", []) if g["from"] == "emulator" and g["to"] == "nengo-loihi"), None)
    if emu_nl is None or emu_nl["spike_agreement"] != 1.0:
        print(f"RESULT fail emulator vs nengo-loihi: {emu_nl}")
        return 1
    acc = l1["agreement_with_snntorch_prediction"]
    print(f"RESULT ok float={acc['torch-float']:.4f} emulator={acc['emulator']:.4f} "
          f"nengo_loihi={acc['nengo-loihi']:.4f} emulator_vs_nengo_loihi_spikes=1.0 out={out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
