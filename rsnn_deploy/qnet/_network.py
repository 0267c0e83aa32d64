"""The :class:`QuantizedNetwork` type: the integers every hardware backend runs, validated on construction.

A quantized network is pure data (like nengo-loihi's ``LoihiBlock``, but a separate,
frozen type instead of floats discretized in place). Every backend consumes it and
none re-derives integers on its own. Integer fields are int64 in memory and int32 on
disk; the host readout is the only float part.

Fields (H hidden neurons, C inputs, K outputs)
----------------------------------------------
w_in : [H, C]
    Integer added to ``q`` of neuron h per input spike of channel c, *after* the
    chip's mantissa/exponent scaling (what nengo-loihi's emulator adds).
w_rec : [H, H] or None
    Same for hidden spikes of the previous step (``w_rec[post, pre]``).
bias : [H]
    Integer bias (``mantissa << exponent``).
decay_u, decay_v : [H]
    12-bit decay registers ``d``: ``x <- sign(x) * ((|x| * (4096 - offset - d)) >> 12)``
    with the profile's offsets (loihi1/loihi2: 1 for u, 0 for v).
vth : [H]
    Effective threshold ``mantissa << 6`` (loihi2: ATRLIF's ``theta_0``).
refractory : [H]
    nengo-loihi ``ref`` (1 = no refractory step beyond the spike step).
vmin, vmax : int
    Voltage clip range (loihi1 default floor 0).
decay_theta, theta_step : [H] or None
    Threshold adaptation (loihi2): decay register of ``theta - theta_0`` and the
    effective increment per spike (``mantissa << 6``); None when absent.
decay_r : [H] or None
    Set for Lava ATRLIF neurons (loihi2 adaptive networks): decay register of the
    refractory state ``r`` (``r += 2 theta`` on a spike; spike if ``v - r >= theta``; no
    voltage reset). None: LIF neurons (reset to zero).
input_latency : int
    Steps between a host input spike and its arrival in ``q`` (the profile's).
w_out [K, H], b_out [K], readout_decay, readout_mode
    Host readout (float32), see :func:`rsnn_deploy.trace.host_readout`.
block_sizes, float_scale
    How the hidden neurons split into blocks (one core each, quantized separately)
    and each block's scale: integer voltage units per float unit of the float model.
encoder
    The input code of the model it was quantized from (the JSON record of
    :class:`~rsnn_deploy.tasks.input_encoder.InputEncoder`), so that a host can turn raw
    signals into its input spikes; None for networks that only take spikes.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from rsnn_deploy.errors import ValidationError

FORMAT = "rsnn-deploy/qnet"
FORMAT_VERSION = 1

_INT_VECTORS = ("bias", "decay_u", "decay_v", "vth", "refractory")
_OPTIONAL_INT_VECTORS = ("decay_theta", "theta_step", "decay_r")
_INT32_MAX = (1 << 31) - 1


def _int_array(name: str, value: Any, ndim: int) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise ValidationError(f"QuantizedNetwork.{name}: must be an integer array (got dtype {arr.dtype})")
    if arr.ndim != ndim:
        raise ValidationError(f"QuantizedNetwork.{name}: must have {ndim} dimensions (got shape {arr.shape})")
    out = arr.astype(np.int64, copy=True)
    if out.size and (out.max() > _INT32_MAX or out.min() < -_INT32_MAX):
        raise ValidationError(f"QuantizedNetwork.{name}: values must fit in int32 (got {out.max()})")
    out.flags.writeable = False
    return out


def _float_array(name: str, value: Any, ndim: int) -> np.ndarray:
    arr = np.asarray(value)
    if not np.issubdtype(arr.dtype, np.floating) and not np.issubdtype(arr.dtype, np.integer):
        raise ValidationError(f"QuantizedNetwork.{name}: must be a float array (got dtype {arr.dtype})")
    if arr.ndim != ndim:
        raise ValidationError(f"QuantizedNetwork.{name}: must have {ndim} dimensions (got shape {arr.shape})")
    out = arr.astype(np.float32, copy=True)
    if not np.isfinite(out).all():
        raise ValidationError(f"QuantizedNetwork.{name}: must be finite (got non-finite values)")
    out.flags.writeable = False
    return out


@dataclass(frozen=True, eq=False)
class QuantizedNetwork:
    """Integer network for one hardware profile; see the module docstring for each field.

    Arrays are copied to read-only int64 (integers) or float32 (readout) on
    construction, so an instance cannot change after it was validated.
    """

    w_in: np.ndarray
    w_rec: np.ndarray | None
    bias: np.ndarray
    decay_u: np.ndarray
    decay_v: np.ndarray
    vth: np.ndarray
    refractory: np.ndarray
    vmin: int
    vmax: int
    w_out: np.ndarray
    b_out: np.ndarray
    readout_decay: float
    readout_mode: str
    profile: str
    profile_sha256: str
    input_latency: int
    decay_theta: np.ndarray | None = None
    theta_step: np.ndarray | None = None
    decay_r: np.ndarray | None = None
    block_sizes: tuple[int, ...] = ()
    float_scale: tuple[float, ...] = ()
    source: str = ""
    format_version: int = FORMAT_VERSION
    encoder: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        # the checks run in this order, so that the first field named is the same whatever the caller
        self._put("w_in", _int_array("w_in", self.w_in, 2))
        h, c = self.w_in.shape
        if h < 1 or c < 1:
            raise ValidationError(f"QuantizedNetwork.w_in: must be [H, C] with H, C >= 1 (got shape {(h, c)})")
        self._check_neurons(h)
        self._check_readout(h)
        self._check_layout(h, c)

    def _put(self, name: str, value: Any) -> None:
        """Replace a field of the frozen instance (only while it is validated)."""
        object.__setattr__(self, name, value)

    def _check_neurons(self, h: int) -> None:
        """The chip's integers: weights, per-neuron registers, their ranges and the voltage clip."""
        put = self._put
        if self.w_rec is not None:
            put("w_rec", _int_array("w_rec", self.w_rec, 2))
            if self.w_rec.shape != (h, h):
                raise ValidationError(f"QuantizedNetwork.w_rec: must be [{h}, {h}] (got shape {self.w_rec.shape})")
        for name in _INT_VECTORS:
            put(name, _int_array(name, getattr(self, name), 1))
            if getattr(self, name).shape != (h,):
                raise ValidationError(
                    f"QuantizedNetwork.{name}: must have shape [{h}] (got {getattr(self, name).shape})"
                )
        if (self.decay_theta is None) != (self.theta_step is None):
            raise ValidationError(
                "QuantizedNetwork.theta_step: decay_theta and theta_step must be given together "
                f"(got decay_theta={'set' if self.decay_theta is not None else None}, "
                f"theta_step={'set' if self.theta_step is not None else None})"
            )
        for name in _OPTIONAL_INT_VECTORS:
            if getattr(self, name) is not None:
                put(name, _int_array(name, getattr(self, name), 1))
                if getattr(self, name).shape != (h,):
                    raise ValidationError(
                        f"QuantizedNetwork.{name}: must have shape [{h}] (got {getattr(self, name).shape})"
                    )
        if self.decay_r is not None and self.decay_theta is None:
            raise ValidationError(
                "QuantizedNetwork.decay_r: ATRLIF's refractory decay needs decay_theta and theta_step (got none)"
            )
        for name in ("decay_u", "decay_v", "decay_theta", "decay_r"):
            arr = getattr(self, name)
            if arr is not None and arr.size and arr.min() < 0:
                raise ValidationError(f"QuantizedNetwork.{name}: must be >= 0 (got {arr.min()})")
        if self.vth.min() <= 0:
            raise ValidationError(f"QuantizedNetwork.vth: must be positive (got {self.vth.min()})")
        if self.refractory.min() < 0:
            raise ValidationError(f"QuantizedNetwork.refractory: must be >= 0 (got {self.refractory.min()})")
        if self.theta_step is not None and self.theta_step.min() < 0:
            raise ValidationError(f"QuantizedNetwork.theta_step: must be >= 0 (got {self.theta_step.min()})")
        put("vmin", int(self.vmin))
        put("vmax", int(self.vmax))
        if not self.vmin <= 0 < self.vmax:
            raise ValidationError(
                f"QuantizedNetwork.vmin: need vmin <= 0 < vmax (got vmin={self.vmin}, vmax={self.vmax})"
            )

    def _check_readout(self, h: int) -> None:
        """The host readout (float32): weights, bias, decay and mode."""
        put = self._put
        put("w_out", _float_array("w_out", self.w_out, 2))
        if self.w_out.shape[1] != h or self.w_out.shape[0] < 1:
            raise ValidationError(f"QuantizedNetwork.w_out: must be [K, {h}], K >= 1 (got shape {self.w_out.shape})")
        put("b_out", _float_array("b_out", self.b_out, 1))
        if self.b_out.shape != (self.w_out.shape[0],):
            raise ValidationError(
                f"QuantizedNetwork.b_out: must have shape [{self.w_out.shape[0]}] (got {self.b_out.shape})"
            )
        put("readout_decay", float(self.readout_decay))
        if not 0.0 <= self.readout_decay < 1.0:
            raise ValidationError(f"QuantizedNetwork.readout_decay: must lie in [0, 1) (got {self.readout_decay})")
        if self.readout_mode not in ("mean", "last"):
            raise ValidationError(
                f"QuantizedNetwork.readout_mode: must be 'mean' or 'last' (got {self.readout_mode!r})"
            )

    def _check_layout(self, h: int, c: int) -> None:
        """Input latency, the blocks and their scales, the profile's name and the input code."""
        put = self._put
        put("input_latency", int(self.input_latency))
        if not 0 <= self.input_latency <= 64:
            raise ValidationError(f"QuantizedNetwork.input_latency: must lie in [0, 64] (got {self.input_latency})")
        sizes = tuple(int(s) for s in self.block_sizes) or (h,)
        if any(s < 1 for s in sizes) or sum(sizes) != h:
            raise ValidationError(
                f"QuantizedNetwork.block_sizes: must be positive and sum to {h} (got {list(sizes)})"
            )
        put("block_sizes", sizes)
        scales = tuple(float(s) for s in self.float_scale)
        if scales and len(scales) != len(sizes):
            raise ValidationError(
                f"QuantizedNetwork.float_scale: needs one value per block ({len(sizes)}) (got {len(scales)})"
            )
        put("float_scale", scales)
        if not isinstance(self.profile, str) or not self.profile:
            raise ValidationError(f"QuantizedNetwork.profile: must be a profile name (got {self.profile!r})")
        if self.encoder is not None:
            from rsnn_deploy.tasks.input_encoder import InputEncoder

            enc = InputEncoder.from_dict(dict(self.encoder), "QuantizedNetwork.encoder")
            if enc.n_channels != c:
                raise ValidationError(
                    f"QuantizedNetwork.encoder: has {enc.n_channels} channels, the network {c} inputs"
                )
            put("encoder", enc.to_dict())

    @property
    def input_encoder(self) -> Any:
        """The recorded :class:`~rsnn_deploy.tasks.input_encoder.InputEncoder`, or None (spikes only)."""
        if self.encoder is None:
            return None
        from rsnn_deploy.tasks.input_encoder import InputEncoder

        return InputEncoder.from_dict(dict(self.encoder), "QuantizedNetwork.encoder")

    @property
    def n_inputs(self) -> int:
        return int(self.w_in.shape[1])

    @property
    def n_hidden(self) -> int:
        return int(self.w_in.shape[0])

    @property
    def n_outputs(self) -> int:
        return int(self.w_out.shape[0])

    @property
    def has_adaptation(self) -> bool:
        """True when some neuron's threshold adapts (a non-zero ``theta_step``)."""
        return self.theta_step is not None and bool(np.any(self.theta_step))

    @property
    def is_atrlif(self) -> bool:
        """True for Lava ATRLIF neurons (``decay_r`` set): refractory state ``r``, no voltage reset."""
        return self.decay_r is not None

    @property
    def adapt_kind(self) -> str | None:
        """The adaptation the integers need: ``"atrlif"``, ``"threshold"`` or None."""
        if self.is_atrlif:
            return "atrlif"
        return "threshold" if self.has_adaptation else None

    @property
    def block_slices(self) -> tuple[slice, ...]:
        edges = np.cumsum((0, *self.block_sizes))
        return tuple(slice(int(a), int(b)) for a, b in itertools.pairwise(edges))
