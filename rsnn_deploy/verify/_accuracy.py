"""The short path for hardware-aware tuning: quantize and run the emulator on the validation split."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rsnn_deploy.verify._inputs import evaluation_split, quantize_checkpoint, task_of


def emulated_accuracy(checkpoint_path: str | Path, profile: str, split: str = "val", limit: int | None = None,
                      calib: int = 200, data_dir: str | Path | None = None) -> float:
    """Accuracy of the quantized checkpoint on ``profile``'s integer emulator (hardware-aware tuning).

    ``split='val'`` is the hold-out ``rsnn_deploy.train`` used (``limit``, then
    ``split_validation(train, val_fraction, seed)`` from the checkpoint's train config);
    calibration uses the first ``calib`` samples of the training part.
    """
    from rsnn_deploy.checkpoint import load_checkpoint
    from rsnn_deploy.emulator import run as emulate

    ckpt = load_checkpoint(checkpoint_path)
    task = task_of(ckpt, data_dir)
    data = evaluation_split(task, ckpt.meta, split)
    n = len(data) if limit is None else min(int(limit), len(data))
    qnet, _ = quantize_checkpoint(ckpt, profile, calib, task)
    correct = 0
    for start in range(0, n, 1024):
        idx = np.arange(start, min(n, start + 1024))
        import warnings

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="emulator: states wrapped")
            tr = emulate(qnet, data.spikes(idx))
        correct += int((tr.predictions == data.labels[idx]).sum())
    return correct / max(n, 1)
