"""What the step-by-step table on sfmnist-pixel (784 steps) costs on this machine, from one measured epoch per arm.

Trains each arm of ``experiment steps`` (with ``configs/search_space_memory.toml``'s fixed settings:
ATRLIF for the adaptive arms) for one epoch on the first ``--limit`` training samples, reads the
epoch's wall time from the run's history, and scales it linearly (cost is proportional to samples
x epochs) to the budget given: ``--trials`` x ``--epochs`` tuning runs on ``--samples`` training
samples, then ``--seeds`` x ``--final-epochs`` retrains. Pruning would cut the tuning part; the
estimate does not assume it.

    python scripts/pixel_budget.py -o /tmp/pixel-budget            # prints a Markdown table, writes budget.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ARMS = [  # name, model overrides (n_hidden, variant, adaptation)
    ("lif", {"variant": "lif"}),
    ("rec", {"variant": "rec"}),
    ("rec-syn", {"variant": "rec-syn"}),
    ("rec-adapt", {"variant": "rec-adapt"}),
    ("rec-syn-adapt", {"variant": "rec-syn-adapt"}),
    ("lsnn-control", {"variant": "rec-adapt", "n_hidden": 220, "tau_adapt_ms": 700.0}),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", required=True, type=Path)
    ap.add_argument("--limit", type=int, default=1000, help="training samples of the measured epoch")
    ap.add_argument("--samples", type=int, default=10000, help="training samples of the budget")
    ap.add_argument("--trials", type=int, default=24)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--final-epochs", type=int, default=30)
    args = ap.parse_args()

    import torch

    from rsnn_deploy.config import TrainConfig
    from rsnn_deploy.provenance import collect, finish
    from rsnn_deploy.tasks import load_task
    from rsnn_deploy.train import model_config_for, train
    from rsnn_deploy.tune import load_search_space

    torch.set_num_threads(1)
    record = collect(threads=1)
    space = load_search_space(Path(__file__).resolve().parent.parent / "configs" / "search_space_memory.toml")
    task = load_task("sfmnist-pixel")
    rows = []
    for name, over in ARMS:
        model = {**space.fixed_model, **over}
        cfg = model_config_for(task, **model)
        tcfg = TrainConfig(**{**space.fixed_train, "epochs": 1, "limit": args.limit})
        result = train(task, cfg, tcfg, args.out / name, overwrite=True, progress=False)
        sec = float(result.history[0]["seconds"])
        per_sample_epoch = sec / args.limit
        tune_s = per_sample_epoch * args.samples * args.epochs * args.trials
        final_s = per_sample_epoch * args.samples * args.final_epochs * args.seeds
        rows.append({"arm": name, "n_hidden": cfg.n_hidden, "epoch_s_measured": sec,
                     "tuning_h": tune_s / 3600, "retrain_h": final_s / 3600})
    doc = {"budget": vars(args) | {"out": str(args.out)}, "provenance": finish(record), "arms": rows}
    (args.out / "budget.json").write_text(json.dumps(doc, indent=2))
    print(f"| arm | neurons | measured s / epoch of {args.limit} samples | tuning h | retrain h |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['arm']} | {r['n_hidden']} | {r['epoch_s_measured']:.1f} | {r['tuning_h']:.1f} "
              f"| {r['retrain_h']:.1f} |")
    total = sum(r["tuning_h"] + r["retrain_h"] for r in rows)
    print(f"\nTotal {total:.0f} CPU-hours at {args.trials} trials x {args.epochs} epochs on {args.samples} samples, "
          f"{args.seeds} x {args.final_epochs}-epoch retrains (no pruning assumed).")


if __name__ == "__main__":
    main()
