"""Every float neuron implementation is held to ``rsnn_deploy.neuron.neuron_step``, the definition.

- The fast engine's torch loops and each C build of ``bptt_kernels.c``: forward states
  (spikes, current, voltage after reset, adaptation) bit for bit, and every gradient to
  float tolerance, against autograd through a plain loop of ``neuron_step``.
- The in-place surrogates of the fast engine against :func:`neuron.surrogate_grad`.
- ``neuron_step`` over numpy (the nengo neuron type's ops) against the same step over
  torch, bit for bit in float64.
- The float ONNX step graph, built by running ``neuron_step`` on symbolic values, against
  ``neuron_step`` itself, step by step from the same state (ATRLIF included).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from rsnn_deploy import fast_bptt, native, neuron
from rsnn_deploy.config import ModelConfig
from rsnn_deploy.model import RSNN

B, T, C, H, K = 5, 40, 7, 37, 3

VARIANTS = [  # (variant, adapt_kind, refractory, v_floor, bias)
    ("lif", "threshold", 0, None, False),
    ("rec", "threshold", 2, 0.0, True),
    ("rec-syn", "threshold", 0, -0.5, True),
    ("rec-syn-adapt", "threshold", 0, 0.0, False),
    ("rec-syn-adapt", "current", 2, None, True),
    ("rec-adapt", "current", 0, -0.5, True),
    ("rec-syn-adapt", "atrlif", 0, None, True),
]
IDS = [f"{v}-{a}-r{r}-f{f}-b{int(b)}" for v, a, r, f, b in VARIANTS]


@pytest.fixture(autouse=True)
def _one_thread(restore_torch_threads):
    """Tiny tensors: one intra-op thread (conftest's fixture puts the count back)."""
    torch.set_num_threads(1)


def _model(variant: str, adapt_kind: str, refractory: int, v_floor: float | None, bias: bool, dtype: Any) -> RSNN:
    """A model that spikes at a moderate rate, per-neuron decays spread apart; trainable taus except ATRLIF's."""
    torch.manual_seed(0)
    cfg = ModelConfig(
        n_in=C, n_hidden=H, n_out=K, variant=variant, adapt_kind=adapt_kind, refractory_steps=refractory,
        v_floor=v_floor, bias=bias, per_neuron_tau=True, train_tau=adapt_kind != "atrlif", tau_mem_ms=8.0,
        tau_syn_ms=4.0, tau_adapt_ms=30.0, adapt_strength=0.3, init_in_gain=3.0, init_rec_gain=1.0,
    )  # fmt: skip
    model = RSNN(cfg).to(dtype)
    with torch.no_grad():
        if model.bias is not None:
            model.bias.uniform_(-0.1, 0.3)
        for name in model.tau_names():
            getattr(model, name).mul_(torch.empty_like(getattr(model, name)).uniform_(0.6, 1.4))
    return model


def _inputs(dtype: Any, seed: int = 1) -> torch.Tensor:
    """Time-major 0/1 input spikes [T, B, C]."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, C, generator=g) < 0.3).to(dtype)


def _reference(model: RSNN, xs: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Spikes [T, B, H] and states by a plain loop of ``neuron.neuron_step`` (differentiable)."""
    p = model.effective_params()
    cfg = model.cfg
    state = neuron.initial_state(B, H, xs.device, xs.dtype)
    zs, states = [], {"i": [], "v": [], "n": []}
    for d in neuron.input_drive(xs, p).unbind(0):
        z, state = neuron.neuron_step(d, state, p, lambda u: neuron.SpikeFunction.apply(u, cfg.surrogate, 5.0))
        zs.append(z)
        for k in states:
            states[k].append(getattr(state, k))
    return torch.stack(zs), {k: torch.stack(v) for k, v in states.items()}


def _loops() -> list[str]:
    """``torch`` and each C build this CPU runs."""
    have = [isa for isa in native.cpu_isas() if native.library(isa) is not None]
    return ["torch", *have]


def _grads(model: RSNN, spikes: torch.Tensor) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    weights = torch.randn(spikes.shape, generator=g, dtype=spikes.dtype)
    params = [(n, q) for n, q in model.named_parameters() if q.requires_grad]
    got = torch.autograd.grad((spikes * weights).sum(), [q for _, q in params], allow_unused=True)
    return {n: g for (n, _), g in zip(params, got, strict=True) if g is not None}


def _covers(loops: str, case: tuple) -> bool:
    """Whether ``loops`` run ``case``: the torch loops run every case, the C loops those ``spec.native`` says
    with that ISA selected (as the test selects it; outside ``use_isa`` the calibrated default would decide)."""
    if loops == "torch":
        return True
    model = _model(*case, dtype=torch.float32)
    with native.use_isa(loops):
        spec, _ = fast_bptt._prepare(_inputs(torch.float32), model.effective_params(), model.cfg)
    return bool(spec.native)


# only the (loops, case) pairs that run: the C loops do not cover ATRLIF (the torch loops run it)
@pytest.mark.parametrize(("loops", "case"), [
    pytest.param(loops, case, id=f"{case_id}-{loops}")
    for loops in _loops() for case, case_id in zip(VARIANTS, IDS, strict=True) if _covers(loops, case)
])
def test_fast_engine_is_the_step(loops: str, case: tuple) -> None:
    """Forward states bit for bit, gradients within 1e-4 of the largest (float32; 1e-9 in float64)."""
    isa = None if loops == "torch" else loops
    dtype = torch.float64 if isa is None and case[1] != "atrlif" else torch.float32
    model = _model(*case, dtype=dtype)
    xs = _inputs(dtype)
    z_ref, st = _reference(model, xs)
    assert 0.02 < float(z_ref.detach().mean()) < 0.6, "the comparison means something only if neurons spike"
    with native.use_isa(isa), torch.no_grad():
        spec, tensors = fast_bptt._prepare(xs, model.effective_params(), model.cfg)
        assert isa is None or spec.native, f"{loops} does not run {case}: _covers disagrees"
        z, saved, _ = fast_bptt._forward(spec, *tensors, keep=fast_bptt._Keep(p=True, i=True, n=True))
    assert torch.equal(z, z_ref), f"{int((z != z_ref).sum())} spikes differ"
    assert saved.p is not None
    v = saved.p if case[1] == "atrlif" else saved.p * (1.0 - z)  # p is the voltage before the reset
    assert torch.equal(v, st["v"].detach()), "voltage"
    if saved.i is not None:
        assert torch.equal(saved.i, st["i"].detach()), "current"
    if saved.n is not None:
        assert torch.equal(saved.n, st["n"].detach()), "adaptation"

    g_ref = _grads(model, z_ref)
    with native.use_isa(isa):
        g_fast = _grads(model, fast_bptt.run(xs, model.effective_params(), model.cfg))
    assert g_fast.keys() == g_ref.keys() and g_ref
    tol = 1e-4 if dtype == torch.float32 else 1e-9
    for name, gr in g_ref.items():
        err = float((g_fast[name] - gr).abs().max() / gr.abs().max().clamp_min(1e-30))
        assert err < tol, f"{loops} {name}: error {err:.2e} of the largest gradient"


@pytest.mark.parametrize("kind", neuron.SURROGATES)
def test_in_place_surrogates_are_the_definition(kind: str) -> None:
    u = torch.linspace(-3.0, 3.0, 1001, dtype=torch.float64)
    want = neuron.surrogate_grad(u, kind, 2.5)
    got = neuron.surrogate_grad_(u.clone(), kind, 2.5)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-15)
    assert float(want.max()) > 0.1  # a real curve, not zeros
    with pytest.raises(ValueError, match="unknown surrogate"):
        neuron.surrogate_grad(u, "step", 1.0)


@pytest.mark.parametrize("case", VARIANTS, ids=IDS)
def test_numpy_ops_are_the_torch_step(case: tuple) -> None:
    """The nengo neuron type runs ``neuron_step`` with numpy ops: the same bits as with torch's (float64)."""
    model = _model(*case, dtype=torch.float64)
    xs = _inputs(torch.float64)
    with torch.no_grad():
        z_ref, st = _reference(model, xs)
    p = neuron.params_as_numpy(model.effective_params(), np.float64)
    drive = neuron.input_drive(xs.numpy(), p)
    zeros = np.zeros((B, H))
    state = neuron.NeuronState(zeros, zeros, zeros, zeros, zeros, zeros)
    for t in range(T):
        z, state = neuron.neuron_step(drive[t], state, p, neuron.heaviside, neuron.NUMPY)
        np.testing.assert_array_equal(z, z_ref[t].numpy(), err_msg=f"spikes, step {t}")
        for k in ("i", "v", "n"):
            np.testing.assert_array_equal(getattr(state, k), st[k][t].numpy(), err_msg=f"{k}, step {t}")


@pytest.mark.parametrize("case", VARIANTS, ids=IDS)
def test_onnx_step_graph_is_the_step(case: tuple) -> None:
    """One graph step from the step's own state: spikes equal, states to float32 rounding (the matmuls)."""
    ort = pytest.importorskip("onnxruntime")
    from rsnn_deploy.export._onnx_float import FLOAT_STATE, export_float_onnx, float_params

    model = _model(*case, dtype=torch.float32).eval()
    graph = export_float_onnx(model, "step").SerializeToString()
    sess = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    fp = float_params(model)
    p = fp.neuron
    xs = _inputs(torch.float32).numpy()
    atr = p.adapt_kind == "atrlif"
    zeros = np.zeros((B, H), np.float32)
    state = neuron.NeuronState(zeros, zeros, zeros, zeros, zeros, zeros)
    y = np.zeros((B, K), np.float32)
    spiked = 0
    for t in range(T):
        feed = {"x": xs[t], "i": state.i, "v": state.v, "n": state.n, "z_prev": state.z, "y": y,
                "ref": state.r if atr else state.ref}  # fmt: skip
        assert set(feed) == {"x", *FLOAT_STATE}
        out = dict(zip(names, sess.run(None, feed), strict=True))
        z, state = neuron.neuron_step(neuron.input_drive(xs[t], p), state, p, neuron.heaviside, neuron.NUMPY)
        y = neuron.readout_step(y, neuron.readout_drive(z, fp.w_out, fp.b_out), np.float32(fp.a_out))
        np.testing.assert_array_equal(out["z"], z, err_msg=f"spikes, step {t}")
        want = {"i_out": state.i, "v_out": state.v, "n_out": state.n, "ref_out": state.r if atr else state.ref,
                "y_out": y}  # fmt: skip
        for key, ref in want.items():
            np.testing.assert_allclose(out[key], ref, rtol=1e-6, atol=1e-6, err_msg=f"{key}, step {t}")
        spiked += int(z.sum())
    assert spiked > 0.02 * T * B * H
