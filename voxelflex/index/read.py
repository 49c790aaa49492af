"""Open a built index: check its format version, frame and input fingerprints; SQL access.

DuckDB connections are not fork-safe: query in the main process, hand workers arrays or paths.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from voxelflex.errors import IndexFormatError
from voxelflex.frame import FRAME
from voxelflex.index.fingerprint import check_fingerprint
from voxelflex.index.schema import METADATA_KEY, IndexMeta

__all__ = ["LoadedIndex", "connect", "read_index", "read_meta"]


@dataclass(frozen=True)
class LoadedIndex:
    """An index table with its metadata.

    Attributes
    ----------
    path : Path
    table : pyarrow.Table
        Rows in index order (``row_id`` = position); see :data:`~voxelflex.index.schema.SCHEMA`.
    meta : IndexMeta
    """

    path: Path
    table: pa.Table
    meta: IndexMeta


def read_meta(path: str | os.PathLike, *, check_inputs: bool = True) -> IndexMeta:
    """Read and check the :class:`IndexMeta` in the Parquet footer of ``path``.

    Raises
    ------
    IndexFormatError
        Missing file, not a voxelflex index, other format version, or (with ``check_inputs``)
        an input (voxel file, RMSF CSV, split list) changed since the build.
    FrameError
        The index was built for another voxel frame.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise IndexFormatError(
            f"index {path} does not exist; build it with `voxelflex index build`"
        )
    try:
        kv = pq.read_metadata(path).metadata or {}
    except (pa.ArrowInvalid, OSError) as exc:
        raise IndexFormatError(
            f"{path} is not a Parquet file ({exc}); build the index with `voxelflex index build`"
        ) from exc
    if METADATA_KEY not in kv:
        raise IndexFormatError(
            f"{path} has no voxelflex index metadata; build it with `voxelflex index build`"
        )
    meta = IndexMeta.from_json(kv[METADATA_KEY], where=path)
    FRAME.require_same(meta.frame, what="the index", where=path)
    if check_inputs:
        for name, recorded in sorted(meta.fingerprints.items()):
            check_fingerprint(recorded, index_path=path, what=name.replace("_", " "))
    return meta


def read_index(
    path: str | os.PathLike, *, columns: Sequence[str] | None = None, check_inputs: bool = True
) -> LoadedIndex:
    """Read an index table and its metadata.

    Parameters
    ----------
    path : path
        Index Parquet written by :func:`voxelflex.index.build_index`.
    columns : sequence of str, optional
        Columns to read (all by default).
    check_inputs : bool
        Check that every input still present has the size and mtime recorded at build time.
    """
    meta = read_meta(path, check_inputs=check_inputs)
    if columns is not None:
        names = pq.read_schema(path).names
        unknown = [c for c in columns if c not in names]
        if unknown:
            raise IndexFormatError(
                f"{path}: the index has no columns {unknown}; its columns are {names}: ask for "
                "those, or rebuild the index with `voxelflex index build`"
            )
    table = pq.read_table(path, columns=list(columns) if columns is not None else None)
    return LoadedIndex(path=Path(path), table=table, meta=meta)


def connect(path: str | os.PathLike, *, check_inputs: bool = False) -> duckdb.DuckDBPyConnection:
    """DuckDB connection with the view ``samples`` over the index; no file can be written.

    File system access is limited to the index itself and the configuration is locked, so
    ``COPY ... TO``, ``ATTACH`` and reads of other files fail. DuckDB's spill folder is off:
    its allowed-paths check lets queries read anything under it (``<cwd>/.tmp/`` by default).
    (Temporary in-memory tables remain possible; :func:`voxelflex.index.query.run_query` also
    refuses non-SELECT statements.)
    """
    read_meta(path, check_inputs=check_inputs)
    abspath = os.path.abspath(path)
    con = duckdb.connect(config={"temp_directory": ""})
    literal = abspath.replace("'", "''")
    con.execute(f"CREATE VIEW samples AS SELECT * FROM read_parquet('{literal}')")
    con.execute(f"SET allowed_paths = ['{literal}']")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con
