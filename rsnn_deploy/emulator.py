"""Bit-exact integer emulation of each hardware profile, batched over samples.

The integer step of each profile is written once, as a pure function over typed state
(NamedTuples, like Norse's ``lif_step``): :func:`loihi1_step` and :func:`loihi2_step`, one module
per semantics in :mod:`rsnn_deploy.semantics` (re-exported here), found by the profile's registry entry.
:func:`run` applies them to a whole batch at once and returns a
:class:`~rsnn_deploy.trace.Trace`.

How :func:`run` stays exact and fast
------------------------------------
- Spikes times integer weights go through BLAS: one GEMM per step,
  ``[hidden spikes of t-1 | input spikes] @ [w_rec.T ; w_in.T]``, in float32 when every
  possible sum stays below 2**24 (exact with a 24-bit mantissa), else float64 (2**53).
- States are float64 arrays holding integers (the steps accept int64 too): a decay is then
  ``trunc(x * (r / 4096))``, exact because ``r / 4096`` is dyadic and ``|x| * r < 2**53``.
  Wraps go through int64 on the rare steps a cheap min/max check says they are needed.
- Operations that static facts prove to be no-ops are skipped (:func:`params_for`).
- Where a compiler is present, the whole time loop runs in C (``emulator_kernels.c``, integers
  throughout): for ``loihi1`` where q and u provably cannot wrap, for ``loihi2`` (Lava's LIF and
  ATRLIF, its wrap of u and every overflow count included) whenever weight sums fit int32. Both
  record the states too; ``Semantics.native_ok`` says when, and the tests hold them to the numpy
  step bit for bit. ``RSNN_DEPLOY_NATIVE=0`` runs numpy.
- The synaptic sum of a chip step is one function (:func:`synaptic_sum`), shared with hil's
  emulator stepper.
- On small shared machines one BLAS thread is faster (``OPENBLAS_NUM_THREADS=1``).

Alignment contract
------------------
The float model sees ``x[t]`` at step ``t``. The hardware delivers a host input spike
``input_latency`` steps later. :func:`run` therefore feeds ``x[k]`` at chip step
``k`` (so it reaches ``q`` at chip step ``k + L``), runs ``T + L`` chip steps and drops
the first ``L``: trace step ``t`` is chip step ``t + L``, the step that integrates
``x[t]``. The ``L`` dropped steps are real hardware steps without input: the bias and
the recurrence already act during them (only a network with zero bias starts them, and
hence trace step 0, from rest).

Overflow
--------
Wrap-around is reproduced exactly. ``strict=False`` (nengo-loihi's default in its
emulator) counts the neuron-steps that wrapped, returns them in ``Trace.overflow`` and
warns once; ``strict=True`` raises :class:`EmulatorOverflowError` at the first one.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from rsnn_deploy import semantics
from rsnn_deploy.errors import RsnnError, ValidationError
from rsnn_deploy.hardware import HardwareProfile, load_profile
from rsnn_deploy.qnet import QuantizedNetwork
from rsnn_deploy.semantics._int import (  # noqa: F401  (re-exported; tests use the private kernels)
    _clip_into,
    _decay_into,
    _outside,
    _wrap_counted,
    decay_int,
    q_bound,
    wrap,
    wrap_lava,
)
from rsnn_deploy.semantics.loihi1 import Loihi1Params, Loihi1State, loihi1_step
from rsnn_deploy.semantics.loihi2 import Loihi2Params, Loihi2State, loihi2_step
from rsnn_deploy.trace import Trace, check_spikes, host_readout

__all__ = [
    "ChipWeights",
    "EmulatorOverflowError",
    "Loihi1Params",
    "Loihi1State",
    "Loihi2Params",
    "Loihi2State",
    "decay_int",
    "initial_state",
    "loihi1_step",
    "loihi2_step",
    "params_for",
    "run",
    "synaptic_sum",
    "wrap",
    "wrap_lava",
]


class EmulatorOverflowError(RsnnError, ArithmeticError):
    """``strict=True``: a state left its word width and the hardware would wrap it."""


# The integer helpers and each semantics' step live in rsnn_deploy.semantics (one module per
# semantics); they are re-exported here, where they were first defined.


def params_for(qnet: QuantizedNetwork, profile: HardwareProfile) -> Loihi1Params | Loihi2Params:
    """The step parameters of ``qnet`` under ``profile``'s semantics (``semantics.for_profile(profile).params``).

    For ``loihi1``, wraps that static bounds prove to be no-ops are switched off, and so
    is the refractory bookkeeping when every ``ref <= 1`` (then ``ref_count`` stays 0)
    and the ceiling clip when every ``vth < vmax`` (a voltage above vmax spikes and
    resets to 0 with or without the clip); skipping a no-op is exact.
    """
    return semantics.for_profile(profile).params(qnet, profile)


def initial_state(
    profile: HardwareProfile, batch: int, n_hidden: int, dtype: type = np.int64
) -> Loihi1State | Loihi2State:
    """All-zero state (the chip at rest) for ``batch`` samples.

    ``dtype`` of u, v, theta: int64, or float64 holding integers (exact below 2**40 and
    faster, as :func:`run` uses it); ``ref_count`` is always int64.
    """
    return semantics.for_profile(profile).initial_state(batch, n_hidden, dtype)


def _resolve_profile(qnet: QuantizedNetwork, profile: HardwareProfile | str | None) -> HardwareProfile:
    prof = profile if isinstance(profile, HardwareProfile) else load_profile(profile or qnet.profile)
    if prof.name != qnet.profile:
        raise ValidationError(
            f"run.profile: network was quantized for {qnet.profile!r} (got {prof.name!r}); "
            f"re-quantize with --profile {prof.name}"
        )
    return prof


def _check_spikes(spikes_in: np.ndarray, n_inputs: int) -> np.ndarray:
    return check_spikes(spikes_in, "run.spikes_in", ("B", "T", n_inputs))


def _covered(prof: HardwareProfile, p: Loihi1Params | Loihi2Params) -> bool:
    """Whether a C loop (``emulator_kernels.c``) computes this run exactly: the semantics has one
    (:data:`_NATIVE`) and its ``native_ok`` accepts the parameters (loihi1: no wraps of q and u, no
    refractory bookkeeping, no binding ceiling; loihi2: weight sums within int32)."""
    sem = semantics.for_profile(prof)
    return bool(sem.native and sem.key in _NATIVE and sem.native_ok(p))


def _native_on() -> bool:
    from rsnn_deploy import native

    return native.enabled()


def _native_ok(prof: HardwareProfile, p: Loihi1Params | Loihi2Params) -> bool:
    """Whether :func:`run` takes the C loop for these parameters (:func:`_covered`, switched on, built)."""
    return _covered(prof, p) and _native_on()


def _native_ok_cached(qnet: QuantizedNetwork, prof: HardwareProfile, p: Loihi1Params | Loihi2Params) -> bool:
    """:func:`_native_ok`, with :func:`_covered` computed once per network (the switch
    ``RSNN_DEPLOY_NATIVE`` and the build are asked every time)."""
    return bool(_prepared(qnet, prof, "covered", lambda: _covered(prof, p))) and _native_on()


_native_loihi1_ok = _native_ok  # the name tests and callers used before loihi2 had a C loop


# Per network and profile: the step parameters and the C loop's arrays. A QuantizedNetwork is
# frozen and its arrays are read-only, so both stay valid as long as the network lives; a host
# loop calling run() per sample then pays neither the bounds of params_for nor the conversions.
_PREPARED: weakref.WeakKeyDictionary[QuantizedNetwork, dict[object, object]] = weakref.WeakKeyDictionary()


def _prepared(qnet: QuantizedNetwork, prof: HardwareProfile, what: str, make: Callable[[], Any]) -> Any:
    try:
        per = _PREPARED.setdefault(qnet, {})
    except TypeError:  # not weak-referenceable: compute every time
        return make()
    key = (what, prof.sha256 or id(prof), prof.semantics)
    if key not in per:
        per[key] = make()
    return per[key]


def _i64(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.int64)


def _i32(a: np.ndarray) -> np.ndarray:  # exact: the callers prove every sum of weights fits int32
    return np.ascontiguousarray(a, dtype=np.int32)


def _c_weights(qnet: QuantizedNetwork) -> tuple[np.ndarray, np.ndarray | None]:
    return _i32(qnet.w_in.T), (_i32(qnet.w_rec.T) if qnet.w_rec is not None else None)


class _Run(NamedTuple):
    """One run's chip-loop results: spikes, recorded states (u, v, theta, r, or None), wrap counts."""

    spikes: np.ndarray
    current: np.ndarray | None
    voltage: np.ndarray | None
    adaptation: np.ndarray | None
    refractory: np.ndarray | None
    overflow: np.ndarray


def _native_loihi1(
    qnet: QuantizedNetwork, x: np.ndarray, p: Loihi1Params, prof: HardwareProfile, record_states: bool
) -> _Run:
    """The loihi1 C loop: spikes and (``record_states``) u and v; it runs where wraps were proven
    impossible (:func:`rsnn_deploy.semantics.loihi1.native_ok`), so there is nothing to count."""
    from rsnn_deploy import native

    def pinned() -> native.EmulatorNet:
        return native.emulator_net(*_c_weights(qnet), (_i64(p.decay_u), _i64(p.decay_v), _i64(p.bias), _i64(p.vth)))

    net = _prepared(qnet, prof, "native", pinned)
    x8 = np.ascontiguousarray(x, dtype=np.uint8)
    spikes, u, v = native.loihi1_run_net(net, x8, int(p.vmin), int(qnet.input_latency), bool(p.wrap_v32), record_states)
    return _Run(spikes, u, v, None, None, np.zeros(3, dtype=np.int64))


def _native_loihi2(
    qnet: QuantizedNetwork, x: np.ndarray, p: Loihi2Params, prof: HardwareProfile, record_states: bool
) -> _Run:
    """The loihi2 C loop: spikes, wrap counts and (``record_states``) every state, as the numpy loop."""
    from rsnn_deploy import native
    from rsnn_deploy.semantics.loihi2 import decay_factors

    def pinned() -> native.EmulatorNet:
        f = _i64(decay_factors(p))
        return native.emulator_net(*_c_weights(qnet), (*f, _i64(p.bias), _i64(p.vth), _i64(p.theta_step)))

    out = native.loihi2_run(
        np.ascontiguousarray(x, dtype=np.uint8), _prepared(qnet, prof, "native", pinned),
        vmin=int(p.vmin), vmax=int(p.vmax), bits=int(p.decay_bits), q_bits=int(p.q_bits), u_bits=int(p.u_bits),
        theta_bits=int(p.theta_bits), atrlif=bool(p.atrlif), latency=int(qnet.input_latency),
        record_states=record_states,
    )  # fmt: skip
    refractory = out.r if p.atrlif else None  # as the numpy loop: r is recorded for ATRLIF only
    return _Run(out.spikes, out.u, out.v, out.theta, refractory, out.overflow)


# The C loop of each semantics that has one (Semantics.native), by key.
_NATIVE: dict[str, Callable[..., _Run]] = {
    semantics.loihi1.SEMANTICS.key: _native_loihi1,
    semantics.loihi2.SEMANTICS.key: _native_loihi2,
}


class ChipWeights(NamedTuple):
    """The synaptic sum of a chip step as one GEMM: ``q = [z(n-1) | x(k)] @ w_cat``.

    ``w_cat`` is ``[w_rec.T ; w_in.T]`` (``n_rec`` = H rows of recurrent weights, or 0), in
    float32 when every possible sum stays below 2**24 (exact with a 24-bit mantissa), else
    float64 (2**53); sgemm is about 4x faster than dgemm here. One GEMM per step keeps every
    operand in cache (a precomputed [T, B, H] input drive is slower: page faults). The
    emulator's numpy loop and hil's :class:`~rsnn_deploy.hil.EmulatorStepper` both sum
    through :func:`synaptic_sum`, so the chip's input is one piece of code.
    """

    w_cat: np.ndarray
    n_rec: int

    @classmethod
    def of(cls, qnet: QuantizedNetwork) -> ChipWeights:
        """The concatenated weights of ``qnet``."""
        h = qnet.n_hidden
        ftype = np.float32 if int(q_bound(qnet).max(initial=0)) < (1 << 24) else np.float64
        n_rec = h if qnet.w_rec is not None else 0
        w_cat = np.zeros((n_rec + qnet.n_inputs, h), dtype=ftype)
        if qnet.w_rec is not None:
            w_cat[:h] = qnet.w_rec.T
        w_cat[n_rec:] = qnet.w_in.T
        return cls(w_cat, n_rec)

    def buffers(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """Zeroed scratch for :func:`synaptic_sum`: the spike row ``[B, H + C]`` and q ``[B, H]``."""
        return np.zeros((batch, self.w_cat.shape[0]), self.w_cat.dtype), np.zeros((batch, self.w_cat.shape[1]),
                                                                                 self.w_cat.dtype)  # fmt: skip


def synaptic_sum(
    weights: ChipWeights, hidden: np.ndarray | None, frame: np.ndarray | None, s_buf: np.ndarray, q: np.ndarray
) -> np.ndarray:
    """``q`` (exact integers, float) of one chip step from the hidden spikes of the previous step and
    the input frame arriving now (None: no input this step), in ``q``; ``s_buf`` and ``q`` from
    :meth:`ChipWeights.buffers`. ``hidden`` may be None for a feed-forward network."""
    n_rec = weights.n_rec
    if n_rec and hidden is not None:
        np.copyto(s_buf[:, :n_rec], hidden, casting="unsafe")
    if frame is None:
        s_buf[:, n_rec:] = 0
    else:
        np.copyto(s_buf[:, n_rec:], frame, casting="unsafe")
    return np.matmul(s_buf, weights.w_cat, out=q)


def _numpy_run(
    qnet: QuantizedNetwork,
    x: np.ndarray,
    prof: HardwareProfile,
    params: Loihi1Params | Loihi2Params,
    record_states: bool,
    strict: bool,
    batch_chunk: int,
) -> _Run:
    """The chip loop in numpy, chunk by chunk: spikes, recorded states (u, v, theta, r, or None), wrap counts."""
    b, t_steps, _ = x.shape
    h = qnet.n_hidden
    lat = qnet.input_latency
    sem = semantics.for_profile(prof)
    step, names = sem.step, sem.overflow_names
    spikes = np.zeros((b, t_steps, h), dtype=bool)
    cur = np.zeros((b, t_steps, h), dtype=np.int64) if record_states else None
    vol = np.zeros((b, t_steps, h), dtype=np.int64) if record_states else None
    has_theta = record_states and sem.records_adaptation
    ada = np.zeros((b, t_steps, h), dtype=np.int64) if has_theta else None
    has_r = has_theta and bool(getattr(params, "atrlif", False))
    refr = np.zeros((b, t_steps, h), dtype=np.int64) if has_r else None
    weights = _prepared(qnet, prof, "weights", lambda: ChipWeights.of(qnet))
    total_over = np.zeros(3, dtype=np.int64)
    chunk = max(1, int(batch_chunk))

    for start in range(0, b, chunk):
        sl = slice(start, min(b, start + chunk))
        nb = sl.stop - sl.start
        xb = x[sl]
        state = initial_state(prof, nb, h, dtype=np.float64)
        s_buf, drive = weights.buffers(nb)
        for n in range(t_steps + lat):
            k = n - lat  # the input step arriving now, and the trace step this chip step becomes
            frame = xb[:, k] if 0 <= k < t_steps else None
            synaptic_sum(weights, state.spikes, frame, s_buf, drive)  # q, exact: integral values
            prev_over = state.overflow.copy()
            z, state = step(state, drive, params, out=state)  # type: ignore[arg-type]
            if strict and np.any(state.overflow != prev_over):
                which = names[int(np.flatnonzero(state.overflow != prev_over)[0])]
                raise EmulatorOverflowError(
                    f"run.strict: {which} overflowed at chip step {n} (trace step {k}) of samples "
                    f"{sl.start}..{sl.stop - 1}; the hardware wraps it, the float model does not; "
                    "lower the weights or run with strict=False"
                )
            if k >= 0:
                spikes[sl, k] = z
                if record_states:
                    cur[sl, k] = state.u  # type: ignore[index]
                    vol[sl, k] = state.v  # type: ignore[index]
                    if ada is not None:
                        ada[sl, k] = state.theta  # type: ignore[union-attr]
                    if refr is not None:
                        refr[sl, k] = state.r  # type: ignore[union-attr]
        total_over += state.overflow

    return _Run(spikes, cur, vol, ada, refr, total_over)


def run(
    qnet: QuantizedNetwork,
    spikes_in: np.ndarray,
    profile: HardwareProfile | str | None = None,
    record_states: bool = False,
    strict: bool = False,
    batch_chunk: int = 512,
) -> Trace:
    """Run ``qnet`` bit-exactly on a batch of input spike trains.

    Parameters
    ----------
    qnet : QuantizedNetwork
    spikes_in : ndarray [B, T, C], bool or 0/1
        Input spikes; ``x[b, t]`` is what the float model sees at step ``t``.
    profile : HardwareProfile, name, or None
        Defaults to the built-in profile named by ``qnet.profile``.
    record_states : bool
        Also return ``current`` (u), ``voltage`` (v after reset) and, for loihi2,
        ``adaptation`` (theta - theta_0) and, for ATRLIF networks, ``refractory`` (r), int64 ``[B, T, H]``.
    strict : bool
        Raise :class:`EmulatorOverflowError` on the first wrap instead of counting it.
    batch_chunk : int
        Samples processed together (bounds memory; ~512 keeps states in cache).

    Runs the C loop of the semantics where it covers the network (module docstring), else numpy;
    both give the same bits. With ``strict`` and a wrap, the numpy loop reruns to name the step.

    Returns
    -------
    Trace
        Aligned with the float model (see the module docstring): ``T`` steps, hidden
        spikes, host readout and logits, wrap counts in ``overflow``.
    """
    prof = _resolve_profile(qnet, profile)
    x = _check_spikes(spikes_in, qnet.n_inputs)
    params = _prepared(qnet, prof, "params", lambda: params_for(qnet, prof))
    names = semantics.for_profile(prof).overflow_names
    res = None
    if _native_ok_cached(qnet, prof, params):
        res = _NATIVE[prof.semantics](qnet, x, params, prof, record_states)
        if strict and res.overflow.any():
            res = None  # the numpy loop raises at the first wrap, naming the step
    if res is None:
        res = _numpy_run(qnet, x, prof, params, record_states, strict, batch_chunk)
    spikes, cur, vol, ada, refr, total_over = res
    overflow = {name: int(c) for name, c in zip(names, total_over, strict=True)}
    if any(overflow.values()):
        warnings.warn(
            f"emulator: states wrapped on {qnet.profile} ({', '.join(f'{k}: {v}' for k, v in overflow.items() if v)}"
            " neuron-steps); the results are the hardware's, but the float model cannot follow",
            RuntimeWarning,
            stacklevel=2,
        )
    readout, logits = host_readout(spikes, qnet.w_out, qnet.b_out, qnet.readout_decay, qnet.readout_mode)  # type: ignore[arg-type]
    return Trace(
        spikes=spikes,
        readout=readout,
        logits=logits,
        current=cur,
        voltage=vol,
        adaptation=ada,
        refractory=refr,
        overflow=overflow,
    )
