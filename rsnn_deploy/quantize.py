"""Float model -> integers for a hardware profile (PTQ), and the same grid for training (QAT).

One scale ``s`` (integer units per float voltage unit) serves a whole block: the
integer network is the float network times ``s``, rounded onto the profile's grids:

- weights: ``mantissa * 2**(e + exponent_offset)``, a multiple of ``granularity``, with
  one exponent ``e`` per connection (input, recurrent) chosen as small as the largest
  weight of that connection allows (the most mantissa bits);
- threshold: ``mantissa << shift``; ``s`` is adjusted so that ``threshold * s`` is
  exactly on that grid (the float threshold stays exact);
- decays: the integer ``d`` whose effective retention ``(2**bits - offset - d) / 2**bits``
  is nearest to the float ``a = exp(-dt/tau)``.

``s`` is the largest value such that the largest weight fits the mantissa at the
largest exponent, ``threshold * s`` leaves 2**6 headroom under the voltage width, and
(PTQ only) the states measured on calibration data stay under half of their
wrap-around range. QAT uses the same rule without calibration data, so a model
trained with ``--qat`` lands on the grid PTQ chooses unless calibration shows overflow.

What the profile cannot do is refused with a one-line :class:`UnsupportedError`,
never silently changed.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from rsnn_deploy import semantics
from rsnn_deploy.config import ModelConfig
from rsnn_deploy.errors import UnsupportedError
from rsnn_deploy.hardware import HardwareProfile, load_profile
from rsnn_deploy.model import RSNN
from rsnn_deploy.neuron import NeuronParams

if TYPE_CHECKING:
    from rsnn_deploy.qnet import QuantizedNetwork

HEADROOM_BITS = 6  # threshold * s <= 2**(v_bits - HEADROOM_BITS)
CALIBRATION_MARGIN = 0.5  # measured peaks may use at most this fraction of a state's range


# ----------------------------------------------------------------------------- decays


def _decay_limits(profile: HardwareProfile, offset: int) -> tuple[int, int]:
    d_max = profile.decay.max
    if semantics.for_profile(profile).u_decay_never_max and offset == 1:
        # nengo-loihi derives du = round(clip(decay*4095 - 1, 0, 4095)) from tau, which never reaches 4095
        d_max -= 1
    return 0, d_max


def decay_to_int(a: np.ndarray | float, profile: HardwareProfile, offset: int) -> np.ndarray:
    """Integer decay whose effective retention is nearest to ``a`` (float retention per step)."""
    unity = 1 << profile.decay.bits
    lo, hi = _decay_limits(profile, offset)
    d = np.rint(unity - offset - np.asarray(a, dtype=np.float64) * unity)
    return np.clip(d, lo, hi).astype(np.int64)


def retention_of(d: np.ndarray | int, profile: HardwareProfile, offset: int) -> np.ndarray:
    """Effective retention per step of integer decay ``d`` (before truncation)."""
    unity = 1 << profile.decay.bits
    return (unity - offset - np.asarray(d, dtype=np.float64)) / unity


def effective_tau_ms(retention: np.ndarray, dt_ms: float) -> np.ndarray:
    """``tau = -dt / ln(a)``; inf where nothing decays, 0 where everything does."""
    r = np.asarray(retention, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.where(r >= 1.0, np.inf, np.where(r <= 0.0, 0.0, -dt_ms / np.log(np.clip(r, 1e-300, 1.0))))


# ----------------------------------------------------------------------------- weights and scale


@dataclass(frozen=True)
class WeightGrid:
    """The grid of one connection: integer = mantissa * step, |mantissa * step| <= limit."""

    exponent: int
    step: int  # integer weight resolution (>= granularity)
    lo: int  # smallest integer weight
    hi: int  # largest integer weight


def weight_grid(max_abs_scaled: float, profile: HardwareProfile, min_exponent: int | None = None) -> WeightGrid:
    """Smallest exponent whose mantissa range holds ``max_abs_scaled`` (clipped to the profile's range)."""
    fmt = profile.weight
    exponent = fmt.exponent_max
    lowest = fmt.exponent_min if min_exponent is None else max(fmt.exponent_min, min_exponent)
    for e in range(lowest, fmt.exponent_max + 1):
        if max_abs_scaled <= fmt.mantissa_max * 2.0 ** (e + fmt.exponent_offset):
            exponent = e
            break
    unit = 1 << (exponent + fmt.exponent_offset)
    step = max(unit, fmt.granularity)
    hi = (fmt.mantissa_max * unit) // step * step
    lo = -((-fmt.mantissa_min * unit) // step * step)
    return WeightGrid(exponent, step, lo, hi)


def quantize_weights(w_scaled: np.ndarray, grid: WeightGrid) -> tuple[np.ndarray, int]:
    """Round scaled weights onto ``grid``; returns integers and how many were clipped."""
    q = np.rint(w_scaled / grid.step) * grid.step
    clipped = int(((q < grid.lo) | (q > grid.hi)).sum())
    return np.clip(q, grid.lo, grid.hi).astype(np.int64), clipped


def threshold_grid(profile: HardwareProfile, atrlif: bool = False) -> tuple[int, int]:
    """(step, largest value) of the integer threshold (``atrlif``: ATRLIF's narrower ``theta_0``)."""
    step = 1 << profile.threshold.shift
    bits = profile.threshold.mantissa_bits
    if atrlif and profile.adaptation is not None and profile.adaptation.theta0_mantissa_bits is not None:
        bits = profile.adaptation.theta0_mantissa_bits
    return step, ((1 << bits) - 1) * step


def weight_scale_limit(weights: list[np.ndarray], profile: HardwareProfile) -> float:
    """Largest ``s`` at which the largest weight still fits the mantissa at the largest exponent."""
    w_max = max((float(np.abs(w).max()) for w in weights if w.size), default=0.0)
    fmt = profile.weight
    if w_max == 0.0:
        return math.inf
    return fmt.mantissa_max * 2.0 ** (fmt.exponent_max + fmt.exponent_offset) / w_max


def choose_scale(threshold: float, weights: list[np.ndarray], profile: HardwareProfile,
                 calib_peaks: dict[str, float] | None = None, atrlif: bool = False) -> float:
    """The block scale ``s`` (integer units per float unit), with ``threshold * s`` on the threshold grid.

    Without calibration data (QAT) ``s`` depends only on the weights and the threshold.
    With it (PTQ) ``s`` is halved while the wrapping states (``q``, ``u``) would use
    more than ``CALIBRATION_MARGIN`` of their range; halving keeps every weight
    mantissa (the exponent drops by one), so a QAT model stays on the grid it trained on.
    The voltage clips instead of wrapping, so its peak is reported, not enforced.
    """
    s = min(weight_scale_limit(weights, profile), 2.0 ** (profile.state.v_bits - HEADROOM_BITS) / threshold)
    step, vth_max = threshold_grid(profile, atrlif)

    def snap(scale: float) -> float:
        return min(max(math.floor(threshold * scale / step), 1) * step, vth_max) / threshold

    s = snap(s)
    if calib_peaks:
        bits = {"q": profile.state.q_bits, "u": profile.state.u_bits}
        while s * threshold > step and any(
            calib_peaks.get(k, 0.0) * s > CALIBRATION_MARGIN * 2.0**b for k, b in bits.items()
        ):
            s = snap(s / 2)
    return s


# ----------------------------------------------------------------------------- feature checks


def check_supported(cfg: ModelConfig, profile: HardwareProfile, taus_ms: dict[str, np.ndarray]) -> None:
    """Refuse, with the reason, what ``profile`` cannot run."""
    where = f"--target {profile.name}"
    if cfg.adaptation:
        if not profile.features.adaptation:
            raise UnsupportedError(
                f"{where}: variant {cfg.variant} needs adaptation, which {profile.name} cannot run "
                "(nengo-loihi has no adaptation on Loihi 1); use --target loihi2 or a variant without adaptation"
            )
        if cfg.n_adaptive is not None and cfg.n_adaptive < cfg.n_hidden:
            raise UnsupportedError(
                f"{where}: n_adaptive={cfg.n_adaptive} of {cfg.n_hidden} neurons adapt (a mixed LIF + adaptive "
                f"population); {profile.name} holds one adaptation decay per population, so this model is float only"
            )
        if cfg.adapt_kind not in profile.features.adaptation:
            raise UnsupportedError(
                f"{where}: adapt_kind {cfg.adapt_kind!r} is not supported "
                f"(profile supports {', '.join(profile.features.adaptation)})"
            )
    if cfg.refractory_steps > 0 and not profile.features.refractory:
        raise UnsupportedError(
            f"{where}: refractory_steps={cfg.refractory_steps} but {profile.name} has no refractory period"
        )
    if cfg.refractory_steps + 1 > profile.refractory.max_steps:
        raise UnsupportedError(
            f"{where}: refractory_steps={cfg.refractory_steps} exceeds the profile's {profile.refractory.max_steps - 1}"
        )
    if cfg.v_floor is not None and not profile.features.voltage_floor:
        raise UnsupportedError(
            f"{where}: v_floor={cfg.v_floor} but {profile.name} has no voltage floor; train without --v-floor"
        )
    if not profile.features.per_neuron_decays:
        for name, tau in taus_ms.items():
            if np.unique(tau).size > 1:
                raise UnsupportedError(
                    f"{where}: {name} differs between neurons but {profile.name} has one decay per block; "
                    "train with shared time constants (per_neuron_tau = false)"
                )
    if profile.dt_ms is not None and abs(cfg.dt_ms - profile.dt_ms) > 1e-12:
        raise UnsupportedError(f"{where}: model dt {cfg.dt_ms} ms differs from the profile's {profile.dt_ms} ms")


def check_decay_range(name: str, a: np.ndarray, d: np.ndarray, profile: HardwareProfile, offset: int,
                      dt_ms: float, tau_ms: np.ndarray) -> None:
    """Refuse time constants the decay register cannot represent (too long: nothing would decay)."""
    r = retention_of(d, profile, offset)
    bad = (r >= 1.0) & (a < 1.0)
    if bad.any():
        longest = effective_tau_ms(retention_of(_decay_limits(profile, offset)[0] + 1, profile, offset), dt_ms)
        raise UnsupportedError(
            f"--target {profile.name}: {name} = {float(tau_ms[bad][0]):g} ms is beyond the "
            f"{profile.decay.bits}-bit decay range (longest about {float(longest):.0f} ms)"
        )


# ----------------------------------------------------------------------------- QAT


class _RoundSTE(torch.autograd.Function):
    """Round to a grid in the forward pass, identity gradient (straight-through)."""

    @staticmethod
    def forward(ctx, x: Tensor, step: float, lo: float, hi: float) -> Tensor:  # type: ignore[override]
        return torch.clamp(torch.round(x / step) * step, lo, hi)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return grad, None, None, None


class FakeQuant:
    """Maps effective float parameters onto a profile's grid (weights STE, decays snapped).

    With it attached (``RSNN.fake_quant``), the float model computes the hardware model
    up to the truncation of decays and the wrap-around of states.
    """

    def __init__(self, profile: HardwareProfile):
        self.profile = profile

    def __call__(self, p: NeuronParams) -> NeuronParams:
        prof = self.profile
        weights = [p.w_in.detach().cpu().numpy()]
        if p.w_rec is not None:
            weights.append(p.w_rec.detach().cpu().numpy())
        s = choose_scale(p.threshold, weights, prof, atrlif=p.adapt_kind == "atrlif")

        def fq(w: Tensor | None) -> Tensor | None:
            if w is None:
                return None
            grid = weight_grid(float(w.detach().abs().max()) * s, prof)
            return _RoundSTE.apply(w * s, float(grid.step), float(grid.lo), float(grid.hi)) / s

        bias = None
        if p.bias is not None:
            bias = _RoundSTE.apply(p.bias * s, 1.0, -float(2**prof.state.u_bits), float(2**prof.state.u_bits)) / s
        adapt_strength = p.adapt_strength
        if p.adapt_kind is not None and prof.adaptation is not None:
            a_step = 1 << prof.adaptation.step_shift
            adapt_strength = round(p.adapt_strength * s / a_step) * a_step / s
        return p._replace(
            adapt_strength=adapt_strength,
            w_in=fq(p.w_in),
            w_rec=fq(p.w_rec),
            bias=bias,
            a_syn=self._snap(p.a_syn, prof.decay.u_offset),
            a_mem=self._snap(p.a_mem, prof.decay.v_offset),
            a_adapt=self._snap(p.a_adapt, prof.decay.theta_offset),
            a_refr=self._snap(p.a_refr, prof.decay.r_offset) if p.a_refr is not None else None,
        )

    def _snap(self, a: Tensor, offset: int) -> Tensor:
        """Decay retention snapped to the profile's grid, straight-through for trainable taus."""
        d = decay_to_int(a.detach().cpu().numpy(), self.profile, offset)
        snapped = torch.as_tensor(retention_of(d, self.profile, offset), dtype=a.dtype, device=a.device)
        return a + (snapped - a).detach()


def attach_fake_quant(model: RSNN, profile: str | HardwareProfile) -> FakeQuant:
    """Turn ``model`` into its QAT twin for ``profile`` (refusing what the profile cannot run)."""
    prof = load_profile(profile) if isinstance(profile, str) else profile
    taus = {name: getattr(model, name).detach().cpu().numpy() for name in model.tau_names()}
    check_supported(model.cfg, prof, taus)
    fq = FakeQuant(prof)
    model.fake_quant = fq
    return fq


# ----------------------------------------------------------------------------- PTQ


@torch.no_grad()
def calibration_peaks(model: RSNN, x: Tensor) -> dict[str, float]:
    """Largest |q| (input per step), |u| and |v| (before reset) of the float model on ``x`` [B, T, C].

    Computed with the float model's own arithmetic; multiplied by a block scale they
    predict the integer peaks, so ``s`` can be chosen to avoid wrap-around.
    """
    p = model.effective_params()
    tr = model.trace(x)
    i = tr.current.double()
    a_syn = p.a_syn.double()
    q = i.clone()
    q[:, 1:] -= a_syn * i[:, :-1]
    v_prev = torch.zeros_like(tr.voltage[:, :1]).double()
    v_before = torch.cat([v_prev, tr.voltage[:, :-1].double()], 1) * p.a_mem.double() + i
    if p.bias is not None:
        v_before = v_before + p.bias.double()
    return {"q": float(q.abs().max()), "u": float(i.abs().max()), "v": float(v_before.abs().max())}


def _bias_to_int(b_scaled: np.ndarray, profile: HardwareProfile) -> np.ndarray:
    fmt = profile.bias
    out = np.zeros(b_scaled.shape, dtype=np.int64)
    for k, value in enumerate(b_scaled):
        for e in range(fmt.exponent_max + 1):
            m = round(value / 2**e)
            if fmt.mantissa_min <= m <= fmt.mantissa_max:
                out[k] = m << e if m >= 0 else -((-m) << e)
                break
        else:
            raise UnsupportedError(f"--target {profile.name}: bias {value:g} exceeds the bias range")
    return out


def _nearest_vmin(v_floor: float | None, s: float, profile: HardwareProfile) -> int:
    choices = profile.voltage.vmin_choices
    if v_floor is None:
        return min(choices)
    return min(choices, key=lambda c: abs(c - v_floor * s))


def quantize_model(model: RSNN, profile: str | HardwareProfile, calib_x: Tensor | None = None,
                   source: str = "") -> tuple[QuantizedNetwork, dict]:
    """Post-training quantization of ``model`` for ``profile``; returns the network and a report.

    ``calib_x`` (input spikes [B, T, C]) lets the block scale back off where the
    float states would overflow the integer widths.
    """
    from rsnn_deploy.qnet import QuantizedNetwork, check_representable, validate_for

    prof = load_profile(profile) if isinstance(profile, str) else profile
    cfg = model.cfg
    model = model.cpu().eval()
    saved_fq, model.fake_quant = model.fake_quant, None
    try:
        p = model.effective_params()
        taus = {name: getattr(model, name).detach().double().numpy() for name in model.tau_names()}
        check_supported(cfg, prof, taus)
        peaks = calibration_peaks(model, calib_x.float()) if calib_x is not None else None
    finally:
        model.fake_quant = saved_fq
    h = cfg.n_hidden
    w_in = p.w_in.detach().double().numpy()
    w_rec = p.w_rec.detach().double().numpy() if p.w_rec is not None else None
    bias = p.bias.detach().double().numpy() if p.bias is not None else np.zeros(h)

    per_core = prof.limits.compartments_per_core
    sizes = [min(per_core, h - k) for k in range(0, h, per_core)]
    edges = np.cumsum([0, *sizes])
    blocks = [slice(int(a), int(b)) for a, b in itertools.pairwise(edges)]

    atrlif = cfg.adaptation and cfg.adapt_kind == "atrlif"
    q_in, q_rec, q_bias, vth, scales, weight_report = _quantize_blocks(cfg, prof, blocks, w_in, w_rec, bias, peaks)

    dt = cfg.dt_ms
    d_u = decay_to_int(p.a_syn.detach().double().numpy(), prof, prof.decay.u_offset)
    d_v = decay_to_int(p.a_mem.detach().double().numpy(), prof, prof.decay.v_offset)
    check_decay_range("tau_mem", p.a_mem.detach().double().numpy(), d_v, prof, prof.decay.v_offset, dt,
                      np.broadcast_to(taus["tau_mem"], (h,)))
    if cfg.synapse:
        check_decay_range("tau_syn", p.a_syn.detach().double().numpy(), d_u, prof, prof.decay.u_offset, dt,
                          np.broadcast_to(taus["tau_syn"], (h,)))
    decay_theta = theta_step = None
    if cfg.adaptation:
        decay_theta, theta_step = _adaptation_registers(cfg, prof, p.a_adapt.detach().double().numpy(), blocks,
                                                        scales, np.broadcast_to(taus["tau_adapt"], (h,)))
    decay_r = None
    if atrlif:
        assert p.a_refr is not None
        a_r = p.a_refr.detach().double().numpy()
        decay_r = decay_to_int(a_r, prof, prof.decay.r_offset)
        check_decay_range("tau_refr", a_r, decay_r, prof, prof.decay.r_offset, dt,
                          np.broadcast_to(taus["tau_refr"], (h,)))

    qnet = QuantizedNetwork(
        w_in=q_in, w_rec=q_rec, bias=q_bias, decay_u=d_u, decay_v=d_v, vth=vth,
        refractory=np.full(h, cfg.refractory_steps + 1, dtype=np.int64),
        vmin=_nearest_vmin(cfg.v_floor, min(scales), prof), vmax=max(prof.voltage.vmax_choices),
        w_out=model.w_out.detach().numpy(), b_out=model.b_out.detach().numpy(),
        readout_decay=float(model.readout_decay()), readout_mode=cfg.readout_mode,
        profile=prof.name, profile_sha256=prof.sha256, input_latency=prof.timing.input_latency_steps,
        decay_theta=decay_theta, theta_step=theta_step, decay_r=decay_r, block_sizes=tuple(sizes),
        float_scale=tuple(scales),
        source=source,
    )
    check_representable(qnet, prof)
    validate_for(qnet, prof)
    report = _report(model, prof, qnet, taus, d_u, d_v, decay_theta, weight_report, peaks)
    return qnet, report


def _quantize_blocks(
    cfg: ModelConfig, prof: HardwareProfile, blocks: list[slice], w_in: np.ndarray, w_rec: np.ndarray | None,
    bias: np.ndarray, peaks: dict[str, float] | None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray, list[float], list[dict]]:
    """Per block of neurons (one core): its scale, then its weights, bias and threshold as integers.

    Returns ``(w_in, w_rec, bias, vth, scales, weight_report)``.
    """
    h = cfg.n_hidden
    atrlif = cfg.adaptation and cfg.adapt_kind == "atrlif"
    q_in = np.zeros((h, cfg.n_in), dtype=np.int64)
    q_rec = np.zeros((h, h), dtype=np.int64) if w_rec is not None else None
    q_bias = np.zeros(h, dtype=np.int64)
    vth = np.zeros(h, dtype=np.int64)
    scales: list[float] = []
    weight_report: list[dict] = []
    for j, post in enumerate(blocks):
        rows = [w_in[post]] + ([w_rec[post]] if w_rec is not None else [])
        s = choose_scale(cfg.threshold, rows, prof, peaks, atrlif=atrlif)
        scales.append(s)
        vth[post] = round(cfg.threshold * s)
        tiles = [("w_in", w_in, q_in, slice(None))]
        if w_rec is not None:
            tiles += [(f"w_rec[{j}<-{k}]", w_rec, q_rec, pre) for k, pre in enumerate(blocks)]
        block_report = [_quantize_tile(name, w[post, pre] * s, q, (post, pre), j, prof) for name, w, q, pre in tiles]
        # nengo-loihi sets a block's weight scale from its largest float weight; when no integer weight of the
        # block is the largest one, compile adds a silent anchor input carrying it, so the input connection
        # must then sit at the largest exponent (see backends.nengo._loihi).
        w_top = prof.weight.mantissa_max * 2 ** (prof.weight.exponent_max + prof.weight.exponent_offset)
        top_used = any(np.abs(q[post, pre]).max(initial=0) == w_top for _, _, q, pre in tiles)
        low_input = block_report[0]["exponent"] < prof.weight.exponent_max
        if semantics.for_profile(prof).anchor_input and not top_used and low_input:
            block_report[0] = _quantize_tile("w_in", w_in[post] * s, q_in, (post, slice(None)), j, prof,
                                             min_exponent=prof.weight.exponent_max)
        weight_report += block_report
        q_bias[post] = _bias_to_int(bias[post] * s, prof)
    return q_in, q_rec, q_bias, vth, scales, weight_report


def _adaptation_registers(
    cfg: ModelConfig, prof: HardwareProfile, a_ad: np.ndarray, blocks: list[slice], scales: list[float],
    tau_adapt: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The adaptation's decay register and its per-spike step ``theta_step`` (a mantissa at the block scale)."""
    h = cfg.n_hidden
    decay_theta = decay_to_int(a_ad, prof, prof.decay.theta_offset)
    check_decay_range("tau_adapt", a_ad, decay_theta, prof, prof.decay.theta_offset, cfg.dt_ms, tau_adapt)
    assert prof.adaptation is not None  # check_supported refused otherwise
    step = 1 << prof.adaptation.step_shift
    theta_step = np.zeros(h, dtype=np.int64)
    m_max = (1 << prof.adaptation.step_mantissa_bits) - 1
    for j, post in enumerate(blocks):
        m = round(cfg.adapt_strength * scales[j] / step)
        if m > m_max:
            raise UnsupportedError(
                f"--target {prof.name}: adapt_strength {cfg.adapt_strength:g} exceeds the "
                f"{prof.adaptation.step_mantissa_bits}-bit theta_step range at this scale"
            )
        theta_step[post] = m * step
    return decay_theta, theta_step


def _quantize_tile(name: str, scaled: np.ndarray, out: np.ndarray, where: tuple[slice, slice], block: int,
                   prof: HardwareProfile, min_exponent: int | None = None) -> dict:
    """Quantize one connection tile into ``out[where]``; returns its report row."""
    grid = weight_grid(float(np.abs(scaled).max(initial=0.0)), prof, min_exponent)
    ints, clipped = quantize_weights(scaled, grid)
    out[where] = ints
    mant = np.abs(ints) // (1 << max(grid.exponent + prof.weight.exponent_offset, 0))
    err = ints - scaled
    return {
        "connection": name if name != "w_in" else f"w_in[{block}]",
        "block": block,
        "exponent": grid.exponent,
        "step": grid.step,
        "largest_mantissa": int(mant.max(initial=0)),
        "bits_used": int(np.ceil(np.log2(float(mant.max(initial=0)) + 1))) + 1,
        "levels_used": int(np.unique(ints).size),
        "clipped": clipped,
        "zeroed": int(((ints == 0) & (scaled != 0)).sum()),
        "rms_error_rel": float(np.sqrt((err**2).mean()) / max(np.abs(scaled).max(initial=0.0), 1e-30)),
    }


def _tau_rows(name: str, tau_ms: np.ndarray, d: np.ndarray, prof: HardwareProfile, offset: int, dt: float) -> dict:
    eff = effective_tau_ms(retention_of(d, prof, offset), dt)
    trained = np.broadcast_to(tau_ms, eff.shape).astype(np.float64)
    rel = (eff - trained) / trained
    return {
        "name": name,
        "trained_ms": trained.tolist() if np.unique(trained).size > 1 else float(trained[0]),
        "decay_int": d.tolist() if np.unique(d).size > 1 else int(d[0]),
        "effective_ms": eff.tolist() if np.unique(eff).size > 1 else float(eff[0]),
        "max_rel_error": float(np.abs(rel).max()),
    }


def _report(model: RSNN, prof: HardwareProfile, qnet: QuantizedNetwork, taus: dict[str, np.ndarray], d_u, d_v,
            d_theta, weights: list[dict], peaks: dict[str, float] | None) -> dict:
    from rsnn_deploy.qnet import placement

    dt = model.cfg.dt_ms
    tau_rows = [_tau_rows("tau_mem", taus["tau_mem"], d_v, prof, prof.decay.v_offset, dt)]
    if "tau_syn" in taus:
        tau_rows.append(_tau_rows("tau_syn", taus["tau_syn"], d_u, prof, prof.decay.u_offset, dt))
    if d_theta is not None:
        tau_rows.append(_tau_rows("tau_adapt", taus["tau_adapt"], d_theta, prof, prof.decay.theta_offset, dt))
    if qnet.decay_r is not None:
        tau_rows.append(_tau_rows("tau_refr", taus["tau_refr"], qnet.decay_r, prof, prof.decay.r_offset, dt))
    pl = placement(qnet, prof)
    s_min = min(qnet.float_scale)
    headroom = None
    if peaks:
        widths = {"q": prof.state.q_bits, "u": prof.state.u_bits, "v": prof.state.v_bits}
        headroom = {k: {"predicted_peak": peaks[k] * s_min, "limit": 2**widths[k],
                        "fraction": peaks[k] * s_min / 2**widths[k]} for k in peaks}
    return {
        "profile": prof.name,
        "profile_sha256": prof.sha256,
        "float_scale": list(qnet.float_scale),
        "threshold": {"float": model.cfg.threshold, "int": [int(v) for v in np.unique(qnet.vth)]},
        "time_constants": tau_rows,
        "weights": weights,
        "clipped_weights": int(sum(w["clipped"] for w in weights)),
        "headroom_float_calibration": headroom,
        "placement": {
            "cores": pl.n_cores,
            "input_axons": pl.input_axons,
            "output_axons": pl.output_axons,
            "synapse_bits": pl.synapse_bits,
            "per_core": [c.__dict__ for c in pl.cores],
        },
    }
