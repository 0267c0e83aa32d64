"""The Python 3.10 side environment that runs Lava (lava-nc 0.10 does not install on 3.11+).

Where the interpreter comes from, in order:

1. ``RSNN_DEPLOY_LAVA_PYTHON``: a Python that already has ``lava`` (used as is), or a
   Python 3.10 to build the side environment from;
2. pyenv's 3.10: ``$(pyenv root)/versions/3.10.*/bin/python`` (``PYENV_ROOT`` or
   ``~/.pyenv``), then ``python3.10`` on ``PATH``.

The environment is built once, into ``~/.cache/rsnn-deploy/lava-venv-<version>``
(``RSNN_DEPLOY_CACHE`` moves the cache), by ``rsnn-deploy lava-env`` (with pip's progress)
or on first use; pip installs ``lava-nc==0.10.0`` from the configured package index.
Whatever is missing is said in one line (:class:`LavaUnavailable`).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

from rsnn_deploy.errors import UnsupportedError

__all__ = ["LAVA_VERSION", "LavaUnavailable", "ensure_env", "find_base_python", "lava_python", "venv_dir"]

LAVA_VERSION = "0.10.0"
ENV_VAR = "RSNN_DEPLOY_LAVA_PYTHON"


class LavaUnavailable(UnsupportedError):
    """Lava cannot run here; the message says what is missing, in one line."""


def _cache_root() -> Path:
    from rsnn_deploy.io import cache_root

    return cache_root()


def venv_dir() -> Path:
    """Where the side environment lives."""
    return _cache_root() / f"lava-venv-{LAVA_VERSION}"


def _venv_python(root: Path) -> Path:
    return root / "bin" / "python"


def _version(python: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True,
                             text=True, timeout=30, check=True).stdout.split()
        return int(out[0]), int(out[1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def _has_lava(python: str) -> bool:
    try:
        return subprocess.run([python, "-c", "import lava.proc.lif.process"], capture_output=True,
                              timeout=120).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def find_base_python() -> str:
    """A Python 3.10 interpreter (see the module docstring), or LavaUnavailable."""
    env = os.environ.get(ENV_VAR)
    if env:
        if _version(env) is None:
            raise LavaUnavailable(f"{ENV_VAR}={env}: not a working Python interpreter")
        return env
    root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    for cand in sorted(glob.glob(os.path.join(root, "versions", "3.10.*", "bin", "python")), reverse=True):
        if _version(cand) == (3, 10):
            return cand
    exe = shutil.which("python3.10")
    if exe and _version(exe) == (3, 10):
        return exe
    raise LavaUnavailable(
        f"lava: needs Python 3.10 for lava-nc {LAVA_VERSION} (not found: set {ENV_VAR}, or install 3.10 with pyenv)"
    )


def lava_python() -> str | None:
    """The interpreter that runs Lava if it is ready now (no building), else None."""
    env = os.environ.get(ENV_VAR)
    if env and _has_lava(env):
        return env
    py = _venv_python(venv_dir())
    if py.is_file() and (venv_dir() / ".complete").is_file():
        return str(py)
    return None


def ensure_env(progress: bool = False) -> str:
    """The interpreter that runs Lava, building the side environment first if needed.

    ``progress``: show pip's own output (``rsnn-deploy lava-env``); otherwise quiet.
    """
    ready = lava_python()
    if ready:
        return ready
    base = find_base_python()
    if _version(base) != (3, 10):
        raise LavaUnavailable(f"{ENV_VAR}={base}: lava-nc {LAVA_VERSION} needs Python 3.10 (got {_version(base)})")
    root = venv_dir()
    tmp = root.with_name(root.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    out = None if progress else subprocess.DEVNULL
    try:
        if progress:
            print(f"lava-env: creating {root} from {base}", file=sys.stderr, flush=True)
        subprocess.run([base, "-m", "venv", str(tmp)], check=True, stdout=out, stderr=out)
        if progress:
            print(f"lava-env: pip install lava-nc=={LAVA_VERSION}", file=sys.stderr, flush=True)
        pip = [str(_venv_python(tmp)), "-m", "pip", "install", "--disable-pip-version-check"]
        subprocess.run([*pip, *([] if progress else ["-q"]), f"lava-nc=={LAVA_VERSION}"], check=True,
                       stdout=out, stderr=out)
    except (OSError, subprocess.CalledProcessError) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise LavaUnavailable(
            f"lava: building {root} failed ({err}); run `rsnn-deploy lava-env` to see pip's output"
        ) from None
    shutil.rmtree(root, ignore_errors=True)
    # a venv's scripts name their own folder: rebuild them under the final name by moving and fixing paths
    tmp.rename(root)
    for script in (root / "bin").iterdir():
        if script.is_file() and not script.is_symlink():
            try:
                text = script.read_text()
            except UnicodeDecodeError:
                continue
            if str(tmp) in text:
                script.write_text(text.replace(str(tmp), str(root)))
    cfg = root / "pyvenv.cfg"
    cfg.write_text(cfg.read_text().replace(str(tmp), str(root)))
    if not _has_lava(str(_venv_python(root))):
        raise LavaUnavailable(f"lava: {root} was built but `import lava` fails there; delete it and rerun lava-env")
    (root / ".complete").write_text(LAVA_VERSION + "\n")
    return str(_venv_python(root))
