"""Where a benchmark figure came from: the machine, its load, the libraries and the commit.

Why it exists
-------------
A speed claim that records "x86_64" only cannot be traced to the CPU that made it: the
same kernels ran 0.64x snnTorch on an AVX2-only Zen 3 and several times faster on an
AVX-512 machine. Every results JSON of ``benchmarks/`` therefore carries
:func:`collect` (at the start of the run) completed by :func:`finish` (at the end): the
CPU model and its SIMD flags, the CPU count and threads used, the load average before
and after, the versions of the libraries involved, and the git commit of the code.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path

__all__ = ["collect", "finish", "load_average", "summary"]

# The flags that decide which kernels run and how fast (the rest of /proc/cpuinfo is noise here).
SIMD_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "f16c", "bmi2", "avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl",
    "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "neon", "asimd", "sve",
)  # fmt: skip
_PACKAGES = ("torch", "numpy", "snntorch", "nengo", "nengo-loihi", "onnxruntime", "onnx", "lava-nc", "norse")


def load_average() -> float | None:
    """The 1-minute load average (None where the OS has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _cpu() -> dict[str, object]:
    from rsnn_deploy import native

    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    return {
        "model": native.cpu_model(),
        "machine": platform.machine(),
        "simd_flags": [f for f in SIMD_FLAGS if f in flags],
        "avx512": "avx512f" in flags,
        "kernel_variants": list(native.cpu_isas()),
        "cpus": os.cpu_count(),
    }


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def _commit() -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        res = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=False
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if res.returncode != 0:
        return None
    return res.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def collect(threads: int | None = None, argv: list[str] | None = None) -> dict[str, object]:
    """The provenance of a run that starts now (``threads``: those the run uses; default torch's)."""
    if threads is None:
        import torch

        threads = torch.get_num_threads()
    return {
        "command": " ".join(["python", *(argv if argv is not None else sys.argv)]),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": _commit(),
        "cpu": _cpu(),
        "threads": threads,
        "load_average_before": load_average(),
        "versions": _versions(),
    }


def finish(record: dict[str, object]) -> dict[str, object]:
    """``record`` with the load average after the run and the end time added (in place, and returned)."""
    record["load_average_after"] = load_average()
    record["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return record


def summary(record: dict[str, object]) -> str:
    """One line for a benchmark's console output: CPU, AVX-512 or not, threads, load."""
    cpu = record["cpu"]
    assert isinstance(cpu, dict)
    simd = "AVX-512" if cpu["avx512"] else ("AVX2" if "avx2" in cpu["simd_flags"] else "no AVX2")
    return (
        f"CPU {cpu['model']} ({simd}, {cpu['cpus']} CPUs), {record['threads']} thread(s), "
        f"load {record['load_average_before']}"
    )
