"""Ways to run a network, all behind one :class:`Backend` protocol and one registry.

A backend turns encoded input spikes ``uint8 [B, T, C]`` into a
:class:`~rsnn_deploy.trace.Trace` aligned with the float model's steps. The verifier
knows nothing else about it (like Lava's one process, many process models).

=====================  =========  ===============================================================
name                   runs       how
=====================  =========  ===============================================================
``torch-float``        model      the float checkpoint in torch (float32)
``torch-fakequant``    model      the same with the profile's fake quantization (QAT twin)
``emulator``           qnet       our batched, bit-exact integer emulator
``nengo``              qnet       nengo core, custom integer neuron type (any profile, adaptation)
``nengo-float``        model      nengo core, custom float neuron type (float64)
``nengo-loihi``        qnet       nengo-loihi's emulator (``target='sim'``), integers read back
``lava``               qnet       Lava 0.10's fixed-point LIF/ATRLIF + Dense (Python 3.10 side env)
=====================  =========  ===============================================================

Registering a backend
---------------------
A module registers its own backend explicitly, on import; nothing is discovered by
scanning sibling modules::

    from rsnn_deploy.backends import BackendSource, register_backend

    @register_backend("onnx-int", needs="qnet", description="onnxruntime, integer step graph")
    def _make(source: BackendSource) -> Backend:
        return OnnxIntBackend(source.qnet, progress=source.progress)

Modules listed in :data:`PLUGIN_MODULES`, and any registered under the
``rsnn_deploy.backends`` entry-point group, are imported by :func:`load_plugins`
(the CLI calls it), so a backend shipped in an optional module appears without
editing this file.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from rsnn_deploy.errors import UnsupportedError, ValidationError
from rsnn_deploy.trace import Trace, check_spikes

__all__ = [
    "PLUGIN_MODULES",
    "Backend",
    "BackendSource",
    "BackendSpec",
    "available_backends",
    "backend_spec",
    "check_input",
    "create_backend",
    "load_plugins",
    "register_backend",
]

Needs = Literal["model", "qnet"]
Progress = Callable[[int], None]
Comparison = Literal["agreement", "gap"]
"""What the verifier compares an integer backend on, against the integer reference (``emulator``):
``agreement``: spike by spike (below 100 % is a bug, the first divergence is located);
``gap``: the accuracy gap from the reference, beside the float -> hardware chain."""
Supports = Callable[[Any], "str | None"]


@runtime_checkable
class Backend(Protocol):
    """Runs one network on encoded inputs.

    Contract (checked for every backend by ``tests/test_backends.py``):

    - ``run`` accepts bool or 0/1 integer spikes ``[B, T, C]`` and returns a Trace with
      ``spikes`` bool ``[B, T, H]``, ``readout`` ``[B, T, K]``, ``logits`` ``[B, K]``;
      trace step ``t`` integrates input ``x[t]``;
    - every sample starts from rest: results do not depend on batch composition;
    - the same input gives the same trace; the input is not modified;
    - ``current``/``voltage``/``adaptation`` are None unless the backend was created
      with ``record_states=True``.
    """

    name: str

    def run(self, spikes: np.ndarray) -> Trace: ...


@dataclass(frozen=True)
class BackendSource:
    """What a backend may be built from; each factory takes what it needs.

    Attributes
    ----------
    model : RSNN or None
        The float model (torch), for ``torch-*`` and ``nengo-float``.
    qnet : QuantizedNetwork or None
        The integers, for ``emulator``, ``nengo``, ``nengo-loihi``.
    profile : HardwareProfile or None
        Target profile (``torch-fakequant`` needs it; integer backends default to ``qnet.profile``).
    record_states : bool
        Also return the neuron states.
    progress : callable or None
        Called with the number of samples finished after each chunk (for progress bars).
    """

    model: Any = None
    qnet: Any = None
    profile: Any = None
    record_states: bool = False
    progress: Progress | None = None


Factory = Callable[[BackendSource], Backend]


@dataclass(frozen=True)
class BackendSpec:
    """A registered backend: its name, what it needs, and how to make it."""

    name: str
    needs: Needs
    factory: Factory
    description: str = ""
    slow: bool = False
    integer: bool = False
    compare: tuple[Comparison, ...] = ()
    record_in_verify: bool = False
    supports: Supports | None = None

    def unsupported(self, qnet: Any) -> str | None:
        """Why this backend does not run ``qnet`` by default (None: it runs); asked before it is made."""
        return None if self.supports is None or qnet is None else self.supports(qnet)


_REGISTRY: dict[str, BackendSpec] = {}

PLUGIN_MODULES: tuple[str, ...] = ("rsnn_deploy.backends._onnx",)
"""Optional modules that register backends when imported (a missing one is skipped)."""


def register_backend(name: str, *, needs: Needs, description: str = "", slow: bool = False,
                     replace: bool = False, integer: bool = False, compare: tuple[Comparison, ...] = (),
                     record_in_verify: bool = False, supports: Supports | None = None
                     ) -> Callable[[Factory], Factory]:
    """Decorator: register ``factory(source) -> Backend`` under ``name``.

    What the verifier needs to know about a backend is declared here, never looked up by
    its name: ``integer`` (it runs the quantized integers), ``compare`` (the comparisons
    with the integer reference that apply, see :data:`Comparison`), ``record_in_verify``
    (record states on the slow subset so a divergence is located to the variable) and
    ``supports(qnet) -> reason | None`` (why it is skipped by default for a network).

    Raises
    ------
    ValidationError
        ``name`` is taken (pass ``replace=True`` to override deliberately) or ``needs`` is unknown.
    """
    if needs not in ("model", "qnet"):
        raise ValidationError(f"register_backend.needs: must be 'model' or 'qnet' (got {needs!r})")

    def deco(factory: Factory) -> Factory:
        if name in _REGISTRY and not replace and _REGISTRY[name].factory is not factory:
            raise ValidationError(f"register_backend.name: {name!r} is already registered; pass replace=True")
        _REGISTRY[name] = BackendSpec(name, needs, factory, description, slow, integer, tuple(compare),
                                      record_in_verify, supports)
        return factory

    return deco


_plugins_loaded = False


def load_plugins() -> None:
    """Import :data:`PLUGIN_MODULES` and ``rsnn_deploy.backends`` entry points so they can register.

    Called by every registry lookup, so plugins appear without the caller knowing about them; runs once.
    """
    import warnings

    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True

    for mod in PLUGIN_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as err:
            if err.name is not None and mod.startswith(err.name):
                continue  # the plugin itself is not installed: nothing to register
            warnings.warn(f"rsnn_deploy.backends: {mod} needs {err.name}, which is missing; its backends are "
                          "unavailable", RuntimeWarning, stacklevel=2)
    try:
        from importlib.metadata import entry_points

        for ep in entry_points(group="rsnn_deploy.backends"):
            ep.load()
    except Exception as err:  # a broken third-party plugin must not break the built-ins
        warnings.warn(f"rsnn_deploy.backends: a plugin failed to load ({err})", RuntimeWarning, stacklevel=2)


def available_backends() -> tuple[str, ...]:
    """Registered backend names, in registration order."""
    load_plugins()
    return tuple(_REGISTRY)


def backend_spec(name: str) -> BackendSpec:
    """The spec registered under ``name``; an unknown name is a one-line UnsupportedError listing the choices."""
    load_plugins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnsupportedError(
            f"backend: unknown backend (got {name!r}); choose from {', '.join(_REGISTRY)}"
        ) from None


def create_backend(name: str, source: BackendSource) -> Backend:
    """Make backend ``name`` from ``source``; refuses when ``source`` lacks what it needs."""
    spec = backend_spec(name)
    if getattr(source, spec.needs) is None:
        what = "a float checkpoint" if spec.needs == "model" else "a quantized network"
        raise UnsupportedError(f"backend {name}: needs {what} (got none)")
    return spec.factory(source)


def check_input(spikes: np.ndarray, n_inputs: int, owner: str) -> np.ndarray:
    """Validate ``[B, T, C]`` 0/1 spikes (one-line ValidationError naming ``owner``); returns them as uint8."""
    x = check_spikes(spikes, f"{owner}.spikes", ("B", "T", n_inputs), floats=False)
    return x.astype(np.uint8, copy=False)


def _register_builtins() -> None:
    from rsnn_deploy.backends import _emulator, _lava, _nengo, _nengo_loihi, _torch_fakequant, _torch_float

    for mod in (_torch_float, _torch_fakequant, _emulator, _nengo, _nengo_loihi, _lava):
        mod.register()


_register_builtins()
