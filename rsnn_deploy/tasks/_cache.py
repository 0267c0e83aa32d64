"""On-disk cache of encoded tasks: plain ``.npz`` (never pickles), atomic, self-checking.

A cache file is named ``<task>-<key>.npz`` where ``key`` hashes the task's parameters
and :data:`CACHE_VERSION`; the key is also stored inside the file and compared on load.
Any problem reading a file (truncated, not a zip, missing or malformed array, key
mismatch) counts as a miss: the caller regenerates and overwrites it. A cache directory
that cannot be written is not an error either: the task is simply not cached.
"""

from __future__ import annotations

import hashlib
import json
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from rsnn_deploy.io import CACHE_ENV as CACHE_ENV  # re-exported: tests set it
from rsnn_deploy.io import atomic_path, cache_root

# Bump when the layout of cached files or an encoder's semantics change.
CACHE_VERSION = 1


def cache_dir() -> Path:
    """Where generated datasets are cached: the shared cache root (:func:`rsnn_deploy.io.cache_root`)."""
    return cache_root()


def cache_key(task: str, params: dict[str, Any]) -> str:
    """Hash of ``params`` (canonical JSON) and the cache version: 16 hex digits."""
    blob = json.dumps({"task": task, "version": CACHE_VERSION, "params": params}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cache_path(task: str, key: str) -> Path:
    return cache_dir() / f"{task}-{key}.npz"


def load_cached(task: str, key: str, expected: dict[str, tuple[str, int]]) -> dict[str, np.ndarray] | None:
    """Arrays of a cache entry, or None when absent or unusable.

    ``expected`` maps each required array name to ``(dtype kind, ndim)``; anything else
    in the file is ignored. The file is read with ``allow_pickle=False``.
    """
    path = cache_path(task, key)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            if str(npz["cache_key"]) != key:
                raise ValueError("key mismatch")
            out = {name: np.asarray(npz[name]) for name in expected}
        for name, (kind, ndim) in expected.items():
            if out[name].dtype.kind != kind or out[name].ndim != ndim:
                raise ValueError(f"{name}: {out[name].dtype} ndim {out[name].ndim}")
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        warnings.warn(f"{path}: unusable cache file ({err}); regenerating", RuntimeWarning, stacklevel=3)
        return None
    return out


def save_cached(task: str, key: str, arrays: dict[str, np.ndarray]) -> None:
    """Write a cache entry atomically (temporary file + ``os.replace``); failures only warn."""
    path = cache_path(task, key)
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, cache_key=np.array(key), **arrays)
    except OSError as err:
        warnings.warn(f"{path}: cannot write cache ({err}); continuing uncached", RuntimeWarning, stacklevel=3)
