"""The parity verifier end to end on a tiny trained model, its statistics and its report files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_backends import make_tiny_checkpoint

from rsnn_deploy.errors import UnsupportedError
from rsnn_deploy.report import FIGURES, write_report
from rsnn_deploy.trace import Trace
from rsnn_deploy.verify import (
    GapExceededError,
    agreement,
    check_fail_over,
    emulated_accuracy,
    evaluation_split,
    verify,
    wilson_interval,
)

pytestmark = pytest.mark.filterwarnings(
    "ignore:invalid value encountered in cast:RuntimeWarning",
    "ignore:This version of `nengo_loihi`:UserWarning",
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def tiny_adaptive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny2"), "rec-syn-adapt", "loihi2", epochs=2)


def test_wilson_interval():
    lo, hi = wilson_interval(90, 100)
    assert lo == pytest.approx(0.8256, abs=1e-4) and hi == pytest.approx(0.9448, abs=1e-4)
    lo, hi = wilson_interval(10, 10)
    assert hi == pytest.approx(1.0) and lo == pytest.approx(0.7225, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


@pytest.mark.nengo_loihi
def test_verify_writes_the_report(tiny, tmp_path):
    res = verify(tiny, slow_limit=8, progress=False)
    rep = res.report
    assert set(rep["backends"]) == {"torch-float", "torch-fakequant", "emulator", "nengo", "nengo-loihi"}
    for r in rep["backends"].values():
        assert {"accuracy", "correct", "samples", "ci95", "wall_s", "mean_rate", "overflow"} <= set(r)
        assert r["ci95"][0] <= r["accuracy"] <= r["ci95"][1]
    assert rep["backends"]["nengo-loihi"]["samples"] == 8 and rep["backends"]["emulator"]["samples"] == 32
    assert [(g["from"], g["to"]) for g in rep["gaps"]][:3] == [
        ("torch-float", "torch-fakequant"), ("torch-fakequant", "emulator"), ("emulator", "nengo-loihi")]
    for key in ("emulator_vs_nengo", "emulator_vs_nengo-loihi"):
        a = rep["agreement"][key]
        assert a["spike_agreement"] == 1.0 and a["first_divergence"] is None and not a["bug"]
    fv = rep["float_vs_emulator"]
    assert {"first_divergent_step", "spike_agreement", "rate_correlation", "membrane_rmse_float_units"} <= set(fv)
    assert fv["membrane_rmse_float_units"]["before_first_divergence"] < 0.2
    assert rep["quantization"]["time_constants"][0]["name"] == "tau_mem"
    assert rep["resources"]["cores"] == 1 and rep["wall_time_s"]["total"] > 0
    assert rep["headline_gap_pp"] == next(g["gap_pp"] for g in rep["gaps"]
                                          if (g["from"], g["to"]) == ("torch-float", "emulator"))

    write_report(res, tmp_path)
    loaded = json.loads((tmp_path / "report.json").read_text())
    assert loaded["format"] == "rsnn-deploy/parity-report" and loaded["figures"] == list(FIGURES)
    for name in FIGURES:
        assert (tmp_path / name).stat().st_size > 1000
    md = (tmp_path / "report.md").read_text()
    for heading in ("## Accuracy by backend", "## Gaps", "## Integer backends vs the emulator",
                    "## Float model vs emulator", "## Quantization", "## Resources", "## Wall time"):
        assert heading in md


def test_fail_over(tiny):
    res = verify(tiny, backends=["torch-float", "emulator"], progress=False)
    check_fail_over(res, 100.0)
    with pytest.raises(GapExceededError, match=r"^verify --fail-over -100: float -> emulator gap -?\d+\.\d\d pp "
                                               r"exceeds -100 pp"):
        check_fail_over(res, -100.0)


def test_adaptive_model_skips_nengo_loihi_unless_asked(tiny_adaptive):
    res = verify(tiny_adaptive, backends=None, slow_limit=4, progress=False)
    assert "nengo-loihi" not in res.report["backends"]
    assert res.report["skipped_backends"][0]["reason"].startswith("threshold adaptation")
    assert res.report["agreement"]["emulator_vs_nengo"]["spike_agreement"] == 1.0
    from conftest import lava_skip_reason

    lava_missing = lava_skip_reason()
    if lava_missing is None:  # loihi2 runs Lava's own processes by default, on the slow budget
        assert res.report["backends"]["lava"]["samples"] == 4
        lava = res.report["agreement"]["emulator_vs_lava"]
        assert lava["spike_agreement"] == 1.0 and lava["first_divergence"] is None
    else:
        assert {"backend": "lava", "reason": lava_missing} in res.report["skipped_backends"]
    with pytest.raises(UnsupportedError, match="AdaptiveLIF is silently built as LIF"):
        verify(tiny_adaptive, backends=["emulator", "nengo-loihi"], progress=False)


def test_emulated_accuracy_uses_the_training_validation_split(tiny):
    from rsnn_deploy.checkpoint import load_checkpoint
    from rsnn_deploy.verify import task_of

    ckpt = load_checkpoint(tiny)
    val = evaluation_split(task_of(ckpt), ckpt.meta, "val")
    assert len(val) == round(0.1 * 128)  # 160 samples, 20 % test, then train.py's 10 % hold-out
    acc = emulated_accuracy(tiny, "loihi1")
    assert 0.0 <= acc <= 1.0 and acc * len(val) == pytest.approx(round(acc * len(val)))
    res = verify(tiny, backends=["emulator"], split="val", progress=False)
    assert res.report["backends"]["emulator"]["accuracy"] == pytest.approx(acc)


def test_agreement_names_the_first_divergence():
    rng = np.random.default_rng(0)
    s = rng.random((3, 10, 5)) < 0.3
    v = rng.integers(0, 100, (3, 10, 5))
    ref = Trace(s, np.zeros((3, 10, 2), np.float32), np.zeros((3, 2)), voltage=v, current=v)
    s2, v2 = s.copy(), v.copy()
    v2[1, 4, 3] += 1
    s2[2, 6, 0] = ~s2[2, 6, 0]
    other = Trace(s2, np.zeros((3, 10, 2), np.float32), np.zeros((3, 2)), voltage=v2, current=v)
    a = agreement(ref, other)
    assert a["bug"] and a["first_divergence"] == {"sample": 1, "step": 4, "neuron": 3, "variable": "voltage",
                                                  "a": int(v[1, 4, 3]), "b": int(v[1, 4, 3]) + 1}
    assert a["spike_agreement"] == pytest.approx(1 - 1 / s.size)


def test_verifier_knows_backends_only_by_what_they_declare(tiny):
    """A backend registered here, under a name the verifier has never seen, is compared as it declares."""
    from rsnn_deploy import backends
    from rsnn_deploy.backends._emulator import EmulatorBackend
    from rsnn_deploy.verify._run import _resolve_backends

    class Copy(EmulatorBackend):
        name = "emulator-copy"

    @backends.register_backend("emulator-copy", needs="qnet", integer=True, compare=("agreement", "gap"),
                               record_in_verify=True, supports=lambda q: None if q.n_hidden else "no neurons")
    def _make(source):
        return Copy(source.qnet, source.profile, source.record_states, source.progress)

    @backends.register_backend("never", needs="qnet", integer=True, supports=lambda q: f"not for {q.profile}")
    def _never(source):
        raise AssertionError("a backend that does not support the network is not made")

    try:
        res = verify(tiny, backends=["torch-float", "emulator-copy"], progress=False)
        assert list(res.report["backends"]) == ["emulator", "torch-float", "emulator-copy"]  # reference added
        agree = res.report["agreement"]["emulator_vs_emulator-copy"]
        assert agree["spike_agreement"] == 1.0 and agree["first_divergence"] is None
        assert res.report["gaps"][-1]["from"] == "emulator" and res.report["gaps"][-1]["to"] == "emulator-copy"
        qnet = res.figure_data["qnet"]
        chosen, skipped = _resolve_backends(["emulator-copy", "never"], qnet, explicit=False)
        assert chosen == ["emulator", "emulator-copy"]
        assert skipped == [{"backend": "never", "reason": f"not for {qnet.profile}"}]
    finally:
        for name in ("emulator-copy", "never"):
            backends._REGISTRY.pop(name, None)
