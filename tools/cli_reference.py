"""Regenerate docs/cli.md from the CLI's own help texts, so the reference never drifts.

Usage: ``python tools/cli_reference.py [--output docs/cli.md]``
"""

from __future__ import annotations

import argparse
import re

import typer

from voxelflex.atomic import atomic_write_text
from voxelflex.cli.main import app

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _commands(group, prefix: list[str]):
    for name in sorted(group.commands):
        cmd = group.commands[name]
        if hasattr(cmd, "commands"):  # a group (Typer vendors its own click)
            yield from _commands(cmd, [*prefix, name])
        else:
            yield [*prefix, name], cmd


def render() -> str:
    """The whole reference as Markdown (plain help text, 100 columns)."""
    root = typer.main.get_command(app)
    parts = [
        "# voxelflex CLI reference\n",
        "Generated from the commands' help by `python tools/cli_reference.py`; do not edit.\n",
        _section("voxelflex", root),
    ]
    parts += [_section("voxelflex " + " ".join(path), cmd) for path, cmd in _commands(root, [])]
    return "\n".join(parts)


def _section(name: str, cmd) -> str:
    text = _ANSI.sub("", cmd.get_help(cmd.context_class(cmd, info_name=name, terminal_width=100)))
    return f"## `{name}`\n\n```text\n{text.rstrip()}\n```\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", default="docs/cli.md")
    args = parser.parse_args()
    atomic_write_text(args.output, render())
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
