"""NIR export: graph shape and conventions, file round trip, refusals, and an independent consumer (snnTorch)."""

from __future__ import annotations

import json

import nir
import numpy as np
import pytest
import torch

from rsnn_deploy import emulator
from rsnn_deploy.checkpoint import save_checkpoint
from rsnn_deploy.cli import main
from rsnn_deploy.config import ModelConfig
from rsnn_deploy.errors import UnsupportedError
from rsnn_deploy.export import export
from rsnn_deploy.export._nir import nir_from_model, nir_from_qnet, read_nir, write_nir
from rsnn_deploy.hardware import load_profile
from rsnn_deploy.model import RSNN
from rsnn_deploy.qnet import save_qnet
from rsnn_deploy.quantize import quantize_model, retention_of

C, H, K = 20, 32, 4


def _model(seed: int = 0, **kw) -> RSNN:
    torch.manual_seed(seed)
    model = RSNN(ModelConfig(n_in=C, n_hidden=H, n_out=K, init_in_gain=3.0, init_rec_gain=1.0, **kw))
    with torch.no_grad():
        model.b_out.normal_(0.0, 0.1)
        if model.bias is not None:
            model.bias.normal_(0.0, 0.1)
    return model.eval()


def _spikes(b: int = 16, t: int = 60, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((b, t, C)) < 0.2


def _assert_graphs_equal(a, b) -> None:
    assert set(a.nodes) == set(b.nodes)
    assert sorted(a.edges) == sorted(b.edges)
    for name, node in a.nodes.items():
        other = b.nodes[name]
        assert type(node) is type(other), name
        for key, value in node.to_dict().items():
            if key in ("type", "metadata"):
                continue
            np.testing.assert_array_equal(np.asarray(other.to_dict()[key]), np.asarray(value), err_msg=f"{name}.{key}")


def _euler_run(graph, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The NIR ODEs integrated with forward Euler at metadata dt_s (the documented convention)."""
    dt = float(graph.metadata["dt_s"])
    n = graph.nodes
    lif, li = n["lif"], n["readout"]
    w_rec = n["w_rec"].weight if "w_rec" in n else np.zeros((H, H))
    b, t_steps, _ = x.shape
    i = np.zeros((b, H))
    v = np.zeros((b, H))
    z = np.zeros((b, H))
    y = np.zeros((b, K))
    zs, ys = [], []
    for t in range(t_steps):
        s = x[:, t] @ n["w_in"].weight.T + z @ w_rec.T
        if isinstance(n["w_in"], nir.Affine):
            s = s + n["w_in"].bias
        if isinstance(lif, nir.CubaLIF):
            i = i + dt / lif.tau_syn * (-i + lif.w_in * s)
            v = v + dt / lif.tau_mem * (lif.v_leak - v + lif.r * i)
        else:
            v = v + dt / lif.tau * (lif.v_leak - v + lif.r * s)
        z = (v > lif.v_threshold).astype(np.float64)
        v = np.where(z > 0, lif.v_reset, v)
        cur = z @ n["w_out"].weight.T + n["w_out"].bias
        y = y + dt / li.tau * (li.v_leak - y + li.r * cur)
        zs.append(z)
        ys.append(y)
    return np.stack(zs, 1) > 0, np.stack(ys, 1)


# ----------------------------------------------------------------------------- float graphs


@pytest.mark.parametrize("variant", ["rec-syn", "rec", "lif"])
def test_float_graph_structure_and_euler_convention(variant: str) -> None:
    model = _model(variant=variant, bias=True)
    g = nir_from_model(model)
    neuron = nir.CubaLIF if variant == "rec-syn" else nir.LIF
    assert isinstance(g.nodes["lif"], neuron)
    # a biased plain LIF carries its bias in the input Affine (v_leak = 0, r = 1: what Norse and SpikingJelly read)
    assert isinstance(g.nodes["w_in"], nir.Linear if variant == "rec-syn" else nir.Affine)
    assert isinstance(g.nodes["readout"], nir.LI)
    if variant != "rec-syn":
        np.testing.assert_array_equal(g.nodes["lif"].r, 1.0)
        np.testing.assert_array_equal(g.nodes["lif"].v_leak, 0.0)
    assert (("lif", "w_rec") in g.edges and ("w_rec", "lif") in g.edges) == (variant != "lif")
    assert g.metadata["dt_s"] == pytest.approx(1e-3)
    # tau in the file is the Euler equivalent of the model's 10 ms: dt / (1 - exp(-dt/tau))
    tau = g.nodes["lif"].tau_mem if variant == "rec-syn" else g.nodes["lif"].tau
    assert tau[0] == pytest.approx(1e-3 / (1 - np.exp(-0.1)), rel=1e-6)
    assert g.metadata["tau_exact_ms"]["tau_mem"][0] == pytest.approx(10.0)
    # one Euler step of the NIR equations is one step of the model (float64 vs float32: spikes identical)
    x = _spikes()
    tr = model.trace(torch.from_numpy(x.astype(np.float32)))
    spikes, readout = _euler_run(g, x.astype(np.float64))
    assert 0.01 < tr.spikes.float().mean() < 0.6
    np.testing.assert_array_equal(spikes, tr.spikes.numpy() > 0)
    np.testing.assert_allclose(readout, tr.readout.numpy(), rtol=1e-4, atol=1e-4)


def test_float_round_trip_keeps_every_parameter(tmp_path) -> None:
    g = nir_from_model(_model(variant="rec-syn"), source="unit-test")
    path = export(_model(variant="rec-syn"), "nir", tmp_path / "m.nir")
    g2 = read_nir(path)
    _assert_graphs_equal(g, g2)
    for key in ("dt_s", "readout_mode", "update_order", "discretization", "model_config", "recurrent_delay_steps"):
        assert g2.metadata[key] == g.metadata[key], key
    np.testing.assert_array_equal(g2.metadata["tau_exact_ms"]["tau_syn"], g.metadata["tau_exact_ms"]["tau_syn"])


# ----------------------------------------------------------------------------- quantized networks


@pytest.mark.parametrize("profile", ["loihi1", "loihi2"])
def test_qnet_graph_carries_the_integers(tmp_path, profile: str) -> None:
    model = _model(variant="rec-syn", bias=True)
    qnet, _ = quantize_model(model, profile)
    write_nir(nir_from_qnet(qnet), tmp_path / "q.nir")
    g = read_nir(tmp_path / "q.nir")
    _assert_graphs_equal(nir_from_qnet(qnet), g)
    quant = g.metadata["quantization"]
    assert quant["profile"] == profile and quant["profile_sha256"] == qnet.profile_sha256
    assert int(quant["input_latency"]) == qnet.input_latency
    for name in ("w_in", "w_rec", "bias", "decay_u", "decay_v", "vth", "refractory"):
        np.testing.assert_array_equal(quant[name], getattr(qnet, name), err_msg=name)
    assert (int(quant["vmin"]), int(quant["vmax"])) == (qnet.vmin, qnet.vmax)
    prof = load_profile(profile)
    for key, d, off in (("tau_mem", qnet.decay_v, prof.decay.v_offset), ("tau_syn", qnet.decay_u, prof.decay.u_offset)):
        a = retention_of(d, prof, off)
        np.testing.assert_array_equal(quant["tau_effective_ms"][key], -1.0 / np.log(a))  # dt = 1 ms
    np.testing.assert_array_equal(g.nodes["w_in"].weight, qnet.w_in)
    np.testing.assert_array_equal(g.nodes["lif"].v_threshold, qnet.vth)  # both compare v > vth (Lava's LIF too)

    a_m = retention_of(qnet.decay_v, load_profile(profile), 0)
    np.testing.assert_allclose(g.nodes["lif"].tau_mem, 1e-3 / (1 - a_m))
    # the NIR graph is the chip without truncation and wrap: close to, not equal to, the emulator
    x = _spikes()
    ours = emulator.run(qnet, x).spikes
    euler, _ = _euler_run(g, x.astype(np.float64))
    assert (euler == ours).mean() > 0.8


# ----------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(variant="rec-syn-adapt", adapt_kind="threshold"), "adaptation"),
        (dict(variant="rec-adapt", adapt_kind="current"), "adaptation"),
        (dict(variant="rec-syn", refractory_steps=2), "refractory"),
        (dict(variant="rec-syn", v_floor=0.0), "v_floor"),
    ],
)
def test_unrepresentable_float_models_are_refused(tmp_path, capsys, kw: dict, match: str) -> None:
    model = _model(**kw)
    with pytest.raises(UnsupportedError, match=match):
        nir_from_model(model)
    ckpt = save_checkpoint(model, tmp_path / "m")
    assert main(["export", str(ckpt), "--format", "nir", "-o", str(tmp_path / "m.nir")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and match in err and "no NIR" in err
    assert not (tmp_path / "m.nir").exists()


@pytest.mark.parametrize(
    ("profile", "kw", "match"),
    [
        ("loihi2", dict(variant="rec-syn-adapt", adapt_kind="atrlif"), "theta_step"),
        ("loihi1", dict(variant="rec-syn", refractory_steps=2), "refractory"),
        ("loihi1", dict(variant="rec-syn", v_floor=0.0), "vmin"),
    ],
)
def test_unrepresentable_qnets_are_refused(tmp_path, capsys, profile: str, kw: dict, match: str) -> None:
    qnet, _ = quantize_model(_model(**kw), profile)
    qpath = save_qnet(qnet, tmp_path / "q")
    assert main(["export", str(qpath), "--format", "nir", "-o", str(tmp_path / "q.nir")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and match in err, err


def test_cli_exports_nir(tmp_path) -> None:
    ckpt = save_checkpoint(_model(variant="rec-syn"), tmp_path / "m")
    assert main(["export", str(ckpt), "--format", "nir", "-o", str(tmp_path / "m.nir")]) == 0
    assert isinstance(read_nir(tmp_path / "m.nir").nodes["lif"], nir.CubaLIF)


# ----------------------------------------------------------------------------- independent consumer


@pytest.mark.parametrize("variant,bias", [("rec-syn", False), ("rec", False), ("rec", True), ("lif", True)])
def test_snntorch_runs_the_exported_graph_identically(tmp_path, variant: str, bias: bool) -> None:
    from rsnn_deploy.export.check_nir import compare_traces, run_consumer, snntorch_consumer

    model = _model(variant=variant, bias=bias)
    write_nir(nir_from_model(model), tmp_path / "m.nir")
    module = snntorch_consumer(read_nir(tmp_path / "m.nir"))
    x = _spikes()
    spikes, readout = run_consumer(module, x)
    tr = model.trace(torch.from_numpy(x.astype(np.float32)))
    labels = np.zeros(x.shape[0], dtype=np.int64)
    res = compare_traces(tr.spikes.numpy(), tr.readout.numpy(), tr.logits.numpy(), spikes, readout, "mean", labels)
    assert res["spike_agreement"] == 1.0 and res["prediction_agreement"] == 1.0
    assert res["readout_max_abs_diff"] < 1e-4


def test_check_nir_end_to_end_on_a_generated_task(tmp_path, capsys) -> None:
    from rsnn_deploy.export import check_nir as cn
    from rsnn_deploy.tasks import load_task

    task = load_task("store-recall", n_train=8, n_test=12, seed=1)
    torch.manual_seed(0)
    model = RSNN(ModelConfig(n_in=task.n_channels, n_hidden=24, n_out=task.n_classes, variant="rec-syn",
                             init_in_gain=3.0, readout_mode=task.readout_mode)).eval()
    ckpt = save_checkpoint(model, tmp_path / "m", task={"name": task.name, "params": task.params})
    assert cn.main([str(ckpt), "--limit", "12", "--profile", "loihi2", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["samples"] == 12 and res["spike_agreement"] == 1.0 and res["consumer"].startswith("snntorch")
    assert res["accuracy_ours"] == res["accuracy_consumer"]
    assert res["qnet"]["profile"] == "loihi2" and res["qnet"]["spike_agreement"] > 0.8
    biased = save_checkpoint(_model(variant="rec-syn", bias=True), tmp_path / "b",
                             task={"name": task.name, "params": task.params})
    assert cn.main([str(biased)]) == 2
    assert "v_leak" in capsys.readouterr().err


@pytest.mark.parametrize("variant,bias", [("rec-syn", False), ("rec-syn", True), ("rec", True), ("lif", True)])
def test_export_then_import_gives_the_same_network(tmp_path, variant: str, bias: bool) -> None:
    from rsnn_deploy.export._nir_import import import_nir_graph

    model = _model(variant=variant, bias=bias)
    g = read_nir(export(model, "nir", tmp_path / "m.nir"))
    imp = import_nir_graph(g, "m.nir")  # dt from the file's metadata
    assert imp.mapping["dt_from"] == "file metadata" and imp.mapping["approximations"] == []
    back = RSNN(ModelConfig(**imp.config))
    back.load_state_dict(imp.tensors)
    x = torch.from_numpy(_spikes().astype(np.float32))
    a, b = model.trace(x), back.eval().trace(x)
    np.testing.assert_array_equal(a.spikes.numpy(), b.spikes.numpy())
    np.testing.assert_allclose(a.logits.detach().numpy(), b.logits.detach().numpy(), rtol=1e-4, atol=1e-4)
