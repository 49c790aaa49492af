"""Split files: one domain id a line; blank lines and ``#`` comments are ignored."""

from __future__ import annotations

import os
from collections.abc import Mapping

import pyarrow as pa

from voxelflex.errors import InputError
from voxelflex.paths import read_text_file

__all__ = ["read_split_file", "read_splits"]

_EXAMPLES = 10


def read_split_file(
    path: str | os.PathLike, *, what: str = "split file", option: str | None = None
) -> list[str]:
    """Domain ids listed in ``path``, in file order, without repeats.

    A ``#`` starts a comment (whole line or trailing); blank lines are skipped. Also reads the
    domain lists of ``voxelflex predict --domains-file``.

    Parameters
    ----------
    path : path
        Text file, one domain id a line.
    what, option : str
        What the file is and the option that named it (None: not named), for the errors.

    Raises
    ------
    InputError
        A missing file, or one that is not UTF-8 text (:func:`voxelflex.paths.read_text_file`).
    """
    text = read_text_file(path, what=what, option=option)
    ids = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return list(dict.fromkeys(i for i in ids if i))


def read_splits(files: Mapping[str, str | os.PathLike | None]) -> pa.Table:
    """Read the split files of each split name and check that no domain is in two of them.

    Parameters
    ----------
    files : mapping of split name -> path or None
        E.g. ``{"train": "train.txt", "val": None, "test": "test.txt"}``.

    Returns
    -------
    pyarrow.Table
        Columns ``domain_id`` (str) and ``split`` (str), one row per listed domain.

    Raises
    ------
    InputError
        A domain listed in more than one split (leakage), naming the domains and files.
    """
    where: dict[str, list[str]] = {}
    rows: tuple[list[str], list[str]] = ([], [])
    for split, path in files.items():
        if path is None:
            continue
        # named as index build and train take it (train builds its index with these files)
        option = f"--{split} (index build) or --{split}-split / data.{split}_split (train)"
        for domain_id in read_split_file(path, what=f"{split} split file", option=option):
            where.setdefault(domain_id, []).append(f"{split} ({os.fspath(path)})")
            rows[0].append(domain_id)
            rows[1].append(split)
    leaked = {d: w for d, w in where.items() if len(w) > 1}
    if leaked:
        shown = list(leaked.items())[:_EXAMPLES]
        examples = "; ".join(f"{d} in {' and '.join(w)}" for d, w in shown)
        raise InputError(
            f"{len(leaked)} domains are in more than one split (leakage): {examples}; "
            "list each domain in one split file only"
        )
    return pa.table(
        {"domain_id": pa.array(rows[0], pa.string()), "split": pa.array(rows[1], pa.string())}
    )
