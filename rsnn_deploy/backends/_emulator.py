"""``emulator``: our batched, bit-exact integer emulator (:func:`rsnn_deploy.emulator.run`)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from rsnn_deploy.backends import Backend, BackendSource, check_input, register_backend
from rsnn_deploy.trace import Trace

__all__ = ["EmulatorBackend"]


class EmulatorBackend:
    """Runs a QuantizedNetwork with the profile's integer step; wraps are counted in ``Trace.overflow``."""

    name = "emulator"

    def __init__(self, qnet: Any, profile: Any = None, record_states: bool = False, progress: Any = None,
                 chunk: int = 512):
        self.qnet = qnet
        self.profile = profile if profile is not None and getattr(profile, "name", None) == qnet.profile else None
        self.record_states = record_states
        self.progress = progress
        self.chunk = chunk

    def run(self, spikes: np.ndarray) -> Trace:
        from rsnn_deploy.emulator import run

        x = check_input(spikes, self.qnet.n_inputs, self.name)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="emulator: states wrapped")  # reported via Trace.overflow
            tr = run(self.qnet, x, self.profile, record_states=self.record_states, batch_chunk=self.chunk)
        if self.progress is not None:
            self.progress(x.shape[0])
        return tr


def register() -> None:
    @register_backend("emulator", needs="qnet", description="bit-exact integer emulator (ours)", integer=True)
    def _make(source: BackendSource) -> Backend:
        return EmulatorBackend(source.qnet, source.profile, source.record_states, source.progress)
