"""Hardware profiles: built-ins load, packaged copies match, bad files name file and key."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from rsnn_deploy.errors import ValidationError
from rsnn_deploy.hardware import BUILTIN_PROFILES, builtin_profile_path, load_profile

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", BUILTIN_PROFILES)
def test_builtin_profiles_load(name):
    p = load_profile(name)
    assert p.name == name
    assert p.sha256 == hashlib.sha256(builtin_profile_path(name).read_bytes()).hexdigest()
    assert p.decay.bits == 12 and p.decay.u_offset == 1 and p.decay.v_offset == 0
    assert p.limits.compartments_per_core == 1024
    assert p.limits.synapse_memory_bits_per_core == 2**20
    assert p.threshold.reset == "zero"


@pytest.mark.parametrize("name", BUILTIN_PROFILES)
def test_packaged_copies_are_identical(name):
    repo = (REPO / "hardware" / f"{name}.toml").read_bytes()
    packaged = (REPO / "rsnn_deploy" / "_profiles" / f"{name}.toml").read_bytes()
    assert repo == packaged, f"rsnn_deploy/_profiles/{name}.toml differs from hardware/{name}.toml; copy it over"


def test_profile_facts():
    l1, l2 = load_profile("loihi1"), load_profile("loihi2")
    assert (l1.state.q_bits, l1.state.u_bits, l1.state.v_bits) == (21, 23, 23)
    # Lava's LIF (PyLifModelBitAcc) compares strictly, as nengo-loihi; its adaptive neuron is ATRLIF
    assert l1.threshold.comparison == ">" and l2.threshold.comparison == ">"
    assert l1.features.adaptation == () and l2.features.adaptation == ("atrlif",)
    assert l2.adaptation is not None and l2.adaptation.theta0_mantissa_bits == 12
    assert l2.adaptation.step_mantissa_bits == 12 and l2.decay.r_offset == 0
    assert not l1.features.per_neuron_decays
    assert l1.timing.input_latency_steps == 1
    assert l1.voltage.vmin_choices[0] == 0 and l1.voltage.vmax_choices[-1] == 2**23 - 1
    assert l2.voltage.vmin_choices == (-(2**23 - 1),) and l2.voltage.vmax_choices == (2**23 - 1,)
    assert (l1.weight.mantissa_min, l1.weight.mantissa_max) == (-127, 127)
    assert (l2.weight.mantissa_min, l2.weight.mantissa_max) == (-128, 127)


def test_path_and_name_resolve_to_same_profile(tmp_path):
    src = builtin_profile_path("loihi2")
    dst = tmp_path / "custom.toml"
    dst.write_bytes(src.read_bytes())
    p = load_profile(dst)
    assert p.name == "loihi2" and p.sha256 == load_profile("loihi2").sha256
    assert load_profile(str(dst)).sha256 == p.sha256


def _edit(tmp_path, old, new, name="bad.toml"):
    text = builtin_profile_path("loihi1").read_text()
    assert old in text
    path = tmp_path / name
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        ("q_bits = 21", "q_bits = 0", r"bad\.toml: state\.q_bits: .*greater than or equal to 1 \(got 0\)"),
        ("mantissa_bits = 17", "mantissa_bits = 17\ncolour = 3", r"bad\.toml: threshold\.colour: Extra inputs"),
        ('comparison = ">"', 'comparison = ">="', r"bad\.toml: threshold\.comparison: must be '>'"),
        ("input_latency_steps = 1", "", r"bad\.toml: timing\.input_latency_steps: Field required"),
        ('reset = "zero"', 'reset = "subtract"', r"bad\.toml: threshold\.reset: Input should be 'zero'"),
        ("exponent_min = -6", "exponent_min = 3", r"bad\.toml: weight\.exponent_min: must not exceed .* \(got 3 > 0\)"),
        ("granularity = 64", "granularity = 48", r"bad\.toml: weight\.granularity: must be a power of two \(got 48\)"),
        ("voltage_floor = true", "voltage_floor = false", r"bad\.toml: features\.voltage_floor: must be true exactly"),
    ],
)
def test_invalid_profiles_name_file_and_key(tmp_path, old, new, match):
    with pytest.raises(ValidationError, match=match):
        load_profile(_edit(tmp_path, old, new))


def test_not_toml_and_missing_and_unknown(tmp_path):
    bad = tmp_path / "broken.toml"
    bad.write_text("name = [unclosed")
    with pytest.raises(ValidationError, match=r"broken\.toml: not a valid TOML file"):
        load_profile(bad)
    with pytest.raises(ValidationError, match=r"nothere\.toml: hardware profile file not found"):
        load_profile(tmp_path / "nothere.toml")
    with pytest.raises(ValidationError, match=r"HardwareProfile\.name: unknown profile \(got 'loihi3'\)"):
        load_profile("loihi3")
    with pytest.raises(ValidationError, match=r"sha256: reserved key"):
        load_profile(_edit(tmp_path, 'name = "loihi1"', 'name = "loihi1"\nsha256 = "x"'))


def test_profile_is_frozen():
    p = load_profile("loihi1")
    with pytest.raises(Exception, match="frozen"):
        p.name = "other"  # type: ignore[misc]


def test_packaged_search_space_matches_the_documented_one():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    assert (root / "configs" / "search_space.toml").read_bytes() == (
        root / "rsnn_deploy" / "_configs" / "search_space.toml").read_bytes()
