"""Map HDF5 domain keys to the domain ids of the RMSF CSV: exactly, else by the part before "_".

aposteriori names a domain after its structure file, so keys may carry suffixes the CSV lacks
(``1abcA00_pdb``, NMR models ``1abcA00_1``). Two HDF5 keys claiming one id are an error: the
index would not know which voxels belong to the targets.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow as pa

from voxelflex.errors import InputError

__all__ = ["IdMapping", "map_domain_ids"]

_EXAMPLES = 5


@dataclass(frozen=True)
class IdMapping:
    """Result of :func:`map_domain_ids`.

    Attributes
    ----------
    table : pyarrow.Table
        ``domain`` (HDF5 key), ``domain_id`` (CSV id), ``match`` ("exact" or "prefix"), one row per
        mapped HDF5 domain.
    unmapped_keys : list of str
        HDF5 domains without a CSV id.
    unmapped_ids : list of str
        CSV ids without an HDF5 domain.
    """

    table: pa.Table
    unmapped_keys: list[str]
    unmapped_ids: list[str]


def map_domain_ids(
    keys: Iterable[str], ids: Iterable[str], *, voxel_file: str, csv_file: str
) -> IdMapping:
    """Map each HDF5 domain key onto a CSV domain id (exact match first, then prefix before "_").

    Raises
    ------
    InputError
        A CSV id claimed by more than one HDF5 domain, listing examples.
    """
    id_set = set(ids)
    claims: dict[str, list[tuple[str, str]]] = {}
    unmapped_keys = []
    for key in keys:
        if key in id_set:
            claims.setdefault(key, []).append((key, "exact"))
            continue
        prefix = key.split("_", 1)[0]
        if prefix in id_set:
            claims.setdefault(prefix, []).append((key, "prefix"))
        else:
            unmapped_keys.append(key)
    ambiguous = {i: [k for k, _ in c] for i, c in claims.items() if len(c) > 1}
    if ambiguous:
        examples = "; ".join(f"{i!r} <- {k}" for i, k in list(ambiguous.items())[:_EXAMPLES])
        raise InputError(
            f"{len(ambiguous)} domain ids of {csv_file} match several HDF5 domains of "
            f"{voxel_file} (exact name or the part before '_'): {examples}; keep one voxelized "
            "structure per domain id or rename the CSV ids to the HDF5 keys"
        )
    rows = [(k, i, m) for i, c in claims.items() for k, m in c]
    table = pa.table(
        {
            "domain": pa.array([r[0] for r in rows], pa.string()),
            "domain_id": pa.array([r[1] for r in rows], pa.string()),
            "match": pa.array([r[2] for r in rows], pa.string()),
        }
    )
    return IdMapping(table, unmapped_keys, sorted(id_set - claims.keys()))
