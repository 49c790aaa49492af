"""Arrow columns to NumPy arrays: the conversions several modules share."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["codes", "repeated_keys", "strings"]


def codes(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Integer codes of a column's values: equal values get equal codes.

    Returns
    -------
    numpy.ndarray of int64, shape (len(column),)
        Codes in order of first appearance (a null gets a code of its own only if the caller
        fills it first).
    """
    encoded = pc.dictionary_encode(column)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)


def strings(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A column as a NumPy ``str`` array, nulls as ``""`` (non-string columns are cast)."""
    filled = pc.fill_null(column.cast(pa.string()), "")
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=str)


def repeated_keys(table: pa.Table, keys: list[str]) -> tuple[int, dict] | None:
    """Keys that occur on more than one row of ``table``.

    Returns
    -------
    tuple of (int, dict) or None
        How many distinct keys repeat and the first of them (its key columns and ``rows``, how
        often it occurs); None when every key is unique.
    """
    counts = table.group_by(keys, use_threads=False).aggregate([([], "count_all")])
    dup = counts.filter(pc.greater(counts["count_all"], 1))
    if dup.num_rows == 0:
        return None
    first = dup.slice(0, 1).to_pylist()[0]
    first["rows"] = first.pop("count_all")
    return dup.num_rows, first
