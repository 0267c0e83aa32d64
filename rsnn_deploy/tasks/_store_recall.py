"""Store-recall: a generated delayed-memory task, to probe memory longer than any time constant.

Timeline of one sample (``T = lead + cue_steps + delay + cue_steps + tail``)::

    | lead | STORE + value v | delay: noise (+ distractor values) | RECALL | tail |
      t=0    t=lead                                                           t=T-1

- **value channels**: ``n_values`` populations of ``pop_size`` channels; value ``v``'s
  population fires on every channel at every step of the store window.
- **store cue** / **recall cue**: ``pop_size`` channels each, all firing during the store
  window / the recall window.
- **distractors** (``n_distractors``, default 0): value-population bursts of
  ``cue_steps`` steps with random values at random times inside the delay, *without* a
  store cue; the network must ignore them (only the value shown with STORE counts).
- **noise**: every channel (value, cue, and ``n_noise_channels`` pure-noise channels)
  additionally spikes with probability ``noise_rate`` per step (Bernoulli, seeded).

The label is the stored value ``v`` in ``[0, n_values)``; ``readout_mode = "last"``: the
answer is read ``tail`` steps after the recall cue ends (room for input latency, e.g. the
2-step host-input latency of loihi1). Because noise only adds spikes, the stored value is
always the one population fully active throughout the store window.

Channel layout: ``[values (n_values * pop_size), store (pop_size), recall (pop_size),
noise (n_noise_channels)]``.

Everything derives from ``seed`` (train and test from independent child streams of
``numpy.random.SeedSequence(seed)``): same params, same spikes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rsnn_deploy.errors import ValidationError
from rsnn_deploy.tasks._params import check_float, check_int, check_known
from rsnn_deploy.tasks._split import Split, Task
from rsnn_deploy.tasks.input_encoder import InputEncoder

NAME = "store-recall"
DEFAULTS: dict[str, Any] = {
    "n_train": 2000,
    "n_test": 500,
    "delay": 100,
    "n_values": 2,
    "pop_size": 4,
    "cue_steps": 4,
    "lead": 2,
    "tail": 5,
    "noise_rate": 0.01,
    "n_noise_channels": 4,
    "n_distractors": 0,
}


def _generate(rng: np.random.Generator, n: int, p: dict[str, int | float]) -> tuple[np.ndarray, np.ndarray]:
    n_values, pop, cue, delay = int(p["n_values"]), int(p["pop_size"]), int(p["cue_steps"]), int(p["delay"])
    lead, n_dis = int(p["lead"]), int(p["n_distractors"])
    n_steps = lead + cue + delay + cue + int(p["tail"])
    n_ch = n_values * pop + 2 * pop + int(p["n_noise_channels"])
    store_ch = slice(n_values * pop, n_values * pop + pop)
    recall_ch = slice(n_values * pop + pop, n_values * pop + 2 * pop)

    labels = rng.integers(0, n_values, size=n, dtype=np.int64)
    x = (rng.random((n, n_steps, n_ch)) < float(p["noise_rate"])).astype(np.uint8)
    t_store, t_recall = lead, lead + cue + delay
    x[:, t_store : t_store + cue, store_ch] = 1
    x[:, t_recall : t_recall + cue, recall_ch] = 1
    value_ch = labels[:, None] * pop + np.arange(pop)  # [n, pop]
    rows = np.arange(n)[:, None, None]
    steps = np.arange(t_store, t_store + cue)[None, :, None]
    x[rows, steps, value_ch[:, None, :]] = 1
    if n_dis:
        # Onsets anywhere a whole burst fits inside the delay; bursts may overlap.
        onsets = t_store + cue + rng.integers(0, delay - cue + 1, size=(n, n_dis))
        values = rng.integers(0, n_values, size=(n, n_dis))
        for j in range(n_dis):
            d_ch = values[:, j, None] * pop + np.arange(pop)
            d_steps = onsets[:, j, None] + np.arange(cue)  # [n, cue]
            x[rows, d_steps[:, :, None], d_ch[:, None, :]] = 1
    return x, labels


def load(params: dict[str, Any], seed: int) -> Task:
    p = check_known(NAME, params, DEFAULTS)
    r: dict[str, Any] = {
        "n_train": check_int(NAME, "n_train", p["n_train"], 1, 10**7),
        "n_test": check_int(NAME, "n_test", p["n_test"], 1, 10**7),
        "delay": check_int(NAME, "delay", p["delay"], 0, 10**6),
        "n_values": check_int(NAME, "n_values", p["n_values"], 2, 1024),
        "pop_size": check_int(NAME, "pop_size", p["pop_size"], 1, 1024),
        "cue_steps": check_int(NAME, "cue_steps", p["cue_steps"], 1, 10**4),
        "lead": check_int(NAME, "lead", p["lead"], 0, 10**4),
        "tail": check_int(NAME, "tail", p["tail"], 1, 10**4),
        "noise_rate": check_float(NAME, "noise_rate", p["noise_rate"], 0.0, 0.5),
        "n_noise_channels": check_int(NAME, "n_noise_channels", p["n_noise_channels"], 0, 10**4),
        "n_distractors": check_int(NAME, "n_distractors", p["n_distractors"], 0, 10**4),
    }
    if r["n_distractors"] and r["delay"] < r["cue_steps"]:
        raise ValidationError(
            f"{NAME}.delay: too short for a distractor burst of cue_steps={r['cue_steps']} steps "
            f"(got {r['delay']}); use delay >= cue_steps or n_distractors=0"
        )
    seed = check_int(NAME, "seed", seed, 0, 2**63 - 1)
    train_ss, test_ss = np.random.SeedSequence(seed).spawn(2)
    x, y = _generate(np.random.default_rng(train_ss), r["n_train"], r)
    x_test, y_test = _generate(np.random.default_rng(test_ss), r["n_test"], r)
    return Task(
        name=NAME,
        train=Split.from_spikes(x, y),
        test=Split.from_spikes(x_test, y_test),
        n_classes=r["n_values"],
        readout_mode="last",
        params={**r, "seed": seed},
        encoder=InputEncoder("spikes", x.shape[2], n_steps=x.shape[1], raw="0/1 spikes (store-recall's own code)"),
    )
