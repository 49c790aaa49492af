"""The skip table: one line per domain or residue left out of training, with one reason each.

Written beside the index as ``<index stem>.skipped.csv``. Residues that have voxels but no usable
target are still indexed as split ``predict``; the others are not indexed at all.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa

from voxelflex.atomic import atomic_write_csv
from voxelflex.paths import Location, is_url, split_url

__all__ = ["SKIP_REASONS", "SKIP_SCHEMA", "skip_table_path", "write_skip_table"]

# reason -> what happens to the item; documented in docs/formats.md.
SKIP_REASONS = {
    "not_in_hdf5": "CSV domain or residue without a voxel dataset; not indexed",
    "bad_voxel_dataset": "voxel dataset failed the dtype/shape check; not indexed",
    "no_label": "voxel dataset without a `label` attribute (residue name); not indexed",
    "no_residues": "HDF5 domain without residue datasets; not indexed",
    "no_features": "residue without a row in the feature sidecar (--features); not indexed",
    "no_rmsf": "voxelized domain or residue without CSV rows; indexed as predict",
    "no_split": "domain with RMSF listed in no split file; indexed as predict",
    "resid_offset": "CSV residue numbers shifted against the HDF5 keys; indexed as predict",
    "resname_mismatch": "CSV residue names disagree with HDF5 labels; indexed as predict",
    "multi_chain": "domain with several chains and no CSV chain column; indexed as predict",
    "chain_not_in_hdf5": "CSV chain that the HDF5 domain does not have; its rows not indexed",
    "split_id_unknown": "split-file id in neither the CSV nor the HDF5; nothing to index",
}

SKIP_SCHEMA = pa.schema(
    [
        ("kind", pa.string()),  # "domain", "chain", "residue" or "split_id"
        ("domain", pa.string()),  # HDF5 key, null when the item is not in the HDF5
        ("domain_id", pa.string()),  # CSV / split-file id, null when unmapped
        ("chain", pa.string()),
        ("resid", pa.string()),  # HDF5 key or CSV resid; null for domain-level lines
        ("reason", pa.string()),  # a key of SKIP_REASONS
        ("detail", pa.string()),
    ]
)


def skip_table_path(index_path: Location) -> Location:
    """``dir/name.parquet`` -> ``dir/name.skipped.csv`` (a URL for an index at a URL, with the
    index URL's query: a token that grants the folder grants the side file too)."""
    if is_url(index_path):
        folder, name, query = split_url(str(index_path))
        return f"{folder}/{Path(name).stem}.skipped.csv{query}"
    p = Path(index_path)
    return p.with_name(p.stem + ".skipped.csv")


def write_skip_table(table: pa.Table, path: str | os.PathLike) -> None:
    """Write the skip table as CSV (header always present), atomically."""
    atomic_write_csv(table.select(SKIP_SCHEMA.names).cast(SKIP_SCHEMA), path)
