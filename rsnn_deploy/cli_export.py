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
@click.option("--with-encoder", is_flag=True,
              help="Float ONNX sequence graph: take raw values [B, T, D] and encode them in the graph.")
@click.option("--nir-readout", default=None, metavar="li|affine",
              help="NIR only: readout as nir.LI (default) or ending at its Affine, for readers without nir.LI "
                   "(Norse, SpikingJelly); the leak is then in metadata['readout'].")
@click.option("--nir-compat", default=None, metavar="1.0.4",
              help="NIR only: a file nir 1.0.4 reads (Rockpool 3.1, Sinabs 3.1 pin nir <= 1.0.4).")
@click.option("-o", "--out", type=click.Path(), required=True, help="Output file (.onnx / .nir).")
def export_cmd(network: str, fmt: str, graph: str | None, with_encoder: bool, nir_readout: str | None,
               nir_compat: str | None, out: str) -> None:
    """Export NETWORK (checkpoint or quantized network JSON, told apart by its format field).

    A float checkpoint gives a float32 graph that matches the torch model; a quantized
    network gives an int64 graph bit-exact with the emulator (ONNX) or the network in
    integer units with its integers in metadata (NIR). Both record the model's input code
    in their metadata; --with-encoder also puts it in the float sequence graph. See docs/export.md.
    """
    from rsnn_deploy.export import export

    path = export(network, fmt, out, graph=graph, with_encoder=with_encoder, nir_readout=nir_readout,
                  nir_compat=nir_compat)
    click.echo(f"{network} -> {path} ({fmt}{'' if graph is None and fmt == 'nir' else ', ' + (graph or 'step')})")
