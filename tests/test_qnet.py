"""QuantizedNetwork: validation, representable integers, save/load, placement and target checks."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest
from safetensors.numpy import save as st_save

from rsnn_deploy.errors import CheckpointError, UnsupportedError, ValidationError
from rsnn_deploy.hardware import load_profile
from rsnn_deploy.qnet import (
    QuantizedNetwork,
    check_representable,
    load_qnet,
    placement,
    qnet_paths,
    save_qnet,
    validate_for,
    weight_exponent,
)


def make_qnet(profile_name="loihi1", h=12, c=7, k=3, seed=0, rec=True, blocks=None, **over):
    """A small random network whose integers lie in ``profile_name``'s formats."""
    prof = load_profile(profile_name)
    rng = np.random.default_rng(seed)
    adapt = profile_name == "loihi2"
    fields = dict(
        w_in=rng.integers(-127, 128, (h, c)) * 128,
        w_rec=rng.integers(-127, 128, (h, h)) * 64 if rec else None,
        bias=rng.integers(-4095, 4096, h) * 4,
        decay_u=np.full(h, 741),
        decay_v=np.full(h, 200),
        vth=rng.integers(1, 2000, h) * 64,
        refractory=np.full(h, 1 if adapt else 3),
        vmin=prof.voltage.vmin_choices[0],
        vmax=prof.voltage.vmax_choices[-1],
        w_out=rng.standard_normal((k, h)).astype(np.float32),
        b_out=rng.standard_normal(k).astype(np.float32),
        readout_decay=0.9,
        readout_mode="mean",
        profile=prof.name,
        profile_sha256=prof.sha256,
        input_latency=prof.timing.input_latency_steps,
        decay_theta=np.full(h, 30) if adapt else None,
        theta_step=rng.integers(0, 4096, h) * 64 if adapt else None,
        decay_r=np.full(h, 40) if adapt else None,  # loihi2's adaptive neuron is Lava's ATRLIF
        block_sizes=blocks or (h,),
        float_scale=tuple(1000.0 + j for j in range(len(blocks or (h,)))),
        source="unit-test",
    )
    fields.update(over)
    return QuantizedNetwork(**fields)


@pytest.mark.parametrize("profile", ["loihi1", "loihi2"])
def test_round_trip_is_exact(tmp_path, profile):
    q = make_qnet(profile)
    check_representable(q, load_profile(profile))
    json_path = save_qnet(q, tmp_path / "net", metrics={"acc": 0.5})
    assert json_path == tmp_path / "net.json" and (tmp_path / "net.safetensors").is_file()
    for arg in (tmp_path / "net", json_path, tmp_path / "net.safetensors", str(tmp_path / "net")):
        r = load_qnet(arg)
        for f in dataclasses.fields(QuantizedNetwork):
            a, b = getattr(q, f.name), getattr(r, f.name)
            if isinstance(a, np.ndarray):
                assert a.dtype == b.dtype and np.array_equal(a, b), f.name
            else:
                assert a == b, f.name
    doc = json.loads(json_path.read_text())
    assert doc["profile_sha256"] == load_profile(profile).sha256 and doc["meta"] == {"metrics": {"acc": 0.5}}
    assert not list(tmp_path.glob(".*tmp")), "temporary files left behind"


def test_no_recurrence_round_trip(tmp_path):
    q = make_qnet(rec=False)
    assert load_qnet(save_qnet(q, tmp_path / "ff")).w_rec is None


def test_arrays_are_read_only_and_instance_frozen():
    q = make_qnet()
    with pytest.raises(ValueError, match="read-only"):
        q.w_in[0, 0] = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        q.vmin = -1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("over", "match"),
    [
        ({"w_rec": np.zeros((3, 3), dtype=np.int64)}, r"QuantizedNetwork\.w_rec: must be \[12, 12\]"),
        ({"bias": np.zeros(5, dtype=np.int64)}, r"QuantizedNetwork\.bias: must have shape \[12\]"),
        ({"vth": np.zeros(12, dtype=np.float32)}, r"QuantizedNetwork\.vth: must be an integer array"),
        ({"vth": np.zeros(12, dtype=np.int64)}, r"QuantizedNetwork\.vth: must be positive"),
        ({"decay_u": np.full(12, -1)}, r"QuantizedNetwork\.decay_u: must be >= 0"),
        ({"readout_mode": "max"}, r"QuantizedNetwork\.readout_mode: must be 'mean' or 'last'"),
        ({"readout_decay": 1.0}, r"QuantizedNetwork\.readout_decay: must lie in \[0, 1\)"),
        ({"block_sizes": (5, 5)}, r"QuantizedNetwork\.block_sizes: must be positive and sum to 12"),
        ({"w_out": np.full((3, 12), np.nan)}, r"QuantizedNetwork\.w_out: must be finite"),
        ({"decay_theta": np.zeros(12, dtype=np.int64)}, r"decay_theta and theta_step must be given together"),
    ],
)
def test_constructor_names_the_field(over, match):
    with pytest.raises(ValidationError, match=match):
        make_qnet(**over)


def test_weight_exponent_loihi1():
    fmt = load_profile("loihi1").weight
    assert weight_exponent(np.array([128, -16256]), fmt) == 0
    assert weight_exponent(np.array([64, -127 * 64]), fmt) == -1
    assert weight_exponent(np.array([64, 16256]), fmt) is None  # needs exponent -1 and 0 at once
    assert weight_exponent(np.array([96]), fmt) is None  # not a multiple of 64
    assert weight_exponent(np.array([128 * 128]), fmt) is None  # mantissa 128 > 127
    assert weight_exponent(np.zeros(3, dtype=np.int64), fmt) == fmt.exponent_min
    l2 = load_profile("loihi2").weight
    assert weight_exponent(np.array([-128 * 128]), l2) == 0  # loihi2 mantissa reaches -128
    assert weight_exponent(np.array([127 << 14]), l2) == 7


@pytest.mark.parametrize(
    ("over", "match"),
    [
        ({"decay_v": np.full(12, 4096)}, r"decay_v: must lie in \[0, 4095\]"),
        ({"w_in": np.full((12, 7), 65)}, r"w_in: not representable on loihi1 \(block 0\) \(got 65\)"),
        ({"bias": np.full(12, 4097)}, r"bias: not representable on loihi1 \(got 4097\)"),
        ({"vth": np.full(12, 100)}, r"vth: not representable on loihi1 \(got 100\)"),
        ({"vmin": -2}, r"vmin: not a floor loihi1 can set \(got -2\)"),
        ({"vmax": 1000}, r"vmax: not a ceiling loihi1 can set \(got 1000\)"),
        ({"refractory": np.full(12, 64)}, r"refractory: must lie in \[0, 63\] \(got 64\)"),
        ({"input_latency": 2}, r"input_latency: loihi1 delivers host input after 1 steps \(got 2\)"),
    ],
)
def test_check_representable_names_field_and_value(over, match):
    with pytest.raises(ValidationError, match=match):
        check_representable(make_qnet(**over), load_profile("loihi1"))


def _rewrite(tmp_path, tensors, doc_edit=None):
    """Write a tensor file plus a JSON whose hash matches it (to reach the checks after the hash)."""
    st, js = qnet_paths(tmp_path / "net")
    blob = st_save(tensors)
    st.write_bytes(blob)
    doc = json.loads(js.read_text())
    doc["tensors_sha256"] = hashlib.sha256(blob).hexdigest()
    if doc_edit:
        doc_edit(doc)
    js.write_text(json.dumps(doc))
    return js


def _saved(tmp_path, **over):
    q = make_qnet(**over)
    save_qnet(q, tmp_path / "net")
    from rsnn_deploy.qnet._files import _tensors_of

    return q, _tensors_of(q)


def test_truncated_or_foreign_tensor_file(tmp_path):
    _saved(tmp_path)
    st = tmp_path / "net.safetensors"
    st.write_bytes(st.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"net\.safetensors: tensors_sha256: tensor file does not match"):
        load_qnet(tmp_path / "net")


def test_mismatched_pair(tmp_path):
    save_qnet(make_qnet(seed=1), tmp_path / "a")
    save_qnet(make_qnet(seed=2), tmp_path / "b")
    (tmp_path / "a.safetensors").write_bytes((tmp_path / "b.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match=r"a\.safetensors: tensors_sha256"):
        load_qnet(tmp_path / "a.json")


def test_missing_files(tmp_path):
    with pytest.raises(CheckpointError, match=r"nothing\.json: file not found"):
        load_qnet(tmp_path / "nothing")
    _saved(tmp_path)
    (tmp_path / "net.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"net\.safetensors: file not found"):
        load_qnet(tmp_path / "net")


def test_bad_json(tmp_path):
    _saved(tmp_path)
    js = tmp_path / "net.json"
    js.write_text("{not json")
    with pytest.raises(CheckpointError, match=r"net\.json: not valid JSON"):
        load_qnet(js)
    js.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(CheckpointError, match=r"net\.json: format: not an rsnn-deploy quantized network"):
        load_qnet(js)
    js.write_text(json.dumps({"format": "rsnn-deploy/qnet", "format_version": 99}))
    with pytest.raises(CheckpointError, match=r"net\.json: format_version: unsupported \(got 99\)"):
        load_qnet(js)
    js.write_text(json.dumps({"format": "rsnn-deploy/qnet", "format_version": 1}))
    with pytest.raises(CheckpointError, match=r"net\.json: vmin: missing"):
        load_qnet(js)


def test_tensor_content_errors_name_file_and_field(tmp_path):
    _, tensors = _saved(tmp_path)
    cases = [
        ({**tensors, "decay_u": np.full(12, 5000, dtype=np.int32)}, r"net\.safetensors: .*decay_u: must lie in \[0, 4"),
        ({**tensors, "w_in": tensors["w_in"].astype(np.float32)}, r"net\.safetensors: w_in: dtype must be int32"),
        ({**tensors, "w_in": tensors["w_in"][:, :3].copy()}, r"net\.safetensors: w_in: shape \[12, 3\] does not match"),
        ({k: v for k, v in tensors.items() if k != "vth"}, r"net\.safetensors: vth: tensor missing"),
        ({**tensors, "extra": np.zeros(2, dtype=np.int32)}, r"net\.safetensors: extra: unexpected tensor"),
        ({**tensors, "w_rec": tensors["w_rec"] + 1}, r"net\.safetensors: .*w_rec: not representable on loihi1"),
    ]
    for bad, match in cases:
        _rewrite(tmp_path, bad)
        with pytest.raises(CheckpointError, match=match):
            load_qnet(tmp_path / "net")


def test_profile_changed_since_quantization(tmp_path):
    _, tensors = _saved(tmp_path)

    def edit(doc):
        doc["profile_sha256"] = "0" * 64

    _rewrite(tmp_path, tensors, edit)
    with pytest.raises(CheckpointError, match=r"net\.json: profile_sha256: profile 'loihi1' changed since"):
        load_qnet(tmp_path / "net")

    def edit2(doc):
        doc["profile"] = "loihi7"

    _rewrite(tmp_path, tensors, edit2)
    with pytest.raises(CheckpointError, match=r"net\.json: profile: cannot load 'loihi7'"):
        load_qnet(tmp_path / "net")


def test_placement_counts():
    prof = load_profile("loihi1")
    q = make_qnet(h=12, c=7, blocks=(5, 7))
    pl = placement(q, prof)
    assert pl.n_cores == 2
    assert [c.compartments for c in pl.cores] == [5, 7]
    assert [c.input_axons for c in pl.cores] == [7 + 12, 7 + 12]
    assert [c.output_axons for c in pl.cores] == [10, 14]
    # per axon: n weights of 8 bits plus a 10-bit header, rounded up to 64-bit words (5 -> 1, 7 -> 2 words)
    assert [c.synapse_bits for c in pl.cores] == [19 * 64, 19 * 128]


def test_validate_for_refuses_what_the_target_cannot_run():
    l1, l2 = load_profile("loihi1"), load_profile("loihi2")
    validate_for(make_qnet(), l1)
    validate_for(make_qnet("loihi2"), l2)
    with pytest.raises(UnsupportedError, match=r"quantized for 'loihi1', not 'loihi2'"):
        validate_for(make_qnet(), l2)
    adaptive = make_qnet(decay_theta=np.full(12, 5), theta_step=np.full(12, 64))
    with pytest.raises(UnsupportedError, match=r"theta_step: loihi1 has no adaptation"):
        validate_for(adaptive, l1)
    # loihi2 runs Lava's ATRLIF (decay_r set), not a reset-to-zero threshold adaptation
    with pytest.raises(UnsupportedError, match=r"theta_step: loihi2 has no 'threshold' adaptation"):
        validate_for(make_qnet("loihi2", decay_r=None), l2)
    validate_for(make_qnet("loihi2", decay_theta=np.full(12, 5), theta_step=np.full(12, 64),
                           decay_r=np.full(12, 9)), l2)
    with pytest.raises(UnsupportedError, match=r"refractory: loihi2 has no refractory period"):
        validate_for(make_qnet("loihi2", refractory=np.full(12, 3)), l2)
    with pytest.raises(UnsupportedError, match=r"decay_v: loihi1 has one decay per block, block 1 has 2"):
        validate_for(make_qnet(blocks=(6, 6), decay_v=np.r_[np.full(6, 10), np.full(5, 20), 30]), l1)
    with pytest.raises(UnsupportedError, match=r"block 0 needs 1100 compartments, loihi1 max 1024 per core"):
        validate_for(make_qnet(h=1100, c=2, rec=False), l1)
    with pytest.raises(UnsupportedError, match=r"block 0 needs 5000 input axons, loihi1 max 4096"):
        validate_for(make_qnet(h=2, c=5000, rec=False), l1)
    with pytest.raises(UnsupportedError, match=r"synapse bits, loihi1 max 1048576"):
        validate_for(make_qnet(h=1000, c=2000, rec=False), l1)


@pytest.mark.nengo_loihi
@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")
def test_placement_matches_nengo_loihi_utilization():
    import nengo
    import nengo_loihi

    from rsnn_deploy.backends.nengo.readback import add_spike_input, qnet_from_nengo_loihi

    rng = np.random.default_rng(3)
    c, h = 70, 150
    with nengo.Network(seed=3) as net:
        nengo_loihi.add_params(net)
        inp = add_spike_input(net, np.zeros((2, c)))
        hid = nengo.Ensemble(h, 1, neuron_type=nengo.LIF(tau_ref=0.0), gain=np.ones(h), bias=np.zeros(h))
        nengo.Connection(inp.neurons, hid.neurons, transform=rng.standard_normal((h, c)), synapse=0.005)
        nengo.Connection(hid.neurons, hid.neurons, transform=rng.standard_normal((h, h)), synapse=0.005)
    with nengo_loihi.Simulator(net, target="sim", progress_bar=False) as sim:
        q = qnet_from_nengo_loihi(sim, hid, inp)
        (block,) = sim.model.objs[hid]["out"]
        util = block.utilization()
    (core,) = placement(q, load_profile("loihi1")).cores
    assert core.compartments == util["compartments"][0]
    assert core.input_axons == util["in-axons"][0]
    assert core.output_axons == util["out-axons"][0]
    assert core.synapse_bits == util["synapses"][0]


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("readout_mode", "max", r"net\.json: QuantizedNetwork\.readout_mode: must be 'mean' or 'last'"),
        ("readout_decay", "slow", r"net\.json: could not convert string to float"),
        ("block_sizes", [5, 5], r"net\.json: QuantizedNetwork\.block_sizes: must be positive and sum to 12"),
        ("vmin", 1.5, r"net\.json: vmin: must be an integer \(got 1\.5\)"),
    ],
)
def test_bad_scalars_in_json(tmp_path, key, value, match):
    _, tensors = _saved(tmp_path)

    def edit(doc):
        doc[key] = value

    _rewrite(tmp_path, tensors, edit)
    with pytest.raises(CheckpointError, match=match):
        load_qnet(tmp_path / "net")
