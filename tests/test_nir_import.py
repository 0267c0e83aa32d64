"""``rsnn-deploy import``: graphs written by snnTorch, Norse and SpikingJelly, and ``braille.nir``.

Parity is measured against the writer's own simulation (the module that wrote the file,
or the framework's reader of the same file) on the same generated spikes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import require_module

from rsnn_deploy.cli import main
from rsnn_deploy.errors import UnsupportedError, ValidationError
from rsnn_deploy.export._nir_import import flatten_graph, import_nir_file, import_nir_graph
from rsnn_deploy.export._nir_parity import compare_spikes, generated_spikes, reader_hidden_spikes

nir = pytest.importorskip("nir", reason="nir is not installed")

H, C, K = 16, 5, 3


def _braille() -> Path:
    norse = __import__("norse") if require_module("norse") else None
    path = Path(norse.__file__).parent / "torch" / "utils" / "test" / "braille.nir"
    if not path.is_file():
        pytest.skip("norse wheel without torch/utils/test/braille.nir")
    return path


def _model(imp):
    from rsnn_deploy.config import ModelConfig
    from rsnn_deploy.model import RSNN

    m = RSNN(ModelConfig(**imp.config))
    m.load_state_dict(imp.tensors)
    return m.eval()


def _ours(imp, x_btc: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return _model(imp).hidden_spikes(torch.from_numpy(x_btc)).numpy()


def _input(n: int = 6, steps: int = 150, rate: float = 0.2) -> np.ndarray:
    return generated_spikes(n, steps, C, rate=rate, seed=1)


# ----------------------------------------------------------------------------- snnTorch


def _snntorch_net(synaptic: bool, bias: bool):
    snn = pytest.importorskip("snntorch", reason="snntorch is not installed")
    torch.manual_seed(3)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = torch.nn.Linear(C, H, bias=bias)
            self.fc1.weight.data *= 4.0
            kw = {"linear_features": H, "threshold": torch.ones(H), "reset_mechanism": "zero", "init_hidden": True}
            self.lif = (snn.RSynaptic(alpha=torch.full((H,), 0.6), beta=torch.full((H,), 0.85), **kw) if synaptic
                        else snn.RLeaky(beta=torch.full((H,), 0.85), **kw))
            if not bias:
                self.lif.recurrent.bias.data.zero_()
            self.fc2 = torch.nn.Linear(H, K, bias=bias)
            self.out = snn.Leaky(beta=torch.full((K,), 0.9), threshold=torch.ones(K), init_hidden=True, output=True)

        def forward(self, x):
            spk = self.lif(self.fc1(x))
            return self.out(self.fc2(spk))

    return Net()


def _snntorch_own_spikes(net, x_btc: np.ndarray) -> np.ndarray:
    """The writer module's own hidden spikes, stepped as snnTorch steps it."""
    from snntorch import utils

    utils.reset(net)
    out = []
    with torch.no_grad():
        for x_t in torch.from_numpy(x_btc).transpose(0, 1):
            out.append(net.lif(net.fc1(x_t)).numpy())
    return np.stack(out)


@pytest.mark.parametrize("synaptic", [True, False], ids=["RSynaptic", "RLeaky"])
def test_snntorch_recurrent_export_imports_spike_exact(synaptic):
    from snntorch.export_nir import export_to_nir

    net = _snntorch_net(synaptic, bias=False)
    graph = export_to_nir(net, torch.zeros(C))
    imp = import_nir_graph(graph, "snntorch.nir", dt=1e-4, convention="snntorch", approximate=("readout",))
    assert imp.hidden == "lif.lif" and imp.config["refractory_steps"] == 1
    assert imp.config["variant"] == ("rec-syn" if synaptic else "rec")
    x = _input()
    own = _snntorch_own_spikes(net, x)
    ours = _ours(imp, x)
    assert own.sum() > 50, "the test input must make the writer's network spike"
    rep = compare_spikes(ours, own)
    assert rep["identical"], rep
    # the file simulated again by snnTorch's neurons (its importer cannot load recurrent graphs)
    assert compare_spikes(ours, reader_hidden_spikes("snntorch", graph, 1e-4, x.transpose(1, 0, 2)))["identical"]
    # with the NIR convention (reset in the spiking step) the spikes differ from snnTorch's: measured, not hidden
    nir_conv = _ours(import_nir_graph(graph, "s.nir", dt=1e-4, approximate=("readout",)), x)
    assert not compare_spikes(nir_conv, own)["identical"]


def test_snntorch_bias_needs_the_approximation_and_reports_its_divergence():
    from snntorch.export_nir import export_to_nir

    net = _snntorch_net(True, bias=True)
    graph = export_to_nir(net, torch.zeros(C))
    with pytest.raises(UnsupportedError, match=r"fc1\.bias: a bias into a CubaLIF's synaptic current"):
        import_nir_graph(graph, "s.nir", dt=1e-4, convention="snntorch", approximate=("readout",))
    imp = import_nir_graph(graph, "s.nir", dt=1e-4, convention="snntorch", approximate=("readout", "synaptic-bias"))
    assert any("fc1.bias" in a for a in imp.mapping["approximations"])
    x = _input()
    rep = compare_spikes(_ours(imp, x), _snntorch_own_spikes(net, x))
    assert rep["spike_agreement"] > 0.9
    if not rep["identical"]:
        assert rep["first_divergence"]["step"] >= 0


# ----------------------------------------------------------------------------- Norse


def _norse_graph(cell: str, bias: bool):
    nt = require_module("norse")
    torch.manual_seed(4)
    common = {"v_th": torch.ones(H), "v_leak": torch.zeros(H), "v_reset": torch.zeros(H)}
    if cell == "LIF":
        neuron = nt.LIFBoxCell(nt.LIFBoxParameters(tau_mem_inv=torch.full((H,), 100.0), **common))
    else:
        neuron = nt.LIFCell(nt.LIFParameters(tau_mem_inv=torch.full((H,), 100.0), tau_syn_inv=torch.full((H,), 200.0),
                                             **common))
    fc1 = torch.nn.Linear(C, H, bias=bias)
    fc1.weight.data *= 30.0
    readout = nt.LIBoxCell(nt.LIBoxParameters(tau_mem_inv=torch.full((K,), 50.0), v_leak=torch.zeros(K)))
    net = nt.SequentialState(fc1, neuron, torch.nn.Linear(H, K), readout)
    return nt.to_nir(net, torch.zeros(1, C))


@pytest.mark.parametrize("cell,bias", [("LIF", True), ("CubaLIF", False)])
def test_norse_written_graph_matches_norse_simulation(cell, bias):
    graph = _norse_graph(cell, bias)
    assert type(graph.nodes["1"]).__name__ == cell
    # Norse 1.1 writes tau = dt / tau_mem_inv (= dt * tau, norse issue 411) and no dt: at its default
    # dt = 1e-3 s the file's taus read right only with dt' = dt * dt = 1e-6 s, in Norse as here
    with pytest.raises(UnsupportedError, match=r"1\.tau(_syn|_mem)?: time constant 1e-05 s is not longer than dt"):
        import_nir_graph(graph, "norse.nir", dt=1e-3)
    imp = import_nir_graph(graph, "norse.nir", dt=1e-6)
    assert imp.mapping["approximations"] == [] and imp.readout == "3"
    assert abs(imp.config["tau_mem_ms"] - (-1 / np.log(1 - 0.1))) < 1e-6  # tau_mem_inv 100/s at 1 ms steps
    x = _input()
    ref = reader_hidden_spikes("norse", graph, 1e-6, x.transpose(1, 0, 2))
    assert ref.sum() > 50
    rep = compare_spikes(_ours(imp, x), ref)
    assert rep["identical"], rep


# ----------------------------------------------------------------------------- SpikingJelly


def test_spikingjelly_written_graph_matches_spikingjelly_simulation():
    require_module("spikingjelly")
    from spikingjelly.activation_based import functional, layer, neuron
    from spikingjelly.activation_based.nir_exchange import export_to_nir

    torch.manual_seed(5)
    net = torch.nn.Sequential(layer.Linear(C, H, bias=False), neuron.LIFNode(tau=4.0), layer.Linear(H, K),
                              neuron.LIFNode(tau=5.0))
    net[0].weight.data *= 6.0
    graph = export_to_nir(net, torch.zeros(1, C), dt=1e-4)
    imp = import_nir_graph(graph, "sj.nir", dt=1e-4, approximate=("readout",))
    assert imp.config["variant"] == "lif"
    x = _input()
    ref = reader_hidden_spikes("spikingjelly", graph, 1e-4, x.transpose(1, 0, 2))
    functional.reset_net(net)
    own = []
    with torch.no_grad():
        for x_t in torch.from_numpy(x).transpose(0, 1):
            own.append(net[1](net[0](x_t)).numpy())
    own_arr = np.stack(own)
    assert own_arr.sum() > 50
    assert compare_spikes(ref, own_arr)["identical"]
    rep = compare_spikes(_ours(imp, x), own_arr)
    assert rep["identical"], rep


# ----------------------------------------------------------------------------- braille.nir


def test_braille_nested_shape_flattens():
    graph = nir.read(str(_braille()))
    _, edges = flatten_graph(graph)
    assert ("lif1.lif", "lif1.w_rec") in edges and ("lif1.w_rec", "lif1.lif") in edges


def test_braille_without_biases_is_spike_exact_with_norse_and_spikingjelly():
    graph = nir.read(str(_braille()))
    for name in ("fc1", "lif1.w_rec", "fc2"):
        graph.nodes[name].bias = np.zeros_like(graph.nodes[name].bias)
    imp = import_nir_graph(graph, "braille.nir", dt=1e-4, approximate=("readout",))
    x = generated_spikes(4, 200, 12, rate=0.2, seed=2)
    ours = _ours(imp, x)
    for reader in ("norse", "spikingjelly"):
        require_module(reader) if reader in ("norse", "spikingjelly") else pytest.importorskip(reader)
        ref = reader_hidden_spikes(reader, graph, 1e-4, x.transpose(1, 0, 2))
        assert ref.sum() > 20
        assert compare_spikes(ours, ref)["identical"], reader


def test_braille_cli_import_records_hash_mapping_and_parity(tmp_path):
    src = _braille()
    require_module("spikingjelly")
    out = tmp_path / "braille"
    assert main(["import", str(src), "-o", str(out)]) == 2  # no dt in the file
    assert not out.exists()
    args = ["import", str(src), "-o", str(out), "--dt", "1e-4", "--approximate", "synaptic-bias",
            "--approximate", "readout", "--check", "norse", "--check", "spikingjelly"]
    assert main(args) == 0
    doc = json.loads((out / "model.json").read_text())
    rec = doc["nir_import"]
    import hashlib

    assert rec["source_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert rec["dt_s"] == 1e-4 and rec["dt_from"] == "--dt"
    for name in ("fc1.weight", "fc1.bias", "lif1.lif.tau_syn", "lif1.lif.tau_mem", "lif1.lif.r", "lif1.lif.w_in",
                 "lif1.lif.v_leak", "lif1.lif.v_threshold", "lif1.lif.v_reset", "lif1.w_rec.weight", "fc2.weight",
                 "fc2.bias", "lif2.tau_syn", "lif2.tau_mem", "lif2.r", "lif2.w_in", "lif2.v_threshold"):
        assert name in rec["parameters"], name
    for reader in ("norse", "spikingjelly"):
        assert rec["parity"][reader]["spike_agreement"] > 0.97
    assert main(args) == 2  # the folder exists now
    assert main([*args, "--overwrite"]) == 0


# ----------------------------------------------------------------------------- refusals


def _tiny_graph(**lif_kw):
    lif = dict(tau=np.full(H, 0.01), r=np.ones(H), v_leak=np.zeros(H), v_threshold=np.ones(H), v_reset=np.zeros(H))
    lif.update(lif_kw)
    nodes = {"input": nir.Input(input_type={"input": np.array([C])}), "w": nir.Linear(weight=np.ones((H, C))),
             "lif": nir.LIF(**lif), "wo": nir.Linear(weight=np.ones((K, H))),
             "li": nir.LI(tau=np.full(K, 0.02), r=np.ones(K), v_leak=np.zeros(K)),
             "output": nir.Output(output_type={"output": np.array([K])})}
    edges = [("input", "w"), ("w", "lif"), ("lif", "wo"), ("wo", "li"), ("li", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt_s": 1e-3})


def test_refusals_name_the_parameter():
    with pytest.raises(UnsupportedError, match=r"lif\.v_reset: must be 0"):
        import_nir_graph(_tiny_graph(v_reset=np.full(H, 0.5)), "g.nir")
    with pytest.raises(UnsupportedError, match=r"lif\.tau: time constant 0\.0005 s is not longer than dt"):
        import_nir_graph(_tiny_graph(tau=np.full(H, 5e-4)), "g.nir")
    with pytest.raises(ValidationError, match=r"--dt: 0\.0001 s contradicts the file's recorded dt"):
        import_nir_graph(_tiny_graph(), "g.nir", dt=1e-4)
    g = _tiny_graph()
    g.nodes["li"] = nir.LI(tau=np.array([0.02, 0.03, 0.02]), r=np.ones(K), v_leak=np.zeros(K))
    with pytest.raises(UnsupportedError, match=r"li\.tau: differs between outputs"):
        import_nir_graph(g, "g.nir")
    g = _tiny_graph()
    g.nodes["w"] = nir.Scale(scale=np.ones(C))
    with pytest.raises(UnsupportedError, match=r"w: node type Scale is not supported; import reads Input"):
        import_nir_graph(g, "g.nir")


def test_exact_lif_mapping_against_hand_euler():
    thr = np.linspace(0.5, 1.5, H)
    imp = import_nir_graph(_tiny_graph(v_threshold=thr, v_leak=np.full(H, 0.3)), "g.nir")
    assert imp.config["threshold"] == 1.0  # per-neuron thresholds folded into the weights
    x = _input(2, 60, 0.3)
    a, g = 1 - 1e-3 / 0.01, 1e-3 / 0.01
    v = np.zeros((2, H))
    ref = []
    for t in range(60):
        v = a * v + g * (x[:, t] @ np.ones((C, H))) + g * 0.3
        z = (v > thr).astype(np.float32)
        v = v * (1 - z)
        ref.append(z)
    ref_arr = np.stack(ref)
    assert ref_arr.sum() > 10
    assert compare_spikes(_ours(imp, x), ref_arr)["identical"]


def test_cli_refusal_is_one_line(tmp_path, capsys):
    from rsnn_deploy.export._nir import write_nir

    path = write_nir(_tiny_graph(v_reset=np.full(H, 0.5)), tmp_path / "g.nir")
    assert main(["import", str(path), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lif.v_reset" in err[0]
    assert not (tmp_path / "o").exists()


def test_imported_model_quantizes_and_verifies(tmp_path):
    from rsnn_deploy.export._nir import write_nir

    path = write_nir(_tiny_graph(), tmp_path / "g.nir")
    x = generated_spikes(40, 50, C, rate=0.2, seed=3)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(40) % K)
    out = tmp_path / "imp"
    assert main(["import", str(path), "-o", str(out), "--data", str(tmp_path / "d.npz")]) == 0
    assert main(["quantize", str(out / "model.json"), "--target", "loihi1", "-o", str(tmp_path / "q"),
                 "--calib", "20"]) == 0
    assert main(["verify", str(out / "model.json"), "--target", "loihi1", "--backends",
                 "torch-float,torch-fakequant,emulator", "--no-figures", "--quiet", "-o", str(tmp_path / "v")]) == 0
    rep = json.loads((tmp_path / "v" / "report.json").read_text())
    assert rep["profile"] == "loihi1"
    assert rep["agreement"] is not None and rep["backends"]["emulator"]["accuracy"] is not None
    # exports and streams like any other network
    assert main(["export", str(out / "model.json"), "--format", "onnx", "-o", str(tmp_path / "m.onnx")]) == 0
    assert main(["export", str(out / "model.json"), "--format", "nir", "-o", str(tmp_path / "m.nir")]) == 0
    assert main(["export", str(tmp_path / "q.json"), "--format", "nir", "-o", str(tmp_path / "q.nir")]) == 0
    np.savez(tmp_path / "s.npz", x=x[:4], y=np.arange(4) % K)
    assert main(["hil", "--model", str(tmp_path / "q.json"), "--stream", str(tmp_path / "s.npz"), "--backend",
                 "emulator", "--quiet", "-o", str(tmp_path / "hil.json")]) == 0
    assert (tmp_path / "hil.json").is_file()


def test_import_file_keeps_existing_output(tmp_path):
    from rsnn_deploy.export._nir import write_nir

    path = write_nir(_tiny_graph(), tmp_path / "g.nir")
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ValidationError, match="already exists"):
        import_nir_file(path, out)
    assert (out / "keep.txt").read_text() == "mine"


def test_braille_example_quick(tmp_path):
    """``examples/braille_nir.py --quick``: its own check (emulator == nengo-loihi spike for spike) decides."""
    import importlib.util

    _braille()
    pytest.importorskip("snntorch", reason="snntorch is not installed")
    pytest.importorskip("nengo_loihi", reason="nengo-loihi is not installed")
    path = Path(__file__).resolve().parents[1] / "examples" / "braille_nir.py"
    spec = importlib.util.spec_from_file_location("braille_nir", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--quick", "--out", str(tmp_path / "b")]) == 0
    s = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert "refused" in s["runs"]["snntorch"]["targets"]["loihi2"]
    assert s["runs"]["snntorch"]["float_vs_frameworks_hidden_spikes"]["snntorch"]["spike_agreement"] > 0.98


def test_nested_recurrent_subgraph_imports_like_the_flat_one():
    """snnTorch's RSynaptic as a nested NIRGraph {input, lif, w_rec, output} == the flattened graph."""
    graph = nir.read(str(_braille()))
    nodes = graph.nodes
    sub = nir.NIRGraph(
        nodes={"input": nir.Input(input_type={"input": np.array([38])}), "lif": nodes["lif1.lif"],
               "w_rec": nodes["lif1.w_rec"], "output": nir.Output(output_type={"output": np.array([38])})},
        edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")], type_check=False)
    nested = nir.NIRGraph(
        nodes={"input": nodes["input"], "fc1": nodes["fc1"], "lif1": sub, "fc2": nodes["fc2"], "lif2": nodes["lif2"],
               "output": nodes["output"]},
        edges=[("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")],
        type_check=False)
    kw = {"dt": 1e-4, "approximate": ("synaptic-bias", "readout")}
    a, b = import_nir_graph(nested, "nested.nir", **kw), import_nir_graph(graph, "braille.nir", **kw)
    assert a.hidden == "lif1.lif" and a.mapping["nodes"]["w_rec"] == "lif1.w_rec"
    assert a.config == b.config
    for name, t in b.tensors.items():
        torch.testing.assert_close(a.tensors[name], t, rtol=0, atol=0)


def test_import_checks_itself_with_every_installed_reader(tmp_path):
    """Default ``--check``: every installed reader; one that cannot load the file is recorded, not fatal."""
    from rsnn_deploy.export._nir import write_nir

    for reader in ("norse", "spikingjelly", "snntorch"):
        require_module(reader) if reader in ("norse", "spikingjelly") else pytest.importorskip(reader)
    path = write_nir(_tiny_graph(v_threshold=np.linspace(0.2, 0.6, H)), tmp_path / "g.nir")
    rec = import_nir_file(path, tmp_path / "o")
    par = rec["parity"]
    assert par["norse"]["identical"] and par["norse"]["convention_matches"], par["norse"]
    assert par["norse"]["spikes_reader"] > 0
    assert "unsupported" in par["snntorch"] and "threshold" in par["snntorch"]["unsupported"]
    assert "unsupported" in par["spikingjelly"] and "v_threshold" in par["spikingjelly"]["unsupported"]
    with pytest.raises(UnsupportedError, match="snntorch"):
        import_nir_file(path, tmp_path / "o2", check=("snntorch",))
    assert "parity" not in import_nir_file(path, tmp_path / "o3", check=())
