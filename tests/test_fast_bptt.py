"""The fast BPTT engine must reproduce the eager loop: identical spikes, gradients to float tolerance.

Each case runs the same ``RSNN`` in float64 (so the gradient tolerance can be tight)
through ``engine="eager"`` and ``engine="fast"``. The test then compares the spikes
bit for bit and every parameter's gradient with ``allclose``. The loss weights each
spike with a random factor, so that no adjoint is trivially zero.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import torch

from rsnn_deploy import fast_bptt
from rsnn_deploy.config import ModelConfig
from rsnn_deploy.model import RSNN

B, T, C, H, K = 4, 30, 7, 12, 3

# (variant, adapt_kind): every neuron variant, and both adaptation kinds where adaptation exists
VARIANTS = [
    ("lif", "threshold"),
    ("rec", "threshold"),
    ("rec-syn", "threshold"),
    ("rec-adapt", "threshold"),
    ("rec-adapt", "current"),
    ("rec-syn-adapt", "threshold"),
    ("rec-syn-adapt", "current"),
]
OPTIONS = list(itertools.product([0, 2], [None, 0.0], [False, True]))  # refractory, v_floor, bias
SURROGATES = ["fast-sigmoid", "triangle", "arctan", "sigmoid"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one intra-op thread avoids OpenMP wake-ups, which dominate on a busy 2-core CI box."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _model(dtype: torch.dtype = torch.float64, seed: int = 0, **kw: Any) -> RSNN:
    """A model that spikes at a moderate rate, with trainable per-neuron decays and a non-zero bias."""
    base: dict[str, Any] = {
        "n_in": C,
        "n_hidden": H,
        "n_out": K,
        "train_tau": True,
        "per_neuron_tau": True,
        "tau_mem_ms": 8.0,
        "tau_syn_ms": 4.0,
        "tau_adapt_ms": 30.0,
        "adapt_strength": 0.3,
        "init_in_gain": 3.0,
        "init_rec_gain": 1.0,
    }
    base.update(kw)
    torch.manual_seed(seed)
    model = RSNN(ModelConfig(**base)).to(dtype)
    with torch.no_grad():
        if model.bias is not None:
            model.bias.uniform_(-0.1, 0.3)
        for name in model.tau_names():  # spread the decays, so per-neuron gradients differ
            getattr(model, name).mul_(torch.empty_like(getattr(model, name)).uniform_(0.6, 1.4))
    return model


def _inputs(dtype: torch.dtype = torch.float64, seed: int = 1, steps: int = T, batch: int = B) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, steps, C, generator=g) < 0.3).to(dtype)


def _run(model: RSNN, x: torch.Tensor, engine: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Spikes and the gradients of all parameters (and of x, if it requires grad) under ``engine``."""
    model.zero_grad(set_to_none=True)
    if x.grad is not None:
        x.grad = None
    out = model(x, engine=engine)
    g = torch.Generator().manual_seed(2)
    weights = torch.randn(out.spikes.shape, generator=g, dtype=out.spikes.dtype)
    loss = (out.spikes * weights).sum() + out.logits.square().sum()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    if x.requires_grad:
        grads["x"] = x.grad.clone()
    return out.spikes.detach(), grads


def _assert_same(model: RSNN, x: torch.Tensor, rtol: float = 1e-9, atol: float = 1e-11) -> torch.Tensor:
    p = model.effective_params()
    assert fast_bptt.supports(model.cfg, p)
    z_eager, g_eager = _run(model, x, "eager")
    z_fast, g_fast = _run(model, x, "fast")
    assert torch.equal(z_fast, z_eager), f"{int((z_fast != z_eager).sum())} spikes differ"
    assert g_fast.keys() == g_eager.keys()
    for name, ge in g_eager.items():
        torch.testing.assert_close(g_fast[name], ge, rtol=rtol, atol=atol, msg=lambda m, n=name: f"{n}: {m}")
    return z_eager


@pytest.mark.parametrize("variant,adapt_kind", VARIANTS)
@pytest.mark.parametrize("refractory,v_floor,bias", OPTIONS)
def test_matches_eager(variant: str, adapt_kind: str, refractory: int, v_floor: float | None, bias: bool) -> None:
    model = _model(variant=variant, adapt_kind=adapt_kind, refractory_steps=refractory, v_floor=v_floor, bias=bias)
    z = _assert_same(model, _inputs())
    rate = z.mean().item()
    assert 0.02 < rate < 0.6, f"spike rate {rate:.3f}: the case would not exercise spikes and resets"


@pytest.mark.parametrize("surrogate", SURROGATES)
@pytest.mark.parametrize("variant", ["rec-syn", "rec-syn-adapt"])
def test_surrogates(surrogate: str, variant: str) -> None:
    _assert_same(_model(variant=variant, surrogate=surrogate, surrogate_slope=2.0, v_floor=0.0), _inputs())


def test_shared_tau_input_grad_and_several_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Decays broadcast from one tau, a differentiable input, and blocks that do not divide T."""
    block = B * H * 8 * 7  # bytes of 7 float64 steps: T = 30 runs as 7 + 7 + 7 + 7 + 2
    monkeypatch.setattr(fast_bptt, "_BLOCK_BYTES", block)
    assert fast_bptt.block_steps(B, H, torch.float64, T) == 7
    for variant in ("rec-syn-adapt", "lif"):
        model = _model(variant=variant, per_neuron_tau=False, refractory_steps=1, v_floor=0.0, bias=True)
        _assert_same(model, _inputs().requires_grad_(True))


def test_frozen_decays_and_single_step() -> None:
    """With fixed time constants, no state is kept for decay gradients; T = 1 has no recurrence."""
    model = _model(variant="rec-syn-adapt", train_tau=False)
    _assert_same(model, _inputs())
    _assert_same(model, _inputs(steps=1))


@pytest.mark.parametrize("block_bytes", [None, 32 * 64 * 4 * 9])
def test_float32_spikes_identical_at_training_size(monkeypatch: pytest.MonkeyPatch, block_bytes: int | None) -> None:
    """In float32 a one-ulp difference would flip spikes at this size: the rounding must match eager.

    Also with blocks of 9 steps: the per-block input projection must equal eager's whole-sequence one.
    """
    if block_bytes is not None:
        monkeypatch.setattr(fast_bptt, "_BLOCK_BYTES", block_bytes)
    for variant in ("rec-syn-adapt", "rec"):
        model = _model(torch.float32, variant=variant, n_hidden=64, bias=True, v_floor=0.0)
        x = _inputs(torch.float32, steps=100, batch=32)
        _assert_same(model, x, rtol=2e-4, atol=2e-5)


def test_pooled_buffers_never_overwrite_live_tensors() -> None:
    """Reused [T, B, H] buffers: an output still referenced, and a retained graph, stay intact."""
    model = _model(variant="rec-syn-adapt", v_floor=0.0, refractory_steps=1)
    x, x2 = _inputs(seed=1), _inputs(seed=5)
    kept = model(x, engine="fast").spikes
    kept_copy = kept.detach().clone()
    kept.sum().backward(retain_graph=True)
    first = model.w_rec.grad.clone()
    for _ in range(3):  # steps whose graphs die at once: their buffers are recycled
        model(x2, engine="fast").spikes.sum().backward()
    model.zero_grad()
    kept.sum().backward()  # second backward through the retained graph
    assert torch.equal(kept.detach(), kept_copy)
    torch.testing.assert_close(model.w_rec.grad, first, rtol=0, atol=0)
    # an output whose graph is gone but whose storage is still shared (a detached view)
    out = model(x2, engine="fast").spikes
    out.sum().backward()
    held = out.detach()
    held_copy = held.clone()
    del out
    for _ in range(2):
        model(x, engine="fast").spikes.sum().backward()
    assert torch.equal(held, held_copy)
    fast_bptt.release_buffers()
    # with nothing held, steps recycle the memory: here two [T, B, H] tensors (spikes, voltage)
    model = _model(variant="rec", train_tau=False)
    ptrs = set()
    for _ in range(4):
        out = model(x, engine="fast").spikes
        ptrs.add(out.data_ptr())
        out.sum().backward()
        del out
    if hasattr(torch._C, "_storage_Use_Count"):
        assert len(ptrs) <= 2
    fast_bptt.release_buffers()


def test_no_grad_and_eval_forward() -> None:
    """Without gradients the engine keeps no state and still returns the eager spikes."""
    model = _model(variant="rec-syn-adapt", refractory_steps=2)
    x = _inputs()
    with torch.no_grad():
        z_fast = model.hidden_spikes(x, engine="fast")
        z_eager = model.hidden_spikes(x, engine="eager")
    assert not z_fast.requires_grad
    assert torch.equal(z_fast, z_eager)
    assert torch.equal(model.trace(x).spikes, z_eager.transpose(0, 1))


def test_unsupported_config_falls_back_or_raises() -> None:
    """An unsupported dtype uses the eager loop under engine='auto' and raises under engine='fast'."""
    model = _model(variant="rec-syn").to(torch.float16)
    p = model.effective_params()
    assert not fast_bptt.supports(model.cfg, p)
    with pytest.raises(ValueError, match="fast engine does not support"):
        model.hidden_spikes(_inputs(torch.float16), engine="fast")


@pytest.mark.parametrize("profile,variant", [("loihi1", "rec-syn"), ("loihi2", "rec-syn-adapt")])
def test_quantization_aware_training(profile: str, variant: str) -> None:
    """Under QAT the engine gets fake-quantized parameters (straight-through): still the eager result."""
    from rsnn_deploy.quantize import attach_fake_quant

    # loihi2's adaptive neuron is Lava's ATRLIF; the fast engine runs it with a constant r decay
    kw = {"adapt_kind": "atrlif", "train_tau": False} if profile == "loihi2" else {}
    model = _model(variant=variant, per_neuron_tau=False, **kw)
    attach_fake_quant(model, profile)
    _assert_same(model, _inputs())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("loss_of", ["logits", "rates", "both"])
def test_readout_sum_inside_the_engine(dtype: torch.dtype, loss_of: str) -> None:
    """The engine returns the readout's weighted spike sum; its gradient must match eager's readout.

    "logits" leaves the spikes' own gradient None, "rates" gives an expanded (stride 0)
    gradient, as the firing-rate penalty does; "both" adds the two.
    """
    model = _model(dtype, variant="rec-syn", v_floor=0.0, bias=True)
    x = _inputs(dtype)
    results = []
    for engine in ("eager", "fast"):
        model.zero_grad(set_to_none=True)
        out = model(x, engine=engine)
        rate_loss = (out.spikes.mean(dim=(0, 1)) - 0.1).square().sum() * 100
        logit_loss = out.logits.square().sum()
        loss = {"logits": logit_loss, "rates": rate_loss}.get(loss_of, logit_loss + rate_loss)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((out.logits.detach(), grads))
    (logits_e, g_e), (logits_f, g_f) = results
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-9, "atol": 1e-11}
    torch.testing.assert_close(logits_f, logits_e, **tol)
    assert g_f.keys() == g_e.keys()
    for name, ge in g_e.items():
        err = float((g_f[name] - ge).abs().max() / ge.abs().max().clamp_min(1e-30))
        assert err < (1e-4 if dtype == torch.float32 else 1e-9), f"{name}: {err:.2e}"


@pytest.mark.parametrize("variant", ["rec-adapt", "rec-syn-adapt"])
@pytest.mark.parametrize("bias", [False, True])
def test_atrlif_matches_eager(variant: str, bias: bool) -> None:
    """ATRLIF (Lava's adaptive neuron, loihi2): identical spikes, and every gradient, with the r decay a constant."""
    model = _model(variant=variant, adapt_kind="atrlif", bias=bias, train_tau=False, per_neuron_tau=False)
    p = model.effective_params()
    g = torch.Generator().manual_seed(5)

    def leaf(t: torch.Tensor) -> torch.Tensor:  # per-neuron decays that require grad (a_refr stays constant)
        return (t.detach() * (0.9 + 0.2 * torch.rand(t.shape, generator=g, dtype=t.dtype))).clamp(max=0.99
                                                                                               ).requires_grad_()

    p = p._replace(a_mem=leaf(p.a_mem), a_syn=leaf(p.a_syn) if model.cfg.synapse else p.a_syn,
                   a_adapt=leaf(p.a_adapt), a_refr=p.a_refr.detach() * 0.8)
    assert fast_bptt.supports(model.cfg, p)
    assert "ATRLIF: not in the C loops" in fast_bptt.loops_description(p)
    xs = _inputs().transpose(0, 1).contiguous()
    weights = torch.randn(T, B, H, generator=g, dtype=xs.dtype)
    leaves = [t for t in (model.w_in, model.w_rec, model.bias, p.a_mem, p.a_syn, p.a_adapt)
              if t is not None and t.requires_grad]

    def grads(z: torch.Tensor) -> list[torch.Tensor]:
        return list(torch.autograd.grad((z * weights).sum() + z.sum(0).square().sum(), leaves))

    z_eager = model._eager_spikes(xs, p)
    z_fast = fast_bptt.run(xs, p, model.cfg)
    assert torch.equal(z_fast, z_eager), f"{int((z_fast != z_eager).sum())} spikes differ"
    assert 0.02 < z_eager.mean().item() < 0.6
    for a, b in zip(grads(z_fast), grads(z_eager), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def test_atrlif_with_trainable_tau_refr_runs_the_eager_loop() -> None:
    model = _model(variant="rec-syn-adapt", adapt_kind="atrlif")  # train_tau: the r decay needs a gradient
    assert not fast_bptt.supports(model.cfg, model.effective_params())
    assert model.engine_description() == "eager loop (the fast engine does not cover this)"
