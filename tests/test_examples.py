"""Every example's ``--quick`` mode runs as a user would run it and checks its own printed result.

Each example ends with one machine-readable line, ``RESULT ok key=value ...`` (or
``RESULT fail...`` with exit code 1). Running them as subprocesses keeps them honest:
they must work from a fresh interpreter, with nothing but the installed package.
These are the slowest tests (each example < 1 min on 2 cores, imports included).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TIMEOUT_S = 300  # far above the < 1 min budget: a hang fails instead of blocking CI


def run_quick(name: str, tmp_path: Path) -> dict[str, str]:
    """Run ``examples/NAME --quick``; return the key=value pairs of its RESULT line (asserting it is ok)."""
    script = EXAMPLES / name
    assert script.is_file(), f"{name} is missing from examples/"
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, str(script), "--quick"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=TIMEOUT_S)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")]
    tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-25:])
    assert lines, f"{name}: no RESULT line (exit {proc.returncode})\n{tail}"
    assert proc.returncode == 0 and lines[-1].startswith("RESULT ok"), f"{name}: {lines[-1]}\n{tail}"
    return dict(re.findall(r"(\w+)=(\S+)", lines[-1]))


def test_quickstart(tmp_path):
    r = run_quick("quickstart.py", tmp_path)
    assert float(r["emulator"]) > 0.3  # ten classes: chance is 0.1
    assert abs(float(r["gap_pp"])) < 10.0


@pytest.mark.nengo_loihi
def test_hil_streaming(tmp_path):
    r = run_quick("hil_streaming.py", tmp_path)
    assert r["identical_spikes"] == "True" and r["identical_predictions"] == "True"
    assert float(r["median_ms"]) > 0 and float(r["p95_ms"]) >= float(r["median_ms"])


@pytest.mark.nengo_loihi
def test_hil_closed_loop(tmp_path):
    r = run_quick("hil_closed_loop.py", tmp_path)
    assert r["identical_spikes"] == "True"
    assert float(r["in_band"]) >= float(r["baseline"]) + 0.2


def test_bring_your_own_data(tmp_path):
    r = run_quick("bring_your_own_data.py", tmp_path)
    assert r["stream_agrees"] == "True"
    assert float(r["emulator"]) > 1 / 3 + 0.2  # three classes


@pytest.mark.parametrize("name", ["paper_steps.py", "tau_sweep.py"])
def test_tuning_examples(tmp_path, name):
    """The tuning engineer's examples: their own checks decide (``RESULT ok`` and exit 0)."""
    run_quick(name, tmp_path)
