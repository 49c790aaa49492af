"""The ``voxelflex`` command: thin Typer apps per command group, joined here.

Every command only parses options and calls a library function; a :class:`VoxelflexError`
becomes a one-line ``error: ...`` message and exit status 2, never a traceback.
"""

from __future__ import annotations

import typer
from typer.core import TyperGroup

from voxelflex.cli import analysis, demo, index, shards, structure, train
from voxelflex.errors import VoxelflexError

__all__ = ["app", "main"]


class _Group(TyperGroup):
    def invoke(self, ctx):  # ctx: Typer's (vendored) click Context
        try:
            return super().invoke(ctx)
        except VoxelflexError as exc:
            # typer.Exit, not a ClickException: typer >= 0.26 vendors click and would box
            # (and re-wrap) the message with rich.
            typer.secho(f"error: {exc}", err=True, fg="red")
            raise typer.Exit(2) from exc


app = typer.Typer(
    cls=_Group,
    name="voxelflex",
    help="Temperature-aware protein flexibility (RMSF) from voxelized residue environments.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(index.app, name="index")
app.add_typer(shards.app, name="shards")
app.command("preprocess", help="Alias of `voxelflex index build`.")(index.build)
app.command("voxelize")(structure.voxelize)
app.command("features")(structure.features)
app.command("train")(train.train)
app.command("predict")(analysis.predict)
app.command("evaluate")(analysis.evaluate)
app.command("plot")(analysis.plot)
app.command("visualize", help="Alias of `voxelflex plot`.")(analysis.plot)
app.command("demo")(demo.demo)


def main() -> None:
    """Console-script entry point."""
    app()
