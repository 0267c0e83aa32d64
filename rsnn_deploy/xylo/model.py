"""A float RSNN that computes Xylo's step in real numbers, so that quantization is the only difference.

The project's :class:`rsnn_deploy.model.RSNN` follows Loihi (reset to zero, strict ``v > th``,
input added after the synaptic decay, host readout); Xylo differs in each of these, so a model
trained there loses accuracy for reasons other than integers. This one follows
:mod:`rsnn_deploy.xylo.emulator` step for step (threshold 1 in float units)::

    i_s[t] = a_s * (i_s[t-1] + x[t] @ W_in[:, :, s] + n[t-1] @ W_rec[:, :, s])   # s = 0, 1: two currents
    v[t]   = a_m * v[t-1] + sum_s i_s[t]                  (both clipped to the 16-bit range, in thresholds)
    n[t]   = clip(floor(v[t] / th), 0, 31) where v >= th;   v[t] -= n[t] * th       # subtractive reset
    i_o[t] = a_o * (i_o[t-1] + n[t-1] @ W_out);   v_o[t] = i_o[t] + b_out          # dash_mem_out = 0
    logits = mean_t v_o[t]   (readout_mode "mean"), or v_o[T-1] ("last": store-recall's answer at the end)

with ``a = 1 - 2^-dash``. The two synaptic currents have their own time constants (fast and slow
by default), which is how this model uses Xylo's second synapse. Time constants train in ms
(``tau = -dt / ln(1 - 2^-dash)`` on the grid); under QAT (:meth:`XyloRSNN.qat`) every decay snaps
to the nearest ``2^dash`` grid point and weights to the int8-with-shift grid, with straight-through
gradients.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn

from rsnn_deploy.neuron import decay, surrogate_grad

__all__ = ["XyloModelConfig", "XyloRSNN", "dash_to_tau_ms", "tau_to_dash"]


@dataclass(frozen=True)
class XyloModelConfig:
    n_in: int = 16
    n_hidden: int = 64
    n_out: int = 10
    n_syn: int = 2
    dt_ms: float = 1.0
    tau_mem_ms: float = 8.0
    tau_syn_ms: tuple[float, ...] = (2.0, 16.0)
    tau_out_ms: float = 16.0
    threshold: float = 1.0
    surrogate_slope: float = 5.0
    train_tau: bool = True
    tau_min_ms: float = 0.5
    tau_max_ms: float = 1000.0
    dash_max: int = 15
    # QAT grid (set by XyloRSNN.qat): threshold in integers and the weight shift limit
    threshold_int: int = 4096
    weight_bits: int = 8
    shift_max: int = 7
    readout_mode: str = "mean"  # "mean" over steps or the "last" step's v_out
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        d = asdict(self)
        d["tau_syn_ms"] = list(self.tau_syn_ms)
        return d


def dash_to_tau_ms(dash: Tensor | float, dt_ms: float) -> Tensor:
    """Time constant of the decay ``1 - 2^-dash`` (dash >= 1)."""
    d = torch.as_tensor(dash, dtype=torch.float64)
    return -dt_ms / torch.log1p(-(2.0**-d))


def tau_to_dash(tau_ms: Tensor, dt_ms: float, dash_max: int) -> Tensor:
    """Nearest grid dash in ``[1, dash_max]`` to ``tau_ms``, nearest in log(tau)."""
    grid = dash_to_tau_ms(torch.arange(1, dash_max + 1), dt_ms).to(tau_ms.device)
    dist = (torch.log(tau_ms.double()).unsqueeze(-1) - torch.log(grid)).abs()
    return dist.argmin(-1) + 1


class _SpikeCount(torch.autograd.Function):
    """Forward: ``clip(floor(v / th), 0, 31)``, Xylo's multi-spike count; backward: fast-sigmoid surrogate."""

    @staticmethod
    def forward(ctx, v: Tensor, th: float, slope: float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(v)
        ctx.th, ctx.slope = th, slope
        return torch.clamp(torch.floor(v / th), 0, 31)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (v,) = ctx.saved_tensors
        return grad * surrogate_grad((v - ctx.th) / ctx.th, "fast-sigmoid", ctx.slope), None, None


class _RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return grad


def weight_grid_step(w: Tensor, scale: float, bits: int, shift_max: int) -> float:
    """Float size of one integer step for matrix ``w`` at integer ``scale`` (integer = float * scale):
    the smallest shift whose int8 mantissa holds the largest weight, capped at ``shift_max``."""
    m_max = (1 << (bits - 1)) - 1
    peak = float(w.detach().abs().max()) * scale
    shift = 0 if peak <= m_max else min(shift_max, math.ceil(math.log2(peak / m_max)))
    return (2.0**shift) / scale


class XyloRSNN(nn.Module):
    """Input spikes [B, T, C] -> logits [B, K] on Xylo's dynamics (see the module docstring)."""

    # time constants (ms), parameters or buffers by ``cfg.train_tau``: registered by name in __init__
    tau_mem: Tensor
    tau_syn: Tensor
    tau_out: Tensor

    def __init__(self, cfg: XyloModelConfig, seed: int = 0):
        super().__init__()
        if cfg.readout_mode not in ("mean", "last"):
            raise ValueError(f"XyloModelConfig.readout_mode: must be 'mean' or 'last' (got {cfg.readout_mode!r})")
        if len(cfg.tau_syn_ms) != cfg.n_syn:
            raise ValueError(f"XyloModelConfig.tau_syn_ms: needs {cfg.n_syn} values (got {len(cfg.tau_syn_ms)})")
        self.cfg = cfg
        g = torch.Generator().manual_seed(seed)
        c, h, k, s = cfg.n_in, cfg.n_hidden, cfg.n_out, cfg.n_syn
        self.w_in = nn.Parameter(torch.randn(c, h, s, generator=g) * (1.5 / math.sqrt(c)))
        self.w_rec = nn.Parameter(torch.randn(h, h, s, generator=g) * (0.3 / math.sqrt(h)))
        self.w_out = nn.Parameter(torch.randn(h, k, generator=g) * (0.2 / math.sqrt(h)))
        self.b_out = nn.Parameter(torch.zeros(k))
        taus = {
            "tau_mem": torch.full((h,), cfg.tau_mem_ms),
            "tau_syn": torch.tensor(cfg.tau_syn_ms).repeat(h, 1),
            "tau_out": torch.full((k,), cfg.tau_out_ms),
        }
        for name, value in taus.items():
            if cfg.train_tau:
                self.register_parameter(name, nn.Parameter(value))
            else:
                self.register_buffer(name, value)
        self.quantized = False

    # -- grid
    def qat(self, on: bool = True) -> XyloRSNN:
        """Switch fake quantization on the Xylo grid on or off (decays and weights)."""
        self.quantized = on
        return self

    def clamp_time_constants(self) -> None:
        with torch.no_grad():
            for name in ("tau_mem", "tau_syn", "tau_out"):
                getattr(self, name).clamp_(self.cfg.tau_min_ms, self.cfg.tau_max_ms)

    def _decay(self, tau: Tensor) -> Tensor:
        a = decay(tau, self.cfg.dt_ms)
        if not self.quantized:
            return a
        dash = tau_to_dash(tau.detach(), self.cfg.dt_ms, self.cfg.dash_max).to(a.dtype)
        a_q = 1.0 - 2.0**-dash
        return a + (a_q - a).detach()  # straight through to tau

    def _fq(self, w: Tensor, scale: float) -> Tensor:
        if not self.quantized:
            return w
        step = weight_grid_step(w, scale, self.cfg.weight_bits, self.cfg.shift_max)
        m_max = (1 << (self.cfg.weight_bits - 1)) - 1
        q = torch.clamp(_RoundSTE.apply(w / step), -m_max - 1, m_max)
        return q * step

    def decays(self) -> dict[str, Tensor]:
        return {name: self._decay(getattr(self, name)) for name in ("tau_mem", "tau_syn", "tau_out")}

    # -- run
    def forward(self, x: Tensor, record: bool = False) -> tuple[Tensor, Tensor] | dict[str, Tensor]:
        """``(logits [B, K], spike counts [T, B, H])``; with ``record``, a dict of every state [B, T, ...]."""
        cfg = self.cfg
        th = cfg.threshold
        scale = cfg.threshold_int / th
        d = self.decays()
        a_m, a_s, a_o = d["tau_mem"], d["tau_syn"], d["tau_out"]
        w_in, w_rec = self._fq(self.w_in, scale), self._fq(self.w_rec, scale)
        w_out = self.w_out  # its integer scale is chosen from calibration (quantize.py); float here
        # the 16-bit state saturates at +-32767 integers, i.e. +-(32767 / threshold_int) thresholds
        lim = 32767.0 / scale
        b, t_steps, _ = x.shape
        h, s, k = cfg.n_hidden, cfg.n_syn, cfg.n_out
        x = x.to(w_in.dtype).clamp(max=15)
        drive = torch.einsum("btc,chs->tbhs", x, w_in)
        i = x.new_zeros(b, h, s)
        v = x.new_zeros(b, h)
        n = x.new_zeros(b, h)
        i_o = x.new_zeros(b, k)
        ns: list[Tensor] = []
        vos: list[Tensor] = []
        rec: dict[str, list[Tensor]] = {"i_syn": [], "v_mem": [], "i_syn_out": []}
        for t in range(t_steps):
            rec_in = torch.einsum("bh,hjs->bjs", n, w_rec)
            i_o = a_o * (i_o + n @ w_out)
            i = torch.clamp(a_s * torch.clamp(i + drive[t] + rec_in, -lim, lim), -lim, lim)
            v = torch.clamp(a_m * v + torch.clamp(i.sum(-1), -lim, lim), -lim, lim)
            n = _SpikeCount.apply(v, th, cfg.surrogate_slope)
            v = v - n.detach() * th
            ns.append(n)
            vos.append(i_o + self.b_out)
            if record:
                rec["i_syn"].append(i)
                rec["v_mem"].append(v)
                rec["i_syn_out"].append(i_o)
        spikes = torch.stack(ns)
        v_out = torch.stack(vos)  # [T, B, K]
        logits = v_out[-1] if cfg.readout_mode == "last" else v_out.mean(0)
        if not record:
            return logits, spikes
        out = {name: torch.stack(vals, 1) for name, vals in rec.items()}
        out.update(spikes=spikes.transpose(0, 1), v_mem_out=v_out.transpose(0, 1), logits=logits)
        return out
