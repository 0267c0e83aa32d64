"""The float RSNN in torch: the trainable module around the neuron of :mod:`rsnn_deploy.neuron`.

The step, its parameters and its surrogate gradients live in ``neuron.py`` (the one
definition the fast engine, the nengo neuron type, the ONNX graph and the C kernels are
held to). This module owns what training needs around it: the trainable weights and time
constants, the effective parameters (fake-quantized under QAT), the choice between the
eager loop and the fast engine (``fast_bptt``), and the readout's closed form.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from rsnn_deploy import fast_bptt
from rsnn_deploy.config import ModelConfig
from rsnn_deploy.neuron import (
    NeuronParams,
    NeuronState,
    SpikeFunction,
    decay,
    initial_state,
    input_drive,
    neuron_step,
    readout_drive,
    readout_step,
)

__all__ = [
    "RSNN",
    "ForwardRecord",
    "NeuronParams",
    "NeuronState",
    "Output",
    "initial_state",
    "logits_from_pooled",
    "logits_from_readout",
    "logits_from_spikes",
    "neuron_step",
    "readout_sequence",
    "readout_weights",
]


class ForwardRecord(NamedTuple):
    """Everything a float run produces (:meth:`RSNN.trace`), time-major states moved to batch-first [B, T, ...].

    Torch tensors of the float model; backends turn it into a :class:`rsnn_deploy.trace.Trace`.
    """

    spikes: Tensor  # [B, T, H]
    current: Tensor  # [B, T, H]
    voltage: Tensor  # [B, T, H] after reset
    adaptation: Tensor  # [B, T, H]
    readout: Tensor  # [B, T, K]
    logits: Tensor  # [B, K]


class Output(NamedTuple):
    logits: Tensor  # [B, K]
    spikes: Tensor  # [T, B, H], for rate regularisation


def readout_sequence(spikes: Tensor, w_out: Tensor, b_out: Tensor, a_out: Tensor) -> Tensor:
    """Leaky readout ``y[t] = a_o y[t-1] + W_out z[t] + b_out`` over time-major spikes [T, B, H].

    Computed as a short loop over the cheap [T, B, K] projection.
    """
    proj = readout_drive(spikes, w_out, b_out)
    ys = []
    y = torch.zeros_like(proj[0])
    for p_t in proj.unbind(0):
        y = readout_step(y, p_t, a_out)
        ys.append(y)
    return torch.stack(ys)


def readout_weights(n_steps: int, a_out: Tensor, mode: str) -> Tensor:
    """Per-step weights ``c`` [T] with ``logits = W_out (sum_t c_t z_t) + b_out sum_t c_t``.

    The readout is linear, so its time-mean (or last value) is a fixed weighting of the
    spikes: ``mean_t y_t = (1/T) sum_k z_k sum_{j=0}^{T-1-k} a^j`` and
    ``y_(T-1) = sum_k a^(T-1-k) z_k``. Training uses this closed form instead of a
    per-step loop over the readout (same value up to float rounding).
    """
    powers = a_out ** torch.arange(n_steps, dtype=a_out.dtype, device=a_out.device)  # a^j
    if mode == "last":
        return powers.flip(0)
    return torch.cumsum(powers, 0).flip(0) / n_steps


def logits_from_spikes(spikes: Tensor, w_out: Tensor, b_out: Tensor, a_out: Tensor, mode: str) -> Tensor:
    """Class scores from time-major hidden spikes [T, B, H] via :func:`readout_weights`."""
    t_steps, b, h = spikes.shape
    c = readout_weights(t_steps, a_out.to(spikes.dtype), mode)
    pooled = (c @ spikes.reshape(t_steps, b * h)).reshape(b, h)  # a GEMV; einsum lowers to a slow bmm here
    return logits_from_pooled(pooled, c, w_out, b_out)


def logits_from_pooled(pooled: Tensor, c: Tensor, w_out: Tensor, b_out: Tensor) -> Tensor:
    """Class scores from the readout-weighted spike sum ``pooled = sum_t c_t z_t`` [B, H]."""
    return pooled @ w_out.t() + b_out * c.sum()


def logits_from_readout(readout: Tensor, mode: str) -> Tensor:
    """Class scores from the time-major readout [T, B, K]."""
    return readout.mean(0) if mode == "mean" else readout[-1]


# ----------------------------------------------------------------------------- the module


class RSNN(nn.Module):
    """Recurrent spiking network: input spikes [B, T, C] -> class scores [B, K].

    ``fake_quant``, when set (see ``rsnn_deploy.quantize``), maps the effective
    parameters onto a hardware profile's grid with straight-through gradients (QAT).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        h, c, k = cfg.n_hidden, cfg.n_in, cfg.n_out
        self.w_in = nn.Parameter(torch.randn(h, c) * (cfg.init_in_gain / math.sqrt(c)))
        if cfg.recurrent:
            w_rec = torch.randn(h, h) * (cfg.init_rec_gain / math.sqrt(h))
            self.w_rec = nn.Parameter(w_rec)
        else:
            self.register_parameter("w_rec", None)
        if cfg.bias:
            self.bias = nn.Parameter(torch.zeros(h))
        else:
            self.register_parameter("bias", None)
        self.w_out = nn.Parameter(torch.randn(k, h) * (1.0 / math.sqrt(h)))
        self.b_out = nn.Parameter(torch.zeros(k))
        n_tau = h if cfg.per_neuron_tau else 1
        for name in self.tau_names():
            value = torch.full((n_tau,), float(getattr(cfg, f"{name}_ms")))
            if cfg.train_tau:
                self.register_parameter(name, nn.Parameter(value))
            else:
                self.register_buffer(name, value)
        self.fake_quant: Callable[[NeuronParams], NeuronParams] | None = None

    def tau_names(self) -> list[str]:
        """Names of the time-constant tensors this variant uses (in ms)."""
        names = ["tau_mem"]
        if self.cfg.synapse:
            names.append("tau_syn")
        if self.cfg.adaptation:
            names.append("tau_adapt")
            if self.cfg.adapt_kind == "atrlif":
                names.append("tau_refr")
        return names

    def learned_time_constants(self) -> dict[str, Any]:
        """Trained time constants in ms, for the checkpoint JSON (whose ``model`` section keeps the
        initial values); empty unless ``train_tau``. Per-neuron ones as min / mean / max."""
        if not self.cfg.train_tau:
            return {}
        out: dict[str, Any] = {}
        for name in self.tau_names():
            tau = getattr(self, name).detach().cpu().double().reshape(-1)
            if tau.numel() == 1:
                out[name] = round(float(tau[0]), 6)
            else:
                out[name] = {
                    k: round(float(f(tau)), 6)
                    for k, f in (("min", torch.min), ("mean", torch.mean), ("max", torch.max))
                }
        return out

    def clamp_time_constants(self) -> None:
        """Keep trainable time constants inside [tau_min_ms, tau_max_ms] (after each step)."""
        with torch.no_grad():
            for name in self.tau_names():
                getattr(self, name).clamp_(self.cfg.tau_min_ms, self.cfg.tau_max_ms)

    def _decay(self, name: str | None) -> Tensor:
        h = self.cfg.n_hidden
        if name is None:
            return torch.zeros(h, device=self.w_in.device, dtype=self.w_in.dtype)
        return decay(getattr(self, name), self.cfg.dt_ms).expand(h)

    def _adapt_decay(self) -> Tensor:
        """Adaptation decay [H]; 0 for the LIF neurons of a mixed population (``n_adaptive``).

        A zero decay removes adaptation exactly: the threshold increase of a spike is
        multiplied by 0 before the next step compares against it, so it never counts.
        """
        cfg = self.cfg
        a = self._decay("tau_adapt" if cfg.adaptation else None)
        if cfg.adaptation and cfg.n_adaptive is not None:
            adaptive = torch.arange(cfg.n_hidden, device=a.device) >= cfg.n_hidden - cfg.n_adaptive
            a = a * adaptive.to(a.dtype)
        return a

    def effective_params(self) -> NeuronParams:
        """Per-step parameters as the neuron sees them (fake-quantized under QAT)."""
        cfg = self.cfg
        p = NeuronParams(
            w_in=self.w_in,
            w_rec=self.w_rec,
            bias=self.bias,
            a_syn=self._decay("tau_syn" if cfg.synapse else None),
            a_mem=self._decay("tau_mem"),
            a_adapt=self._adapt_decay(),
            adapt_strength=cfg.adapt_strength,
            threshold=cfg.threshold,
            v_floor=cfg.v_floor,
            refractory_steps=cfg.refractory_steps,
            adapt_kind=cfg.adapt_kind if cfg.adaptation else None,
            a_refr=self._decay("tau_refr") if cfg.adaptation and cfg.adapt_kind == "atrlif" else None,
        )
        return self.fake_quant(p) if self.fake_quant is not None else p

    def readout_decay(self) -> Tensor:
        return torch.tensor(decay(self.cfg.tau_out_ms, self.cfg.dt_ms), dtype=self.w_out.dtype)

    def spike_fn(self, x: Tensor) -> Tensor:
        return SpikeFunction.apply(x, self.cfg.surrogate, self.cfg.surrogate_slope)

    def hidden_spikes(self, x: Tensor, engine: str = "auto") -> Tensor:
        """Hidden spikes, time-major [T, B, H], from input spikes [B, T, C]."""
        p = self.effective_params()
        xs = x.transpose(0, 1).to(p.w_in.dtype)
        if self._use_fast(engine, p):
            return fast_bptt.run(xs, p, self.cfg)
        return self._eager_spikes(xs, p)

    def engine_description(self, engine: str = "auto") -> str:
        """What ``forward(x, engine)`` runs, in words (training logs it once)."""
        p = self.effective_params()
        if not self._use_fast(engine, p):
            return "eager reference loop" if engine == "eager" else "eager loop (the fast engine does not cover this)"
        return f"fast BPTT engine, {fast_bptt.loops_description(p)}"

    def _use_fast(self, engine: str, p: NeuronParams) -> bool:
        """Whether ``engine`` selects the fast BPTT engine for parameters ``p`` (and "fast" must)."""
        if engine not in ("auto", "fast"):
            return False
        if fast_bptt.supports(self.cfg, p):
            return True
        if engine == "fast":
            raise ValueError("the fast engine does not support this configuration")
        return False

    def _eager_spikes(self, xs: Tensor, p: NeuronParams) -> Tensor:
        drives = input_drive(xs, p).unbind(0)  # unbind: indexing [T,B,H] makes backward O(T^2)
        state = initial_state(xs.shape[1], self.cfg.n_hidden, xs.device, xs.dtype)
        out = []
        for d in drives:
            z, state = neuron_step(d, state, p, self.spike_fn)
            out.append(z)
        return torch.stack(out)

    def forward(self, x: Tensor, engine: str = "auto") -> Output:
        p = self.effective_params()
        if self._use_fast(engine, p):
            # The engine also returns the readout's weighted spike sum (see run_weighted_sum).
            xs = x.transpose(0, 1).to(p.w_in.dtype)
            c = readout_weights(xs.shape[0], self.readout_decay().to(xs), self.cfg.readout_mode)
            spikes, pooled = fast_bptt.run_weighted_sum(xs, p, self.cfg, c)
            return Output(logits_from_pooled(pooled, c, self.w_out, self.b_out), spikes)
        spikes = self._eager_spikes(x.transpose(0, 1).to(p.w_in.dtype), p)
        a_out = self.readout_decay().to(spikes.device)
        return Output(logits_from_spikes(spikes, self.w_out, self.b_out, a_out, self.cfg.readout_mode), spikes)

    @torch.no_grad()
    def trace(self, x: Tensor) -> ForwardRecord:
        """Run without gradients and keep every state, for verification and plots."""
        p = self.effective_params()
        xs = x.transpose(0, 1).to(p.w_in.dtype)
        state = initial_state(xs.shape[1], self.cfg.n_hidden, xs.device, xs.dtype)
        zs, cs, vs, ns = [], [], [], []
        for d in input_drive(xs, p).unbind(0):
            z, state = neuron_step(d, state, p, self.spike_fn)
            zs.append(z)
            cs.append(state.i)
            vs.append(state.v)
            ns.append(state.n)
        spikes = torch.stack(zs)
        readout = readout_sequence(spikes, self.w_out, self.b_out, self.readout_decay().to(spikes.device))
        logits = logits_from_readout(readout, self.cfg.readout_mode)

        def bf(t: Tensor) -> Tensor:
            return t.transpose(0, 1).contiguous()

        current, voltage, adaptation = (bf(torch.stack(s)) for s in (cs, vs, ns))
        return ForwardRecord(bf(spikes), current, voltage, adaptation, bf(readout), logits)
