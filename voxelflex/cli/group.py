"""The command-group class every ``voxelflex`` Typer app uses, and the earlier names.

Errors become one-line messages (exit status 2), also the OSErrors of a location the user
cannot write (permissions, a read-only file system, a full disk, a file where an output folder
goes); help is plain text wrapped to
the terminal, nothing cut off at 80 columns, with the earlier VoxelFlex's command names listed
after the main commands.
"""

from __future__ import annotations

import errno
import os

import typer
from typer.core import TyperGroup

from voxelflex.errors import VoxelflexError
from voxelflex.paths import file_in_the_way

__all__ = ["ALIASES", "VoxelflexGroup", "command_group", "file_system_message"]

# The earlier VoxelFlex's command names → the command each now runs.
ALIASES = {"preprocess": "index build", "visualize": "plot"}


# errno → what it means for the user and the fix; the OSErrors the CLI turns into messages.
_FILE_SYSTEM_ERRORS = {
    errno.EACCES: "permission denied; choose a folder you may write to (or read, for an input)",
    errno.EPERM: "operation not permitted; choose a folder you may write to",
    errno.EROFS: "the file system is read-only; choose a writable output folder",
    errno.ENOSPC: "no space left on the device; free space or choose an output folder on "
    "another disk",
    errno.EDQUOT: "disk quota exceeded; free space or choose an output folder on another disk",
}


def file_system_message(exc: OSError) -> str | None:
    """A one-paragraph message for an OSError of :data:`_FILE_SYSTEM_ERRORS`, or for a folder
    that could not be created because a file stands on its path (None otherwise), naming the
    file when the error does."""
    if exc.errno in (errno.ENOTDIR, errno.EEXIST) and exc.filename:
        # mkdir(exist_ok=True) of an output folder that is a file, or below one (-o
        # results.csv/run): the user's path. Any other EEXIST/ENOTDIR may be a bug: traced back.
        blocker = file_in_the_way(os.fsdecode(exc.filename))
        if blocker is not None:
            return (
                f"cannot write {exc.filename}: {blocker} is a file, not a folder; choose another "
                "output path (or move that file away)"
            )
        return None
    fix = _FILE_SYSTEM_ERRORS.get(exc.errno)
    if fix is None:
        return None
    verb = "cannot access" if exc.errno in (errno.EACCES, errno.EPERM) else "cannot write"
    where = f"{verb} {exc.filename}" if exc.filename else "a file operation failed"
    return f"{where} ({exc.strerror or os.strerror(exc.errno)}): {fix}"


class VoxelflexGroup(TyperGroup):
    """A command group whose errors are messages and whose help is never truncated."""

    def invoke(self, ctx):  # ctx: Typer's (vendored) click Context
        try:
            return super().invoke(ctx)
        except VoxelflexError as exc:
            # typer.Exit, not a ClickException: typer >= 0.26 vendors click and would box
            # (and re-wrap) the message with rich.
            # (the message's URLs are redacted: VoxelflexError)
            typer.secho(f"error: {exc}", err=True, fg="red")
            raise typer.Exit(2) from exc
        except OSError as exc:
            # A location the user chose that cannot be written (or read): permissions, a
            # read-only file system, a full disk. Any other OSError may be a bug: traced back.
            message = file_system_message(exc)
            if message is None:
                raise
            typer.secho(f"error: {message}", err=True, fg="red")
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
