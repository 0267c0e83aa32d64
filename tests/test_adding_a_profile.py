"""docs/adding_a_profile.md's worked example runs as written: a toy semantics, its profile, the emulator on it."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from rsnn_deploy import semantics
from rsnn_deploy.errors import UnsupportedError, ValidationError

DOC = Path(__file__).resolve().parent.parent / "docs" / "adding_a_profile.md"


def _example() -> str:
    text = DOC.read_text()
    part = text[text.index("### Worked example"):]
    return re.search(r"```python\n(.*?)```", part, flags=re.S).group(1)


@pytest.fixture
def toy():
    """The namespace the documented example leaves behind; the toy semantics is unregistered afterwards."""
    ns: dict[str, object] = {}
    try:
        exec(compile(_example(), str(DOC), "exec"), ns)  # the doc's own code, asserts included
        yield ns
    finally:
        semantics.unregister("toy-if")


def test_documented_example_runs(toy):
    assert "toy-if" in semantics.known()
    assert toy["trace"].spikes.shape == (3, 30, 6)


def test_a_toy_profile_is_refused_where_it_asks_too_much_or_has_no_implementation(toy, tmp_path):
    from rsnn_deploy.export import export_int_onnx
    from rsnn_deploy.hardware import load_profile

    bad = tmp_path / "toy-syn.toml"
    bad.write_text(toy["path"].read_text().replace("synapse = false", "synapse = true"))
    with pytest.raises(ValidationError, match=r"toy-syn\.toml: features\.synapse: must be false for semantics 'toy"):
        load_profile(bad)
    with pytest.raises(UnsupportedError, match=r"no integer graph for semantics 'toy-if'"):
        export_int_onnx(toy["qnet"], profile=toy["prof"])


def test_the_nengo_neuron_type_runs_the_toy_step(toy):
    pytest.importorskip("nengo", reason="nengo is not installed")
    from rsnn_deploy.backends.nengo import run_nengo_core

    x = toy["x"][:1, :12]
    emu = toy["run"](toy["qnet"], x, profile=toy["prof"])
    got = run_nengo_core(toy["qnet"], x, profile=toy["prof"])
    assert np.array_equal(got.spikes, emu.spikes)


def test_the_hil_emulator_stepper_runs_the_toy_step(toy):
    from rsnn_deploy import hardware
    from rsnn_deploy.hil import EmulatorStepper

    hardware.register_profile(toy["path"])  # the network names its profile "toy"; --profile PATH does this
    try:
        qnet, x, trace = toy["qnet"], toy["x"], toy["trace"]
        lat, t_steps = qnet.input_latency, x.shape[1]
        stepper = EmulatorStepper(qnet, batch=x.shape[0])
        frames = [x[:, k] for k in range(t_steps)] + [np.zeros_like(x[:, 0])] * lat
        chip = np.stack([stepper.step(f) for f in frames], axis=1)  # chip step n integrates frame n - lat
        assert np.array_equal(chip[:, lat:], trace.spikes)
    finally:
        hardware._REGISTERED.pop("toy", None)
