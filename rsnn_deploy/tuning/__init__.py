"""Optuna tuning of RSNN variants: search spaces, storages shared by many workers, one worker loop.

Private modules, one concern each (as Optuna's own packages): ``_space`` reads and
validates the search-space file, ``_storage`` opens the database with heartbeats and
provides the cross-worker lock, ``_study`` is the worker loop, ``_report`` writes the
summary files (and the worker's outcome). :mod:`rsnn_deploy.tune` is the public face.
"""

from rsnn_deploy.tuning._report import StudyOutcome, trial_row, write_pareto_png
from rsnn_deploy.tuning._space import (
    APPLIES_WHEN,
    ParamRange,
    SearchSpace,
    default_space_path,
    load_search_space,
    parse_search_space,
)
from rsnn_deploy.tuning._storage import (
    StudyLock,
    check_storage_url,
    default_storage_url,
    open_storage,
    safe_url,
)
from rsnn_deploy.tuning._study import (
    MULTI_OBJECTIVES,
    OBJECTIVES,
    PRUNERS,
    TuneSettings,
    check_settings,
    emulated_fn,
    fit_to_target,
    run_worker,
)

__all__ = [
    "APPLIES_WHEN",
    "MULTI_OBJECTIVES",
    "OBJECTIVES",
    "PRUNERS",
    "ParamRange",
    "SearchSpace",
    "StudyLock",
    "StudyOutcome",
    "TuneSettings",
    "check_settings",
    "check_storage_url",
    "default_space_path",
    "default_storage_url",
    "emulated_fn",
    "fit_to_target",
    "load_search_space",
    "open_storage",
    "parse_search_space",
    "run_worker",
    "safe_url",
    "trial_row",
    "write_pareto_png",
]
