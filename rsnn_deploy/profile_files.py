"""Where a built-in profile's TOML lives, and one profile error line: shared by every profile loader.

Why a module of its own: the Loihi loader (:mod:`rsnn_deploy.hardware`) imports the semantics
registry, and the registry's Xylo entry loads Xylo profiles (:mod:`rsnn_deploy.xylo.profile`);
both loaders need these two helpers, so they sit below both and neither imports the other.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from pydantic import ValidationError as PydanticValidationError

__all__ = ["builtin_profile_path", "format_profile_error"]


def _repo_hardware_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "hardware"


def builtin_profile_path(name: str) -> Path:
    """The TOML file behind a built-in name: the checkout's ``hardware/`` first, else the packaged copy."""
    repo = _repo_hardware_dir() / f"{name}.toml"
    if repo.is_file():
        return repo
    packaged = resources.files("rsnn_deploy") / "_profiles" / f"{name}.toml"
    return Path(str(packaged))


def format_profile_error(err: PydanticValidationError, where: str) -> str:
    """First pydantic error as ``FILE: dotted.key: problem (got value)``."""
    first = err.errors()[0]
    key = ".".join(str(part) for part in first["loc"])
    msg = first["msg"]
    got = first.get("input")
    got_txt = "" if isinstance(got, dict) else f" (got {got!r})"
    if first["type"] == "value_error":
        # our validators say "sub.key: problem (got ...)"; join it onto the section's key
        msg = msg.removeprefix("Value error, ")
        got_txt = ""
        head, sep, rest = msg.partition(": ")
        if sep and re.fullmatch(r"[\w.]+", head):
            key = f"{key}.{head}" if key else head
            msg = rest
    return f"{where}: {key or '<root>'}: {msg}{got_txt}"
