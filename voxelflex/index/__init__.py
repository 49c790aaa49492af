"""The sample index: one Parquet row per residue × temperature, with metadata and SQL access."""

from voxelflex.index.build import BuildReport, build_index, temperature_range_path
from voxelflex.index.ensure import ensure_index
from voxelflex.index.read import LoadedIndex, connect, read_index, read_meta
from voxelflex.index.schema import (
    FORMAT_VERSION,
    METADATA_KEY,
    OPTIONAL_COLUMNS,
    SCHEMA,
    SPLITS,
    IndexMeta,
)
from voxelflex.index.skips import SKIP_REASONS, skip_table_path

__all__ = [
    "FORMAT_VERSION",
    "METADATA_KEY",
    "OPTIONAL_COLUMNS",
    "SCHEMA",
    "SKIP_REASONS",
    "SPLITS",
    "BuildReport",
    "IndexMeta",
    "LoadedIndex",
    "build_index",
    "connect",
    "ensure_index",
    "read_index",
    "read_meta",
    "skip_table_path",
    "temperature_range_path",
]
