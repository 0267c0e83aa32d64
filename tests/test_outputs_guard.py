"""What the output guard allows and what it leaves behind: --overwrite, file modes, temp and folder cleanup,
and ``--profile PATH`` for networks quantized with a user's own profile.

The refusals themselves (exit 2, one line, nothing changed) are in ``test_bad_input_corpus.py``.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_backends import make_tiny_checkpoint

from rsnn_deploy.cli import main
from rsnn_deploy.errors import ValidationError
from rsnn_deploy.io import atomic_path, check_writable_path, clean_stale_temps, guard_outputs, write_text_atomic

pytestmark = pytest.mark.filterwarnings(
    "ignore:invalid value encountered in cast:RuntimeWarning",
    "ignore:This version of `nengo_loihi`:UserWarning",
)


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("guard")
    make_tiny_checkpoint(root, epochs=1)
    text = (Path(__file__).resolve().parents[1] / "hardware" / "loihi1.toml").read_text()
    (root / "my.toml").write_text(text.replace('name = "loihi1"', 'name = "my-chip"', 1))
    assert main(["quantize", str(root / "run" / "model"), "--target", str(root / "my.toml"), "-o",
                 str(root / "q" / "my"), "--calib", "20"]) == 0  # fmt: skip
    np.savez(root / "stream.npz", x=(np.random.default_rng(0).random((2, 20, 8)) < 0.2).astype(np.uint8))
    return root


def test_overwrite_replaces_outputs_and_never_the_input(ws, tmp_path, capsys):
    ck = ws / "run" / "model"
    inputs = {p: _sha(p) for p in (ws / "run").iterdir()}
    out = tmp_path / "q"
    args = ["quantize", str(ck), "--target", "loihi1", "--calib", "20", "-o", str(out)]
    assert main(args) == 0
    first = _sha(tmp_path / "q.json")
    assert main(args) == 2  # exists
    assert "--overwrite" in capsys.readouterr().err
    assert _sha(tmp_path / "q.json") == first
    assert main([*args, "--overwrite"]) == 0
    onnx = tmp_path / "m.onnx"
    assert main(["export", str(ck), "--format", "onnx", "-o", str(onnx)]) == 0
    assert main(["export", str(ck), "--format", "onnx", "-o", str(onnx)]) == 2
    assert main(["export", str(ck), "--format", "onnx", "--overwrite", "-o", str(onnx)]) == 0
    assert {p: _sha(p) for p in (ws / "run").iterdir()} == inputs


def test_every_artifact_has_the_same_mode(ws, tmp_path):
    mask = os.umask(0)
    os.umask(mask)
    want = 0o644 & ~mask
    files = [ws / "run" / "model.safetensors", ws / "run" / "model.json", ws / "run" / "resume.safetensors",
             ws / "q" / "my.safetensors", ws / "q" / "my.json", ws / "q" / "my.report.md"]  # fmt: skip
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in files} == {p.name: want for p in files}


def test_hard_link_to_an_input_is_refused(ws, tmp_path):
    link = tmp_path / "alias.json"
    os.link(ws / "run" / "model.json", link)
    with pytest.raises(ValidationError, match="is an input"):
        guard_outputs([link], inputs=[ws / "run" / "model.json"], overwrite=True)


def test_stale_temps_of_dead_writers_are_removed_live_ones_kept(tmp_path):
    import time

    from rsnn_deploy.io import _host_tag

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid, host = int(dead.stdout), _host_tag()
    stale = tmp_path / f".a.json.{host}.{dead_pid}.xyz.tmp"
    stale.write_bytes(b"x" * 1000)
    other = tmp_path / f".b.json.{host}.{dead_pid}.q.tmp"  # another destination's, same dead writer
    other.write_bytes(b"z")
    live = tmp_path / f".a.json.{host}.{os.getppid()}.abc.tmp"  # our parent is alive
    live.write_bytes(b"y")
    remote = tmp_path / f".a.json.0badc0de.{dead_pid}.r.tmp"  # another machine's pid: not ours to judge
    remote.write_bytes(b"r")
    legacy_old = tmp_path / ".a.json.k2j4h5g6.tmp"  # a version before the pid was in the name
    legacy_old.write_bytes(b"o")
    os.utime(legacy_old, (time.time() - 7200, time.time() - 7200))
    legacy_new = tmp_path / ".a.json.z9y8x7w6.tmp"
    legacy_new.write_bytes(b"n")
    write_text_atomic(tmp_path / "a.json", "{}")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([live.name, remote.name, legacy_new.name, "a.json"])
    assert clean_stale_temps(tmp_path) == []


def test_failed_write_leaves_no_temp(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "x.bin") as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("writer failed")
    assert list(tmp_path.iterdir()) == []


def test_failed_train_leaves_no_empty_folders(ws, tmp_path, capsys):
    out = tmp_path / "new" / "deeper" / "run"
    rc = main(["train", "--task", "npz", "--data", str(ws / "data.npz"), "--epochs", "1", "--hidden", "8",
               "--device", "cuda:99", "--quiet", "-o", str(out)])  # fmt: skip
    assert rc == 2, capsys.readouterr()
    assert not (tmp_path / "new").exists()


def test_unreachable_study_leaves_no_folder_or_lock(tmp_path, capsys):
    out = tmp_path / "t"
    rc = main(["tune", "--task", "store-recall", "--task-param", "n_train=60", "--task-param", "n_test=20",
               "--trials", "1", "--study", "s", "--epochs", "1", "--hidden", "8",
               "--storage", "postgresql://u@127.0.0.1:1/db", "-o", str(out)])  # fmt: skip
    assert rc == 2
    assert "--storage" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder (run as a normal user)")
def test_read_only_folder_is_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(ValidationError, match="cannot write into"):
            check_writable_path(ro / "x.json", "-o")
    finally:
        ro.chmod(0o700)


# ----------------------------------------------------------------------------- --profile PATH


def test_user_profile_network_runs_everywhere_with_profile_flag(ws, tmp_path, capsys):
    q, prof = str(ws / "q" / "my"), str(ws / "my.toml")
    assert main(["hil", "--model", q, "--stream", str(ws / "stream.npz"), "--quiet"]) == 2
    assert "--profile PATH" in capsys.readouterr().err
    assert main(["hil", "--model", q, "--stream", str(ws / "stream.npz"), "--quiet", "--profile", prof]) == 0
    assert main(["export", q, "--format", "onnx", "--profile", prof, "-o", str(tmp_path / "q.onnx")]) == 0
    assert main(["compile", q, "--backend", "nengo", "--steps", "20", "--profile", prof]) == 0
    assert main(["verify", str(ws / "run" / "model"), "--target", prof, "--qnet", q, "--profile", prof,
                 "--backends", "torch-float,emulator", "--limit", "20", "--no-figures", "--quiet",
                 "-o", str(tmp_path / "report")]) == 0  # fmt: skip
    assert "identical" in capsys.readouterr().out
