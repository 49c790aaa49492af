"""Open a built index: check its format version, frame and input fingerprints; SQL access.

An index may be a local file or a URL (``https://``, ``s3://``, anything fsspec opens): a URL
is fetched whole once per call (an index of 3.3 M rows is ≈40 MB) and read from memory.
DuckDB connections are not fork-safe: query in the main process, hand workers arrays or paths.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from voxelflex.errors import FetchError, IndexFormatError
from voxelflex.frame import FRAME
from voxelflex.index.fingerprint import check_fingerprint
from voxelflex.index.schema import METADATA_KEY, IndexMeta
from voxelflex.paths import Location, is_url, redact_url
from voxelflex.remote import fetch_url

__all__ = ["LoadedIndex", "connect", "read_index", "read_meta"]


@dataclass(frozen=True)
class LoadedIndex:
    """An index table with its metadata.

    Attributes
    ----------
    path : Path or str
        The index file, or its URL (a ``str``).
    table : pyarrow.Table
        Rows in index order (``row_id`` = position); see :data:`~voxelflex.index.schema.SCHEMA`.
    meta : IndexMeta
    """

    path: Location
    table: pa.Table
    meta: IndexMeta


def _fetch(path: Location) -> str | bytes:
    """The local path as a str, or the bytes of the index at a URL."""
    if is_url(path):
        try:
            return fetch_url(str(path))
        except FetchError as exc:
            raise IndexFormatError(
                f"index {exc}; build it with `voxelflex index build` and upload it there"
            ) from exc
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IndexFormatError(
            f"index {path} is a folder; give the index file (index build's --output, e.g. "
            f"{os.path.join(path, 'index.parquet')})"
        )
    if not os.path.isfile(path):
        raise IndexFormatError(
            f"index {path} does not exist; build it with `voxelflex index build`"
        )
    return path


def _reader(source: str | bytes) -> str | pa.BufferReader:
    """What pyarrow reads: the path, or a fresh reader over the fetched bytes."""
    return pa.BufferReader(source) if isinstance(source, bytes) else source


def _meta(source: str | bytes, where: str, check_inputs: bool) -> IndexMeta:
    try:
        kv = pq.read_metadata(_reader(source)).metadata or {}
    except (pa.ArrowInvalid, OSError) as exc:
        raise IndexFormatError(
            f"{where} is not a Parquet file ({exc}); build the index with `voxelflex index build`"
        ) from exc
    if METADATA_KEY not in kv:
        raise IndexFormatError(
            f"{where} has no voxelflex index metadata; build it with `voxelflex index build`"
        )
    meta = IndexMeta.from_json(kv[METADATA_KEY], where=where)
    FRAME.require_same(meta.frame, what="the index", where=where)
    if check_inputs:
        for name, recorded in sorted(meta.fingerprints.items()):
            check_fingerprint(recorded, index_path=where, what=name.replace("_", " "))
    return meta


def read_meta(path: Location, *, check_inputs: bool = True) -> IndexMeta:
    """Read and check the :class:`IndexMeta` in the Parquet footer of ``path`` (file or URL).

    Raises
    ------
    IndexFormatError
        Missing file, not a voxelflex index, other format version, or (with ``check_inputs``)
        an input (voxel file, RMSF CSV, split list) changed since the build.
    FrameError
        The index was built for another voxel frame.
    """
    return _meta(_fetch(path), redact_url(str(path)), check_inputs)


def read_index(
    path: Location, *, columns: Sequence[str] | None = None, check_inputs: bool = True
) -> LoadedIndex:
    """Read an index table and its metadata.

    Parameters
    ----------
    path : path or str
        Index Parquet written by :func:`voxelflex.index.build_index`, or its URL.
    columns : sequence of str, optional
        Columns to read (all by default).
    check_inputs : bool
        Check that every input still present has the size and mtime recorded at build time.
    """
    source = _fetch(path)
    where = redact_url(str(path))  # for messages
    meta = _meta(source, where, check_inputs)
    if columns is not None:
        names = pq.read_schema(_reader(source)).names
        unknown = [c for c in columns if c not in names]
        if unknown:
            raise IndexFormatError(
                f"{where}: the index has no columns {unknown}; its columns are {names}: ask for "
                "those, or rebuild the index with `voxelflex index build`"
            )
    try:
        table = pq.read_table(
            _reader(source),
            columns=list(columns) if columns is not None else None,
            page_checksum_verification=True,
        )
    except (pa.ArrowInvalid, OSError) as exc:
        raise _damaged(where, exc) from exc
    _check_rows(table, meta, where)
    return LoadedIndex(path=str(path) if is_url(path) else Path(path), table=table, meta=meta)


def _damaged(where: str, exc: Exception) -> IndexFormatError:
    return IndexFormatError(
        f"{where} is damaged ({exc}); copy or fetch it again, or rebuild it with "
        "`voxelflex index build`"
    )


def _verify_pages(path: str) -> None:
    """Decode every page of the index at ``path`` once, checking its CRC, in row-group-sized
    pieces (bounded memory; about 1 s for mdCATH's index). DuckDB checks no page checksum: a
    damaged byte in a page would reach a query's result as another number."""
    try:
        for _ in pq.ParquetFile(path, page_checksum_verification=True).iter_batches(1 << 17):
            pass
    except (pa.ArrowInvalid, OSError) as exc:
        raise _damaged(path, exc) from exc


def _check_rows(table: pa.Table, meta: IndexMeta, where: str) -> None:
    """Refuse a table edited after the build: predictions, metrics and sources find a row's
    residue by ``row_id`` as its position, so a row removed or reordered relabels the rest."""
    fix = "rebuild it with `voxelflex index build` instead of editing it"
    if "row_id" in table.column_names:
        row_id = table.column("row_id").to_numpy()
        if not np.array_equal(row_id, np.arange(table.num_rows)):
            raise IndexFormatError(
                f"{where}: row_id is not the row position (rows were removed, added or "
                f"reordered after the build); {fix}"
            )
    expected = meta.counts.get("rows")
    if expected and "split" in table.column_names:
        counts = pc.value_counts(table.column("split"))
        found = dict(
            zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True)
        )
        if {k: v for k, v in expected.items() if v} != found:
            raise IndexFormatError(
                f"{where}: rows per split {found} differ from the {expected} it was built "
                f"with; {fix}"
            )


def connect(path: Location, *, check_inputs: bool = False) -> duckdb.DuckDBPyConnection:
    """DuckDB connection with the view ``samples`` over the index; no file can be written.

    File system access is limited to the index itself and the configuration is locked, so
    ``COPY ... TO``, ``ATTACH`` and reads of other files fail. DuckDB's spill folder is off:
    its allowed-paths check lets queries read anything under it (``<cwd>/.tmp/`` by default).
    Every page's checksum is checked first (DuckDB checks none), so a damaged file is an
    :class:`IndexFormatError`, never a changed number in a result. An index at a URL is fetched
    and read into an Arrow table (fsspec/pyarrow), which is registered as ``samples``; DuckDB
    itself then reads no file at all. (Temporary in-memory
    tables remain possible; :func:`voxelflex.index.query.run_query` also refuses non-SELECT
    statements.)
    """
    con = duckdb.connect(config={"temp_directory": ""})
    if is_url(path):
        con.register("samples", read_index(path, check_inputs=check_inputs).table)
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        return con
    read_meta(path, check_inputs=check_inputs)
    abspath = os.path.abspath(path)
    _verify_pages(abspath)
    literal = abspath.replace("'", "''")
    con.execute(f"CREATE VIEW samples AS SELECT * FROM read_parquet('{literal}')")
    con.execute(f"SET allowed_paths = ['{literal}']")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con
