"""Any profile by name or file, whichever schema it has: the lookup above every profile loader.

Why above: a Loihi profile loads through :mod:`rsnn_deploy.hardware`, a Xylo profile through its
registry entry's own loader (:mod:`rsnn_deploy.semantics.xylo_profile`); which one applies is the
profile's ``semantics`` key, so the dispatch needs the registry and both loaders, and lives here
rather than inside either (no import cycle between the registry and the Loihi loader).

>>> from rsnn_deploy.profiles import load_any_profile, profile_semantics
>>> profile_semantics("xylo-audio2").key, type(load_any_profile("loihi2")).__name__
('xylo-bitshift', 'HardwareProfile')
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from rsnn_deploy import hardware, semantics
from rsnn_deploy.errors import ValidationError
from rsnn_deploy.semantics import Semantics

__all__ = ["is_xylo_profile", "load_any_profile", "profile_semantics"]


def profile_semantics(name_or_path: str | Path) -> Semantics:
    """The semantics of a profile given as a built-in name, a registered name or a TOML path, without
    validating the whole profile (which schema validates it depends on the answer).

    Raises
    ------
    ValidationError
        Unknown name, missing file, bad TOML or an unknown ``semantics`` key, naming the file.
    """
    text = str(name_or_path)
    for sem in (semantics.get(k) for k in semantics.known()):
        if text in sem.builtin_profiles:
            return sem
    if isinstance(name_or_path, Path) or text.endswith(".toml") or "/" in text:
        path = Path(text)
        if not path.is_file():
            raise ValidationError(f"{path}: hardware profile file not found")
        try:
            key = tomllib.loads(path.read_text("utf-8")).get("semantics")
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise ValidationError(f"{path}: not a valid TOML file ({err})") from None
        if not isinstance(key, str) or key not in semantics.known():
            raise ValidationError(
                f"{path}: semantics: unknown integer semantics (got {key!r}); use one of {', '.join(semantics.known())}"
            )
        return semantics.get(key)
    # built-in or registered Loihi-schema names; the Loihi loader refuses the others
    return semantics.for_profile(hardware.load_profile(text))


def load_any_profile(name_or_path: str | Path) -> Any:
    """The loaded profile through its semantics' own loader: a ``HardwareProfile`` (Loihi schema) or,
    for a semantics with ``profile_loader`` (Xylo), that loader's profile type."""
    sem = profile_semantics(name_or_path)
    loader = sem.profile_loader or hardware.load_profile
    return loader(name_or_path)


def is_xylo_profile(name_or_path: str | Path) -> bool:
    """Whether ``name_or_path`` names a profile whose semantics steps a ``XyloNetwork`` (a built-in
    Xylo name or a TOML file with ``semantics = "xylo-bitshift"``): the registry's answer, False for
    anything it cannot read (the Loihi loader then names the problem)."""
    try:
        return profile_semantics(name_or_path).network == "XyloNetwork"
    except ValidationError:
        return False
