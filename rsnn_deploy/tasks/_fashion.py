"""Sequential Fashion-MNIST, row by row (28 steps) and pixel by pixel (784 steps).

The images come from the Debian package ``dataset-fashion-mnist`` (gzipped IDX files in
``/usr/share/datasets/fashion-mnist``), read here with numpy: nothing is downloaded. The
IDX header (magic number, dimensions) is checked against the file size so that a
truncated or foreign file is a ``DataError`` naming it, not garbage training data.

Both tasks keep the raw ``uint8`` images (47 MB for the 60000 training images) and encode
each batch on request: the row code would take 94 MB and the pixel code 3.7 GB as uint8.

``sfmnist-row`` (T = 28, C = 28 * levels)
    Thermometer code per pixel of the current row: channel ``col * levels + l`` is on
    while ``pixel / 255 >= (l + 1) / (levels + 1)``. A row-wise network sees the image as
    its own input current would be, only quantized. Logistic regression on the flattened
    code (10 epochs Adam) scored 79.5 / 81.9 / 83.1 / 84.0 % test for levels = 1 / 2 / 3 / 4
    against 84.5 % on raw pixels: ``levels = 3`` (84 channels) is the default. Level
    crossing alone was not chosen: with 28 steps a neuron would have to integrate edges back
    into intensities. ``encoding = "thermometer+edges"`` adds it to the thermometer code:
    ``28 * 2 * levels`` more channels that spike where a pixel's level rose or fell since the
    row above.
``sfmnist-pixel`` (T = 784, C = 2 * n_thresholds)
    LSNN-style: one pixel per step (row-major), level crossing with ``n_thresholds``
    thresholds evenly spaced in (0, 1), an up and a down channel each (80 channels by
    default), ``start="floor"`` (the first pixel is background in practice, so t = 0 is
    quiet either way).

``seed`` of :func:`load_task` does not change these tasks (fixed data, deterministic code).
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from rsnn_deploy.errors import DataError
from rsnn_deploy.tasks._params import check_choice, check_int, check_known
from rsnn_deploy.tasks._split import EncodedSource, Split, Task
from rsnn_deploy.tasks.encoders import START_MODES, crossings, even_thresholds, levels, thermometer
from rsnn_deploy.tasks.input_encoder import InputEncoder

DEFAULT_DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_IDX_UBYTE = 0x08


def _find(data_dir: Path, stem: str, task: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (data_dir / name).is_file():
            return data_dir / name
    raise DataError(
        f"{task}.data_dir: Fashion-MNIST file {stem}.gz not found in {data_dir} (got {data_dir}); "
        "install the Debian package dataset-fashion-mnist (`apt-get install dataset-fashion-mnist`) "
        "or pass --data-dir DIR pointing at the four IDX files"
    )


def read_idx(path: Path, shape_tail: tuple[int, ...], owner: str) -> np.ndarray:
    """A ``uint8`` IDX file (optionally gzipped) as an array ``[N, *shape_tail]``.

    IDX: 2 zero bytes, a type byte (0x08 = unsigned byte), the number of dimensions ``d``,
    ``d`` big-endian uint32 sizes, then the data in C order.
    """
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise DataError(f"{owner}: cannot read {path} (got {err}); reinstall dataset-fashion-mnist") from None
    ndim = 1 + len(shape_tail)
    header = 4 + 4 * ndim
    problem = None
    if len(raw) < header:
        problem = f"{len(raw)} bytes, shorter than an IDX header"
    elif raw[0] != 0 or raw[1] != 0 or raw[2] != _IDX_UBYTE or raw[3] != ndim:
        problem = f"magic {raw[:4].hex()}, expected 0000{_IDX_UBYTE:02x}{ndim:02x}"
    else:
        dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
        if dims[1:] != shape_tail:
            problem = f"dimensions {dims}, expected (N, {', '.join(map(str, shape_tail))})"
        elif len(raw) != header + int(np.prod(dims)):
            problem = f"{len(raw) - header} data bytes for dimensions {dims}"
    if problem is not None:
        raise DataError(f"{owner}: {path} is not a valid IDX file (got {problem}); reinstall dataset-fashion-mnist")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def read_fashion(data_dir: Path, task: str) -> dict[str, np.ndarray]:
    """Images ``uint8 [N, 28, 28]`` and labels ``int64 [N]`` of both splits."""
    if not data_dir.is_dir():
        raise DataError(
            f"{task}.data_dir: Fashion-MNIST directory {data_dir} does not exist (got {data_dir}); "
            "install the Debian package dataset-fashion-mnist (`apt-get install dataset-fashion-mnist`) "
            "or pass --data-dir DIR pointing at the four IDX files"
        )
    out: dict[str, np.ndarray] = {}
    for key, stem in FILES.items():
        tail: tuple[int, ...] = (28, 28) if key.endswith("images") else ()
        out[key] = read_idx(_find(data_dir, stem, task), tail, f"{task}.data_dir")
    for part in ("train", "test"):
        images, labels = out[f"{part}_images"], out[f"{part}_labels"]
        if images.shape[0] != labels.shape[0] or labels.max(initial=0) > 9:
            raise DataError(
                f"{task}.data_dir: {part} files in {data_dir} disagree (got {images.shape[0]} images, "
                f"{labels.shape[0]} labels, max label {labels.max(initial=0)}); "
                "reinstall dataset-fashion-mnist"
            )
        out[f"{part}_labels"] = labels.astype(np.int64)
    return out


def _resolve_dir(data_dir: Any) -> Path:
    return (DEFAULT_DATA_DIR if data_dir is None else Path(data_dir).expanduser()).resolve()


ROW_ENCODINGS = ("thermometer", "thermometer+edges")


def row_encoder(n_levels: int, encoding: str) -> InputEncoder:
    """sfmnist-row's code on raw ``pixel / 255`` rows (the lookup tables below give the same spikes)."""
    return InputEncoder(encoding, 28, even_thresholds(n_levels), n_steps=28,
                        raw="pixel / 255 in [0, 1] (x [N, 28, 28]: one image row per step)")


def pixel_encoder(n_thresholds: int, start: str) -> InputEncoder:
    """sfmnist-pixel's code on raw ``pixel / 255`` values, one pixel per step in row-major order."""
    return InputEncoder("level-crossing", 1, even_thresholds(n_thresholds), start=start, n_steps=784,
                        raw="pixel / 255 in [0, 1] (x [N, 784, 1]: one pixel per step, row-major)")


def load_row(params: dict[str, Any]) -> Task:
    name = "sfmnist-row"
    p = check_known(name, params, {"data_dir": None, "levels": 3, "encoding": "thermometer"})
    n_levels = check_int(name, "levels", p["levels"], 1, 255)
    encoding = check_choice(name, "encoding", p["encoding"], ROW_ENCODINGS)
    data_dir = _resolve_dir(p["data_dir"])
    data = read_fashion(data_dir, name)
    # Lookup tables built by the encoders themselves from all 256 pixel values: identical to
    # thermometer(images / 255, th) and levels(images / 255, th), about 5x faster.
    th = even_thresholds(n_levels)
    lut = thermometer((np.arange(256) / 255.0)[None, None, :], th)[0, 0].reshape(256, n_levels)
    level_lut = levels(np.arange(256) / 255.0, th)
    edges = encoding == "thermometer+edges"
    n_channels = 28 * n_levels * (3 if edges else 1)

    def encode(images: np.ndarray) -> np.ndarray:
        code = lut[images].reshape(images.shape[0], 28, 28 * n_levels)
        if not edges:
            return code
        # + where each pixel's level rose or fell since the row above (level crossing down the
        # columns), so that vertical edges arrive as spikes instead of as differences to compute
        rows_changes = crossings(level_lut[images], n_levels, start="floor")
        return np.concatenate([code, rows_changes.astype(code.dtype)], axis=2)

    def split(part: str) -> Split:
        source = EncodedSource(data[f"{part}_images"], encode, 28, n_channels)
        return Split.from_source(source, data[f"{part}_labels"])

    return Task(
        name=name,
        train=split("train"),
        test=split("test"),
        n_classes=10,
        readout_mode="mean",
        params={"data_dir": str(data_dir), "levels": n_levels, "encoding": encoding},
        encoder=row_encoder(n_levels, encoding),
    )


def load_pixel(params: dict[str, Any]) -> Task:
    name = "sfmnist-pixel"
    p = check_known(name, params, {"data_dir": None, "n_thresholds": 40, "start": "floor"})
    n_k = check_int(name, "n_thresholds", p["n_thresholds"], 1, 255)
    start = check_choice(name, "start", p["start"], START_MODES)
    data_dir = _resolve_dir(p["data_dir"])
    data = read_fashion(data_dir, name)
    # Pixel value -> level table from the encoder's own ``levels``: identical to
    # level_crossing(images / 255, th), without a float comparison per threshold.
    lut = levels(np.arange(256) / 255.0, even_thresholds(n_k))

    def encode(images: np.ndarray) -> np.ndarray:
        return crossings(lut[images.reshape(images.shape[0], 784, 1)], n_k, start=start)

    def split(part: str) -> Split:
        source = EncodedSource(data[f"{part}_images"], encode, 784, 2 * n_k)
        return Split.from_source(source, data[f"{part}_labels"])

    return Task(
        name=name,
        train=split("train"),
        test=split("test"),
        n_classes=10,
        readout_mode="mean",
        params={"data_dir": str(data_dir), "n_thresholds": n_k, "start": start},
        encoder=pixel_encoder(n_k, start),
    )
