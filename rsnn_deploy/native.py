"""Native (C) inner loops for the fast BPTT engine and the integer emulator, compiled on first use, optional.

Why it exists
-------------
The fast engine's time loops in eager torch launch about ten small kernels per step,
and its recurrent input is a dense matmul although the spikes are binary and sparse.
``bptt_kernels.c`` runs a whole block of steps per call, fused, with the recurrent
input summed over the neurons that spiked only (likewise the input drive of binary
inputs and both weight gradients). ``emulator_kernels.c`` runs the emulator's time
loops (``emulator.run``): ``loihi1`` where no state can wrap, ``loihi2`` (LIF and ATRLIF) always.

One build per vector width
--------------------------
A kernel tuned for one vector width can be slow on another: the backward ``g_i W_rec``
product written for AVX-512's 32 registers spilled on AVX2's 16 and made training 3x
slower than the torch loops on an AVX2-only CPU (``/work/shared/MEASURED.md``). The C
files therefore adapt their blocking to the width they are compiled for, and this module
builds them once per variant the CPU can run (:data:`ISAS`: ``avx512`` =
``-march=x86-64-v4``, ``avx2`` = ``-march=haswell``, ``generic`` = baseline x86-64, or
the compiler's default elsewhere). ``RSNN_DEPLOY_NATIVE_ISA`` forces a variant, so a
machine with AVX-512 can build and measure the AVX2 one. Which of them (or the torch
loops) trains fastest here is measured once and cached (:mod:`rsnn_deploy.native_choice`).
The emulator runs on the widest variant (integer code: every variant gives the same bits).

How it is built
---------------
The first call compiles the C files with the system C compiler (``$CC``, else ``cc``)
into a per-user cache (``$RSNN_DEPLOY_CACHE``, else ``~/.cache/rsnn-deploy``), keyed by
the sources, the flags and the compiler, and loads it with :mod:`ctypes`. It takes a few
seconds, once per machine and variant. Concurrent processes take a file lock, so one of
them compiles and the others load its result; the compiler gets
``$RSNN_DEPLOY_CC_TIMEOUT`` seconds (default 120). No compiler, a failed build, or
``RSNN_DEPLOY_NATIVE=0`` in the environment leave the engine on its torch loops and the
emulator on numpy, which give the same spikes; a warning names the caller and says why,
once. Without OpenMP the library is built single-threaded.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from rsnn_deploy.errors import ValidationError

__all__ = [
    "ISAS",
    "SURROGATE_CODES",
    "EmulatorNet",
    "backward_block",
    "cpu_isas",
    "disabled_reason",
    "emulator_net",
    "enabled",
    "forced_isa",
    "forward_block",
    "library",
    "loihi1_run",
    "loihi1_run_net",
    "loihi2_run",
    "spike_outer_block",
    "training_isa",
    "use_isa",
]

log = logging.getLogger(__name__)

ABI_VERSION = 3
ADAPT_CODES = {None: 0, "threshold": 1, "current": 2}
SURROGATE_CODES = {"fast-sigmoid": 0, "triangle": 1, "arctan": 2, "sigmoid": 3}
# -ffp-contract=off: no fused multiply-add in the forward pass (the rounding contract of the C file).
_FLAGS = ["-O3", "-fPIC", "-shared", "-ffp-contract=off", "-fno-fast-math", "-std=c11"]
_OPENMP = "-fopenmp"  # dropped, with a single-threaded build, where the compiler has no OpenMP
ISAS = ("avx512", "avx2", "generic")  # widest first
_X86 = platform.machine().lower() in ("x86_64", "amd64")
# What each variant is compiled for; the CPU flags it needs (x86-64-v4 and haswell, as GCC defines them).
_MARCH = {"avx512": ["-march=x86-64-v4"], "avx2": ["-march=haswell"], "generic": ["-march=x86-64"] if _X86 else []}
_NEEDS = {
    "avx512": {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl", "avx2", "fma", "bmi2"},
    "avx2": {"avx2", "fma", "bmi1", "bmi2", "f16c", "movbe", "abm"},
    "generic": set(),
}
ENV_ISA = "RSNN_DEPLOY_NATIVE_ISA"

_lock = threading.Lock()
_state: dict[str, object] = {}
_local = threading.local()  # use_isa's override, per thread


@functools.lru_cache(maxsize=1)
def _cpu_flags() -> frozenset[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_isas() -> tuple[str, ...]:
    """The variants of :data:`ISAS` this CPU can run, widest first (``generic`` always)."""
    if not _X86:
        return ("generic",)
    flags = _cpu_flags()
    return tuple(isa for isa in ISAS if _NEEDS[isa] <= flags)


def forced_isa() -> str | None:
    """The variant ``RSNN_DEPLOY_NATIVE_ISA`` asks for (None: unset or ``auto``); an error if the CPU can't run it."""
    want = os.environ.get(ENV_ISA, "").strip().lower()
    if want in ("", "auto"):
        return None
    if want not in ISAS:
        raise ValidationError(f"{ENV_ISA}: must be one of auto, {', '.join(ISAS)} (got {want!r})")
    if want not in cpu_isas():
        raise ValidationError(f"{ENV_ISA}: this CPU cannot run {want} (it runs {', '.join(cpu_isas())})")
    return want


@contextlib.contextmanager
def use_isa(isa: str | None) -> Iterator[None]:
    """Within the block, this thread's training kernels use variant ``isa`` (None: the torch loops).

    For the calibration and the benchmarks, which compare the variants in one process.
    """
    if isa is not None and isa not in cpu_isas():
        raise ValueError(f"this CPU cannot run the {isa} kernels")
    old = getattr(_local, "isa", ...)
    _local.isa = isa
    try:
        yield
    finally:
        _local.isa = old


def training_isa() -> tuple[str | None, str]:
    """Which C variant the fast engine trains with (None: its torch loops), and why, in words.

    In order: ``use_isa``; ``RSNN_DEPLOY_NATIVE=0``; ``RSNN_DEPLOY_NATIVE_ISA``; the fastest
    engine measured on this CPU (calibrated on first use, cached with the CPU's identity).
    """
    override = getattr(_local, "isa", ...)
    if override is not ...:
        return override, "chosen by the caller"  # type: ignore[return-value]
    if os.environ.get("RSNN_DEPLOY_NATIVE", "1") == "0":
        return None, "RSNN_DEPLOY_NATIVE=0"
    forced = forced_isa()
    if forced is not None:
        if library(forced) is None:
            return None, f"the {forced} C kernels could not be built; see the warning"
        return forced, f"{ENV_ISA}={forced}"
    from rsnn_deploy import native_choice

    return native_choice.fastest()


def disabled_reason() -> str | None:
    """Why the fast engine trains on its torch loops rather than C ones, or None when it uses C."""
    isa, why = training_isa()
    return why if isa is None else None


def enabled() -> bool:
    """Whether the emulator's C loop is allowed (``RSNN_DEPLOY_NATIVE`` is not ``0``) and built."""
    if os.environ.get("RSNN_DEPLOY_NATIVE", "1") == "0":
        return False
    return library(caller="emulator") is not None


def cpu_key() -> str:
    """The CPU's identity: machine, model name and flags (a shared home may span machines)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
        lines = [ln for ln in text.splitlines() if ln.startswith(("model name", "flags"))][:2]
    except OSError:
        lines = []
    return "\n".join([platform.machine(), platform.processor(), *lines])


def cpu_model() -> str:
    """The CPU's model name, from ``/proc/cpuinfo`` (else the platform's processor string)."""
    for line in cpu_key().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cache_dir() -> Path:
    """Where the compiled variants and the calibration live (``$RSNN_DEPLOY_CACHE/native``)."""
    from rsnn_deploy.io import cache_root

    return cache_root() / "native"


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` across processes (a no-op where ``fcntl`` is missing)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: atomic renames still keep the cache consistent
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


_SOURCES = ("bptt_kernels.c", "emulator_kernels.c")


def _timeout() -> float:
    try:
        return max(1.0, float(os.environ.get("RSNN_DEPLOY_CC_TIMEOUT", "120")))
    except ValueError:
        return 120.0


def _compile(cmd: list[str]) -> tuple[int, str]:
    """Run the compiler in its own process group; on timeout the whole group (cc1, as, ld) is killed."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=_timeout())
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise RuntimeError(f"{cmd[0]} took longer than {_timeout():.0f} s (RSNN_DEPLOY_CC_TIMEOUT)") from None
    return proc.returncode, stderr


def _build(sources: dict[str, bytes], compiler: str, isa: str) -> Path:
    flags = [*_FLAGS, *_MARCH[isa]]
    parts = [*sources.values(), " ".join(flags).encode(), compiler.encode()]
    key = hashlib.sha256(b"\0".join(parts))
    out = cache_dir() / f"rsnn_kernels_{isa}_{key.hexdigest()[:16]}.so"
    if out.is_file():
        return out
    with file_lock(out.with_suffix(".lock")):  # one process compiles; the others wait, then load it
        if out.is_file():
            return out
        with tempfile.TemporaryDirectory(dir=out.parent, prefix=".build-") as tmp:
            paths = []
            for name, text in sources.items():
                paths.append(str(Path(tmp) / name))
                Path(paths[-1]).write_bytes(text)
            lib = Path(tmp) / out.name
            errors = ""
            for extra in ([_OPENMP], []):
                cmd = [compiler, *flags, *extra, *paths, "-o", str(lib), "-lm"]
                returncode, stderr = _compile(cmd)
                if returncode == 0:
                    break
                errors = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit {returncode}"
            else:
                raise RuntimeError(f"{compiler} failed: {errors}")
            os.replace(lib, out)  # atomic: a reader never sees half a file
    return out


def _default_isa() -> str:
    """The emulator's variant: the forced one, else the widest this CPU runs."""
    try:
        forced = forced_isa()
    except ValidationError:
        forced = None  # training reports the bad value; the emulator's loop is integer and ISA-neutral
    return forced or cpu_isas()[0]


def library(isa: str | None = None, caller: str = "BPTT kernels") -> ctypes.CDLL | None:
    """The compiled kernels of variant ``isa`` (default: the emulator's), built on first call.

    None, with one warning per caller and reason naming ``caller`` (what falls back: the BPTT
    kernels to the torch loops, the emulator to numpy), when they cannot be built.
    """
    isa = isa or _default_isa()
    with _lock:
        if isa not in _state:
            _state[isa] = _load(isa)
        lib = _state[isa]
        if isinstance(lib, ctypes.CDLL):
            return lib
        warned = _state.setdefault("warned", set())
        if (caller, lib) not in warned:  # once: a missing compiler fails every variant alike
            warned.add((caller, lib))  # type: ignore[attr-defined]
            fallback = "numpy loop" if caller == "emulator" else "torch loops"
            log.warning("native %s unavailable (%s build), using the %s: %s", caller, isa, fallback, lib)
        return None


def _load(isa: str) -> ctypes.CDLL | str:
    """Build (or find in the cache) and load variant ``isa``; the reason as a string if that fails."""
    compiler = os.environ.get("CC") or "cc"
    try:
        if shutil.which(compiler) is None:
            raise RuntimeError(f"no C compiler ({compiler!r}) on PATH")
        package = resources.files("rsnn_deploy")
        sources = {name: package.joinpath(name).read_bytes() for name in _SOURCES}
        lib = ctypes.CDLL(str(_build(sources, compiler, isa)))
        if lib.rsnn_abi_version() != ABI_VERSION:
            raise RuntimeError("kernel ABI version mismatch")
        _declare(lib)
        built = lib.rsnn_isa().decode()
        if built != isa:
            raise RuntimeError(f"the {isa} build reports {built} (compiler flags ignored?)")
        return lib
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        return str(exc)


def _declare(lib: ctypes.CDLL) -> None:
    i, f, p = ctypes.c_int, ctypes.c_float, ctypes.c_void_p
    lib.rsnn_isa.restype = ctypes.c_char_p
    lib.rsnn_isa.argtypes = []
    lib.rsnn_forward_block.restype = i
    fwd = [i, i, i, i, p, i, p, p, p, p, p, p, f, i, f, i, p, p, p, p, p, p, p, p, i, p, f, p, p, p]
    lib.rsnn_forward_block.argtypes = fwd
    lib.rsnn_backward_block.restype = i
    lib.rsnn_backward_block.argtypes = [i, i, i, i, i, p, p, p, p, f, i, f, p, p, p, p, p, p, p, i, p, p, f, p, p, p, p]
    lib.rsnn_loihi1_run.restype = i
    lib.rsnn_loihi1_run.argtypes = [i, i, i, i, i, i, p, p, p, p, p, p, p, ctypes.c_int64, i, p, p, p]
    lib.rsnn_loihi2_run.restype = i
    i64 = ctypes.c_int64
    lib.rsnn_loihi2_run.argtypes = [i, i, i, i, i, i, p, p, p, p, p, p, p, i, p, p, p, i64, i64, i, i, i, i,
                                    p, p, p, p, p, p]  # fmt: skip
    lib.rsnn_is_binary.restype = i
    lib.rsnn_is_binary.argtypes = [ctypes.c_int64, p]
    lib.rsnn_readout_scan.restype = None
    lib.rsnn_readout_scan.argtypes = [i, i, i, p, p, ctypes.c_double, p, p, p]
    lib.rsnn_spike_outer_block.restype = i
    lib.rsnn_spike_outer_block.argtypes = [i, i, i, i, i, p, p, p]


def _training_lib(isa: str | None) -> ctypes.CDLL:
    why = "chosen by the caller"
    if isa is None:
        isa, why = training_isa()
    lib = library(isa) if isa is not None else None
    if lib is None:
        raise RuntimeError(f"the native BPTT kernels are off ({why})")
    return lib


def _check(status: int, what: str) -> None:
    if status != 0:
        raise MemoryError(f"{what}: the C kernel could not allocate its scratch buffers")


def _ptr(name: str, t: Tensor | None, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> int | None:
    """The address of ``t`` for C, after checking what C cannot: dtype, shape, layout, device (None passes)."""
    if t is None:
        return None
    if not isinstance(t, Tensor):
        raise TypeError(f"native kernel argument {name}: expected a tensor (got {type(t).__name__})")
    if t.dtype != dtype or tuple(t.shape) != shape or not t.is_contiguous() or t.device.type != "cpu":
        raise ValueError(
            f"native kernel argument {name}: expected a contiguous CPU {dtype} tensor of shape {list(shape)} "
            f"(got {t.dtype} {list(t.shape)}, {'contiguous' if t.is_contiguous() else 'strided'}, {t.device})"
        )
    return t.data_ptr()


def _np_ptr(name: str, a: np.ndarray | None, shape: tuple[int, ...], dtype: type) -> int | None:
    """As :func:`_ptr`, for numpy arrays."""
    if a is None:
        return None
    if not isinstance(a, np.ndarray) or a.dtype != dtype or a.shape != shape or not a.flags.c_contiguous:
        got = f"{a.dtype} {list(a.shape)}" if isinstance(a, np.ndarray) else type(a).__name__
        raise ValueError(f"native kernel argument {name}: expected a C-contiguous {np.dtype(dtype)} array "
                         f"of shape {list(shape)} (got {got})")  # fmt: skip
    return a.ctypes.data


def _require(name: str, value: object, why: str) -> None:
    if value is None:
        raise ValueError(f"native kernel argument {name}: required {why}")


def forward_block(
    drive: Tensor | None,
    x: Tensor | None,
    w_in_t: Tensor | None,
    w_rec_t: Tensor | None,
    a_syn: Tensor | None,
    a_mem: Tensor,
    bias: Tensor | None,
    theta: float,
    v_floor: float | None,
    first_block: bool,
    i_state: Tensor,
    v_state: Tensor,
    act: Tensor,
    n_act: Tensor,
    z_out: Tensor,
    p_out: Tensor | None,
    rc_out: Tensor | None,
    i_out: Tensor | None,
    adapt_kind: str | None = None,
    a_adapt: Tensor | None = None,
    strength: float = 0.0,
    n_state: Tensor | None = None,
    n_out: Tensor | None = None,
    th_out: Tensor | None = None,
    isa: str | None = None,
) -> None:
    """Run ``z_out.shape[0]`` steps in place (see ``rsnn_forward_block`` in the C file for the meaning).

    The input drive is ``drive`` ``[K, B, H]`` when given, else computed from the binary
    input spikes ``x`` ``[K, B, C]`` and ``w_in_t`` ``[C, H]``. ``isa``: the variant (None: :func:`training_isa`).
    """
    lib = _training_lib(isa)
    k, b, h = z_out.shape
    blk, row, vec = (k, b, h), (b, h), (h,)
    if drive is None:
        _require("x", x, "without drive")
        _require("w_in_t", w_in_t, "without drive")
    n_in = x.shape[2] if x is not None and x.dim() == 3 else 0
    if adapt_kind not in ADAPT_CODES:
        raise ValueError(f"native kernel argument adapt_kind: one of {list(ADAPT_CODES)} (got {adapt_kind!r})")
    if adapt_kind is not None:
        _require("a_adapt", a_adapt, "with adaptation")
        _require("n_state", n_state, "with adaptation")
    status = lib.rsnn_forward_block(
        k, b, h, torch.get_num_threads(), _ptr("drive", drive, blk), n_in, _ptr("x", x, (k, b, n_in)),
        _ptr("w_in_t", w_in_t, (n_in, h)), _ptr("w_rec_t", w_rec_t, (h, h)),
        _ptr("a_syn", a_syn, vec), _ptr("a_mem", a_mem, vec), _ptr("bias", bias, vec),
        theta, v_floor is not None, 0.0 if v_floor is None else v_floor, int(first_block),
        _ptr("i_state", i_state, row), _ptr("v_state", v_state, row), _ptr("act", act, row, torch.int32),
        _ptr("n_act", n_act, (b,), torch.int32), _ptr("z_out", z_out, blk), _ptr("p_out", p_out, blk),
        _ptr("rc_out", rc_out, blk), _ptr("i_out", i_out, blk),
        ADAPT_CODES[adapt_kind], _ptr("a_adapt", a_adapt, vec), strength, _ptr("n_state", n_state, row),
        _ptr("n_out", n_out, blk), _ptr("th_out", th_out, blk),
    )  # fmt: skip
    _check(status, "forward_block")


def backward_block(
    has_next: bool,
    gz_in: Tensor | None,
    p: Tensor,
    z: Tensor,
    rc: Tensor | None,
    theta: float,
    surrogate: str,
    slope: float,
    w_rec: Tensor | None,
    a_syn: Tensor | None,
    a_mem: Tensor,
    gi_carry: Tensor,
    gp_carry: Tensor,
    gi_out: Tensor,
    gp_out: Tensor,
    adapt_kind: str | None = None,
    th: Tensor | None = None,
    a_adapt: Tensor | None = None,
    strength: float = 0.0,
    gm_carry: Tensor | None = None,
    gm_out: Tensor | None = None,
    isa: str | None = None,
    gz_w: Tensor | None = None,
    gz_sum: Tensor | None = None,
) -> None:
    """Reverse-time adjoints of one block in place (see ``rsnn_backward_block`` in the C file).

    dL/dz is ``gz_in`` ``[K, B, H]``, or (``gz_in`` None) ``gz_w[k] * gz_sum[b]`` formed in C.
    """
    lib = _training_lib(isa)
    k, b, h = p.shape
    if gz_in is None:
        _require("gz_w", gz_w, "without gz_in")
        _require("gz_sum", gz_sum, "without gz_in")
    blk, row, vec = (k, b, h), (b, h), (h,)
    if surrogate not in SURROGATE_CODES:
        raise ValueError(f"native kernel argument surrogate: one of {list(SURROGATE_CODES)} (got {surrogate!r})")
    if adapt_kind not in ADAPT_CODES:
        raise ValueError(f"native kernel argument adapt_kind: one of {list(ADAPT_CODES)} (got {adapt_kind!r})")
    if adapt_kind is not None:
        for name, t in (("a_adapt", a_adapt), ("gm_carry", gm_carry), ("gm_out", gm_out)):
            _require(name, t, "with adaptation")
    if adapt_kind == "threshold":
        _require("th", th, "with threshold adaptation")
    status = lib.rsnn_backward_block(
        k, b, h, torch.get_num_threads(), int(has_next), _ptr("gz_in", gz_in, blk), _ptr("p", p, blk),
        _ptr("z", z, blk), _ptr("rc", rc, blk), theta, SURROGATE_CODES[surrogate], slope,
        _ptr("w_rec", w_rec, (h, h)), _ptr("a_syn", a_syn, vec), _ptr("a_mem", a_mem, vec),
        _ptr("gi_carry", gi_carry, row), _ptr("gp_carry", gp_carry, row), _ptr("gi_out", gi_out, blk),
        _ptr("gp_out", gp_out, blk), ADAPT_CODES[adapt_kind], _ptr("th", th, blk), _ptr("a_adapt", a_adapt, vec),
        strength, _ptr("gm_carry", gm_carry, row), _ptr("gm_out", gm_out, blk),
        _ptr("gz_w", gz_w, (k,)), _ptr("gz_sum", gz_sum, row),
    )  # fmt: skip
    _check(status, "backward_block")


def is_binary(x: Tensor, isa: str | None = None) -> bool:
    """Whether every entry of the float32 tensor ``x`` is 0 or 1 (one pass in C; torch's took 4)."""
    lib = _training_lib(isa)
    x = x.contiguous()
    return bool(lib.rsnn_is_binary(x.numel(), _ptr("x", x, tuple(x.shape))))


def spike_outer_block(gi: Tensor, pre: Tensor, g_out_t: Tensor, isa: str | None = None) -> None:
    """``g_out_t += pre^T g_i`` summed over a block (``gi`` ``[K, B, H]``, binary ``pre`` ``[K, B, N]``).

    The transposed gradient of a weight matrix fed by spikes, summed over the spikes only.
    """
    lib = _training_lib(isa)
    k, b, h = gi.shape
    n = pre.shape[2] if pre.dim() == 3 else 0
    status = lib.rsnn_spike_outer_block(
        k, b, n, h, torch.get_num_threads(), _ptr("gi", gi, (k, b, h)), _ptr("pre", pre, (k, b, n)),
        _ptr("g_out_t", g_out_t, (n, h)),
    )  # fmt: skip
    _check(status, "spike_outer_block")


class EmulatorNet(NamedTuple):
    """A network's arrays for an emulator C loop, checked once, with their addresses.

    Taking an array's address through numpy costs about 10 microseconds on a loaded machine, and a
    run passes a dozen: a host loop calling ``emulator.run`` per sample paid more for them than
    for the loop itself. The emulator prepares one of these per network (:func:`emulator_net`).
    """

    n_inputs: int
    n_hidden: int
    arrays: tuple[np.ndarray | None, ...]  # kept alive with their addresses
    ptrs: tuple[int | None, ...]


def emulator_net(w_in_t: np.ndarray, w_rec_t: np.ndarray | None, per_neuron: tuple[np.ndarray, ...]) -> EmulatorNet:
    """Check and pin int32 weights (transposed: ``[C, H]``, ``[H, H]`` or None) and int64 ``[H]`` vectors."""
    if not isinstance(w_in_t, np.ndarray) or w_in_t.ndim != 2:
        raise ValueError("native kernel argument w_in_t: expected an array [C, H]")
    c, h = w_in_t.shape
    ptrs = [_np_ptr("w_in_t", w_in_t, (c, h), np.int32), _np_ptr("w_rec_t", w_rec_t, (h, h), np.int32)]
    ptrs += [_np_ptr(f"per_neuron[{i}]", a, (h,), np.int64) for i, a in enumerate(per_neuron)]
    return EmulatorNet(c, h, (w_in_t, w_rec_t, *per_neuron), tuple(ptrs))


def _emulator_lib() -> ctypes.CDLL:
    lib = library(caller="emulator")
    if lib is None:
        raise RuntimeError("the native emulator loop is unavailable; see the warning")
    return lib


def _spike_input(x: np.ndarray, net: EmulatorNet) -> tuple[int, int, int]:
    if not isinstance(x, np.ndarray) or x.ndim != 3 or x.shape[2] != net.n_inputs:
        raise ValueError(f"native kernel argument x: expected an array [B, T, {net.n_inputs}]")
    b, t, _ = x.shape
    return b, t, net.n_hidden


def loihi1_run(
    x: np.ndarray,
    w_in_t: np.ndarray,
    w_rec_t: np.ndarray | None,
    decay_u: np.ndarray,
    decay_v: np.ndarray,
    bias: np.ndarray,
    vth: np.ndarray,
    vmin: int,
    latency: int,
    wrap_v32: bool = False,
) -> np.ndarray:
    """Hidden spikes ``[B, T, H]`` (bool) of the ``loihi1`` chip loop (``emulator_kernels.c``).

    No wraps of q or u (the caller has proven them impossible); the int32 wrap of v when ``wrap_v32``.

    ``x`` is uint8 0/1 ``[B, T, C]``; weights are int32, transposed (``[C, H]``, ``[H, H]``), and
    every sum of them fits int32 (the caller has proven that q cannot wrap at 21 bits).
    """
    _emulator_lib()
    if not isinstance(x, np.ndarray) or x.ndim != 3 or not isinstance(w_in_t, np.ndarray) or w_in_t.ndim != 2:
        raise ValueError("native kernel arguments x, w_in_t: expected arrays [B, T, C] and [C, H]")
    net = emulator_net(w_in_t, w_rec_t, (decay_u, decay_v, bias, vth))
    return loihi1_run_net(net, x, vmin, latency, wrap_v32)[0]


def loihi1_run_net(
    net: EmulatorNet, x: np.ndarray, vmin: int, latency: int, wrap_v32: bool = False, record_states: bool = False
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """:func:`loihi1_run` on a network pinned by :func:`emulator_net` (decay_u, decay_v, bias, vth):
    the spikes, and (``record_states``) u and v after each trace step (int64 ``[B, T, H]``, else None)."""
    lib = _emulator_lib()
    b, t, h = _spike_input(x, net)
    if not -(2**63) < vmin < 2**63 or not 0 <= latency < 2**31:
        raise ValueError(f"native kernel arguments vmin, latency: out of range (got {vmin}, {latency})")
    if len(net.ptrs) != 6:
        raise ValueError("native kernel argument net: expected the loihi1 arrays (decay_u, decay_v, bias, vth)")
    spikes = np.zeros((b, t, h), dtype=np.uint8)
    rec = [np.zeros((b, t, h), dtype=np.int64) if record_states else None for _ in range(2)]
    status = lib.rsnn_loihi1_run(
        b, t, h, net.n_inputs, latency, _threads(b), _np_ptr("x", x, (b, t, net.n_inputs), np.uint8), *net.ptrs,
        vmin, int(wrap_v32), _np_ptr("spikes", spikes, (b, t, h), np.uint8),
        *(_np_ptr("rec", a, (b, t, h), np.int64) for a in rec),
    )  # fmt: skip
    _check(status, "loihi1_run")
    return spikes.view(bool), rec[0], rec[1]


def _threads(batch: int) -> int:
    """OpenMP threads of an emulator loop over ``batch`` samples.

    One thread for small batches: waking an OpenMP team for a few samples cost milliseconds
    per call on a loaded machine (a second thread waits for a core), more than the loop itself.
    """
    return max(1, min(torch.get_num_threads(), batch // 64))


class Loihi2Run(NamedTuple):
    """What :func:`loihi2_run` returns: spikes ``[B, T, H]`` bool, the states after each trace step
    (int64 ``[B, T, H]``, or None where not asked for) and the wrap counts of (q, u, theta)."""

    spikes: np.ndarray
    u: np.ndarray | None
    v: np.ndarray | None
    theta: np.ndarray | None
    r: np.ndarray | None
    overflow: np.ndarray


def loihi2_run(
    x: np.ndarray,
    net: EmulatorNet,
    *,
    vmin: int,
    vmax: int,
    bits: int,
    q_bits: int,
    u_bits: int,
    theta_bits: int,
    atrlif: bool,
    latency: int,
    record_states: bool = False,
) -> Loihi2Run:
    """The ``loihi2`` chip loop (``rsnn_loihi2_run`` in ``emulator_kernels.c``; Lava's LIF or ATRLIF).

    ``x`` is uint8 0/1 ``[B, T, C]``; ``net`` pins (:func:`emulator_net`) the int32 transposed
    weights, whose every sum fits int32 (the caller has proven it), and seven int64 ``[H]``
    vectors: the decay factors ``2**bits - offset - decay`` of u, v, theta and r (each in
    ``[0, 2**bits]``), bias, vth and theta_step.
    """
    lib = _emulator_lib()
    b, t, h = _spike_input(x, net)
    if len(net.ptrs) != 9:
        raise ValueError("native kernel argument net: expected the loihi2 arrays (4 decay factors, bias, vth, step)")
    if not 0 <= latency < 2**31 or not 0 < bits < 32 or not all(0 < n < 48 for n in (q_bits, u_bits, theta_bits)):
        raise ValueError(f"native kernel arguments latency, bits: out of range (got {latency}, {bits})")
    if not -(2**62) < vmin <= vmax < 2**62:
        raise ValueError(f"native kernel arguments vmin, vmax: out of range (got {vmin}, {vmax})")
    i64 = np.int64
    spikes = np.zeros((b, t, h), dtype=np.uint8)
    rec = [np.zeros((b, t, h), dtype=i64) if record_states else None for _ in range(4)]
    overflow = np.zeros(3, dtype=i64)
    w_in, w_rec, fu, fv, ft, fr, bias, vth, step = net.ptrs
    status = lib.rsnn_loihi2_run(
        b, t, h, net.n_inputs, latency, _threads(b), _np_ptr("x", x, (b, t, net.n_inputs), np.uint8),
        w_in, w_rec, fu, fv, ft, fr, bits, bias, vth, step, vmin, vmax, q_bits, u_bits, theta_bits, int(atrlif),
        _np_ptr("spikes", spikes, (b, t, h), np.uint8), *(_np_ptr("rec", a, (b, t, h), i64) for a in rec),
        _np_ptr("overflow", overflow, (3,), i64),
    )  # fmt: skip
    _check(status, "loihi2_run")
    return Loihi2Run(spikes.view(bool), rec[0], rec[1], rec[2], rec[3], overflow)


def readout_scan(
    drive: np.ndarray, bias: np.ndarray, decay: float, readout: np.ndarray, y: np.ndarray, total: np.ndarray
) -> bool:
    """The host readout's integration in C (see ``rsnn_readout_scan``); False (nothing done) without the library.

    ``drive`` float64 ``[B, T, K]``, ``bias`` ``[K]``; fills ``readout`` float32 ``[B, T, K]``,
    the final state ``y`` and the sum over steps ``total`` (float64 ``[B, K]``).
    """
    if os.environ.get("RSNN_DEPLOY_NATIVE", "1") == "0":
        return False
    lib = library(caller="host readout")
    if lib is None:
        return False
    b, t, k = drive.shape
    f64 = np.float64
    lib.rsnn_readout_scan(
        b, t, k, _np_ptr("drive", drive, (b, t, k), f64), _np_ptr("bias", bias, (k,), f64), float(decay),
        _np_ptr("readout", readout, (b, t, k), np.float32), _np_ptr("y", y, (b, k), f64),
        _np_ptr("total", total, (b, k), f64),
    )  # fmt: skip
    return True
