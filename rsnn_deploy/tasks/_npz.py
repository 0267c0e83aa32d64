"""A user's own ``.npz`` file as a task, validated key by key.

Keys: ``x`` [N, T, C] and ``y`` [N] (required); ``x_test`` [M, T, C] and ``y_test`` [M]
(optional, both or neither; without them ``test_fraction`` of the samples, chosen with
``seed``, become the test split). Read with ``np.load(path, allow_pickle=False)``: an
object array (which only a pickle can hold) is refused, never unpickled.

Inputs
    ``encoding="auto"`` (default): if every value of ``x`` (and ``x_test``) is 0 or 1 the
    arrays are used as spikes; otherwise each input channel is level-crossing encoded
    (:func:`~rsnn_deploy.tasks.encoders.level_crossing`, ``start="floor"``) with
    ``n_thresholds`` thresholds at that channel's quantiles over the *training* samples,
    giving ``C * 2 * n_thresholds`` channels. ``"spikes"`` demands binary input;
    ``"level-crossing"`` encodes even binary input. Spike *counts* (values > 1) are real
    values for this purpose: convert them to binary yourself if that is what you mean.

``params`` records the file's SHA-256; passing it back makes a rebuild fail if the file
changed since the task was recorded (a checkpoint then names the exact data it saw).
"""

from __future__ import annotations

import hashlib
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from rsnn_deploy.config import MAX_UNITS
from rsnn_deploy.errors import DataError, ValidationError
from rsnn_deploy.io import open_npz
from rsnn_deploy.tasks._params import check_choice, check_float, check_int, check_known, recorded_thresholds
from rsnn_deploy.tasks._split import READOUT_MODES, EncodedSource, Split, Task
from rsnn_deploy.tasks.encoders import START_MODES, level_crossing, quantile_thresholds
from rsnn_deploy.tasks.input_encoder import InputEncoder
from rsnn_deploy.trace import is_binary

NAME = "npz"
ENCODINGS: tuple[str, ...] = ("auto", "spikes", "level-crossing")
DEFAULTS: dict[str, Any] = {
    "encoding": "auto",
    "n_thresholds": 8,
    "start": "floor",
    "readout_mode": "mean",
    "n_classes": None,
    "test_fraction": 0.2,
    "sha256": None,
    "thresholds": None,
}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read(path: Path) -> dict[str, np.ndarray]:
    """The arrays ``x, y[, x_test, y_test]`` of the file, each checked on its own."""
    owner = f"npz[{path}]"
    npz = open_npz(path, owner, "x=..., y=...")
    with npz:
        keys = set(npz.files)
        for key in ("x", "y"):
            if key not in keys:
                raise ValidationError(
                    f"{owner}.{key}: missing key (got keys {sorted(keys)}); save with numpy.savez(path, x=..., y=...)"
                )
        if ("x_test" in keys) != ("y_test" in keys):
            key = "y_test" if "x_test" in keys else "x_test"
            raise ValidationError(f"{owner}.{key}: missing key (got keys {sorted(keys)}); give both x_test and y_test")
        out: dict[str, np.ndarray] = {}
        for key in ("x", "y", "x_test", "y_test"):
            if key not in keys:
                continue
            try:
                out[key] = npz[key]
            except ValueError as err:  # object arrays: numpy refuses them without allow_pickle
                raise ValidationError(
                    f"{owner}.{key}: cannot be loaded without unpickling (got {err}); "
                    "store numeric arrays (e.g. np.stack the samples), pickled objects are refused"
                ) from None
            except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
                raise DataError(f"{owner}.{key}: corrupt array (got {err}); rewrite the file") from None
    return out


def _check_pair(owner: str, x: np.ndarray, y: np.ndarray, xk: str, yk: str) -> tuple[np.ndarray, np.ndarray]:
    if x.dtype.kind not in "biuf":
        raise ValidationError(f"{owner}.{xk}: must be numeric (got dtype {x.dtype}); store bool, int or float values")
    if x.ndim != 3 or 0 in x.shape:
        raise ValidationError(f"{owner}.{xk}: must have shape [N, T, C] with N, T, C >= 1 (got shape {x.shape})")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(x))[0].tolist()
        raise ValidationError(f"{owner}.{xk}: must be finite (got {x[tuple(bad)]} at index {bad}); remove NaN/inf")
    if y.dtype.kind not in "iu":
        raise ValidationError(f"{owner}.{yk}: labels must be integers (got dtype {y.dtype}); store y.astype(np.int64)")
    if y.shape != (x.shape[0],):
        raise ValidationError(
            f"{owner}.{yk}: must have shape [N] = ({x.shape[0]},) to match {xk} (got shape {y.shape})"
        )
    if y.size and y.min() < 0:
        raise ValidationError(f"{owner}.{yk}: labels must be >= 0 (got {y.min()}); number the classes 0..K-1")
    if y.size and y.max() >= MAX_UNITS:  # checked before a one-hot or readout of that size is allocated
        raise ValidationError(
            f"{owner}.{yk}: labels must be below {MAX_UNITS} (got {y.max()}); number the classes 0..K-1"
        )
    return x, y.astype(np.int64)


def load(params: dict[str, Any], path: Any, seed: int) -> Task:
    p = check_known(NAME, params, DEFAULTS)
    if path is None:
        raise ValidationError(f"--data: required with --task {NAME}; pass --data FILE.npz with arrays x and y")
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise DataError(f"--data: file not found (got {path}); check the path of your .npz file")
    encoding = check_choice(NAME, "encoding", p["encoding"], ENCODINGS)
    n_k = check_int(NAME, "n_thresholds", p["n_thresholds"], 1, 1024)
    start = check_choice(NAME, "start", p["start"], START_MODES)
    readout_mode = check_choice(NAME, "readout_mode", p["readout_mode"], READOUT_MODES)
    test_fraction = check_float(NAME, "test_fraction", p["test_fraction"], 0.0, 1.0)
    seed = check_int(NAME, "seed", seed, 0, 2**63 - 1)
    digest = _sha256(path)
    if p["sha256"] is not None and p["sha256"] != digest:
        raise DataError(
            f"{NAME}.sha256: {path} changed since these params were recorded (got {digest}, recorded "
            f"{p['sha256']}); drop 'sha256' to accept the new file, and retrain"
        )

    owner = f"npz[{path}]"
    arrays = _read(path)
    x, y = _check_pair(owner, arrays["x"], arrays["y"], "x", "y")
    if "x_test" in arrays:
        x_test, y_test = _check_pair(owner, arrays["x_test"], arrays["y_test"], "x_test", "y_test")
        if x_test.shape[1:] != x.shape[1:]:
            raise ValidationError(f"{owner}.x_test: must have the [T, C] of x = {x.shape[1:]} (got {x_test.shape[1:]})")
    else:
        n = x.shape[0]
        n_test = round(test_fraction * n)
        if not 1 <= n_test < n:
            raise ValidationError(
                f"{NAME}.test_fraction: leaves an empty split of {n} samples (got {test_fraction}); "
                "give x_test/y_test in the file or a fraction that keeps both splits non-empty"
            )
        is_test = np.zeros(n, dtype=bool)
        is_test[np.random.default_rng(seed).permutation(n)[:n_test]] = True
        x, x_test, y, y_test = x[~is_test], x[is_test], y[~is_test], y[is_test]

    n_seen = int(max(y.max(), y_test.max())) + 1
    n_classes = n_seen if p["n_classes"] is None else check_int(NAME, "n_classes", p["n_classes"], n_seen, MAX_UNITS)

    binary = is_binary(x) and is_binary(x_test)
    if encoding == "auto":
        encoding = "spikes" if binary else "level-crossing"
    resolved: dict[str, Any] = {
        "encoding": encoding,
        "readout_mode": readout_mode,
        "n_classes": n_classes,
        "test_fraction": test_fraction,
        "sha256": digest,
    }
    if encoding == "spikes":
        if not binary:
            key = "x" if not is_binary(x) else "x_test"
            raise ValidationError(
                f"{owner}.{key}: encoding='spikes' needs values in {{0, 1}} (got other values); "
                "use encoding='level-crossing' or 'auto' to encode real values"
            )
        train, test = (
            Split.from_spikes(x.astype(np.uint8), y),
            Split.from_spikes(x_test.astype(np.uint8), y_test),
        )
        encoder = InputEncoder("spikes", x.shape[2], n_steps=x.shape[1], raw=f"0/1 spikes as in {path.name}")
    else:
        fitted = quantile_thresholds(x.reshape(-1, x.shape[2]), n_k, axis=0)  # [C, K]
        # the file's SHA-256 already pins the data; the spikes still decide (quantiles may differ by an ulp)
        th = recorded_thresholds(
            NAME, p["thresholds"], fitted, {"train": x, "test": x_test},
            lambda raw, t: level_crossing(raw, t, start=start), "rebuild from the recorded file, or retrain",
        )
        encoder = InputEncoder("level-crossing", x.shape[2], th, start=start, n_steps=x.shape[1],
                               raw=f"the values of x in {path.name} ({x.shape[2]} channels per step)")

        def encode(raw: np.ndarray) -> np.ndarray:
            return level_crossing(raw, th, start=start)

        n_ch = x.shape[2] * 2 * n_k
        train = Split.from_source(EncodedSource(x.astype(np.float64), encode, x.shape[1], n_ch), y)
        test = Split.from_source(EncodedSource(x_test.astype(np.float64), encode, x.shape[1], n_ch), y_test)
        resolved.update(n_thresholds=n_k, start=start, thresholds=th.tolist())
    return Task(
        name=NAME,
        train=train,
        test=test,
        n_classes=n_classes,
        readout_mode=readout_mode,
        params={"path": str(path), "seed": seed, **resolved},
        encoder=encoder,
    )
