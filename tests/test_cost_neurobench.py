"""Our NeuroBench-named metrics against the ``neurobench`` package (2.3) on the float model.

NeuroBench's ``TorchModel`` hooks ``nn.Linear`` layers (synaptic operations, connection
sparsity) and activation modules whose output is the spike tensor alone (activation
sparsity). The RSNN keeps its weights as bare parameters, so the test wraps the same
weights in three ``nn.Linear`` layers around a neuron module that returns spikes only,
stepping with the project's own :func:`rsnn_deploy.neuron.neuron_step`. ``MembraneUpdates``
is not compared: NeuroBench reads ``.mem`` of snnTorch neurons only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import require_module
from torch import nn

from rsnn_deploy.checkpoint import load_checkpoint
from rsnn_deploy.cost import measure_float_cost
from rsnn_deploy.neuron import initial_state, neuron_step

MODELS = Path(__file__).resolve().parents[1] / "models"


class SpikingStep(nn.Module):
    """One neuron step on the summed input current; returns the spikes only (what NeuroBench needs)."""

    def __init__(self, model):
        super().__init__()
        self.p = model.effective_params()._replace(w_rec=None)  # recurrence comes through fc_rec
        self.spike_fn = model.spike_fn
        self.state = None

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        z, self.state = neuron_step(current, self.state, self.p, self.spike_fn)
        return z


class LinearRSNN(nn.Module):
    """The float RSNN with its weights in ``nn.Linear`` layers; every other tensor kept as a buffer."""

    def __init__(self, model):
        super().__init__()
        p = model.effective_params()
        h, c = p.w_in.shape
        self.fc_in = nn.Linear(c, h, bias=False)
        self.fc_rec = nn.Linear(h, h, bias=False)
        self.fc_out = nn.Linear(h, model.cfg.n_out)
        with torch.no_grad():
            self.fc_in.weight.copy_(p.w_in)
            self.fc_rec.weight.copy_(p.w_rec)
            self.fc_out.weight.copy_(model.w_out)
            self.fc_out.bias.copy_(model.b_out)
        for name, buf in model.named_buffers():  # the time constants: part of NeuroBench's footprint
            self.register_buffer(name, buf.clone())
        self.neurons = SpikingStep(model)
        self.a_out = float(model.readout_decay())
        self.n_hidden = h
        self.recorded: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        self.neurons.state = initial_state(b, self.n_hidden, x.device, x.dtype)
        z = torch.zeros(b, self.n_hidden)
        y = torch.zeros(b, self.fc_out.out_features)
        total = torch.zeros_like(y)
        zs = []
        for t in range(x.shape[1]):
            # the recurrent drive joins the synaptic current like W_rec z[t-1] in neuron_step
            z = self.neurons(self.fc_in(x[:, t]) + self.fc_rec(z))
            zs.append(z)
            y = self.a_out * y + self.fc_out(z)
            total = total + y
        self.recorded.append(torch.stack(zs, dim=1))
        return total / x.shape[1]


def test_metrics_agree_with_neurobench_on_the_float_model():
    require_module("neurobench")
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.static import ConnectionSparsity, Footprint
    from neurobench.metrics.workload import ActivationSparsity, SynapticOperations
    from neurobench.models import TorchModel

    from rsnn_deploy.verify import evaluation_split, task_of

    ckpt = load_checkpoint(MODELS / "mnist1d-rec-syn-loihi1")
    assert ckpt.model.w_rec is not None and ckpt.model.bias is None
    data = evaluation_split(task_of(ckpt), ckpt.meta, "test")
    x = data.spikes(np.arange(64)).astype(np.float32)
    ours = measure_float_cost(ckpt.model, x)

    net = LinearRSNN(ckpt.model)
    wrapped = TorchModel(net)
    wrapped.add_activation_module(SpikingStep)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(data.labels[:64])), batch_size=32
    )
    with torch.no_grad():
        bench = Benchmark(wrapped, loader, [], [],
                          [[Footprint, ConnectionSparsity], [ActivationSparsity, SynapticOperations]])
        theirs = bench.run(quiet=True)
    # the wrapper ran the float model: same spikes as the model's own trace
    with torch.no_grad():
        own = ckpt.model.trace(torch.from_numpy(x)).spikes
    assert torch.equal(torch.cat(net.recorded), own)

    assert ours["ActivationSparsity"] == pytest.approx(theirs["ActivationSparsity"], abs=1e-12)
    sop = theirs["SynapticOperations"]
    assert sop["Effective_MACs"] == ours["SynapticOperations"]["Effective_MACs"] == 0
    assert ours["SynapticOperations"]["Effective_ACs"] == pytest.approx(sop["Effective_ACs"], rel=1e-12)
    assert ours["SynapticOperations"]["Dense"] == pytest.approx(sop["Dense"], rel=1e-12)
    assert ours["ConnectionSparsity"] == pytest.approx(theirs["ConnectionSparsity"], abs=5e-5)  # NB rounds to 4 dp
    assert ours["Footprint"] == theirs["Footprint"]
    assert ours["SynapticOperations"]["Effective_ACs"] > 0
