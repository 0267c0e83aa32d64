"""A corpus of bad input against every command: files, JSON/TOML fields, npz, flags, paths, storage URLs.

For each case: exit code 2, no traceback, exactly one stderr line that starts with
``rsnn-deploy: error:`` and names the file, field or flag (a regex per case), and every
file under the shared workspace and the case's own folder unchanged (SHA-256 of each
file before and after; no file added or removed).

The workspace (a tiny trained run, its quantized networks, a user profile, a stream)
is built once per module; cases run in-process through ``rsnn_deploy.cli.main`` so the
whole corpus takes seconds. A case's bad files are written into its own folder before
the hashes are taken.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from test_backends import make_tiny_checkpoint

from rsnn_deploy.cli import main

pytestmark = pytest.mark.filterwarnings(
    "ignore:invalid value encountered in cast:RuntimeWarning",
    "ignore:This version of `nengo_loihi`:UserWarning",
)


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    """ws/run (trained, with resume state), ws/q/tiny (loihi1), ws/my.toml + ws/q/my (a user's profile), ..."""
    root = tmp_path_factory.mktemp("ws")
    ck = make_tiny_checkpoint(root, epochs=2)  # root/run/model.json, root/data.npz
    assert ck == root / "run" / "model.json"
    assert main(["quantize", str(root / "run" / "model"), "--target", "loihi1", "-o", str(root / "q" / "tiny"),
                 "--calib", "20"]) == 0  # fmt: skip
    text = (Path(__file__).resolve().parents[1] / "hardware" / "loihi1.toml").read_text()
    (root / "my.toml").write_text(text.replace('name = "loihi1"', 'name = "my-chip"', 1))
    assert main(["quantize", str(root / "run" / "model"), "--target", str(root / "my.toml"), "-o",
                 str(root / "q" / "my"), "--calib", "20"]) == 0  # fmt: skip
    np.savez(root / "stream.npz", x=(np.random.default_rng(0).random((2, 20, 8)) < 0.2).astype(np.uint8))
    (root / "card.md").write_text("my own notes\n")
    (root / "hil.json").write_text("{}\n")
    (root / "report").mkdir()
    (root / "report" / "report.json").write_text('{"mine": true}\n')
    return root


def _tree(*roots: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for d in dirnames:
                out[os.path.join(dirpath, d) + "/"] = "dir"
            for f in filenames:
                p = os.path.join(dirpath, f)
                out[p] = hashlib.sha256(Path(p).read_bytes()).hexdigest()
    return out


def _ckpt_doc(ws: Path) -> dict:
    return json.loads((ws / "run" / "model.json").read_text())


def _bad_ckpt(mutate: Callable[[dict], object]) -> Callable[[Path, Path], None]:
    """A copy of the workspace checkpoint as case/ck.{json,safetensors} with its JSON mutated."""

    def make(ws: Path, case: Path) -> None:
        doc = _ckpt_doc(ws)
        mutate(doc)
        shutil.copy(ws / "run" / "model.safetensors", case / "ck.safetensors")
        (case / "ck.json").write_text(json.dumps(doc))

    return make


def _raw_ckpt_json(text: str) -> Callable[[Path, Path], None]:
    def make(ws: Path, case: Path) -> None:
        shutil.copy(ws / "run" / "model.safetensors", case / "ck.safetensors")
        (case / "ck.json").write_text(text)

    return make


def _bad_qnet(mutate: Callable[[dict], object] | None = None, tensors: bytes | None = None):
    def make(ws: Path, case: Path) -> None:
        doc = json.loads((ws / "q" / "tiny.json").read_text())
        if mutate:
            mutate(doc)
        (case / "qn.json").write_text(json.dumps(doc))
        if tensors is None:
            shutil.copy(ws / "q" / "tiny.safetensors", case / "qn.safetensors")
        else:
            (case / "qn.safetensors").write_bytes(tensors)

    return make


def _file(name: str, content: str | bytes) -> Callable[[Path, Path], None]:
    def make(ws: Path, case: Path) -> None:
        p = case / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content if isinstance(content, bytes) else content.encode())

    return make


def _npz(name: str, **arrays) -> Callable[[Path, Path], None]:
    def make(ws: Path, case: Path) -> None:
        np.savez(case / name, **arrays)

    return make


def _run_copy(mutate_resume: Callable[[dict], object] | None = None, text: str | None = None):
    """case/run: a copy of the workspace run with its resume.json mutated (or replaced by ``text``)."""

    def make(ws: Path, case: Path) -> None:
        shutil.copytree(ws / "run", case / "run")
        p = case / "run" / "resume.json"
        if text is not None:
            p.write_text(text)
        else:
            doc = json.loads(p.read_text())
            mutate_resume(doc)
            p.write_text(json.dumps(doc))

    return make


def _threshold_infinity(ws: Path, case: Path) -> None:
    doc = _ckpt_doc(ws)
    doc["model"]["threshold"] = float("inf")
    shutil.copy(ws / "run" / "model.safetensors", case / "ck.safetensors")
    (case / "ck.json").write_text(json.dumps(doc))  # json.dumps writes the JavaScript literal Infinity
    assert "Infinity" in (case / "ck.json").read_text()


def _deep(n: int) -> str:
    return "[" * n + "]" * n


@dataclass
class Case:
    id: str
    args: list[str]  # {ws} and {case} are replaced by the folders
    pattern: str  # must appear in the one error line (names the file, field or flag)
    setup: Callable[[Path, Path], None] | None = None
    marks: list = field(default_factory=list)


RUN = "{ws}/run/model"
Q = "{ws}/q/tiny"
TUNE = ["tune", "--task", "store-recall", "--task-param", "n_train=60", "--task-param", "n_test=20",
        "--trials", "1", "--study", "s", "--epochs", "1", "--hidden", "8"]  # fmt: skip
TRAIN = ["train", "--task", "store-recall", "--task-param", "n_train=60", "--task-param", "n_test=20",
         "--epochs", "1", "--hidden", "8", "--quiet"]  # fmt: skip
CASES = [
    # ---------------------------------------------------------------- outputs: inputs are never written over
    Case("quantize-o-is-input-stem", ["quantize", RUN, "--target", "loihi1", "-o", RUN], r"-o: .*is an input"),
    Case("quantize-o-is-input-json", ["quantize", RUN, "--target", "loihi1", "-o", "{ws}/run/model.json"],
         r"-o: .*is an input"),
    Case("quantize-o-input-even-overwrite", ["quantize", RUN, "--target", "loihi1", "--overwrite", "-o", RUN],
         r"-o: .*is an input"),
    Case("quantize-o-input-via-dotdot", ["quantize", RUN, "--target", "loihi1", "--overwrite", "-o",
                                         "{ws}/q/../run/model"], r"-o: .*is an input"),
    Case("quantize-o-exists-by-json-name", ["quantize", RUN, "--target", "loihi1", "-o", "{ws}/q/tiny.json"],
         r"-o: .*tiny.* exists; pass --overwrite"),
    Case("quantize-o-exists", ["quantize", RUN, "--target", "loihi1", "-o", Q],
         r"-o: .*tiny.* exists; pass --overwrite"),
    Case("export-o-is-input", ["export", "{ws}/run/model.json", "--format", "onnx", "-o", "{ws}/run/model.json"],
         r"-o: .*is an input"),
    Case("export-o-is-input-tensors", ["export", RUN, "--format", "onnx", "--overwrite", "-o",
                                       "{ws}/run/model.safetensors"], r"-o: .*is an input"),
    Case("export-o-existing-dir", ["export", RUN, "--format", "onnx", "-o", "{ws}/q"], r"-o: .*is a folder"),
    Case("export-o-exists", ["export", RUN, "--format", "onnx", "-o", "{ws}/card.md"], r"-o: .*card.md exists"),
    Case("verify-o-exists", ["verify", RUN, "--backends", "torch-float", "-o", "{ws}/report"],
         r"-o: .*report.json exists"),
    Case("verify-o-is-file", ["verify", RUN, "-o", "{ws}/card.md"], r"-o: .*is a file"),
    Case("model-card-o-exists", ["model-card", RUN, "-o", "{ws}/card.md"], r"-o: .*card.md exists"),
    Case("model-card-o-is-input", ["model-card", RUN, "--overwrite", "-o", "{ws}/run/model.json"],
         r"-o: .*is an input"),
    Case("compile-o-is-input", ["compile", Q, "--overwrite", "-o", "{ws}/q/tiny.json"], r"-o: .*is an input"),
    Case("hil-o-is-stream", ["hil", "--model", Q, "--stream", "{ws}/stream.npz", "--overwrite", "-o",
                             "{ws}/stream.npz"], r"-o: .*is an input"),
    Case("hil-o-exists", ["hil", "--model", Q, "--stream", "{ws}/stream.npz", "-o", "{ws}/hil.json"],
         r"-o: .*hil.json exists"),
    Case("train-data-is-output", [*TRAIN[:1], "--task", "npz", "--data", "{case}/o/model.json", "--overwrite",
                                  "-o", "{case}/o"], r"-o: .*is an input", _file("o/model.json", "{}")),
    # ---------------------------------------------------------------- output paths that cannot be written
    Case("quantize-o-empty", ["quantize", RUN, "--target", "loihi1", "-o", ""], r"-o: empty path"),
    Case("export-o-empty", ["export", RUN, "--format", "onnx", "-o", ""], r"-o: empty path"),
    Case("train-o-empty", [*TRAIN, "-o", ""], r"-o: empty path"),
    Case("verify-o-empty", ["verify", RUN, "-o", ""], r"-o: empty path"),
    Case("train-o-is-file", [*TRAIN, "-o", "{ws}/card.md"], r"-o: .*is a file"),
    Case("train-o-under-file", [*TRAIN, "-o", "{ws}/card.md/run"], r"-o: .*sits under .*card.md"),
    Case("quantize-o-under-file", ["quantize", RUN, "--target", "loihi1", "-o", "{ws}/card.md/q"],
         r"-o: .*sits under .*card.md"),
    Case("export-o-under-file", ["export", RUN, "--format", "nir", "-o", "{ws}/card.md/x.nir"], r"-o: .*sits under"),
    Case("hil-o-under-file", ["hil", "--model", Q, "--stream", "{ws}/stream.npz", "-o", "{ws}/card.md/h.json"],
         r"-o: .*sits under"),
    Case("tune-o-under-file", [*TUNE, "-o", "{ws}/card.md/t"], r"-o: .*sits under"),
    Case("steps-o-under-file", ["experiment", "steps", "--task", "store-recall", "-o", "{ws}/card.md/t"],
         r"-o: .*sits under"),
    Case("tau-sweep-report-dir-under-file", ["experiment", "tau-sweep", "-o", "{case}/x", "--report-dir",
                                             "{ws}/card.md/r"], r"--report-dir: .*sits under"),
    Case("train-o-holds-run", [*TRAIN, "-o", "{ws}/run"], r"run: already holds a training run"),
    # ---------------------------------------------------------------- checkpoint JSON fields and files
    Case("ckpt-json-garbage", ["evaluate", "{case}/ck"], r"ck.json: not valid JSON", _raw_ckpt_json("{nope")),
    Case("ckpt-json-deep", ["quantize", "{case}/ck", "--target", "loihi1", "-o", "{case}/q"],
         r"ck.json: .*nested too deeply", _raw_ckpt_json(_deep(200_000))),
    Case("ckpt-json-array", ["evaluate", "{case}/ck"], r"ck.json: top level", _raw_ckpt_json("[1, 2]")),
    Case("ckpt-threshold-infinity", ["quantize", "{case}/ck", "--target", "loihi1", "-o", "{case}/q"],
         r"ck.json: model.threshold", _threshold_infinity),
    Case("ckpt-n-out-huge", ["evaluate", "{case}/ck"], r"ck.json: model.n_out",
         _bad_ckpt(lambda d: d["model"].update(n_out=1_000_000_000))),
    Case("ckpt-n-hidden-huge", ["evaluate", "{case}/ck"], r"ck.json: model.n_hidden",
         _bad_ckpt(lambda d: d["model"].update(n_hidden=60000))),
    Case("ckpt-tau-negative", ["evaluate", "{case}/ck"], r"ck.json: model.tau_mem_ms",
         _bad_ckpt(lambda d: d["model"].update(tau_mem_ms=-1))),
    Case("ckpt-unknown-model-key", ["evaluate", "{case}/ck"], r"ck.json: model.n_hiden",
         _bad_ckpt(lambda d: d["model"].update(n_hiden=3))),
    Case("ckpt-format", ["evaluate", "{case}/ck"], r"ck.json: format", _bad_ckpt(lambda d: d.update(format="x"))),
    Case("ckpt-format-version", ["evaluate", "{case}/ck"], r"ck.json: format_version",
         _bad_ckpt(lambda d: d.update(format_version=99))),
    Case("ckpt-model-missing", ["evaluate", "{case}/ck"], r"ck.json: model", _bad_ckpt(lambda d: d.pop("model"))),
    Case("ckpt-hash-not-string", ["evaluate", "{case}/ck"], r"ck.json: tensors_sha256",
         _bad_ckpt(lambda d: d.update(tensors_sha256=5))),
    Case("ckpt-other-models-tensors", ["quantize", "{case}/ck", "--target", "loihi1", "-o", "{case}/q"],
         r"ck.safetensors: tensors_sha256", _bad_ckpt(lambda d: d.update(tensors_sha256="0" * 64))),
    Case("ckpt-tensors-missing", ["evaluate", "{case}/ck"], r"ck.safetensors: file not found",
         lambda ws, case: (case / "ck.json").write_text((ws / "run" / "model.json").read_text())),
    Case("ckpt-not-found", ["export", "{case}/none", "--format", "onnx", "-o", "{case}/x.onnx"], r"none.json"),
    # ---------------------------------------------------------------- quantized networks and --profile
    Case("qnet-field-missing", ["compile", "{case}/qn"], r"qn.json: n_hidden: missing",
         _bad_qnet(lambda d: d.pop("n_hidden"))),
    Case("qnet-field-type", ["hil", "--model", "{case}/qn", "--stream", "{ws}/stream.npz"],
         r"qn.json: vmin: must be an integer", _bad_qnet(lambda d: d.update(vmin="low"))),
    Case("qnet-tensors-swapped", ["export", "{case}/qn", "--format", "onnx", "-o", "{case}/x.onnx"],
         r"qn.safetensors: tensors_sha256", _bad_qnet(tensors=b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")),
    Case("qnet-user-profile-without-flag", ["hil", "--model", "{ws}/q/my", "--stream", "{ws}/stream.npz"],
         r"my.json: profile: .*--profile PATH"),
    Case("profile-flag-missing-file", ["compile", "{ws}/q/my", "--profile", "{case}/none.toml"],
         r"none.toml: hardware profile file not found"),
    Case("profile-flag-bad-toml", ["verify", RUN, "--qnet", "{ws}/q/my", "--profile", "{case}/p.toml", "-o",
                                   "{case}/r"], r"p.toml: not a valid TOML", _file("p.toml", "name = [")),
    Case("profile-flag-takes-builtin-name", ["export", "{ws}/q/my", "--format", "onnx", "--profile", "{case}/p.toml",
                                             "-o", "{case}/x.onnx"], r"--profile: .*built-in profile",
         lambda ws, case: (case / "p.toml").write_text((ws / "my.toml").read_text().replace("my-chip", "loihi1"))),
    Case("quantize-target-missing", ["quantize", RUN, "--target", "{case}/none.toml", "-o", "{case}/q"],
         r"none.toml: hardware profile file not found"),
    Case("quantize-target-unknown-name", ["quantize", RUN, "--target", "loihi9", "-o", "{case}/q"],
         r"HardwareProfile.name: unknown profile"),
    # ---------------------------------------------------------------- --config tables and keys
    Case("config-unknown-table", [*TRAIN, "--config", "{case}/c.toml", "-o", "{case}/o"], r"c.toml: \[modle\]",
         _file("c.toml", "[modle]\nn_hidden = 16\n")),
    Case("config-unknown-model-key", [*TRAIN, "--config", "{case}/c.toml", "-o", "{case}/o"],
         r"c.toml: \[model\].n_hiden", _file("c.toml", "[model]\nn_hiden = 16\n")),
    Case("config-unknown-train-key", [*TRAIN, "--config", "{case}/c.toml", "-o", "{case}/o"],
         r"c.toml: \[train\].epoch", _file("c.toml", "[train]\nepoch = 3\n")),
    Case("config-top-level-key", [*TRAIN, "--config", "{case}/c.toml", "-o", "{case}/o"],
         r"c.toml: \[epochs\]", _file("c.toml", "epochs = 3\n")),
    Case("config-bad-value", [*TRAIN, "--config", "{case}/c.toml", "-o", "{case}/o"], r"c.toml: \[train\]\.lr",
         _file("c.toml", "[train]\nlr = -1.0\n")),
    Case("config-not-toml", [*TRAIN, "--config", "{case}/c.toml", "-o", "{case}/o"], r"c.toml: not a valid",
         _file("c.toml", "[train\n")),
    Case("config-deep-json", [*TRAIN, "--config", "{case}/c.json", "-o", "{case}/o"], r"c.json: nested too deeply",
         _file("c.json", _deep(200_000))),
    Case("config-missing", [*TRAIN, "--config", "{case}/none.toml", "-o", "{case}/o"], r"none.toml: config file"),
    # ---------------------------------------------------------------- npz data and streams
    Case("npz-no-data-flag", ["train", "--task", "npz", "--epochs", "1", "-o", "{case}/o"], r"--data: required"),
    Case("npz-data-missing", ["train", "--task", "npz", "--data", "{case}/none.npz", "-o", "{case}/o"],
         r"--data: file not found"),
    Case("npz-label-huge", ["train", "--task", "npz", "--data", "{case}/d.npz", "-o", "{case}/o"],
         r"d.npz\]\.y: labels must be below",
         _npz("d.npz", x=np.zeros((4, 5, 3), np.uint8), y=np.array([0, 1, 2, 1_000_000_000]))),
    Case("npz-object-array", ["train", "--task", "npz", "--data", "{case}/d.npz", "-o", "{case}/o"],
         r"d.npz\]\.x: cannot be loaded without unpickling",
         _npz("d.npz", x=np.array([[1], "a"], dtype=object), y=np.array([0, 1]))),
    Case("npz-x-ndim", ["train", "--task", "npz", "--data", "{case}/d.npz", "-o", "{case}/o"], r"d.npz\]\.x: must have",
         _npz("d.npz", x=np.zeros((4, 5)), y=np.zeros(4, int))),
    Case("npz-garbage", ["train", "--task", "npz", "--data", "{case}/d.npz", "-o", "{case}/o"],
         r"d.npz\]: not a readable", _file("d.npz", b"PK\x03\x04 not really")),
    Case("npz-y-float", ["train", "--task", "npz", "--data", "{case}/d.npz", "-o", "{case}/o"],
         r"d.npz\]\.y: labels must be integers", _npz("d.npz", x=np.zeros((4, 5, 3)), y=np.zeros(4))),
    Case("stream-channels", ["hil", "--model", Q, "--stream", "{case}/s.npz"], r"s.npz: x: has 3 channels",
         _npz("s.npz", x=np.zeros((2, 5, 3), np.uint8))),
    Case("stream-values", ["hil", "--model", Q, "--stream", "{case}/s.npz"], r"s.npz: x: must hold only 0 and 1",
         _npz("s.npz", x=np.full((2, 5, 8), 2, np.uint8))),
    Case("stream-missing", ["hil", "--model", Q, "--stream", "{case}/none.npz"], r"none.npz: stream file not found"),
    # ---------------------------------------------------------------- flags
    Case("evaluate-limit-0", ["evaluate", RUN, "--limit", "0"], r"--limit"),
    Case("evaluate-limit-negative", ["evaluate", RUN, "--limit", "-5"], r"--limit"),
    Case("train-limit-0", [*TRAIN, "--limit", "0", "-o", "{case}/o"], r"--limit"),
    Case("tune-limit-0", [*TUNE, "--limit", "0", "-o", "{case}/o"], r"--limit"),
    Case("tune-trials-0", [*TUNE[:-8], "--trials", "0", "--study", "s", "-o", "{case}/o"], r"--trials"),
    Case("hil-steps-0", ["hil", "--model", Q, "--stream", "{ws}/stream.npz", "--steps", "0"], r"--steps"),
    Case("verify-checkpoint-and-default", ["verify", RUN, "--default", "-o", "{case}/r"], r"--default"),
    Case("train-task-param-syntax", [*TRAIN, "--task-param", "delay", "-o", "{case}/o"], r"--task-param"),
    Case("train-unknown-task", ["train", "--task", "bogus", "-o", "{case}/o"], r"unknown task"),
    Case("train-unknown-task-param", [*TRAIN, "--task-param", "dealy=3", "-o", "{case}/o"], r"dealy"),
    Case("export-format", ["export", RUN, "--format", "xyz", "-o", "{case}/x"], r"format"),
    Case("tau-sweep-list", ["experiment", "tau-sweep", "--tau-syn", "a,b", "-o", "{case}/o"], r"--tau-syn"),
    Case("unknown-flag", ["quantize", RUN, "--targt", "loihi1", "-o", "{case}/q"], r"--targt"),
    # ---------------------------------------------------------------- resume
    Case("resume-nothing-to-resume", [*TRAIN, "--resume", "-o", "{case}"], r"no resume.json"),
    Case("resume-conflicting-task", [*TRAIN, "--resume", "-o", "{ws}/run"], r"--task: conflicts .*'npz'"),
    Case("resume-conflicting-epochs", ["train", "--resume", "--epochs", "5", "-o", "{ws}/run"],
         r"--epochs: conflicts .*recorded 2"),
    Case("resume-conflicting-hidden", ["train", "--resume", "--hidden", "64", "-o", "{ws}/run"],
         r"--hidden: conflicts"),
    Case("resume-with-config", ["train", "--resume", "--config", "{case}/c.toml", "-o", "{ws}/run"],
         r"--config: cannot be combined", _file("c.toml", "[train]\nepochs = 2\n")),
    Case("resume-json-key-missing", ["train", "--resume", "-o", "{case}/run"], r"resume.json: epoch: missing",
         _run_copy(lambda d: d.pop("epoch"))),
    Case("resume-json-wrong-type", ["train", "--resume", "-o", "{case}/run"], r"resume.json: history: wrong type",
         _run_copy(lambda d: d.update(history="x"))),
    Case("resume-json-garbage", ["train", "--resume", "-o", "{case}/run"], r"resume.json: not valid JSON",
         _run_copy(text="{")),
    Case("resume-json-bad-model", ["train", "--resume", "-o", "{case}/run"], r"resume.json: model.n_hidden",
         _run_copy(lambda d: d["model"].update(n_hidden=0))),
    # ---------------------------------------------------------------- encode (raw input -> the model's spikes)
    Case("encode-missing-raw", ["encode", RUN, "{case}/none.npz", "-o", "{case}/s.npz"], r"none\.npz"),
    Case("encode-output-is-input", ["encode", RUN, "{case}/raw.npz", "-o", "{case}/raw.npz"], r"input of this command",
         _npz("raw.npz", x=np.zeros((2, 40, 1)))),
    Case("encode-output-exists", ["encode", RUN, "{case}/raw.npz", "-o", "{ws}/stream.npz"],
         r"exists; pass --overwrite",
         _npz("raw.npz", x=np.zeros((2, 40, 1)))),
    Case("encode-output-over-model", ["encode", RUN, "{case}/raw.npz", "-o", RUN + ".json", "--overwrite"],
         r"input of this command", _npz("raw.npz", x=np.zeros((2, 40, 1)))),
    Case("encode-nan", ["encode", RUN, "{case}/raw.npz", "-o", "{case}/s.npz"], r"raw\.npz",
         _npz("raw.npz", x=np.full((2, 40, 1), np.nan))),
    # ---------------------------------------------------------------- import (NIR graph -> checkpoint)
    Case("import-missing-file", ["import", "{case}/none.nir", "-o", "{case}/m"], r"none\.nir"),
    Case("import-not-nir", ["import", "{case}/g.nir", "-o", "{case}/m", "--dt", "1e-3"], r"g\.nir",
         _file("g.nir", b"not an hdf5 file")),
    Case("import-output-exists", ["import", "{case}/g.nir", "-o", "{ws}/run", "--dt", "1e-3"], r"exists",
         _file("g.nir", b"not an hdf5 file")),
    # ---------------------------------------------------------------- xylo
    Case("xylo-verify-missing-checkpoint", ["xylo", "verify", "{case}/none.json"], r"none"),
    Case("xylo-verify-unknown-backend", ["xylo", "verify", "--backends", "bogus"], r"--backends"),
    Case("xylo-export-output-exists", ["xylo", "export", "-o", "{ws}/card.md"], r"exists; pass --overwrite"),
    Case("xylo-quantize-loihi-checkpoint", ["quantize", RUN, "--target", "xylo-audio2", "-o", "{case}/q"],
         r"model\.json: an rsnn-deploy \(Loihi-style\) checkpoint"),
    # ---------------------------------------------------------------- lava-env
    Case("lava-env-unknown-flag", ["lava-env", "--chek"], r"--chek"),
    # ---------------------------------------------------------------- storage URLs (a closed local port only)
    Case("storage-not-url", [*TUNE, "--storage", "not a url", "-o", "{case}/o"], r"--storage: not a database URL"),
    Case("storage-mysql", [*TUNE, "--storage", "mysql://u:p@127.0.0.1/db", "-o", "{case}/o"],
         r"--storage: unsupported database"),
    Case("storage-memory", [*TUNE, "--storage", "sqlite:///:memory:", "-o", "{case}/o"], r"--storage: .*in-memory"),
    Case("storage-sqlite-no-folder", [*TUNE, "--storage", "sqlite:///{case}/none/s.db", "-o", "{case}/o"],
         r"--storage: folder"),
    Case("storage-postgresql-closed-port", [*TUNE, "--storage", "postgresql://u:pw@127.0.0.1:1/db", "-o", "{case}/o"],
         r"--storage: cannot open"),
    Case("storage-postgresql-no-password", [*TUNE, "--storage", "postgresql://u@127.0.0.1:1/db", "-o", "{case}/o"],
         r"--storage: cannot open"),
    Case("storage-postgresql-bad-port", [*TUNE, "--storage", "postgresql://u:pw@127.0.0.1:x/db", "-o", "{case}/o"],
         r"--storage: not a database URL"),
    Case("storage-missing-driver", [*TUNE, "--storage", "postgresql+asyncpg://u@127.0.0.1:1/db", "-o", "{case}/o"],
         r"--storage: cannot load the database driver"),
]


def test_corpus_is_large_and_covers_every_command():
    from rsnn_deploy.cli._app import _register_optional_commands, cli

    _register_optional_commands()
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)
    covered = {c.args[0] for c in CASES}
    assert set(cli.commands) <= covered, set(cli.commands) - covered


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, ws: Path, tmp_path: Path, capsys):
    case_dir = tmp_path / "case"
    case_dir.mkdir()
    if case.setup is not None:
        case.setup(ws, case_dir)
    args = [a.replace("{ws}", str(ws)).replace("{case}", str(case_dir)) for a in case.args]
    before = _tree(ws, case_dir)
    capsys.readouterr()
    rc = main(args)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert rc == 2, (rc, out[-500:], err[-2000:])
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    assert lines[0].startswith("rsnn-deploy: error: "), lines[0]
    assert re.search(case.pattern, lines[0]), lines[0]
    print(f"{case.id}: {lines[0]}")
    assert _tree(ws, case_dir) == before, "files changed"
