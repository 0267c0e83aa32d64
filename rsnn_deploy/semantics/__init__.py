"""The semantics registry: one :class:`Semantics` object per integer semantics, looked up by the profile.

A hardware profile names its integer semantics (``semantics = "nengo-loihi-1.1"``); the
emulator, the nengo neuron type, the ONNX integer graph, hil, verify, the quantizer and the
exporters ask the object this registry returns instead of comparing the string:

>>> from rsnn_deploy.hardware import load_profile
>>> from rsnn_deploy import semantics
>>> sem = semantics.for_profile(load_profile("loihi1"))
>>> sem.key, sem.overflow_names, sem.chip_backend
('nengo-loihi-1.1', ('q', 'u', 'u2'), 'nengo-loihi')

Built in: :mod:`.loihi1` (``nengo-loihi-1.1``), :mod:`.loihi2` (``lava-lif-atrlif``) and :mod:`.xylo`
(``xylo-bitshift``, SynSense Xylo). Xylo's step runs its own network type (``sem.network ==
"XyloNetwork"``) and its profiles their own schema (:mod:`.xylo_profile`); ``profile_semantics`` and
``load_any_profile`` of :mod:`rsnn_deploy.profiles` find any profile, Loihi's or Xylo's, by one lookup:

>>> from rsnn_deploy.profiles import load_any_profile, profile_semantics
>>> profile_semantics("xylo-audio2").network, load_any_profile("xylo-imu").limits.max_hidden
('XyloNetwork', 496)

Adding one: a module building a :class:`Semantics` and :func:`register` (``docs/adding_a_profile.md``).
A profile naming an unknown semantics, or asking for a feature its semantics cannot honour,
is refused when it loads, naming the key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rsnn_deploy.semantics import loihi1, loihi2, xylo
from rsnn_deploy.semantics._base import Semantics

if TYPE_CHECKING:
    from rsnn_deploy.hardware import HardwareProfile

__all__ = [
    "Semantics",
    "for_profile",
    "get",
    "known",
    "register",
    "unregister",
]

_REGISTRY: dict[str, Semantics] = {}


def register(sem: Semantics, replace: bool = False) -> Semantics:
    """Add ``sem`` under ``sem.key``; a taken key is refused unless ``replace`` (a deliberate override)."""
    if sem.key in _REGISTRY and not replace and _REGISTRY[sem.key] is not sem:
        raise ValueError(f"semantics.register: {sem.key!r} is already registered; pass replace=True")
    _REGISTRY[sem.key] = sem
    return sem


def unregister(key: str) -> None:
    """Remove a registered semantics (tests and plugins that registered a toy one)."""
    if key in (loihi1.SEMANTICS.key, loihi2.SEMANTICS.key, xylo.SEMANTICS.key):
        raise ValueError(f"semantics.unregister: {key!r} is built in")
    _REGISTRY.pop(key, None)


def known() -> tuple[str, ...]:
    """Registered semantics keys, in registration order."""
    return tuple(_REGISTRY)


def get(key: str) -> Semantics:
    """The semantics registered under ``key``; KeyError with the known keys otherwise."""
    try:
        return _REGISTRY[key]
    except KeyError:
        raise KeyError(f"semantics: unknown integer semantics (got {key!r}); known: {', '.join(_REGISTRY)}") from None


def for_profile(profile: HardwareProfile) -> Semantics:
    """The semantics of a loaded profile (its ``semantics`` key was checked at load)."""
    return get(profile.semantics)


register(loihi1.SEMANTICS)
register(loihi2.SEMANTICS)
register(xylo.SEMANTICS)
