"""Native (C) inner loops for the fast BPTT engine and the integer emulator, compiled on first use, optional.

Why it exists
-------------
The fast engine's time loops in eager torch launch about ten small kernels per step,
and its recurrent input is a dense matmul although the spikes are binary and sparse.
``bptt_kernels.c`` runs a whole block of steps per call, fused, with the recurrent
input summed over the neurons that spiked only (likewise the input drive of binary
inputs and both weight gradients). On the 2-core benchmark machine a training step got
about twice as fast (``benchmarks/train_throughput.py``). ``emulator_kernels.c`` runs the
``loihi1`` emulator's time loop where no state can wrap (``emulator.run``).

How it is built
---------------
The first call compiles the C files with the system C compiler (``$CC``, else ``cc``)
into a per-user cache (``$RSNN_DEPLOY_CACHE``, else ``~/.cache/rsnn-deploy``), keyed by
the sources, the flags and the CPU, and loads it with :mod:`ctypes`. It takes a few
seconds, once per machine. No compiler, a failed build, or ``RSNN_DEPLOY_NATIVE=0`` in
the environment leave the engine on its torch loops and the emulator on numpy, which
give the same spikes; a warning says why, once. Without OpenMP the library is built
single-threaded. It is written atomically, so concurrent first uses are safe.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "SURROGATE_CODES",
    "backward_block",
    "disabled_reason",
    "enabled",
    "forward_block",
    "library",
    "loihi1_run",
    "spike_outer_block",
]

log = logging.getLogger(__name__)

ABI_VERSION = 2
ADAPT_CODES = {None: 0, "threshold": 1, "current": 2}
SURROGATE_CODES = {"fast-sigmoid": 0, "triangle": 1, "arctan": 2, "sigmoid": 3}
# -ffp-contract=off: no fused multiply-add in the forward pass (the rounding contract of the C file).
_FLAGS = ["-O3", "-march=native", "-fPIC", "-shared", "-ffp-contract=off", "-fno-fast-math", "-std=c11"]
_OPENMP = "-fopenmp"  # dropped, with a single-threaded build, where the compiler has no OpenMP

_lock = threading.Lock()
_state: dict[str, object] = {}


def disabled_reason() -> str | None:
    """Why the native loops are off (``RSNN_DEPLOY_NATIVE=0``, or no library), or None when they are on."""
    if os.environ.get("RSNN_DEPLOY_NATIVE", "1") == "0":
        return "RSNN_DEPLOY_NATIVE=0"
    if library() is None:
        return "the C loops could not be built; see the warning"
    return None


def enabled() -> bool:
    """Whether the native loops are allowed (``RSNN_DEPLOY_NATIVE`` is not ``0``) and built."""
    return disabled_reason() is None


def _cpu_key() -> str:
    """What ``-march=native`` depends on: the CPU's model and flags (a shared home may span machines)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
        lines = [ln for ln in text.splitlines() if ln.startswith(("model name", "flags"))][:2]
    except OSError:
        lines = []
    return "\n".join([platform.machine(), platform.processor(), *lines])


def _cache_dir() -> Path:
    root = os.environ.get("RSNN_DEPLOY_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "rsnn-deploy")
    return Path(root) / "native"


_SOURCES = ("bptt_kernels.c", "emulator_kernels.c")


def _build(sources: dict[str, bytes], compiler: str) -> Path:
    parts = [*sources.values(), " ".join(_FLAGS).encode(), compiler.encode(), _cpu_key().encode()]
    key = hashlib.sha256(b"\0".join(parts))
    out = _cache_dir() / f"rsnn_kernels_{key.hexdigest()[:16]}.so"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        paths = []
        for name, text in sources.items():
            paths.append(str(Path(tmp) / name))
            Path(paths[-1]).write_bytes(text)
        lib = Path(tmp) / out.name
        errors = ""
        for extra in ([_OPENMP], []):
            cmd = [compiler, *_FLAGS, *extra, *paths, "-o", str(lib), "-lm"]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode == 0:
                break
            errors = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
        else:
            raise RuntimeError(f"{compiler} failed: {errors}")
        os.replace(lib, out)  # atomic: a concurrent build writes the same bytes
    return out


def library() -> ctypes.CDLL | None:
    """The compiled kernels, built on first call; None (with one warning) when they cannot be built."""
    with _lock:
        if "lib" in _state:
            return _state["lib"]  # type: ignore[return-value]
        lib = None
        compiler = os.environ.get("CC") or "cc"
        try:
            if shutil.which(compiler) is None:
                raise RuntimeError(f"no C compiler ({compiler!r}) on PATH")
            package = resources.files("rsnn_deploy")
            sources = {name: package.joinpath(name).read_bytes() for name in _SOURCES}
            lib = ctypes.CDLL(str(_build(sources, compiler)))
            if lib.rsnn_abi_version() != ABI_VERSION:
                raise RuntimeError("kernel ABI version mismatch")
            _declare(lib)
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
            log.warning("native BPTT kernels unavailable, using torch loops: %s", exc)
            lib = None
        _state["lib"] = lib
        return lib


def _declare(lib: ctypes.CDLL) -> None:
    i, f, p = ctypes.c_int, ctypes.c_float, ctypes.c_void_p
    lib.rsnn_forward_block.restype = None
    fwd = [i, i, i, i, p, i, p, p, p, p, p, p, f, i, f, i, p, p, p, p, p, p, p, p, i, p, f, p, p, p]
    lib.rsnn_forward_block.argtypes = fwd
    lib.rsnn_backward_block.restype = None
    lib.rsnn_backward_block.argtypes = [i, i, i, i, i, p, p, p, p, f, i, f, p, p, p, p, p, p, p, i, p, p, f, p, p]
    lib.rsnn_loihi1_run.restype = None
    lib.rsnn_loihi1_run.argtypes = [i, i, i, i, i, i, p, p, p, p, p, p, p, ctypes.c_int64, p]
    lib.rsnn_spike_outer_block.restype = None
    lib.rsnn_spike_outer_block.argtypes = [i, i, i, i, i, p, p, p]


def _ptr(t: Tensor | None) -> int | None:
    if t is None:
        return None
    assert t.dtype in (torch.float32, torch.int32) and t.is_contiguous() and t.device.type == "cpu"
    return t.data_ptr()


def _np_ptr(a: np.ndarray | None, dtype: type) -> int | None:
    if a is None:
        return None
    assert a.dtype == dtype and a.flags.c_contiguous
    return a.ctypes.data


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
) -> None:
    """Run ``z_out.shape[0]`` steps in place (see ``rsnn_forward_block`` in the C file for the meaning).

    The input drive is ``drive`` ``[K, B, H]`` when given, else computed from the binary
    input spikes ``x`` ``[K, B, C]`` and ``w_in_t`` ``[C, H]``.
    """
    lib = library()
    assert lib is not None
    k, b, h = z_out.shape
    n_in = x.shape[2] if x is not None else 0
    lib.rsnn_forward_block(
        k, b, h, torch.get_num_threads(), _ptr(drive), n_in, _ptr(x), _ptr(w_in_t), _ptr(w_rec_t),
        _ptr(a_syn), _ptr(a_mem), _ptr(bias),
        theta, v_floor is not None, 0.0 if v_floor is None else v_floor, int(first_block),
        _ptr(i_state), _ptr(v_state), _ptr(act), _ptr(n_act), _ptr(z_out), _ptr(p_out), _ptr(rc_out), _ptr(i_out),
        ADAPT_CODES[adapt_kind], _ptr(a_adapt), strength, _ptr(n_state), _ptr(n_out), _ptr(th_out),
    )  # fmt: skip


def backward_block(
    has_next: bool,
    gz_in: Tensor,
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
) -> None:
    """Reverse-time adjoints of one block in place (see ``rsnn_backward_block`` in the C file)."""
    lib = library()
    assert lib is not None
    k, b, h = gz_in.shape
    lib.rsnn_backward_block(
        k, b, h, torch.get_num_threads(), int(has_next), _ptr(gz_in), _ptr(p), _ptr(z), _ptr(rc), theta,
        SURROGATE_CODES[surrogate], slope, _ptr(w_rec), _ptr(a_syn), _ptr(a_mem),
        _ptr(gi_carry), _ptr(gp_carry), _ptr(gi_out), _ptr(gp_out),
        ADAPT_CODES[adapt_kind], _ptr(th), _ptr(a_adapt), strength, _ptr(gm_carry), _ptr(gm_out),
    )  # fmt: skip


def spike_outer_block(gi: Tensor, pre: Tensor, g_out_t: Tensor) -> None:
    """``g_out_t += pre^T g_i`` summed over a block (``gi`` ``[K, B, H]``, binary ``pre`` ``[K, B, N]``).

    The transposed gradient of a weight matrix fed by spikes, summed over the spikes only.
    """
    lib = library()
    assert lib is not None
    k, b, h = gi.shape
    n = pre.shape[2]
    lib.rsnn_spike_outer_block(k, b, n, h, torch.get_num_threads(), _ptr(gi), _ptr(pre), _ptr(g_out_t))


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
) -> np.ndarray:
    """Hidden spikes ``[B, T, H]`` (bool) of the ``loihi1`` chip loop without wraps (``emulator_kernels.c``).

    ``x`` is uint8 0/1 ``[B, T, C]``; weights are int32, transposed (``[C, H]``, ``[H, H]``), and
    every sum of them fits int32 (the caller has proven that q cannot wrap at 21 bits).
    """
    lib = library()
    assert lib is not None
    b, t, c = x.shape
    h = w_in_t.shape[1]
    spikes = np.zeros((b, t, h), dtype=np.uint8)
    i64 = np.int64
    lib.rsnn_loihi1_run(
        b, t, h, c, latency, torch.get_num_threads(), _np_ptr(x, np.uint8), _np_ptr(w_in_t, np.int32),
        _np_ptr(w_rec_t, np.int32), _np_ptr(decay_u, i64), _np_ptr(decay_v, i64), _np_ptr(bias, i64), _np_ptr(vth, i64),
        vmin, _np_ptr(spikes, np.uint8),
    )  # fmt: skip
    return spikes.view(bool)
