"""Fast BPTT engine (placeholder until implemented): the eager loop in ``model`` is used."""

from __future__ import annotations

from torch import Tensor

from rsnn_deploy.config import ModelConfig
from rsnn_deploy.model import NeuronParams


def supports(cfg: ModelConfig, p: NeuronParams) -> bool:
    return False


def run(xs: Tensor, p: NeuronParams, cfg: ModelConfig) -> Tensor:
    raise NotImplementedError
