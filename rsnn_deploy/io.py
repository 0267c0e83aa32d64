"""Atomic file writing, the output guard, and provenance: nothing a user had is lost or half-overwritten.

Every artifact is written to a temporary file in the destination folder and moved
into place with ``os.replace`` (atomic on POSIX), so an interrupted run leaves
either the old file or the new one, never a truncated mix. Temporary files carry the
writer's machine and pid (``.NAME.HOST.PID.RANDOM.tmp``); the next write into that folder
removes the ones whose writer is dead (a ``kill -9`` cannot clean up after itself).

Every command that writes files asks :func:`guard_outputs` first, with *all* the files
it will write and *all* the files it reads::

    from rsnn_deploy.io import guard_outputs, artifact_inputs

    outs = guard_outputs([f"{stem}.safetensors", f"{stem}.json"], inputs=artifact_inputs(checkpoint),
                         overwrite=overwrite, flag="-o")

It refuses, as one :class:`~rsnn_deploy.errors.ValidationError` line naming the flag:
an empty path; an output that is (or sits under) an existing file or folder of the
wrong kind; a folder that is not writable; an existing output without ``--overwrite``;
and an output that *is* one of the inputs (after resolving ``..``, symlinks and hard
links), even with ``--overwrite``. Nothing is written before the guard has passed.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from rsnn_deploy.errors import CheckpointError, DataError, ValidationError

FILE_MODE = 0o644  # before the umask: every artifact (checkpoint, network, report) is readable like any file


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _host_tag() -> str:
    """8 hex digits of this machine's name: a PID means something only on the machine that wrote it."""
    import hashlib
    import socket

    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


_LEGACY_AGE_S = 3600  # temps of versions before the pid was in the name: removed once an hour old


def clean_stale_temps(folder: str | Path, name: str | None = None) -> list[Path]:
    """Remove temp files in ``folder`` whose writer is gone; returns what was removed.

    Our temps are ``.NAME.HOST.PID.RANDOM.tmp``. One is stale when HOST is this machine
    and process PID is not running; temps of live writers (this process included) and of
    writers on other machines sharing the folder (NFS) are left alone, so concurrent
    writers are safe. ``name`` limits the sweep to one destination; for it, temps of
    older versions (``.NAME.RANDOM.tmp``) are removed once they are an hour old.
    """
    import time

    removed: list[Path] = []
    folder = Path(folder)
    host = _host_tag()
    pattern = f".{name}.*.tmp" if name else ".*.tmp"
    with contextlib.suppress(OSError):
        for p in folder.glob(pattern):
            parts = p.name[:-4].rsplit(".", 3)  # ['.NAME', 'HOST', 'PID', 'RANDOM']
            if len(parts) == 4 and parts[1] == host and parts[2].isdigit():
                stale = int(parts[2]) != os.getpid() and not _pid_alive(int(parts[2]))
            elif name is not None and p.name.count(".") == name.count(".") + 3:  # '.NAME.RANDOM.tmp'
                stale = time.time() - p.stat().st_mtime > _LEGACY_AGE_S
            else:
                continue
            if stale:
                with contextlib.suppress(OSError):
                    p.unlink()
                    removed.append(p)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` (mode 0644 less the umask).

    The temp file is removed on any error; stale temps of killed writers in the folder
    are removed first (:func:`clean_stale_temps`).
    """
    dest = Path(path)
    # an OSError here stays one (callers such as the data cache handle it; the CLI prints it as one line)
    dest.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(dest.parent, dest.name)  # this destination's, old versions' included
    clean_stale_temps(dest.parent)  # and any other killed writer's of this machine in the folder
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.{_host_tag()}.{os.getpid()}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # the writer may have replaced the file (safetensors does): set the mode on what is there now
        os.chmod(tmp_path, FILE_MODE & ~_umask())
        os.replace(tmp_path, dest)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


# ----------------------------------------------------------------------------- the output guard


def _resolved(p: str | Path) -> Path:
    return Path(os.path.abspath(os.path.expanduser(str(p)))).resolve(strict=False)


def _same_file(a: Path, b: Path) -> bool:
    if a == b:
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def artifact_inputs(path: str | Path) -> list[Path]:
    """Both files of a tensor+JSON artifact (checkpoint, quantized network) given as NAME, NAME.json or .safetensors,
    plus the path itself as given (an input may be any other file too)."""
    st, js = artifact_paths(path)
    return [Path(path), st, js]


def check_writable_path(path: str | Path, flag: str, *, is_dir: bool = False) -> Path:
    """``path`` resolved, if it can be created: not empty, no file in the way, a writable folder above it."""
    text = str(path)
    if not text.strip():
        raise ValidationError(f"{flag}: empty path; give a file or folder name")
    p = _resolved(text)
    if is_dir and p.exists() and not p.is_dir():
        raise ValidationError(f"{flag}: {path} is a file, not a folder")
    if not is_dir and p.is_dir():
        raise ValidationError(f"{flag}: {path} is a folder; give a file name")
    parent = p if is_dir else p.parent
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ValidationError(f"{flag}: {path} sits under {probe}, which is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ValidationError(f"{flag}: cannot write into {probe} (permission denied)")
    return p


def guard_outputs(
    outputs: Iterable[str | Path],
    *,
    inputs: Iterable[str | Path] = (),
    overwrite: bool = False,
    flag: str = "-o",
) -> list[Path]:
    """Refuse before anything is written: see the module docstring. Returns the resolved outputs.

    ``outputs``: every file the command will write (for a folder output, the files in it).
    ``inputs``: every file the command reads (use :func:`artifact_inputs` for NAME pairs).
    """
    ins = [_resolved(p) for p in inputs if str(p).strip()]
    resolved = []
    for out in outputs:
        p = check_writable_path(out, flag)
        for src in ins:
            if _same_file(p, src):
                same = "" if str(out) == str(src) else f" (the same file as {src})"
                raise ValidationError(
                    f"{flag}: {out} is an input of this command{same}; inputs are never overwritten, "
                    "choose another output"
                )
        if p.exists() and not overwrite:
            raise ValidationError(f"{flag}: {out} exists; pass --overwrite to replace it")
        if p.exists() and not stat.S_ISREG(p.stat().st_mode):
            raise ValidationError(f"{flag}: {out} exists and is not a regular file")
        resolved.append(p)
    return resolved


@contextlib.contextmanager
def cleanup_new_dirs_on_error(folder: str | Path) -> Iterator[Path]:
    """Create ``folder`` (and missing parents); if the block fails, remove the ones it created that stayed empty.

    A failed run should not leave empty folders behind; a folder that already existed,
    or that holds anything, is never touched.
    """
    p = Path(folder)
    created: list[Path] = []
    probe = p.absolute()
    while not probe.exists():
        created.append(probe)
        probe = probe.parent
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValidationError(f"{folder}: cannot create the folder ({err.strerror or err})") from None
    try:
        yield p
    except BaseException:
        for d in created:  # deepest first
            with contextlib.suppress(OSError):
                d.rmdir()  # only succeeds when empty
        raise


# ----------------------------------------------------------------------------- tensor + JSON pairs


def pending_path(st_path: Path) -> Path:
    """Where the new tensors of a pair wait while its JSON is replaced (see :func:`write_pair_atomic`)."""
    return st_path.with_name(f".{st_path.name}.pending")


def write_pair_atomic(st_path: Path, json_path: Path, blob: bytes, doc: dict[str, Any]) -> None:
    """Write a ``NAME.safetensors`` + ``NAME.json`` pair so that a kill at any moment leaves a loadable pair.

    ``doc["tensors_sha256"]`` is set to the blob's hash. Order: tensors to a pending
    file, then the JSON (atomic), then the pending file onto ``NAME.safetensors``. Killed
    before the JSON: the old pair stands. Killed after it: the JSON names the pending
    file's hash, and :func:`read_pair_tensors` reads the pending file until the next
    write (or :func:`complete_pending`) moves it into place.
    """
    import hashlib

    doc["tensors_sha256"] = hashlib.sha256(blob).hexdigest()
    pend = pending_path(st_path)
    with atomic_path(pend) as tmp:
        tmp.write_bytes(blob)
    write_json_atomic(json_path, doc)
    os.replace(pend, st_path)


def complete_pending(st_path: Path, json_path: Path) -> None:
    """Finish a pair write that was killed between its JSON and its rename (or drop a pending file it never used)."""
    import hashlib

    pend = pending_path(st_path)
    if not pend.is_file():
        return
    try:
        want = json.loads(json_path.read_text()).get("tensors_sha256")
    except (OSError, ValueError, AttributeError, RecursionError):
        want = None
    if want and hashlib.sha256(pend.read_bytes()).hexdigest() == want:
        os.replace(pend, st_path)
    else:
        pend.unlink()


def read_pair_tensors(st_path: Path, json_path: Path, doc: dict[str, Any]) -> bytes:
    """The tensor bytes of a pair, checked against ``doc["tensors_sha256"]`` (absent in old files: not checked)."""
    import hashlib

    want = doc.get("tensors_sha256")
    if want is not None and not (isinstance(want, str) and len(want) == 64):
        raise CheckpointError(f"{json_path}: tensors_sha256: must be a SHA-256 hex string (got {want!r})")
    pend = pending_path(st_path)
    if not st_path.is_file() and not (want and pend.is_file()):
        raise CheckpointError(f"{st_path}: file not found")
    try:
        blob = st_path.read_bytes() if st_path.is_file() else b""
    except OSError as err:
        raise CheckpointError(f"{st_path}: cannot read ({err.strerror or err})") from None
    if want is None or hashlib.sha256(blob).hexdigest() == want:
        return blob
    if pend.is_file():
        pblob = pend.read_bytes()
        if hashlib.sha256(pblob).hexdigest() == want:
            return pblob  # a write killed after its JSON: the pending tensors are the ones the JSON describes
    raise CheckpointError(
        f"{st_path}: tensors_sha256: tensor file does not match {json_path.name} "
        "(truncated, modified, or from another save)"
    )


# ----------------------------------------------------------------------------- provenance and readers


def package_versions() -> dict[str, str]:
    """Versions of the packages that decide numerical results, for provenance."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str] = {}
    for name in ("rsnn-deploy", "torch", "numpy", "nengo", "nengo-loihi", "optuna", "onnxruntime", "mnist1d"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def git_commit() -> str | None:
    """The commit of the source tree this package runs from, when it is a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        res = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() or None if res.returncode == 0 else None


def artifact_paths(path: str | Path) -> tuple[Path, Path]:
    """``(NAME.safetensors, NAME.json)`` of a tensor+JSON artifact given as either file or the bare stem."""
    p = Path(path)
    if p.suffix in (".json", ".safetensors"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def read_json_object(path: Path) -> dict[str, Any]:
    """Read a JSON object; a missing file, bad JSON or a non-object is one CheckpointError line naming the file."""
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: not valid JSON ({err})") from None
    except RecursionError:
        raise CheckpointError(f"{path}: not valid JSON here (nested too deeply)") from None
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read ({err.strerror or err})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: top level must be a JSON object")
    return data


def open_npz(path: Path, owner: str, example: str = "x=...") -> Any:
    """``np.load(path, allow_pickle=False)`` of a user's ``.npz``: the open ``NpzFile`` (use it in ``with``).

    The one reader of users' npz files (streams, raw input, datasets): never unpickles,
    and says in one line, naming ``owner``, when the file is unreadable (``DataError``)
    or holds a single array rather than named ones (``ValidationError``). ``example``
    completes the hint ``numpy.savez(path, EXAMPLE)``.
    """
    import zipfile

    import numpy as np

    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(
            f"{owner}: not a readable .npz file ({err}); save it with numpy.savez(path, {example})"
        ) from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise ValidationError(
            f"{owner}: holds a single array, not named arrays (got {type(npz).__name__}); "
            f"save with numpy.savez(path, {example})"
        )
    return npz


CACHE_ENV = "RSNN_DEPLOY_CACHE"


def cache_root() -> Path:
    """The per-user cache every part shares (data, native builds, Lava's side environment, wheels):
    ``$RSNN_DEPLOY_CACHE`` if set, else ``~/.cache/rsnn-deploy``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rsnn-deploy"
