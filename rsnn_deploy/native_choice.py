"""Which training loops the fast engine runs by default, and with how many threads: measured, not assumed.

Why it exists
-------------
Which loops are fastest depends on the CPU: on an AVX2-only Zen 3 the C kernels once ran
3x slower than the engine's own torch loops (``/work/shared/MEASURED.md``), while on an
AVX-512 machine they ran faster. So the default is measured. On first use,
:func:`fastest` times one small training step (forward and backward, 28 -> 128 ``rec-syn``
neurons, batch 64, 28 steps) with every C variant this CPU can run
(:data:`rsnn_deploy.native.ISAS`) and with the torch loops. It takes interleaved rounds,
counts single-thread CPU time (robust to other jobs on the machine) and picks the lowest
median. The result is cached in ``$RSNN_DEPLOY_CACHE/native/calibration.json``, keyed by
the CPU's model and flags, the kernel sources and the torch version. It costs about a
second plus the compiles, once per machine. ``RSNN_DEPLOY_NATIVE_ISA`` or
``RSNN_DEPLOY_NATIVE=0`` skip it.

Threads: OpenMP threads that wait for a core another process holds make every small
kernel wait, and on a loaded 2-core machine the torch default (all cores) made an epoch
3.7x slower than one thread. :func:`default_threads` therefore uses only the cores the
load average leaves idle, at least one (it lives in :mod:`rsnn_deploy.threads`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import statistics
import time
from importlib import resources

import torch

from rsnn_deploy import native
from rsnn_deploy.threads import default_threads  # re-exported: callers found it here

__all__ = ["calibrate", "default_threads", "fastest"]

CACHE_VERSION = 1
TORCH = "torch"  # the candidate name of the engine's torch loops
_ROUNDS, _ITERS = 7, 2
_BATCH, _STEPS = 64, 28


def _key() -> str:
    parts = [native.cpu_key(), torch.__version__, str(native.ABI_VERSION), str(CACHE_VERSION)]
    package = resources.files("rsnn_deploy")
    digest = hashlib.sha256("\0".join(parts).encode())
    for name in ("bptt_kernels.c", "fast_bptt.py"):
        digest.update(package.joinpath(name).read_bytes())
    return digest.hexdigest()[:24]


def _cache_file():
    return native.cache_dir() / "calibration.json"


def _read_cache() -> dict:
    try:
        data = json.loads(_cache_file().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def calibrate(candidates: list[str] | None = None) -> dict[str, float]:
    """Median single-thread CPU milliseconds of one calibration step per candidate (C variants, ``torch``).

    Candidates default to every variant this CPU runs whose library builds, and the torch loops.
    The global RNG and the thread count are left as they were.
    """
    from rsnn_deploy.config import ModelConfig
    from rsnn_deploy.model import RSNN

    if candidates is None:
        candidates = [isa for isa in native.cpu_isas() if native.library(isa) is not None] + [TORCH]
    threads = torch.get_num_threads()
    times: dict[str, list[float]] = {c: [] for c in candidates}
    # The first use may come under no_grad or inference_mode (an evaluation): the step needs autograd.
    with torch.inference_mode(False), torch.enable_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        cfg = ModelConfig(n_in=28, n_hidden=128, n_out=10, variant="rec-syn", tau_mem_ms=10.0, tau_syn_ms=5.0)
        model = RSNN(cfg)
        x = (torch.rand(_BATCH, _STEPS, cfg.n_in) < 0.2).float()
        y = torch.randint(0, cfg.n_out, (_BATCH,))
        loss_fn = torch.nn.CrossEntropyLoss()

        def step(c: str) -> float:
            with native.use_isa(None if c == TORCH else c):
                t0 = time.thread_time()
                for _ in range(_ITERS):
                    model.zero_grad(set_to_none=True)
                    loss_fn(model(x, engine="fast").logits, y).backward()
                return (time.thread_time() - t0) * 1e3 / _ITERS

        try:
            torch.set_num_threads(1)
            for c in candidates:  # warm-up: first-call allocations, the buffer pool
                step(c)
            for r in range(_ROUNDS):
                for c in candidates[r % len(candidates) :] + candidates[: r % len(candidates)]:
                    times[c].append(step(c))
        finally:
            torch.set_num_threads(threads)
    return {c: statistics.median(v) for c, v in times.items()}


def _describe(record: dict) -> tuple[str | None, str]:
    ms = record["ms_per_step"]
    chosen = record["chosen"]
    ranked = sorted(ms.items(), key=lambda kv: kv[1])
    parts = ", ".join(f"{'torch loops' if c == TORCH else c} {v:.2f}" for c, v in ranked)
    why = f"fastest measured on this CPU (ms per calibration step: {parts}; {_cache_file()})"
    return (None if chosen == TORCH else chosen), why


def _measure() -> dict:
    ms = calibrate()
    return {
        "cpu": native.cpu_model(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "ms_per_step": ms,
        "chosen": min(ms, key=ms.__getitem__),
    }


def fastest() -> tuple[str | None, str]:
    """The default training loops (a C variant, or None for the torch loops) and why; measured once per CPU."""
    cached = native._state.get("choice")
    if cached is not None:
        return cached  # type: ignore[return-value]
    key = _key()
    record = _read_cache().get(key)
    if not isinstance(record, dict) or record.get("chosen") is None:
        try:
            with native.file_lock(native.cache_dir() / "calibration.lock"):  # one process measures
                data = _read_cache()
                record = data.get(key)
                if not isinstance(record, dict) or record.get("chosen") is None:
                    record = data[key] = _measure()
                    tmp = _cache_file().with_suffix(f".tmp{os.getpid()}")
                    tmp.write_text(json.dumps(data, indent=1) + "\n")
                    os.replace(tmp, _cache_file())
        except OSError:  # a read-only cache: measure in this process, keep it in memory only
            record = _measure()
    chosen = record["chosen"]
    if chosen != TORCH and (chosen not in native.cpu_isas() or native.library(chosen) is None):
        choice: tuple[str | None, str] = (None, f"the measured fastest ({chosen}) cannot be loaded")
    else:
        choice = _describe(record)
    native._state["choice"] = choice
    return choice
