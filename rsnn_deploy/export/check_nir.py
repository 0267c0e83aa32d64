"""Cross-check an exported NIR graph in an independent consumer: snnTorch (+ NIRTorch).

Usage::

    python -m rsnn_deploy.export.check_nir CKPT [--limit 1000] [--data-dir DIR] [--json]

Exports the checkpoint to NIR, writes and reads the file back (the consumer sees what
is on disk), builds it with snnTorch's neuron converter and NIRTorch's graph
interpreter, runs the task's test samples step by step, and compares hidden spikes,
readout and accuracy with our torch model.

What the consumer needs, and why (each is a documented gap of snnTorch 1.0, not of the file):

- **dt**: snnTorch's importer hard-codes ``dt = 1e-4`` s (``alpha = 1 - 1e-4/tau_syn``);
  our graph is written for ``metadata["dt_s"]``. We hand it the graph with every
  time constant multiplied by ``1e-4 / dt_s``, which makes its Euler step ours
  (``r`` and ``w_in`` are dimensionless and unchanged).
- **recurrence**: ``snntorch.import_from_nir`` wraps the ``lif <-> w_rec`` cycle into a
  subgraph whose input edge enters ``w_rec`` instead of the neuron
  (``_create_rnn_subgraph``: ``(input, w_rec)``), so input spikes are multiplied by the
  recurrent matrix. We call ``nirtorch.nir_to_torch`` with snnTorch's own node
  converter (``_nir_to_snntorch_module``) instead, which runs the cycle as the graph
  says (``lif`` gets ``w_in x[t] + w_rec z[t-1]``).
- **readout**: the importer has no ``nir.LI``; it becomes ``snn.Leaky`` without reset
  (``beta = 1 - dt/tau``, input scaled by ``r dt/tau``), whose membrane is the readout.
- **bias**: the importer asserts ``v_leak == 0``: ``rec-syn`` models with a hidden bias are
  refused (a plain LIF's bias is in its input ``Affine``, which snnTorch reads).
- **LIF gain**: the file's LIF has ``r = 1`` (gain folded into the weights, as Norse and
  SpikingJelly read it); snnTorch's importer wants ``r = tau/dt``, so the gain is moved back.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rsnn_deploy.errors import RsnnError, UnsupportedError

__all__ = ["SNNTORCH_DT_S", "check_nir", "compare_traces", "run_consumer", "snntorch_consumer"]

SNNTORCH_DT_S = 1e-4  # hard-coded in snntorch/import_nir.py (1.0.0)


def _require_snntorch() -> tuple[Any, Any, Any]:
    try:
        import nirtorch
        import snntorch
        from snntorch.import_nir import _nir_to_snntorch_module
    except ImportError as err:
        raise UnsupportedError(
            f"check_nir: needs snntorch and nirtorch ({err.name} is missing); "
            "pip install snntorch nirtorch (they use the installed CPU torch)"
        ) from None
    return snntorch, nirtorch, _nir_to_snntorch_module


class _LeakyReadout(torch.nn.Module):
    """``nir.LI`` as snnTorch's ``Leaky`` without reset: returns the membrane (the readout)."""

    def __init__(self, snn: Any, beta: np.ndarray, gain: np.ndarray) -> None:
        super().__init__()
        beta_t = torch.as_tensor(np.asarray(beta, np.float64), dtype=torch.float32)
        self.register_buffer("gain", torch.as_tensor(np.asarray(gain, np.float64), dtype=torch.float32))
        beta_arg = float(beta_t[0]) if bool((beta_t == beta_t[0]).all()) else beta_t
        self.leaky = snn.Leaky(beta=beta_arg, reset_mechanism="none", init_hidden=True, output=True,
                               threshold=float("inf"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, mem = self.leaky(x * self.gain)
        return mem


def snntorch_consumer(graph: Any) -> torch.nn.Module:
    """Build ``graph`` (our NIR export) as a stateful snnTorch/NIRTorch module; see the module docstring."""
    import nir

    snn, nirtorch, convert = _require_snntorch()
    g = copy.deepcopy(graph)
    dt_s = float(g.metadata.get("dt_s", 1e-3))
    scale = SNNTORCH_DT_S / dt_s
    lif = g.nodes["lif"]
    if np.any(np.asarray(lif.v_leak) != 0):
        raise UnsupportedError(
            "check_nir: the model has a hidden bias (v_leak != 0), which snnTorch's NIR import asserts away; "
            "cross-check a model trained without bias"
        )
    if isinstance(lif, nir.CubaLIF):
        lif.tau_syn = lif.tau_syn * scale
        lif.tau_mem = lif.tau_mem * scale
    else:
        lif.tau = lif.tau * scale
        # the file's LIF has r = 1 (gain in the weights); snnTorch's needs r = tau/dt: move the gain back
        r_snn = np.asarray(lif.tau, np.float64) / SNNTORCH_DT_S
        factor = np.asarray(lif.r, np.float64) / r_snn
        for name in ("w_in", "w_rec"):
            if name in g.nodes:
                g.nodes[name].weight = np.asarray(g.nodes[name].weight, np.float64) * factor[:, None]
                if getattr(g.nodes[name], "bias", None) is not None:
                    g.nodes[name].bias = np.asarray(g.nodes[name].bias, np.float64) * factor
        lif.r = r_snn
    li = g.nodes["readout"]
    li_beta = 1.0 - dt_s / np.asarray(li.tau, np.float64)
    li_gain = np.asarray(li.r, np.float64) * dt_s / np.asarray(li.tau, np.float64)

    def node(n: Any) -> torch.nn.Module:
        return convert(n, init_hidden=True)

    node_map = {nir.Affine: node, nir.Linear: node, nir.CubaLIF: node, nir.LIF: node,
                nir.LI: lambda n: _LeakyReadout(snn, li_beta, li_gain)}
    return nirtorch.nir_to_torch(g, node_map)


def _reset_snntorch(module: torch.nn.Module) -> None:
    import snntorch as snn

    for m in module.modules():
        if isinstance(m, snn.SpikingNeuron):
            m.reset_mem()


@torch.no_grad()
def run_consumer(module: torch.nn.Module, x: np.ndarray, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Run the consumer over ``x [B, T, C]``; returns hidden spikes ``[B, T, H]`` and readout ``[B, T, K]``."""
    lif = module.get_submodule("lif")
    captured: list[torch.Tensor] = []
    handle = lif.register_forward_hook(lambda _m, _i, out: captured.append(out[0] if isinstance(out, tuple) else out))
    spikes, readouts = [], []
    try:
        for start in range(0, x.shape[0], batch):
            xb = torch.as_tensor(x[start : start + batch], dtype=torch.float32)
            _reset_snntorch(module)
            state = None
            ys = []
            captured.clear()
            for t in range(xb.shape[1]):
                y, state = module(xb[:, t], state)
                ys.append(y)
            spikes.append(torch.stack(captured, 1).numpy())
            readouts.append(torch.stack(ys, 1).numpy())
    finally:
        handle.remove()
    return np.concatenate(spikes) > 0, np.concatenate(readouts)


def compare_traces(
    ref_spikes: np.ndarray, ref_readout: np.ndarray, ref_logits: np.ndarray,
    spikes: np.ndarray, readout: np.ndarray, readout_mode: str, labels: np.ndarray,
) -> dict[str, Any]:
    """Agreement numbers between our run and the consumer's."""
    logits = readout.mean(1) if readout_mode == "mean" else readout[:, -1]
    same = ref_spikes.astype(bool) == spikes.astype(bool)
    first = np.argmax(~same.all(axis=2), axis=1)
    diverged = ~same.all(axis=(1, 2))
    return {
        "samples": int(labels.shape[0]),
        "spike_agreement": float(same.mean()),
        "identical_samples": float((~diverged).mean()),
        "first_divergence_step_median": float(np.median(first[diverged])) if diverged.any() else None,
        "readout_max_abs_diff": float(np.abs(ref_readout - readout).max()),
        "prediction_agreement": float((ref_logits.argmax(1) == logits.argmax(1)).mean()),
        "accuracy_ours": float((ref_logits.argmax(1) == labels).mean()),
        "accuracy_consumer": float((logits.argmax(1) == labels).mean()),
        "rate_ours": float(ref_spikes.mean()),
        "rate_consumer": float(spikes.mean()),
    }


def _through_file(graph: Any) -> Any:
    """Write and read back ``graph``: the consumer sees what is on disk."""
    from rsnn_deploy.export._nir import read_nir, write_nir

    with tempfile.TemporaryDirectory() as tmp:
        return read_nir(write_nir(graph, Path(tmp) / "model.nir"))


def check_nir(checkpoint: str | Path, limit: int | None = 1000, data_dir: str | None = None,
              profile: str | None = None) -> dict[str, Any]:
    """Export ``checkpoint`` to NIR, run it in snnTorch and compare with our model on the test split.

    With ``profile``, also quantize the model (calibrated on 256 training samples), export
    the quantized network's NIR graph and compare snnTorch's run of it with the integer
    emulator (the NIR graph has no truncation or wrap-around, so this measures how far
    the NIR description of the chip is from the chip).
    """
    from rsnn_deploy.checkpoint import load_checkpoint
    from rsnn_deploy.export._nir import nir_from_model, nir_from_qnet
    from rsnn_deploy.tasks import task_for_checkpoint

    ckpt = load_checkpoint(checkpoint)
    task = task_for_checkpoint(ckpt.meta, data_dir=data_dir)
    n = len(task.test) if limit is None else min(limit, len(task.test))
    idx = np.arange(n)
    x = task.test.spikes(idx)
    labels = task.test.labels[idx]
    module = snntorch_consumer(_through_file(nir_from_model(ckpt.model, source=str(ckpt.path))))
    spikes, readout = run_consumer(module, x)
    tr = ckpt.model.trace(torch.as_tensor(x, dtype=torch.float32))
    result = compare_traces(tr.spikes.numpy(), tr.readout.numpy(), tr.logits.numpy(), spikes, readout,
                            ckpt.model.cfg.readout_mode, labels)
    import snntorch

    out = {"checkpoint": str(ckpt.path), "task": task.name, "consumer": f"snntorch {snntorch.__version__}", **result}
    if profile is not None:
        from rsnn_deploy import emulator
        from rsnn_deploy.quantize import quantize_model

        calib = task.train.spikes(np.arange(min(256, len(task.train))))
        qnet, _ = quantize_model(ckpt.model, profile, torch.as_tensor(calib, dtype=torch.float32))
        q_spikes, q_readout = run_consumer(snntorch_consumer(_through_file(nir_from_qnet(qnet))), x)
        ref = emulator.run(qnet, x)
        out["qnet"] = {"profile": profile, **compare_traces(ref.spikes, ref.readout, ref.logits, q_spikes, q_readout,
                                                           qnet.readout_mode, labels)}
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the comparison as text (or JSON); one-line errors, exit 2."""
    ap = argparse.ArgumentParser(prog="python -m rsnn_deploy.export.check_nir", description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--limit", type=int, default=1000, help="test samples to compare (default 1000)")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--profile", default=None, help="also compare the quantized network's NIR graph with the emulator")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    try:
        res = check_nir(args.checkpoint, args.limit, args.data_dir, args.profile)
    except RsnnError as err:
        print(f"check_nir: error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(res, indent=1))
    else:
        print(f"{res['checkpoint']} on {res['task']} ({res['samples']} test samples), consumer {res['consumer']}")
        print(f"  spike agreement     {100 * res['spike_agreement']:.4f} % of neuron-steps, "
              f"{100 * res['identical_samples']:.2f} % of samples identical")
        print(f"  predictions agree   {100 * res['prediction_agreement']:.2f} %")
        print(f"  accuracy            ours {100 * res['accuracy_ours']:.2f} %, "
              f"consumer {100 * res['accuracy_consumer']:.2f} %")
        print(f"  readout max |diff|  {res['readout_max_abs_diff']:.3g}")
        if "qnet" in res:
            q = res["qnet"]
            print(f"  {q['profile']} QNET as NIR in snntorch vs our integer emulator: spike agreement "
                  f"{100 * q['spike_agreement']:.4f} %, predictions agree {100 * q['prediction_agreement']:.2f} %, "
                  f"accuracy emulator {100 * q['accuracy_ours']:.2f} %, consumer {100 * q['accuracy_consumer']:.2f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
