"""Every results JSON says where its figures came from: CPU, SIMD flags, threads, load, versions, commit."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rsnn_deploy import native, provenance
from rsnn_deploy.trace import host_readout


def test_collect_and_finish_record_the_machine() -> None:
    rec = provenance.collect(threads=1, argv=["benchmarks/x.py", "--quick"])
    cpu = rec["cpu"]
    assert cpu["model"] == native.cpu_model() and cpu["cpus"] >= 1
    assert set(cpu["simd_flags"]) <= set(provenance.SIMD_FLAGS)
    assert cpu["avx512"] == ("avx512f" in cpu["simd_flags"])
    assert cpu["kernel_variants"] == list(native.cpu_isas())
    assert rec["threads"] == 1 and rec["command"] == "python benchmarks/x.py --quick"
    assert {"python", "torch", "numpy"} <= set(rec["versions"])
    assert "load_average_after" not in rec
    provenance.finish(rec)
    assert "load_average_after" in rec and "finished" in rec
    json.dumps(rec)  # serialisable as it is
    assert "thread(s)" in provenance.summary(rec)


@pytest.mark.parametrize("mode", ["mean", "last"])
@pytest.mark.parametrize("b,t", [(1, 40), (7, 300), (3000, 5)])
def test_host_readout_c_and_numpy_give_the_same_bits(monkeypatch: pytest.MonkeyPatch, mode: str, b: int, t: int):
    """The C integration repeats the numpy loop's operations in order: same readout, same logits."""
    if native.library(caller="host readout") is None:
        pytest.skip("no C compiler: the native readout cannot be built")
    rng = np.random.default_rng(b * t)
    spikes = rng.random((b, t, 33)) < 0.2
    w, bias = rng.standard_normal((10, 33)).astype(np.float32), rng.standard_normal(10)
    r_c, l_c = host_readout(spikes, w, bias, 0.83, mode)  # type: ignore[arg-type]
    monkeypatch.setenv("RSNN_DEPLOY_NATIVE", "0")
    r_np, l_np = host_readout(spikes, w, bias, 0.83, mode)  # type: ignore[arg-type]
    np.testing.assert_array_equal(r_c, r_np)
    np.testing.assert_array_equal(l_c, l_np)
    # and the definition: y = a y + W z + b, step by step
    y = np.zeros((b, 10))
    for k in range(t):
        y = 0.83 * y + spikes[:, k].astype(float) @ w.T.astype(float) + bias
    np.testing.assert_allclose(r_c[:, -1], y, rtol=1e-6, atol=1e-6)
