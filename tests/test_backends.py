"""One conformance class every backend passes, plus the registry.

Each backend is created through the registry from the same tiny trained checkpoint
(and its quantized network) and must honour the :class:`rsnn_deploy.backends.Backend`
contract. ``exact_to`` names the backend it must equal spike for spike (integer
backends: the emulator); float backends are compared with ``torch-float`` with a
tolerance, since float64 and float32 may round a near-threshold voltage differently.

``make_tiny_checkpoint`` is also used by ``test_verify.py`` and ``test_cli_deploy.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from rsnn_deploy.backends import (
    Backend,
    BackendSource,
    available_backends,
    backend_spec,
    create_backend,
    register_backend,
)
from rsnn_deploy.errors import UnsupportedError, ValidationError

pytestmark = pytest.mark.filterwarnings(
    "ignore:invalid value encountered in cast:RuntimeWarning",
    "ignore:This version of `nengo_loihi`:UserWarning",
)


def make_tiny_checkpoint(folder: Path, variant: str = "rec-syn", qat: str = "loihi1", epochs: int = 3,
                         n: int = 160, t: int = 20, c: int = 8, hidden: int = 16) -> Path:
    """Train a tiny model on a learnable .npz task (channel block with the most spikes = class); returns model.json."""
    from rsnn_deploy.config import ModelConfig, TrainConfig
    from rsnn_deploy.tasks import load_task
    from rsnn_deploy.train import train

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, n)
    p = np.full((n, 1, c), 0.08)
    for k in range(3):
        p[y == k, :, k * (c // 3):(k + 1) * (c // 3)] = 0.45
    x = (rng.random((n, t, c)) < p).astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "data.npz", x=x, y=y)
    task = load_task("npz", path=folder / "data.npz", seed=0)
    adapt = "adapt" in variant
    cfg = ModelConfig(n_in=c, n_hidden=hidden, n_out=3, variant=variant, v_floor=None if adapt else 0.0,
                      init_in_gain=2.0, tau_mem_ms=10, tau_syn_ms=3, adapt_kind="atrlif")
    tcfg = TrainConfig(epochs=epochs, batch_size=32, lr=1e-2, qat_profile=qat, rate_reg=0.1)
    res = train(task, cfg, tcfg, folder / "run", progress=False)
    return res.checkpoint


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two tiny checkpoints (loihi1 rec-syn, loihi2 rec-syn-adapt), their quantized networks and test input."""
    from rsnn_deploy.checkpoint import load_checkpoint
    from rsnn_deploy.hardware import load_profile
    from rsnn_deploy.verify import quantize_checkpoint, task_of

    out: dict[str, Any] = {}
    for profile, variant in (("loihi1", "rec-syn"), ("loihi2", "rec-syn-adapt")):
        path = make_tiny_checkpoint(tmp_path_factory.mktemp(profile), variant, profile)
        ckpt = load_checkpoint(path)
        task = task_of(ckpt)
        qnet, _ = quantize_checkpoint(ckpt, profile, 50, task)
        out[profile] = {"ckpt": ckpt, "qnet": qnet, "profile": load_profile(profile),
                        "x": task.test.spikes(np.arange(6))}
    return out


class BackendConformance:
    """The contract of :class:`rsnn_deploy.backends.Backend`; subclasses name the backend and profile."""

    name: ClassVar[str]
    profile: ClassVar[str] = "loihi1"
    exact_to: ClassVar[str | None] = "emulator"  # must equal this backend's spikes exactly (None: tolerance)
    min_agreement: ClassVar[float] = 0.995  # spike agreement with torch-float when not exact
    states: ClassVar[tuple[str, ...]] = ("current", "voltage")

    def make(self, bundle: dict[str, Any], record_states: bool = False, name: str | None = None) -> Backend:
        b = bundle[self.profile]
        source = BackendSource(model=b["ckpt"].model, qnet=b["qnet"], profile=b["profile"],
                               record_states=record_states)
        return create_backend(name or self.name, source)

    def x(self, bundle: dict[str, Any]) -> np.ndarray:
        return bundle[self.profile]["x"]

    def test_is_a_backend_with_its_registered_name(self, bundle):
        backend = self.make(bundle)
        assert isinstance(backend, Backend)
        assert backend.name == self.name == backend_spec(self.name).name

    def test_trace_layout(self, bundle):
        x = self.x(bundle)
        tr = self.make(bundle).run(x)
        b, t, _ = x.shape
        h, k = bundle[self.profile]["qnet"].n_hidden, bundle[self.profile]["qnet"].n_outputs
        assert tr.spikes.shape == (b, t, h) and tr.spikes.dtype == np.bool_
        assert tr.readout.shape == (b, t, k)
        assert tr.logits.shape == (b, k) and np.isfinite(tr.logits).all()
        assert tr.predictions.shape == (b,)
        assert tr.spikes.any(), "degenerate fixture: no spikes"

    def test_deterministic_and_input_untouched(self, bundle):
        x = self.x(bundle)
        before = x.copy()
        backend = self.make(bundle)
        a, b = backend.run(x), backend.run(x)
        assert np.array_equal(x, before)
        assert np.array_equal(a.spikes, b.spikes) and np.array_equal(a.logits, b.logits)

    def test_samples_are_independent_of_the_batch(self, bundle):
        x = self.x(bundle)
        backend = self.make(bundle)
        whole, part = backend.run(x), backend.run(x[2:4])
        assert np.array_equal(whole.spikes[2:4], part.spikes)
        assert np.allclose(whole.logits[2:4], part.logits, rtol=1e-6, atol=1e-6)

    def test_states_only_when_recorded(self, bundle):
        x = self.x(bundle)[:2]
        plain = self.make(bundle).run(x)
        assert plain.current is None and plain.voltage is None and plain.adaptation is None
        rec = self.make(bundle, record_states=True).run(x)
        for key in self.states:
            assert getattr(rec, key).shape == rec.spikes.shape, key
        assert np.array_equal(rec.spikes, plain.spikes)

    def test_accepts_bool_and_refuses_bad_shapes(self, bundle):
        x = self.x(bundle)[:2]
        backend = self.make(bundle)
        assert np.array_equal(backend.run(x.astype(bool)).spikes, backend.run(x).spikes)
        with pytest.raises(ValidationError, match=r"spikes: must be \[B, T, \d+\] \(got shape"):
            backend.run(x[0])
        with pytest.raises(ValidationError, match=r"spikes: must hold only 0 and 1"):
            backend.run(x * 2)

    def test_agrees_with_its_reference(self, bundle):
        x = self.x(bundle)
        tr = self.make(bundle, record_states=True).run(x)
        if self.exact_to is not None:
            ref = self.make(bundle, record_states=True, name=self.exact_to).run(x)
            assert np.array_equal(tr.spikes, ref.spikes)
            for key in self.states:
                assert np.array_equal(getattr(tr, key), getattr(ref, key)), key
            assert np.allclose(tr.logits, ref.logits)
        else:
            ref = self.make(bundle, name="torch-float").run(x)
            assert (tr.spikes == ref.spikes).mean() >= self.min_agreement


class TestTorchFloat(BackendConformance):
    name = "torch-float"
    exact_to = "torch-float"
    states = ("current", "voltage", "adaptation")


class TestTorchFakeQuant(BackendConformance):
    name = "torch-fakequant"
    exact_to = None
    min_agreement = 0.9  # a different (quantized) model, only roughly the float one
    states = ("current", "voltage", "adaptation")


class TestEmulator(BackendConformance):
    name = "emulator"


class TestEmulatorLoihi2(BackendConformance):
    name = "emulator"
    profile = "loihi2"
    states = ("current", "voltage", "adaptation", "refractory")  # ATRLIF's theta and r


@pytest.mark.lava
class TestLava(BackendConformance):
    name = "lava"
    profile = "loihi2"
    states = ("current", "voltage", "adaptation", "refractory")


class TestNengo(BackendConformance):
    name = "nengo"


class TestNengoAdaptive(BackendConformance):
    name = "nengo"
    profile = "loihi2"
    states = ("current", "voltage", "adaptation")


class TestNengoFloat(BackendConformance):
    name = "nengo-float"
    exact_to = None
    states = ("current", "voltage", "adaptation")


@pytest.mark.nengo_loihi
class TestNengoLoihi(BackendConformance):
    name = "nengo-loihi"


class TestOnnx(BackendConformance):
    name = "onnx"


class TestOnnxLoihi2(BackendConformance):
    name = "onnx"
    profile = "loihi2"
    states = ("current", "voltage", "adaptation")


# ----------------------------------------------------------------------------- registry


def test_registry_lists_builtins_and_refuses_unknown_names():
    assert {"torch-float", "torch-fakequant", "emulator", "nengo", "nengo-float", "nengo-loihi", "lava"} <= set(
        available_backends())
    with pytest.raises(UnsupportedError, match=r"backend: unknown backend \(got 'tpu'\); choose from torch-float"):
        backend_spec("tpu")


def test_a_module_can_register_its_own_backend(bundle):
    class Zeros:
        name = "zeros-test"

        def __init__(self, qnet):
            self.qnet = qnet

        def run(self, spikes):
            from rsnn_deploy.trace import Trace, host_readout

            z = np.zeros((*spikes.shape[:2], self.qnet.n_hidden), dtype=bool)
            return Trace(z, *host_readout(z, self.qnet.w_out, self.qnet.b_out, 0.0, "mean"))

    register_backend("zeros-test", needs="qnet", description="test")(lambda s: Zeros(s.qnet))
    b = bundle["loihi1"]
    tr = create_backend("zeros-test", BackendSource(qnet=b["qnet"])).run(b["x"])
    assert not tr.spikes.any()
    with pytest.raises(ValidationError, match="already registered"):
        register_backend("zeros-test", needs="qnet")(lambda s: Zeros(s.qnet))
    with pytest.raises(UnsupportedError, match="backend zeros-test: needs a quantized network"):
        create_backend("zeros-test", BackendSource(model=b["ckpt"].model))


def test_nengo_loihi_refuses_adaptation_with_the_reason(bundle):
    b = bundle["loihi2"]
    with pytest.raises(UnsupportedError, match="AdaptiveLIF is silently built as LIF"):
        create_backend("nengo-loihi", BackendSource(qnet=b["qnet"]))


def test_fakequant_needs_a_profile(bundle):
    with pytest.raises(UnsupportedError, match="torch-fakequant: needs a hardware profile"):
        create_backend("torch-fakequant", BackendSource(model=bundle["loihi1"]["ckpt"].model))
