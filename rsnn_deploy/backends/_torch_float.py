"""``torch-float``: the float checkpoint in torch (float32), the accuracy everything is measured against."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rsnn_deploy.backends import Backend, BackendSource, check_input, register_backend
from rsnn_deploy.trace import Trace

__all__ = ["TorchFloatBackend", "run_torch"]


def run_torch(model: Any, spikes: np.ndarray, record_states: bool, progress: Any, chunk: int = 256) -> Trace:
    """``model.trace`` in chunks of ``chunk`` samples, as a numpy Trace (states in float voltage units)."""
    parts: dict[str, list[np.ndarray]] = {}
    with torch.no_grad():
        for start in range(0, spikes.shape[0], chunk):
            tr = model.trace(torch.from_numpy(spikes[start:start + chunk]).float())
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
