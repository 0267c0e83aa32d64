"""Distributed tuning on a real PostgreSQL server: worker processes sharing one study.

The server's URL comes from ``RSNN_DEPLOY_TEST_POSTGRES`` (CI's ``.ci/run`` starts
PostgreSQL and sets it to ``postgresql+psycopg2://rsnn:rsnn@127.0.0.1:5432/rsnn_test``).
Locally: ``pg_ctlcluster 15 main start`` as root, create the role and database as in
``.ci/run``, export the variable. Every test uses a fresh study name.

What is checked:
- two workers started together finish with exactly N trials: none lost, none duplicated
  (the cap is a critical section under a PostgreSQL advisory lock, not MaxTrialsCallback,
  which overshoots when both workers start a trial for the last slot);
- a worker SIGKILLed in the middle of a trial: its trial is failed by heartbeat, retried
  (same parameters, continuing from its last epoch) by the surviving worker, and the
  study completes with exactly N finished trials.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest

URL = os.environ.get("RSNN_DEPLOY_TEST_POSTGRES")
pytestmark = pytest.mark.requires("postgres")  # tests/conftest.py: RSNN_DEPLOY_TEST_POSTGRES, reachable
# the console script's own function (rsnn_deploy.cli:main), each worker in a fresh interpreter
_MAIN = "import sys; from rsnn_deploy.cli import main; sys.exit(main(sys.argv[1:]))"
TASK = ["--task", "store-recall", "--task-param", "n_train=200", "--task-param", "n_test=50"]


def _worker(study: str, out: Path, n_trials: int, epochs: int, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-c", _MAIN, "tune", *TASK, "--variant", "rec", "--trials", str(n_trials),
           "--study", study, "--storage", URL, "--epochs", str(epochs), "--hidden", "16", "--pruner", "none",
           "--heartbeat-interval", "1", "--grace-period", "3", "-o", str(out)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)


def _wait(proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"worker did not finish in {timeout} s:\n{log.read_text()[-3000:]}") from None
    assert rc == 0, log.read_text()[-3000:]


def _study(name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=URL)


def _states(study: optuna.Study) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in study.trials:
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


@pytest.fixture
def study_name():
    name = f"pytest-{uuid.uuid4().hex[:10]}"
    yield name
    with contextlib.suppress(KeyError):
        optuna.delete_study(study_name=name, storage=URL)


def test_two_workers_finish_exactly_n_trials(tmp_path, study_name):
    n = 4
    logs = [tmp_path / "w0.log", tmp_path / "w1.log"]
    procs = [_worker(study_name, tmp_path / f"w{i}", n, 1, logs[i]) for i in range(2)]
    for p, log in zip(procs, logs, strict=True):
        _wait(p, log)
    study = _study(study_name)
    assert _states(study) == {"COMPLETE": n}
    assert sorted(t.number for t in study.trials) == list(range(n))
    # every trial trained once, in the folder of the worker that ran it
    dirs = [Path(t.user_attrs["trial_dir"]) for t in study.trials]
    assert len(set(dirs)) == n and all((d / "model.json").is_file() for d in dirs)
    for log in logs:  # both workers printed the final summary against the same study
        assert f"study {study_name}: {n} complete" in log.read_text()


EPOCHS = 4


def test_killed_worker_trial_is_retried_and_study_completes(tmp_path, study_name):
    n, out = 3, tmp_path / "shared"  # one folder: the retry continues from the dead trial's checkpoint
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    a = _worker(study_name, out, n, EPOCHS, log_a)
    first = out / "trials" / "0000" / "resume.json"
    deadline = time.monotonic() + 90
    while not first.is_file():  # mid-trial: the first of EPOCHS epochs is saved
        assert a.poll() is None, log_a.read_text()[-3000:]
        assert time.monotonic() < deadline, "worker A never started training"
        time.sleep(0.05)
    a.send_signal(signal.SIGKILL)
    a.wait()
    assert _states(_study(study_name)) == {"RUNNING": 1}

    b = _worker(study_name, out, n, EPOCHS, log_b)
    _wait(b, log_b)
    study = _study(study_name)
    states = _states(study)
    assert states == {"FAIL": 1, "COMPLETE": n}, states
    failed = next(t for t in study.trials if t.state == optuna.trial.TrialState.FAIL)
    assert failed.number == 0
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == 0]
    assert len(retries) == 1
    retry = retries[0]
    assert retry.state == optuna.trial.TrialState.COMPLETE and retry.params == failed.params
    assert retry.user_attrs["resumed_from_retry"] is True
    history = (Path(retry.user_attrs["trial_dir"]) / "metrics.jsonl").read_text().splitlines()
    assert len(history) == EPOCHS  # the epochs done before the kill were kept, not retrained from scratch
