"""The ``rsnn-deploy`` command group and its error boundary.

One boundary for errors (as Optuna's ``cli.main``): anything derived from
:class:`RsnnError` prints one line and exits with code 2; ``--debug`` (or
``RSNN_DEPLOY_DEBUG=1``) shows the traceback instead. Each command group lives in
its own module of this package and registers itself on :func:`cli` when imported.
"""

from __future__ import annotations

import os
import sys
import warnings

import click

from rsnn_deploy.errors import RsnnError

warnings.filterwarnings("ignore", message="This version of `nengo_loihi` has not been tested")

# the modules whose commands make up the command line, imported by main(); a module
# missing from an installation drops its commands, not the command line
COMMAND_MODULES: tuple[str, ...] = tuple(
    f"rsnn_deploy.cli.{name}"
    for name in ("train", "deploy", "tune", "export", "hil", "encode", "nir_import", "xylo")
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.version_option(package_name="rsnn-deploy")
def cli(debug: bool) -> None:
    """Train recurrent spiking networks, quantize them for a chip, and verify what survives."""


def _register_optional_commands() -> None:
    """Commands that live in their own modules register themselves on ``cli``."""
    import importlib

    for mod in COMMAND_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as err:
            if err.name != mod:
                raise


def main(argv: list[str] | None = None) -> int:
    """Entry point: one line per user error (exit 2), tracebacks only with --debug."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("RSNN_DEPLOY_DEBUG") == "1"
    from rsnn_deploy.threads import limit_blas_threads

    limit_blas_threads()  # numpy's BLAS threads spinning against other jobs made verify's counts 16x slower
    _register_optional_commands()
    try:
        cli.main(args=args, prog_name="rsnn-deploy", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.UsageError as err:  # one line naming the flag, as every other refusal
        cmd = err.ctx.command_path if err.ctx is not None else "rsnn-deploy"
        click.echo(f"rsnn-deploy: error: {err.format_message()} (see {cmd} --help)", err=True)
        return err.exit_code
    except click.ClickException as err:
        err.show()
        return err.exit_code
    except RsnnError as err:
        if debug:
            raise
        click.echo(f"rsnn-deploy: error: {err}", err=True)
        return 2
    except OSError as err:  # a path the checks above did not foresee: still one line naming the file
        if debug:
            raise
        where = f"{err.filename}: " if err.filename else ""
        click.echo(f"rsnn-deploy: error: {where}{err.strerror or err}", err=True)
        return 2
    except RecursionError:
        if debug:
            raise
        click.echo("rsnn-deploy: error: input nested too deeply (a JSON/TOML file?)", err=True)
        return 2
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    return 0

