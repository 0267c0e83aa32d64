"""Tuning faults with real worker processes: a trial orphaned before its first heartbeat, and ``kill -9``.

Each case runs on SQLite and, when ``RSNN_DEPLOY_TEST_POSTGRES`` is set, on PostgreSQL.

- An orphan: another process calls ``study.ask()`` and exits, leaving a RUNNING trial
  with no heartbeat row (what a worker killed between ``ask()`` and its first heartbeat
  leaves). Optuna alone never fails it and every worker used to wait at "N-1 of N" for
  ever; now the trial is failed after the grace period and the study completes.
- Two workers, one of them killed with SIGKILL at a random moment (fixed seeds: during
  start-up, while holding the study lock, mid-trial, ...), then restarted: the study ends
  with exactly ``--trials`` finished trials, no trial retried twice, and no worker hangs
  (every wait is bounded; a hang fails the test with the worker's log).

Trials are tiny (store-recall, 200 samples, 16 neurons, 1-2 epochs: ~0.1 s each), so a
case takes seconds, mostly Python start-up.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest

PG = os.environ.get("RSNN_DEPLOY_TEST_POSTGRES")
_MAIN = "import sys; from rsnn_deploy.cli import main; sys.exit(main(sys.argv[1:]))"
TASK = ["--task", "store-recall", "--task-param", "n_train=200", "--task-param", "n_test=50"]
BACKENDS = [
    "sqlite",
    pytest.param(
        "postgresql",
        marks=pytest.mark.requires("postgres"),  # tests/conftest.py: skips with the package, fails in CI
    ),
]
WAIT_S = 150  # per worker; a hang is a failure, never a stuck test run


@pytest.fixture
def storage(request, tmp_path):
    """(url, study name) on the requested backend; the PostgreSQL study is deleted afterwards."""
    name = f"fault-{uuid.uuid4().hex[:10]}"
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'study.db'}", name
        return
    yield PG, name
    with contextlib.suppress(KeyError):
        optuna.delete_study(study_name=name, storage=PG)


def _worker(url: str, study: str, out: Path, n: int, log: Path, epochs: int = 1) -> subprocess.Popen:
    cmd = [sys.executable, "-c", _MAIN, "tune", *TASK, "--variant", "rec", "--trials", str(n), "--study", study,
           "--storage", url, "--epochs", str(epochs), "--hidden", "16", "--pruner", "none",
           "--heartbeat-interval", "1", "--grace-period", "2", "-o", str(out)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)


def _wait(proc: subprocess.Popen, log: Path, timeout: float = WAIT_S) -> None:
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"worker hung (> {timeout} s):\n{log.read_text()[-3000:]}") from None
    assert rc == 0, log.read_text()[-3000:]


def _states(url: str, name: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in optuna.load_study(study_name=name, storage=url).trials:
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def _check_exact(url: str, name: str, n: int) -> None:
    """Exactly n finished trials, none running, and no failed trial retried (and finished) twice."""
    study = optuna.load_study(study_name=name, storage=url)
    states = _states(url, name)
    assert states.get("COMPLETE", 0) + states.get("PRUNED", 0) == n, states
    assert states.get("RUNNING", 0) == 0 and states.get("WAITING", 0) == 0, states
    retried = [t.system_attrs.get("failed_trial") for t in study.trials if t.state.is_finished()]
    retried = [r for r in retried if r is not None and r >= 0]
    assert len(retried) == len(set(retried)), retried
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers))


@pytest.mark.parametrize("storage", BACKENDS, indirect=True)
def test_trial_orphaned_before_its_first_heartbeat_is_reclaimed(storage, tmp_path):
    url, name = storage
    _wait(_worker(url, name, tmp_path / "out", 1, tmp_path / "w0.log"), tmp_path / "w0.log")
    # another process asks for a trial and exits at once: RUNNING, no heartbeat row
    ask = (
        "import sys, optuna; s = optuna.load_study(study_name=sys.argv[1], storage=sys.argv[2]); "
        "t = s.ask(); print(t.number)"
    )
    res = subprocess.run([sys.executable, "-c", ask, name, url], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert _states(url, name) == {"COMPLETE": 1, "RUNNING": 1}
    log = tmp_path / "w1.log"
    t0 = time.monotonic()
    _wait(_worker(url, name, tmp_path / "out", 3, log), log)  # used to wait at "2 of 3" for ever
    assert time.monotonic() - t0 < WAIT_S
    states = _states(url, name)
    assert states == {"COMPLETE": 3, "FAIL": 1}, states
    _check_exact(url, name, 3)


@pytest.mark.parametrize("storage", BACKENDS, indirect=True)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kill_9_of_one_of_two_workers_at_a_random_moment(storage, tmp_path, seed):
    url, name = storage
    n = 4
    out = tmp_path / "out"  # one folder: a retry continues from the dead trial's last epoch
    rng = random.Random(seed)
    logs = [tmp_path / "a.log", tmp_path / "b.log", tmp_path / "a2.log"]
    a = _worker(url, name, out, n, logs[0], epochs=2)
    b = _worker(url, name, out, n, logs[1], epochs=2)
    time.sleep(rng.uniform(0.5, 6.0))  # start-up, lock, ask, mid-trial or reporting: wherever it lands
    a.send_signal(signal.SIGKILL)
    a.wait()
    a2 = _worker(url, name, out, n, logs[2], epochs=2)  # the user restarts the dead worker
    _wait(b, logs[1])
    _wait(a2, logs[2])
    _check_exact(url, name, n)
