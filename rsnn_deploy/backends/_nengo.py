"""``nengo`` / ``nengo-float``: nengo core with our custom neuron types (:mod:`rsnn_deploy.backends.nengo`).

``nengo`` runs the QuantizedNetwork through :class:`~rsnn_deploy.backends.nengo.QuantizedNeurons`
(the profile's integer step; the only way threshold adaptation runs in Nengo);
``nengo-float`` runs the float model through
:class:`~rsnn_deploy.backends.nengo.FloatRSNNNeurons`. Both simulate ``chunk`` samples as
independent copies in one ``nengo.Simulator``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rsnn_deploy.backends import Backend, BackendSource, check_input, register_backend
from rsnn_deploy.trace import Trace

__all__ = ["NengoBackend", "NengoFloatBackend"]


class NengoBackend:
    """QuantizedNetwork in nengo core (integer custom neuron type)."""

    name = "nengo"

    def __init__(self, qnet: Any, record_states: bool = False, progress: Any = None, chunk: int = 50):
        self.qnet = qnet
        self.record_states = record_states
        self.progress = progress
        self.chunk = chunk

    def run(self, spikes: np.ndarray) -> Trace:
        from rsnn_deploy.backends.nengo import run_nengo_core

        x = check_input(spikes, self.qnet.n_inputs, self.name)
        return run_nengo_core(self.qnet, x, record_states=self.record_states, chunk=self.chunk,
                              on_chunk=self.progress)


class NengoFloatBackend:
    """The float model in nengo core (float64, the float model's step order)."""

    name = "nengo-float"

    def __init__(self, model: Any, record_states: bool = False, progress: Any = None, chunk: int = 50):
        self.model = model
        self.record_states = record_states
        self.progress = progress
        self.chunk = chunk

    def run(self, spikes: np.ndarray) -> Trace:
        from rsnn_deploy.backends.nengo import run_nengo_float

        x = check_input(spikes, self.model.cfg.n_in, self.name)
        return run_nengo_float(self.model, x, record_states=self.record_states, chunk=self.chunk,
                               on_chunk=self.progress)


def register() -> None:
    @register_backend("nengo", needs="qnet", slow=True, description="nengo core, integer custom neuron type",
                      integer=True, compare=("agreement", "gap"), record_in_verify=True)
    def _make(source: BackendSource) -> Backend:
        return NengoBackend(source.qnet, source.record_states, source.progress)

    @register_backend("nengo-float", needs="model", slow=True, description="nengo core, float custom neuron type")
    def _make_float(source: BackendSource) -> Backend:
        return NengoFloatBackend(source.model, source.record_states, source.progress)
