"""The C inner loops of the fast engine: same spikes as eager, gradients to float tolerance, safe fallback.

The native loops run for float32 models without a refractory period. They
are checked at shapes that exercise every code path of ``bptt_kernels.c``: neuron
counts that are and are not multiples of 64 and 16 (vector chunks and scalar tails),
batch sizes that are not multiples of the 4-row groups of the backward pass, and
sequences that end inside a block. Every vector-width variant this CPU can run
(``native.cpu_isas()``: AVX-512, AVX2, generic) is checked against the torch loops; the
other tests run the widest (forced, so that they do not depend on the calibration).
The reference is the eager loop of ``rsnn_deploy.neuron.neuron_step`` (``tests/test_neuron.py``
compares the forward states too).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_fast_bptt import _inputs, _model, _run

from rsnn_deploy import fast_bptt, native, native_choice
from rsnn_deploy.errors import ValidationError

pytestmark = pytest.mark.requires("cc")  # tests/conftest.py: skips naming the compiler package


def _assert_same(model, x: torch.Tensor) -> torch.Tensor:
    """Spikes bit-identical to eager; each gradient within 1e-4 of its largest entry.

    Relative to the scale, not per entry: in float32 both loops differ from a float64
    reference by about 1e-5 of the scale, and small entries carry large relative noise.
    """
    z_eager, g_eager = _run(model, x, "eager")
    z_fast, g_fast = _run(model, x, "fast")
    assert torch.equal(z_fast, z_eager), f"{int((z_fast != z_eager).sum())} spikes differ"
    assert g_fast.keys() == g_eager.keys()
    for name, ge in g_eager.items():
        err = float((g_fast[name] - ge).abs().max() / ge.abs().max().clamp_min(1e-30))
        assert err < 1e-4, f"{name}: error {err:.2e} of the largest gradient"
    return z_eager


def _uses_native(model) -> bool:
    p = model.effective_params()
    spec = fast_bptt._Spec(
        recurrent=p.w_rec is not None, synapse=True, adapt_kind=p.adapt_kind, adapt_strength=0.0, threshold=1.0,
        v_floor=p.v_floor, refractory_steps=p.refractory_steps, surrogate="fast-sigmoid", slope=5.0, block=1,
    )  # fmt: skip
    return fast_bptt.native_supports(spec, p.w_in.dtype)


@pytest.fixture(autouse=True)
def _widest_isa(monkeypatch: pytest.MonkeyPatch):
    """The widest variant, forced: these tests check the C loops, whatever the calibration chose."""
    monkeypatch.setenv(native.ENV_ISA, native.cpu_isas()[0])


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


VARIANTS = [
    ("lif", "threshold"),
    ("rec", "threshold"),
    ("rec-syn", "threshold"),
    ("rec-adapt", "current"),
    ("rec-syn-adapt", "threshold"),
    ("rec-syn-adapt", "current"),
]


@pytest.mark.parametrize("variant,adapt_kind", VARIANTS)
@pytest.mark.parametrize("v_floor,bias", [(None, False), (0.0, True), (-0.5, False)])
@pytest.mark.parametrize("n_hidden,batch", [(64, 8), (200, 6), (37, 5)])
def test_native_matches_eager(
    variant: str, adapt_kind: str, v_floor: float | None, bias: bool, n_hidden: int, batch: int
) -> None:
    model = _model(
        torch.float32, variant=variant, adapt_kind=adapt_kind, n_hidden=n_hidden, bias=bias, v_floor=v_floor
    )
    assert _uses_native(model)
    x = _inputs(torch.float32, steps=45, batch=batch)
    z = _assert_same(model, x)
    assert 0.02 < z.mean() < 0.6  # the comparison means something only if neurons spike


@pytest.mark.parametrize("surrogate", ["fast-sigmoid", "triangle", "arctan", "sigmoid"])
@pytest.mark.parametrize("variant", ["rec-syn", "rec-syn-adapt"])
def test_native_surrogates(surrogate: str, variant: str) -> None:
    model = _model(torch.float32, variant=variant, n_hidden=80, surrogate=surrogate, surrogate_slope=2.0)
    _assert_same(model, _inputs(torch.float32, steps=30, batch=7))


def test_native_two_threads_same_result() -> None:
    """The batch is split across OpenMP threads: spikes must not depend on the split, and with two
    threads the gradients must be the same from run to run (seeded runs are reproducible)."""
    model = _model(torch.float32, variant="rec-syn-adapt", n_hidden=96, bias=True, v_floor=0.0)
    x = _inputs(torch.float32, steps=40, batch=10)
    z1, g1 = _run(model, x, "fast")
    torch.set_num_threads(2)
    z2, g2 = _run(model, x, "fast")
    z3, g3 = _run(model, x, "fast")
    assert torch.equal(z1, z2) and torch.equal(z2, z3)
    for name in g1:
        assert torch.equal(g2[name], g3[name]), name
        torch.testing.assert_close(g2[name], g1[name], rtol=1e-4, atol=1e-5)


def test_refractory_and_float64_use_torch_loops() -> None:
    assert _uses_native(_model(torch.float32, variant="rec-syn-adapt"))
    assert not _uses_native(_model(torch.float32, variant="rec-syn", refractory_steps=2))
    assert not _uses_native(_model(torch.float64, variant="rec-syn"))


def test_env_switch_disables(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model(torch.float32, variant="rec-syn")
    monkeypatch.setenv("RSNN_DEPLOY_NATIVE", "0")
    assert not _uses_native(model)
    _assert_same(model, _inputs(torch.float32))


def test_missing_compiler_falls_back_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    """No compiler: one warning, the torch loops run, nothing is left in the cache."""
    monkeypatch.setattr(native, "_state", {})
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("RSNN_DEPLOY_CACHE", str(tmp_path / "cache"))
    with caplog.at_level(logging.WARNING, logger="rsnn_deploy.native"):
        assert native.library() is None
        assert native.library() is None
    assert [r.getMessage() for r in caplog.records if "unavailable" in r.getMessage()].__len__() == 1
    model = _model(torch.float32, variant="rec-syn")
    assert not _uses_native(model)
    _assert_same(model, _inputs(torch.float32))


def test_fresh_build_into_empty_cache(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """A first use compiles into the cache directory and the library works."""
    monkeypatch.setattr(native, "_state", {})
    monkeypatch.setenv("RSNN_DEPLOY_CACHE", str(tmp_path))
    lib = native.library()
    assert lib is not None and lib.rsnn_abi_version() == native.ABI_VERSION
    assert len(list((tmp_path / "native").glob("*.so"))) == 1
    assert not list((tmp_path / "native").glob(".build-*"))  # the temporary build directory is gone


@pytest.mark.parametrize("n_in", [28, 112, 300])
def test_native_input_sums_match_eager_projection(n_in: int) -> None:
    """Binary inputs: the C loop sums rows of W_in^T where eager runs a matmul; the spikes must not change.

    Widths of the tasks (28: a row, 112: a row at 4 thermometer levels) and one wider than 256.
    """
    model = _model(torch.float32, variant="rec-syn", n_in=n_in, n_hidden=64, v_floor=0.0, init_in_gain=2.0)
    g = torch.Generator().manual_seed(n_in)
    x = (torch.rand(6, 60, n_in, generator=g) < 0.3).float()
    z = _assert_same(model, x)
    assert 0.02 < z.mean() < 0.6


def test_non_binary_inputs_use_the_matmul() -> None:
    """Graded inputs (allowed by the model, if not by the tasks) go through W_in x as a matmul."""
    model = _model(torch.float32, variant="rec-syn")
    x = _inputs(torch.float32) * 0.7
    _assert_same(model, x)


def test_engine_description_says_which_loops(monkeypatch: pytest.MonkeyPatch) -> None:
    """Training logs this line once: it must name the loops that actually run."""
    model = _model(torch.float32, variant="rec-syn")
    widest = native.cpu_isas()[0]
    assert f"native C loops ({widest})" in model.engine_description()
    assert f"{native.ENV_ISA}={widest}" in model.engine_description()  # and why
    assert model.engine_description("eager") == "eager reference loop"
    assert "float64" in _model(torch.float64, variant="rec-syn").engine_description()
    assert "refractory" in _model(torch.float32, variant="rec-syn", refractory_steps=2).engine_description()
    monkeypatch.setenv("RSNN_DEPLOY_NATIVE", "0")
    assert "RSNN_DEPLOY_NATIVE=0" in model.engine_description()


# ----------------------------------------------------------------------------- vector-width variants


def _isa_libs() -> list[str]:
    return [isa for isa in native.cpu_isas() if native.library(isa) is not None]


def _run_isa(model, x: torch.Tensor, isa: str | None):
    with native.use_isa(isa):
        return _run(model, x, "fast")


@pytest.mark.parametrize("isa", native.ISAS)
@pytest.mark.parametrize("variant,adapt_kind", VARIANTS)
@pytest.mark.parametrize("n_hidden,batch,v_floor", [(128, 9, None), (37, 5, 0.0), (200, 6, -0.5)])
def test_each_isa_matches_the_step(
    isa: str, variant: str, adapt_kind: str, n_hidden: int, batch: int, v_floor: float | None
) -> None:
    """Each variant the CPU runs: spikes bit-identical to the eager loop of ``neuron.neuron_step`` (the
    definition, not the torch loops), gradients to tolerance; states: tests/test_neuron.py."""
    if isa not in _isa_libs():
        pytest.skip(f"this CPU cannot run the {isa} kernels (it runs {', '.join(native.cpu_isas())})")
    model = _model(torch.float32, variant=variant, adapt_kind=adapt_kind, n_hidden=n_hidden, bias=True, v_floor=v_floor)
    x = _inputs(torch.float32, steps=45, batch=batch)
    z_c, g_c = _run_isa(model, x, isa)
    z_t, g_t = _run(model, x, "eager")
    assert torch.equal(z_c, z_t), f"{isa}: {int((z_c != z_t).sum())} spikes differ from the step"
    assert 0.02 < z_c.mean() < 0.6
    for name, gt in g_t.items():
        err = float((g_c[name] - gt).abs().max() / gt.abs().max().clamp_min(1e-30))
        assert err < 1e-4, f"{isa} {name}: error {err:.2e} of the largest gradient"


@pytest.mark.parametrize("variant,adapt_kind", VARIANTS)
def test_avx2_and_avx512_gradients_bit_identical(variant: str, adapt_kind: str) -> None:
    """The two FMA builds sum every gradient in the same order: identical bits, not just close."""
    if not {"avx2", "avx512"} <= set(_isa_libs()):
        pytest.skip("needs a CPU with AVX-512 (to run both the avx2 and the avx512 kernels)")
    model = _model(torch.float32, variant=variant, adapt_kind=adapt_kind, n_hidden=150, bias=True, v_floor=0.0)
    x = _inputs(torch.float32, steps=50, batch=11)
    z2, g2 = _run_isa(model, x, "avx2")
    z5, g5 = _run_isa(model, x, "avx512")
    assert torch.equal(z2, z5)
    for name in g5:
        assert torch.equal(g2[name], g5[name]), name


def test_each_build_reports_its_isa() -> None:
    for isa in _isa_libs():
        assert native.library(isa).rsnn_isa().decode() == isa


def test_forced_isa_env(monkeypatch: pytest.MonkeyPatch) -> None:
    isa = native.cpu_isas()[-1]  # the narrowest (generic), which every CPU runs
    monkeypatch.setenv(native.ENV_ISA, isa)
    assert native.training_isa() == (isa, f"{native.ENV_ISA}={isa}")
    monkeypatch.setenv(native.ENV_ISA, "avx1024")
    with pytest.raises(ValidationError, match=native.ENV_ISA):
        native.training_isa()
    if "avx512" not in native.cpu_isas():
        monkeypatch.setenv(native.ENV_ISA, "avx512")
        with pytest.raises(ValidationError, match="cannot run avx512"):
            native.training_isa()


def test_calibration_picks_the_fastest_and_is_cached(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """Without a forced variant the default is measured once, written with the CPU, and then read back."""
    monkeypatch.delenv(native.ENV_ISA)
    monkeypatch.setenv("RSNN_DEPLOY_CACHE", str(tmp_path))
    monkeypatch.setattr(native, "_state", {})
    with torch.inference_mode():  # a first use inside an evaluation still calibrates with autograd
        isa, why = native.training_isa()
    data = json.loads((tmp_path / "native" / "calibration.json").read_text())
    (record,) = data.values()
    ms = record["ms_per_step"]
    assert set(ms) == {*_isa_libs(), native_choice.TORCH}
    assert record["chosen"] == min(ms, key=ms.__getitem__) == (isa or native_choice.TORCH)
    assert record["cpu"] == native.cpu_model() and "fastest measured" in why
    monkeypatch.setattr(native, "_state", {})  # a new process: reads the cache, measures nothing

    def no_measuring(*_a, **_k):
        raise AssertionError("calibrated again")

    monkeypatch.setattr(native_choice, "calibrate", no_measuring)
    assert native.training_isa()[0] == isa


# ----------------------------------------------------------------------------- build hardening


def _counting_cc(tmp_path: Path, sleep: float = 0.0) -> Path:
    """A compiler wrapper that logs each call (and optionally stalls) before running the real one."""
    real = os.environ.get("CC") or "cc"
    script = tmp_path / "cc-wrapper"
    script.write_text(f'#!/bin/sh\necho call >> {tmp_path / "cc.log"}\nsleep {sleep}\nexec {real} "$@"\n')
    script.chmod(0o755)
    return script


def test_concurrent_processes_compile_once(tmp_path) -> None:
    """Three processes start on an empty cache at once: one compiles, the others wait and load its library."""
    cc = _counting_cc(tmp_path, sleep=0.5)
    env = {**os.environ, "CC": str(cc), "RSNN_DEPLOY_CACHE": str(tmp_path / "cache"), native.ENV_ISA: "generic"}
    code = "from rsnn_deploy import native; assert native.library('generic') is not None"
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env) for _ in range(3)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0, 0]
    assert (tmp_path / "cc.log").read_text().count("call") == 1  # OpenMP builds at the first try
    out = tmp_path / "cache" / "native"
    assert len(list(out.glob("*.so"))) == 1 and not list(out.glob(".build-*"))


def test_compiler_timeout(monkeypatch: pytest.MonkeyPatch, tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    """A hanging compiler is stopped: the BPTT kernels fall back with a warning, the temp dir is gone."""
    monkeypatch.setattr(native, "_state", {})
    monkeypatch.setenv("CC", str(_counting_cc(tmp_path, sleep=30)))
    monkeypatch.setenv("RSNN_DEPLOY_CC_TIMEOUT", "1")
    monkeypatch.setenv("RSNN_DEPLOY_CACHE", str(tmp_path / "cache"))
    with caplog.at_level(logging.WARNING, logger="rsnn_deploy.native"):
        assert native.library("generic") is None
    (msg,) = [r.getMessage() for r in caplog.records]
    assert "native BPTT kernels unavailable" in msg and "longer than 1 s" in msg and "torch loops" in msg
    assert not list((tmp_path / "cache" / "native").glob(".build-*"))
    # the compiler's whole process group was killed: no stalled child is left behind
    left = subprocess.run(["pgrep", "-f", "sleep 30"], capture_output=True, text=True).stdout.split()
    assert not [pid for pid in left if str(tmp_path) in _environ(pid)]


def _environ(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/environ").read_text(errors="ignore")
    except OSError:  # gone meanwhile, or not ours
        return ""


def test_fallback_warning_names_the_caller(monkeypatch: pytest.MonkeyPatch, tmp_path, caplog) -> None:
    monkeypatch.setattr(native, "_state", {})
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    with caplog.at_level(logging.WARNING, logger="rsnn_deploy.native"):
        assert not native.enabled()  # the emulator asks first
        assert native.library() is None  # then the training kernels
    msgs = [r.getMessage() for r in caplog.records]
    assert len(msgs) == 2
    assert "native emulator unavailable" in msgs[0] and "numpy loop" in msgs[0]
    assert "native BPTT kernels unavailable" in msgs[1] and "torch loops" in msgs[1]


def test_kernel_argument_checks_raise() -> None:
    """Wrong dtype, shape or layout: a ValueError naming the argument (never a silent bad pointer)."""
    k, b, h = 3, 2, 16
    g = torch.zeros(k, b, h)
    pre = torch.zeros(k, b, 8)
    with pytest.raises(ValueError, match="g_out_t"):
        native.spike_outer_block(g, pre, torch.zeros(8, h, dtype=torch.float64))
    with pytest.raises(ValueError, match="g_out_t"):
        native.spike_outer_block(g, pre, torch.zeros(h, 8).t())  # strided
    with pytest.raises(ValueError, match="gi"):
        native.spike_outer_block(g.transpose(0, 1), pre, torch.zeros(8, h))
    with pytest.raises(ValueError, match="x, w_in_t"):
        native.loihi1_run(torch.zeros(2, 3, 4).numpy(), None, None, None, None, None, None, 0, 0)  # type: ignore[arg-type]
