"""The C inner loops of the fast engine: same spikes as eager, gradients to float tolerance, safe fallback.

The native loops run for float32 models without a refractory period. They
are checked at shapes that exercise every code path of ``bptt_kernels.c``: neuron
counts that are and are not multiples of 64 and 16 (vector chunks and scalar tails),
batch sizes that are not multiples of the 4-row groups of the backward pass, and
sequences that end inside a block.
"""

from __future__ import annotations

import logging

import pytest
import torch
from test_fast_bptt import _inputs, _model, _run

from rsnn_deploy import fast_bptt, native

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
    assert not list((tmp_path / "native").glob("tmp*"))  # the temporary build directory is gone


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
    assert "native C loops" in model.engine_description()
    assert model.engine_description("eager") == "eager reference loop"
    assert "float64" in _model(torch.float64, variant="rec-syn").engine_description()
    assert "refractory" in _model(torch.float32, variant="rec-syn", refractory_steps=2).engine_description()
    monkeypatch.setenv("RSNN_DEPLOY_NATIVE", "0")
    assert "RSNN_DEPLOY_NATIVE=0" in model.engine_description()
