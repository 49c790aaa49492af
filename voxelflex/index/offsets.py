"""Per-domain check that CSV residue numbers point at the same residues as the HDF5 keys.

mdCATH-derived CSVs may number residues from 0 while the voxelized structure starts at 1. The
residue names read from the HDF5 ``label`` attributes are compared with the CSV ``resname`` at
shifts ``-MAX_SHIFT..MAX_SHIFT`` (force-field aliases such as HSD/HSE for HIS count as equal);
a domain whose names agree only under a shift is reported and skipped, never renumbered
silently (a wrong shift would pair voxels with another residue's RMSF).
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from voxelflex.structure.residue_codes import FORCE_FIELD_RESIDUES

__all__ = ["MAX_SHIFT", "canonical_resname", "check_offsets"]

MAX_SHIFT = 2


def canonical_resname(column: str) -> str:
    """SQL expression: ``column`` upper-cased and trimmed (as the RMSF CSV's names are read;
    a voxel file's ``label`` may be ``ala`` or ``ALA ``), with force-field names of protonation
    states (:data:`~voxelflex.structure.residue_codes.FORCE_FIELD_RESIDUES`) mapped to the PDB
    names a voxelized structure carries."""
    name = f"upper(trim({column}))"
    cases = " ".join(f"WHEN '{a}' THEN '{c}'" for a, c in FORCE_FIELD_RESIDUES.items())
    return f"(CASE {name} {cases} ELSE {name} END)"


def check_offsets(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Find domains whose CSV residue names disagree with the HDF5 labels.

    Expects views/tables on ``con``: ``csv_res(domain, chain, resid, resname)`` (one row per CSV
    residue) and ``labels_num(domain, chain, resnum, label)`` (residues whose HDF5 label was read).

    Returns
    -------
    pyarrow.Table
        ``domain``, ``reason`` (``resid_offset`` or ``resname_mismatch``) and ``detail`` (str),
        one row per problem domain. Domains that agree at shift 0, or where no labelled
        residue has a CSV row at any shift, are not listed.
    """
    csv_name, label = canonical_resname("c.resname"), canonical_resname("l.label")
    return con.sql(
        f"""
        WITH shifts AS (SELECT range::INTEGER AS shift FROM range(-{MAX_SHIFT}, {MAX_SHIFT + 1})),
        cmp AS (
            SELECT l.domain, s.shift, count(*) AS compared,
                   count(*) FILTER (WHERE {csv_name} = {label}) AS matched,
                   min(l.resnum) FILTER (WHERE {csv_name} <> {label}) AS bad_resnum,
                   arg_min(c.resname || ' vs ' || l.label, l.resnum)
                       FILTER (WHERE {csv_name} <> {label}) AS bad_names
            FROM labels_num l CROSS JOIN shifts s
            JOIN csv_res c ON c.domain = l.domain AND c.chain = l.chain
                           AND c.resid + s.shift = l.resnum
            GROUP BY l.domain, s.shift
        ),
        per_domain AS (
            SELECT domain,
                   coalesce(max(matched) FILTER (WHERE shift = 0), 0) AS m0,
                   coalesce(max(compared) FILTER (WHERE shift = 0), 0) AS c0,
                   max(bad_resnum) FILTER (WHERE shift = 0) AS bad_resnum,
                   max(bad_names) FILTER (WHERE shift = 0) AS bad_names,
                   arg_max(shift, matched * 1000 - abs(shift))
                       FILTER (WHERE shift <> 0 AND matched = compared) AS good_shift,
                   max(matched) FILTER (WHERE shift <> 0 AND matched = compared) AS good_n
            FROM cmp GROUP BY domain
        )
        SELECT domain,
               CASE WHEN good_shift IS NOT NULL THEN 'resid_offset'
                    ELSE 'resname_mismatch' END AS reason,
               CASE WHEN good_shift IS NOT NULL THEN
                   'HDF5 resnum = CSV resid ' || CASE WHEN good_shift > 0 THEN '+' ELSE '' END
                   || good_shift || ' matches the residue names (' || good_n || '/' || good_n
                   || ' checked) but the numbers as written match ' || m0 || '/' || c0
                   || '; renumber the CSV residues (or the structure) so the numbers agree'
               ELSE
                   'CSV residue names disagree with HDF5 labels at ' || (c0 - m0) || '/'
                   || c0 || ' checked residues, e.g. resid ' || bad_resnum || ' (CSV vs HDF5: '
                   || bad_names || '); fix the CSV or the voxel file'
               END AS detail
        FROM per_domain
        WHERE m0 < c0 OR (c0 = 0 AND good_shift IS NOT NULL)
        ORDER BY domain
        """
    ).to_arrow_table()
