"""The joins of an index build, in DuckDB over Arrow tables (no Python loop over rows).

:func:`join` turns the voxel-file scan, the RMSF CSV and the split files into the sorted index
table, the skip table and the train temperature range; :func:`csv_fates` accounts for every
CSV row (a target, or the step that dropped it).
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from voxelflex.errors import InputError
from voxelflex.index.offsets import canonical_resname, check_offsets
from voxelflex.index.schema import OPTIONAL_COLUMNS, SCHEMA, SPLITS
from voxelflex.index.skips import SKIP_SCHEMA
from voxelflex.inputs.id_mapping import map_domain_ids
from voxelflex.inputs.voxel_scan import VoxelScan, read_labels

__all__ = ["counts", "csv_fates", "join"]

_EXAMPLES = 10
_SORT = (
    "CASE split WHEN 'train' THEN 0 WHEN 'val' THEN 1 WHEN 'test' THEN 2 ELSE 3 END, "
    "domain, chain, resnum, icode, temperature"
)


def _q(text: str) -> str:
    """Quote ``text`` as an SQL string literal."""
    return "'" + str(text).replace("'", "''") + "'"


def _join_csv(
    con: duckdb.DuckDBPyConnection,
    csv: pa.Table,
    splits: pa.Table,
    domains: pa.Array,
    *,
    voxel_file: str,
    csv_path: str,
    splits_given: bool,
    progress: bool,
) -> list[str]:
    """Create table ``target`` (rows with RMSF) and return skip-table queries for CSV items.

    ``domains`` holds every HDF5 domain key; ``keys``, ``labels`` and ``good`` are on ``con``.
    """
    csv_ids = pc.unique(csv["domain_id"])
    mapping = map_domain_ids(
        domains.to_pylist(), csv_ids.to_pylist(), voxel_file=voxel_file, csv_file=csv_path
    )
    has_chain = csv["chain"].null_count < csv.num_rows
    con.register("csv", csv)
    con.register("splits", splits)
    con.register("mapping", mapping.table)
    con.register(
        "unmapped_ids", pa.table({"domain_id": pa.array(mapping.unmapped_ids, pa.string())})
    )
    known = pa.concat_arrays([csv_ids, domains])
    con.register(
        "unknown_split_ids", splits.filter(pc.invert(pc.is_in(splits["domain_id"], known)))
    )
    # HDF5 chains per domain: without a CSV chain column a domain must have exactly one.
    con.execute(
        "CREATE TEMP TABLE dom_chains AS SELECT domain, count(DISTINCT chain) AS n_chains, "
        "min(chain) AS only_chain FROM keys GROUP BY domain"
    )
    chain_expr = "c.chain" if has_chain else "d.only_chain"
    con.execute(
        f"""CREATE TEMP VIEW csv_m AS
        SELECT c.* EXCLUDE (chain), m.domain, {chain_expr} AS chain, d.n_chains
        FROM csv c JOIN mapping m USING (domain_id) JOIN dom_chains d USING (domain)"""
    )
    multi_chain = "false" if has_chain else "n_chains > 1"
    con.execute(
        f"""CREATE TEMP TABLE dom_skip AS
        SELECT DISTINCT domain, domain_id, 'multi_chain' AS reason,
               'HDF5 domain has ' || n_chains || ' chains but the CSV has no chain column; '
               || 'add a chain column to the CSV' AS detail
        FROM csv_m WHERE {multi_chain}"""
    )
    con.execute(
        "CREATE TEMP VIEW csv_res AS SELECT domain, chain, resid, min(resname) AS resname "
        "FROM csv_m WHERE domain NOT IN (SELECT domain FROM dom_skip) GROUP BY ALL"
    )
    con.execute(
        "CREATE TEMP VIEW labels_num AS SELECT l.domain, l.chain, k.resnum, l.label "
        "FROM labels l JOIN keys k USING (domain, chain, resid_str) WHERE k.icode = ''"
    )
    con.register("offsets", check_offsets(con))
    con.execute(
        "INSERT INTO dom_skip SELECT o.domain, m.domain_id, o.reason, o.detail "
        "FROM offsets o JOIN mapping m USING (domain)"
    )
    _refuse_split_under_two_names(con)
    split_expr = "s.split" if splits_given else "'train'"
    con.execute(
        f"""CREATE TEMP TABLE dom_split AS
        SELECT DISTINCT c.domain, c.domain_id, {split_expr} AS split
        FROM csv_m c LEFT JOIN listed s USING (domain)
        WHERE c.domain NOT IN (SELECT domain FROM dom_skip)"""
    )
    opt = "".join(f", c.{n}" for n in OPTIONAL_COLUMNS if n in csv.column_names)
    con.execute(
        f"""CREATE TEMP VIEW target_csv AS
        SELECT ds.split, c.domain, c.domain_id, c.chain, g.resid_str, g.resnum, g.icode,
               c.resname, c.temperature, c.target_rmsf{opt}
        FROM csv_m c JOIN dom_split ds USING (domain)
        JOIN good g ON g.domain = c.domain AND g.chain = c.chain AND g.resnum = c.resid
                   AND g.icode = ''
        WHERE ds.split IS NOT NULL"""
    )
    _check_target_labels(con, voxel_file, progress)
    return [
        "SELECT 'domain' AS kind, domain_id, 'not_in_hdf5' AS reason, "
        "'in the RMSF CSV but no HDF5 domain matches it (exactly or before _) in ' || "
        f"{_q(voxel_file)} AS detail FROM unmapped_ids",
        "SELECT 'domain' AS kind, * FROM dom_skip",
        "SELECT 'domain' AS kind, domain, domain_id, 'no_split' AS reason, "
        "'in the RMSF CSV but in no split file; add it to --train, --val or --test' AS detail "
        "FROM dom_split WHERE split IS NULL",
        f"""SELECT 'chain' AS kind, c.domain, c.domain_id, c.chain, 'chain_not_in_hdf5' AS reason,
               'CSV chain ' || c.chain || ' (first on line ' || c.line || ' of ' || {_q(csv_path)}
               || ') is not a chain of HDF5 domain ' || c.domain || ' (its chains: '
               || h.chains || '); fix the CSV chain column' AS detail
        FROM (SELECT domain, domain_id, chain, min(line) AS line FROM csv_m
              WHERE domain IN (SELECT domain FROM dom_split WHERE split IS NOT NULL)
              GROUP BY ALL) c
        JOIN (SELECT domain, string_agg(DISTINCT chain, ', ' ORDER BY chain) AS chains
              FROM keys GROUP BY domain) h USING (domain)
        ANTI JOIN (SELECT DISTINCT domain, chain FROM keys) k USING (domain, chain)""",
        f"""SELECT 'residue' AS kind, c.domain, c.domain_id, c.chain, c.resid,
               'not_in_hdf5' AS reason,
               'CSV rows (first on line ' || c.line || ' of ' || {_q(csv_path)}
               || ') have no HDF5 dataset ' || c.domain || '/' || c.chain || '/' || c.resid
               AS detail
        FROM (SELECT domain, domain_id, chain, resid, min(line) AS line FROM csv_m
              WHERE domain IN (SELECT domain FROM dom_split WHERE split IS NOT NULL)
              GROUP BY ALL) c
        SEMI JOIN (SELECT DISTINCT domain, chain FROM keys) h USING (domain, chain)
        ANTI JOIN keys k ON k.domain = c.domain AND k.chain = c.chain AND k.resnum = c.resid
                        AND k.icode = ''""",
        """SELECT 'domain' AS kind, domain, 'no_rmsf' AS reason,
               'no RMSF CSV rows for this HDF5 domain (ids are matched exactly, then by the '
               || 'part before _)' AS detail
        FROM (SELECT DISTINCT domain FROM good) ANTI JOIN mapping USING (domain)""",
        """SELECT 'residue' AS kind, p.domain, p.domain_id, p.chain, p.resid_str AS resid,
               'no_rmsf' AS reason, 'no RMSF CSV rows for this residue' AS detail
        FROM predict p SEMI JOIN dom_split ds ON ds.domain = p.domain AND ds.split IS NOT NULL
        ANTI JOIN label_skip l USING (domain, chain, resid_str)""",
        """SELECT 'split_id' AS kind, domain_id, 'split_id_unknown' AS reason,
               'listed in the ' || split || ' split file but in neither the CSV nor the HDF5'
               AS detail FROM unknown_split_ids""",
        # (target residues without a label are listed once, by the predict rows' no_label)
        f"""SELECT 'residue' AS kind, domain, domain_id, chain, resid_str AS resid, reason,
               'CSV residue ' || resname || ' but the voxel dataset holds ' || label
               || ': the target and the frame are different residues (an insertion code? a '
               || 'renumbered structure?); the residue is kept without a target; fix the CSV ('
               || {_q(csv_path)} || ') or the voxel file' AS detail
        FROM label_skip WHERE reason = 'resname_mismatch'""",
    ]


def _refuse_split_under_two_names(con: duckdb.DuckDBPyConnection) -> None:
    """Create ``listed`` (``domain``, ``split``): the split of each mapped HDF5 domain.

    A split file may name a domain by its CSV id or by its HDF5 key (``1abcA00`` or
    ``1abcA00_pdb``); a domain listed in two splits under its two names is leakage.
    """
    con.execute(
        """CREATE TEMP TABLE listed AS
        SELECT m.domain, s.split, string_agg(s.domain_id || ' in ' || s.split, ' and '
                                             ORDER BY s.split) AS names
        FROM mapping m JOIN splits s ON s.domain_id IN (m.domain_id, m.domain)
        GROUP BY m.domain, s.split"""
    )
    leaked = con.sql(
        "SELECT domain, string_agg(names, ' and ' ORDER BY split) FROM listed "
        "GROUP BY domain HAVING count(*) > 1 ORDER BY domain"
    ).fetchall()
    if leaked:
        examples = "; ".join(f"{d}: {w}" for d, w in leaked[:_EXAMPLES])
        raise InputError(
            f"{len(leaked)} domains are in more than one split under their CSV id and their "
            f"HDF5 key (leakage): {examples}; list each domain in one split file only"
        )


def _refuse_features_of_other_residues(con: duckdb.DuckDBPyConnection) -> None:
    """Refuse a sidecar whose row for a key names another residue than the voxel file's.

    The sidecar's keys come from the voxelizer's frames; a different residue under a key means
    a sidecar computed from other structure files or with another ``--keys``/``--altloc`` than
    the voxel file, and its features would land on the wrong frames.

    Raises
    ------
    InputError
        With the number of such residues and examples.
    """
    feat_name, name = canonical_resname("f.feat_resname"), canonical_resname("r.resname")
    wrong = con.sql(
        f"""SELECT r.domain, r.chain, r.resid_str, r.resname, f.feat_resname
        FROM (SELECT domain, chain, resid_str, any_value(resname) AS resname FROM
              (SELECT domain, chain, resid_str, resname FROM target UNION ALL
               SELECT domain, chain, resid_str, resname FROM predict) GROUP BY ALL) r
        JOIN feat f USING (domain, chain, resid_str)
        WHERE {feat_name} <> {name} ORDER BY ALL"""
    ).fetchall()
    if wrong:
        examples = "; ".join(
            f"{d}/{c}/{r}: voxel file {v}, sidecar {f}" for d, c, r, v, f in wrong[:_EXAMPLES]
        )
        raise InputError(
            f"the feature sidecar names another residue than the voxel file for {len(wrong)} "
            f"residues ({examples}); compute the sidecar from the structure files the voxel "
            "file was made from, with the same --keys and --altloc"
        )


def _check_target_labels(con: duckdb.DuckDBPyConnection, voxel_file: str, progress: bool) -> None:
    """Compare every target residue's CSV name with its voxel dataset's ``label``.

    The scan reads a sample of labels (the per-domain numbering check); here the labels of every
    residue that gets a target are read, so a target never lands on another residue's frame
    unseen. Creates ``label_skip`` (one row per residue refused, with ``reason``
    ``resname_mismatch`` or ``no_label``; ``resname`` lists the CSV names that disagree) and the
    view ``target`` (the rows of ``target_csv`` that pass).
    """
    unread = con.sql(
        "SELECT DISTINCT domain, chain, resid_str FROM target_csv "
        "ANTI JOIN labels USING (domain, chain, resid_str) ORDER BY domain, chain"
    ).to_arrow_table()
    con.register(
        "target_labels",
        unread.append_column("label", read_labels(voxel_file, unread, progress=progress)),
    )
    csv_name, label = canonical_resname("t.resname"), canonical_resname("l.label")
    con.execute(
        f"""CREATE TEMP TABLE label_skip AS
        SELECT t.domain, t.domain_id, t.chain, t.resid_str,
               string_agg(DISTINCT t.resname, ', ' ORDER BY t.resname) AS resname, l.label,
               CASE WHEN l.label IS NULL THEN 'no_label' ELSE 'resname_mismatch' END AS reason
        FROM target_csv t
        JOIN (SELECT * FROM labels UNION ALL SELECT * FROM target_labels) l
             USING (domain, chain, resid_str)
        WHERE l.label IS NULL OR {csv_name} <> {label}
        GROUP BY t.domain, t.domain_id, t.chain, t.resid_str, l.label"""
    )
    con.execute(
        "CREATE TEMP VIEW target AS SELECT * FROM target_csv "
        "ANTI JOIN label_skip USING (domain, chain, resid_str)"
    )


def csv_fates(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """CSV rows by what became of them: ``indexed`` or the reason they were dropped.

    Needs the tables :func:`_join_csv` made on ``con``.
    """
    rows = con.sql(
        """SELECT CASE
                WHEN ds.reason IS NOT NULL THEN ds.reason
                WHEN sp.split IS NULL THEN 'no_split'
                WHEN dc.chain IS NULL THEN 'chain_not_in_hdf5'
                WHEN k.resnum IS NULL THEN 'not_in_hdf5'
                WHEN nf.resnum IS NOT NULL THEN 'no_features'
                WHEN ul.resnum IS NOT NULL THEN 'no_label'
                WHEN g.resnum IS NULL THEN 'bad_voxel_dataset'
                WHEN ls.reason IS NOT NULL THEN ls.reason
                ELSE 'indexed' END AS fate, count(*) AS n
        FROM csv_m c
        LEFT JOIN dom_skip ds USING (domain)
        LEFT JOIN dom_split sp USING (domain)
        LEFT JOIN (SELECT DISTINCT domain, chain FROM keys) dc USING (domain, chain)
        LEFT JOIN (SELECT domain, chain, resnum FROM keys WHERE icode = '') k
               ON k.domain = c.domain AND k.chain = c.chain AND k.resnum = c.resid
        LEFT JOIN (SELECT domain, chain, resnum FROM good WHERE icode = '') g
               ON g.domain = c.domain AND g.chain = c.chain AND g.resnum = c.resid
        LEFT JOIN (SELECT domain, chain, resnum FROM nofeat WHERE icode = '') nf
               ON nf.domain = c.domain AND nf.chain = c.chain AND nf.resnum = c.resid
        LEFT JOIN (SELECT u.domain, u.chain, k.resnum FROM unlabelled u
                   JOIN keys k USING (domain, chain, resid_str) WHERE k.icode = '') ul
               ON ul.domain = c.domain AND ul.chain = c.chain AND ul.resnum = c.resid
        LEFT JOIN (SELECT l.domain, l.chain, k.resnum, l.reason FROM label_skip l
                   JOIN keys k USING (domain, chain, resid_str) WHERE k.icode = '') ls
               ON ls.domain = c.domain AND ls.chain = c.chain AND ls.resnum = c.resid
        GROUP BY 1"""
    ).fetchall()
    fates = dict(rows)
    ((unmapped,),) = con.sql(
        "SELECT count(*) FROM csv SEMI JOIN unmapped_ids USING (domain_id)"
    ).fetchall()
    if unmapped:
        fates["domain_not_in_hdf5"] = unmapped
    # rows of a domain whose HDF5 group holds no residue (csv_m has only domains with keys)
    ((empty,),) = con.sql(
        "SELECT count(*) FROM csv JOIN mapping USING (domain_id) SEMI JOIN empty USING (domain)"
    ).fetchall()
    if empty:
        fates["no_residues"] = empty
    return fates


def _make_predict(con: duckdb.DuckDBPyConnection, voxel_file: str, progress: bool) -> list[str]:
    """Create ``predict``: one row per voxelized residue without target rows."""
    con.execute(
        """CREATE TEMP TABLE predict AS
        SELECT 'predict' AS split, g.domain, coalesce(m.domain_id, g.domain) AS domain_id,
               g.chain, g.resid_str, g.resnum, g.icode, l.label AS resname,
               'NaN'::FLOAT AS temperature, 'NaN'::FLOAT AS target_rmsf
        FROM good g
        LEFT JOIN mapping m USING (domain)
        LEFT JOIN labels l USING (domain, chain, resid_str)
        ANTI JOIN (SELECT DISTINCT domain, chain, resid_str FROM target) t
             USING (domain, chain, resid_str)"""
    )
    missing = con.sql(
        "SELECT domain, chain, resid_str FROM predict WHERE resname IS NULL ORDER BY domain, chain"
    ).to_arrow_table()
    if missing.num_rows:
        con.register(
            "more_labels",
            missing.append_column("label", read_labels(voxel_file, missing, progress=progress)),
        )
        con.execute(
            "UPDATE predict p SET resname = ml.label FROM more_labels ml WHERE "
            "p.domain = ml.domain AND p.chain = ml.chain AND p.resid_str = ml.resid_str"
        )
    con.execute(
        "CREATE TEMP TABLE no_label AS SELECT domain, domain_id, chain, resid_str "
        "FROM predict WHERE resname IS NULL"
    )
    con.execute("DELETE FROM predict WHERE resname IS NULL")
    return [
        "SELECT 'residue' AS kind, domain, domain_id, chain, resid_str AS resid, "
        "'no_label' AS reason, 'the voxel dataset has no `label` attribute (residue name)' "
        "AS detail FROM no_label"
    ]


_FEATURE_KEYS = ("domain", "chain", "resid_str", "resnum", "icode", "resname")


def _as_schema(table: pa.Table, feature_names: list[str]) -> pa.Table:
    """Cast DuckDB output to SCHEMA, the optional CSV columns present, then the features."""
    fields = list(SCHEMA) + [
        pa.field(n, t) for n, t in OPTIONAL_COLUMNS.items() if n in table.column_names
    ]
    fields += [pa.field(n, pa.float32()) for n in feature_names]
    return table.select([f.name for f in fields]).cast(pa.schema(fields))


def _skip_table(con: duckdb.DuckDBPyConnection, parts: list[str]) -> pa.Table:
    con.register("skip_empty", SKIP_SCHEMA.empty_table())
    union = " UNION ALL BY NAME ".join(["SELECT * FROM skip_empty", *(f"({p})" for p in parts)])
    # Lines found from the HDF5 side (bad datasets, no label, ...) name the CSV id too, so a
    # user can grep the skip table for the ids they know.
    skip = con.sql(
        f"SELECT s.* REPLACE (coalesce(s.domain_id, m.domain_id) AS domain_id) FROM ({union}) s "
        "LEFT JOIN mapping m USING (domain) ORDER BY reason, domain, domain_id, chain, "
        "TRY_CAST(resid AS INTEGER), resid"
    ).to_arrow_table()
    return skip.select(SKIP_SCHEMA.names).cast(SKIP_SCHEMA)


def counts(con: duckdb.DuckDBPyConnection) -> tuple[dict, dict, dict, dict]:
    """Rows, residues and domains of the index per split, and ``rows``, ``residues`` and
    ``domains`` over the whole index (each counted once: a domain can have rows in a target
    split and in ``predict``)."""
    rows = dict.fromkeys(SPLITS, 0)
    residues = dict.fromkeys(SPLITS, 0)
    domains = dict.fromkeys(SPLITS, 0)
    select = "count(*), count(DISTINCT (domain, chain, resid_str)), count(DISTINCT domain)"
    for split, n_rows, n_res, n_dom in con.sql(
        f"SELECT split, {select} FROM final GROUP BY split"
    ).fetchall():
        rows[split], residues[split], domains[split] = n_rows, n_res, n_dom
    totals = dict(
        zip(
            ("rows", "residues", "domains"),
            con.sql(f"SELECT {select} FROM final").fetchall()[0],
            strict=True,
        )
    )
    return rows, residues, domains, totals


def join(
    con: duckdb.DuckDBPyConnection,
    scan: VoxelScan,
    csv: pa.Table | None,
    splits: pa.Table,
    csv_path: str | None,
    splits_given: bool,
    progress: bool,
    features: pa.Table | None = None,
) -> tuple[pa.Table, pa.Table, tuple[float, float] | None]:
    """Run the joins on ``con``; return the sorted index table, skip table and train T range.

    ``features`` (a feature sidecar: ``domain, chain, resid_str`` and float32 columns) joins its
    columns onto the rows; residues it lacks are skipped (``no_features``).
    """
    tables = {
        "keys": scan.keys,
        "labels": scan.labels,
        "bad": scan.bad,
        "unlabelled": scan.no_label,
    }
    for name, t in tables.items():
        con.register(name, t)
    con.register("empty", pa.table({"domain": pa.array(scan.empty_domains, pa.string())}))
    feature_names = (
        [] if features is None else [c for c in features.column_names if c not in _FEATURE_KEYS]
    )
    key_columns = ("domain", "chain", "resid_str", "resname")
    con.register(
        "feat",
        features.select([*key_columns, *feature_names]).rename_columns(
            [*key_columns[:3], "feat_resname", *feature_names]
        )
        if features is not None
        else pa.table({k: pa.array([], pa.string()) for k in (*key_columns[:3], "feat_resname")}),
    )
    con.execute(
        "CREATE TEMP TABLE usable AS SELECT * FROM keys ANTI JOIN bad USING (domain, chain, "
        "resid_str) ANTI JOIN unlabelled USING (domain, chain, resid_str)"
    )
    # Without a sidecar every usable residue is good; with one, those it lacks are skipped.
    limit = "" if features is not None else " LIMIT 0"
    con.execute(
        "CREATE TEMP TABLE nofeat AS SELECT * FROM usable "
        f"ANTI JOIN feat USING (domain, chain, resid_str){limit}"
    )
    con.execute(
        "CREATE TEMP TABLE good AS SELECT * FROM usable "
        "ANTI JOIN nofeat USING (domain, chain, resid_str)"
    )
    parts = [
        "SELECT 'residue' AS kind, domain, chain, resid_str AS resid, 'no_features' AS reason, "
        "'no row for this residue in the feature sidecar' AS detail FROM nofeat",
        "SELECT 'residue' AS kind, domain, chain, resid_str AS resid, "
        "'bad_voxel_dataset' AS reason, detail FROM bad",
        "SELECT 'residue' AS kind, domain, chain, resid_str AS resid, 'no_label' AS reason, "
        "'the voxel dataset has no `label` attribute (residue name)' AS detail FROM unlabelled",
        "SELECT 'domain' AS kind, domain, 'no_residues' AS reason, "
        "'the HDF5 domain group holds no residue datasets' AS detail FROM empty",
    ]
    if csv is not None:
        domains = pa.concat_arrays(
            [pc.unique(scan.keys["domain"]), pa.array(scan.empty_domains, pa.string())]
        )
        parts += _join_csv(
            con,
            csv,
            splits,
            domains,
            voxel_file=scan.path,
            csv_path=csv_path,
            splits_given=splits_given,
            progress=progress,
        )
    else:
        con.execute(
            "CREATE TEMP TABLE mapping AS SELECT DISTINCT domain, domain AS domain_id FROM keys"
        )
        con.execute(
            "CREATE TEMP TABLE target AS SELECT NULL::VARCHAR AS split, domain, "
            "domain AS domain_id, chain, resid_str, resnum, icode, NULL::VARCHAR AS resname, "
            "NULL::FLOAT AS temperature, NULL::FLOAT AS target_rmsf FROM good LIMIT 0"
        )
    parts += _make_predict(con, scan.path, progress)
    _refuse_features_of_other_residues(con)
    # Materialized once, in Arrow; counts below scan it in place.
    columns = "".join(f", f.{n}" for n in feature_names)
    rows = con.sql(
        f"SELECT r.*{columns} FROM (SELECT * FROM target UNION ALL BY NAME "
        f"SELECT * FROM predict) r LEFT JOIN feat f USING (domain, chain, resid_str) "
        f"ORDER BY {_SORT}"
    ).to_arrow_table()
    rows = rows.add_column(0, "row_id", pa.array(np.arange(rows.num_rows, dtype=np.int64)))
    table = _as_schema(rows, feature_names)
    del rows
    con.register("final", table)
    ((lo, hi),) = con.sql(
        "SELECT min(temperature), max(temperature) FROM final WHERE split = 'train'"
    ).fetchall()
    return table, _skip_table(con, parts), (float(lo), float(hi)) if lo is not None else None
