"""trace.py's one host readout and one input check.

One host readout: the live, step-by-step :class:`HostReadout` gives the numbers of :func:`host_readout`.

Not always the last bit: the drive ``W z`` is one matrix product per step there and one per
batch chunk here, and BLAS may sum those in different orders.

``host_readout`` (numpy loop or C scan, checked against each other in test_provenance.py),
``HostReadout`` (the hardware-in-the-loop session's) and the integer ONNX graph's nodes
(bit-exact with the emulator's trace in test_export_onnx.py) all run ``readout_update``.
"""

from __future__ import annotations

import numpy as np
import pytest

from rsnn_deploy.errors import ValidationError
from rsnn_deploy.trace import HostReadout, check_spikes, host_readout, readout_update


@pytest.mark.parametrize("mode", ["mean", "last"])
@pytest.mark.parametrize("native", ["1", "0"])
def test_step_by_step_is_the_whole_run(monkeypatch: pytest.MonkeyPatch, mode: str, native: str) -> None:
    monkeypatch.setenv("RSNN_DEPLOY_NATIVE", native)
    rng = np.random.default_rng(4)
    spikes = rng.random((3, 50, 21)) < 0.3
    w, bias = rng.standard_normal((4, 21)), rng.standard_normal(4)
    readout, logits = host_readout(spikes, w, bias, 0.87, mode)  # type: ignore[arg-type]
    live = HostReadout(w, bias, 0.87, mode, batch=3)  # type: ignore[arg-type]
    for t in range(50):
        y, running = live.step(spikes[:, t])
        np.testing.assert_allclose(y, readout[:, t], rtol=1e-6, atol=1e-6, err_msg=f"step {t}")
    np.testing.assert_allclose(running, logits, rtol=1e-12, atol=1e-12)
    live.reset()
    assert live.steps == 0
    np.testing.assert_allclose(live.step(spikes[:, 0])[0], readout[:, 0], rtol=1e-6, atol=1e-6)


def test_the_order_of_one_step() -> None:
    """``(a y + W z) + b``: the association changes the last bits, so it is the contract."""
    y, drive, bias = np.array([0.1]), np.array([1e16]), np.array([-1e16])
    assert readout_update(y, drive, bias, 0.3)[0] == (0.3 * 0.1 + 1e16) + -1e16 != 0.3 * 0.1 + (1e16 + -1e16)


def test_bad_readout_arguments_are_one_line_errors() -> None:
    w, b = np.zeros((2, 5)), np.zeros(2)
    with pytest.raises(ValidationError, match=r"HostReadout\.decay: must lie in \[0, 1\)"):
        HostReadout(w, b, 1.0, "mean", 1)
    with pytest.raises(ValidationError, match=r"HostReadout\.b_out: must be \[2\]"):
        HostReadout(w, np.zeros(3), 0.5, "mean", 1)
    with pytest.raises(ValidationError, match=r"host_readout\.mode: must be 'mean' or 'last'"):
        host_readout(np.zeros((1, 2, 5), bool), w, b, 0.5, "max")  # type: ignore[arg-type]


def test_one_input_check() -> None:
    """Shape, dtype and values, each a one-line error naming the field; the array comes back as it was."""
    x = np.array([[[0, 1, 1]]], np.int8)
    assert check_spikes(x, "f", ("B", "T", 3)) is not None and check_spikes(x, "f", ("B", "T", 3)).dtype == np.int8
    assert check_spikes(np.ones((2, 3), np.float32), "f", (2, 3)).dtype == np.float32
    cases = [
        (np.zeros((1, 2, 4)), ("B", "T", 3), r"^f: must be \[B, T, 3\] \(got shape \(1, 2, 4\)\)$"),
        (np.zeros((2, 3)), ("B", "T", 3), r"^f: must be \[B, T, 3\]"),
        (np.zeros((1, 1, 3)), ("B", "T", 3), None),
        (np.array([[["a", "b", "c"]]]), ("B", "T", 3), r"^f: must be bool or 0/1 numbers \(got dtype <U1\)$"),
        (np.full((1, 1, 3), 2), ("B", "T", 3), r"^f: must hold only 0 and 1 \(got values in \[2, 2\]\)$"),
        (np.full((1, 1, 3), 0.5), ("B", "T", 3), r"^f: must hold only 0 and 1"),
        (np.full((1, 1, 3), np.nan), ("B", "T", 3), r"^f: must hold only 0 and 1"),
    ]
    for arr, shape, message in cases:
        if message is None:
            check_spikes(arr, "f", shape)
            continue
        with pytest.raises(ValidationError, match=message):
            check_spikes(arr, "f", shape)
    with pytest.raises(ValidationError, match=r"^f: must be bool or 0/1 integers \(got dtype float64\)$"):
        check_spikes(np.zeros((1, 1, 3)), "f", ("B", "T", 3), floats=False)
