"""The :class:`Semantics` record: everything the pipeline asks about one integer semantics.

Why one object: a profile's ``semantics`` used to be a string compared in nine modules, each
holding its own copy of what the answer meant (which step, which overflow names, whether a
C loop exists). Every consumer now asks the object :func:`rsnn_deploy.semantics.for_profile`
returns; adding a semantics is one module that builds one of these and one registry entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rsnn_deploy.hardware import HardwareProfile

__all__ = ["Semantics"]


@dataclass(frozen=True, eq=False)
class Semantics:
    """One integer semantics (the value of a profile's ``semantics`` key).

    Attributes
    ----------
    key : the profile's ``semantics`` string.
    short : short name used in file metadata (the ONNX integer graph's ``semantics`` family).
    comparison : the threshold comparison the step makes (``threshold.comparison`` must equal it).
    q_overflow : the ``state.q_overflow`` the step implements (``"wrap"``: q wraps; ``"none"``: counted only).
    overflow_names : names of the three wrap counters of the state's ``overflow`` (``Trace.overflow`` keys).
    extra_state : state carried beyond u and v, in the ONNX integer graph's order.
    adaptation, refractory, voltage_floor, synapse : what the step can honour; a profile asking
        for more is refused when it loads.
    records_adaptation : ``Trace.adaptation`` (and ``refractory`` for ATRLIF) is recorded.
    params(qnet, profile) : the step's parameters; initial_state(batch, n_hidden, dtype) : the rest state.
    step(state, q, params, out=None) -> (spikes, state) : the pure integer step (numpy is the definition).
    state_from_signals(u, v, adaptation, ref_count, spikes, overflow) : a state over a nengo neuron's signals.
    native : a C loop exists for this semantics at all.
    native_ok(params) : whether the C loop (``emulator_kernels.c``) covers a run with these parameters.
    chip_backend : the backend that runs the chip's own simulator for this semantics.
    deploy_backends : integer backends ``deploy`` verifies on besides torch-float and emulator.
    u_decay_never_max : the chip's compiler never reaches the largest u decay with offset 1 (nengo-loihi).
    anchor_input : the chip's compiler scales a block by its largest float weight, so the quantizer puts
        the input connection at the largest exponent when no weight reaches the top (nengo-loihi).
    network : the integer network type the step runs (``QuantizedNetwork``; Xylo: ``XyloNetwork``).
    profile_loader(name_or_path) : loads this semantics' profiles when they have their own schema
        (Xylo); None: :func:`rsnn_deploy.hardware.load_profile`.
    builtin_profiles : built-in profile names that load through ``profile_loader``.
    """

    key: str
    short: str
    description: str
    comparison: str
    q_overflow: str
    overflow_names: tuple[str, str, str]
    extra_state: tuple[str, ...]
    adaptation: tuple[str, ...]
    refractory: bool
    voltage_floor: bool
    synapse: bool
    records_adaptation: bool
    params: Callable[..., Any]
    initial_state: Callable[..., Any]
    step: Callable[..., Any]
    state_from_signals: Callable[..., Any]
    native_ok: Callable[[Any], bool]
    native: bool = False
    chip_backend: str | None = None
    deploy_backends: tuple[str, ...] = ()
    u_decay_never_max: bool = False
    anchor_input: bool = False
    network: str = "QuantizedNetwork"
    profile_loader: Callable[[Any], Any] | None = None
    builtin_profiles: tuple[str, ...] = ()

    def refusal(self, profile: HardwareProfile) -> str | None:
        """Why ``profile`` asks for something this semantics cannot do (``"dotted.key: problem"``), or None."""
        where = f"for semantics {self.key!r}"
        if profile.threshold.comparison != self.comparison:
            return f"threshold.comparison: must be {self.comparison!r} {where} (got {profile.threshold.comparison!r})"
        if profile.state.q_overflow != self.q_overflow:
            return f"state.q_overflow: must be {self.q_overflow!r} {where} (got {profile.state.q_overflow!r})"
        extra = [k for k in profile.features.adaptation if k not in self.adaptation]
        if extra:
            allowed = ", ".join(self.adaptation) or "none"
            return f"features.adaptation: {extra[0]!r} is not in the step {where} (it has: {allowed})"
        for feature in ("refractory", "voltage_floor", "synapse"):
            if getattr(profile.features, feature) and not getattr(self, feature):
                return f"features.{feature}: must be false {where} (its step has none)"
        return None
