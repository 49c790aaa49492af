"""Damage a file the way a bad disk or a cut transfer does, for tests of what readers notice."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq


def flip_last_byte_of_column(path: Path, column: str) -> None:
    """Flip every bit of the last byte of ``column``'s first column chunk in a Parquet file (a
    byte of page data: without checksums it decodes to another value, or fails to decode)."""
    meta = pq.read_metadata(path).row_group(0)
    names = [meta.column(i).path_in_schema for i in range(meta.num_columns)]
    chunk = meta.column(names.index(column))
    data = bytearray(Path(path).read_bytes())
    start = chunk.dictionary_page_offset if chunk.has_dictionary_page else chunk.data_page_offset
    data[start + chunk.total_compressed_size - 1] ^= 0xFF
    Path(path).write_bytes(bytes(data))
