"""``torch-fakequant``: the float model on the profile's grid (weights, decays), as trained under QAT.

It isolates what rounding of the parameters costs; the rest of the float -> emulator gap
is integer arithmetic (truncating decays, wrap-around).
"""

from __future__ import annotations

from typing import Any

from rsnn_deploy.backends import Backend, BackendSource, register_backend
from rsnn_deploy.backends._torch_float import TorchFloatBackend
from rsnn_deploy.errors import UnsupportedError

__all__ = ["TorchFakeQuantBackend"]


class TorchFakeQuantBackend(TorchFloatBackend):
    """The float backend's private model copy with :func:`rsnn_deploy.quantize.attach_fake_quant` for ``profile``."""

    name = "torch-fakequant"

    def __init__(self, model: Any, profile: Any, record_states: bool = False, progress: Any = None):
        from rsnn_deploy.quantize import attach_fake_quant

        if profile is None:
            raise UnsupportedError("backend torch-fakequant: needs a hardware profile (--target)")
        super().__init__(model, record_states, progress)
        attach_fake_quant(self._model, profile)


def register() -> None:
    @register_backend("torch-fakequant", needs="model", description="float model with fake quantization")
    def _make(source: BackendSource) -> Backend:
        return TorchFakeQuantBackend(source.model, source.profile, source.record_states, source.progress)
