"""Finding Lava's Python 3.10 and saying in one line what is missing (no Lava needed for these)."""

from __future__ import annotations

import sys

import pytest

from rsnn_deploy import lava_env
from rsnn_deploy.lava_env import LavaUnavailable


@pytest.fixture
def no_lava(tmp_path, monkeypatch):
    """An empty cache, no pyenv, no python3.10 on PATH."""
    monkeypatch.setenv("RSNN_DEPLOY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "no-pyenv"))
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.delenv(lava_env.ENV_VAR, raising=False)
    return tmp_path


def test_missing_python_is_one_line(no_lava):
    assert lava_env.lava_python() is None
    with pytest.raises(LavaUnavailable, match=r"^lava: needs Python 3\.10 for lava-nc 0\.10\.0 \(not found: set "
                                              r"RSNN_DEPLOY_LAVA_PYTHON, or install 3\.10 with pyenv\)$"):
        lava_env.ensure_env()


def test_setting_wins_and_a_wrong_version_is_named(no_lava, monkeypatch):
    monkeypatch.setenv(lava_env.ENV_VAR, sys.executable)  # Python 3.11 without lava: not usable for Lava
    assert lava_env.find_base_python() == sys.executable
    assert lava_env.lava_python() is None
    with pytest.raises(LavaUnavailable, match=r"needs Python 3\.10 \(got \(3, 11\)\)"):
        lava_env.ensure_env()
    monkeypatch.setenv(lava_env.ENV_VAR, str(no_lava / "nothing"))
    with pytest.raises(LavaUnavailable, match=r"not a working Python interpreter"):
        lava_env.find_base_python()


def test_cli_and_backend_say_what_is_missing(no_lava, capsys):
    from test_qnet import make_qnet

    from rsnn_deploy.backends import BackendSource, create_backend
    from rsnn_deploy.cli import main

    assert main(["lava-env"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "needs Python 3.10" in err
    with pytest.raises(LavaUnavailable, match=r"needs Python 3\.10"):
        create_backend("lava", BackendSource(qnet=make_qnet("loihi2")))
    from rsnn_deploy.errors import UnsupportedError

    with pytest.raises(UnsupportedError, match=r"runs Lava's LIF/ATRLIF \(profile loihi2\)"):
        create_backend("lava", BackendSource(qnet=make_qnet("loihi1")))
