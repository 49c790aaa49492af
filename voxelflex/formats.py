"""Output formats and shard defaults: the choices and defaults the library and the CLI share.

A light module (no torch, h5py or duckdb) so that the CLI can show them without importing the
library.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ALTLOC_RULES",
    "BFACTOR_MODES",
    "DEFAULT_DOMAINS_PER_SHARD",
    "DEFAULT_ZSTD_LEVEL",
    "KEY_RULES",
    "ImageFormat",
    "QueryFormat",
    "TableFormat",
]

DEFAULT_DOMAINS_PER_SHARD = 64  # ≈85 shards of ≈1.3 MB for mdCATH's 5,398 domains
DEFAULT_ZSTD_LEVEL = 3
# Voxelizer rules (docs/structures.md): residue keys, alternate locations, B-factor copies.
KEY_RULES: tuple[str, ...] = ("aposteriori", "icode")
ALTLOC_RULES: tuple[str, ...] = ("first", "occupancy")
BFACTOR_MODES: tuple[str, ...] = ("rmsf", "bfactor")


class ImageFormat(StrEnum):
    """Image formats a plot can be saved in."""

    png = "png"
    svg = "svg"
    pdf = "pdf"


class TableFormat(StrEnum):
    """Formats of a predictions file (also its file suffix)."""

    parquet = "parquet"
    csv = "csv"


class QueryFormat(StrEnum):
    """Output formats of ``voxelflex index query``."""

    table = "table"
    csv = "csv"
    json = "json"
    parquet = "parquet"
