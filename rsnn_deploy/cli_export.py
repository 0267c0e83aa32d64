"""``rsnn-deploy export``: a checkpoint or quantized network to ONNX or NIR (registered on ``cli``)."""

from __future__ import annotations

import click

from rsnn_deploy.cli import cli


@cli.command("export")
@click.argument("network", type=click.Path())
@click.option("--format", "fmt", required=True, metavar="onnx|nir",
              help="onnx (float or integer graph, by input kind) or nir (recurrent CUBA graph).")
@click.option("--graph", default=None, metavar="step|sequence",
              help="ONNX only: one step with explicit state (default) or the whole sequence in a Scan.")
@click.option("-o", "--out", type=click.Path(), required=True, help="Output file (.onnx / .nir).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file (never the input network).")
@click.option("--profile", "profile_path", type=click.Path(), default=None, metavar="PATH",
              help="Hardware profile TOML a quantized network was made with (needed for your own profiles).")
def export_cmd(network: str, fmt: str, graph: str | None, out: str, overwrite: bool, profile_path: str | None) -> None:
    """Export NETWORK (checkpoint or quantized network JSON, told apart by its format field).

    A float checkpoint gives a float32 graph that matches the torch model; a quantized
    network gives an int64 graph bit-exact with the emulator (ONNX) or the network in
    integer units with its integers in metadata (NIR). See docs/export.md.
    """
    from rsnn_deploy.cli_deploy import _profile_inputs, use_profile
    from rsnn_deploy.export import export
    from rsnn_deploy.io import artifact_inputs, guard_outputs

    guard_outputs([out], inputs=[*artifact_inputs(network), *_profile_inputs(profile_path)], overwrite=overwrite)
    use_profile(profile_path)
    path = export(network, fmt, out, graph=graph)
    click.echo(f"{network} -> {path} ({fmt}{'' if graph is None and fmt == 'nir' else ', ' + (graph or 'step')})")
