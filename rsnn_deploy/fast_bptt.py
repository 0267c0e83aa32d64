"""Fast BPTT engine: the eager neuron loop with a hand-written, blocked backward pass.

Why it exists
-------------
Training an RSNN with plain autograd records about fifteen tiny graph nodes per time
step. On a small CPU machine their bookkeeping costs more than the arithmetic does
(``/work/shared/MEASURED.md``). This engine runs the same step as
:func:`rsnn_deploy.neuron.neuron_step` inside one :class:`torch.autograd.Function`.
The forward pass uses in-place kernels on reused buffers and keeps only what the
backward pass needs. The backward pass is a reverse-time loop written by hand. For the
``rec-syn`` variant it takes three elementwise kernels plus one matmul (``addmm``) per step.
Everything that does not depend on time order runs once per block of ``K`` steps over
a ``[K, B, H]`` tensor: surrogate derivatives, the weight and decay gradients, and the
input projection. This engine runs in eager mode only. It needs no compiler and no
warm-up.

Native loops
------------
Where a C compiler is present, the per-step loops of a block run in C instead
(:mod:`rsnn_deploy.native`, ``bptt_kernels.c``; float32 models without a refractory
period, every variant and both adaptation kinds). One call fuses a
block's steps, and everything fed by binary spikes is a sum over the spikes only: the
recurrent input ``W_rec z[t-1]``, the input drive ``W_in x[t]`` (when the inputs are 0/1)
and both weight gradients. The C forward pass keeps the rounding contract below (the
tests check identical spikes); ``RSNN_DEPLOY_NATIVE=0`` switches it off. On the 2-core
machine it made a training step about twice as fast (``benchmarks/train_throughput.py``).

:func:`run_weighted_sum` also returns the readout's weighted spike sum. Autograd would
otherwise hand the backward pass a dense ``[T, B, H]`` gradient for it, and writing that
tensor cost about a fifth of a training step at T = 784.

The contract
------------
Forward spikes and states are **bit-identical** to :func:`rsnn_deploy.neuron.neuron_step`
(which the eager loop ``RSNN._eager_spikes`` runs). To keep them identical, every
rounding step of ``neuron_step`` is repeated in the same order:
no fused multiply-add (``addcmul`` contracts to FMA and changes the last bit), and the
recurrent matmul and its addition are separate. The engine has one rewrite that is
exact: ``v - theta > 0`` is tested as ``v > theta``. With IEEE subnormals a difference
is zero only when the operands are equal, so the two tests always agree. The gradients
of ``w_in``, ``w_rec``, ``bias``, ``a_syn``, ``a_mem``, ``a_adapt`` and of the input match
autograd through ``neuron_step`` to float tolerance. ``tests/test_neuron.py`` checks both
against ``neuron_step`` for the torch and the C loops, ``tests/test_fast_bptt.py`` against the
model's eager loop for every variant and option.

Per step, with ``m`` the decayed adaptation state, ``p`` the voltage before the reset
and ``rc`` the product of the floor mask (``v >= v_floor``, the gradient mask of
``clamp``) and the refractory mask::

    i[t] = a_s i[t-1] + W_in x[t] + W_rec z[t-1]      m[t] = a_a n[t-1]
    p[t] = rc[t] max(a_m v[t-1] + i[t] + b (- m[t]), v_floor)
    u[t] = p[t] - theta (- m[t])                       z[t] = H(u[t])
    v[t] = p[t] (1 - z[t])                             n[t] = m[t] + s z[t]

The reverse-time adjoints (``g_x = dL/dx``, ``sg`` = surrogate derivative at ``u``, and
``g_p`` the adjoint of the voltage before floor and mask)::

    g_z[t] = dL/dz[t] + g_i[t+1] W_rec + s a_a g_m[t+1]
    g_u[t] = g_z[t] sg(u[t])
    g_p[t] = rc[t] (g_u[t] + a_m (1 - z[t]) g_p[t+1])
    g_m[t] = a_a g_m[t+1] - g_u[t] (threshold kind) or - g_p[t] (current kind)
    g_i[t] = g_p[t] + a_s g_i[t+1]

The reset and the refractory counter are detached, as in the eager model.

ATRLIF (``adapt_kind = "atrlif"``, torch loops only; the C loops decline it) adds a
refractory state ``r[t] = a_r r[t-1] (+ 2 (theta + m[t-1]) z[t-1], detached)``, spikes on
``u = (p - r) - (theta + m) > 0`` and never resets ``v``; ``a_r`` is a constant (with a
trainable ``tau_refr`` the eager loop runs). Its adjoints are the threshold kind's with
``q = a_m`` (no ``1 - z``): ``r`` is detached and so carries no gradient.

Memory
------
The forward pass stores ``p`` and the spikes (plus the threshold, the mask, ``i`` and
``n`` when needed), each ``[T, B, H]``. A fresh tensor of that size is a new mmap, and
its first writes page-fault: at T = 784, B = 256 that cost about a fifth of a training
step. Such tensors therefore come from a small pool. A tensor goes back to the pool when
its autograd graph is freed. An output goes back only once no other tensor shares its
storage. :func:`release_buffers` empties the pool.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from rsnn_deploy import native
from rsnn_deploy.config import ModelConfig
from rsnn_deploy.neuron import ADAPT_KINDS, SURROGATES, NeuronParams, surrogate_grad_

__all__ = ["block_steps", "native_supports", "release_buffers", "run", "run_weighted_sum", "supports"]

_DTYPES = (torch.float32, torch.float64)
# A block buffer of [K, B, H] stays below this many bytes. Then the block's buffers stay
# in the cache between the bulk kernels and the step loop that reads them.
_BLOCK_BYTES = 1 << 20


# ----------------------------------------------------------------------------- buffer pool


def _unshared(t: Tensor) -> bool:
    """Whether no tensor other than ``t`` uses its storage (and writing into it is invisible)."""
    use_count = getattr(torch._C, "_storage_Use_Count", None)
    if use_count is None:  # private API gone: never reuse a tensor that left this module
        return False
    # one reference from t, one from the temporary storage object made by this call
    return use_count(t.untyped_storage()._cdata) <= 2


class _Pool:
    """Large CPU tensors kept for the next training step, up to ``max_bytes`` in all.

    ``take`` returns a kept tensor of the right shape, if one is free, and otherwise a
    new one. ``give`` keeps a tensor. A tensor marked ``shared`` was handed out, and is
    reused only after every other reference to its storage has gone. ``give`` runs from
    ``__del__``, so that the garbage collector may call it in the middle of ``take``. It
    therefore only appends to a deque, which is atomic, and ``take`` moves the tensors
    over under its lock.
    """

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._free: list[tuple[Tensor, bool]] = []
        self._returned: deque[tuple[Tensor, bool]] = deque()
        self._lock = threading.Lock()

    def take(self, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
        if device.type == "cpu":
            with self._lock:
                self._drain()
                for k, (t, shared) in enumerate(self._free):
                    if t.shape == shape and t.dtype == dtype and (not shared or _unshared(t)):
                        return self._free.pop(k)[0]
        return torch.empty(shape, dtype=dtype, device=device)

    def give(self, tensors: list[Tensor], shared: bool = False) -> None:
        self._returned.extend((t, shared) for t in tensors if t.device.type == "cpu")

    def _drain(self) -> None:
        while self._returned:
            self._free.append(self._returned.popleft())
        total = sum(t.nbytes for t, _ in self._free)
        while self._free and total > self.max_bytes:  # drop the oldest
            total -= self._free.pop(0)[0].nbytes

    def clear(self) -> None:
        with self._lock:
            self._returned.clear()
            self._free.clear()


_POOL = _Pool(max_bytes=1 << 30)


def release_buffers() -> None:
    """Free the tensors the engine keeps for reuse between training steps."""
    _POOL.clear()


class _Lease:
    """The pooled tensors of one forward pass, handed back when the autograd graph frees it.

    Giving them back in ``backward`` would be wrong under ``retain_graph=True``. A second
    backward pass would then read buffers that another forward pass has overwritten.
    """

    def __init__(self, own: list[Tensor], out: Tensor):
        # A detached alias of the output: the output itself refers to the graph node that
        # holds this lease, and that reference cycle would outlive the step.
        self.own, self.out = own, out.detach()

    def __del__(self) -> None:
        try:
            _POOL.give(self.own)
            _POOL.give([self.out], shared=True)
        except (AttributeError, TypeError):  # interpreter shutdown: module globals are gone
            pass


# ----------------------------------------------------------------------------- entry points


@dataclass(frozen=True)
class _Spec:
    """Static (non-tensor) description of one run, read from ``NeuronParams`` and the config."""

    recurrent: bool
    synapse: bool
    adapt_kind: str | None
    adapt_strength: float
    threshold: float
    v_floor: float | None
    refractory_steps: int
    surrogate: str
    slope: float
    block: int
    native: bool = False  # inner loops in C (rsnn_deploy.native), see native_supports
    a_refr: Tensor | None = None  # ATRLIF: the refractory state's decay [H], a constant (no gradient)
    isa: str | None = None  # native: the C variant (rsnn_deploy.native.ISAS), fixed for forward and backward
    binary_input: bool = False  # native, and the inputs are 0/1: W_in x and its gradient as sums over spikes

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
    (and the eager loop runs) only for inputs it was not checked on: a device other than
    the CPU, a dtype other than float32 or float64, an unknown surrogate or adaptation
    kind, or parameter shapes that differ from the ``NeuronParams`` contract. On a GPU,
    bit-identical spikes are not established: cuBLAS may choose another algorithm for the
    per-block input projection than for eager's whole-sequence one.
    """
    h = p.w_in.shape[0] if p.w_in.dim() == 2 else -1
    if h < 1 or p.w_in.device.type != "cpu" or p.w_in.dtype not in _DTYPES:
        return False
    if cfg.surrogate not in SURROGATES:
        return False
    if p.adapt_kind is not None and p.adapt_kind not in ADAPT_KINDS:
        return False
    if p.adapt_kind == "atrlif":
        # ATRLIF (torch loops only): its r decay must be a constant [H] vector, and no floor / refractory mask
        a_r = p.a_refr
        if a_r is None or a_r.requires_grad or not _is_vector(a_r, h) or a_r.dtype != p.w_in.dtype:
            return False
        if p.v_floor is not None or p.refractory_steps > 0:
            return False
    if p.w_rec is not None and (p.w_rec.shape != (h, h) or p.w_rec.dtype != p.w_in.dtype):
        return False
    if p.bias is not None and not _is_vector(p.bias, h):
        return False
    decays = (p.a_syn, p.a_mem, p.a_adapt)
    return all(_is_vector(a, h) and a.dtype == p.w_in.dtype for a in decays)


def _native_isa(dtype: torch.dtype, refractory_steps: int, adapt_kind: str | None = None) -> tuple[str | None, str]:
    """The C variant the loops run on (None: the torch loops), and why; the one place that decides it."""
    if adapt_kind == "atrlif":
        return None, "ATRLIF: not in the C loops"
    if dtype != torch.float32:
        return None, f"{str(dtype).removeprefix('torch.')}: the C loops are float32"
    if refractory_steps > 0:
        return None, "refractory period: not in the C loops"
    return native.training_isa()


def loops_description(p: NeuronParams) -> str:
    """Which time loops :func:`run` will use for parameters ``p``, and why (for logs)."""
    isa, why = _native_isa(p.w_in.dtype, int(p.refractory_steps), p.adapt_kind)
    if isa is None:
        return f"torch loops ({why})"
    return f"native C loops ({isa}), {torch.get_num_threads()} thread(s): {why}"


def native_supports(spec: _Spec, dtype: torch.dtype) -> bool:
    """Whether the C inner loops cover this run: float32, no refractory period, no ATRLIF, and C chosen."""
    return _native_isa(dtype, spec.refractory_steps, spec.adapt_kind)[0] is not None


def run(xs: Tensor, p: NeuronParams, cfg: ModelConfig) -> Tensor:
    """Hidden spikes ``[T, B, H]`` from time-major inputs ``xs`` ``[T, B, C]``, as ``_eager_spikes`` does.

    The result is differentiable with respect to ``xs`` and every tensor in ``p`` that
    requires grad (first order only). Without any grad to compute, no state is kept.
    """
    return _run(xs, p, cfg, None)[0]


def run_weighted_sum(xs: Tensor, p: NeuronParams, cfg: ModelConfig, weights: Tensor) -> tuple[Tensor, Tensor]:
    """Hidden spikes ``[T, B, H]`` and their time-weighted sum ``sum_t weights[t] z[t]`` ``[B, H]``.

    The sum is what the linear readout needs (``model.readout_weights``). Computed here,
    its gradient reaches the backward pass as ``weights[t] * g`` block by block. Computed
    outside, autograd would write a dense ``[T, B, H]`` gradient for it, which cost about
    a fifth of a training step at T = 784. Both outputs are differentiable; ``weights``
    is a constant.
    """
    z_all, z_sum = _run(xs, p, cfg, weights.detach().to(p.w_in.dtype).contiguous())
    return z_all, z_sum


def _run(xs: Tensor, p: NeuronParams, cfg: ModelConfig, weights: Tensor | None) -> tuple[Tensor, Tensor]:
    h = p.w_in.shape[0]
    n_steps, batch = xs.shape[0], xs.shape[1]
    # Contiguous once: the blocks below are then views, not strided copies (x is batch-first).
    xs = xs.to(p.w_in.dtype).contiguous()
    if n_steps == 0:
        return xs.new_zeros(0, batch, h), xs.new_zeros(batch, h)
    spec, tensors = _prepare(xs, p, cfg)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        return _FastBPTT.apply(spec, weights, *tensors)
    with torch.no_grad():
        z_all, _, z_sum = _forward(spec, *tensors, keep=_Keep(), weights=weights)
    return z_all, z_sum


_Tensors = tuple[Tensor, Tensor, Tensor | None, Tensor | None, Tensor, Tensor, Tensor]


def _prepare(xs: Tensor, p: NeuronParams, cfg: ModelConfig) -> tuple[_Spec, _Tensors]:
    """The run's static description and its tensors ``(xs, w_in, w_rec, bias, a_syn, a_mem, a_adapt)``.

    ``xs`` is contiguous in the parameters' dtype; the vectors are expanded to [H].
    """
    h = p.w_in.shape[0]

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
        adapt_kind=p.adapt_kind,
        adapt_strength=float(p.adapt_strength),
        threshold=float(p.threshold),
        v_floor=None if p.v_floor is None else float(p.v_floor),
        refractory_steps=int(p.refractory_steps),
        surrogate=cfg.surrogate,
        slope=float(cfg.surrogate_slope),
        block=block_steps(xs.shape[1], h, xs.dtype, xs.shape[0]),
        a_refr=vec(p.a_refr) if p.adapt_kind == "atrlif" and p.a_refr is not None else None,
    )
    isa = _native_isa(xs.dtype, spec.refractory_steps, spec.adapt_kind)[0]
    if isa is not None:
        binary = native.is_binary(xs, isa)
        spec = dataclasses.replace(spec, native=True, isa=isa, binary_input=binary and not xs.requires_grad)
    return spec, (xs, p.w_in, p.w_rec, bias, a_syn, a_mem, a_adapt)


# ----------------------------------------------------------------------------- forward


@dataclass(frozen=True)
class _Keep:
    """Which per-step tensors the forward pass stores for the backward pass."""

    p: bool = False  # the voltage before reset (and the threshold, the mask), always for backward
    i: bool = False  # i[t], only for the gradient of a_syn
    n: bool = False  # n[t], only for the gradient of a_adapt


class _Saved(NamedTuple):
    """Per-step tensors stored by the forward pass, time-major ``[T, B, H]`` (None when not kept)."""

    p: Tensor | None  # voltage before the reset, after floor and refractory mask
    th: Tensor | None  # threshold theta + m (threshold adaptation only)
    rc: Tensor | None  # product of the floor and refractory gradient masks
    i: Tensor | None
    n: Tensor | None
    r: Tensor | None = None  # ATRLIF: r after its decay, before the spike's increment


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
    pooled: bool = False,
    weights: Tensor | None = None,
) -> tuple[Tensor, _Saved, Tensor]:
    """Run the neurons over all steps; returns spikes ``[T, B, H]``, what ``keep`` asked for, and
    ``sum_t weights[t] z[t]`` ``[B, H]`` (empty without ``weights``).

    The rounding matches ``neuron_step`` exactly, one elementwise kernel per operation
    there. Only the allocation changes: states live in reused ``[B, H]`` buffers (or
    in their slot of a kept ``[T, B, H]`` tensor), and ``W_in x`` is computed per block.
    """
    n_steps, batch, n_in = xs.shape
    h = w_in.shape[0]
    opts: dict[str, Any] = {"dtype": xs.dtype, "device": xs.device}
    shape = (n_steps, batch, h)
    thr_adapt = spec.adapt_kind in ("threshold", "atrlif")  # both compare v (- r) with theta + m

    def seq(flag: bool) -> Tensor | None:
        if not flag:
            return None
        return _POOL.take(shape, xs.dtype, xs.device) if pooled else torch.empty(shape, **opts)

    z_all = seq(True)
    assert z_all is not None
    saved = _Saved(
        p=seq(keep.p),
        th=seq(keep.p and thr_adapt),
        rc=seq(keep.p and spec.masked),
        i=seq(keep.i and spec.synapse),
        n=seq(keep.n and spec.adapt_kind is not None),
        r=seq(keep.p and spec.adapt_kind == "atrlif"),
    )
    w_in_t = w_in.t()
    k_max = spec.block
    drive_buf = torch.empty(min(k_max, n_steps), batch, h, **opts)
    c_loop = _NativeForward(spec, w_in, w_rec, bias, a_syn, a_mem, a_adapt, batch) if spec.native else None
    t_loop = None if c_loop is not None else _TorchForward(spec, z_all, saved, w_rec, bias, a_syn, a_mem, a_adapt)
    z_sum = torch.zeros(batch, h, **opts) if weights is not None else xs.new_zeros(0)
    for t0 in range(0, n_steps, k_max):
        t1 = min(t0 + k_max, n_steps)
        drives = drive_buf[: t1 - t0]
        if c_loop is not None and spec.binary_input:
            c_loop.run(t0, t1, None, xs[t0:t1], z_all, saved)  # the C loop sums W_in rows itself
        else:
            # Per block, yet bit-equal to eager's whole-sequence projection: the same mm on
            # the same rows, with a reduction over C only (the tests check this).
            torch.mm(xs[t0:t1].reshape(-1, n_in), w_in_t, out=drives.view(-1, h))
            if c_loop is not None:
                c_loop.run(t0, t1, drives, None, z_all, saved)
            else:
                assert t_loop is not None
                t_loop.run(t0, drives)
        if weights is not None:  # one GEMV per block, while the block's spikes are in the cache
            z_sum.view(-1).addmv_(z_all[t0:t1].view(t1 - t0, -1).t(), weights[t0:t1])
    return z_all, saved, z_sum


class _TorchForward:
    """The per-step loop of ``_forward`` with torch kernels (where the C loop is not used), with its state buffers.

    A kept state is written straight into its ``[T, B, H]`` slot instead of a buffer.
    """

    def __init__(
        self,
        spec: _Spec,
        z_all: Tensor,
        saved: _Saved,
        w_rec: Tensor | None,
        bias: Tensor | None,
        a_syn: Tensor,
        a_mem: Tensor,
        a_adapt: Tensor,
    ):
        _, batch, h = z_all.shape
        opts: dict[str, Any] = {"dtype": z_all.dtype, "device": z_all.device}
        self.spec, self.bias, self.a_syn, self.a_mem, self.a_adapt = spec, bias, a_syn, a_mem, a_adapt
        self.w_rec_t = w_rec.t() if w_rec is not None else None
        self.zeros = torch.zeros(batch, h, **opts)
        self.i_buf, self.v_state, self.n_buf, self.ref = (torch.zeros(batch, h, **opts) for _ in range(4))
        self.p_buf, self.th_buf, self.rec_buf, self.mask_buf = (torch.empty(batch, h, **opts) for _ in range(4))
        self.r_state = torch.zeros(batch, h, **opts) if spec.adapt_kind == "atrlif" else None

        def steps(t: Tensor | None) -> tuple[Tensor, ...] | None:
            return t.unbind(0) if t is not None else None

        self.zs = z_all.unbind(0)
        self.ps, self.ths, self.rcs, self.is_, self.ns, self.rs = (steps(t) for t in saved)

    def _current(self, t: int, d_t: Tensor) -> Tensor:
        """``i = a_s * i + drive (+ z[t-1] @ W_rec^T)``, into its buffer or kept slot."""
        spec, is_, i_buf, rec_buf = self.spec, self.is_, self.i_buf, self.rec_buf
        rec = spec.recurrent and t > 0  # z[-1] = 0 adds nothing
        if rec:
            torch.mm(self.zs[t - 1], self.w_rec_t, out=rec_buf)  # type: ignore[arg-type]
        i_cur = is_[t] if is_ is not None else i_buf
        if spec.synapse:
            i_prev = (is_[t - 1] if t > 0 else self.zeros) if is_ is not None else i_buf
            torch.mul(i_prev, self.a_syn, out=i_cur)
            i_cur.add_(d_t)
            if rec:
                i_cur.add_(rec_buf)
        elif rec:
            torch.add(d_t, rec_buf, out=i_cur)
        elif is_ is not None:
            i_cur.copy_(d_t)
        else:
            i_cur = d_t  # read only below
        return i_cur

    def _atrlif_spike(self, t: int, v: Tensor, n_cur: Tensor, z: Tensor) -> None:
        """ATRLIF: r = a_r r; z = (v - r) - (n + theta) > 0; r += 2 (n + theta) z (detached); no reset."""
        spec, r_state, a_refr, rec_buf = self.spec, self.r_state, self.spec.a_refr, self.rec_buf
        assert r_state is not None and a_refr is not None
        torch.mul(r_state, a_refr, out=r_state)
        if self.rs is not None:
            self.rs[t].copy_(r_state)
        th = self.ths[t] if self.ths is not None else self.th_buf
        torch.add(n_cur, spec.threshold, out=th)
        torch.sub(v, r_state, out=rec_buf)
        torch.gt(rec_buf, th, out=z)
        torch.mul(th, 2.0, out=rec_buf)
        rec_buf.mul_(z)
        r_state.add_(rec_buf)
        self.v_state.copy_(v)

    def run(self, t0: int, drives: Tensor) -> None:
        """The steps of one block, from its input drive ``W_in x`` ``[K, B, H]``."""
        spec, ps, rcs, ns, ths, zs = self.spec, self.ps, self.rcs, self.ns, self.ths, self.zs
        v_state, ref, mask_buf = self.v_state, self.ref, self.mask_buf
        adapt, atr = spec.adapt_kind is not None, spec.adapt_kind == "atrlif"
        floor, refr, theta, strength = spec.v_floor, spec.refractory_steps, spec.threshold, spec.adapt_strength
        n_cur = self.n_buf
        for k, d_t in enumerate(drives.unbind(0)):
            t = t0 + k
            i_cur = self._current(t, d_t)
            # n = a_a * n
            if adapt:
                n_cur = ns[t] if ns is not None else self.n_buf
                n_prev = (ns[t - 1] if t > 0 else self.zeros) if ns is not None else self.n_buf
                torch.mul(n_prev, self.a_adapt, out=n_cur)
            # v = a_m * v + i (+ bias) (- n), then floor and refractory; rc is their gradient mask
            v = ps[t] if ps is not None else self.p_buf
            torch.mul(v_state, self.a_mem, out=v)
            v.add_(i_cur)
            if self.bias is not None:
                v.add_(self.bias)
            if spec.adapt_kind == "current":
                v.sub_(n_cur)
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
            # z = v - threshold > 0, tested as v > threshold (exact, see the module docstring)
            z = zs[t]
            if atr:
                self._atrlif_spike(t, v, n_cur, z)
            elif spec.adapt_kind == "threshold":
                th = ths[t] if ths is not None else self.th_buf
                torch.add(n_cur, theta, out=th)
                torch.gt(v, th, out=z)
            else:
                torch.gt(v, theta, out=z)
            # detached reset v * (1 - z) (exact: z is 0 or 1), adaptation jump, refractory count
            if not atr:
                torch.addcmul(v, v, z, value=-1.0, out=v_state)
            if adapt:
                n_cur.add_(z, alpha=strength)
            if refr > 0:
                # where(z, R, max(ref - 1, 0)) == max(max(ref - 1, 0), R z), since ref <= R
                ref.sub_(1).clamp_min_(0)
                torch.mul(z, float(refr), out=mask_buf)
                torch.maximum(ref, mask_buf, out=ref)


class _NativeForward:
    """The per-step loop of ``_forward`` in C (``native.forward_block``), with its own state buffers."""

    def __init__(
        self,
        spec: _Spec,
        w_in: Tensor,
        w_rec: Tensor | None,
        bias: Tensor | None,
        a_syn: Tensor,
        a_mem: Tensor,
        a_adapt: Tensor,
        batch: int,
    ):
        h = a_mem.shape[0]
        self.spec = spec
        self.w_in_t = w_in.detach().t().contiguous() if spec.binary_input else None
        # The C loop reads plain contiguous float32 arrays (the decays arrive as expanded views).
        self.w_rec_t = w_rec.detach().t().contiguous() if spec.recurrent and w_rec is not None else None
        self.a_syn = a_syn.detach().contiguous() if spec.synapse else None
        self.a_mem = a_mem.detach().contiguous()
        self.bias = bias.detach().contiguous() if bias is not None else None
        self.a_adapt = a_adapt.detach().contiguous() if spec.adapt_kind is not None else None
        self.i, self.v, self.n = torch.zeros(batch, h), torch.zeros(batch, h), torch.zeros(batch, h)
        self.act = torch.empty(batch, h, dtype=torch.int32)
        self.n_act = torch.zeros(batch, dtype=torch.int32)

    def run(self, t0: int, t1: int, drives: Tensor | None, x: Tensor | None, z_all: Tensor, saved: _Saved) -> None:
        """Steps t0..t1-1 from the input drive ``W_in x`` of the block, or from the binary inputs ``x``."""

        def block(t: Tensor | None) -> Tensor | None:
            return t[t0:t1] if t is not None else None

        spec = self.spec
        native.forward_block(
            drives, x, self.w_in_t, self.w_rec_t, self.a_syn, self.a_mem, self.bias, spec.threshold, spec.v_floor,
            t0 == 0, self.i, self.v, self.act, self.n_act,
            z_all[t0:t1], block(saved.p), block(saved.rc), block(saved.i),
            spec.adapt_kind, self.a_adapt, spec.adapt_strength, self.n, block(saved.n), block(saved.th), spec.isa,
        )  # fmt: skip


# ----------------------------------------------------------------------------- backward


class _NativeBackward:
    """The reverse-time step loop of ``_Backward`` in C (``native.backward_block``); carries its adjoints."""

    def __init__(
        self,
        spec: _Spec,
        z_all: Tensor,
        saved: _Saved,
        w_rec: Tensor | None,
        a_syn: Tensor,
        a_mem: Tensor,
        a_adapt: Tensor,
        carry_i: Tensor,
        carry_p: Tensor,
        carry_m: Tensor,
    ):
        self.spec, self.z_all, self.saved = spec, z_all, saved
        self.w_rec = w_rec.detach().contiguous() if spec.recurrent and w_rec is not None else None
        self.a_syn = a_syn.detach().contiguous() if spec.synapse else None
        self.a_mem = a_mem.detach().contiguous()
        self.a_adapt = a_adapt.detach().contiguous() if spec.adapt_kind is not None else None
        self.carry_i, self.carry_p, self.carry_m = carry_i, carry_p, carry_m
        self.n_steps = z_all.shape[0]

    def run(
        self,
        t0: int,
        t1: int,
        gz: Tensor | None,
        gi_out: Tensor,
        gp_out: Tensor,
        gm_out: Tensor | None,
        gz_w: Tensor | None = None,
        gz_sum: Tensor | None = None,
    ) -> None:
        """Adjoints of steps t0..t1-1 into gi_out, gp_out from ``gz`` = dL/dz of the block (contiguous),
        or (``gz`` None) from ``gz_w[k] * gz_sum``, formed in C."""
        spec, saved = self.spec, self.saved
        assert saved.p is not None
        rc = saved.rc[t0:t1] if saved.rc is not None else None
        native.backward_block(
            t1 < self.n_steps, gz, saved.p[t0:t1], self.z_all[t0:t1], rc, spec.threshold,
            spec.surrogate, spec.slope, self.w_rec, self.a_syn, self.a_mem, self.carry_i, self.carry_p, gi_out, gp_out,
            spec.adapt_kind, saved.th[t0:t1] if saved.th is not None else None, self.a_adapt, spec.adapt_strength,
            self.carry_m, gm_out, spec.isa, gz_w, gz_sum,
        )  # fmt: skip


class _Backward:
    """One backward pass (:meth:`run`): reused block buffers, the adjoints carried between blocks, the gradients.

    dL/dz[t] = grad_z[t] + weights[t] grad_sum (either term may be absent) is formed one
    block at a time, in a reused buffer. Per block (latest first): the adjoints of its steps
    (:meth:`torch_block`, or the C loop), then the gradients that are sums over time
    (:meth:`accumulate`).

    Adjoint buffers are ``[K, B, H]`` (``K`` = ``spec.block``): ``gi`` (of ``i``), ``gp`` (of
    the voltage before floor and mask; ``gi`` itself without synapse, where the two are
    equal) and ``gm`` (of the adaptation state). ``*_next`` are the adjoints of the step
    after the one being computed; ``carry_*`` keep them while the next (earlier) block
    overwrites the buffers.
    """

    def __init__(
        self,
        spec: _Spec,
        grad_z: Tensor | None,
        weights: Tensor | None,
        grad_sum: Tensor | None,
        z_all: Tensor,
        saved: _Saved,
        xs: Tensor,
        w_in: Tensor,
        w_rec: Tensor | None,
        a_syn: Tensor,
        a_mem: Tensor,
        a_adapt: Tensor,
        need: tuple[bool, ...],
    ):
        n_steps, batch, n_in = xs.shape
        h = w_in.shape[0]
        opts: dict[str, Any] = {"dtype": z_all.dtype, "device": z_all.device}
        assert saved.p is not None
        self.spec, self.grad_z, self.weights, self.z_all, self.saved, self.xs = spec, grad_z, weights, z_all, saved, xs
        self.w_in, self.w_rec, self.a_syn, self.a_mem, self.a_adapt = w_in, w_rec, a_syn, a_mem, a_adapt
        self.need_x, self.need_w_in, self.need_w_rec, self.need_b, self.need_as, self.need_am, self.need_aa = need
        self.atr = spec.adapt_kind == "atrlif"  # r is detached (a constant decay): no adjoint reaches the parameters
        self.thr_adapt = spec.adapt_kind in ("threshold", "atrlif")
        self.adapt = spec.adapt_kind is not None
        self.last = n_steps - 1
        k_buf = min(spec.block, n_steps)

        def blk() -> Tensor:
            return torch.empty(k_buf, batch, h, **opts)

        self.sg_buf, self.q_buf, self.gi_buf = blk(), blk(), blk()
        self.gp_buf = blk() if spec.synapse else self.gi_buf  # without synapse g_i == g_p
        self.gm_buf = blk() if self.adapt else None
        self.gz_buf = blk()
        self.g_z = torch.empty(batch, h, **opts)
        self.g_u = torch.empty(batch, h, **opts) if self.thr_adapt and spec.masked else None
        self.carry_i, self.carry_p, self.carry_m = (torch.zeros(batch, h, **opts) for _ in range(3))
        self.s_a = a_adapt * spec.adapt_strength
        self.gi_next: Tensor | None = None
        self.gp_next: Tensor | None = None
        self.gm_next: Tensor | None = None

        self.grads: dict[str, Tensor] = {}
        if self.need_w_in:  # accumulated transposed: x^T g_i runs about 1.7x faster than g_i^T x (N = C is small)
            self.grads["w_in_t"] = torch.zeros(n_in, h, **opts)
        if self.need_w_rec:
            self.grads["w_rec"] = torch.zeros(h, h, **opts)
        for name, flag in (("bias", self.need_b), ("a_syn", self.need_as), ("a_mem", self.need_am),
                           ("a_adapt", self.need_aa)):  # fmt: skip
            if flag:
                self.grads[name] = torch.zeros(h, **opts)
        self.g_x = torch.empty(n_steps, batch, n_in, **opts) if self.need_x else None
        self.grad_sum = grad_sum.contiguous() if grad_sum is not None else None
        self.c_loop = (
            _NativeBackward(spec, z_all, saved, w_rec, a_syn, a_mem, a_adapt, self.carry_i, self.carry_p, self.carry_m)
            if spec.native
            else None
        )

    def run(self) -> tuple[Tensor | None, ...]:
        """The reverse-time loop over blocks; grads of (xs, w_in, w_rec, bias, a_syn, a_mem, a_adapt)."""
        n_steps = self.xs.shape[0]
        for t0 in reversed(range(0, n_steps, self.spec.block)):
            t1 = min(t0 + self.spec.block, n_steps)
            if self.c_loop is not None:
                self.native_block(t0, t1)
            else:
                self.torch_block(t0, t1)
            self.accumulate(t0, t1)
            if self.c_loop is None:
                self.carry()
        return self.result()

    def block_grad(self, t0: int, t1: int) -> Tensor:
        """dL/dz of steps t0..t1-1, contiguous [t1 - t0, B, H]."""
        out = self.gz_buf[: t1 - t0]
        grad_z, grad_sum = self.grad_z, self.grad_sum
        if grad_sum is not None:
            assert self.weights is not None
            torch.mul(self.weights[t0:t1].view(-1, 1, 1), grad_sum, out=out)
            if grad_z is not None:
                out.add_(grad_z[t0:t1])
        elif grad_z is not None:
            g = grad_z[t0:t1]
            return g if g.is_contiguous() else out.copy_(g)
        else:
            out.zero_()
        return out

    def native_block(self, t0: int, t1: int) -> None:
        """The adjoints of steps t0..t1-1 by the C loop (which carries them between blocks itself)."""
        assert self.c_loop is not None
        nb = t1 - t0
        gm_b = self.gm_buf[:nb] if self.gm_buf is not None else None
        gi_b, gp_b = self.gi_buf[:nb], self.gp_buf[:nb]
        if self.grad_z is None and self.grad_sum is not None:
            # dL/dz = weights[t] grad_sum only: formed inside the C loop, no [K, B, H] buffer
            assert self.weights is not None
            self.c_loop.run(t0, t1, None, gi_b, gp_b, gm_b, self.weights[t0:t1].contiguous(), self.grad_sum)
        else:
            self.c_loop.run(t0, t1, self.block_grad(t0, t1), gi_b, gp_b, gm_b)

    def _block_factors(self, t0: int, t1: int) -> tuple[Tensor, Tensor, Tensor | None]:
        """Time-independent factors of a block: ``sg(u)`` and ``q = a_m (1 - z)``, masked by ``rc``; and ``rc``."""
        spec, saved, p_all = self.spec, self.saved, self.saved.p
        assert p_all is not None
        sg, q = self.sg_buf[: t1 - t0], self.q_buf[: t1 - t0]
        if self.atr:  # u = (v - r) - (theta + m); v is not reset, so v[t] carries a_m fully
            assert saved.r is not None and saved.th is not None
            torch.sub(p_all[t0:t1], saved.r[t0:t1], out=sg)
            sg.sub_(saved.th[t0:t1])
        elif saved.th is not None:
            torch.sub(p_all[t0:t1], saved.th[t0:t1], out=sg)
        else:
            torch.sub(p_all[t0:t1], spec.threshold, out=sg)
        surrogate_grad_(sg, spec.surrogate, spec.slope)
        if self.atr:
            q.copy_(self.a_mem.expand_as(q))
        else:
            torch.addcmul(self.a_mem, self.z_all[t0:t1], self.a_mem, value=-1.0, out=q)
        rc = saved.rc[t0:t1] if saved.rc is not None else None
        if rc is not None:
            q.mul_(rc)
            if not self.thr_adapt:
                sg.mul_(rc)  # g_p = rc sg g_z: fold the mask once per block
        return sg, q, rc

    def torch_block(self, t0: int, t1: int) -> None:
        """The adjoints of steps t0..t1-1 with torch kernels, latest step first (equations: module docstring)."""
        spec, adapt, thr_adapt = self.spec, self.adapt, self.thr_adapt
        w_rec, a_syn, a_adapt, s_a, g_z, g_u = self.w_rec, self.a_syn, self.a_adapt, self.s_a, self.g_z, self.g_u
        sg, q, rc = self._block_factors(t0, t1)
        gzs = self.block_grad(t0, t1).unbind(0)
        sgs, qs = sg.unbind(0), q.unbind(0)
        gis, gps = self.gi_buf.unbind(0), self.gp_buf.unbind(0)
        gms = self.gm_buf.unbind(0) if self.gm_buf is not None else None
        rcs = rc.unbind(0) if rc is not None else None
        gi_next, gp_next, gm_next = self.gi_next, self.gp_next, self.gm_next
        for k in range(t1 - t0 - 1, -1, -1):
            first = t0 + k == self.last  # the last time step has no successor
            # g_z = dL/dz + g_i[t+1] W_rec + s a_a g_m[t+1]
            if first:
                gz = gzs[k]
            elif spec.recurrent:
                gz = torch.addmm(gzs[k], gi_next, w_rec, out=g_z)  # type: ignore[arg-type]
                if adapt:
                    gz.addcmul_(s_a, gm_next)  # type: ignore[arg-type]
            elif adapt:
                gz = torch.addcmul(gzs[k], s_a, gm_next, out=g_z)  # type: ignore[arg-type]
            else:
                gz = gzs[k]
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
        self.gi_next, self.gp_next, self.gm_next = gi_next, gp_next, gm_next

    def accumulate(self, t0: int, t1: int) -> None:
        """Add the block's share of the gradients that are sums over time (one big kernel each)."""
        spec, saved, grads, z_all, xs = self.spec, self.saved, self.grads, self.z_all, self.xs
        p_all = saved.p
        assert p_all is not None
        nb = t1 - t0
        n_in, h = xs.shape[2], self.w_in.shape[0]
        gi_b, gp_b = self.gi_buf[:nb], self.gp_buf[:nb]
        if self.need_w_in and spec.binary_input:  # a sum over the input spikes only
            native.spike_outer_block(gi_b, xs[t0:t1], grads["w_in_t"], spec.isa)
        elif self.need_w_in:
            grads["w_in_t"].addmm_(xs[t0:t1].reshape(-1, n_in).t(), gi_b.reshape(-1, h))
        if self.g_x is not None:
            torch.mm(gi_b.reshape(-1, h), self.w_in, out=self.g_x[t0:t1].view(-1, n_in))
        if self.need_b:
            grads["bias"].add_(gp_b.sum((0, 1)))
        # Gradients that pair step t with the state of step t - 1 (zero before t = 0).
        lo = 1 if t0 == 0 else 0
        prev = slice(t0 + lo - 1, t1 - 1)
        if lo >= nb:
            return
        if self.need_w_rec and spec.native:  # a sum over the spikes only
            native.spike_outer_block(gi_b[lo:], z_all[prev], grads["w_rec"], spec.isa)
        elif self.need_w_rec:
            zp = z_all[prev].reshape(-1, h)
            grads["w_rec"].addmm_(gi_b[lo:].reshape(-1, h).t(), zp)
        if self.need_as:
            grads["a_syn"].add_((gi_b[lo:] * saved.i[prev]).sum((0, 1)))  # type: ignore[index]
        if self.need_am:
            v_prev = p_all[prev] if self.atr else p_all[prev] * (1.0 - z_all[prev])  # v after the reset
            grads["a_mem"].add_((gp_b[lo:] * v_prev).sum((0, 1)))
        if self.need_aa:
            gm_b = self.gm_buf[lo:nb]  # type: ignore[index]
            grads["a_adapt"].add_((gm_b * saved.n[prev]).sum((0, 1)))  # type: ignore[index]

    def carry(self) -> None:
        """The next (earlier) block reuses the buffers: keep the adjoints of its successor step."""
        self.gi_next = self.carry_i.copy_(self.gi_next)  # type: ignore[arg-type]
        same = self.gp_buf is self.gi_buf
        self.gp_next = self.gi_next if same else self.carry_p.copy_(self.gp_next)  # type: ignore[arg-type]
        if self.adapt:
            self.gm_next = self.carry_m.copy_(self.gm_next)  # type: ignore[arg-type]

    def result(self) -> tuple[Tensor | None, ...]:
        """Gradients of (xs, w_in, w_rec, bias, a_syn, a_mem, a_adapt), None where not needed."""
        grads = self.grads
        g_w_in = grads["w_in_t"].t().contiguous() if self.need_w_in else None
        if self.need_w_rec and self.spec.native:  # accumulated transposed by the C loop
            grads["w_rec"] = grads["w_rec"].t().contiguous()
        return (
            self.g_x,
            g_w_in,
            grads.get("w_rec"),
            grads.get("bias"),
            grads.get("a_syn"),
            grads.get("a_mem"),
            grads.get("a_adapt"),
        )


class _FastBPTT(torch.autograd.Function):
    """Spikes of the whole sequence (and their weighted time sum) as one graph node; see the module docstring."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        spec: _Spec,
        weights: Tensor | None,
        xs: Tensor,
        w_in: Tensor,
        w_rec: Tensor | None,
        bias: Tensor | None,
        a_syn: Tensor,
        a_mem: Tensor,
        a_adapt: Tensor,
    ) -> tuple[Tensor, Tensor]:
        need = tuple(ctx.needs_input_grad[2:9])
        if not spec.synapse:
            need = (*need[:4], False, *need[5:])  # a_syn is a constant zero then
        if spec.adapt_kind is None:
            need = (*need[:6], False)  # a_adapt is unused then
        keep = _Keep(p=True, i=need[4], n=need[6])
        z_all, saved, z_sum = _forward(spec, xs, w_in, w_rec, bias, a_syn, a_mem, a_adapt, keep, True, weights)
        ctx.spec, ctx.saved, ctx.need, ctx.weights = spec, saved, need, weights
        ctx.lease = _Lease([t for t in saved if t is not None], z_all)
        ctx.save_for_backward(xs, w_in, w_rec, a_syn, a_mem, a_adapt, z_all)
        # An unused output's gradient arrives as None, not as a [T, B, H] tensor of zeros.
        ctx.set_materialize_grads(False)
        return z_all, z_sum

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_z: Tensor | None, grad_sum: Tensor | None):  # type: ignore[override]
        xs, w_in, w_rec, a_syn, a_mem, a_adapt, z_all = ctx.saved_tensors
        if ctx.weights is None:
            grad_sum = None
        grads = _Backward(
            ctx.spec, grad_z, ctx.weights, grad_sum, z_all, ctx.saved, xs, w_in, w_rec, a_syn, a_mem, a_adapt, ctx.need
        ).run()
        return (None, None, *grads)
