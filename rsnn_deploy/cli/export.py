"""``rsnn-deploy export``: a checkpoint or quantized network to ONNX or NIR (registered on ``cli``)."""

from __future__ import annotations

from pathlib import Path

import click

from rsnn_deploy.cli._app import cli


@cli.command("export")
@click.argument("network", type=click.Path())
@click.option("--format", "fmt", required=True, metavar="onnx|nir|lava",
              help="onnx (float or integer graph, by input kind), nir (recurrent CUBA graph), or lava (a quantized "
                   "loihi2 network as a folder Lava 0.10 runs: network.json + run_lava.py).")
@click.option("--graph", default=None, metavar="step|sequence",
              help="ONNX only: one step with explicit state (default) or the whole sequence in a Scan.")
@click.option("--with-encoder", is_flag=True,
              help="Float ONNX sequence graph: take raw values [B, T, D] and encode them in the graph.")
@click.option("--nir-readout", default=None, metavar="li|affine",
              help="NIR only: readout as nir.LI (default) or ending at its Affine, for readers without nir.LI "
                   "(Norse, SpikingJelly); the leak is then in metadata['readout'].")
@click.option("--nir-compat", default=None, metavar="1.0.4",
              help="NIR only: a file nir 1.0.4 reads (Rockpool 3.1, Sinabs 3.1 pin nir <= 1.0.4).")
@click.option("-o", "--out", type=click.Path(), required=True, help="Output file (.onnx / .nir) or folder (lava).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output (never the input network).")
@click.option("--profile", "profile_path", type=click.Path(), default=None, metavar="PATH",
              help="Hardware profile TOML a quantized network was made with (needed for your own profiles).")
def export_cmd(network: str, fmt: str, graph: str | None, with_encoder: bool, nir_readout: str | None,
               nir_compat: str | None, out: str, overwrite: bool, profile_path: str | None) -> None:
    """Export NETWORK (checkpoint or quantized network JSON, told apart by its format field).

    A float checkpoint gives a float32 graph that matches the torch model; a quantized
    network gives an int64 graph bit-exact with the emulator (ONNX) or the network in
    integer units with its integers in metadata (NIR). Both record the model's input code
    in their metadata; --with-encoder also puts it in the float sequence graph. See docs/export.md.
    """
    from rsnn_deploy.cli.deploy import _profile_inputs, use_profile
    from rsnn_deploy.export import export
    from rsnn_deploy.io import artifact_inputs, guard_outputs

    outputs: list[str | Path] = [out]
    if fmt == "lava":  # a folder: guard the files it will hold
        from rsnn_deploy.export._lava import BUNDLE_FILES
        from rsnn_deploy.io import check_writable_path

        check_writable_path(out, "-o", is_dir=True)
        outputs = [Path(out) / name for name in BUNDLE_FILES]
    guard_outputs(outputs, inputs=[*artifact_inputs(network), *_profile_inputs(profile_path)], overwrite=overwrite)
    use_profile(profile_path)
    path = export(network, fmt, out, graph=graph, with_encoder=with_encoder, nir_readout=nir_readout,
                  nir_compat=nir_compat)
    kind = ", " + (graph or "step") if fmt == "onnx" or graph is not None else ""
    click.echo(f"{network} -> {path} ({fmt}{kind})")


@cli.command("lava-env")
@click.option("--check", is_flag=True, help="Only say whether Lava is ready; build nothing.")
def lava_env_cmd(check: bool) -> None:
    """Build (once) the Python 3.10 side environment with lava-nc 0.10 that the ``lava`` backend runs.

    The interpreter comes from RSNN_DEPLOY_LAVA_PYTHON, else pyenv's 3.10; the environment goes to
    ~/.cache/rsnn-deploy/lava-venv-0.10.0 (RSNN_DEPLOY_CACHE moves it). pip's progress is shown.
    """
    from rsnn_deploy.lava_env import ensure_env, find_base_python, lava_python, venv_dir

    ready = lava_python()
    if check:
        if ready:
            click.echo(f"lava: ready ({ready})")
            return
        click.echo(f"lava: not built yet ({venv_dir()}); base Python {find_base_python()}; run rsnn-deploy lava-env")
        return
    py = ready or ensure_env(progress=True)
    click.echo(f"lava: ready ({py})")
