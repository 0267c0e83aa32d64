"""Writing a parity report: ``report.json`` (every number), ``report.md`` (tables), PNG figures.

Kept apart from :mod:`rsnn_deploy.verify` so that measuring and presenting stay separate:
the JSON is the record, the Markdown and the figures are views of it (plus a few
arrays for the plots). Figures use matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rsnn_deploy.io import atomic_path, write_json_atomic, write_text_atomic

__all__ = ["FIGURES", "cost_markdown", "gap_table", "markdown", "write_cost_figure", "write_figures", "write_report"]

FIGURES: tuple[str, ...] = (
    "accuracy_by_backend.png",
    "raster_float_vs_emulator.png",
    "tau_effective_vs_nominal.png",
    "firing_rates.png",
    "cost_per_sample.png",
)


def _pct(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f} %"


def gap_table(report: dict[str, Any]) -> str:
    """The accuracy and gap table printed by ``rsnn-deploy verify`` (plain text, fixed width)."""
    lines = [f"{'backend':<16}{'accuracy':>10}  {'95 % interval':<17}{'samples':>8}{'wall s':>9}"]
    for name, r in report["backends"].items():
        lo, hi = r["ci95"]
        lines.append(f"{name:<16}{100 * r['accuracy']:>9.2f}%  [{100 * lo:5.1f}, {100 * hi:5.1f}] %  "
                     f"{r['samples']:>7}{r['wall_s']:>9.2f}")
    for g in report["gaps"]:
        lines.append(f"gap {g['from']} -> {g['to']}: {g['gap_pp']:+.2f} pp on {g['samples']} samples")
    for key, a in report["agreement"].items():
        verdict = "identical" if not a["bug"] else f"BUG: first divergence {a['first_divergence']}"
        lines.append(f"spikes {key.replace('_vs_', ' vs ')}: {100 * a['spike_agreement']:.3f} % on "
                     f"{a['samples']} samples ({verdict})")
    for s in report.get("skipped_backends", []):
        lines.append(f"skipped {s['backend']}: {s['reason']}")
    return "\n".join(lines)


def _num(v: Any) -> str:
    """One time constant (or a per-neuron list, shown as its mean)."""
    if isinstance(v, list):
        return f"{np.mean(v):.4g} (mean)"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _tau_rows(q: dict[str, Any]) -> list[str]:
    rows = []
    for t in q.get("time_constants") or []:
        d = t["decay_int"] if not isinstance(t["decay_int"], list) else "per neuron"
        rows.append(f"| {t['name']} | {_num(t['trained_ms'])} | {d} | {_num(t['effective_ms'])} | "
                    f"{100 * t['max_rel_error']:.2f} % |")
    return rows


def markdown(report: dict[str, Any]) -> str:
    """``report.md``: what a reader needs to judge the deployment, in tables."""
    ck = report["checkpoint"]
    out = [
        f"# Parity report: {ck['name']} on {report['profile']}",
        "",
        f"Task `{ck['task']}`, variant `{ck['variant']}`, {ck['neurons']} hidden neurons; split `{report['split']}`: "
        f"{report['samples']['fast']} samples (slow backends: first {report['samples']['slow']}).",
        "",
        "## Accuracy by backend",
        "",
        "| backend | accuracy | 95 % interval (Wilson) | samples | wall time (s) | samples/s | mean rate |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for name, r in report["backends"].items():
        lo, hi = r["ci95"]
        out.append(f"| {name} | {_pct(r['accuracy'])} | [{_pct(lo, 1)}, {_pct(hi, 1)}] | {r['samples']} | "
                   f"{r['wall_s']:.2f} | {r['samples_per_s']} | {r['mean_rate']:.4f} |")
    for s in report.get("skipped_backends", []):
        out.append(f"| {s['backend']} | skipped: {s['reason']} | | | | | |")
    out += ["", "## Gaps (percentage points, on the samples both ran)", "", "| from | to | gap | samples |",
            "|---|---|---:|---:|"]
    out += [f"| {g['from']} | {g['to']} | {g['gap_pp']:+.2f} | {g['samples']} |" for g in report["gaps"]]
    if report["agreement"]:
        out += ["", "## Integer backends vs the emulator (must be 100 %)", "",
                "| comparison | samples | spike agreement | identical samples | predictions | first divergence |",
                "|---|---:|---:|---:|---:|---|"]
        for key, a in report["agreement"].items():
            d = a["first_divergence"]
            where = "none" if d is None else (f"**BUG**: sample {d['sample']}, step {d['step']}, neuron {d['neuron']}, "
                                              f"{d['variable']} ({d['b']} vs emulator {d['a']})")
            out.append(f"| {key.replace('_vs_', ' vs ')} | {a['samples']} | {_pct(a['spike_agreement'], 3)} | "
                       f"{_pct(a['identical_samples'], 1)} | {_pct(a['prediction_agreement'], 1)} | {where} |")
    fv = report.get("float_vs_emulator")
    if fv:
        fd, rm = fv["first_divergent_step"], fv["membrane_rmse_float_units"]
        corr = fv["rate_correlation"]
        out += ["", "## Float model vs emulator", "",
                f"- spike agreement: {_pct(fv['spike_agreement'], 3)}; per-neuron rate correlation: "
                f"{'n/a' if corr is None else f'{corr:.4f}'}; mean rate float {fv['rates']['float']:.4f}, "
                f"emulator {fv['rates']['emulator']:.4f}",
                f"- first divergent step (of {fv['samples_with_states']} samples with states): earliest {fd['min']}, "
                f"median {fd['median']}, never diverged {fd['never_diverged']}",
                f"- membrane RMSE (float units, threshold {rm['threshold']:g}): before the first divergence "
                f"{rm['before_first_divergence']:.4g}, over all steps {rm['all_steps']:.4g}"]
    q = report["quantization"]
    out += ["", "## Quantization", "", f"- block sizes {q['block_sizes']}, float scale {q['float_scale']}, "
            f"integer threshold(s) {q['vth']}, adaptation: {q['adaptation']}"]
    rows = _tau_rows(q)
    if rows:
        out += ["", "| time constant | trained (ms) | decay register | effective (ms) | error |",
                "|---|---:|---:|---:|---:|", *rows]
    if q.get("weights"):
        out += ["", "| connection | exponent | bits used | levels | clipped | zeroed | RMS error (rel.) |",
                "|---|---:|---:|---:|---:|---:|---:|"]
        out += [f"| {w['connection']} | {w['exponent']} | {w['bits_used']} | {w['levels_used']} | {w['clipped']} | "
                f"{w['zeroed']} | {w['rms_error_rel']:.2e} |" for w in q["weights"]]
    r = report["resources"]
    out += ["", "## Resources", "", f"- cores: {r['cores']}; input axons {r['input_axons']}, output axons "
            f"{r['output_axons']}; synapse memory {r['synapse_bits']} bits (largest core "
            f"{r['synapse_bits_per_core_max']} of {r['synapse_bits_per_core_limit']})", "", "## Wall time (s)", "",
            "| " + " | ".join(report["wall_time_s"]) + " |", "|" + "---:|" * len(report["wall_time_s"]),
            "| " + " | ".join(f"{v:.2f}" for v in report["wall_time_s"].values()) + " |"]
    out += cost_markdown(report)
    if report.get("figures"):
        out += ["", "## Figures", ""] + [f"![{Path(f).stem}]({f})" for f in report["figures"]]
    return "\n".join(out) + "\n"


def write_figures(report: dict[str, Any], data: dict[str, Any], out_dir: Path) -> list[str]:
    """Write the PNG figures into ``out_dir``; returns their file names (those with data to show)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[str] = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        with atomic_path(out_dir / name) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
        plt.close(fig)
        written.append(name)

    # accuracy by backend with Wilson intervals
    names = list(report["backends"])
    acc = np.array([report["backends"][n]["accuracy"] for n in names]) * 100
    ci = np.array([report["backends"][n]["ci95"] for n in names]) * 100
    fig, ax = plt.subplots(figsize=(1.4 * len(names) + 2, 3.2))
    ax.bar(range(len(names)), acc, color="#4c72b0")
    ax.errorbar(range(len(names)), acc, yerr=[acc - ci[:, 0], ci[:, 1] - acc], fmt="none", ecolor="k", capsize=4)
    ax.set_xticks(range(len(names)), [f"{n}\n(n={report['backends'][n]['samples']})" for n in names], fontsize=8)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(max(0.0, float(ci[:, 0].min()) - 10), 100)
    ax.set_title("accuracy by backend (95 % Wilson intervals)")
    save(fig, FIGURES[0])

    traces = data.get("traces", {})
    if "torch-float" in traces and "emulator" in traces:
        f, e = traces["torch-float"].spikes[0], traces["emulator"].spikes[0]
        fig, ax = plt.subplots(figsize=(7, 4))
        tf, nf = np.nonzero(f)
        te, ne = np.nonzero(e)
        ax.scatter(tf, nf, s=14, marker="o", facecolors="none", edgecolors="#4c72b0", label="float (torch)")
        ax.scatter(te, ne, s=10, marker="x", color="#dd8452", label="emulator (integer)")
        diff = np.nonzero(f != e)
        if diff[0].size:
            ax.axvline(diff[0].min(), color="r", lw=0.8, ls="--", label=f"first divergence (step {diff[0].min()})")
        ax.set_xlabel("step")
        ax.set_ylabel("neuron")
        ax.set_title("spike raster, sample 0")
        ax.legend(loc="upper right", fontsize=7)
        save(fig, FIGURES[1])

    taus = (report["quantization"] or {}).get("time_constants") or []
    if taus:
        fig, ax = plt.subplots(figsize=(4.5, 4))
        for t in taus:
            tr = np.atleast_1d(np.asarray(t["trained_ms"], dtype=float))
            ef = np.atleast_1d(np.asarray(t["effective_ms"], dtype=float))
            ax.scatter(tr, np.broadcast_to(ef, tr.shape), label=t["name"], s=30)
        lim = [min(min(np.atleast_1d(t["trained_ms"])) for t in taus) * 0.8,
               max(max(np.atleast_1d(t["trained_ms"])) for t in taus) * 1.25]
        ax.plot(lim, lim, "k--", lw=0.8, label="effective = nominal")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("nominal (trained) tau (ms)")
        ax.set_ylabel("effective tau on the 12-bit grid (ms)")
        ax.legend(fontsize=8)
        save(fig, FIGURES[2])

    rate_sets = [(k, traces[k].spikes.mean(axis=(0, 1))) for k in ("torch-float", "emulator", "nengo-loihi")
                 if k in traces]
    if rate_sets:
        fig, ax = plt.subplots(figsize=(5.5, 3.5))
        top = max(float(r.max()) for _, r in rate_sets) or 1.0
        bins = np.linspace(0, top, 30)
        for k, r in rate_sets:
            ax.hist(r, bins=bins, histtype="step", lw=1.5, label=f"{k} (mean {r.mean():.3f})")
        ax.set_xlabel("firing rate per neuron (spikes / step)")
        ax.set_ylabel("neurons")
        ax.legend(fontsize=8)
        save(fig, FIGURES[3])
    written += write_cost_figure(report, out_dir)
    return written


def write_report(result: Any, out_dir: str | Path, figures: bool = True) -> Path:
    """Write ``report.json``, ``report.md`` and the figures of a :class:`~rsnn_deploy.verify.VerifyResult`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = result.report
    report["figures"] = write_figures(report, result.figure_data, out) if figures else []
    write_json_atomic(out / "report.json", report)
    write_text_atomic(out / "report.md", markdown(report))
    return out / "report.json"


# ----------------------------------------------------------------------------- cost (rsnn_deploy.cost)

COST_FIGURE = "cost_per_sample.png"


def cost_markdown(report: dict[str, Any]) -> list[str]:
    """The ``## Cost on the chip`` section: operations per sample by source, per core, NeuroBench, energy."""
    c = report.get("cost")
    if not c:
        return []
    ev, sp, nu = c["synaptic_events"], c["spikes"], c["neuron_updates"]
    out = ["", f"## Cost on the chip ({c['profile']}, {c['samples']} samples of {c['steps']} steps)", "",
           f"Exact counts from the emulator's integer traces ({c['definitions']}).", "",
           "| per sample | mean | min | max | total |", "|---|---:|---:|---:|---:|"]
    for src in ("input", "recurrent", "readout"):
        s = ev["per_sample"][src]
        label = f"synaptic events, {src}" + (" (host)" if src == "readout" else "")
        out.append(f"| {label} | {s['mean']:,.1f} | {s['min']:,.0f} | {s['max']:,.0f} | {ev['total'][src]:,} |")
    s = sp["hidden_per_sample"]
    out.append(f"| hidden spikes | {s['mean']:,.1f} | {s['min']:,.0f} | {s['max']:,.0f} | {sp['hidden_total']:,} |")
    s = sp["input_per_sample"]
    out.append(f"| input spikes | {s['mean']:,.1f} | {s['min']:,.0f} | {s['max']:,.0f} | {sp['input_total']:,} |")
    for key, label in (("active_per_sample", "neuron updates, active"),
                       ("inactive_per_sample", "neuron updates, idle")):
        s = nu[key]
        if s is not None:
            out.append(f"| {label} | {s['mean']:,.1f} | {s['min']:,.0f} | {s['max']:,.0f} | |")
    if len(c["per_core"]) > 1:
        out += ["", "| core | neurons | synaptic events / sample | spikes / sample | active updates / sample |",
                "|---:|---:|---:|---:|---:|"]
        out += [f"| {k['core']} | {k['neurons']} | {k['synaptic_events_per_sample']:,.1f} | "
                f"{k['spikes_per_sample']:,.1f} | {k['active_updates_per_sample'] or 0:,.1f} |" for k in c["per_core"]]
    st = c.get("static") or {}
    if st:
        out += ["", f"- static: {st['weights_nonzero']:,} non-zero of {st['weights_total']:,} weights "
                f"({st['weight_bits']}-bit), synapse memory {st['synapse_memory_bits']:,} bits, neuron state "
                f"{st['state_bits_per_neuron']} bits per neuron; footprint {st['footprint_bytes']:,} bytes "
                f"({st['footprint_definition']})"]
    nb, nbf = c["neurobench"], c.get("neurobench_float_model")
    rows = [("ActivationSparsity", lambda d: f"{d['ActivationSparsity']:.4f}"),
            ("SynapticOperations Effective_ACs", lambda d: f"{d['SynapticOperations']['Effective_ACs']:,.1f}"),
            ("SynapticOperations Effective_MACs", lambda d: f"{d['SynapticOperations']['Effective_MACs']:,.0f}"),
            ("SynapticOperations Dense", lambda d: f"{d['SynapticOperations']['Dense'] or 0:,}"),
            ("MembraneUpdates", lambda d: "n/a" if d["MembraneUpdates"] is None else f"{d['MembraneUpdates']:,.1f}"),
            ("Footprint (bytes)", lambda d: f"{d['Footprint'] or 0:,}"),
            ("ConnectionSparsity", lambda d: f"{d['ConnectionSparsity']:.4f}")]
    out += ["", "NeuroBench metrics (NeuroBench 2.3 names and definitions, per sample):", "",
            "| metric | integer network | float model |" if nbf else "| metric | integer network |",
            "|---|---:|---:|" if nbf else "|---|---:|"]
    out += [f"| {name} | {fmt(nb)} |" + (f" {fmt(nbf)} |" if nbf else "") for name, fmt in rows]
    en, la = c["energy"], c["latency"]
    out.append("")
    if en["available"]:
        e = en["per_inference_nj"]
        parts = ", ".join(f"{k} {v:,.1f}" for k, v in en["per_inference_parts_nj"].items())
        out.append(f"- energy per inference: {e['mean']:,.1f} nJ (min {e['min']:,.1f}, max {e['max']:,.1f}); "
                   f"parts (nJ): {parts}; excludes {en['excludes']}")
    else:
        out.append(f"- energy: not reported ({en['reason']})")
    if la["available"]:
        lt = la["per_inference_us"]
        out.append(f"- latency per inference: {lt['mean']:,.2f} us ({la['per_step_ns']:,.1f} ns per step, of which "
                   f"{la['barrier_sync_ns_per_step']:g} ns barrier sync; {la['model']})")
    else:
        out.append(f"- latency: not reported ({la['reason']})")
    if c.get("cost_source"):
        out.append(f"- figures: {c['cost_source']}")
    return out


def write_cost_figure(report: dict[str, Any], out_dir: Path) -> list[str]:
    """``cost_per_sample.png``: synaptic events per sample by source; energy per inference by part."""
    c = report.get("cost")
    if not c:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    srcs = ["input", "recurrent", "readout"]
    stats = [c["synaptic_events"]["per_sample"][s] for s in srcs]
    mean = np.array([s["mean"] for s in stats])
    ax1.bar(range(3), mean, color=["#4c72b0", "#dd8452", "#8c8c8c"])
    ax1.errorbar(range(3), mean, yerr=[mean - [s["min"] for s in stats], [s["max"] for s in stats] - mean],
                 fmt="none", ecolor="k", capsize=4)
    ax1.set_xticks(range(3), ["input", "recurrent", "readout\n(host)"])
    ax1.set_ylabel("synaptic events per sample")
    ax1.set_title(f"operations per sample ({c['profile']}; bars: min-max)", fontsize=9)
    en = c["energy"]
    if en["available"]:
        parts = en["per_inference_parts_nj"]
        bottom = 0.0
        for (k, v), col in zip(parts.items(), ["#4c72b0", "#55a868", "#c44e52", "#8172b2"], strict=False):
            ax2.bar([0], [v], bottom=bottom, color=col, label=f"{k} ({v:,.1f} nJ)")
            bottom += v
        ax2.set_xticks([0], [c["profile"]])
        ax2.set_ylabel("energy per inference (nJ)")
        ax2.set_title(f"energy per inference: {en['per_inference_nj']['mean']:,.1f} nJ", fontsize=9)
        ax2.legend(fontsize=7)
    else:
        ax2.axis("off")
        ax2.text(0.5, 0.5, f"energy not reported:\n{en['reason']}", ha="center", va="center", wrap=True, fontsize=9)
    fig.tight_layout()
    fig.savefig(out_dir / COST_FIGURE, dpi=110)
    plt.close(fig)
    return [COST_FIGURE]
