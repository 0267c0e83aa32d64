"""Accuracy benchmark: train each configured run for several seeds, report mean +- std.

Every run goes through the real command line (``rsnn-deploy train --config FILE``), so
the numbers are exactly what a user gets from the shipped config files::

    python benchmarks/accuracy.py                          # every config, default seeds
    python benchmarks/accuracy.py --only mnist1d_rec_adapt --seeds 0 1 2
    python benchmarks/accuracy.py --jobs 2                  # two runs at once, 1 thread each
    python benchmarks/accuracy.py --report-only             # rebuild the table from finished runs

Configs are ``configs/<task>_<name>.toml`` with ``[model]`` and ``[train]`` tables; the
task is the file-name prefix (``mnist1d_`` -> ``mnist1d``, ``sfmnist_row_`` ->
``sfmnist-row``). Runs live in ``runs/accuracy/<config>/seed<S>/`` (git-ignored; the
checkpoints are big). The script is resumable: a seed whose ``model.json`` already holds a
test accuracy is skipped, and an interrupted seed (``resume.json`` without a finished
``model.json``) continues with ``--resume``.

Outputs (committed): ``results/accuracy/<config>.json`` (settings, per-seed metrics,
mean/std, the command of each run) and ``results/accuracy/README.md`` (a Markdown table,
also printed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rsnn_deploy.threads import BLAS_THREAD_VARIABLES

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
RUNS = ROOT / "runs" / "accuracy"
RESULTS = ROOT / "results" / "accuracy"
TASK_PREFIXES = {"mnist1d_": "mnist1d", "sfmnist_row_": "sfmnist-row"}
DEFAULT_SEEDS = {"mnist1d": [0, 1, 2], "sfmnist-row": [0, 1]}


def task_of(config: Path) -> str:
    for prefix, task in TASK_PREFIXES.items():
        if config.stem.startswith(prefix):
            return task
    raise SystemExit(f"{config}: file name must start with one of {', '.join(TASK_PREFIXES)}")


def rsnn_cli() -> list[str]:
    exe = Path(sys.executable).with_name("rsnn-deploy")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "rsnn_deploy.cli"]


def command_for(config: Path, seed: int, out: Path) -> list[str]:
    """The exact CLI call of one run (recorded in the results).

    ``--variant`` and ``--hidden`` are repeated from the config file on purpose: before commit
    63e6117 the CLI's non-None defaults for these two flags (``rec-syn``, 128) silently
    overrode a config file's ``model.variant`` / ``model.n_hidden``; repeating them keeps the
    recorded command explicit and correct on either version. ``summarise`` also refuses a run
    whose checkpoint does not hold the configured model settings.
    """
    model = tomllib.loads(config.read_text()).get("model", {})
    cmd = ["rsnn-deploy", "train", "--task", task_of(config), "--config", str(config.relative_to(ROOT))]
    if "variant" in model:
        cmd += ["--variant", str(model["variant"])]
    if "n_hidden" in model:
        cmd += ["--hidden", str(model["n_hidden"])]
    return [*cmd, "--seed", str(seed), "--quiet", "-o", str(out.relative_to(ROOT))]


def finished(out: Path) -> dict | None:
    """The metrics of a finished run in ``out`` (model.json with a test accuracy), else None."""
    path = out / "model.json"
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return doc if "test_acc" in doc.get("metrics", {}) else None


def run_one(config: Path, seed: int, threads: int) -> tuple[str, int, str]:
    out = RUNS / config.stem / f"seed{seed}"
    if finished(out) is not None:
        return config.stem, seed, "skipped (finished)"
    cmd = rsnn_cli() + command_for(config, seed, out)[1:]
    if (out / "resume.json").is_file():
        cmd.append("--resume")
    elif out.exists() and any(out.iterdir()):
        cmd.append("--overwrite")  # a run that died before its first epoch finished
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **dict.fromkeys(BLAS_THREAD_VARIABLES, str(threads))}
    t0 = time.perf_counter()
    with open(out / "train.log", "a") as log:
        rc = subprocess.call(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    status = "ok" if rc == 0 else f"FAILED (exit {rc}, see {out / 'train.log'})"
    return config.stem, seed, f"{status} in {time.perf_counter() - t0:.0f} s"


def summarise(config: Path) -> dict | None:
    """Collect the finished seeds of ``config`` into one JSON document."""
    cfg = tomllib.loads(config.read_text())
    runs_dir = RUNS / config.stem
    seeds = []
    for out in sorted(runs_dir.glob("seed*"), key=lambda p: int(p.name[4:]) if p.name[4:].isdigit() else -1):
        doc = finished(out)
        if doc is None or not out.name[4:].isdigit():
            continue
        seed = int(out.name[4:])
        history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
        m = doc["metrics"]
        wanted = {**cfg.get("model", {}), **{f"task.{k}": v for k, v in cfg.get("task", {}).items()}}
        task_params = doc.get("task", {}).get("params", {})
        trained = {**doc.get("model", {}), **{f"task.{k}": v for k, v in task_params.items()}}
        wrong = {k: (v, trained.get(k)) for k, v in wanted.items() if trained.get(k) != v}
        if wrong:
            print(
                f"warning: {out} trained other settings than {config.name} (config, trained): {wrong}; skipped",
                file=sys.stderr,
            )
            continue
        seeds.append(
            {
                "seed": seed,
                "test_acc": m["test_acc"],
                "val_acc": m["val_acc"],
                "best_epoch": m["best_epoch"],
                "epochs_run": m["epochs_run"],
                "test_rate": m["test_rate"],
                "final_train_acc": history[-1]["train_acc"] if history else None,
                "train_seconds": sum(h["seconds"] for h in history),
                "seconds_per_epoch": statistics.median(h["seconds"] for h in history) if history else None,
                "command": shlex.join(command_for(config, seed, out)),
                "git_commit": doc.get("git_commit"),
                "versions": doc.get("versions"),
            }
        )
    if not seeds:
        return None
    accs = [s["test_acc"] for s in seeds]
    rates = [s["test_rate"] for s in seeds]
    return {
        "config": str(config.relative_to(ROOT)),
        "task": task_of(config),
        "variant": cfg.get("model", {}).get("variant", "rec-syn"),
        "settings": cfg,
        "n_seeds": len(seeds),
        "test_acc_mean": statistics.fmean(accs),
        "test_acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
        "test_acc_min": min(accs),
        "test_acc_max": max(accs),
        "test_rate_mean": statistics.fmean(rates),
        "train_seconds_mean": statistics.fmean(s["train_seconds"] for s in seeds),
        "seeds": seeds,
        "threads_per_run": 1,
        "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _settings_text(settings: dict) -> str:
    m, t = settings.get("model", {}), settings.get("train", {})
    keys = [
        ("tau_mem_ms", "tau_mem"),
        ("tau_syn_ms", "tau_syn"),
        ("tau_adapt_ms", "tau_adapt"),
        ("adapt_strength", "adapt"),
        ("v_floor", "v_floor"),
        ("tau_out_ms", "tau_out"),
        ("surrogate_slope", "slope"),
        ("train_tau", "train_tau"),
    ]
    parts = [f"{short} {m[k]}" for k, short in keys if k in m]
    parts += [f"{k} {t[k]}" for k in ("lr", "batch_size", "rate_reg", "target_rate", "weight_decay") if k in t]
    parts += [f"{k} {v}" for k, v in settings.get("task", {}).items()]
    return ", ".join(parts)


def table(summaries: list[dict]) -> str:
    lines = [
        "| task | variant | config | settings | seeds | test acc (mean ± std) | min-max | rate (spikes/step) "
        "| epochs | wall time per run |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        epochs = s["settings"].get("train", {}).get("epochs", "")
        lines.append(
            f"| {s['task']} | {s['variant']} | `{s['config']}` | {_settings_text(s['settings'])} | {s['n_seeds']} "
            f"| {100 * s['test_acc_mean']:.2f} ± {100 * s['test_acc_std']:.2f} % "
            f"| {100 * s['test_acc_min']:.1f}-{100 * s['test_acc_max']:.1f} | {s['test_rate_mean']:.3f} "
            f"| {epochs} | {s['train_seconds_mean'] / 60:.1f} min |"
        )
    return "\n".join(lines)


def write_report(configs: list[Path]) -> str:
    RESULTS.mkdir(parents=True, exist_ok=True)
    summaries = []
    for config in configs:
        s = summarise(config)
        if s is None:
            continue
        (RESULTS / f"{config.stem}.json").write_text(json.dumps(s, indent=2) + "\n")
        summaries.append(s)
    text = table(summaries)
    readme = (
        "# Accuracy (generated by `benchmarks/accuracy.py`; do not edit)\n\n"
        "128 hidden neurons, CPU, one thread per run (wall time depends on machine load). "
        "Test accuracy of the checkpoint with the best validation accuracy (10 % of the training set held out); "
        "std is the sample standard deviation over seeds. Per-seed numbers and the exact command of every run "
        "are in the JSON files beside this one.\n\n" + text + "\n"
    )
    (RESULTS / "README.md").write_text(readme)
    return text


def benchmark_configs() -> list[Path]:
    """The config files this benchmark runs: ``configs/<task prefix>*.toml`` (others are ignored)."""
    return sorted(c for c in CONFIGS.glob("*.toml") if c.stem.startswith(tuple(TASK_PREFIXES)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="*", default=None, help="Config names (file stems) to run; default all.")
    ap.add_argument(
        "--seeds",
        nargs="*",
        type=int,
        default=None,
        help="Seeds to run (default: 0 1 2 for mnist1d, 0 1 for sfmnist-row).",
    )
    ap.add_argument("--jobs", type=int, default=1, help="Runs at once (each with --threads threads).")
    ap.add_argument("--threads", type=int, default=1, help="Torch threads per run.")
    ap.add_argument("--report-only", action="store_true", help="Only rebuild the JSON files and the table.")
    args = ap.parse_args(argv)

    configs = benchmark_configs()
    if args.only:
        known = {c.stem: c for c in configs}
        missing = [name for name in args.only if name not in known]
        if missing:
            ap.error(f"unknown config(s) {', '.join(missing)}; known: {', '.join(known)}")
        configs = [known[name] for name in args.only]

    if not args.report_only:
        jobs = [(c, s) for c in configs for s in (args.seeds if args.seeds is not None else DEFAULT_SEEDS[task_of(c)])]
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            for name, seed, status in pool.map(lambda job: run_one(*job, args.threads), jobs):
                print(f"{name} seed {seed}: {status}", flush=True)
    print(write_report(benchmark_configs()))  # the table always covers every config with results
    return 0


if __name__ == "__main__":
    sys.exit(main())
