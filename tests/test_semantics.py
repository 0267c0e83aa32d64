"""The semantics registry: one object per integer semantics, found by the profile, refusing what it cannot honour."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from rsnn_deploy import emulator, semantics
from rsnn_deploy.errors import ValidationError
from rsnn_deploy.hardware import builtin_profile_path, load_profile
from rsnn_deploy.qnet import QuantizedNetwork

PACKAGE = Path(__file__).resolve().parent.parent / "rsnn_deploy"


def _copy(tmp_path, base: str, edits: list[tuple[str, str]]) -> Path:
    text = builtin_profile_path(base).read_text()
    for old, new in edits:
        text, n = re.subn(old, new, text, count=1, flags=re.M)
        assert n == 1, old
    path = tmp_path / "bad.toml"
    path.write_text(text.replace(f'name = "{base}"', 'name = "bad"'))
    return path


def test_each_builtin_profile_finds_its_semantics():
    l1, l2 = semantics.for_profile(load_profile("loihi1")), semantics.for_profile(load_profile("loihi2"))
    assert (l1.key, l2.key) == ("nengo-loihi-1.1", "lava-lif-atrlif")
    assert l1.step is emulator.loihi1_step and l2.step is emulator.loihi2_step  # one step, defined once
    assert (l1.native, l2.native) == (True, True)  # each has a C loop (emulator_kernels.c)
    assert set(semantics.known()) >= {l1.key, l2.key}
    with pytest.raises(KeyError, match=r"unknown integer semantics \(got 'nope'\)"):
        semantics.get("nope")


@pytest.mark.parametrize("name", ["loihi1", "loihi2"])
def test_overflow_names_are_the_traces_keys(name):
    prof = load_profile(name)
    rng = np.random.default_rng(0)
    h, c = 4, 3
    qnet = QuantizedNetwork(
        w_in=rng.integers(-3, 4, (h, c)) * 128,
        w_rec=None,
        bias=np.zeros(h, dtype=np.int64),
        decay_u=np.full(h, 400),
        decay_v=np.full(h, 200),
        vth=np.full(h, 64 * 10),
        refractory=np.ones(h, np.int64),
        vmin=prof.voltage.vmin_choices[0],
        vmax=prof.voltage.vmax_choices[-1],
        w_out=rng.standard_normal((2, h)),
        b_out=np.zeros(2),
        readout_decay=0.5,
        readout_mode="mean",
        profile=prof.name,
        profile_sha256=prof.sha256,
        input_latency=prof.timing.input_latency_steps,
    )
    tr = emulator.run(qnet, rng.random((2, 5, c)) < 0.5)
    assert tuple(tr.overflow) == semantics.for_profile(prof).overflow_names


@pytest.mark.parametrize(
    ("base", "edits", "match"),
    [
        (
            "loihi1",
            [(r'^semantics = ".*"$', 'semantics = "loihi-9"')],
            r"bad\.toml: semantics: unknown integer semantics \(got 'loihi-9'\); use one of nengo-loihi-1\.1",
        ),
        (
            "loihi1",
            [(r'^q_overflow = "wrap"$', 'q_overflow = "none"')],
            r"bad\.toml: state\.q_overflow: must be 'wrap' for semantics 'nengo-loihi-1\.1' \(got 'none'\)",
        ),
        (
            "loihi2",
            [(r'^q_overflow = "none"$', 'q_overflow = "wrap"')],
            r"bad\.toml: state\.q_overflow: must be 'none' for semantics 'lava-lif-atrlif'",
        ),
        (
            "loihi2",
            [(r'^adaptation = \["atrlif"\]$', 'adaptation = ["threshold"]')],
            r"bad\.toml: features\.adaptation: 'threshold' is not in the step for semantics 'lava-lif-atrlif'",
        ),
        (
            "loihi2",
            [(r"^refractory = false$", "refractory = true"), (r"^max_steps = 1$", "max_steps = 4")],
            r"bad\.toml: features\.refractory: must be false for semantics 'lava-lif-atrlif'",
        ),
        (
            "loihi2",
            [
                (r"^voltage_floor = false$", "voltage_floor = true"),
                (r"^floor_exponent_min = 23$", "floor_exponent_min = 10"),
            ],
            r"bad\.toml: features\.voltage_floor: must be false for semantics 'lava-lif-atrlif'",
        ),
    ],
)
def test_fields_the_semantics_cannot_honour_are_refused_at_load(tmp_path, base, edits, match):
    with pytest.raises(ValidationError, match=match):
        load_profile(_copy(tmp_path, base, edits))


def test_no_module_compares_the_semantics_string():
    """Consumers ask the registry object; the keys are spelled only in the semantics modules."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "semantics":
            continue
        text = path.read_text()
        for pattern in (r"semantics\s*[!=]=", r'"nengo-loihi-1\.1"', r'"lava-lif-atrlif"'):
            offenders += [f"{path.relative_to(PACKAGE)}: {m.group(0)}" for m in re.finditer(pattern, text)]
    assert not offenders, offenders


@pytest.mark.parametrize(
    ("values", "dtype", "want"),
    [
        ([0, 1, 1], np.int64, True),
        ([0, 2], np.uint8, False),
        ([-1, 0], np.int8, False),
        ([0.0, 1.0], np.float32, True),
        ([0.5, 1.0], np.float64, False),
        ([0.0, np.nan], np.float64, False),
        ([True, False], np.bool_, True),
        ([], np.float64, True),
    ],
)
def test_one_input_rule(values, dtype, want):
    """``trace.is_binary`` is the 0/1 rule of the emulator, backends, ONNX runner, hil and the input code."""
    from rsnn_deploy.trace import is_binary

    x = np.asarray(values, dtype=dtype)
    assert is_binary(x) is want
    assert is_binary(x) == bool(np.isin(x, (0, 1)).all())  # the definition, without the sort
