"""``torch-fakequant``: the float model on the profile's grid (weights, decays), as trained under QAT.

It isolates what rounding of the parameters costs; the rest of the float -> emulator gap
is integer arithmetic (truncating decays, wrap-around).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rsnn_deploy.backends import Backend, BackendSource, check_input, register_backend
from rsnn_deploy.backends._torch_float import run_torch
from rsnn_deploy.errors import UnsupportedError
from rsnn_deploy.trace import Trace

__all__ = ["TorchFakeQuantBackend"]


class TorchFakeQuantBackend:
    """A private copy of the model with :func:`rsnn_deploy.quantize.attach_fake_quant` for ``profile``."""

    name = "torch-fakequant"

    def __init__(self, model: Any, profile: Any, record_states: bool = False, progress: Any = None):
        from rsnn_deploy.model import RSNN
        from rsnn_deploy.quantize import attach_fake_quant

        if profile is None:
            raise UnsupportedError("backend torch-fakequant: needs a hardware profile (--target)")
        self._model = RSNN(model.cfg)
        self._model.load_state_dict(model.state_dict())
        self._model.eval()
        attach_fake_quant(self._model, profile)
        self.record_states = record_states
        self.progress = progress

    def run(self, spikes: np.ndarray) -> Trace:
        x = check_input(spikes, self._model.cfg.n_in, self.name)
        return run_torch(self._model, x, self.record_states, self.progress)


def register() -> None:
    @register_backend("torch-fakequant", needs="model", description="float model with fake quantization")
    def _make(source: BackendSource) -> Backend:
        return TorchFakeQuantBackend(source.model, source.profile, source.record_states, source.progress)
