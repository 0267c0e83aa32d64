"""What a finished worker writes beside the study: ``study.json`` and, for two objectives, the Pareto front.

The database is the source of truth (optuna-dashboard reads it); these files are the
small, reviewable summary that can be committed or attached to a report. Each worker
rewrites them atomically when it finishes, so the last one to finish leaves the full view.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsnn_deploy.io import atomic_path, write_json_atomic
from rsnn_deploy.tuning._storage import safe_url


@dataclass
class StudyOutcome:
    """What a worker leaves behind: counts and the study's best trial(s), as plain data."""

    study_name: str
    storage: str
    directions: list[str]
    counts: dict[str, int]
    best: dict[str, Any] | None
    pareto: list[dict[str, Any]]
    summary_path: Path


def study_directions(multi_objective: str | None) -> list[str]:
    """Optuna's directions: accuracy up, and the second objective (if any) down."""
    return ["maximize"] if multi_objective is None else ["maximize", "minimize"]


def study_counts(study: Any) -> dict[str, int]:
    """Trials per state (lower-case names), plus ``finished`` (complete + pruned) and ``all``."""
    from optuna.trial import TrialState

    out = {st.name.lower(): 0 for st in TrialState}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name.lower()] += 1
    out["finished"] = out["complete"] + out["pruned"]
    out["all"] = sum(out[st.name.lower()] for st in TrialState)
    return out


_ATTRS = (
    "val_acc",
    "test_acc",
    "emulated_val_acc",
    "n_hidden",
    "val_spikes_per_sample",
    "test_spikes_per_sample",
    "val_synaptic_ops_per_sample",
    "best_epoch",
    "epochs_run",
    "trial_dir",
    "worker",
    "pruned_at_epoch",
    "error",
)
SECOND_OBJECTIVE_LABEL = {"neurons": "hidden neurons", "spikes": "spikes per sample (val)",
                          "ops": "synaptic ops per sample (val, on the chip)"}


def trial_row(t: Any) -> dict[str, Any]:
    """One trial as plain data: number, state, values, parameters, key metrics, configs."""
    return {
        "number": t.number,
        "state": t.state.name.lower(),
        "values": t.values,
        "params": t.params,
        "retry_of": t.system_attrs.get("failed_trial"),
        **{k: t.user_attrs[k] for k in _ATTRS if k in t.user_attrs},
        "model": t.user_attrs.get("model"),
        "train": t.user_attrs.get("train"),
    }


def pareto_front(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Trials no other trial beats on both objectives (accuracy up, cost down), by rising cost."""
    front = [
        r for r in rows
        if not any(
            o["values"][0] >= r["values"][0] and o["values"][1] <= r["values"][1] and o["values"] != r["values"]
            for o in rows
        )
    ]  # fmt: skip
    return sorted(front, key=lambda r: (r["values"][1], -r["values"][0]))


def write_pareto_png(
    rows: list[dict[str, Any]], front: list[dict[str, Any]], label: str, path: Path, title: str
) -> None:
    """Accuracy against the second objective: every complete trial, the front highlighted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.scatter([r["values"][1] for r in rows], [r["values"][0] for r in rows], c="0.6", s=18, label="trials")
    pts = sorted((r["values"][1], r["values"][0]) for r in front)
    if pts:
        ax.step([p[0] for p in pts], [p[1] for p in pts], where="post", c="C3")
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], c="C3", s=30, label="Pareto front", zorder=3)
    ax.set_xlabel(label)
    ax.set_ylabel("accuracy (objective 1)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def write_study_reports(study: Any, s: Any, task: Any) -> Any:
    """Write ``OUT/study.json`` (+ ``pareto.json``/``pareto.png`` for two objectives); return the outcome."""
    from optuna.trial import TrialState


    out = Path(s.out)
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    rows = [trial_row(t) for t in trials]
    # The report of a budget of N covers the first N finished trials, so that rerunning a
    # smaller budget after the study has grown reproduces its own result.
    finished = [r for r, t in zip(rows, trials, strict=True) if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    considered = finished[: s.n_trials]
    complete = [r for r in considered if r["state"] == "complete"]
    best: dict[str, Any] | None = None
    pareto: list[dict[str, Any]] = []
    if s.multi_objective is None:
        if complete:
            best = max(complete, key=lambda r: (r["values"][0], -r["number"]))
    elif complete:
        pareto = pareto_front(complete)
        label = SECOND_OBJECTIVE_LABEL[s.multi_objective]
        write_json_atomic(out / "pareto.json", {"objectives": ["accuracy", label], "front": pareto})
        write_pareto_png(
            complete,
            pareto,
            label,
            out / "pareto.png",
            f"{s.study_name}: {task.name} {s.variant}, {len(complete)} trials",
        )
    summary = {
        "study": s.study_name,
        "considered_trials": [r["number"] for r in considered],
        "storage": safe_url(s.storage_url),
        "directions": study_directions(s.multi_objective),
        "n_trials": s.n_trials,
        "counts": study_counts(study),
        "settings": study.user_attrs.get("rsnn_deploy"),
        "best": best,
        "pareto": pareto,
        "trials": rows,
    }
    path = out / "study.json"
    write_json_atomic(path, summary)
    return StudyOutcome(s.study_name, summary["storage"], summary["directions"], summary["counts"], best, pareto, path)
