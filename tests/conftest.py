"""Shared pytest configuration: markers only (keep this file minimal)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "nengo_loihi: runs the real nengo-loihi emulator (target='sim'); slower, needs nengo-loihi"
    )
    config.addinivalue_line(
        "markers", "lava: runs the real Lava 0.10 in its Python 3.10 side environment (rsnn-deploy lava-env)"
    )


def lava_skip_reason() -> str | None:
    """Why tests that run the real Lava cannot run here (None: they can). One line, naming what is missing."""
    from rsnn_deploy.lava_env import LavaUnavailable, find_base_python, lava_python, venv_dir

    if lava_python() is not None:
        return None
    try:
        base = find_base_python()
    except LavaUnavailable as err:
        return str(err)
    return f"lava: side environment not built at {venv_dir()} (Python 3.10: {base}); run rsnn-deploy lava-env"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = None
    for item in items:
        if item.get_closest_marker("lava") is not None:
            reason = reason or lava_skip_reason() or ""
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))
