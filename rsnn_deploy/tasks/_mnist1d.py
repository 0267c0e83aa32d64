"""MNIST-1D (Greydanus 2020), generated locally, level-crossing encoded.

The data come from ``mnist1d.data.make_dataset(get_dataset_args())``: 4000 train /
1000 test signals of 40 steps, 10 classes. ``make_dataset`` only computes (unlike
``mnist1d.get_dataset``, which may download a pickle and would unpickle it: never used
here). It seeds numpy's *global* RNG; we restore the global state afterwards so that
loading a task never changes the random numbers of the caller.

Encoding: :func:`~rsnn_deploy.tasks.encoders.level_crossing` with ``n_thresholds``
thresholds at the quantiles of the training values (pooled over samples and steps),
one up and one down channel each (64 channels by default), ``start="floor"``
(t = 0 carries the starting level as a burst of up spikes, so the code is lossless up to
quantization). MEASURED.md: this input beat a thermometer code and direct current by
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
from rsnn_deploy.tasks._params import check_choice, check_int, check_known, check_thresholds
from rsnn_deploy.tasks._split import Split, Task
from rsnn_deploy.tasks.encoders import START_MODES, level_crossing, quantile_thresholds

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


def load(params: dict[str, Any]) -> Task:
    p = check_known(NAME, params, DEFAULTS)
    n_k = check_int(NAME, "n_thresholds", p["n_thresholds"], 1, 1024)
    start = check_choice(NAME, "start", p["start"], START_MODES)
    data_seed = check_int(NAME, "data_seed", p["data_seed"], 0, 2**32 - 1)
    resolved = {"n_thresholds": n_k, "start": start, "data_seed": data_seed}

    # The package version is part of the key: a new mnist1d release may generate other data.
    key = _cache.cache_key(NAME, {**resolved, "mnist1d": _mnist1d_version()})
    expected = {
        "train": ("u", 3),
        "test": ("u", 3),
        "y": ("i", 1),
        "y_test": ("i", 1),
        "thresholds": ("f", 1),
    }
    arrays = _cache.load_cached(NAME, key, expected)
    n_ch = 2 * n_k
    if arrays is not None:
        ok = (
            arrays["thresholds"].shape == (n_k,)
            and arrays["train"].shape[0] == arrays["y"].shape[0]
            and arrays["test"].shape[0] == arrays["y_test"].shape[0]
        )
        if ok:
            train = np.unpackbits(arrays["train"], axis=-1, count=n_ch)
            test = np.unpackbits(arrays["test"], axis=-1, count=n_ch)
            y, y_test, th = arrays["y"], arrays["y_test"], arrays["thresholds"]
        else:
            arrays = None
    if arrays is None:
        raw = _generate(data_seed)
        th = quantile_thresholds(raw["x"], n_k)
        train = level_crossing(raw["x"], th, start=start)
        test = level_crossing(raw["x_test"], th, start=start)
        y, y_test = raw["y"].astype(np.int64), raw["y_test"].astype(np.int64)
        _cache.save_cached(
            NAME,
            key,
            {
                "train": np.packbits(train, axis=-1),
                "test": np.packbits(test, axis=-1),
                "y": y,
                "y_test": y_test,
                "thresholds": th,
            },
        )
    check_thresholds(NAME, p["thresholds"], th)
    return Task(
        name=NAME,
        train=Split.from_spikes(train, y),
        test=Split.from_spikes(test, y_test),
        n_classes=10,
        readout_mode="mean",
        params={**resolved, "thresholds": [float(v) for v in th]},
    )
