"""File formats the analysis commands write (choices for the library and the CLI alike)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ImageFormat", "TableFormat"]


class ImageFormat(StrEnum):
    """Image formats a plot can be saved in."""

    png = "png"
    svg = "svg"
    pdf = "pdf"


class TableFormat(StrEnum):
    """Formats of a predictions file (also its file suffix)."""

    parquet = "parquet"
    csv = "csv"
