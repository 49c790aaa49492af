"""Reader and validator of the aggregated RMSF CSV (one row per residue per temperature).

Required columns: ``domain_id, resid, resname, temperature_feature`` (K), ``target_rmsf``;
optional: ``chain`` (multi-chain domains) and :data:`OPTIONAL_COLUMNS`.
Read with ``pyarrow.csv`` and checked with vectorised compute; errors name the file, the
1-based line (blank lines, which the reader skips, counted), the domain and residue. Line
numbers assume no quoted field spans lines.
"""

from __future__ import annotations

import csv
import io
import os
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from voxelflex.columns import codes
from voxelflex.errors import InputError
from voxelflex.paths import decode_utf8, require_file

__all__ = ["OPTIONAL_COLUMNS", "OPTIONAL_COLUMN_DOCS", "REQUIRED_COLUMNS", "read_rmsf_csv"]

REQUIRED_COLUMNS = {
    "domain_id": pa.string(),
    "resid": pa.int64(),
    "resname": pa.string(),
    "temperature_feature": pa.float64(),
    "target_rmsf": pa.float64(),
}
# The CSV's optional columns, as the index and the predictions store them. They come from the
# target's own simulation, so they stratify evaluation and are never model inputs.
OPTIONAL_COLUMNS = {
    "relative_accessibility": pa.float32(),
    "dssp": pa.string(),
    "secondary_structure_encoded": pa.int32(),
}
OPTIONAL_COLUMN_DOCS = {
    "relative_accessibility": "relative solvent accessibility from the index (null where none)",
    "dssp": "DSSP secondary-structure code from the index (null where none)",
    "secondary_structure_encoded": "encoded secondary structure from the index",
}


_SAVE_UTF8 = "save it as UTF-8 CSV"  # Excel: "CSV UTF-8"; its "Unicode text" is UTF-16


def _wide(t: pa.DataType) -> pa.DataType:
    """Parse numbers at 64 bits and cast once, as for the required columns."""
    if pa.types.is_floating(t):
        return pa.float64()
    return pa.int64() if pa.types.is_integer(t) else t


_READ_TYPES = {
    **REQUIRED_COLUMNS,
    "chain": pa.string(),
    **{n: _wide(t) for n, t in OPTIONAL_COLUMNS.items()},
}
_INTEGER = r"^\s*-?\d+\s*$"  # as pyarrow reads int64: no leading "+"
_REAL = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$|^\s*[-+]?(nan|NaN|inf|Inf)\s*$"
_NUMBER = {pa.int64(): _INTEGER, pa.int32(): _INTEGER, pa.float64(): _REAL, pa.float32(): _REAL}
_EXAMPLES = 5
_WHOLE = "whole number written as digits with an optional leading '-' (e.g. 57, -3)"


def _header(path: str) -> list[str]:
    """The column names of the header line, stripped.

    Raises
    ------
    InputError
        The header line is not UTF-8 text (:func:`voxelflex.paths.decode_utf8`).
    """
    with open(path, "rb") as fh:
        first = fh.readline()
    text = decode_utf8(first, what=f"RMSF CSV {path}", fix=_SAVE_UTF8)
    return [c.strip() for c in next(csv.reader(io.StringIO(text, newline="")), [])]


def _locate_bad_text(path: str) -> InputError | None:
    """The first line that is not UTF-8 text, named (runs only on pyarrow's failure)."""
    with open(path, "rb") as fh:
        for line_no, line in enumerate(fh, start=1):
            try:
                decode_utf8(line, what=f"RMSF CSV {path}, line {line_no},", fix=_SAVE_UTF8)
            except InputError as exc:
                return exc
    return None


def _file_lines(path: str, n_rows: int) -> np.ndarray:
    """1-based file line of each of the ``n_rows`` data rows, int64 (n_rows,).

    pyarrow skips blank lines, so row i is not line i + 2 when the file has some; the bytes are
    searched for them first (about 0.1 s for mdCATH's 3.3 M rows) and mapped only if found.
    """
    with open(path, "rb") as fh:
        raw = fh.read()
    if not (raw.startswith((b"\n", b"\r\n")) or b"\n\n" in raw or b"\n\r\n" in raw):
        return np.arange(2, n_rows + 2, dtype=np.int64)
    data = np.frombuffer(raw, np.uint8)
    ends = np.append(np.flatnonzero(data == ord("\n")), len(data))
    starts = np.concatenate([[0], ends[:-1] + 1])
    length = ends - starts
    last = data[np.maximum(ends - 1, 0)] if len(data) else np.zeros(len(ends), np.uint8)
    blank = (length == 0) | ((length == 1) & (last == ord("\r")))
    lines = np.flatnonzero(~blank)[1:] + 1  # [1:]: the header
    if len(lines) != n_rows:  # a quoted field spanning lines: fall back to the plain count
        return np.arange(2, n_rows + 2, dtype=np.int64)
    return lines.astype(np.int64)


def _locate_bad_value(path: str, column: str, typ: pa.DataType, message: str) -> InputError:
    """Find the first line whose ``column`` does not parse as ``typ`` (runs only on failure)."""
    raw = pcsv.read_csv(
        path,
        read_options=pcsv.ReadOptions(column_names=_header(path), skip_rows=1),
        convert_options=pcsv.ConvertOptions(
            column_types={column: pa.string()}, include_columns=[column]
        ),
    ).column(column)
    ok = pc.match_substring_regex(raw, _NUMBER[typ])
    bad = np.flatnonzero(~ok.to_numpy(zero_copy_only=False))
    if len(bad):
        i = int(bad[0])
        line = _file_lines(path, len(raw))[i]
        return InputError(
            f"{path}, line {line}: column {column!r} value {raw[i].as_py()!r} is not a "
            f"{_WHOLE if pa.types.is_integer(typ) else 'number'}; fix that line"
        )
    return InputError(f"{path}: column {column!r} could not be read ({message}); fix the file")


def _read(path: str, columns: list[str]) -> pa.Table:
    types = {c: _READ_TYPES[c] for c in columns if c in _READ_TYPES}
    try:
        return pcsv.read_csv(
            path,
            # the header's names as _header strips them ("resid, resname" is a common header)
            read_options=pcsv.ReadOptions(column_names=columns, skip_rows=1),
            convert_options=pcsv.ConvertOptions(column_types=types, null_values=[""]),
        )
    except pa.ArrowInvalid as exc:
        message = str(exc)
        found = re.search(r"column #(\d+)", message)
        column = columns[int(found.group(1))] if found else None
        if column in types and types[column] in _NUMBER:
            raise _locate_bad_value(path, column, types[column], message) from exc
        if "invalid UTF8" in message:  # a byte past the header (Latin-1 "é" in a name)
            raise _locate_bad_text(path) or InputError(
                f"{path}: not UTF-8 text ({message}); {_SAVE_UTF8}"
            ) from exc
        raise InputError(f"{path}: not a readable CSV ({message}); fix the file") from exc


def _rows_error(path: str, table: pa.Table, mask: pa.Array, what: str) -> InputError:
    idx = np.flatnonzero(mask.to_numpy(zero_copy_only=False))
    examples = [
        f"line {table['line'][int(i)].as_py()} (domain {table['domain_id'][int(i)].as_py()}, "
        f"resid {table['resid'][int(i)].as_py()})"
        for i in idx[:_EXAMPLES]
    ]
    return InputError(f"{path}: {len(idx)} rows with {what}, e.g. {'; '.join(examples)}; fix them")


def _check_values(path: str, t: pa.Table, *, has_chain: bool) -> None:
    for col in ("domain_id", "resname", *(["chain"] if has_chain else [])):
        empty = pc.or_kleene(pc.is_null(t[col]), pc.equal(pc.utf8_trim_whitespace(t[col]), ""))
        if pc.any(empty).as_py():
            raise _rows_error(path, t, pc.fill_null(empty, True), f"an empty {col}")
    for col in ("resid", "temperature_feature", "target_rmsf"):
        null = pc.is_null(t[col])
        if pc.any(null).as_py():
            raise _rows_error(path, t, null, f"an empty {col}")
    resid = t["resid"]
    too_big = pc.or_(pc.less(resid, -(2**31)), pc.greater(resid, 2**31 - 1))
    if pc.any(too_big).as_py():
        raise _rows_error(path, t, too_big, "a resid outside the 32-bit integer range")
    for col, what in (("temperature_feature", "temperature"), ("target_rmsf", "RMSF")):
        values = t[col]
        bad = pc.or_(pc.invert(pc.is_finite(values)), pc.less(values, 0.0))
        if col == "temperature_feature":
            bad = pc.or_(bad, pc.equal(values, 0.0))
        if pc.any(bad).as_py():
            sign = "non-positive" if col == "temperature_feature" else "negative"
            raise _rows_error(path, t, bad, f"NaN, infinite or {sign} {what} ({col})")


def _check_duplicates(path: str, t: pa.Table) -> None:
    # Sort-based: a lexsort of integer codes needs far less memory than a hash aggregate.
    keys = [
        codes(t["domain_id"]),
        codes(pc.fill_null(t["chain"], "")),
        t["resid"].to_numpy(),
        codes(t["temperature"]),
    ]
    order = np.lexsort(keys[::-1])
    same = np.ones(len(order) - 1 if len(order) else 0, dtype=bool)
    for k in keys:
        ks = k[order]
        same &= ks[1:] == ks[:-1]
    if not same.any():
        return
    starts = np.flatnonzero(same & ~np.concatenate([[False], same[:-1]]))
    examples = []
    for i in starts[:_EXAMPLES].tolist():
        end = i + 1
        while end < len(same) and same[end]:
            end += 1
        rows = np.sort(order[i : end + 1])
        r0 = int(rows[0])
        chain = t["chain"][r0].as_py()
        examples.append(
            f"domain {t['domain_id'][r0].as_py()}{'' if chain is None else f' chain {chain}'} "
            f"resid {t['resid'][r0].as_py()} at {t['temperature'][r0].as_py():g} K on "
            f"lines {[t['line'][int(x)].as_py() for x in rows]}"
        )
    chains = (
        "; if they are residues of different chains that share numbers, add a `chain` column"
        if t["chain"].null_count == len(t)
        else ""
    )
    raise InputError(
        f"{path}: {len(starts)} duplicated (domain, chain, resid, temperature) keys, e.g. "
        f"{'; '.join(examples)}; keep one row per residue and temperature (average replicas "
        f"first){chains}"
    )


def read_rmsf_csv(path: str | os.PathLike) -> pa.Table:
    """Read and validate an RMSF CSV.

    Returns
    -------
    pyarrow.Table
        Columns ``line`` (int64, 1-based line in the file), ``domain_id`` (str), ``chain``
        (str, null when the file has no chain column), ``resid`` (int32), ``resname`` (str),
        ``temperature`` (float32, K), ``target_rmsf`` (float32, the file's unit) and those of
        :data:`OPTIONAL_COLUMNS` present in the file (as read; the index casts them).

    Raises
    ------
    InputError
        Missing file or columns, unparsable values, NaN/inf/negative RMSF or temperature,
        duplicated (domain, chain, resid, temperature) rows.
    """
    path = os.fspath(path)
    require_file(path, what="RMSF CSV", option="--rmsf-csv")
    columns = _header(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise InputError(
            f"{path}: required columns {missing} are missing (found {columns}); the RMSF CSV "
            f"needs {list(REQUIRED_COLUMNS)}"
        )
    repeated = sorted({c for c in columns if columns.count(c) > 1 and c})
    if repeated:
        raise InputError(
            f"{path}: the header names column(s) {repeated} more than once (found {columns}); "
            "keep one column of each name (rename or delete the other)"
        )
    t = _read(path, columns)
    t = t.append_column("line", pa.array(_file_lines(path, t.num_rows)))
    if "chain" not in columns:
        t = t.append_column("chain", pa.nulls(t.num_rows, pa.string()))
    _check_values(path, t, has_chain="chain" in columns)
    out = {
        "line": t["line"],
        "domain_id": pc.utf8_trim_whitespace(t["domain_id"]),
        "chain": pc.utf8_trim_whitespace(t["chain"]),
        "resid": pc.cast(t["resid"], pa.int32()),
        "resname": pc.utf8_upper(pc.utf8_trim_whitespace(t["resname"])),
        "temperature": pc.cast(t["temperature_feature"], pa.float32()),
        "target_rmsf": pc.cast(t["target_rmsf"], pa.float32()),
    }
    # On the values as the index keeps them: " d1" is d1, " A" is A, 320.00001 K is 320 K in
    # float32.
    _check_duplicates(path, pa.table(out))
    for name in OPTIONAL_COLUMNS:
        if name in columns:
            out[name] = t[name]
    if "dssp" in out:  # a blank code is no code: null, as the docs say, not a class of its own
        dssp = pc.utf8_trim_whitespace(out["dssp"])
        out["dssp"] = pc.if_else(pc.equal(dssp, ""), pa.scalar(None, pa.string()), out["dssp"])
    return pa.table(out)
