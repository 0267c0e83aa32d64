"""MNIST-1D (Greydanus 2020), generated locally, level-crossing encoded.

The data come from ``mnist1d.data.make_dataset(get_dataset_args())``: 4000 train /
1000 test signals of 40 steps, 10 classes. ``make_dataset`` only computes (unlike
``mnist1d.get_dataset``, which may download a pickle and would unpickle it: never used
here). It seeds numpy's *global* RNG; we restore the global state afterwards so that
loading a task never changes the random numbers of the caller.

Encoding: :func:`~rsnn_deploy.tasks.encoders.level_crossing` with ``n_thresholds``
thresholds at the quantiles of the training values (pooled over samples and steps) when a
new model is trained, and the thresholds a model recorded whenever one is loaded,
one up and one down channel each (64 channels by default), ``start="floor"``
(t = 0 carries the starting level as a burst of up spikes, so the code is lossless up to
quantization). The cache holds the raw signals (so that any recorded thresholds can encode
them) and the thresholds fitted to them. MEASURED.md: this input beat a thermometer code and direct current by
15-20 points.

``seed`` of :func:`load_task` does not change this task: the dataset is the published
one (its generator seed is ``data_seed``, 42), so that training seeds and data stay
separate and accuracies compare with the literature.
"""

from __future__ import annotations

import importlib.metadata
import random
from typing import Any

import numpy as np

from rsnn_deploy.errors import DataError
from rsnn_deploy.tasks import _cache
from rsnn_deploy.tasks._params import check_choice, check_int, check_known, recorded_thresholds
from rsnn_deploy.tasks._split import Split, Task
from rsnn_deploy.tasks.encoders import START_MODES, level_crossing, quantile_thresholds
from rsnn_deploy.tasks.input_encoder import InputEncoder

NAME = "mnist1d"
DEFAULTS: dict[str, Any] = {"n_thresholds": 32, "start": "floor", "data_seed": 42, "thresholds": None}


def _generate(data_seed: int) -> dict[str, np.ndarray]:
    """Raw MNIST-1D arrays; the caller's global RNG state is left untouched."""
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as err:
        raise DataError(
            f"{NAME}.data: the mnist1d package cannot be imported (got {err}); install it with `pip install mnist1d`"
        ) from None
    args = get_dataset_args()
    args.seed = data_seed
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return {k: np.asarray(data[k]) for k in ("x", "y", "x_test", "y_test")}


def _mnist1d_version() -> str:
    try:
        return importlib.metadata.version("mnist1d")
    except importlib.metadata.PackageNotFoundError:
        return "absent"


RAW_INPUT = "MNIST-1D signal value (x [N, 40, 1]: one feature per step)"


def encoder_for(thresholds: Any, start: str, n_steps: int | None = 40) -> InputEncoder:
    """The task's input code with these thresholds (what a checkpoint records)."""
    return InputEncoder("level-crossing", 1, thresholds, start=start, n_steps=n_steps, raw=RAW_INPUT)


def _raw(n_k: int, data_seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Raw signals and labels plus the thresholds fitted to them, from the cache or generated."""
    # The package version is part of the key: a new mnist1d release may generate other data.
    key = _cache.cache_key(NAME, {"n_thresholds": n_k, "data_seed": data_seed, "mnist1d": _mnist1d_version()})
    expected = {"x": ("f", 2), "x_test": ("f", 2), "y": ("i", 1), "y_test": ("i", 1), "thresholds": ("f", 1)}
    arrays = _cache.load_cached(NAME, key, expected)
    if arrays is not None and (
        arrays["thresholds"].shape == (n_k,)
        and arrays["x"].shape[0] == arrays["y"].shape[0]
        and arrays["x_test"].shape[0] == arrays["y_test"].shape[0]
        and arrays["x"].shape[1:] == arrays["x_test"].shape[1:]
    ):
        return {k: arrays[k] for k in ("x", "x_test", "y", "y_test")}, arrays["thresholds"]
    raw = _generate(data_seed)
    raw = {"x": raw["x"].astype(np.float64), "x_test": raw["x_test"].astype(np.float64),
           "y": raw["y"].astype(np.int64), "y_test": raw["y_test"].astype(np.int64)}
    fitted = quantile_thresholds(raw["x"], n_k)
    _cache.save_cached(NAME, key, {**raw, "thresholds": fitted})
    return raw, fitted


def load(params: dict[str, Any]) -> Task:
    """The task; with ``params["thresholds"]`` (a model's record) those thresholds are the encoder.

    Without recorded thresholds (training a new model) they are fitted to the training
    signals. With them, the data are checked on the spikes (:func:`recorded_thresholds`).
    """
    p = check_known(NAME, params, DEFAULTS)
    n_k = check_int(NAME, "n_thresholds", p["n_thresholds"], 1, 1024)
    start = check_choice(NAME, "start", p["start"], START_MODES)
    data_seed = check_int(NAME, "data_seed", p["data_seed"], 0, 2**32 - 1)
    resolved = {"n_thresholds": n_k, "start": start, "data_seed": data_seed}

    raw, fitted = _raw(n_k, data_seed)
    th = recorded_thresholds(
        NAME, p["thresholds"], fitted, {"train": raw["x"], "test": raw["x_test"]},
        lambda x, t: level_crossing(x, t, start=start),
        f"mnist1d {_mnist1d_version()} generates other signals than the release the model was trained with "
        "(see its JSON 'versions'); install that release (`pip install mnist1d==VERSION`), or retrain",
    )
    enc = encoder_for(th, start, int(raw["x"].shape[1]))
    return Task(
        name=NAME,
        train=Split.from_spikes(enc.encode(raw["x"][:, :, None]), raw["y"]),
        test=Split.from_spikes(enc.encode(raw["x_test"][:, :, None]), raw["y_test"]),
        n_classes=10,
        readout_mode="mean",
        params={**resolved, "thresholds": [float(v) for v in th]},
        encoder=enc,
    )
