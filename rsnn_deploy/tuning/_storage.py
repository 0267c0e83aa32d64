"""Study storage: URL checks, heartbeats with retry of dead workers, and a lock shared by all workers.

Why each piece exists
---------------------
- A worker killed in the middle of a trial leaves that trial RUNNING for ever. Optuna's
  heartbeat (``heartbeat_interval``, ``grace_period``) lets any live worker declare it
  stale and fail it; ``RetryHeartbeatStaleTrialCallback`` (the successor of
  ``RetryFailedTrialCallback``) then queues a copy with the same parameters, which the
  next worker picks up.
- ``MaxTrialsCallback`` stops a worker *after* a trial finishes, so two workers that
  both start a trial while one slot is left overshoot the budget. :class:`StudyLock`
  makes "count the trials, then create one" a critical section across processes and
  machines (a PostgreSQL advisory lock; an ``flock`` beside a SQLite file), so the
  number of finished trials is exact.
- A bad URL must be one line naming ``--storage``, not a SQLAlchemy traceback.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import re
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rsnn_deploy.errors import ValidationError

SUPPORTED = ("sqlite", "postgresql")
_HINT = "use sqlite:///PATH/study.db or postgresql://USER:PASSWORD@HOST:PORT/DB"
# SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3, which is not a dependency; psycopg2 is (pyproject).
_DEFAULT_DRIVERS = {"postgresql": "postgresql+psycopg2"}


def normalize_storage_url(url: str) -> str:
    """The URL with the installed driver made explicit (``postgresql://`` -> ``postgresql+psycopg2://``)."""
    parsed = _parse_url(url)
    driver = _DEFAULT_DRIVERS.get(parsed.drivername)
    if driver is None:
        return url
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def default_storage_url(out: str | Path) -> str:
    """``sqlite:///OUT/study.db`` with an absolute path, so other processes find the same file."""
    return f"sqlite:///{Path(out).resolve() / 'study.db'}"


def _parse_url(url: str) -> Any:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError, TypeError):
        masked = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)  # never print a password
        raise ValidationError(f"--storage: not a database URL (got {masked!r}); {_HINT}") from None
    return parsed


def safe_url(url: str) -> str:
    """The URL with its password masked, for messages and study attributes."""
    try:
        return _parse_url(url).render_as_string(hide_password=True)
    except ValidationError:
        return "<invalid url>"


def check_storage_url(url: str) -> str:
    """The backend name (``sqlite`` / ``postgresql``) of a valid URL; a bad one is a ValidationError."""
    parsed = _parse_url(normalize_storage_url(url))
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED:
        raise ValidationError(f"--storage: unsupported database {backend!r} (got {safe_url(url)!r}); {_HINT}")
    if backend == "sqlite":
        db = parsed.database
        if not db or db == ":memory:":
            raise ValidationError(
                f"--storage: an in-memory SQLite study is lost when the worker exits (got {url!r}); "
                "use sqlite:///PATH/study.db"
            )
        if not Path(db).parent.is_dir():
            raise ValidationError(f"--storage: folder of the SQLite file does not exist (got {url!r})")
    else:
        try:
            parsed.get_dialect().import_dbapi()
        except Exception as err:  # missing driver, e.g. postgresql+asyncpg
            raise ValidationError(
                f"--storage: cannot load the database driver for {parsed.drivername!r} ({err}); {_HINT}"
            ) from None
    return backend


def _first_line(err: BaseException) -> str:
    text = str(getattr(err, "orig", None) or err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def open_storage(url: str, *, heartbeat_interval: int = 10, grace_period: int | None = None, max_retry: int = 3) -> Any:
    """An Optuna ``RDBStorage`` with heartbeat and retry of stale trials.

    ``grace_period`` defaults to three heartbeats: long enough that a busy worker is not
    declared dead, short enough that a killed worker's trial is retried soon.
    """
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    url = normalize_storage_url(url)
    backend = check_storage_url(url)
    if heartbeat_interval < 1:
        raise ValidationError(f"--heartbeat-interval: must be at least 1 second (got {heartbeat_interval})")
    grace = grace_period if grace_period is not None else 3 * heartbeat_interval
    if grace <= heartbeat_interval:
        raise ValidationError(
            f"--grace-period: must exceed --heartbeat-interval (got {grace} <= {heartbeat_interval}); "
            "otherwise live workers are declared dead"
        )
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if backend == "sqlite":
        engine_kwargs["connect_args"] = {"timeout": 60}  # several local workers queue for the write lock
    with warnings.catch_warnings():
        # The heartbeat API is marked experimental; it has been stable since optuna 2.9.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry_cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
        if retry_cls is not None:
            callback = {
                "heartbeat_stale_trial_callback": retry_cls(max_retry=max_retry, inherit_intermediate_values=True)
            }
        else:  # optuna < 4.9
            callback = {
                "failed_trial_callback": optuna.storages.RetryFailedTrialCallback(
                    max_retry=max_retry, inherit_intermediate_values=True
                )
            }
        try:
            return _storage_class()(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat_interval,
                grace_period=grace,
                **callback,
            )
        except (SQLAlchemyError, OSError, ValueError, ImportError) as err:
            raise ValidationError(f"--storage: cannot open {safe_url(url)!r}: {_first_line(err)}") from None
        except RuntimeError as err:  # schema of another optuna version
            raise ValidationError(
                f"--storage: {safe_url(url)!r}: {_first_line(err)}; run `optuna storage upgrade --storage URL`"
            ) from None


_STORAGE_CLASS: Any = None


def _storage_class() -> Any:
    """``RDBStorage`` that also fails RUNNING trials that never recorded a heartbeat (built once, lazily).

    Why: Optuna only declares a trial stale from its heartbeat row. A worker killed
    between ``study.ask()`` and its first heartbeat leaves a RUNNING trial with no row;
    Optuna never fails it, it counts against the trial cap, and every other worker waits
    for it for ever. Our workers record the first heartbeat inside the study lock, in the
    same critical section as ``ask()``, so a live worker's trial is never seen without
    one; a trial without a heartbeat that stays so for ``grace_period`` seconds (timed on
    this process's monotonic clock, so no two machines' clocks are compared) is dead.
    """
    global _STORAGE_CLASS
    if _STORAGE_CLASS is not None:
        return _STORAGE_CLASS
    import time

    import optuna
    import sqlalchemy.orm as sqlalchemy_orm
    from optuna.storages._rdb import models
    from optuna.trial import TrialState

    class ReclaimingRDBStorage(optuna.storages.RDBStorage):
        _first_seen_without_heartbeat: dict[int, float]

        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            stale = list(super()._get_stale_trial_ids(study_id))
            grace = self.grace_period if self.grace_period is not None else 2 * (self.heartbeat_interval or 0)
            seen = self.__dict__.setdefault("_first_seen_without_heartbeat", {})
            now = time.monotonic()
            with optuna.storages._rdb.storage._create_scoped_session(self.scoped_session) as session:
                running = (
                    session.query(models.TrialModel)
                    .options(sqlalchemy_orm.selectinload(models.TrialModel.heartbeats))
                    .filter(models.TrialModel.state == TrialState.RUNNING)
                    .filter(models.TrialModel.study_id == study_id)
                    .all()
                )
                orphans = {t.trial_id for t in running if not t.heartbeats}
            for trial_id in list(seen):
                if trial_id not in orphans:
                    del seen[trial_id]
            for trial_id in orphans:
                first = seen.setdefault(trial_id, now)
                if now - first > grace and trial_id not in stale:
                    stale.append(trial_id)
            return stale

    _STORAGE_CLASS = ReclaimingRDBStorage
    return _STORAGE_CLASS


def _lock_key(study_name: str) -> int:
    """A stable signed 64-bit key for PostgreSQL's advisory locks."""
    digest = hashlib.sha256(f"rsnn-deploy-study:{study_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class StudyLock:
    """A mutex shared by every worker of one study, wherever it runs.

    PostgreSQL: a session advisory lock on its own connection (released by the server
    if the worker dies). SQLite: ``flock`` on the database file itself (released by the
    kernel if the worker dies; SQLite's own locks are POSIX record locks, which ``flock``
    does not interact with on Linux), so no lock file is left behind. One study per
    SQLite file is locked at a time, which is all a local study needs.
    The lock is re-entrant within a thread of one worker.
    """

    def __init__(self, url: str, study_name: str):
        url = normalize_storage_url(url)
        self._backend = check_storage_url(url)
        self._url = url
        self._key = _lock_key(study_name)
        self._local = threading.RLock()
        self._depth = 0
        self._engine: Any = None
        if self._backend == "sqlite":
            self._lock_path = Path(_parse_url(url).database)

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        with self._local:
            if self._depth > 0:  # already ours: a second flock / advisory lock would wait on itself
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            with self._acquire():
                self._depth = 1
                try:
                    yield
                finally:
                    self._depth = 0

    @contextlib.contextmanager
    def _acquire(self) -> Iterator[None]:
        if self._backend == "sqlite":
            with self._lock_path.open("a") as fh:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            return
        import sqlalchemy

        if self._engine is None:
            self._engine = sqlalchemy.create_engine(self._url, poolclass=sqlalchemy.pool.NullPool)
        try:
            conn = self._engine.connect()
        except sqlalchemy.exc.SQLAlchemyError as err:
            raise ValidationError(f"--storage: cannot open {safe_url(self._url)!r}: {_first_line(err)}") from None
        try:  # closing the session also frees the lock, should the unlock fail
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": self._key})
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
        finally:
            conn.close()

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


class Heartbeat:
    """Records a trial's heartbeat every ``interval`` seconds from a daemon thread.

    ``study.optimize`` does this internally; the worker loop here uses ``ask``/``tell``
    (to create trials inside the :class:`StudyLock`), so it runs its own.
    """

    def __init__(self, storage: Any, trial_id: int):
        self._storage = storage
        self._trial_id = trial_id
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Heartbeat:
        interval = self._storage.get_heartbeat_interval()
        if interval:
            self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
            self._thread.start()
        return self

    def _run(self, interval: int) -> None:
        while True:
            with contextlib.suppress(Exception):  # a transient DB error must not kill the trial
                self._storage.record_heartbeat(self._trial_id)
            if self._stop.wait(interval):
                return

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
