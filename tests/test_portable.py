"""Any machine: the shipped models load, quantize and verify identically when the regenerated data drift by ulps.

Two ways to get the other CPU's data without a second machine: a generator that moves every
MNIST-1D value a few ulp (monkeypatched), and numpy's SIMD dispatch switched off in a
subprocess (``NPY_DISABLE_CPU_FEATURES``), which on an AVX-512 CPU changes the generated
signals and 14 of the 32 refitted thresholds, as an AVX2 CPU does. A shipped model whose
behaviour depends on the CPU is a bug: both runs must give the same spikes and integers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rsnn_deploy.errors import DataError
from rsnn_deploy.tasks import _cache, _mnist1d

ROOT = Path(__file__).resolve().parent.parent
MNIST1D_MODELS = sorted(
    p.with_suffix("") for p in (ROOT / "models").glob("*.json")
    if json.loads(p.read_text()).get("task", {}).get("name") == "mnist1d"
    and json.loads(p.read_text()).get("format") == "rsnn-deploy/checkpoint"  # Xylo's: tests/test_xylo_model.py
)  # fmt: skip


def _nudged_generator(ulps: int):
    """``_mnist1d._generate`` whose signals are moved up by 1..``ulps`` ulp each (seeded)."""
    original = _mnist1d._generate

    def generate(data_seed: int) -> dict[str, np.ndarray]:
        data = original(data_seed)
        rng = np.random.default_rng(5)
        for key in ("x", "x_test"):
            x = data[key].astype(np.float64)
            for _ in range(ulps):
                x = np.where(rng.random(x.shape) < 0.75, np.nextafter(x, np.inf), x)
            data[key] = x
        return data

    return generate


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Each shipped MNIST-1D model's spikes and integers with the data as generated here."""
    from rsnn_deploy.checkpoint import load_checkpoint
    from rsnn_deploy.verify import quantize_checkpoint, task_of

    out: dict[str, object] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(_cache.CACHE_ENV, str(tmp_path_factory.mktemp("cache")))
        for path in MNIST1D_MODELS:
            ckpt = load_checkpoint(path)
            task = task_of(ckpt)
            qnet, _ = quantize_checkpoint(ckpt, ckpt.meta["train"]["qat_profile"] or "loihi1", 200, task)
            out[path.name] = (task.train.spikes(), task.test.spikes(), qnet)
    return out


@pytest.mark.parametrize("path", MNIST1D_MODELS, ids=lambda p: p.name)
def test_shipped_model_survives_a_few_ulp_of_data_drift(path, reference, tmp_path, monkeypatch):
    from rsnn_deploy.checkpoint import load_checkpoint
    from rsnn_deploy.emulator import run as emulate
    from rsnn_deploy.verify import quantize_checkpoint, task_of, verify

    monkeypatch.setenv(_cache.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(_mnist1d, "_generate", _nudged_generator(4))
    ckpt = load_checkpoint(path)
    _, fitted = _mnist1d._raw(32, 42)
    recorded = np.asarray(ckpt.task["params"]["thresholds"])
    assert not np.array_equal(fitted, recorded), "the perturbation must move the refitted thresholds"

    task = task_of(ckpt)  # loads silently: the spikes are the recorded ones
    train, test, qnet_ref = reference[path.name]
    np.testing.assert_array_equal(task.train.spikes(), train)
    np.testing.assert_array_equal(task.test.spikes(), test)
    qnet, _ = quantize_checkpoint(ckpt, qnet_ref.profile, 200, task)
    for name in ("w_in", "w_rec", "bias", "vth", "decay_u", "decay_v"):
        np.testing.assert_array_equal(getattr(qnet, name), getattr(qnet_ref, name), err_msg=name)
    x = test[:50]
    np.testing.assert_array_equal(emulate(qnet, x).spikes, emulate(qnet_ref, x).spikes)
    res = verify(path, qnet_ref.profile, backends=["torch-float", "emulator"], limit=50, progress=False)
    assert res.report["backends"]["emulator"]["samples"] == 50


def test_a_real_change_of_the_data_is_refused_with_the_first_difference(tmp_path, monkeypatch):
    """Another mnist1d release (here: signals scaled by 1.05) gives other spikes: one line, what to do."""
    from rsnn_deploy.checkpoint import load_checkpoint
    from rsnn_deploy.verify import task_of

    original = _mnist1d._generate

    def other_release(data_seed: int) -> dict[str, np.ndarray]:
        data = original(data_seed)
        return {**data, "x": data["x"] * 1.05, "x_test": data["x_test"] * 1.05}

    monkeypatch.setenv(_cache.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(_mnist1d, "_generate", other_release)
    with pytest.raises(DataError) as err:
        task_of(load_checkpoint(MNIST1D_MODELS[0]))
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("mnist1d.thresholds: the rebuilt data no longer give the model's input spikes (train sample")
    assert "with the recorded encoder" in msg and "threshold " in msg and ", fitted " in msg
    assert "pip install mnist1d==VERSION" in msg


_PROBE = r"""
import hashlib, json, sys
import numpy as np
from rsnn_deploy.checkpoint import load_checkpoint
from rsnn_deploy.cli import main
from rsnn_deploy.emulator import run as emulate
from rsnn_deploy.tasks import _mnist1d
from rsnn_deploy.verify import quantize_checkpoint, task_of

def h(a):
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]

out = {"refit_thresholds": h(_mnist1d._raw(32, 42)[1]), "models": {}}
for path in sys.argv[2:]:
    ckpt = load_checkpoint(path)
    task = task_of(ckpt)
    qnet, _ = quantize_checkpoint(ckpt, ckpt.meta["train"]["qat_profile"], 200, task)
    x = task.test.spikes(np.arange(200))
    tr = emulate(qnet, x)
    out["models"][path] = {"train": h(task.train.spikes()), "test": h(task.test.spikes()), "w_in": h(qnet.w_in),
                           "vth": h(qnet.vth), "emulator_spikes": h(tr.spikes), "pred": h(tr.predictions)}
rc = main(["verify", "--default", "--backends", "torch-float,torch-fakequant,emulator", "--limit", "300",
           "--quiet", "--no-figures", "-o", sys.argv[1]])
rep = json.load(open(sys.argv[1] + "/report.json"))
out["verify_rc"] = rc
out["verify"] = {k: v["correct"] for k, v in rep["backends"].items()}
print("PROBE" + json.dumps(out))
"""


def _simd_features_to_disable() -> list[str]:
    from numpy.core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    # what numpy 1.26 dispatches to above the AVX baseline; disabling AVX512F alone leaves the AVX2 loops
    wanted = [f for f in __cpu_dispatch__ if f.startswith("AVX512")]
    return [f for f in wanted if __cpu_features__.get(f)]


def _probe(tmp_path: Path, name: str, disable: list[str]) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != "NPY_DISABLE_CPU_FEATURES"}
    env.update(PYTHONPATH=str(ROOT), RSNN_DEPLOY_CACHE=str(tmp_path / f"cache-{name}"))
    if disable:
        env["NPY_DISABLE_CPU_FEATURES"] = " ".join(disable)
    cmd = [sys.executable, "-c", _PROBE, str(tmp_path / f"report-{name}"), *map(str, MNIST1D_MODELS)]
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    line = next(x for x in res.stdout.splitlines() if x.startswith("PROBE"))
    return json.loads(line[len("PROBE") :])


def test_numpy_simd_dispatch_does_not_change_the_shipped_models(tmp_path):
    disable = _simd_features_to_disable()
    if not disable:
        pytest.skip("this CPU has no AVX-512 features for NPY_DISABLE_CPU_FEATURES to disable")
    here = _probe(tmp_path, "native", [])
    other = _probe(tmp_path, "no-avx512", disable)
    if other["refit_thresholds"] == here["refit_thresholds"]:
        pytest.skip(f"disabling {' '.join(disable)} does not change numpy's MNIST-1D results on this CPU")
    assert here["verify_rc"] == other["verify_rc"] == 0
    assert other["models"] == here["models"]  # same spikes, integers and decisions: nothing depends on the CPU
    assert other["verify"] == here["verify"]
