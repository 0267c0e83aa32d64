"""Our NIR exports read unchanged by Norse and SpikingJelly, spikes compared with the float model.

Both readers lack ``nir.LI``, so the exports are written with ``--nir-readout affine``
(the graph ends at ``w_out``; the leak is in ``metadata["readout"]``) and each reader
loads the *whole* file at the file's ``dt``. Variants a reader cannot represent are
asserted to fail the way the docs say, so a fixed reader shows up here.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import require_module

from rsnn_deploy.config import ModelConfig
from rsnn_deploy.export import export
from rsnn_deploy.export._nir import read_nir
from rsnn_deploy.model import RSNN

C, H, K = 20, 32, 4


def _model(variant: str, bias: bool) -> RSNN:
    torch.manual_seed(7)
    m = RSNN(ModelConfig(n_in=C, n_hidden=H, n_out=K, variant=variant, bias=bias, init_in_gain=3.0,
                         init_rec_gain=1.0))
    with torch.no_grad():
        m.b_out.normal_(0.0, 0.1)
        if m.bias is not None:
            m.bias.normal_(0.0, 0.1)
    return m.eval()


def _load(reader: str, graph, dt: float):
    if reader == "norse":
        nt = require_module("norse")
        return nt.from_nir(graph, dt=dt)
    require_module("spikingjelly")
    from spikingjelly.activation_based.nir_exchange import import_from_nir

    return import_from_nir(graph, dt=dt)


def _run(module, x: np.ndarray) -> np.ndarray:
    state, outs = None, []
    with torch.no_grad():
        for x_t in torch.from_numpy(x).transpose(0, 1):
            out, state = module(x_t, state)
            outs.append(out.numpy())
    return np.stack(outs, 1)  # [B, T, K]


def _export(tmp_path, model):
    path = export(model, "nir", tmp_path / "m.nir", nir_readout="affine")
    return read_nir(path)


def _x() -> np.ndarray:
    return (np.random.default_rng(1).random((8, 80, C)) < 0.2).astype(np.float32)


SUPPORTED = [(r, v, b) for r in ("norse", "spikingjelly") for v in ("rec-syn", "rec", "lif") for b in (False, True)
             if not (v == "rec-syn" and b)]


@pytest.mark.parametrize("reader,variant,bias", SUPPORTED)
def test_reader_runs_our_export_spike_for_spike(tmp_path, reader, variant, bias):
    model = _model(variant, bias)
    graph = _export(tmp_path, model)
    assert "readout" not in graph.nodes and graph.metadata["readout"]["node"] == "affine"
    x = _x()
    tr = model.trace(torch.from_numpy(x))
    assert 0.01 < float(tr.spikes.float().mean()) < 0.6
    module = _load(reader, graph, float(graph.metadata["dt_s"]))
    captured: list[torch.Tensor] = []
    if reader == "norse":
        module.get_submodule("lif").register_forward_hook(lambda _m, _i, out: captured.append(out[0]))
    current = _run(module, x)
    if captured:  # the reader's own neuron, read directly: identical spikes
        np.testing.assert_array_equal(torch.stack(captured, 1).numpy(), tr.spikes.numpy())
    ours = (tr.spikes @ model.w_out.t() + model.b_out).detach().numpy()
    if reader == "norse" and variant != "lif":
        # Norse 1.1 (nirtorch 2.6 GraphExecutor) returns a hidden-sized tensor, not w_out's output, for a graph
        # with a cycle; its neurons' spikes above are still ours
        assert current.shape[-1] == H
        return
    # w_out's output is a function of the spikes alone: equal currents mean equal spikes at every step
    np.testing.assert_allclose(current, ours, rtol=1e-5, atol=1e-5)
    a = float(graph.metadata["readout"]["retention"])
    y, ys = np.zeros_like(current[:, 0]), []
    for t in range(current.shape[1]):
        y = a * y + current[:, t]
        ys.append(y)
    logits = np.stack(ys, 1).mean(1)
    np.testing.assert_allclose(logits, tr.logits.detach().numpy(), rtol=1e-4, atol=1e-4)


def test_biased_cubalif_norse_adds_v_leak_to_the_synapse_and_spikingjelly_refuses(tmp_path):
    model = _model("rec-syn", True)
    graph = _export(tmp_path, model)
    x = _x()
    tr = model.trace(torch.from_numpy(x))
    module = _load("norse", graph, float(graph.metadata["dt_s"]))
    captured: list[torch.Tensor] = []
    module.get_submodule("lif").register_forward_hook(lambda _m, _i, out: captured.append(out[0]))
    _run(module, x)
    agreement = float((torch.stack(captured, 1).numpy() == tr.spikes.numpy()).mean())
    assert agreement < 1.0  # norse's CubaLIF feeds v_leak into its synapse as well as the membrane
    with pytest.raises(ValueError, match="v_leak"):
        _load("spikingjelly", graph, float(graph.metadata["dt_s"]))


def test_spikingjelly_refuses_the_li_readout(tmp_path):
    graph = read_nir(export(_model("rec", False), "nir", tmp_path / "m.nir"))
    with pytest.raises(ValueError, match="LI"):
        _load("spikingjelly", graph, float(graph.metadata["dt_s"]))


def _nir_104_wheel():
    from conftest import nir_104_wheel, require

    require("nir-1.0.4")
    return nir_104_wheel()


@pytest.mark.parametrize("variant", ["rec-syn", "rec", "lif"])
def test_nir_compat_104_is_read_by_nir_104(tmp_path, variant):
    """Rockpool 3.1 / Sinabs 3.1 pin nir <= 1.0.4, which refuses v_reset; --nir-compat 1.0.4 files load in it."""
    import json
    import subprocess
    import sys
    import zipfile

    site = tmp_path / "nir104"
    with zipfile.ZipFile(_nir_104_wheel()) as z:
        z.extractall(site)
    model = _model(variant, True)
    plain = export(model, "nir", tmp_path / "plain.nir")
    compat = export(model, "nir", tmp_path / "compat.nir", nir_compat="1.0.4")
    code = ("import json, sys, nir; out = {}\n"
            "for f in sys.argv[1:]:\n"
            "    try:\n"
            "        g = nir.read(f); out[f] = {n: {k: v.tolist() for k, v in vars(node).items()\n"
            "                       if hasattr(v, 'tolist') and k not in ('input_type', 'output_type')}\n"
            "                       for n, node in g.nodes.items()}\n"
            "    except TypeError as e:\n"
            "        out[f] = str(e)\n"
            "print(json.dumps({'version': nir.__version__, 'files': out}))")
    res = subprocess.run([sys.executable, "-c", code, str(plain), str(compat)], capture_output=True, text=True,
                         env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}, check=True, cwd=tmp_path)
    doc = json.loads(res.stdout.strip().splitlines()[-1])
    assert doc["version"] == "1.0.4"
    assert "v_reset" in doc["files"][str(plain)]  # the plain file: 1.0.4 refuses it, as Rockpool / Sinabs report
    read = doc["files"][str(compat)]
    ours = read_nir(compat)
    for name, params in read.items():
        for key, value in params.items():
            np.testing.assert_array_equal(np.asarray(value), np.asarray(getattr(ours.nodes[name], key)),
                                          err_msg=f"{name}.{key}")
    assert "v_reset" not in read["lif"] and np.all(ours.nodes["lif"].v_reset == 0)


def test_snntorch_import_from_nir_refuses_our_export(tmp_path):
    """snnTorch 1.0 hard-codes dt = 1e-4 and has no nir.LI: documented way through is check_nir.snntorch_consumer."""
    pytest.importorskip("snntorch", reason="snntorch is not installed")
    from snntorch.import_nir import import_from_nir

    from rsnn_deploy.export.check_nir import run_consumer, snntorch_consumer

    model = _model("rec-syn", False)
    path = export(model, "nir", tmp_path / "m.nir")
    with pytest.raises((AssertionError, NotImplementedError, ValueError, KeyError, AttributeError)):
        import_from_nir(read_nir(path))  # (it also rewrites the graph it is given in place)
    x = _x()
    spikes, _ = run_consumer(snntorch_consumer(read_nir(path)), x)
    np.testing.assert_array_equal(spikes, model.trace(torch.from_numpy(x)).spikes.numpy() > 0)
