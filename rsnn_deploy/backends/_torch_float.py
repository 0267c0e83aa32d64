"""``torch-float``: the float checkpoint in torch (float32), the accuracy everything is measured against."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from rsnn_deploy.backends import Backend, BackendSource, check_input, register_backend
from rsnn_deploy.trace import Trace

__all__ = ["TorchFloatBackend", "run_torch"]


def _spikes_and_readout(model: Any, x: torch.Tensor) -> Any:
    """Spikes, readout and logits without the states: the fast engine's forward loop, then the
    readout exactly as ``model.trace`` computes it (the spikes are bit-identical to the eager loop,
    so the readout and logits are too). ``model.trace`` keeps every state, step by step in eager
    torch: it made ``verify`` several times slower where no state is asked for."""
    from rsnn_deploy.model import logits_from_readout, readout_sequence

    spikes = model.hidden_spikes(x)  # time-major [T, B, H]
    readout = readout_sequence(spikes, model.w_out, model.b_out, model.readout_decay().to(spikes.device))
    logits = logits_from_readout(readout, model.cfg.readout_mode)
    return SimpleNamespace(spikes=spikes.transpose(0, 1), readout=readout.transpose(0, 1), logits=logits)


def run_torch(model: Any, spikes: np.ndarray, record_states: bool, progress: Any, chunk: int = 256) -> Trace:
    """``model.trace`` (or, without states, the same spikes and readout from the fast engine) in chunks
    of ``chunk`` samples, as a numpy Trace (states in float voltage units)."""
    parts: dict[str, list[np.ndarray]] = {}
    with torch.no_grad():
        for start in range(0, spikes.shape[0], chunk):
            xb = torch.from_numpy(spikes[start:start + chunk]).float()
            tr = model.trace(xb) if record_states else _spikes_and_readout(model, xb)
            parts.setdefault("spikes", []).append(tr.spikes.numpy() > 0)
            parts.setdefault("readout", []).append(tr.readout.numpy().astype(np.float32))
            parts.setdefault("logits", []).append(tr.logits.double().numpy())
            if record_states:
                for key in ("current", "voltage", "adaptation"):
                    parts.setdefault(key, []).append(getattr(tr, key).numpy())
            if progress is not None:
                progress(min(chunk, spikes.shape[0] - start))
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    return Trace(spikes=cat["spikes"], readout=cat["readout"], logits=cat["logits"], current=cat.get("current"),
                 voltage=cat.get("voltage"), adaptation=cat.get("adaptation"))


class TorchFloatBackend:
    """The float model without fake quantization."""

    name = "torch-float"

    def __init__(self, model: Any, record_states: bool = False, progress: Any = None):
        from rsnn_deploy.model import RSNN

        self._model = RSNN(model.cfg)  # a private copy: no fake quantization, eval mode, CPU
        self._model.load_state_dict(model.state_dict())
        self._model.eval()
        self.record_states = record_states
        self.progress = progress

    def run(self, spikes: np.ndarray) -> Trace:
        x = check_input(spikes, self._model.cfg.n_in, self.name)
        return run_torch(self._model, x, self.record_states, self.progress)


def register() -> None:
    @register_backend("torch-float", needs="model", description="float checkpoint in torch (float32)")
    def _make(source: BackendSource) -> Backend:
        return TorchFloatBackend(source.model, source.record_states, source.progress)
