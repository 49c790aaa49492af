"""Command-line argument types shared by the benchmark scripts."""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["count"]


def count(minimum: int = 1) -> Callable[[str], int]:
    """An argparse ``type`` for an integer count of at least ``minimum``.

    A zero or negative count (``--iters 0``) would otherwise reach a division or an empty median
    and end in a Python traceback instead of a usage line.
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below the minimum {minimum}")
        return value

    return parse
