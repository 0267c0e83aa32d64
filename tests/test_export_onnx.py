"""ONNX export: float graphs match torch on every step, integer graphs match the emulator bit for bit."""

from __future__ import annotations

import dataclasses
import json
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from rsnn_deploy import emulator
from rsnn_deploy.backends._onnx import OnnxBackend, run_onnx_int
from rsnn_deploy.checkpoint import save_checkpoint
from rsnn_deploy.cli import main
from rsnn_deploy.config import ModelConfig
from rsnn_deploy.errors import ValidationError
from rsnn_deploy.export import export, load_network
from rsnn_deploy.export._onnx_build import read_metadata
from rsnn_deploy.export._onnx_float import FLOAT_STATE, export_float_onnx
from rsnn_deploy.export._onnx_int import export_int_onnx
from rsnn_deploy.hardware import load_profile
from rsnn_deploy.model import RSNN
from rsnn_deploy.qnet import QuantizedNetwork, save_qnet
from rsnn_deploy.quantize import quantize_model

B, T, C, H, K = 32, 40, 64, 48, 10  # MNIST-1D shaped: 40 steps of 64 channels

FLOAT_VARIANTS = {
    "lif": dict(variant="lif"),
    "rec": dict(variant="rec", per_neuron_tau=True, train_tau=True, readout_mode="last"),
    "rec-syn": dict(variant="rec-syn"),
    "rec-syn-adapt-threshold-refractory": dict(variant="rec-syn-adapt", adapt_kind="threshold", refractory_steps=3),
    "rec-adapt-current-floor-bias": dict(variant="rec-adapt", adapt_kind="current", v_floor=-0.5, bias=True),
}


def _model(seed: int = 0, **kw) -> RSNN:
    torch.manual_seed(seed)
    model = RSNN(ModelConfig(n_in=C, n_hidden=H, n_out=K, init_in_gain=3.0, init_rec_gain=1.0, **kw))
    with torch.no_grad():
        if model.bias is not None:
            model.bias.normal_(0.0, 0.1)
        model.b_out.normal_(0.0, 0.1)
        if model.cfg.per_neuron_tau:
            model.tau_mem.uniform_(5.0, 30.0)
    return model.eval()


def _spikes(seed: int = 1, b: int = B, t: int = T, c: int = C, p: float = 0.2) -> np.ndarray:
    return np.random.default_rng(seed).random((b, t, c)) < p


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


# ----------------------------------------------------------------------------- float


@pytest.mark.parametrize("name", list(FLOAT_VARIANTS))
def test_float_graphs_match_torch_every_step(name: str) -> None:
    model = _model(**FLOAT_VARIANTS[name])
    x = _spikes().astype(np.float32)
    tr = model.trace(torch.from_numpy(x))
    assert 0.01 < float(tr.spikes.mean()) < 0.6, "test network must spike"
    ref = {"spikes": tr.spikes, "current": tr.current, "voltage": tr.voltage, "adaptation": tr.adaptation,
           "readout": tr.readout, "logits": tr.logits}
    ref = {k: v.numpy() for k, v in ref.items()}

    seq = export_float_onnx(model, "sequence")
    out = dict(zip([o.name for o in _session(seq).get_outputs()], _session(seq).run(None, {"x": x}), strict=True))
    np.testing.assert_array_equal(out["spikes"], ref["spikes"])
    for key in ("current", "voltage", "adaptation", "readout", "logits"):
        np.testing.assert_allclose(out[key], ref[key], rtol=1e-6, atol=1e-5, err_msg=key)

    step = _session(export_float_onnx(model, "step"))
    state = {s: np.zeros((B, K if s == "y" else H), np.float32) for s in FLOAT_STATE}
    names = [o.name for o in step.get_outputs()]
    for t in range(T):
        res = dict(zip(names, step.run(None, {"x": x[:, t], **state}), strict=True))
        np.testing.assert_array_equal(res["z"], ref["spikes"][:, t], err_msg=f"step {t}")
        np.testing.assert_allclose(res["i_out"], ref["current"][:, t], rtol=1e-6, atol=1e-5)
        np.testing.assert_allclose(res["v_out"], ref["voltage"][:, t], rtol=1e-6, atol=1e-5)
        np.testing.assert_allclose(res["n_out"], ref["adaptation"][:, t], rtol=1e-6, atol=1e-5)
        np.testing.assert_allclose(res["y_out"], ref["readout"][:, t], rtol=1e-6, atol=1e-5)
        state = {"i": res["i_out"], "v": res["v_out"], "n": res["n_out"], "ref": res["ref_out"],
                 "z_prev": res["z"], "y": res["y_out"]}


def test_float_graph_is_checked_and_described(tmp_path) -> None:
    path = export(_model(variant="rec-syn"), "onnx", tmp_path / "m.onnx", graph="sequence")
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    meta = read_metadata(proto)
    assert meta["kind"] == "float" and meta["graph"] == "sequence" and meta["n_hidden"] == str(H)
    assert [i.name for i in proto.graph.input] == ["x"]
    assert {o.name for o in proto.graph.output} == {"spikes", "current", "voltage", "adaptation", "readout", "logits"}
    assert any(n.op_type == "Scan" for n in proto.graph.node)


# ----------------------------------------------------------------------------- integer


def _assert_same_trace(got, ref) -> None:
    np.testing.assert_array_equal(got.spikes, ref.spikes)
    np.testing.assert_array_equal(got.current, ref.current)
    np.testing.assert_array_equal(got.voltage, ref.voltage)
    if ref.adaptation is None:
        assert got.adaptation is None
    else:
        np.testing.assert_array_equal(got.adaptation, ref.adaptation)
    assert dict(got.overflow) == dict(ref.overflow)
    np.testing.assert_array_equal(got.readout, ref.readout)
    np.testing.assert_allclose(got.logits, ref.logits, rtol=0, atol=0)


QUANT_CASES = {
    "loihi1-rec-syn-refractory-floor-bias": ("loihi1", dict(variant="rec-syn", refractory_steps=2, v_floor=0.0,
                                                           bias=True)),
    "loihi1-lif": ("loihi1", dict(variant="lif")),
    "loihi2-rec-syn-adapt": ("loihi2", dict(variant="rec-syn-adapt", adapt_kind="atrlif", adapt_strength=0.5)),
    "loihi2-rec-last": ("loihi2", dict(variant="rec", readout_mode="last")),
}


@pytest.mark.parametrize("case", list(QUANT_CASES))
@pytest.mark.parametrize("graph", ["step", "sequence"])
def test_int_graph_bit_exact_with_emulator(case: str, graph: str) -> None:
    profile, kw = QUANT_CASES[case]
    model = _model(**kw)
    x = _spikes()
    qnet, _ = quantize_model(model, profile, torch.from_numpy(x.astype(np.float32)))
    ref = emulator.run(qnet, x, record_states=True)
    assert ref.spikes.mean() > 0.01
    proto = export_int_onnx(qnet, graph)
    got = run_onnx_int(proto.SerializeToString(), x)
    _assert_same_trace(got, ref)


def _wrapping_qnet(profile: str) -> QuantizedNetwork:
    """Weights far beyond any trained network's: q and u leave their word widths and wrap."""
    rng = np.random.default_rng(3)
    h, c, k = 6, 8, 3
    kw = dict(
        w_in=rng.integers(0, 2**19, (h, c)),
        w_rec=rng.integers(-(2**18), 2**18, (h, h)),
        bias=np.array([0, 64, -64, 2**22, -(2**22), 0]),
        decay_u=np.zeros(h, np.int64), decay_v=np.full(h, 200), vth=np.full(h, 2**22), refractory=np.full(h, 2),
        vmin=0, vmax=2**23 - 1, w_out=rng.normal(size=(k, h)), b_out=np.zeros(k), readout_decay=0.9,
        readout_mode="mean", profile=profile, profile_sha256=load_profile(profile).sha256, input_latency=1,
    )
    if profile == "loihi2":
        kw.update(vmin=-(2**23 - 1), refractory=np.ones(h, np.int64), decay_theta=np.full(h, 10),
                  theta_step=np.full(h, 2**21), bias=np.zeros(h, np.int64), decay_r=np.full(h, 2000))
    return QuantizedNetwork(**kw)


@pytest.mark.parametrize("profile", ["loihi1", "loihi2"])
@pytest.mark.parametrize("graph", ["step", "sequence"])
def test_int_graph_reproduces_wrap_around(profile: str, graph: str) -> None:
    qnet = _wrapping_qnet(profile)
    x = _spikes(seed=5, b=5, t=30, c=8, p=0.6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = emulator.run(qnet, x, record_states=True)
    assert ref.overflow["q"] > 0 and ref.overflow["u"] > 0
    if profile == "loihi1":
        assert ref.overflow["u2"] > 0
    else:
        assert ref.overflow["theta"] > 0
    _assert_same_trace(run_onnx_int(export_int_onnx(qnet, graph), x), ref)


def _matmul_weight_dtypes(proto) -> set:
    return {numpy_helper.to_array(t).dtype for t in proto.graph.initializer if t.name in ("w_in_t", "w_rec_t")}


@pytest.mark.parametrize("profile", ["loihi1", "loihi2"])
def test_int_graph_sums_in_float32_only_below_2_to_the_24(profile: str) -> None:
    """float32 holds every partial sum exactly only while each row's sum of |w| is below 2**24:
    a trained network's weights take the fast float32 MatMul, larger ones float64, exact both ways."""
    qnet = _wrapping_qnet(profile)
    assert _matmul_weight_dtypes(export_int_onnx(qnet, "step")) == {np.dtype(np.float32)}
    # odd weights near 2**22: eight of them sum past 2**24, where float32 drops the lowest bit
    w_in = (2**22 + 1 + 2 * np.arange(qnet.w_in.size).reshape(qnet.w_in.shape)).astype(np.int64)
    big = dataclasses.replace(qnet, w_in=w_in)
    proto = export_int_onnx(big, "step")
    assert _matmul_weight_dtypes(proto) == {np.dtype(np.float64)}
    x = _spikes(seed=6, b=5, t=30, c=8, p=0.9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = emulator.run(big, x, record_states=True)
    _assert_same_trace(run_onnx_int(proto, x), ref)


def test_int_step_graph_interface_and_latency() -> None:
    """A host loop written against the documented interface alone reproduces the emulator."""
    qnet, _ = quantize_model(_model(variant="rec-syn"), "loihi1")
    x = _spikes(b=4)
    proto = export_int_onnx(qnet, "step")
    meta = read_metadata(proto)
    assert meta["kind"] == "int" and meta["input_latency"] == "1" and meta["state"] == "u,v,ref,z_prev,x_delay,y"
    types = {i.name: i.type.tensor_type.elem_type for i in proto.graph.input}
    assert types["u"] == types["v"] == types["ref"] == onnx.TensorProto.INT64
    assert types["x"] == types["z_prev"] == onnx.TensorProto.BOOL
    sess = _session(proto)
    names = [o.name for o in sess.get_outputs()]
    lat = qnet.input_latency
    st = {"u": np.zeros((4, H), np.int64), "v": np.zeros((4, H), np.int64), "ref": np.zeros((4, H), np.int64),
          "z_prev": np.zeros((4, H), bool), "x_delay": np.zeros((4, lat, C), bool)}
    y, zs = np.zeros((4, K)), []
    for n in range(T + lat):
        xin = x[:, n] if n < T else np.zeros((4, C), bool)
        out = dict(zip(names, sess.run(None, {"x": xin, **st, "y": np.zeros((4, K)) if n <= lat else y}),
                       strict=True))
        st = {"u": out["u_out"], "v": out["v_out"], "ref": out["ref_out"], "z_prev": out["z"],
              "x_delay": out["x_delay_out"]}
        y = out["y_out"]
        zs.append(out["z"])
    ref = emulator.run(qnet, x)
    np.testing.assert_array_equal(np.stack(zs[lat:], 1), ref.spikes)
    np.testing.assert_allclose(y, ref.readout[:, -1], rtol=1e-6)  # Trace.readout is float32


def test_onnx_backend_is_registered_and_runs_qnet() -> None:
    from rsnn_deploy.backends import BackendSource, create_backend, load_plugins

    load_plugins()
    qnet, _ = quantize_model(_model(variant="rec-syn-adapt", adapt_kind="atrlif"), "loihi2")
    x = _spikes(b=8).astype(np.uint8)
    backend = create_backend("onnx", BackendSource(qnet=qnet, record_states=True))
    assert backend.name == "onnx"
    _assert_same_trace(backend.run(x), emulator.run(qnet, x, record_states=True))
    plain = OnnxBackend(qnet, graph="sequence").run(x)
    assert plain.current is None and plain.voltage is None
    with pytest.raises(ValidationError, match="graph"):
        OnnxBackend(qnet, graph="loop")


def test_run_onnx_int_refuses_a_float_graph() -> None:
    with pytest.raises(ValidationError, match="not an integer"):
        run_onnx_int(export_float_onnx(_model(variant="rec"), "step"), _spikes(b=2))


# ----------------------------------------------------------------------------- files and CLI


def test_cli_exports_checkpoint_and_qnet(tmp_path, capsys) -> None:
    model = _model(variant="rec-syn")
    ckpt = save_checkpoint(model, tmp_path / "model")
    qnet, _ = quantize_model(model, "loihi2")
    qpath = save_qnet(qnet, tmp_path / "qnet")
    assert type(load_network(ckpt)).__name__ == "Checkpoint"
    assert isinstance(load_network(tmp_path / "qnet.safetensors"), QuantizedNetwork)
    for src, graph, kind in ((ckpt, "step", "float"), (ckpt, "sequence", "float"), (qpath, "step", "int"),
                             (qpath, "sequence", "int")):
        out = tmp_path / f"{kind}_{graph}.onnx"
        assert main(["export", str(src), "--format", "onnx", "--graph", graph, "-o", str(out)]) == 0
        proto = onnx.load(str(out))
        onnx.checker.check_model(proto, full_check=True)
        assert read_metadata(proto)["kind"] == kind and read_metadata(proto)["graph"] == graph
    assert main(["export", str(ckpt), "--format", "onnx", "-o", str(tmp_path / "default.onnx")]) == 0
    assert read_metadata(onnx.load(str(tmp_path / "default.onnx")))["graph"] == "step"
    x = _spikes(b=4)
    _assert_same_trace(run_onnx_int(tmp_path / "int_step.onnx", x), emulator.run(qnet, x, record_states=True))


def _one_line_error(capsys, argv: list[str], match: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and match in err, err


def test_cli_errors_are_one_line(tmp_path, capsys) -> None:
    ckpt = save_checkpoint(_model(variant="rec"), tmp_path / "model")
    out = str(tmp_path / "x.onnx")
    _one_line_error(capsys, ["export", str(ckpt), "--format", "tflite", "-o", out], "export.format")
    _one_line_error(capsys, ["export", str(ckpt), "--format", "onnx", "--graph", "loop", "-o", out], "export.graph")
    _one_line_error(capsys, ["export", str(ckpt), "--format", "nir", "--graph", "step", "-o", out], "only --format")
    other = tmp_path / "report.json"
    other.write_text(json.dumps({"format": "rsnn-deploy/report"}))
    _one_line_error(capsys, ["export", str(other), "--format", "onnx", "-o", out], "format: not an rsnn-deploy")
    _one_line_error(capsys, ["export", str(tmp_path / "missing"), "--format", "onnx", "-o", out], "not found")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    _one_line_error(capsys, ["export", str(bad), "--format", "onnx", "-o", out], "not valid JSON")
    assert not (tmp_path / "x.onnx").exists()
