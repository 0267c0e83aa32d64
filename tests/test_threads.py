"""Thread counts when the user gave none (rsnn_deploy.threads): idle cores only, BLAS capped to them."""

from __future__ import annotations

import os

import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from rsnn_deploy import threads


def test_default_threads_leave_busy_cores_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (1.9, 1.0, 1.0))
    assert threads.default_threads()[0] == 1
    monkeypatch.setattr(os, "getloadavg", lambda: (0.1, 1.0, 1.0))
    assert threads.default_threads()[0] == 2
    monkeypatch.setattr(os, "getloadavg", lambda: (7.0, 1.0, 1.0))
    assert threads.default_threads()[0] == 1


def _blas_threads() -> list[int]:
    return [int(p["num_threads"]) for p in threadpool_info() if p["user_api"] == "blas"]


@pytest.fixture
def restore_blas():
    import numpy  # noqa: F401

    before = _blas_threads()
    yield
    threadpool_limits(limits=max(before) if before else None, user_api="blas")


def test_blas_is_capped_to_the_idle_cores(monkeypatch: pytest.MonkeyPatch, restore_blas: None) -> None:
    for name in threads.BLAS_THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    if not _blas_threads():
        pytest.skip("numpy has no BLAS pool threadpoolctl can see")
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (1.9, 1.0, 1.0))  # one core busy
    assert threads.limit_blas_threads() == 1
    assert set(_blas_threads()) == {1}


def test_a_users_blas_setting_is_left_alone(monkeypatch: pytest.MonkeyPatch, restore_blas: None) -> None:
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    before = _blas_threads()
    assert threads.limit_blas_threads(1) is None
    assert _blas_threads() == before
