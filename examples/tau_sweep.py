"""Sweep the synaptic and adaptation time constants of rec-syn-adapt on MNIST-1D.

Zeng et al. (ICONS 2022) sweep tau_syn and tau_adapt to show that small time constants
suffice. This trains ``rec-syn-adapt`` at every (tau_syn, tau_adapt) of a grid, several
seeds per cell, everything else fixed (``--base``: the tuned settings of a
``paper_steps.py`` / ``experiment steps`` run; else defaults), and writes a heatmap of
test accuracy (``tau_sweep.png``) with ``results.json`` / ``results.md``.

Run::

    python examples/tau_sweep.py --base results/steps-mnist1d/results.json   # 4 x 5 grid, 3 seeds
    python examples/tau_sweep.py --quick                                      # 2 x 2 grid, tiny (< 1 min)

It checks its own result (every cell has every seed and an accuracy in [0, 1], the heatmap
exists) and exits 1 otherwise. Last line: ``RESULT ok cells=... best=...`` or ``RESULT fail: ...``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="2 x 2 grid, tiny budgets (CI smoke run)")
    p.add_argument("--out", type=Path, default=None, help="working folder (default: a temporary folder)")
    p.add_argument("--base", type=Path, default=None, help="results.json of `experiment steps` to start from")
    p.add_argument("--task", default="mnist1d")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from rsnn_deploy.experiment import SweepPlan, run_tau_sweep
    from rsnn_deploy.tasks import load_task

    out = args.out or Path(tempfile.mkdtemp(prefix="tau_sweep_"))
    if args.quick:
        plan = SweepPlan(tau_syn_ms=[2.0, 10.0], tau_adapt_ms=[20.0, 700.0], base=args.base, epochs=2, limit=300,
                         n_hidden=16, seeds=2, target=None, out=out, report_dir=out / "report")  # fmt: skip
    else:
        plan = SweepPlan(tau_syn_ms=[2.0, 5.0, 10.0, 20.0], tau_adapt_ms=[20.0, 50.0, 100.0, 200.0, 700.0],
                         base=args.base, epochs=None, limit=None, n_hidden=None, seeds=3, target=None, out=out,
                         report_dir=out / "report")  # fmt: skip
    results = run_tau_sweep(load_task(args.task), plan)

    problems = []
    want = {(s, a) for s in plan.tau_syn_ms for a in plan.tau_adapt_ms}
    got = {(c["tau_syn_ms"], c["tau_adapt_ms"]): c for c in results["cells"]}
    if set(got) != want:
        problems.append(f"cells missing: {sorted(want - set(got))}")
    for key, c in got.items():
        accs = [r["test_acc"] for r in c["runs"]]
        if len(accs) != plan.seeds or not all(0.0 <= a <= 1.0 for a in accs) or math.isnan(c["test_acc_mean"]):
            problems.append(f"cell {key}: bad runs {accs}")
    png = plan.report_dir / "tau_sweep.png"
    if not png.is_file() or png.read_bytes()[:4] != b"\x89PNG":
        problems.append("tau_sweep.png missing")
    if problems:
        print("RESULT fail: " + "; ".join(problems))
        return 1
    best = max(results["cells"], key=lambda c: c["test_acc_mean"])
    print(f"RESULT ok cells={len(got)} best=tau_syn {best['tau_syn_ms']:g} tau_adapt {best['tau_adapt_ms']:g} "
          f"acc={best['test_acc_mean']:.4f} report={plan.report_dir}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
