"""The ``voxelflex`` command: thin Typer apps per command group, joined here.

Every command only parses options and calls a library function; a :class:`VoxelflexError`
becomes a one-line ``error: ...`` message and exit status 2, never a traceback. Help is plain
text wrapped to the terminal (nothing cut off at 80 columns), with the earlier VoxelFlex's
command names listed after the main commands.
"""

from __future__ import annotations

import inspect
from typing import Annotated

import typer

from voxelflex import __version__
from voxelflex.cli import analysis, config, datasets, demo, index, shards, structure, train
from voxelflex.cli.group import ALIASES, command_group

__all__ = ["app", "main"]


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"voxelflex {__version__}")
        raise typer.Exit()


app = command_group(
    "Temperature-aware protein flexibility (RMSF) from voxelized residue environments.",
    name="voxelflex",
)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Temperature-aware protein flexibility (RMSF) from voxelized residue environments.

    \b
    A first run (the whole pipeline on generated data, about 2 minutes):
      voxelflex demo
    Help on a command: voxelflex COMMAND --help (e.g. voxelflex train --help).
    """


app.add_typer(index.app, name="index")
app.add_typer(shards.app, name="shards")
app.add_typer(config.app, name="config")
app.add_typer(datasets.app, name="import")
app.command("voxelize")(structure.voxelize)
app.command("features")(structure.features)
app.command("train")(train.train)
app.command("predict")(analysis.predict)
app.command("evaluate")(analysis.evaluate)
app.command("plot")(analysis.plot)
app.command("demo")(demo.demo)
for alias, target in (("preprocess", index.build), ("visualize", analysis.plot)):
    app.command(
        alias,
        help=f"Alias of `voxelflex {ALIASES[alias]}` (the earlier VoxelFlex's name).\n\n"
        + inspect.cleandoc(target.__doc__ or ""),
        short_help=f"Alias of `voxelflex {ALIASES[alias]}`.",
    )(target)


def main() -> None:
    """Console-script entry point."""
    app()
