"""Shared pytest configuration: markers only (keep this file minimal)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "nengo_loihi: runs the real nengo-loihi emulator (target='sim'); slower, needs nengo-loihi"
    )
