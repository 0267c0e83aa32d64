"""Checkpoint round trip, and corrupt / truncated / mismatched files as one-line errors."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from rsnn_deploy.checkpoint import checkpoint_paths, load_checkpoint, save_checkpoint
from rsnn_deploy.cli import main
from rsnn_deploy.config import ModelConfig
from rsnn_deploy.errors import CheckpointError
from rsnn_deploy.model import RSNN


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    m = RSNN(ModelConfig(n_in=6, n_hidden=8, n_out=3, variant="rec-syn-adapt", train_tau=True, per_neuron_tau=True))
    path = save_checkpoint(m, tmp_path / "net", task={"name": "npz", "params": {}}, metrics={"val_acc": 0.5})
    return m, path


def test_round_trip_is_exact(saved):
    m, path = saved
    ck = load_checkpoint(path)
    assert ck.model.cfg == m.cfg
    for (k, a), (_, b) in zip(m.state_dict().items(), ck.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    assert ck.metrics["val_acc"] == 0.5
    assert "torch" in ck.meta["versions"]
    # loading by stem and by either file name gives the same
    st, js = checkpoint_paths(path)
    assert load_checkpoint(st).path == load_checkpoint(js.with_suffix("")).path == js


def test_writes_no_pickle(saved):
    _, path = saved
    st, js = checkpoint_paths(path)
    assert st.read_bytes()[8:9] == b"{"  # safetensors: 8-byte header length, then a JSON header
    json.loads(js.read_text())


def _expect(path, match):
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)
    assert str(path.with_suffix("").name) in str(info.value)


def test_truncated_tensor_file(saved):
    _, path = saved
    st, _ = checkpoint_paths(path)
    data = st.read_bytes()
    st.write_bytes(data[: len(data) // 2])
    _expect(path, "not a valid safetensors file|tensors_sha256: tensor file does not match")


def test_garbage_json(saved):
    _, path = saved
    path.write_text("{not json")
    _expect(path, "not valid JSON")


def test_missing_tensor_file(saved):
    _, path = saved
    checkpoint_paths(path)[0].unlink()
    _expect(path, "file not found")


def test_config_out_of_range(saved):
    _, path = saved
    doc = json.loads(path.read_text())
    doc["model"]["tau_mem_ms"] = -3
    path.write_text(json.dumps(doc))
    _expect(path, r"model\.tau_mem_ms")


def test_unknown_config_key(saved):
    _, path = saved
    doc = json.loads(path.read_text())
    doc["model"]["tau_mme_ms"] = 3
    path.write_text(json.dumps(doc))
    _expect(path, "tau_mme_ms")


def test_shape_mismatch(saved):
    _m, path = saved
    doc = json.loads(path.read_text())
    doc["model"]["n_hidden"] = 9
    path.write_text(json.dumps(doc))
    _expect(path, "shape")


@pytest.mark.parametrize("mutate,match", [
    (lambda t: t.pop("w_rec"), "'w_rec' is missing"),
    (lambda t: t.update(extra=torch.zeros(2)), "unexpected tensor 'extra'"),
    (lambda t: t.update(w_in=t["w_in"].double()), "dtype"),
    (lambda t: t["w_in"].__setitem__((0, 0), float("nan")), "non-finite"),
    (lambda t: t["tau_mem"].fill_(-1.0), "must be positive"),
])
def test_bad_tensors(saved, mutate, match):
    m, path = saved
    tensors = {k: v.clone() for k, v in m.state_dict().items()}
    mutate(tensors)
    save_file(tensors, str(checkpoint_paths(path)[0]))
    _expect(path, "tensors_sha256: tensor file does not match")  # the JSON is tied to its tensors
    doc = json.loads(path.read_text())
    del doc["tensors_sha256"]  # a checkpoint from before the hash: the tensors are still validated one by one
    path.write_text(json.dumps(doc))
    _expect(path, match)


def test_same_shape_tensors_of_another_model_are_refused(saved, tmp_path):
    m, path = saved
    other = RSNN(m.cfg)  # same config, another initialisation: every name, shape and dtype matches
    other_path = save_checkpoint(other, tmp_path / "other", task={"name": "x"})
    checkpoint_paths(path)[0].write_bytes(checkpoint_paths(other_path)[0].read_bytes())
    _expect(path, "tensors_sha256: tensor file does not match")


def test_checkpoint_without_hash_loads_and_gets_one_on_next_save(saved, tmp_path):
    _, path = saved
    doc = json.loads(path.read_text())
    del doc["tensors_sha256"]
    path.write_text(json.dumps(doc))
    ck = load_checkpoint(path)
    again = save_checkpoint(ck.model, tmp_path / "again", **{k: ck.meta[k] for k in ("task",)})
    assert len(json.loads(again.read_text())["tensors_sha256"]) == 64


def test_files_are_world_readable_like_other_artifacts(saved):
    import os
    import stat

    _, path = saved
    st, js = checkpoint_paths(path)
    mask = os.umask(0)
    os.umask(mask)
    for p in (st, js):
        assert stat.S_IMODE(p.stat().st_mode) == 0o644 & ~mask, p


def test_wrong_format(saved):
    _, path = saved
    doc = json.loads(path.read_text())
    doc["format_version"] = 99
    path.write_text(json.dumps(doc))
    _expect(path, "format_version")


def test_cli_reports_one_line_and_exit_2(saved, capsys):
    _, path = saved
    path.write_text("[]")
    code = main(["evaluate", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "net.json" in err and "Traceback" not in err


@pytest.mark.parametrize("per_neuron", [False, True])
def test_learned_time_constants_recorded(tmp_path, per_neuron):
    """The JSON's model section keeps the initial taus; the trained ones are written beside it."""
    cfg = ModelConfig(n_in=5, n_hidden=4, n_out=3, variant="rec-syn", train_tau=True, per_neuron_tau=per_neuron)
    model = RSNN(cfg)
    with torch.no_grad():
        model.tau_mem.fill_(3.5)
        model.tau_syn.mul_(torch.linspace(1.0, 2.0, model.tau_syn.numel()) if per_neuron else 1.5)
    doc = json.loads(save_checkpoint(model, tmp_path / "m").read_text())
    learned = doc["learned_time_constants_ms"]
    assert doc["model"]["tau_mem_ms"] == cfg.tau_mem_ms
    if per_neuron:
        assert learned["tau_mem"] == {"min": 3.5, "mean": 3.5, "max": 3.5}
        assert learned["tau_syn"]["min"] == pytest.approx(cfg.tau_syn_ms)
        assert learned["tau_syn"]["max"] == pytest.approx(2 * cfg.tau_syn_ms)
    else:
        assert learned == {"tau_mem": 3.5, "tau_syn": pytest.approx(1.5 * cfg.tau_syn_ms)}
    torch.testing.assert_close(load_checkpoint(tmp_path / "m").model.tau_mem, model.tau_mem)
    fixed = json.loads(save_checkpoint(RSNN(ModelConfig(n_in=5, n_hidden=4, n_out=3)), tmp_path / "f").read_text())
    assert "learned_time_constants_ms" not in fixed
