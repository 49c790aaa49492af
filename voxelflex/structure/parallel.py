"""Per-file work in worker processes, results back in input order."""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import TypeVar

__all__ = ["ordered_map"]

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """``map(fn, items)`` over ``workers`` processes (1: in this one), in input order.

    At most ``4 * workers`` items are in flight, so memory stays bounded however many files
    there are. Workers are forked, as ``shards build`` does: they start in milliseconds and
    need nothing re-imported; ``fn`` must be a module-level function (or a partial of one).
    """
    if workers <= 1:
        yield from map(fn, items)
        return
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("fork")
    ) as pool:
        pending: deque[Future] = deque()
        it = iter(items)
        for item in it:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 4 * workers:
                break
        while pending:
            result = pending.popleft().result()
            nxt = next(it, None)
            if nxt is not None:
                pending.append(pool.submit(fn, nxt))
            yield result
