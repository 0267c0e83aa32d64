"""Hardware in the loop: stream input to a network one step at a time and read a decision every step.

Offline backends (:mod:`rsnn_deploy.backends`) take a whole batch ``[B, T, C]`` and return
a trace. A host that talks to a chip cannot: it sends one frame of spikes, lets the chip
run one step, reads what came out, decides, and only then knows the next frame (in a
closed loop the next frame depends on the decision). This module is that host loop.

Two layers
----------
**Chip steppers** run exactly one chip step per call and keep the chip's state between
calls; they hold nothing of the host. Each implements :class:`ChipStepper`:

=================  =====================================================================
``emulator``       our integer step functions (:func:`~rsnn_deploy.emulator.loihi1_step`,
                   :func:`~rsnn_deploy.emulator.loihi2_step`) called once per step on
                   int64 state, with an ``input_latency``-frame delay line (any profile)
``onnx``           the exported integer ONNX *step* graph
                   (:func:`~rsnn_deploy.export._onnx_int.export_int_onnx`) run by
                   onnxruntime once per step; its state tensors are fed back (any profile)
``nengo-loihi``    ``nengo_loihi.Simulator`` on the compile step's network
                   (:func:`~rsnn_deploy.backends.nengo.build_loihi_network`), refused unless
                   its integers read back as the QuantizedNetwork's
                   (:func:`~rsnn_deploy.backends.nengo.open_checked`); its input Node is
                   replaced by one that emits the frame the host set for this step, and
                   ``sim.step()`` runs one step (loihi1, no adaptation)
=================  =====================================================================

**The host session** (:class:`HilSession`) sits on top of any stepper: it feeds frames,
drops the chip's first ``input_latency`` outputs (they precede the first input), runs the
float host readout ``y[t] = a_out y[t-1] + W_out z[t] + b_out`` incrementally
(:class:`~rsnn_deploy.trace.HostReadout`, the step of :func:`~rsnn_deploy.trace.host_readout`), and turns it
into a decision every step (``argmax`` of the running logits: mean of ``y`` so far, or
``y[t]`` for readout mode ``last``).

Timing contract (the same as :func:`rsnn_deploy.emulator.run`)
--------------------------------------------------------------
The frame pushed at chip step ``n`` reaches the neurons at chip step ``n + L``
(``L = qnet.input_latency``); trace step ``t`` is chip step ``t + L``. So :meth:`HilSession.push`
of input ``x[n]`` returns the output of trace step ``n - L`` (``None`` for the first
``L`` pushes), and :meth:`HilSession.finish` runs ``L`` silent chip steps for the last
ones. A closed-loop controller therefore acts on what it saw ``L`` steps ago, exactly as
on the chip. Streamed spikes equal the batched emulator's bit for bit (tested for every
stepper), and so do the final predictions.

Real hardware
-------------
``NengoLoihiStepper(target="loihi")`` builds the same network for an Intel board
(``nengo_loihi.Simulator(target='loihi', precompute=False)``). It is **untested**: it
needs Intel's NxSDK and a board, neither of which is available here, and the integer
read-back check (which inspects the emulator's blocks) cannot run on it. On a board,
``sim.step()`` per host step is slow (each call starts the chip); a production loop would
move the host side into an NxSDK SNIP. The emulator path is the one this project verifies.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rsnn_deploy.errors import DataError, UnsupportedError, ValidationError
from rsnn_deploy.qnet import QuantizedNetwork
from rsnn_deploy.trace import HostReadout, check_spikes

__all__ = [
    "HIL_BACKENDS",
    "ChipStepper",
    "EmulatorStepper",
    "HilSession",
    "NengoLoihiStepper",
    "OnnxStepper",
    "StepOutput",
    "StreamData",
    "StreamResult",
    "latency_summary",
    "load_stream",
    "open_stepper",
    "stream",
]

HIL_BACKENDS: tuple[str, ...] = ("emulator", "onnx", "nengo-loihi")


# ----------------------------------------------------------------------------- steppers


@runtime_checkable
class ChipStepper(Protocol):
    """One chip step per call, state kept between calls, ``batch`` independent copies.

    ``step(frame)`` gives the host input spikes ``bool [batch, C]`` of this chip step and
    returns the hidden spikes ``bool [batch, H]`` of the same chip step. The input reaches
    the neurons ``input_latency`` chip steps later (the stepper models that delay, as the
    chip does). ``reset()`` returns every copy to rest; ``close()`` frees resources.
    """

    name: str
    batch: int
    n_inputs: int
    n_hidden: int
    input_latency: int

    def step(self, frame: np.ndarray) -> np.ndarray: ...

    def reset(self) -> None: ...

    def close(self) -> None: ...


def _frame(frame: np.ndarray, batch: int, n_inputs: int, owner: str) -> np.ndarray:
    """Validate one host frame: ``[C]`` (batch 1) or ``[batch, C]`` of 0/1; returns bool ``[batch, C]``."""
    x = np.asarray(frame)
    x = check_spikes(x[None] if x.ndim == 1 else x, f"{owner}.frame", (batch, n_inputs))
    return x if x.dtype == np.bool_ else x.astype(bool)


class EmulatorStepper:
    """Our integer step (the reference "hardware"), one chip step per call, int64 state.

    Per chip step: ``q = W_in x[n - L] + W_rec z[n - 1]``, summed by the emulator's own
    :func:`~rsnn_deploy.emulator.synaptic_sum` (one GEMM, exact), then the profile's pure step
    function on int64 state. The delay line holds the ``L`` frames in flight.
    """

    name = "emulator"

    def __init__(self, qnet: QuantizedNetwork, batch: int = 1) -> None:
        from rsnn_deploy import semantics
        from rsnn_deploy.emulator import ChipWeights, initial_state, params_for, synaptic_sum
        from rsnn_deploy.hardware import load_profile

        self.qnet = qnet
        self.profile = load_profile(qnet.profile)
        self.batch, self.n_inputs, self.n_hidden = int(batch), qnet.n_inputs, qnet.n_hidden
        self.input_latency = int(qnet.input_latency)
        self._params = params_for(qnet, self.profile)
        self._step = semantics.for_profile(self.profile).step
        self._initial = initial_state
        self._weights, self._sum = ChipWeights.of(qnet), synaptic_sum
        self._s_buf, self._q = self._weights.buffers(self.batch)
        self.reset()

    def reset(self) -> None:
        self.state = self._initial(self.profile, self.batch, self.n_hidden, dtype=np.int64)
        self._delay: deque[np.ndarray] = deque(
            np.zeros((self.batch, self.n_inputs), dtype=bool) for _ in range(self.input_latency)
        )

    @property
    def overflow(self) -> np.ndarray:
        """Neuron-steps that wrapped since the last reset (loihi1: q, u, u2; loihi2: q, u, theta)."""
        return self.state.overflow

    def step(self, frame: np.ndarray) -> np.ndarray:
        x = _frame(frame, self.batch, self.n_inputs, self.name)
        if self.input_latency:
            self._delay.append(x.copy())  # the caller may reuse its frame
            x = self._delay.popleft()
        q = self._sum(self._weights, self.state.spikes, x, self._s_buf, self._q).astype(np.int64)
        z, self.state = self._step(self.state, q, self._params)  # type: ignore[arg-type]
        return z.copy()

    def close(self) -> None:
        """Nothing to free; present for the protocol."""


class OnnxStepper:
    """The exported integer ONNX step graph, run by onnxruntime once per chip step.

    The graph keeps the input latency itself (its ``x_delay`` state); every state output
    is fed back as the next step's input. The graph's own float readout ``y`` is fed zeros
    and ignored: the host session computes the readout for every stepper the same way.
    """

    name = "onnx"

    def __init__(self, qnet: QuantizedNetwork, batch: int = 1, model: Any = None) -> None:
        try:
            import onnxruntime as ort

            from rsnn_deploy.export import export_int_onnx
        except ImportError as err:  # pragma: no cover - both are dependencies of the package
            raise UnsupportedError(f"--backend onnx: needs onnx and onnxruntime ({err}); install rsnn-deploy") from None
        proto = export_int_onnx(qnet, "step") if model is None else model
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1  # tiny per-step kernels: threads cost more than they save
        opts.inter_op_num_threads = 1
        self._sess = ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        self.qnet = qnet
        self.batch, self.n_inputs, self.n_hidden = int(batch), qnet.n_inputs, qnet.n_hidden
        self.input_latency = int(qnet.input_latency)
        self._inputs = {i.name: i for i in self._sess.get_inputs()}
        self._outputs = [o.name for o in self._sess.get_outputs()]
        names = set(self._outputs)
        self._state_names = [n for n in self._inputs if n != "x"]
        for s in self._state_names:
            if self._out_name(s) not in names:
                raise UnsupportedError(f"--backend onnx: the step graph has state input {s!r} but no output for it")
        self.reset()

    @staticmethod
    def _out_name(state: str) -> str:
        return "z" if state == "z_prev" else f"{state}_out"

    def _zeros(self, name: str) -> np.ndarray:
        info = self._inputs[name]
        dtype = {"tensor(bool)": bool, "tensor(int64)": np.int64, "tensor(double)": np.float64}[info.type]
        dims = [self.batch if i == 0 else int(d) for i, d in enumerate(info.shape)]
        return np.zeros(dims, dtype=dtype)

    def reset(self) -> None:
        self._state = {s: self._zeros(s) for s in self._state_names}
        self._y0 = self._state.get("y")
        self.overflow = np.zeros(3, dtype=np.int64)

    def step(self, frame: np.ndarray) -> np.ndarray:
        x = _frame(frame, self.batch, self.n_inputs, self.name)
        out = dict(zip(self._outputs, self._sess.run(None, {"x": x, **self._state}), strict=True))
        self._state = {s: out[self._out_name(s)] for s in self._state_names}
        if self._y0 is not None:
            self._state["y"] = self._y0  # the host computes the readout
        if "overflow" in out:
            self.overflow += np.asarray(out["overflow"], dtype=np.int64).reshape(-1)[:3]
        return np.asarray(out["z"], dtype=bool)

    def close(self) -> None:
        self._sess = None  # type: ignore[assignment]


class _StreamFeed:
    """The output function of the input Node: the frame the host set for this step, as drive.

    ``add_spike_input`` drives an off-chip ``SpikingRectifiedLinear`` ensemble with
    ``SPIKE_DRIVE / dt`` per spike, emitting ``x[k]`` at host step ``k + 1``; this feed
    emits the current frame instead, so the step the host runs next carries it.
    """

    def __init__(self, n_channels: int, drive: float) -> None:
        self.values = np.zeros(n_channels)
        self.drive = drive

    def set(self, spikes: np.ndarray) -> None:
        self.values[: spikes.shape[0]] = spikes * self.drive  # the anchor channel (if any) stays silent

    def __call__(self, t: float) -> np.ndarray:
        return self.values


class NengoLoihiStepper:
    """``nengo_loihi.Simulator`` stepped once per host step (emulator target by default).

    The network is the compile step's (:func:`~rsnn_deploy.backends.nengo.build_loihi_network`,
    ``batch`` independent copies), with each copy's input Node swapped for a
    :class:`_StreamFeed`. With ``target='sim'`` the simulator is opened through
    :func:`~rsnn_deploy.backends.nengo.open_checked`, which refuses it unless nengo-loihi's
    integers equal ``qnet``'s. nengo-loihi cannot reset a simulator, so :meth:`reset`
    builds a new one (~0.1 s).

    ``target='loihi'`` is the code path for a real board: untested (see the module docstring).
    """

    name = "nengo-loihi"

    def __init__(self, qnet: QuantizedNetwork, batch: int = 1, target: str = "sim", dt: float = 0.001) -> None:
        from rsnn_deploy import semantics
        from rsnn_deploy.backends.nengo import refuse_adaptive_on_loihi
        from rsnn_deploy.hardware import load_profile

        refuse_adaptive_on_loihi(qnet)
        if semantics.for_profile(load_profile(qnet.profile)).chip_backend != "nengo-loihi":
            raise UnsupportedError(
                f"--backend nengo-loihi: runs nengo-loihi 1.1 semantics (profile loihi1); the network is quantized "
                f"for {qnet.profile!r}; use --backend emulator or onnx"
            )
        if target not in ("sim", "loihi"):
            raise ValidationError(f"NengoLoihiStepper.target: must be 'sim' or 'loihi' (got {target!r})")
        self.qnet, self.target, self.dt = qnet, target, dt
        self.batch, self.n_inputs, self.n_hidden = int(batch), qnet.n_inputs, qnet.n_hidden
        self.input_latency = int(qnet.input_latency)
        self._sim: Any = None
        self.build_seconds = 0.0
        self.reset()

    def _open(self) -> None:
        import nengo

        from rsnn_deploy.backends.nengo import build_loihi_network, nengo_loihi_quiet, open_checked
        from rsnn_deploy.backends.nengo.readback import SPIKE_DRIVE

        t0 = time.perf_counter()
        build = build_loihi_network(self.qnet, np.zeros((self.batch, 1, self.n_inputs), dtype=np.uint8), self.dt)
        feeds = []
        for inp in build.inputs:
            nodes = [c.pre_obj for c in build.network.all_connections
                     if isinstance(c.pre_obj, nengo.Node) and getattr(c.post_obj, "ensemble", None) is inp]
            if len(nodes) != 1:
                raise UnsupportedError(
                    f"--backend nengo-loihi: expected one input Node feeding {inp} in the compiled network "
                    f"(got {len(nodes)}); backends.nengo.build_loihi_network changed its input, update rsnn_deploy.hil"
                )
            feed = _StreamFeed(int(nodes[0].size_out), SPIKE_DRIVE / self.dt)
            nodes[0].output = feed
            feeds.append(feed)
        if self.target == "sim":
            sim = open_checked(self.qnet, build, self.dt)
        else:  # pragma: no cover - needs NxSDK and a Loihi board
            import nengo_loihi

            try:
                with nengo_loihi_quiet():
                    sim = nengo_loihi.Simulator(build.network, target="loihi", dt=self.dt, precompute=False,
                                                progress_bar=False)
            except Exception as err:
                raise UnsupportedError(
                    f"--target loihi: nengo-loihi could not open a board ({type(err).__name__}: {err}); "
                    "it needs Intel's NxSDK and Loihi hardware (untested path)"
                ) from None
        self._sim, self._feeds, self._probes = sim, feeds, build.probes["output"]
        self._outputs = getattr(sim, "_probe_outputs", None)  # per-step lists; sim.data re-stacks all steps
        self.build_seconds = time.perf_counter() - t0

    def reset(self) -> None:
        self.close()
        self._open()

    def step(self, frame: np.ndarray) -> np.ndarray:
        from rsnn_deploy.backends.nengo import nengo_loihi_quiet

        x = _frame(frame, self.batch, self.n_inputs, self.name)
        for b, feed in enumerate(self._feeds):
            feed.set(x[b])
        with nengo_loihi_quiet():
            self._sim.step()
        if self._outputs is not None:
            rows = [self._outputs[p][-1] for p in self._probes]
        else:  # pragma: no cover - other nengo-loihi versions
            rows = [self._sim.data[p][-1] for p in self._probes]
        return np.stack(rows) > 0

    def close(self) -> None:
        if self._sim is not None:
            self._sim.close()
            self._sim = None


def open_stepper(qnet: QuantizedNetwork, backend: str, batch: int = 1, **options: Any) -> ChipStepper:
    """The :class:`ChipStepper` named ``backend`` (one of :data:`HIL_BACKENDS`) for ``qnet``."""
    if backend == "emulator":
        return EmulatorStepper(qnet, batch, **options)
    if backend == "onnx":
        return OnnxStepper(qnet, batch, **options)
    if backend == "nengo-loihi":
        return NengoLoihiStepper(qnet, batch, **options)
    raise UnsupportedError(f"hil --backend: unknown (got {backend!r}); choose one of {', '.join(HIL_BACKENDS)}")


# ----------------------------------------------------------------------------- host session


@dataclass(frozen=True)
class StepOutput:
    """What the host knows after one trace step.

    Attributes
    ----------
    step : int
        Trace step ``t`` (the step that integrated input ``x[t]``).
    spikes : bool ndarray [batch, H]
    readout : float64 ndarray [batch, K]
        ``y[t]``.
    logits : float64 ndarray [batch, K]
        Running logits: ``mean(y[0..t])`` (readout mode ``mean``) or ``y[t]`` (``last``).
    decision : int64 ndarray [batch]
        ``argmax(logits)``: the network's answer if the sequence ended now.
    """

    step: int
    spikes: np.ndarray
    readout: np.ndarray
    logits: np.ndarray
    decision: np.ndarray


class HilSession:
    """The host side of the loop: frames in, a readout and a decision per trace step out.

    Parameters
    ----------
    qnet : QuantizedNetwork
        Supplies the host readout (``w_out``, ``b_out``, ``readout_decay``, ``readout_mode``).
    stepper : ChipStepper
        The chip (or its emulation); the session never looks inside it.
    """

    def __init__(self, qnet: QuantizedNetwork, stepper: ChipStepper) -> None:
        if stepper.n_inputs != qnet.n_inputs or stepper.n_hidden != qnet.n_hidden:
            raise ValidationError(
                f"HilSession.stepper: built for {stepper.n_inputs} inputs / {stepper.n_hidden} neurons, "
                f"the network has {qnet.n_inputs} / {qnet.n_hidden}"
            )
        self.qnet, self.stepper = qnet, stepper
        self._host = HostReadout(qnet.w_out, qnet.b_out, float(qnet.readout_decay), qnet.readout_mode, stepper.batch)
        self.step_seconds: list[float] = []
        self._begin()

    def _begin(self) -> None:
        self._host.reset()
        self.chip_steps = 0
        self.trace_steps = 0

    def reset(self) -> None:
        """Back to rest: chip state, readout and step counters (latencies are kept)."""
        self.stepper.reset()
        self._begin()

    def _readout(self, spikes: np.ndarray) -> StepOutput:
        y, logits = self._host.step(spikes)  # rsnn_deploy.trace's one readout, step by step
        t = self.trace_steps
        self.trace_steps += 1
        return StepOutput(step=t, spikes=spikes, readout=y, logits=logits, decision=np.argmax(logits, axis=-1))

    def _chip_step(self, frame: np.ndarray) -> StepOutput | None:
        t0 = time.perf_counter()
        z = self.stepper.step(frame)
        out = self._readout(z) if self.chip_steps >= self.stepper.input_latency else None
        self.chip_steps += 1
        self.step_seconds.append(time.perf_counter() - t0)
        return out

    def push(self, frame: np.ndarray) -> StepOutput | None:
        """Send one frame of input spikes (``[C]`` or ``[batch, C]``) and run one chip step.

        Returns the trace step that became available (``n - L`` for the ``n``-th push), or
        None while the first frame is still in flight.
        """
        return self._chip_step(frame)

    def finish(self) -> list[StepOutput]:
        """Run the ``L`` silent chip steps that bring the last pushed frame's output home."""
        silent = np.zeros((self.stepper.batch, self.stepper.n_inputs), dtype=bool)
        outs = [self._chip_step(silent) for _ in range(self.stepper.input_latency)]
        return [o for o in outs if o is not None]

    def close(self) -> None:
        self.stepper.close()

    def __enter__(self) -> HilSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ----------------------------------------------------------------------------- streams


@dataclass(frozen=True)
class StreamData:
    """A validated stream file: spikes ``uint8 [N, T, C]`` and optional labels ``[N]``."""

    x: np.ndarray
    y: np.ndarray | None
    path: str


def load_stream(path: str | Path, n_inputs: int | None = None) -> StreamData:
    """Read ``x`` ``[T, C]`` or ``[N, T, C]`` (0/1 spikes) and optional ``y`` ``[N]`` from an ``.npz``.

    Every problem is one line naming the file and the key (the CLI exits with 2).
    Read with ``allow_pickle=False``: object arrays are refused, never unpickled.
    """
    from rsnn_deploy.io import open_npz

    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: stream file not found; give an .npz with key x [T, C] or [N, T, C]")
    npz = open_npz(p, str(p))
    with npz:
        if "x" not in npz.files:
            raise ValidationError(
                f"{p}: x: missing key (got keys {sorted(npz.files)}); save with numpy.savez(path, x=...)"
            )
        try:
            x = npz["x"]
            y = npz["y"] if "y" in npz.files else None
        except ValueError as err:
            raise ValidationError(f"{p}: x: cannot be read without pickle ({err}); store numeric arrays") from None
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or min(x.shape) < 1:
        raise ValidationError(f"{p}: x: must be [T, C] or [N, T, C] spikes (got shape {x.shape})")
    try:
        check_spikes(x, f"{p}: x", ("N", "T", "C"))
    except ValidationError as err:
        hint = "; turn raw signals into spikes with rsnn-deploy encode MODEL RAW.npz -o STREAM.npz"
        raise ValidationError(f"{err}{hint if 'only 0 and 1' in str(err) else ''}") from None
    if n_inputs is not None and x.shape[2] != n_inputs:
        raise ValidationError(f"{p}: x: has {x.shape[2]} channels, the network has {n_inputs} inputs")
    if y is not None:
        y = np.asarray(y).reshape(-1) if np.asarray(y).ndim == 0 else np.asarray(y)
        if y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer):
            raise ValidationError(f"{p}: y: must be integer labels [{x.shape[0]}] (got {y.dtype} {y.shape})")
    return StreamData(x=x.astype(np.uint8), y=None if y is None else y.astype(np.int64), path=str(p))


@dataclass
class StreamResult:
    """What streaming ``N`` sequences produced (trace-aligned, like a batched run).

    ``decisions[n, t]`` is the decision after trace step ``t`` of sequence ``n``;
    ``predictions`` the last one (what an offline run predicts). ``step_seconds`` holds the
    wall time of every chip step (host frame handling + chip step + readout), in order.
    """

    backend: str
    spikes: np.ndarray
    logits: np.ndarray
    decisions: np.ndarray
    step_seconds: np.ndarray
    setup_seconds: float
    overflow: dict[str, int] = field(default_factory=dict)

    @property
    def predictions(self) -> np.ndarray:
        return self.decisions[:, -1]


def _overflow_names(qnet: QuantizedNetwork) -> tuple[str, ...]:
    from rsnn_deploy import semantics
    from rsnn_deploy.hardware import load_profile

    return semantics.for_profile(load_profile(qnet.profile)).overflow_names


def stream(
    qnet: QuantizedNetwork,
    spikes: np.ndarray,
    backend: str = "emulator",
    steps: int | None = None,
    on_step: Callable[[StepOutput], None] | None = None,
    **options: Any,
) -> StreamResult:
    """Stream each sequence of ``spikes`` (``[T, C]`` or ``[N, T, C]``) step by step from rest.

    Sequences run one after another on one stepper (reset in between), batch 1: the
    loop a host runs with one chip. ``steps`` streams that many steps per sequence (the
    first ``steps`` frames; beyond ``T`` the input is silent). ``on_step`` is called
    with every trace step's :class:`StepOutput` (progress bars, live plots).
    """
    x = np.asarray(spikes)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[2] != qnet.n_inputs:
        raise ValidationError(f"hil.stream.spikes: must be [N, T, {qnet.n_inputs}] (got shape {np.shape(spikes)})")
    n, t_in, _ = x.shape
    t_steps = t_in if steps is None else int(steps)
    if t_steps < 1:
        raise ValidationError(f"hil --steps: must be at least 1 (got {steps})")
    if t_steps > t_in:
        x = np.concatenate([x, np.zeros((n, t_steps - t_in, x.shape[2]), dtype=x.dtype)], axis=1)
    x = x[:, :t_steps]
    t0 = time.perf_counter()
    stepper = open_stepper(qnet, backend, 1, **options)
    setup = time.perf_counter() - t0
    spikes_out = np.zeros((n, t_steps, qnet.n_hidden), dtype=bool)
    logits = np.zeros((n, qnet.n_outputs), dtype=np.float64)
    decisions = np.zeros((n, t_steps), dtype=np.int64)
    overflow = np.zeros(3, dtype=np.int64)
    session = HilSession(qnet, stepper)
    try:
        for i in range(n):
            if i:
                t1 = time.perf_counter()
                session.reset()
                setup += time.perf_counter() - t1
            for out in _live(x[i], session):
                if out is None:
                    continue
                spikes_out[i, out.step] = out.spikes[0]
                decisions[i, out.step] = out.decision[0]
                logits[i] = out.logits[0]
                if on_step is not None:
                    on_step(out)
            overflow += np.asarray(getattr(stepper, "overflow", np.zeros(3)), dtype=np.int64)
    finally:
        session.close()
    return StreamResult(
        backend=backend, spikes=spikes_out, logits=logits, decisions=decisions,
        step_seconds=np.asarray(session.step_seconds), setup_seconds=setup,
        overflow={k: int(v) for k, v in zip(_overflow_names(qnet), overflow, strict=True)},
    )


def _live(frames: np.ndarray, session: HilSession) -> Iterator[StepOutput | None]:
    """Push ``frames`` one by one, yielding each output as it happens, then the flush."""
    for frame in frames:
        yield session.push(frame)
    yield from session.finish()


def latency_summary(step_seconds: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Per-step wall time: median, p95, max (ms) and steps per second (over the summed time)."""
    s = np.asarray(step_seconds, dtype=np.float64)
    if s.size == 0:
        return {"steps": 0, "median_ms": 0.0, "p95_ms": 0.0, "max_ms": 0.0, "steps_per_s": 0.0}
    return {
        "steps": int(s.size),
        "median_ms": float(np.median(s) * 1e3),
        "p95_ms": float(np.percentile(s, 95) * 1e3),
        "max_ms": float(s.max() * 1e3),
        "steps_per_s": float(s.size / s.sum()) if s.sum() > 0 else float("inf"),
    }
