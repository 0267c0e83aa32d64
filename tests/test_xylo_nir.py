"""Xylo as NIR for Rockpool: the file nir 1.0.4 (Rockpool 3.1's pin) reads, Rockpool's ``from_nir`` runs it,
and its spikes follow our integer emulator closely (float decays and no saturation: not bit for bit)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from conftest import require, require_module

from rsnn_deploy.cli import main
from rsnn_deploy.errors import UnsupportedError
from rsnn_deploy.semantics.xylo_profile import load_xylo_profile
from rsnn_deploy.xylo import emulator
from rsnn_deploy.xylo.model import XyloModelConfig, XyloRSNN
from rsnn_deploy.xylo.nir import read_xylo_nir, tau_of_dash, write_xylo_nir, xylo_nir_graph
from rsnn_deploy.xylo.quantize import quantize_model


def _net_and_input(n_syn: int = 1):
    """A quantized one-synapse (xylo-imu) network of an untrained model that saturates little, and its input."""
    torch.manual_seed(0)
    m = XyloRSNN(XyloModelConfig(n_in=16, n_hidden=32, n_out=4, n_syn=n_syn, tau_syn_ms=(4.0, 16.0)[:n_syn]), seed=2)
    with torch.no_grad():
        m.w_in.mul_(0.7)
        m.w_rec.mul_(0.5)
    rng = np.random.default_rng(1)
    x = (rng.random((8, 60, 16)) < 0.1).astype(np.uint8) * rng.integers(1, 4, (8, 60, 16)).astype(np.uint8)
    prof = load_xylo_profile("xylo-imu" if n_syn == 1 else "xylo-audio2")
    net, _ = quantize_model(m, prof, x)
    return net, x


def test_rockpool_from_nir_runs_our_graph_close_to_the_emulator(tmp_path):
    rockpool_nir = require_module("rockpool")
    import nir

    net, x = _net_and_input()
    path = write_xylo_nir(net, tmp_path / "x.nir")
    ours = emulator.run(net, x)
    assert ours.spikes.mean() > 0.1 and ours.saturated["synapse"] == 0  # spiking, little saturation
    mod = rockpool_nir.from_nir(nir.read(str(path)))
    kinds = [type(mod.get_submodule(n)).__name__ for n in ("w_in", "rnn", "w_out", "readout")]
    assert kinds == ["LinearTorch", "LIFTorch", "LinearTorch", "LIFTorch"]
    assert mod.get_submodule("rnn").w_rec.shape == (net.n_hidden, net.n_hidden)  # the recurrent form was read
    with torch.no_grad():
        xt = torch.as_tensor(x.astype(np.float32))
        spikes = mod.rnn(mod.w_in(xt))
        _, _, rec = mod.readout.evolve(mod.w_out(spikes), record=True)
    theirs = spikes.numpy()
    v_out = rec["vmem"].numpy()
    agree = float(np.mean(theirs == ours.spikes))
    assert agree > 0.97, agree  # float decays vs v - (v >> dash): close, not bit for bit
    assert np.corrcoef(v_out.ravel(), ours.v_mem_out.ravel())[0, 1] > 0.98
    # Rockpool recovers dt = tau_mem / (1 + r) exactly and the decays are the grid's 1 - 2^-dash
    lif = mod.get_submodule("rnn")
    np.testing.assert_allclose(float(lif.dt), 1e-3, rtol=1e-6)
    np.testing.assert_allclose(np.exp(-1e-3 / lif.tau_mem.detach().numpy()), 1 - 2.0**-net.dash_mem, rtol=1e-6)


def test_nir_104_reads_the_file(tmp_path):
    """Rockpool 3.1 pins nir <= 1.0.4, whose CubaLIF has no v_reset: the file loads there, nested graph and all."""
    from conftest import nir_104_wheel

    require("nir-1.0.4")
    site = tmp_path / "nir104"
    with zipfile.ZipFile(nir_104_wheel()) as z:
        z.extractall(site)
    net, _ = _net_and_input()
    path = write_xylo_nir(net, tmp_path / "x.nir")
    code = (
        "import json, sys, nir; g = nir.read(sys.argv[1]); r = g.nodes['rnn']\n"
        "print(json.dumps({'version': nir.__version__, 'top': sorted(g.nodes), 'rnn': sorted(r.nodes),\n"
        "                  'w_rec': r.nodes['w_rec'].weight.tolist(), 'thr': r.nodes['lif'].v_threshold.tolist()}))"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        check=True,
        cwd=tmp_path,
    )
    doc = json.loads(res.stdout.strip().splitlines()[-1])
    assert doc["version"] == "1.0.4"
    assert doc["top"] == ["input", "output", "readout", "rnn", "w_in", "w_out"]
    assert doc["rnn"] == ["input", "lif", "output", "w_rec"]
    np.testing.assert_array_equal(np.asarray(doc["w_rec"]), (net.w_rec[:, :, 0] << net.shift_rec).T)
    np.testing.assert_array_equal(doc["thr"], net.threshold)
    assert read_xylo_nir(path).metadata["profile"] == "xylo-imu"


def test_what_nir_cannot_carry_is_refused_in_one_line(tmp_path, capsys):
    net, _ = _net_and_input(n_syn=2)
    with pytest.raises(UnsupportedError, match="2 synaptic currents per hidden neuron; NIR's CubaLIF"):
        xylo_nir_graph(net)
    assert tau_of_dash(np.array([0, 4]), 1e-3)[1] == pytest.approx(15.495e-3, rel=1e-4)
    # the shipped model has two synaptic currents: the CLI says so in one line and writes nothing
    out = tmp_path / "m.nir"
    assert main(["xylo", "export", "--format", "nir", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "synaptic currents per hidden neuron" in err and len(err.splitlines()) == 1 and not out.exists()
