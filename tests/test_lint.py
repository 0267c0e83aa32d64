"""The code base stays ruff-clean (the project's style gate runs with the tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_clean():
    paths = [p for p in ("rsnn_deploy", "tests", "benchmarks", "examples", "scripts") if (ROOT / p).exists()]
    res = subprocess.run([sys.executable, "-m", "ruff", "check", *paths], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:]


def _mypy_baseline() -> int:
    lines = (ROOT / "tests" / "mypy_baseline.txt").read_text().splitlines()
    return int(next(line for line in lines if line.strip() and not line.startswith("#")))


def test_mypy_errors_do_not_grow():
    """``mypy rsnn_deploy`` (config in pyproject.toml, cache in .mypy_cache) reports no more errors than allowed."""
    import re

    import pytest

    pytest.importorskip("mypy", reason="mypy is not installed (pip install -e '.[test]')")
    res = subprocess.run([sys.executable, "-m", "mypy", "rsnn_deploy"], cwd=ROOT, capture_output=True, text=True)
    found = re.search(r"Found (\d+) errors? in", res.stdout)
    if found is None:
        assert res.returncode == 0 and "Success" in res.stdout, (res.stdout + res.stderr)[-3000:]
    count = int(found.group(1)) if found else 0
    baseline = _mypy_baseline()
    assert count <= baseline, (
        f"mypy: {count} errors, the baseline (tests/mypy_baseline.txt) allows {baseline}; fix the new ones:\n"
        + res.stdout[-3000:]
    )
