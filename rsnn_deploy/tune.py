"""Hyper-parameter search for RSNN variants with Optuna (the public face of :mod:`rsnn_deploy.tuning`).

Zeng et al. (ICONS 2022) tune the neuron parameters anew at every step of their
experiment (recurrence, then synapse, then adaptation), so that each variant is
compared at its best rather than at someone else's settings. This module does that for
one variant per study:

- the search space comes from a TOML file (``configs/search_space.toml``), validated up
  front, so every worker of a study searches the same ranges;
- each trial trains with :func:`rsnn_deploy.train.train` into ``OUT/trials/NNNN`` and
  reports its validation accuracy per epoch, so a ``MedianPruner`` stops weak trials;
- the objective is validation accuracy (float model) or, with ``objective="emulated"``,
  the accuracy of the quantized model on a profile's integer emulator; optionally a second
  objective (neurons or spikes per sample) gives a Pareto front;
- a study lives in SQLite (``OUT/study.db``) or PostgreSQL; any number of workers join it,
  a killed worker's trial is failed by heartbeat and retried, and the number of finished
  trials is exactly the requested one.

Example
-------
>>> from pathlib import Path
>>> from rsnn_deploy.tasks import load_task
>>> from rsnn_deploy.tune import TuneSettings, load_search_space, run_worker
>>> task = load_task("store-recall", n_train=200, n_test=100)
>>> s = TuneSettings(variant="rec-syn", n_trials=4, study_name="demo", out=Path("runs/demo"),
...                  space=load_search_space(), epochs=2, n_hidden=16)
>>> outcome = run_worker(task, s)          # run the same on another machine to help
>>> outcome.best["params"]                 # doctest: +SKIP
"""

from rsnn_deploy.tuning import *  # noqa: F403
from rsnn_deploy.tuning import __all__  # noqa: F401
