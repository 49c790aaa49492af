"""The command-group class every ``voxelflex`` Typer app uses, and the earlier names.

Errors become one-line messages (exit status 2); help is plain text wrapped to the terminal,
nothing cut off at 80 columns, with the earlier VoxelFlex's command names listed after the main
commands.
"""

from __future__ import annotations

import typer
from typer.core import TyperGroup

from voxelflex.errors import VoxelflexError

__all__ = ["ALIASES", "VoxelflexGroup", "command_group"]

# The earlier VoxelFlex's command names → the command each now runs.
ALIASES = {"preprocess": "index build", "visualize": "plot"}


class VoxelflexGroup(TyperGroup):
    """A command group whose errors are messages and whose help is never truncated."""

    def invoke(self, ctx):  # ctx: Typer's (vendored) click Context
        try:
            return super().invoke(ctx)
        except VoxelflexError as exc:
            # typer.Exit, not a ClickException: typer >= 0.26 vendors click and would box
            # (and re-wrap) the message with rich.
            typer.secho(f"error: {exc}", err=True, fg="red")
            raise typer.Exit(2) from exc

    def format_commands(self, ctx, formatter) -> None:
        """Main commands, then the aliases; each command's whole first sentence, wrapped
        (click's default cuts it to the terminal width with '...')."""
        rows: dict[str, list[tuple[str, str]]] = {"Commands": [], "Aliases": []}
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is None or cmd.hidden:
                continue
            section = "Aliases" if name in ALIASES else "Commands"
            rows[section].append((name, cmd.get_short_help_str(limit=10_000)))
        for section, items in rows.items():
            if items:
                with formatter.section(section):
                    formatter.write_dl(items)


def command_group(help: str, **kwargs) -> typer.Typer:
    """A Typer app with :class:`VoxelflexGroup` and plain (click) help text.

    Rich's boxed help cuts long option names and texts with '…' on an 80-column terminal;
    click's plain help wraps them instead.
    """
    return typer.Typer(
        cls=VoxelflexGroup,
        help=help,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        rich_markup_mode=None,
        **kwargs,
    )
