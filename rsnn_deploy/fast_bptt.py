"""Fast BPTT engine: the eager neuron loop with a hand-written, blocked backward pass.

Why it exists
-------------
Training an RSNN with plain autograd records about fifteen tiny graph nodes per time
step. On a small CPU machine their bookkeeping costs more than the arithmetic does
(``/work/shared/MEASURED.md``). This engine runs the same step as
:func:`rsnn_deploy.model.neuron_step` inside one :class:`torch.autograd.Function`.
The forward pass uses in-place kernels on reused buffers and keeps only what the
backward pass needs. The backward pass is a reverse-time loop written by hand. It takes
four or five kernels plus one matmul per step. Everything that does not depend on time
order runs once per block of ``K`` steps over a ``[K, B, H]`` tensor: surrogate
derivatives, the weight and decay gradients, and the input projection. This engine runs
in eager mode only. It needs no compiler and no warm-up.

The contract
------------
Forward spikes are **bit-identical** to the eager loop ``RSNN._eager_spikes``. To keep
them identical, every rounding step of ``neuron_step`` is repeated in the same order:
no fused multiply-add (``addcmul`` contracts to FMA and changes the last bit), and the
recurrent matmul and its addition are separate. The gradients of ``w_in``, ``w_rec``,
``bias``, ``a_syn``, ``a_mem``, ``a_adapt`` and of the input match autograd to float
tolerance. The ``tests/test_fast_bptt.py`` suite checks both for every variant and option.

Per step, with ``m`` the decayed adaptation state and ``rc`` the product of the floor
mask (``v >= v_floor``, the gradient mask of ``clamp``) and the refractory mask::

    i[t] = a_s i[t-1] + W_in x[t] + W_rec z[t-1]      m[t] = a_a n[t-1]
    p[t] = a_m v[t-1] + i[t] + b (- m[t])             r[t] = rc[t] max(p[t], v_floor)
    u[t] = r[t] - theta (- m[t])                       z[t] = H(u[t])
    v[t] = r[t] (1 - z[t])                             n[t] = m[t] + s z[t]

The reverse-time adjoints (``g_x = dL/dx``, ``sg`` = surrogate derivative at ``u``)::

    g_z[t] = dL/dz[t] + g_i[t+1] W_rec + s a_a g_m[t+1]
    g_u[t] = g_z[t] sg(u[t])
    g_p[t] = rc[t] (g_u[t] + a_m (1 - z[t]) g_p[t+1])
    g_m[t] = a_a g_m[t+1] - g_u[t] (threshold kind) or - g_p[t] (current kind)
    g_i[t] = g_p[t] + a_s g_i[t+1]

The reset and the refractory counter are detached, as in the eager model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from rsnn_deploy.config import ModelConfig
from rsnn_deploy.model import NeuronParams

__all__ = ["block_steps", "run", "supports"]

_SURROGATES = ("fast-sigmoid", "triangle", "arctan", "sigmoid")
_DTYPES = (torch.float32, torch.float64)
# A block buffer of [K, B, H] stays below this many bytes. glibc serves smaller blocks from
# its heap and reuses them between iterations. A larger block is a fresh mmap each time,
# and its first writes page-fault; MEASURED.md found that about 6x slower.
_BLOCK_BYTES = 8 << 20


@dataclass(frozen=True)
class _Spec:
    """Static (non-tensor) description of one run, read from ``NeuronParams`` and the config."""

    recurrent: bool
    synapse: bool
    bias: bool
    adapt_kind: str | None
    adapt_strength: float
    threshold: float
    v_floor: float | None
    refractory_steps: int
    surrogate: str
    slope: float
    block: int

    @property
    def masked(self) -> bool:
        """Whether the gradient of ``v`` is masked (by the floor clamp or the refractory period)."""
        return self.v_floor is not None or self.refractory_steps > 0


def block_steps(batch: int, n_hidden: int, dtype: torch.dtype, n_steps: int) -> int:
    """Number of time steps processed together, so that a ``[K, B, H]`` buffer fits ``_BLOCK_BYTES``."""
    per_step = batch * n_hidden * torch.empty((), dtype=dtype).element_size()
    return max(1, min(n_steps, _BLOCK_BYTES // max(per_step, 1)))


def _is_vector(t: Tensor, n: int) -> bool:
    return t.dim() <= 1 and t.numel() in (1, n)


def supports(cfg: ModelConfig, p: NeuronParams) -> bool:
    """Whether :func:`run` covers this configuration.

    Every neuron variant and option of ``neuron_step`` is covered. The engine declines
    (and the eager loop runs) only for inputs it was not checked on: a dtype other than
    float32 or float64, an unknown surrogate or adaptation kind, or parameter shapes
    that differ from the ``NeuronParams`` contract.
    """
    h = p.w_in.shape[0] if p.w_in.dim() == 2 else -1
    if h < 1 or p.w_in.dtype not in _DTYPES or cfg.surrogate not in _SURROGATES:
        return False
    if p.adapt_kind not in (None, "threshold", "current"):
        return False
    if p.w_rec is not None and (p.w_rec.shape != (h, h) or p.w_rec.dtype != p.w_in.dtype):
        return False
    if p.bias is not None and not _is_vector(p.bias, h):
        return False
    decays = (p.a_syn, p.a_mem, p.a_adapt)
    return all(_is_vector(a, h) and a.dtype == p.w_in.dtype for a in decays)


def run(xs: Tensor, p: NeuronParams, cfg: ModelConfig) -> Tensor:
    """Hidden spikes ``[T, B, H]`` from time-major inputs ``xs`` ``[T, B, C]``, as ``_eager_spikes`` does.

    The result is differentiable with respect to ``xs`` and every tensor in ``p`` that
    requires grad (first order only). Without any grad to compute, no state is kept.
    """
    h = p.w_in.shape[0]
    n_steps, batch = xs.shape[0], xs.shape[1]
    xs = xs.to(p.w_in.dtype)

    def vec(t: Tensor) -> Tensor:
        return t.reshape(-1).expand(h)

    a_syn, a_mem, a_adapt = vec(p.a_syn), vec(p.a_mem), vec(p.a_adapt)
    bias = vec(p.bias) if p.bias is not None else None
    # Without a synapse, the decay is a constant zero, and the engine skips the term.
    # Eager adds 0 * i[t-1] to the drive, which changes nothing but the sign of a zero.
    synapse = bool(a_syn.requires_grad or bool((a_syn != 0).any()))
    spec = _Spec(
        recurrent=p.w_rec is not None,
        synapse=synapse,
        bias=bias is not None,
        adapt_kind=p.adapt_kind,
        adapt_strength=float(p.adapt_strength),
        threshold=float(p.threshold),
        v_floor=None if p.v_floor is None else float(p.v_floor),
        refractory_steps=int(p.refractory_steps),
        surrogate=cfg.surrogate,
        slope=float(cfg.surrogate_slope),
        block=block_steps(batch, h, xs.dtype, max(n_steps, 1)),
    )
    tensors = (xs, p.w_in, p.w_rec, bias, a_syn, a_mem, a_adapt)
    if n_steps == 0:
        return xs.new_zeros(0, batch, h)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        return _FastBPTT.apply(spec, *tensors)
    with torch.no_grad():
        return _forward(spec, *tensors, keep=_Keep())[0]


# ----------------------------------------------------------------------------- forward


@dataclass(frozen=True)
class _Keep:
    """Which per-step tensors the forward pass stores for the backward pass."""

    u: bool = False  # u = v - threshold, for the surrogate derivative (and the masks)
    v: bool = False  # v[t] after reset, only for the gradient of a_mem
    i: bool = False  # i[t], only for the gradient of a_syn
    n: bool = False  # n[t], only for the gradient of a_adapt


class _Saved(NamedTuple):
    """Per-step tensors stored by the forward pass, time-major ``[T, B, H]`` (None when not kept)."""

    u: Tensor | None
    rc: Tensor | None  # product of the floor and refractory gradient masks
    v: Tensor | None
    i: Tensor | None
    n: Tensor | None


def _forward(
    spec: _Spec,
    xs: Tensor,
    w_in: Tensor,
    w_rec: Tensor | None,
    bias: Tensor | None,
    a_syn: Tensor,
    a_mem: Tensor,
    a_adapt: Tensor,
    keep: _Keep,
) -> tuple[Tensor, _Saved]:
    """Run the neurons over all steps; returns spikes ``[T, B, H]`` and what ``keep`` asked for.

    The rounding matches ``neuron_step`` exactly, one elementwise kernel per operation
    there. Only the allocation changes: states live in reused ``[B, H]`` buffers (or
    in their slot of a kept ``[T, B, H]`` tensor), and ``W_in x`` is computed per block.
    """
    n_steps, batch, _ = xs.shape
    h = w_in.shape[0]
    opts = {"dtype": xs.dtype, "device": xs.device}
    adapt = spec.adapt_kind is not None
    floor, refr = spec.v_floor, spec.refractory_steps

    def seq(flag: bool) -> Tensor | None:
        return torch.empty(n_steps, batch, h, **opts) if flag else None

    z_all = torch.empty(n_steps, batch, h, **opts)
    saved = _Saved(
        u=seq(keep.u), rc=seq(keep.u and spec.masked), v=seq(keep.v), i=seq(keep.i), n=seq(keep.n and adapt)
    )
    zeros = torch.zeros(batch, h, **opts)
    # State buffers. A kept state is written straight into its [T, B, H] slot instead.
    i_buf, v_buf, n_buf = (torch.zeros(batch, h, **opts) for _ in range(3))
    ref = torch.zeros(batch, h, **opts)
    rec_buf = torch.empty(batch, h, **opts)
    mask_buf = torch.empty(batch, h, **opts)
    u_buf = torch.empty(batch, h, **opts)
    zs = z_all.unbind(0)
    us = saved.u.unbind(0) if saved.u is not None else None
    rcs = saved.rc.unbind(0) if saved.rc is not None else None
    vs = saved.v.unbind(0) if saved.v is not None else None
    is_ = saved.i.unbind(0) if saved.i is not None else None
    ns = saved.n.unbind(0) if saved.n is not None else None
    w_in_t = w_in.t()
    w_rec_t = w_rec.t() if w_rec is not None else None
    theta, strength = spec.threshold, spec.adapt_strength
    k_max = spec.block
    drive_buf = torch.empty(min(k_max, n_steps), batch, h, **opts)

    for t0 in range(0, n_steps, k_max):
        t1 = min(t0 + k_max, n_steps)
        drives = drive_buf[: t1 - t0]
        # Per block, yet bit-equal to eager's whole-sequence projection: the reduction runs
        # over C and is independent of the number of rows (the tests check this).
        torch.matmul(xs[t0:t1], w_in_t, out=drives)
        for k, d_t in enumerate(drives.unbind(0)):
            t = t0 + k
            # i = a_s * i + drive (+ z[t-1] @ W_rec^T)
            i_prev = is_[t - 1] if is_ is not None and t > 0 else (zeros if is_ is not None else i_buf)
            i_cur = is_[t] if is_ is not None else i_buf
            rec = spec.recurrent and t > 0  # z[-1] = 0 adds nothing
            if rec:
                torch.mm(zs[t - 1], w_rec_t, out=rec_buf)  # type: ignore[arg-type]
            if spec.synapse:
                torch.mul(i_prev, a_syn, out=i_cur)
                i_cur.add_(d_t)
                if rec:
                    i_cur.add_(rec_buf)
            elif rec:
                torch.add(d_t, rec_buf, out=i_cur)
            elif is_ is not None:
                i_cur.copy_(d_t)
            else:
                i_cur = d_t  # read only below
            # n = a_a * n
            if adapt:
                n_prev = ns[t - 1] if ns is not None and t > 0 else (zeros if ns is not None else n_buf)
                n_cur = ns[t] if ns is not None else n_buf
                torch.mul(n_prev, a_adapt, out=n_cur)
            # v = a_m * v + i (+ bias) (- n)
            v_prev = vs[t - 1] if vs is not None and t > 0 else (zeros if vs is not None else v_buf)
            v = vs[t] if vs is not None else v_buf
            torch.mul(v_prev, a_mem, out=v)
            v.add_(i_cur)
            if bias is not None:
                v.add_(bias)
            if spec.adapt_kind == "current":
                v.sub_(n_cur)
            # floor, refractory; rc collects the gradient mask of both
            rc = rcs[t] if rcs is not None else None
            if floor is not None:
                if rc is not None:
                    torch.ge(v, floor, out=rc)
                v.clamp_min_(floor)
            if refr > 0:
                if rc is not None and floor is None:
                    torch.le(ref, 0, out=rc)
                    v.mul_(rc)
                else:
                    torch.le(ref, 0, out=mask_buf)
                    v.mul_(mask_buf)
                    if rc is not None:
                        rc.mul_(mask_buf)
            # u = v - threshold (+ n), z = u > 0
            u = us[t] if us is not None else u_buf
            if spec.adapt_kind == "threshold":
                torch.add(n_cur, theta, out=u)
                torch.sub(v, u, out=u)
            else:
                torch.sub(v, theta, out=u)
            z = zs[t]
            torch.gt(u, 0, out=z)
            # detached reset v *= 1 - z (exact: z is 0 or 1), adaptation jump, refractory count
            v.addcmul_(v, z, value=-1.0)
            if adapt:
                n_cur.add_(z, alpha=strength)
            if refr > 0:
                # where(z, R, max(ref - 1, 0)) == max(max(ref - 1, 0), R z), since ref <= R
                ref.sub_(1).clamp_min_(0)
                torch.mul(z, float(refr), out=mask_buf)
                torch.maximum(ref, mask_buf, out=ref)
    return z_all, saved


# ----------------------------------------------------------------------------- backward


def _surrogate_into(u: Tensor, kind: str, slope: float, out: Tensor) -> Tensor:
    """``_surrogate_grad(u)`` of ``model`` written into ``out``, over a whole block at once."""
    if kind == "fast-sigmoid":  # 1 / (1 + slope |u|)^2
        torch.abs(u, out=out)
        out.mul_(slope).add_(1.0)
        out.mul_(out).reciprocal_()
    elif kind == "triangle":  # max(1 - slope |u|, 0)
        torch.abs(u, out=out)
        out.mul_(-slope).add_(1.0).clamp_min_(0.0)
    elif kind == "arctan":  # 1 / (1 + (pi slope u)^2)
        torch.mul(u, math.pi * slope, out=out)
        out.mul_(out).add_(1.0).reciprocal_()
    elif kind == "sigmoid":  # slope s (1 - s), s = sigmoid(slope u)
        torch.mul(u, slope, out=out)
        out.sigmoid_()
        out.sub_(out * out).mul_(slope)
    else:
        raise ValueError(f"unknown surrogate {kind!r}")
    return out


def _backward(
    spec: _Spec,
    grad_z: Tensor,
    z_all: Tensor,
    saved: _Saved,
    xs: Tensor,
    w_in: Tensor,
    w_rec: Tensor | None,
    a_syn: Tensor,
    a_mem: Tensor,
    a_adapt: Tensor,
    need: tuple[bool, ...],
) -> tuple[Tensor | None, ...]:
    """Reverse-time loop over blocks; returns grads of (xs, w_in, w_rec, bias, a_syn, a_mem, a_adapt)."""
    n_steps, batch, n_in = xs.shape
    h = w_in.shape[0]
    opts = {"dtype": z_all.dtype, "device": z_all.device}
    need_x, need_w_in, need_w_rec, need_b, need_as, need_am, need_aa = need
    thr_adapt = spec.adapt_kind == "threshold"
    adapt = spec.adapt_kind is not None
    k_max = spec.block
    k_buf = min(k_max, n_steps)

    def blk() -> Tensor:
        return torch.empty(k_buf, batch, h, **opts)

    sg_buf, q_buf, gi_buf = blk(), blk(), blk()
    gp_buf = blk() if spec.synapse else gi_buf  # without synapse g_i == g_p
    gm_buf = blk() if adapt else None
    g_z = torch.empty(batch, h, **opts)
    g_u = torch.empty(batch, h, **opts) if thr_adapt and spec.masked else None
    carry_i, carry_p, carry_m = (torch.zeros(batch, h, **opts) for _ in range(3))
    s_a = a_adapt * spec.adapt_strength

    grads: dict[str, Tensor] = {}
    if need_w_in:
        grads["w_in"] = torch.zeros(h, n_in, **opts)
    if need_w_rec:
        grads["w_rec"] = torch.zeros(h, h, **opts)
    for name, flag in (("bias", need_b), ("a_syn", need_as), ("a_mem", need_am), ("a_adapt", need_aa)):
        if flag:
            grads[name] = torch.zeros(h, **opts)
    g_x = torch.empty(n_steps, batch, n_in, **opts) if need_x else None
    gzs = grad_z.unbind(0)
    last = n_steps - 1
    gi_next = gp_next = gm_next = None

    for t0 in reversed(range(0, n_steps, k_max)):
        t1 = min(t0 + k_max, n_steps)
        nb = t1 - t0
        sg, q = sg_buf[:nb], q_buf[:nb]
        # Time-independent factors for the whole block: sg(u) and a_m (1 - z), masked by rc.
        _surrogate_into(saved.u[t0:t1], spec.surrogate, spec.slope, sg)  # type: ignore[index]
        torch.neg(z_all[t0:t1], out=q)
        q.add_(1.0).mul_(a_mem)
        rc = saved.rc[t0:t1] if saved.rc is not None else None
        if rc is not None:
            q.mul_(rc)
            if not thr_adapt:
                sg.mul_(rc)  # g_p = rc sg g_z: fold the mask once per block
        sgs, qs = sg.unbind(0), q.unbind(0)
        gis, gps = gi_buf.unbind(0), gp_buf.unbind(0)
        gms = gm_buf.unbind(0) if gm_buf is not None else None
        rcs = rc.unbind(0) if rc is not None else None
        for k in range(nb - 1, -1, -1):
            t = t0 + k
            first = t == last  # the last time step has no successor
            # g_z = dL/dz + g_i[t+1] W_rec + s a_a g_m[t+1]
            if first:
                gz = gzs[t]
            elif spec.recurrent:
                gz = torch.mm(gi_next, w_rec, out=g_z)  # type: ignore[arg-type]
                gz.add_(gzs[t])
                if adapt:
                    gz.addcmul_(s_a, gm_next)  # type: ignore[arg-type]
            elif adapt:
                gz = torch.addcmul(gzs[t], s_a, gm_next, out=g_z)  # type: ignore[arg-type]
            else:
                gz = gzs[t]
            gp = gps[k]
            if thr_adapt:
                # g_u feeds g_m unmasked, and g_p through the mask
                gu = g_u if g_u is not None else gp
                torch.mul(gz, sgs[k], out=gu)
                gm = gms[k]  # type: ignore[index]
                if first:
                    torch.neg(gu, out=gm)
                else:
                    torch.mul(gm_next, a_adapt, out=gm)  # type: ignore[arg-type]
                    gm.sub_(gu)
                if rcs is not None:
                    torch.mul(gu, rcs[k], out=gp)
            else:
                torch.mul(gz, sgs[k], out=gp)
            if not first:
                gp.addcmul_(gp_next, qs[k])  # type: ignore[arg-type]
            if spec.adapt_kind == "current":
                gm = gms[k]  # type: ignore[index]
                if first:
                    torch.neg(gp, out=gm)
                else:
                    torch.mul(gm_next, a_adapt, out=gm)  # type: ignore[arg-type]
                    gm.sub_(gp)
            if spec.synapse:
                gi = gis[k]
                if first:
                    gi.copy_(gp)
                else:
                    torch.addcmul(gp, a_syn, gi_next, out=gi)  # type: ignore[arg-type]
            else:
                gi = gp
            gi_next, gp_next = gi, gp
            if adapt:
                gm_next = gm
        # Gradients that are sums over time: one big kernel per block.
        gi_b, gp_b = gi_buf[:nb], gp_buf[:nb]
        if need_w_in:
            grads["w_in"].addmm_(gi_b.reshape(-1, h).t(), xs[t0:t1].reshape(-1, n_in))
        if g_x is not None:
            torch.matmul(gi_b, w_in, out=g_x[t0:t1])
        # Gradients that pair step t with the state of step t - 1 (zero before t = 0).
        lo = 1 if t0 == 0 else 0
        if lo < nb:
            if need_w_rec:
                zp = z_all[t0 + lo - 1 : t1 - 1].reshape(-1, h)
                grads["w_rec"].addmm_(gi_b[lo:].reshape(-1, h).t(), zp)
            if need_as:
                grads["a_syn"].add_((gi_b[lo:] * saved.i[t0 + lo - 1 : t1 - 1]).sum((0, 1)))  # type: ignore[index]
            if need_am:
                grads["a_mem"].add_((gp_b[lo:] * saved.v[t0 + lo - 1 : t1 - 1]).sum((0, 1)))  # type: ignore[index]
            if need_aa:
                gm_b = gm_buf[lo:nb]  # type: ignore[index]
                grads["a_adapt"].add_((gm_b * saved.n[t0 + lo - 1 : t1 - 1]).sum((0, 1)))  # type: ignore[index]
        if need_b:
            grads["bias"].add_(gp_b.sum((0, 1)))
        # The next (earlier) block reuses the buffers: keep the adjoints of step t0.
        gi_next = carry_i.copy_(gi_next)  # type: ignore[arg-type]
        gp_next = gi_next if gp_buf is gi_buf else carry_p.copy_(gp_next)  # type: ignore[arg-type]
        if adapt:
            gm_next = carry_m.copy_(gm_next)  # type: ignore[arg-type]

    return (
        g_x,
        grads.get("w_in"),
        grads.get("w_rec"),
        grads.get("bias"),
        grads.get("a_syn"),
        grads.get("a_mem"),
        grads.get("a_adapt"),
    )


class _FastBPTT(torch.autograd.Function):
    """Spikes of the whole sequence as one graph node; see the module docstring for the maths."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        spec: _Spec,
        xs: Tensor,
        w_in: Tensor,
        w_rec: Tensor | None,
        bias: Tensor | None,
        a_syn: Tensor,
        a_mem: Tensor,
        a_adapt: Tensor,
    ) -> Tensor:
        need = tuple(ctx.needs_input_grad[1:8])
        adapt = spec.adapt_kind is not None
        keep = _Keep(u=True, v=need[5], i=need[4] and spec.synapse, n=need[6] and adapt)
        z_all, saved = _forward(spec, xs, w_in, w_rec, bias, a_syn, a_mem, a_adapt, keep)
        ctx.spec, ctx.saved, ctx.need = spec, saved, need
        ctx.save_for_backward(xs, w_in, w_rec, a_syn, a_mem, a_adapt, z_all)
        return z_all

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_z: Tensor):  # type: ignore[override]
        xs, w_in, w_rec, a_syn, a_mem, a_adapt, z_all = ctx.saved_tensors
        spec: _Spec = ctx.spec
        need = ctx.need
        if not spec.synapse:
            need = (*need[:4], False, *need[5:])  # a_syn is a constant zero then
        if spec.adapt_kind is None:
            need = (*need[:6], False)
        grads = _backward(spec, grad_z, z_all, ctx.saved, xs, w_in, w_rec, a_syn, a_mem, a_adapt, need)
        ctx.saved = None  # free the [T, B, H] tensors as soon as possible
        return (None, *grads)
