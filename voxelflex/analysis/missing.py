"""The report of what ``voxelflex predict`` could not predict: ``<output stem>_missing.csv``.

One line per requested domain the index lacks, item the index builder left out, residue (or
shard-record domain) whose voxels could not be read, and prediction that came out NaN or
infinite; each with a reason code (:data:`MISSING_REASONS`) and a sentence.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from voxelflex.errors import FetchError
from voxelflex.index.skips import SKIP_SCHEMA, skip_table_path
from voxelflex.paths import Location, is_url
from voxelflex.remote import fetch_url

__all__ = [
    "MISSING_REASONS",
    "MISSING_SCHEMA",
    "missing_table",
    "non_finite_lines",
    "skipped_lines",
    "unread_lines",
]

MISSING_SCHEMA = pa.schema(
    [
        ("domain", pa.string()),
        ("chain", pa.string()),  # null for a whole domain
        ("resid", pa.string()),  # null for a whole domain or chain
        ("temperature", pa.float32()),  # K; null unless only some temperatures are missing
        ("reason", pa.string()),  # a key of MISSING_REASONS
        ("detail", pa.string()),
    ]
)
MISSING_REASONS = {
    "not_in_index": "a requested domain the index (or the requested split) does not hold",
    "not_indexed": "left out of the index by `index build` (its skip table's reason in detail)",
    "unreadable": "voxels could not be read (the error in detail)",
    "non_finite": "the model predicted NaN or infinity; never written as a number",
    "unreadable_file": "a structure file that could not be read (predict --structure)",
    "not_framed": "a residue the voxelizer frames no voxels for, e.g. no N, CA or C",
    "no_features": "a framed residue without structure features, which the checkpoint needs",
}
# Skip-table reasons under which an item never reached the index (see voxelflex.index.skips).
_NOT_INDEXED = (
    "not_in_hdf5",
    "bad_voxel_dataset",
    "no_label",
    "no_residues",
    "no_features",
    "chain_not_in_hdf5",
)


def missing_table(rows: list[tuple]) -> pa.Table:
    """Rows ``(domain, chain, resid, temperature, reason, detail)`` as a :data:`MISSING_SCHEMA`
    table."""
    cols = list(zip(*rows, strict=True)) if rows else [[]] * len(MISSING_SCHEMA)
    return pa.table(
        [pa.array(c, f.type) for c, f in zip(cols, MISSING_SCHEMA, strict=True)],
        schema=MISSING_SCHEMA,
    )


def unread_lines(index_table: pa.Table, skipped: dict[int, str]) -> list[tuple]:
    """Missing lines for residues a source could not read (first row_id → reason).

    A domain whose residues all failed with one message (a whole domain unreadable, e.g. a
    damaged shard record) becomes one domain line; otherwise each residue gets its own line
    (per-residue messages name the residue).
    """
    if not skipped:
        return []
    ids = sorted(skipped)
    keys = index_table.select(["domain", "chain", "resid_str"]).take(pa.array(ids)).to_pylist()
    by_domain: dict[str, list[tuple]] = {}
    for row_id, k in zip(ids, keys, strict=True):
        by_domain.setdefault(k["domain"], []).append((k["chain"], k["resid_str"], skipped[row_id]))
    out = []
    for domain, residues in by_domain.items():
        reasons = {why for *_, why in residues}
        if len(residues) > 1 and len(reasons) == 1:
            out.append((domain, None, None, None, "unreadable", reasons.pop()))
        else:
            out += [(domain, c, r, None, "unreadable", why) for c, r, why in residues]
    return out


def non_finite_lines(
    index_table: pa.Table, row_id: np.ndarray, temperature: np.ndarray, value: np.ndarray
) -> list[tuple]:
    """One missing line per non-finite prediction (residue × temperature)."""
    keys = index_table.select(["domain", "chain", "resid_str"]).take(pa.array(row_id)).to_pylist()
    return [
        (k["domain"], k["chain"], k["resid_str"], float(t), "non_finite", f"predicted {v}")
        for k, t, v in zip(keys, temperature.tolist(), value.tolist(), strict=True)
    ]


def _skip_table(index_path: Location) -> pa.Table | None:
    """The index's skip table; None when there is none beside it (a file or URL not there)."""
    path = skip_table_path(index_path)
    source: Location | pa.BufferReader = path
    if is_url(path):
        try:
            source = pa.BufferReader(fetch_url(str(path)))
        except FetchError as exc:
            if isinstance(exc.__cause__, FileNotFoundError):
                return None
            raise
    elif not Path(path).is_file():
        return None
    types = {f.name: f.type for f in SKIP_SCHEMA}
    # empty fields are nulls: a domain-id line has no HDF5 domain, and coalesce needs a null
    options = pacsv.ConvertOptions(column_types=types, strings_can_be_null=True)
    return pacsv.read_csv(source, convert_options=options)


def _lines(skipped: pa.Table, hit: pa.Array) -> pa.Table:
    lines = skipped.filter(hit)
    n = lines.num_rows
    detail = pc.binary_join_element_wise(lines["reason"], pc.fill_null(lines["detail"], ""), ": ")
    return pa.table(
        [
            pc.coalesce(lines["domain"], lines["domain_id"]),
            lines["chain"],
            lines["resid"],
            pa.nulls(n, pa.float32()),
            pa.array(["not_indexed"] * n, pa.string()),
            detail,
        ],
        schema=MISSING_SCHEMA,
    )


def _of(skipped: pa.Table, ids: Iterable[str]) -> pa.Array:
    wanted = pa.array(sorted(set(ids)), pa.string())
    return pc.or_(
        pc.fill_null(pc.is_in(skipped["domain"], wanted), False),
        pc.fill_null(pc.is_in(skipped["domain_id"], wanted), False),
    )


def skipped_lines(
    index_path: Location, domains: Iterable[str], absent: dict[str, list[str]] | None = None
) -> pa.Table:
    """Lines of the index's skip table that left items of ``domains`` out of the index.

    ``absent`` (split → ids the split was given that have no row in it) adds, for each such
    id, the skip table's lines whatever their reason (a domain indexed as ``predict`` for a
    residue-numbering offset, say), or one line saying the split lost it. No skip table beside
    the index: no skip-table lines.
    """
    absent = absent or {}
    skipped = _skip_table(index_path)
    parts = []
    found: set[str] = set()
    if skipped is not None:
        hit = pc.and_(pc.is_in(skipped["reason"], pa.array(_NOT_INDEXED)), _of(skipped, domains))
        gone = [i for ids in absent.values() for i in ids]
        hit = pc.or_(hit, _of(skipped, gone))
        parts.append(_lines(skipped, hit))
        found = {x for c in ("domain", "domain_id") for x in skipped[c].to_pylist() if x}
    unexplained = [
        (d, None, None, None, "not_indexed", f"given to the {split} split but without rows in it")
        for split, ids in absent.items()
        for d in ids
        if d not in found
    ]
    parts.append(missing_table(unexplained))
    return pa.concat_tables(parts)
