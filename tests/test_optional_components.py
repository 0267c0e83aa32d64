"""A missing optional component (Fashion-MNIST, PostgreSQL, a C compiler) skips its tests, never errors.

Each case runs pytest in a subprocess with the components hidden: the Fashion-MNIST
directory pointed at an empty folder, ``CC`` at a compiler that does not exist, the
PostgreSQL URL unset. Every affected test must skip with a reason naming the package;
with ``RSNN_DEPLOY_REQUIRE`` (what ``.ci/run`` sets) the same skips must fail the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import COMPONENTS, REQUIRE_ENV

ROOT = Path(__file__).resolve().parent.parent
# the shipped sfmnist-row model needs the Debian data: it used to raise DataError here
SELECTION = [
    "tests/test_tasks.py::test_fashion_row_real",
    "tests/test_tasks.py::test_fashion_pixel_real",
    "tests/test_nengo_build.py::test_shipped_loihi1_models_agree_on_every_spike[sfmnist-row-rec-syn-loihi1]",
    "tests/test_native_kernels.py::test_native_two_threads_same_result",
    "tests/test_emulator_loihi1.py::test_native_loop_equals_numpy_loop",
    "tests/test_tune_postgres.py",
]
# hide Fashion-MNIST from the tests and from rsnn_deploy alike, then run pytest
_RUN = (
    "import sys, pytest; from pathlib import Path; import rsnn_deploy.tasks._fashion as f; "
    "f.DEFAULT_DATA_DIR = Path(sys.argv[1]); sys.exit(pytest.main(sys.argv[2:]))"
)


def _run_hidden(tmp_path: Path, require: str | None) -> subprocess.CompletedProcess[str]:
    empty = tmp_path / "no-fashion"
    empty.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("RSNN_DEPLOY_TEST_POSTGRES", REQUIRE_ENV)}
    env.update(CC=str(tmp_path / "no-such-cc"), RSNN_DEPLOY_CACHE=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    if require is not None:
        env[REQUIRE_ENV] = require
    cmd = [sys.executable, "-c", _RUN, str(empty), "-q", "-rs", "-p", "no:cacheprovider", *SELECTION]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_missing_components_skip_with_the_package_named(tmp_path):
    res = _run_hidden(tmp_path, None)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert "error" not in out.lower().split("short test summary")[-1], out[-3000:]
    skips = [line for line in out.splitlines() if line.startswith("SKIPPED")]
    assert skips, out[-3000:]
    reasons = set(COMPONENTS.values())
    for line in skips:  # one consistent reason per component, naming the package
        assert any(line.endswith(r) for r in reasons), line
    for component in ("dataset-fashion-mnist", "postgresql", "gcc"):
        assert any(component in line for line in skips), (component, skips)
    assert " passed" not in out.splitlines()[-1], out.splitlines()[-1]  # everything selected needs a component


def test_required_components_fail_instead_of_skipping(tmp_path):
    res = _run_hidden(tmp_path, "fashion-mnist,postgres,cc")
    out = res.stdout + res.stderr
    assert res.returncode == 1, out[-3000:]
    assert "skipped" not in out.splitlines()[-1], out.splitlines()[-1]
    for component in ("fashion-mnist", "postgres", "cc"):
        assert f"{REQUIRE_ENV} requires {component}" in out, component


def test_unknown_required_component_is_a_usage_error(tmp_path):
    res = _run_hidden(tmp_path, "fashion-mnist,lava2")
    assert res.returncode == 4 and "unknown component 'lava2'" in res.stdout + res.stderr
