"""Tests of rsnn_deploy.tasks: deterministic spikes, encoder semantics, cache, validation."""

from __future__ import annotations

import gzip
import json
import random
import warnings
from pathlib import Path

import numpy as np
import pytest

from rsnn_deploy.errors import DataError, ValidationError
from rsnn_deploy.tasks import TASK_NAMES, Split, _cache, _mnist1d, load_task, split_validation
from rsnn_deploy.tasks.encoders import (
    decode_level_crossing,
    even_thresholds,
    level_crossing,
    levels,
    quantile_thresholds,
    thermometer,
)

needs_fashion = pytest.mark.requires("fashion-mnist")  # tests/conftest.py: skips naming the Debian package
SMALL_SR = {"n_train": 64, "n_test": 32, "delay": 20}


def assert_binary(x: np.ndarray) -> None:
    assert x.dtype == np.uint8
    assert np.isin(x, (0, 1)).all()


# --------------------------------------------------------------------------- encoders


def test_level_crossing_by_hand() -> None:
    th = np.array([0.5, 1.5, 2.5])
    # levels: 0, 1, 3, 3, 2, 1 (0.5 reaches threshold 0.5), 0
    x = np.array([[0.0, 1.0, 3.0, 3.0, 2.0, 0.5, 0.4]])
    # channels: up0 up1 up2 down0 down1 down2
    expected = np.array(
        [
            [0, 0, 0, 0, 0, 0],  # t=0: below all thresholds, as the floor start assumes
            [1, 0, 0, 0, 0, 0],  # 0 -> 1 crosses th0 upward
            [0, 1, 1, 0, 0, 0],  # 1 -> 3 crosses th1 and th2 in one step
            [0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 1],  # 3 -> 2: th2 downward
            [0, 0, 0, 0, 1, 0],  # 2 -> 1 (0.5 is exactly th0: still reached)
            [0, 0, 0, 1, 0, 0],  # 1 -> 0
        ],
        dtype=np.uint8,
    )
    np.testing.assert_array_equal(level_crossing(x, th)[0], expected)
    np.testing.assert_array_equal(level_crossing(x, th, start="hold")[0], expected)


def test_level_crossing_start_modes() -> None:
    th = np.array([0.5, 1.5, 2.5])
    x = np.array([[2.0, 2.0, 0.0]])
    floor = level_crossing(x, th, start="floor")[0]
    hold = level_crossing(x, th, start="hold")[0]
    # floor: t=0 carries the starting level (2) as up spikes on th0 and th1
    np.testing.assert_array_equal(floor[0], [1, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(hold[0], [0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(floor[1:], hold[1:])
    np.testing.assert_array_equal(floor[2], [0, 0, 0, 1, 1, 0])


def test_level_crossing_layout_per_feature_and_decode() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 30, 3))
    th = quantile_thresholds(x.reshape(-1, 3), 4, axis=0)
    assert th.shape == (3, 4)
    s = level_crossing(x, th)
    assert s.shape == (5, 30, 3 * 8)
    assert_binary(s)
    # feature d owns channels [8d, 8d+8): encoding it alone gives the same block
    np.testing.assert_array_equal(s[:, :, 8:16], level_crossing(x[:, :, 1], th[1]))
    # lossless up to quantization: the running sum of up - down is the level
    np.testing.assert_array_equal(decode_level_crossing(s, 4), levels(x, th))
    # at most one of up/down per threshold and step
    blocks = s.reshape(5, 30, 3, 2, 4)
    assert not (blocks[..., 0, :] & blocks[..., 1, :]).any()


def test_level_crossing_rejects_bad_input() -> None:
    with pytest.raises(ValidationError, match=r"level_crossing\.thresholds: must be sorted"):
        level_crossing(np.zeros((1, 3)), np.array([1.0, 0.0]))
    with pytest.raises(ValidationError, match=r"level_crossing\.start"):
        level_crossing(np.zeros((1, 3)), np.array([0.0]), start="zero")


def test_thermometer_and_even_thresholds() -> None:
    np.testing.assert_allclose(even_thresholds(3), [0.25, 0.5, 0.75])
    out = thermometer(np.array([[[0.0, 0.5, 1.0]]]), even_thresholds(3))
    np.testing.assert_array_equal(out[0, 0], [0, 0, 0, 1, 1, 0, 1, 1, 1])


# --------------------------------------------------------------------------- Split


def _toy_split(n: int = 10) -> Split:
    spikes = (np.arange(n * 4 * 3).reshape(n, 4, 3) % 2).astype(np.uint8)
    return Split.from_spikes(spikes, np.arange(n) % 3)


def test_split_indexing_and_subset() -> None:
    split = _toy_split()
    full = split.spikes()
    assert full.shape == (10, 4, 3) and len(split) == 10
    np.testing.assert_array_equal(split.spikes(np.array([3, 1])), full[[3, 1]])
    np.testing.assert_array_equal(split.spikes(slice(2, 5)), full[2:5])
    np.testing.assert_array_equal(split.spikes(np.arange(10) % 2 == 0), full[::2])
    sub = split.subset(np.array([7, 8, 9]))
    np.testing.assert_array_equal(sub.spikes(), full[7:])
    np.testing.assert_array_equal(sub.labels, split.labels[7:])
    assert len(split.subset(np.arange(0))) == 0
    assert split.subset(np.arange(0)).spikes().shape == (0, 4, 3)
    # results are fresh arrays: changing one never changes the split
    full[:] = 7
    assert split.spikes().max() <= 1
    with pytest.raises(IndexError, match="out of range"):
        split.spikes(np.array([10]))


def test_split_validation_is_deterministic_and_disjoint() -> None:
    split = _toy_split(50)
    tr, va = split_validation(split, 0.2, seed=3)
    _, va2 = split_validation(split, 0.2, seed=3)
    assert (len(tr), len(va)) == (40, 10)
    np.testing.assert_array_equal(va.rows, va2.rows)
    assert not set(tr.rows) & set(va.rows) and len(set(tr.rows) | set(va.rows)) == 50
    assert not np.array_equal(split_validation(split, 0.2, seed=4)[1].rows, va.rows)
    for bad in (0.0, 1.0, 0.001):
        with pytest.raises(ValidationError, match=r"split_validation\.fraction"):
            split_validation(split, bad, seed=0)


def test_unknown_task_and_param() -> None:
    with pytest.raises(ValidationError, match=r"load_task\.name: unknown task \(got 'mnist2d'\)"):
        load_task("mnist2d")
    with pytest.raises(ValidationError, match=r"store-recall\.dealy: unknown parameter .*accepts"):
        load_task("store-recall", dealy=5)
    with pytest.raises(ValidationError, match=r"store-recall\.delay: must be an integer"):
        load_task("store-recall", delay=-1)
    assert TASK_NAMES == ("mnist1d", "sfmnist-row", "sfmnist-pixel", "store-recall", "npz")


# --------------------------------------------------------------------------- store-recall


def test_store_recall_deterministic_and_seeded() -> None:
    a = load_task("store-recall", seed=1, **SMALL_SR)
    b = load_task("store-recall", seed=1, **SMALL_SR)
    c = load_task("store-recall", seed=2, **SMALL_SR)
    np.testing.assert_array_equal(a.train.spikes(), b.train.spikes())
    np.testing.assert_array_equal(a.test.labels, b.test.labels)
    assert not np.array_equal(a.train.spikes(), c.train.spikes())
    rebuilt = load_task(a.name, **json.loads(json.dumps(a.params)))
    np.testing.assert_array_equal(rebuilt.test.spikes(), a.test.spikes())


@pytest.mark.parametrize("extra", [{}, {"n_values": 4, "n_distractors": 3, "noise_rate": 0.05}])
def test_store_recall_labels_match_the_stored_value(extra: dict) -> None:
    task = load_task("store-recall", seed=0, **SMALL_SR, **extra)
    p = task.params
    pop, n_values, cue, lead = p["pop_size"], p["n_values"], p["cue_steps"], p["lead"]
    assert task.readout_mode == "last" and task.n_classes == n_values
    assert task.n_steps == lead + 2 * cue + p["delay"] + p["tail"]
    assert task.n_channels == (n_values + 2) * pop + p["n_noise_channels"]
    x = task.train.spikes()
    assert_binary(x)
    assert set(np.unique(task.train.labels)) <= set(range(n_values))
    window = x[:, lead : lead + cue]  # store window
    store_ch = slice(n_values * pop, (n_values + 1) * pop)
    assert window[:, :, store_ch].all()
    fully_on = window[:, :, : n_values * pop].reshape(len(x), cue, n_values, pop).all(axis=(1, 3))
    np.testing.assert_array_equal(fully_on.argmax(1), task.train.labels)
    assert (fully_on.sum(1) == 1).all()
    t_recall = lead + cue + p["delay"]
    assert x[:, t_recall : t_recall + cue, store_ch.stop : store_ch.stop + pop].all()
    assert task.n_steps - (t_recall + cue) == p["tail"] >= 1


# --------------------------------------------------------------------------- mnist1d


def _fake_mnist1d(data_seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(data_seed)
    return {
        "x": rng.normal(size=(30, 40)),
        "y": rng.integers(0, 10, 30),
        "x_test": rng.normal(size=(10, 40)),
        "y_test": rng.integers(0, 10, 10),
    }


@pytest.fixture(scope="module")
def mnist1d_task(tmp_path_factory: pytest.TempPathFactory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(_cache.CACHE_ENV, str(tmp_path_factory.mktemp("cache")))
        np.random.seed(123)
        random.seed(123)
        before = (np.random.random(), random.random())
        np.random.seed(123)
        random.seed(123)
        task = load_task("mnist1d")
        after = (np.random.random(), random.random())
        yield task, before, after


def test_mnist1d_real(mnist1d_task) -> None:
    task, before, after = mnist1d_task
    assert before == after, "loading mnist1d changed the caller's global RNG state"
    assert (len(task.train), len(task.test), task.n_steps, task.n_channels) == (4000, 1000, 40, 64)
    x = task.train.spikes(np.arange(500))
    assert_binary(x)
    assert task.train.labels.min() == 0 and task.train.labels.max() == 9
    assert task.readout_mode == "mean" and task.n_classes == 10
    assert len(task.params["thresholds"]) == 32
    # rebuilt from JSON params: identical (here from the cache written by the first load)
    rebuilt = load_task("mnist1d", **json.loads(json.dumps(task.params)))
    np.testing.assert_array_equal(rebuilt.test.spikes(), task.test.spikes())


def test_mnist1d_cache_round_trip_and_corruption(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_cache.CACHE_ENV, str(tmp_path))
    calls: list[int] = []

    def fake(data_seed: int) -> dict[str, np.ndarray]:
        calls.append(data_seed)
        return _fake_mnist1d(data_seed)

    monkeypatch.setattr(_mnist1d, "_generate", fake)
    first = load_task("mnist1d", n_thresholds=5)
    files = list(tmp_path.glob("mnist1d-*.npz"))
    assert len(files) == 1 and calls == [42]
    assert not list(tmp_path.glob(".*tmp")), "temporary file left behind"
    with np.load(files[0], allow_pickle=False) as npz:  # plain arrays, no pickles
        assert set(npz.files) >= {"x", "x_test", "y", "y_test", "thresholds", "cache_key"}  # raw signals

    second = load_task("mnist1d", n_thresholds=5)
    assert calls == [42], "cache hit must not regenerate"
    np.testing.assert_array_equal(first.train.spikes(), second.train.spikes())
    np.testing.assert_array_equal(first.test.labels, second.test.labels)
    assert first.params == second.params

    for garbage in (b"not a zip file", files[0].read_bytes()[:100]):
        files[0].write_bytes(garbage)
        with pytest.warns(RuntimeWarning, match="unusable cache file"):
            third = load_task("mnist1d", n_thresholds=5)
        np.testing.assert_array_equal(first.train.spikes(), third.train.spikes())
    assert calls == [42, 42, 42]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_task("mnist1d", n_thresholds=5)  # the rewritten file is valid again
    assert len(calls) == 3

    other = load_task("mnist1d", n_thresholds=5, data_seed=7)  # other params: other key
    assert calls[-1] == 7 and len(list(tmp_path.glob("mnist1d-*.npz"))) == 2
    assert not np.array_equal(other.train.spikes(), first.train.spikes())
    with pytest.raises(DataError, match=r"mnist1d\.thresholds: the rebuilt data no longer give the model's input "
                       r"spikes \(train sample 0, step 0, channel \d+: \d with the recorded encoder, \d with one "
                       r"fitted to these data; threshold \d: recorded \d\.0, fitted -?\d"):
        load_task("mnist1d", n_thresholds=5, thresholds=[0, 1, 2, 3, 4])
    with pytest.raises(ValidationError, match=r"mnist1d\.thresholds: must be \[5\] numbers"):
        load_task("mnist1d", n_thresholds=5, thresholds=[0, 1])


def test_mnist1d_recorded_thresholds_are_the_encoder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Thresholds a few ulp away from the refitted ones (another CPU) load silently and encode as recorded."""
    monkeypatch.setenv(_cache.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(_mnist1d, "_generate", _fake_mnist1d)
    fresh = load_task("mnist1d", n_thresholds=5)
    recorded = np.asarray(fresh.params["thresholds"])
    nudged = recorded + np.spacing(recorded) * np.array([3, -2, 0, 4, -1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = load_task("mnist1d", n_thresholds=5, thresholds=nudged.tolist())
    assert again.params["thresholds"] == nudged.tolist()  # used as recorded, not replaced by the fit
    assert np.array_equal(again.encoder.thresholds, nudged)
    np.testing.assert_array_equal(again.train.spikes(), fresh.train.spikes())
    np.testing.assert_array_equal(again.test.spikes(), fresh.test.spikes())


def test_mnist1d_unwritable_cache_only_warns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv(_cache.CACHE_ENV, str(blocker / "sub"))  # a dir below a file cannot exist
    monkeypatch.setattr(_mnist1d, "_generate", _fake_mnist1d)
    with pytest.warns(RuntimeWarning, match="cannot write cache"):
        task = load_task("mnist1d", n_thresholds=3)
    assert task.n_channels == 6


# --------------------------------------------------------------------------- Fashion-MNIST


def _write_idx(path: Path, arr: np.ndarray, magic: bytes | None = None) -> None:
    header = magic or bytes([0, 0, 8, arr.ndim])
    dims = np.array(arr.shape, dtype=">u4").tobytes()
    path.write_bytes(gzip.compress(header + dims + arr.astype(np.uint8).tobytes()))


def _fake_fashion(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for part, n in (("train", 6), ("t10k", 4)):
        _write_idx(tmp_path / f"{part}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(tmp_path / f"{part}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    return tmp_path


def test_fashion_missing_dir_message(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    for name in ("sfmnist-row", "sfmnist-pixel"):
        with pytest.raises(DataError) as err:
            load_task(name, data_dir=missing)
        msg = str(err.value)
        assert "\n" not in msg and msg.startswith(f"{name}.data_dir:")
        for part in (str(missing), "dataset-fashion-mnist", "apt-get install dataset-fashion-mnist", "--data-dir"):
            assert part in msg


def test_fashion_idx_validation(tmp_path: Path) -> None:
    d = _fake_fashion(tmp_path)
    (d / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz not found"):
        load_task("sfmnist-row", data_dir=d)
    _write_idx(d / "t10k-labels-idx1-ubyte.gz", np.zeros(4), magic=b"\x00\x00\x08\x03")
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz is not a valid IDX file \(got magic"):
        load_task("sfmnist-row", data_dir=d)
    raw = gzip.compress(bytes([0, 0, 8, 1]) + np.array([4], ">u4").tobytes() + b"\x00\x01")  # 2 of 4 bytes
    (d / "t10k-labels-idx1-ubyte.gz").write_bytes(raw)
    with pytest.raises(DataError, match=r"not a valid IDX file \(got 2 data bytes"):
        load_task("sfmnist-pixel", data_dir=d)
    (d / "t10k-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"cannot read .*t10k-labels"):
        load_task("sfmnist-pixel", data_dir=d)


def test_fashion_encoders_on_small_files(tmp_path: Path) -> None:
    d = _fake_fashion(tmp_path)
    row = load_task("sfmnist-row", data_dir=d, levels=2)
    images = row.train.source._raw  # the decoded uint8 images
    x = row.train.spikes()
    assert x.shape == (6, 28, 56)
    assert_binary(x)
    np.testing.assert_array_equal(x, thermometer(images / 255.0, even_thresholds(2)))
    pix = load_task("sfmnist-pixel", data_dir=d, n_thresholds=5)
    s = pix.test.spikes(np.array([2, 0]))
    assert s.shape == (2, 784, 10)
    ref = level_crossing(pix.test.source._raw[[2, 0]].reshape(2, 784) / 255.0, even_thresholds(5))
    np.testing.assert_array_equal(s, ref)
    assert load_task(pix.name, **pix.params).params == pix.params


def test_fashion_row_edges_encoding(tmp_path: Path) -> None:
    """thermometer+edges: the thermometer code, then level crossings down the columns that decode to it."""
    d = _fake_fashion(tmp_path)
    row = load_task("sfmnist-row", data_dir=d, levels=3, encoding="thermometer+edges")
    images = row.train.source._raw
    x = row.train.spikes()
    assert x.shape == (6, 28, 28 * 3 * 3) and row.n_channels == 28 * 9
    assert_binary(x)
    np.testing.assert_array_equal(x[:, :, : 28 * 3], thermometer(images / 255.0, even_thresholds(3)))
    # the edge channels, decoded (start = floor), give back each pixel's level: the count of its thermometer bits
    decoded = decode_level_crossing(x[:, :, 28 * 3 :], 3)
    np.testing.assert_array_equal(decoded, x[:, :, : 28 * 3].reshape(6, 28, 28, 3).sum(-1))
    assert load_task(row.name, **row.params).params == row.params
    with pytest.raises(ValidationError, match="encoding"):
        load_task("sfmnist-row", data_dir=d, encoding="edges")


@needs_fashion
def test_fashion_row_real() -> None:
    task = load_task("sfmnist-row")
    assert (len(task.train), len(task.test), task.n_steps, task.n_channels) == (60000, 10000, 28, 84)
    x = task.train.spikes(np.arange(64))
    assert_binary(x)
    # thermometer: a higher level is only on where the lower one is
    lv = x.reshape(64, 28, 28, 3)
    assert (lv[..., 1:] <= lv[..., :-1]).all()
    assert set(np.unique(task.test.labels)) == set(range(10))
    np.testing.assert_array_equal(task.train.spikes(np.arange(64)), x)


@needs_fashion
def test_fashion_pixel_real() -> None:
    task = load_task("sfmnist-pixel")
    assert (len(task.train), task.n_steps, task.n_channels) == (60000, 784, 80)
    idx = np.array([0, 59999, 17])
    s = task.train.spikes(idx)
    assert_binary(s)
    pixels = task.train.source._raw[idx].reshape(3, 784) / 255.0
    np.testing.assert_array_equal(decode_level_crossing(s, 40)[..., 0], levels(pixels, even_thresholds(40)))
    np.testing.assert_array_equal(task.train.spikes(idx[::-1])[::-1], s)  # batch-independent


# --------------------------------------------------------------------------- npz


def test_npz_spikes_and_split(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = (rng.random((20, 7, 3)) < 0.3).astype(np.int64)
    y = rng.integers(0, 3, 20)
    f = tmp_path / "d.npz"
    np.savez(f, x=x, y=y)
    task = load_task("npz", path=f, seed=5)
    assert task.params["encoding"] == "spikes" and (len(task.train), len(task.test)) == (16, 4)
    assert task.n_channels == 3 and task.n_steps == 7
    together = np.concatenate([task.train.spikes(), task.test.spikes()])
    assert sorted(map(bytes, together)) == sorted(map(bytes, x.astype(np.uint8)))
    again = load_task("npz", **json.loads(json.dumps(task.params)))
    np.testing.assert_array_equal(again.test.spikes(), task.test.spikes())
    other = load_task("npz", path=f, seed=6)  # another seed, another held-out choice
    assert not np.array_equal(other.test.spikes(), task.test.spikes())
    np.savez(f, x=x, y=(y + 1) % 3)  # the file changes: a recorded sha256 refuses it
    with pytest.raises(DataError, match=r"npz\.sha256: .* changed since"):
        load_task("npz", **task.params)


def test_npz_real_values_are_level_crossing_encoded(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x, xt = rng.normal(size=(12, 9, 2)).astype(np.float32), rng.normal(size=(5, 9, 2))
    f = tmp_path / "r.npz"
    np.savez(f, x=x, y=np.arange(12) % 4, x_test=xt, y_test=np.arange(5) % 4)
    task = load_task("npz", path=f, n_thresholds=3, readout_mode="last")
    assert task.params["encoding"] == "level-crossing" and task.n_channels == 2 * 2 * 3
    assert task.readout_mode == "last" and task.n_classes == 4
    th = quantile_thresholds(x.astype(np.float64).reshape(-1, 2), 3, axis=0)
    np.testing.assert_array_equal(task.test.spikes(), level_crossing(xt, th))
    assert np.array_equal(np.asarray(task.params["thresholds"]), th)
    with pytest.raises(ValidationError, match=r"\.x: encoding='spikes' needs values in \{0, 1\}"):
        load_task("npz", path=f, encoding="spikes")


def _bad(tmp_path: Path, **arrays) -> Path:
    f = tmp_path / "bad.npz"
    np.savez(f, **arrays)
    return f


@pytest.mark.parametrize(
    ("arrays", "error", "pattern"),
    [
        ({"x": np.zeros((4, 3, 2))}, ValidationError, r"\]\.y: missing key"),
        ({"x": np.zeros((4, 3)), "y": np.zeros(4, int)}, ValidationError, r"\.x: must have shape \[N, T, C\]"),
        ({"x": np.zeros((4, 3, 2)), "y": np.zeros(5, int)}, ValidationError, r"\.y: must have shape \[N\] = \(4,\)"),
        (
            {"x": np.full((4, 3, 2), np.nan), "y": np.zeros(4, int)},
            ValidationError,
            r"\.x: must be finite \(got nan",
        ),
        ({"x": np.zeros((4, 3, 2)), "y": np.zeros(4)}, ValidationError, r"\.y: labels must be integers"),
        ({"x": np.zeros((4, 3, 2)), "y": -np.ones(4, int)}, ValidationError, r"\.y: labels must be >= 0"),
        ({"x": np.array([[[None]]] * 4), "y": np.zeros(4, int)}, ValidationError, r"\.x: cannot be loaded without"),
        (
            {"x": np.zeros((4, 3, 2)), "y": np.zeros(4, int), "x_test": np.zeros((2, 3, 5))},
            ValidationError,
            r"\.y_test: missing key",
        ),
        (
            {
                "x": np.zeros((4, 3, 2)),
                "y": np.zeros(4, int),
                "x_test": np.zeros((2, 3, 5)),
                "y_test": np.zeros(2, int),
            },
            ValidationError,
            r"\.x_test: must have the \[T, C\] of x",
        ),
    ],
)
def test_npz_validation(tmp_path: Path, arrays: dict, error: type, pattern: str) -> None:
    f = _bad(tmp_path, **arrays)
    with pytest.raises(error, match=pattern) as err:
        load_task("npz", path=f)
    assert str(f) in str(err.value) and "\n" not in str(err.value)


def test_npz_file_problems(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"--data: required"):
        load_task("npz")
    with pytest.raises(DataError, match=r"--data: file not found"):
        load_task("npz", path=tmp_path / "none.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"\x80\x04junk")  # looks like a pickle: must be refused, not loaded
    with pytest.raises(DataError, match=r"not a readable \.npz file"):
        load_task("npz", path=junk)
