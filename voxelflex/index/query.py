"""Read-only SQL over the index (view ``samples``) and summary statistics.

Used by ``voxelflex index query`` and ``voxelflex index stats``; both run in the calling process.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import duckdb
import pyarrow as pa

from voxelflex.atomic import atomic_write_parquet, atomic_write_text, json_safe, write_csv
from voxelflex.errors import InputError
from voxelflex.formats import QueryFormat
from voxelflex.index.read import connect, read_meta
from voxelflex.index.schema import SPLITS
from voxelflex.logs import command_log
from voxelflex.paths import check_output, require_suffix
from voxelflex.quantities import temperature_key

__all__ = [
    "QueryFormat",
    "format_stats",
    "format_table",
    "index_stats",
    "query_to_file",
    "run_query",
    "write_result",
]

log = logging.getLogger(__name__)

_READ_ONLY = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}
TABLE_MAX_ROWS = 200


def run_query(index_path: str | os.PathLike, sql: str) -> pa.Table:
    """Run one read-only SQL statement over the view ``samples`` of the index.

    Raises
    ------
    InputError
        More than one statement, a statement that is not a SELECT (or EXPLAIN), a query
        DuckDB rejects, or a result with two columns of one name; the message quotes the
        statement.
    """
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise InputError(f"cannot parse the query {sql!r}: {exc}") from exc
    if len(statements) != 1:
        raise InputError(
            f"expected one SQL statement, found {len(statements)} in {sql!r}; "
            "run them one at a time"
        )
    kind = statements[0].type
    if kind not in _READ_ONLY:
        raise InputError(
            f"the index is opened read-only: {kind.name} statements are not allowed "
            f"({sql.strip()!r}); use SELECT ... FROM samples, and rebuild the index with "
            "`voxelflex index build` to change it"
        )
    con = connect(index_path)
    try:
        table = con.sql(sql).to_arrow_table()
    except duckdb.Error as exc:
        raise InputError(f"query {sql.strip()!r} failed on index {index_path}: {exc}") from exc
    finally:
        con.close()
    names = table.column_names
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:  # rows as dicts (table, JSON) would show one column's values under both
        raise InputError(
            f"the result of {sql.strip()!r} has more than one column named "
            f"{', '.join(repeated)}; give each a distinct name (a.target_rmsf AS t_320, ...)"
        )
    return table


def _cell(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def format_table(table: pa.Table, max_rows: int = TABLE_MAX_ROWS) -> str:
    """Plain-text table of the first ``max_rows`` rows, with a line saying how many were cut."""
    head = table.slice(0, max_rows).to_pylist()
    cells = [[_cell(row[c]) for c in table.column_names] for row in head]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(table.column_names)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(table.column_names, widths, strict=True)),
        "  ".join("-" * w for w in widths),
        *("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells),
    ]
    if table.num_rows > max_rows:
        lines.append(
            f"... {table.num_rows - max_rows:,} more rows ({table.num_rows:,} in all); "
            "use --format csv|json|parquet --output FILE for all of them"
        )
    else:
        lines.append(f"({table.num_rows:,} rows)")
    return "\n".join(lines)


def _json_rows(table: pa.Table) -> str:
    rows = json_safe(table.to_pylist())
    return json.dumps(rows, indent=1, default=str, allow_nan=False) + "\n"


def write_result(table: pa.Table, fmt: QueryFormat, output: str | os.PathLike | None) -> str | None:
    """Write a query result to ``output`` in ``fmt``; return the text instead when no output.

    Parquet needs an output file. NaN and ±inf become null in JSON, and decimals numbers.

    Raises
    ------
    InputError
        A column of a type the format cannot hold (a list or struct in CSV, an INTERVAL in
        CSV or Parquet, a BLOB that is not UTF-8 text in CSV); nothing is written.
    """
    fmt = QueryFormat(fmt)
    if fmt is QueryFormat.parquet and output is None:
        raise InputError("--format parquet writes a file: add --output FILE.parquet")
    try:
        if fmt is QueryFormat.parquet:
            atomic_write_parquet(table, output)
            return None
        if fmt is QueryFormat.csv:
            sink = pa.BufferOutputStream()
            write_csv(table, sink)
            text = sink.getvalue().to_pybytes().decode()
        elif fmt is QueryFormat.json:
            text = _json_rows(table)
        else:
            text = format_table(table, max_rows=table.num_rows if output else TABLE_MAX_ROWS) + "\n"
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError) as exc:
        raise InputError(
            f"the query result cannot be written as {fmt.value} ({exc}); cast that column to "
            "text in the SQL (column::VARCHAR), or choose --format json"
        ) from exc
    if output is None:
        return text
    atomic_write_text(output, text)
    return None


def query_to_file(
    index_path: str | os.PathLike,
    sql: str,
    fmt: QueryFormat | str,
    output: str | os.PathLike,
    *,
    overwrite: bool = False,
) -> Path:
    """Run ``sql`` (see :func:`run_query`) and write the result to ``output`` in ``fmt``.

    The overwrite policy applies (:func:`voxelflex.paths.check_output`: never the index itself,
    an existing file only with ``overwrite``); the query and its row count are logged beside
    the output (:func:`voxelflex.logs.command_log`).
    """
    out = check_output(
        output, inputs={"index": index_path}, overwrite=overwrite, what="query result"
    )
    fmt = QueryFormat(fmt)
    if fmt is not QueryFormat.table:  # the aligned text table may go to any name
        suffixes = (".parquet", ".pq") if fmt is QueryFormat.parquet else (f".{fmt.value}",)
        require_suffix(out, suffixes, what=f"query result (--format {fmt.value})")
    with command_log(out, "index query"):
        table = run_query(index_path, sql)
        write_result(table, fmt, out)
        log.info("query over %s: %d rows -> %s\n%s", index_path, table.num_rows, out, sql)
    return out


def index_stats(index_path: str | os.PathLike) -> dict:
    """Counts and target distribution of an index.

    Returns
    -------
    dict
        ``splits``: per split rows, residues, domains; ``temperatures``: rows per split and
        temperature (K); ``target``: per split n, mean, min, p05, p25, median, p75, p95, max
        of ``target_rmsf`` (in ``rmsf_unit``); ``rmsf_unit``.
    """
    con = connect(index_path)
    try:
        splits = {
            s: {"rows": r, "residues": res, "domains": d}
            for s, r, res, d in con.sql(
                "SELECT split, count(*), count(DISTINCT (domain, chain, resid_str)), "
                "count(DISTINCT domain) FROM samples GROUP BY split"
            ).fetchall()
        }
        temps: dict[str, dict[str, int]] = {}
        for s, t, n in con.sql(
            "SELECT split, temperature, count(*) FROM samples WHERE NOT isnan(temperature) "
            "GROUP BY ALL ORDER BY ALL"
        ).fetchall():
            temps.setdefault(s, {})[temperature_key(t)] = n
        names = ("n", "mean", "min", "p05", "p25", "median", "p75", "p95", "max")
        target = {
            row[0]: dict(zip(names, row[1:], strict=True))
            for row in con.sql(
                """SELECT split, n, mean, lo, q[1], q[2], q[3], q[4], q[5], hi FROM (
                     SELECT split, count(*) AS n, avg(target_rmsf) AS mean,
                            min(target_rmsf) AS lo, max(target_rmsf) AS hi,
                            quantile_cont(target_rmsf, [0.05, 0.25, 0.5, 0.75, 0.95]) AS q
                     FROM samples WHERE NOT isnan(target_rmsf) GROUP BY split)"""
            ).fetchall()
        }
    finally:
        con.close()
    return {
        "splits": {s: splits[s] for s in SPLITS if s in splits},
        "temperatures": {s: temps[s] for s in SPLITS if s in temps},
        "target": {s: target[s] for s in SPLITS if s in target},
        "rmsf_unit": read_meta(index_path, check_inputs=False).rmsf_unit,
    }


def format_stats(stats: dict) -> str:
    """Text rendering of :func:`index_stats`."""
    lines = ["split      rows      residues  domains"]
    lines += [
        f"{s:<8}{v['rows']:>10,}{v['residues']:>12,}{v['domains']:>9,}"
        for s, v in stats["splits"].items()
    ]
    for s, temps in stats["temperatures"].items():
        lines.append(
            f"{s} rows per temperature (K): " + ", ".join(f"{t}: {n:,}" for t, n in temps.items())
        )
    unit = stats["rmsf_unit"] or "no unit"
    for s, t in stats["target"].items():
        q = "  ".join(f"{k} {t[k]:.4g}" for k in ("mean", "min", "p05", "median", "p95", "max"))
        lines.append(f"{s} target_rmsf ({unit}, n={t['n']:,}): {q}")
    return "\n".join(lines)
