"""``rsnn-deploy import``: a NIR graph to a float checkpoint (registered on ``cli``)."""

from __future__ import annotations

from pathlib import Path

import click

from rsnn_deploy.cli._app import cli


@cli.command("import")
@click.argument("graph", type=click.Path())
@click.option("-o", "--out", required=True, type=click.Path(),
              help="Output folder: writes OUT/model.{safetensors,json}.")
@click.option("--dt", type=float, default=None, metavar="SECONDS",
              help="The writer's time step, required when the file records none (snnTorch 1.0 / SpikingJelly: 1e-4, "
                   "Norse: 1e-3).")
@click.option("--convention", type=click.Choice(["nir", "snntorch"]), default="nir", show_default=True,
              help="Reset: nir (Norse, SpikingJelly, this toolkit) or snntorch (reset_mechanism='zero' discards the "
                   "next step's input: a one-step refractory period).")
@click.option("--approximate", multiple=True, type=click.Choice(["synaptic-bias", "readout"]),
              help="Accept a named approximation (recorded in the JSON); without it such a graph is refused.")
@click.option("--data", type=click.Path(), default=None,
              help="An .npz (x [N,T,C] spikes, y [N]) recorded as the model's task, for quantize / verify.")
@click.option("--check", multiple=True, type=click.Choice(["norse", "spikingjelly", "snntorch"]),
              help="Compare hidden spikes with this framework's simulation of the same file (repeatable; "
                   "default: every installed one that can load it).")
@click.option("--no-check", is_flag=True, help="Skip the comparison with the frameworks.")
@click.option("--overwrite", is_flag=True, help="Replace the model in an existing OUT.")
def import_cmd(graph: str, out: str, dt: float | None, convention: str, approximate: tuple[str, ...],
               data: str | None, check: tuple[str, ...], no_check: bool, overwrite: bool) -> None:
    """Import GRAPH (.nir): Input -> Affine|Linear -> LIF|CubaLIF (+ recurrence) -> Affine|Linear -> LI -> Output.

    Every NIR parameter is mapped (recorded in OUT/model.json under nir_import) or refused
    by name. See docs/export.md.
    """
    from rsnn_deploy.export._nir_import import import_nir_file
    from rsnn_deploy.io import check_writable_path, guard_outputs

    check_writable_path(out, "-o", is_dir=True)
    guard_outputs([Path(out) / "model.json", Path(out) / "model.safetensors"],
                  inputs=[graph, *([data] if data else [])], overwrite=overwrite)
    rec = import_nir_file(graph, out, dt=dt, convention=convention, approximate=approximate, data=data,
                          overwrite=overwrite, check=() if no_check else (check or ("auto",)))
    nodes = rec["nodes"]
    click.echo(f"{graph} (dt {rec['dt_s']:g} s from {rec['dt_from']}, convention {convention}): "
               f"{nodes['w_in']} -> {nodes['lif']}{' <-> ' + nodes['w_rec'] if 'w_rec' in nodes else ''} -> "
               f"{nodes['w_out']} -> {nodes['readout']}; {len(rec['approximations'])} approximation(s) "
               f"-> {out}/model.json")
    for reader, p in (rec.get("parity") or {}).items():
        if "unsupported" in p:
            click.echo(f"  {reader}: cannot load it ({p['unsupported']})")
            continue
        first = p["first_divergence"]
        click.echo(f"  {reader}: hidden spikes {100 * p['spike_agreement']:.3f} % identical"
                   + ("" if first is None else f", first divergence at step {first['step']} (sample {first['sample']}, "
                                               f"neuron {first['neuron']})")
                   + ("" if p["convention_matches"] else f" (its reset convention differs from --convention "
                                                          f"{convention})"))
