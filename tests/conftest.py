"""Shared pytest configuration: markers and the optional system components tests may need.

A test that needs a component which is not installed skips with one line naming the
package (``@pytest.mark.requires("fashion-mnist")`` on the test, or :func:`require` inside
it); none errors. ``RSNN_DEPLOY_REQUIRE=fashion-mnist,postgres,cc`` (what ``.ci/run`` sets
after installing them) turns those skips into failures, so CI cannot pass while skipping
what it installed.
"""

from __future__ import annotations

import functools
import importlib
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

REQUIRE_ENV = "RSNN_DEPLOY_REQUIRE"
# component -> the one-line reason a test skips with when it is missing
COMPONENTS: dict[str, str] = {
    "fashion-mnist": "needs Fashion-MNIST: Debian package dataset-fashion-mnist (apt-get install "
    "dataset-fashion-mnist) in /usr/share/datasets/fashion-mnist",
    "postgres": "needs PostgreSQL: Debian package postgresql, reachable at $RSNN_DEPLOY_TEST_POSTGRES "
    "(postgresql+psycopg2://USER:PW@HOST/DB; .ci/run starts one)",
    "cc": "needs a C compiler: Debian packages gcc and libc6-dev (apt-get install gcc libc6-dev)",
    # peers installed without their dependencies (they would replace the CPU torch): see .ci/run
    "norse": "needs Norse: pip install --no-deps norse==1.1.0",
    "spikingjelly": "needs SpikingJelly: pip install --no-deps spikingjelly==2.0.0",
    "neurobench": "needs NeuroBench: pip install --no-deps neurobench==2.3.0",
    "xylosim": "needs xylosim 0.1.3 (SynSense's Xylo simulator, a C++ sdist): pip install xylosim==0.1.3 "
    "(needs g++; .ci/run caches its wheel)",
    "rockpool": "needs Rockpool 3.1 and nirtorch for its NIR reader: pip install --no-deps rockpool==3.1.0 nirtorch",
    "nir-1.0.4": "needs the nir 1.0.4 wheel (what Rockpool / Sinabs pin): pip download --no-deps nir==1.0.4 -d "
    ".ci/wheels (or set RSNN_DEPLOY_NIR_1_0_4_WHEEL)",
    "lava": "needs Lava 0.10: Python 3.10 (pyenv's 3.10.13, or RSNN_DEPLOY_LAVA_PYTHON) and its side environment, "
    "built by rsnn-deploy lava-env",
}
# component -> the module whose import proves it is there
_MODULES = {
    "norse": "norse.torch",
    "spikingjelly": "spikingjelly",
    "neurobench": "neurobench",
    "xylosim": "xylosim",
    "rockpool": "rockpool.nn.modules.torch.nir",
}


def _fashion_present() -> bool:
    from rsnn_deploy.tasks import _fashion

    d = _fashion.DEFAULT_DATA_DIR
    return all((d / f"{stem}.gz").is_file() or (d / stem).is_file() for stem in _fashion.FILES.values())


def _postgres_present() -> bool:
    url = os.environ.get("RSNN_DEPLOY_TEST_POSTGRES")
    if not url:
        return False
    try:
        import sqlalchemy

        engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect():
            pass
        engine.dispose()
    except Exception:  # any failure to connect means: not available here
        return False
    return True


def _cc_present() -> bool:
    if shutil.which(os.environ.get("CC") or "cc") is None:
        return False
    from rsnn_deploy import native

    return native.library() is not None


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except Exception:  # absent, or present but broken: either way the tests cannot use it
        return False
    return True


def nir_104_wheel() -> Path:
    """Where the nir 1.0.4 wheel is expected (``.ci/run`` downloads it; tests unpack it into a temporary folder)."""
    env = os.environ.get("RSNN_DEPLOY_NIR_1_0_4_WHEEL")
    return Path(env) if env else Path(__file__).resolve().parents[1] / ".ci" / "wheels" / "nir-1.0.4-py3-none-any.whl"


def lava_skip_reason() -> str | None:
    """Why tests that run the real Lava cannot run here (None: they can). One line, naming what is missing.

    The same text the ``lava`` backend gives when verify skips it.
    """
    from rsnn_deploy.lava_env import LavaUnavailable, find_base_python, lava_python, venv_dir

    if lava_python() is not None:
        return None
    try:
        base = find_base_python()
    except LavaUnavailable as err:
        return str(err)
    return f"lava: side environment not built at {venv_dir()} (Python 3.10: {base}); run rsnn-deploy lava-env"


def _lava_present() -> bool:
    return lava_skip_reason() is None


_CHECKS = {
    "lava": _lava_present,
    "nir-1.0.4": lambda: nir_104_wheel().is_file(),
    "fashion-mnist": _fashion_present,
    "postgres": _postgres_present,
    "cc": _cc_present,
    **{name: functools.partial(_importable, module) for name, module in _MODULES.items()},
}


@functools.cache
def available(component: str) -> bool:
    """Whether ``component`` (a key of :data:`COMPONENTS`) is installed and usable here."""
    return _CHECKS[component]()


def required_components() -> set[str]:
    """Components ``RSNN_DEPLOY_REQUIRE`` says must be present (their tests fail instead of skipping)."""
    names = {n.strip() for n in os.environ.get(REQUIRE_ENV, "").split(",") if n.strip()}
    unknown = names - set(COMPONENTS)
    if unknown:
        raise pytest.UsageError(f"{REQUIRE_ENV}: unknown component {sorted(unknown)[0]!r}; known: {sorted(COMPONENTS)}")
    return names


def require(component: str) -> None:
    """Skip the running test (or fail it, where ``RSNN_DEPLOY_REQUIRE`` names the component) when it is missing."""
    if component not in COMPONENTS:
        raise KeyError(component)
    if available(component):
        return
    if component in required_components():
        pytest.fail(f"{COMPONENTS[component]} -- but {REQUIRE_ENV} requires {component}", pytrace=False)
    pytest.skip(COMPONENTS[component])


def require_module(component: str) -> Any:
    """:func:`require` for a Python peer, returning its module (the replacement of ``pytest.importorskip``)."""
    require(component)
    return importlib.import_module(_MODULES[component])


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "nengo_loihi: runs the real nengo-loihi emulator (target='sim'); slower, needs nengo-loihi"
    )
    config.addinivalue_line(
        "markers", f"requires(component): skips without it, one of {', '.join(COMPONENTS)} (see tests/conftest.py)"
    )
    config.addinivalue_line(
        "markers", "lava: runs the real Lava 0.10 in its Python 3.10 side environment (rsnn-deploy lava-env)"
    )
    required_components()  # an unknown name is a usage error before anything runs


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("requires"):
        for component in mark.args:
            require(component)
    if item.get_closest_marker("lava") is not None:
        require("lava")


@pytest.fixture
def restore_torch_threads() -> Any:
    """Put torch's thread count back after a test that changes it (training and tuning set it)."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)
