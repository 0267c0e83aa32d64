"""The step-by-step experiment of Zeng et al. (ICONS 2022) on MNIST-1D, through the Python API.

Five variants (lif, rec, rec-syn, rec-adapt, rec-syn-adapt) and an LSNN-style control
(rec-adapt, tau_adapt = 700 ms, more neurons) are each tuned with Optuna, then their best
settings are retrained with several seeds; the script prints the table of mean ± std test
accuracy and writes ``results.json``, ``results.md`` and ``steps.png``.

Run::

    python examples/paper_steps.py            # the budget of EXPERIMENTS.md (about 40 min on 2 cores)
    python examples/paper_steps.py --quick    # tiny (< 1 min on 2 cores): checks the pipeline, not the science

It checks its own result and exits 1 when something is off: a variant missing from the
table, a seed missing, an accuracy outside [0, 1], or the figure not written. The last
line is machine-readable: ``RESULT ok arms=6 best=...`` or ``RESULT fail: ...``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small matrices: one BLAS thread is faster on shared cores

VARIANTS = ["lif", "rec", "rec-syn", "rec-adapt", "rec-syn-adapt"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny budgets (CI smoke run)")
    p.add_argument("--out", type=Path, default=None, help="working folder (default: a temporary folder)")
    p.add_argument("--task", default="mnist1d")
    p.add_argument("--target", default=None, help="also report emulated accuracy on this profile, when available")
    return p.parse_args(argv)


def budget(quick: bool) -> dict:
    """Quick: 2 trials x 2 epochs on 300 samples, 16 neurons; full: the EXPERIMENTS.md command."""
    if quick:
        return {"n_trials": 2, "control_trials": 1, "epochs": 2, "limit": 300, "n_hidden": 16,
                "control_hidden": 32, "seeds": 2, "final_epochs": 2, "final_limit": 300}  # fmt: skip
    return {"n_trials": 8, "control_trials": 8, "epochs": 12, "limit": None, "n_hidden": None,
            "control_hidden": 220, "seeds": 3, "final_epochs": 40, "final_limit": None}  # fmt: skip


def check(results: dict, printed: str, report_dir: Path, seeds: int) -> list[str]:
    """Everything that must hold of a finished run; returns the problems found."""
    problems = []
    names = [*VARIANTS, "lsnn-control"]
    for name in names:
        arm = results["arms"].get(name)
        if arm is None:
            problems.append(f"{name}: missing from results.json")
            continue
        if len(arm["test_accs"]) != seeds:
            problems.append(f"{name}: {len(arm['test_accs'])} seeds, expected {seeds}")
        if not all(0.0 <= a <= 1.0 for a in arm["test_accs"]):
            problems.append(f"{name}: accuracy outside [0, 1]: {arm['test_accs']}")
        row = next((line for line in printed.splitlines() if line.startswith(f"| {name} |")), None)
        if row is None or f"(n={seeds})" not in row:
            problems.append(f"{name}: no table row with {seeds} seeds in the printed output")
    for f in ("results.json", "results.md", "steps.png"):
        if not (report_dir / f).is_file():
            problems.append(f"{f} was not written")
    if (report_dir / "steps.png").is_file() and (report_dir / "steps.png").read_bytes()[:4] != b"\x89PNG":
        problems.append("steps.png is not a PNG")
    return problems


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(1)  # tens of neurons: one thread beats two on a shared 2-core machine
    from rsnn_deploy.experiment import StepsPlan, run_steps
    from rsnn_deploy.tasks import load_task
    from rsnn_deploy.tune import load_search_space

    b = budget(args.quick)
    out = args.out or Path(tempfile.mkdtemp(prefix="paper_steps_"))
    plan = StepsPlan(
        variants=VARIANTS, n_trials=b["n_trials"], control_trials=b["control_trials"], control=True,
        control_hidden=b["control_hidden"], control_tau_adapt_ms=700.0, epochs=b["epochs"], limit=b["limit"],
        n_hidden=b["n_hidden"], space=load_search_space(), storage=None, study_prefix=None, sampler_seed=0,
        seeds=b["seeds"], final_epochs=b["final_epochs"], final_limit=b["final_limit"], target=args.target,
        out=out, report_dir=out / "report",
    )  # fmt: skip
    printed: list[str] = []

    def echo(line: str) -> None:
        printed.append(line)
        print(line, flush=True)

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    results = run_steps(load_task(args.task), plan, echo=echo)
    problems = check(results, "\n".join(printed), plan.report_dir, b["seeds"])
    if problems:
        print("RESULT fail: " + "; ".join(problems))
        return 1
    best = max(results["arms"], key=lambda n: results["arms"][n]["test_acc_mean"])
    print(f"RESULT ok arms={len(results['arms'])} best={best} "
          f"acc={results['arms'][best]['test_acc_mean']:.4f} report={plan.report_dir}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
