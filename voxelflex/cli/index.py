"""`voxelflex index` commands (placeholder until implemented)."""

import typer

app = typer.Typer(no_args_is_help=True, help="index commands.")


@app.command("build")
def build() -> None:
    """Not implemented yet."""
    raise typer.Exit(1)
