"""Atomic file writes: write to a temporary sibling, fsync, rename over the target, fsync the
folder.

A crash leaves either the old file or no file, never a half-written one that looks whole.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import tempfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_csv",
    "atomic_write_json",
    "atomic_write_parquet",
    "atomic_write_text",
    "json_safe",
    "temporary_names",
    "write_csv",
]


def temporary_names(targets: str) -> re.Pattern[str]:
    """The names :func:`atomic_path` gives the temporary files of targets whose names match the
    regex ``targets`` (``.NAME.RANDOM[SUFFIX].tmp``): what a killed write leaves behind, for
    the command that owns those targets to clean up."""
    return re.compile(rf"^\.(?:{targets})\.\w+(?:\.[^.]+)?\.tmp$")


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success rename it onto ``target``.

    Parameters
    ----------
    target : path
        Final file path. Its parent folder is created if missing.
    suffix : str
        Suffix for the temporary file (some writers infer the format from it).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # named as temporary_names() finds them
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix + ".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; finished files get normal modes
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
        _fsync_folder(target.parent)
    finally:
        tmp_path.unlink(missing_ok=True)


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable: after a power loss, a file written after this one
    (a manifest after its shards) is never there without it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # a platform that cannot open folders (Windows): the rename stands alone
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(target: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target: str | os.PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``target`` atomically."""
    atomic_write_bytes(target, text.encode("utf-8"))


def json_safe(obj: object) -> object:
    """``obj`` with every NaN and ±inf as None (null), inside dicts, lists and tuples too, numpy
    scalars and decimals as Python numbers and dict keys as strings: what
    :func:`atomic_write_json` writes.

    A metric that is undefined (the Pearson r of constant predictions) is null in voxelflex's
    JSON files, and None in the dict a function returns beside the file. A decimal (DuckDB's
    ``sum`` of an integer column in ``index query``) is a number, not the string ``"1234"``.
    """
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, Decimal):
        return int(obj) if obj == obj.to_integral_value() else float(obj)
    return obj


def atomic_write_json(
    target: str | os.PathLike, obj: object, *, indent: int = 2, default=None
) -> None:
    """Write ``obj`` as strict JSON (a trailing newline) to ``target`` atomically.

    A NaN or infinity raises ``ValueError`` instead of being written as ``NaN``, which is not
    JSON (``json.load`` reads it, most other readers refuse the file): map them to null first
    (:func:`json_safe`).
    ``default`` is as for :func:`json.dumps`.
    """
    text = json.dumps(obj, indent=indent, default=default, allow_nan=False)
    atomic_write_text(target, text + "\n")


def write_csv(table: pa.Table, sink: str | os.PathLike | pa.NativeFile) -> None:
    """Write ``table`` as plain CSV (header line, then rows), the way every voxelflex CSV is.

    NaN in float columns is written as an empty field like every other missing value (pandas
    reads it as NaN, R as NA; a ``nan`` would make the column text in R).
    """
    columns = [
        pc.if_else(pc.is_nan(c), pa.scalar(None, c.type), c) if pa.types.is_floating(c.type) else c
        for c in table.columns
    ]
    pacsv.write_csv(pa.Table.from_arrays(columns, schema=table.schema), sink)


def atomic_write_csv(table: pa.Table, target: str | os.PathLike) -> Path:
    """Write ``table`` with :func:`write_csv` to ``target`` atomically."""
    with atomic_path(target, suffix=".csv") as tmp:
        write_csv(table, tmp)
    return Path(target)


def atomic_write_parquet(table: pa.Table, target: str | os.PathLike, **options) -> Path:
    """Write ``table`` as Parquet to ``target`` atomically, the way every voxelflex table is.

    No min/max statistics on float columns: they omit NaN, and DuckDB then folds ``isnan(x)``
    to false in filtered scans (SQL over predict rows went wrong). Page checksums on: a damaged
    byte fails the read, never changes a value. ``options`` go to
    :func:`pyarrow.parquet.write_table` (``row_group_size``, ``compression``).
    """
    with_stats = [f.name for f in table.schema if not pa.types.is_floating(f.type)]
    with atomic_path(target, suffix=".parquet") as tmp:
        pq.write_table(table, tmp, write_statistics=with_stats, write_page_checksum=True, **options)
    return Path(target)
