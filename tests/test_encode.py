"""The input code is part of the model: InputEncoder records, ``rsnn-deploy encode``, encode -> hil == verify."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rsnn_deploy.cli import main
from rsnn_deploy.errors import CheckpointError, ValidationError
from rsnn_deploy.tasks.input_encoder import LAYOUTS, InputEncoder

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "mnist1d-rec-syn-loihi1"


def one_line_error(capsys: pytest.CaptureFixture[str], pattern: str) -> str:
    import re

    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err and err.startswith("rsnn-deploy: error: "), err
    assert re.search(pattern, err), err
    return err


# ----------------------------------------------------------------------------- the record


@pytest.mark.parametrize(
    ("enc", "channels"),
    [
        (InputEncoder("level-crossing", 1, [-1.0, 0.0, 1.0], start="hold", n_steps=40), 6),
        (InputEncoder("level-crossing", 2, [[0.0, 1.0], [5.0, 6.0]]), 8),
        (InputEncoder("thermometer", 3, [0.25, 0.5, 0.75]), 9),
        (InputEncoder("thermometer+edges", 2, [0.2, 0.4, 0.6, 0.8]), 24),
        (InputEncoder("spikes", 5), 5),
    ],
    ids=lambda v: getattr(v, "kind", v),
)
def test_record_round_trips_through_json(enc, channels):
    assert enc.n_channels == channels
    back = InputEncoder.from_dict(json.loads(json.dumps(enc.to_dict())))
    assert back.same_code(enc) and back.to_dict() == enc.to_dict()
    x = np.random.default_rng(1).normal(size=(3, 7, enc.n_features))
    if enc.kind == "spikes":
        x = (x > 0).astype(np.float64)
    s = back.encode(x)
    assert s.dtype == np.uint8 and s.shape == (3, 7, channels)
    np.testing.assert_array_equal(s, enc.encode(x))


def test_record_refuses_other_layouts_and_inconsistent_fields():
    doc = InputEncoder("level-crossing", 1, [0.0, 1.0]).to_dict()
    with pytest.raises(ValidationError, match=r"^encoder\.layout: unknown channel layout"):
        InputEncoder.from_dict({**doc, "layout": "interleaved"})
    with pytest.raises(ValidationError, match=r"^encoder\.n_channels: 5 does not match the code \(4 channels\)"):
        InputEncoder.from_dict({**doc, "n_channels": 5})
    with pytest.raises(ValidationError, match=r"^encoder\.thresholds: must be finite and ascending"):
        InputEncoder.from_dict({**doc, "thresholds": [1.0, 0.0]})
    with pytest.raises(ValidationError, match=r"^encoder\.kind: must be one of"):
        InputEncoder.from_dict({**doc, "kind": "rate", "layout": LAYOUTS["spikes"]})
    with pytest.raises(ValidationError, match=r"^encoder\.format: not an rsnn-deploy encoder record"):
        InputEncoder.from_dict({**doc, "format": None})


def test_encode_refuses_bad_raw_input_in_one_line():
    enc = InputEncoder("level-crossing", 2, [0.0, 1.0])
    with pytest.raises(ValidationError, match=r"^x: has 3 channels per step, the model's encoder takes 2"):
        enc.encode(np.zeros((1, 4, 3)))
    bad = np.zeros((2, 4, 2))
    bad[1, 2, 0] = np.inf
    with pytest.raises(ValidationError, match=r"^x: must be finite \(got inf at index \[1, 2, 0\]\)"):
        enc.encode(bad)
    with pytest.raises(ValidationError, match=r"^x: must be a numeric array \(got dtype <U1\)"):
        enc.encode(np.array([[["a", "b"]]]))
    with pytest.raises(ValidationError, match=r"0/1 spikes"):
        InputEncoder("spikes", 2).encode(np.full((1, 3, 2), 0.5))


@pytest.mark.parametrize(
    "params",
    [
        {"name": "sfmnist-row", "levels": 3},
        {"name": "sfmnist-row", "levels": 4, "encoding": "thermometer+edges"},
        {"name": "sfmnist-pixel", "n_thresholds": 7, "start": "hold"},
    ],
    ids=lambda p: "-".join(str(v) for v in p.values()),
)
def test_fashion_encoders_equal_the_tasks_lookup_tables(params, tmp_path):
    """The recorded code on raw pixel / 255 gives the spikes the task's fast lookup tables give."""
    from test_tasks import _fake_fashion

    from rsnn_deploy.tasks import load_task

    p = dict(params)
    task = load_task(p.pop("name"), data_dir=_fake_fashion(tmp_path), **p)
    images = task.test.source._raw[task.test.rows]
    raw = images / 255.0 if task.name == "sfmnist-row" else images.reshape(len(images), 784, 1) / 255.0
    np.testing.assert_array_equal(task.encoder.encode(raw), task.test.spikes())


def test_shipped_checkpoints_carry_their_encoder(tmp_path):
    """Each shipped model records its code; without the record (older files) the task params give the same one."""
    import shutil

    from rsnn_deploy.checkpoint import load_checkpoint

    shipped = sorted((ROOT / "models").glob("*.json")) + sorted((ROOT / "rsnn_deploy" / "_models").glob("*.json"))
    for json_path in shipped:
        if json.loads(json_path.read_text()).get("format") != "rsnn-deploy/checkpoint":
            continue  # a Xylo checkpoint (its own format; tests/test_xylo_model.py)
        ckpt = load_checkpoint(json_path)
        assert ckpt.meta["encoder"] == ckpt.encoder.to_dict(), json_path.name
        assert ckpt.encoder.n_channels == ckpt.model.cfg.n_in, json_path.name
        if ckpt.task["name"] == "mnist1d":
            assert ckpt.encoder.thresholds.tolist() == ckpt.task["params"]["thresholds"]
        else:
            assert ckpt.encoder.kind == ckpt.task["params"]["encoding"]
        old = tmp_path / json_path.name
        doc = json.loads(json_path.read_text())
        del doc["encoder"]
        old.write_text(json.dumps(doc))
        shutil.copy(json_path.with_suffix(".safetensors"), old.with_suffix(".safetensors"))
        assert load_checkpoint(old).encoder.to_dict() == ckpt.encoder.to_dict(), json_path.name


def test_an_edited_encoder_record_that_contradicts_the_task_is_refused(tmp_path):
    import shutil

    from rsnn_deploy.checkpoint import load_checkpoint
    from rsnn_deploy.verify import task_of

    doc = json.loads(MODEL.with_suffix(".json").read_text())
    doc["encoder"]["start"] = "hold"
    (tmp_path / "m.json").write_text(json.dumps(doc))
    shutil.copy(MODEL.with_suffix(".safetensors"), tmp_path / "m.safetensors")
    with pytest.raises(ValidationError, match=r"^encoder: the checkpoint's encoder .* the JSON was edited"):
        task_of(load_checkpoint(tmp_path / "m"))
    doc["encoder"]["n_channels"] = 65
    (tmp_path / "m.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match=r"m\.json: encoder\.n_channels: 65 does not match the code"):
        load_checkpoint(tmp_path / "m")


def test_new_checkpoints_and_qnets_record_the_encoder(tmp_path):
    from test_backends import make_tiny_checkpoint

    from rsnn_deploy.checkpoint import load_checkpoint
    from rsnn_deploy.qnet import load_qnet

    ckpt_path = make_tiny_checkpoint(tmp_path, epochs=1)
    doc = json.loads(Path(ckpt_path).read_text())
    assert doc["encoder"]["kind"] == "spikes" and doc["encoder"]["n_channels"] == doc["model"]["n_in"]
    assert main(["quantize", str(ckpt_path), "--target", "loihi1", "-o", str(tmp_path / "q")]) == 0
    qnet = load_qnet(tmp_path / "q")
    assert qnet.encoder == doc["encoder"] and qnet.input_encoder.same_code(load_checkpoint(ckpt_path).encoder)
    # a hand-edited record that no longer fits the network is one line
    qdoc = json.loads((tmp_path / "q.json").read_text())
    qdoc["encoder"]["n_features"] = qdoc["encoder"]["n_channels"] = 3
    (tmp_path / "q.json").write_text(json.dumps(qdoc))
    with pytest.raises(CheckpointError, match=r"q\.json: QuantizedNetwork\.encoder: has 3 channels, the network 8"):
        load_qnet(tmp_path / "q")


# ----------------------------------------------------------------------------- rsnn-deploy encode


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The shipped MNIST-1D model quantized, plus raw test signals (x [N, 40, 1]) as a user would have them."""
    from rsnn_deploy.tasks import _mnist1d

    d = tmp_path_factory.mktemp("encode")
    assert main(["quantize", str(MODEL), "--target", "loihi1", "-o", str(d / "q")]) == 0
    raw, _ = _mnist1d._raw(32, 42)
    np.savez(d / "raw.npz", x=raw["x_test"][:40, :, None], y=raw["y_test"][:40])
    return {"dir": d, "qnet": d / "q", "raw": d / "raw.npz"}


def test_encode_then_hil_gives_the_decisions_verify_reports(shipped, capsys):
    from rsnn_deploy.verify import task_of, verify

    d = shipped["dir"]
    assert main(["encode", str(MODEL), str(shipped["raw"]), "-o", str(d / "s.npz")]) == 0
    assert main(["encode", str(shipped["qnet"]), str(shipped["raw"]), "-o", str(d / "s_q.npz")]) == 0
    assert "64 spike channels (level-crossing, 32 thresholds" in capsys.readouterr().out
    with np.load(d / "s.npz") as a, np.load(d / "s_q.npz") as b:
        np.testing.assert_array_equal(a["x"], b["x"])  # checkpoint and qnet carry the same code
        spikes = a["x"]
    from rsnn_deploy.checkpoint import load_checkpoint

    ckpt = load_checkpoint(MODEL)
    np.testing.assert_array_equal(spikes, task_of(ckpt).test.spikes(np.arange(40)))  # what verify feeds
    assert (
        main(
            ["hil", "--model", str(shipped["qnet"]), "--stream", str(d / "s.npz"), "--quiet", "-o", str(d / "hil.json")]
        )
        == 0
    )
    hil = json.loads((d / "hil.json").read_text())
    res = verify(MODEL, "loihi1", backends=["emulator"], limit=40, qnet_path=shipped["qnet"], progress=False)
    assert hil["predictions"] == res.figure_data["traces"]["emulator"].predictions.tolist()
    assert round(hil["accuracy"] * 40) == res.report["backends"]["emulator"]["correct"]


def test_encode_refusals_are_one_line_and_write_nothing(shipped, tmp_path, capsys):
    raw = np.load(shipped["raw"])["x"]
    cases = {
        "wide.npz": (
            dict(x=np.repeat(raw, 2, axis=2)),
            r"wide\.npz\.x: has 2 channels per step, the model's encoder "
            r"takes 1 \(MNIST-1D signal value",
        ),
        "nan.npz": (
            dict(x=np.where(np.arange(40)[None, :, None] == 7, np.nan, raw)),
            r"nan\.npz\.x: must be finite \(got nan at index \[0, 7, 0\]\)",
        ),
        "text.npz": (dict(x=np.array([["a"]])), r"text\.npz\.x: must hold int or float values \(got dtype <U1\)"),
        "nox.npz": (dict(z=raw), r"nox\.npz\.x: missing key \(got keys \['z'\]\)"),
        "labels.npz": (dict(x=raw, y=np.zeros(3, dtype=np.int64)), r"labels\.npz\.y: must be integer labels \[40\]"),
    }
    for name, (arrays, pattern) in cases.items():
        np.savez(tmp_path / name, **arrays)
        assert main(["encode", str(MODEL), str(tmp_path / name), "-o", str(tmp_path / "out.npz")]) == 2, name
        one_line_error(capsys, pattern)
        assert not (tmp_path / "out.npz").exists()
    (tmp_path / "taken.npz").write_bytes(b"keep me")
    assert main(["encode", str(MODEL), str(shipped["raw"]), "-o", str(tmp_path / "taken.npz")]) == 2
    one_line_error(capsys, r"-o: .*taken\.npz exists; pass --overwrite to replace it")
    assert (tmp_path / "taken.npz").read_bytes() == b"keep me"
    before = shipped["raw"].read_bytes()
    assert main(["encode", str(MODEL), str(shipped["raw"]), "-o", str(shipped["raw"])]) == 2
    one_line_error(capsys, r"raw\.npz is an input of this command")
    assert shipped["raw"].read_bytes() == before
    assert main(["encode", str(tmp_path / "nothing"), str(shipped["raw"]), "-o", str(tmp_path / "o.npz")]) == 2
    one_line_error(capsys, r"nothing\.json: file not found")


# ----------------------------------------------------------------------------- exports


@pytest.mark.parametrize(
    "enc",
    [
        InputEncoder("level-crossing", 1, [-1.0, 0.0, 0.5, 1.0]),
        InputEncoder("level-crossing", 2, [[-1.0, 0.0], [0.25, 0.5]], start="hold"),
        InputEncoder("thermometer", 3, [0.25, 0.5, 0.75]),
        InputEncoder("thermometer+edges", 2, [0.2, 0.4, 0.6, 0.8]),
        InputEncoder("spikes", 4),
    ],
    ids=lambda e: f"{e.kind}-{e.start}",
)
def test_onnx_encoder_nodes_compute_the_recorded_code(enc):
    import onnxruntime as ort

    from rsnn_deploy.export._onnx_build import GraphBuilder, make_model, value_info
    from rsnn_deploy.export._onnx_encoder import encoder_nodes

    b = GraphBuilder()
    encoder_nodes(b, enc, "raw", "x")
    graph = b.graph(
        "enc",
        [value_info("raw", np.float64, ["B", "T", enc.n_features])],
        [value_info("x", np.float32, ["B", "T", enc.n_channels])],
    )
    sess = ort.InferenceSession(make_model(graph, {}, "").SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(3)
    x = rng.choice([-1.5, -1.0, 0.0, 0.2, 0.25, 0.4, 0.5, 0.6, 0.75, 0.8, 1.0, 2.0], size=(5, 9, enc.n_features))
    if enc.kind == "spikes":
        x = (x > 0.3).astype(np.float64)
    for raw in (x, x[:, :1]):  # thresholds hit exactly; a single step
        got = sess.run(["x"], {"raw": raw})[0]
        np.testing.assert_array_equal(got, enc.encode(raw).astype(np.float32))


def test_float_onnx_with_encoder_takes_raw_signals(shipped, capsys):
    import onnx
    import onnxruntime as ort

    from rsnn_deploy.checkpoint import load_checkpoint
    from rsnn_deploy.export._onnx_build import read_metadata
    from rsnn_deploy.verify import task_of

    d = shipped["dir"]
    assert (
        main(
            [
                "export",
                str(MODEL),
                "--format",
                "onnx",
                "--graph",
                "sequence",
                "--with-encoder",
                "-o",
                str(d / "raw.onnx"),
            ]
        )
        == 0
    )
    assert main(["export", str(MODEL), "--format", "onnx", "--graph", "sequence", "-o", str(d / "spk.onnx")]) == 0
    ckpt = load_checkpoint(MODEL)
    for name in ("raw.onnx", "spk.onnx"):
        meta = read_metadata(onnx.load(str(d / name)))
        assert json.loads(meta["encoder"]) == ckpt.encoder.to_dict(), name
    raw = np.load(shipped["raw"])["x"][:20]
    spikes = task_of(ckpt).test.spikes(np.arange(20)).astype(np.float32)

    def run(name: str, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        sess = ort.InferenceSession(str(d / name), providers=["CPUExecutionProvider"])
        return sess.run(["spikes", "logits"], feed)

    with_enc, plain = run("raw.onnx", {"raw": raw}), run("spk.onnx", {"x": spikes})
    np.testing.assert_array_equal(with_enc[0], plain[0])
    np.testing.assert_array_equal(with_enc[1], plain[1])
    capsys.readouterr()
    assert main(["export", str(MODEL), "--format", "onnx", "--with-encoder", "-o", str(d / "x.onnx")]) == 2
    one_line_error(capsys, r"--with-encoder: needs --graph sequence")
    assert (
        main(
            [
                "export",
                str(shipped["qnet"]),
                "--format",
                "onnx",
                "--graph",
                "sequence",
                "--with-encoder",
                "-o",
                str(d / "x.onnx"),
            ]
        )
        == 2
    )
    one_line_error(capsys, r"--with-encoder: only the float ONNX graph can encode raw input")
    assert not (d / "x.onnx").exists()


def test_quantized_exports_record_the_encoder(shipped):
    import onnx

    from rsnn_deploy.export import export
    from rsnn_deploy.export._onnx_build import read_metadata
    from rsnn_deploy.qnet import load_qnet

    d, qnet = shipped["dir"], load_qnet(shipped["qnet"])
    export(shipped["qnet"], "onnx", d / "q.onnx")
    assert json.loads(read_metadata(onnx.load(str(d / "q.onnx")))["encoder"]) == dict(qnet.encoder)


def test_nir_export_records_the_encoder(tmp_path):
    """NIR 1.0 has no voltage floor, so a model without one (the shipped ones have it) carries the record."""
    import nir

    from rsnn_deploy.checkpoint import save_checkpoint
    from rsnn_deploy.config import ModelConfig
    from rsnn_deploy.export import export
    from rsnn_deploy.model import RSNN

    enc = InputEncoder("level-crossing", 1, [0.0, 1.0])
    model = RSNN(ModelConfig(n_in=enc.n_channels, n_hidden=8, n_out=2, variant="rec-syn", v_floor=None))
    ckpt = save_checkpoint(model, tmp_path / "m", encoder=enc.to_dict())
    export(ckpt, "nir", tmp_path / "m.nir")
    assert json.loads(nir.read(str(tmp_path / "m.nir")).metadata["input_encoder"]) == enc.to_dict()


def test_lava_bundle_records_the_encoder():
    """The Lava bundle's network.json carries the input code too (a loihi2 network; Lava itself is not needed)."""
    import dataclasses

    from test_lava import _net

    from rsnn_deploy.export._lava import lava_network

    q = _net(11, atrlif=False, rec=True, e_in=1, e_rec=0)
    enc = InputEncoder("spikes", q.n_inputs)
    assert "input_encoder" not in lava_network(q)
    assert lava_network(dataclasses.replace(q, encoder=enc.to_dict()))["input_encoder"] == enc.to_dict()
