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
