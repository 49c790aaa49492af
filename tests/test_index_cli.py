"""`voxelflex index build | query | stats` and the `preprocess` alias through the CLI."""

from __future__ import annotations

import json

import duckdb
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tests._index_data import csv_rows, residues, write_csv, write_voxels
from voxelflex.cli.main import app
from voxelflex.index import build_index

runner = CliRunner()


def _invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def cli_index(demo_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "idx.parquet"
    d = demo_data
    res = _invoke(
        "index", "build", "--voxel-file", d.voxel_file, "--rmsf-csv", d.rmsf_csv,
        "--rmsf-unit", "nm", "--train", d.train_split, "--val", d.val_split,
        "--test", d.test_split, "--output", out, "--no-progress",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "train" in res.output and "skipped: 0 lines" in res.output
    return out


def test_build_prints_counts_and_writes_files(cli_index):
    assert cli_index.exists()
    assert cli_index.with_name("idx.skipped.csv").exists()
    assert cli_index.with_name("idx.temperature_range.json").exists()


def test_preprocess_alias_and_config_file(demo_data, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(
        f"data:\n  voxel_file: {demo_data.voxel_file}\n  rmsf_csv: {demo_data.rmsf_csv}\n"
        f"  rmsf_unit: angstrom\n  index: {tmp_path / 'from_config.parquet'}\n"
    )
    res = _invoke("preprocess", "--config", config, "--no-progress")
    assert res.exit_code == 0, res.output
    assert "predict" in res.output
    assert pq.read_metadata(tmp_path / "from_config.parquet").num_rows > 0


def test_build_without_unit_fails_naming_the_option(demo_data, tmp_path):
    res = _invoke(
        "index", "build", "--voxel-file", demo_data.voxel_file, "--rmsf-csv",
        demo_data.rmsf_csv, "--output", tmp_path / "x.parquet",
    )  # fmt: skip
    assert res.exit_code == 2
    assert "error:" in res.stderr and "--rmsf-unit nm or --rmsf-unit angstrom" in res.stderr
    assert not (tmp_path / "x.parquet").exists()


def test_build_missing_voxel_file_names_it(tmp_path):
    res = _invoke("index", "build", "--voxel-file", tmp_path / "no.h5", "-o", tmp_path / "i.pq")
    assert res.exit_code == 2 and "no.h5 does not exist" in res.stderr


def test_outputs_named_for_another_format_are_refused(cli_index, tmp_path):
    # a Parquet index or a JSON result named .csv opens as garbage in a spreadsheet
    res = _invoke("index", "query", "SELECT 1 AS x", "--index", cli_index,
                  "--format", "json", "-o", tmp_path / "q.csv")  # fmt: skip
    assert res.exit_code == 2
    assert "q.csv: the query result (--format json) is written as json" in res.output
    assert not (tmp_path / "q.csv").exists()
    res = _invoke("index", "query", "SELECT 1 AS x", "--index", cli_index,
                  "--format", "csv", "-o", tmp_path / "q.csv")  # fmt: skip
    assert res.exit_code == 0 and (tmp_path / "q.csv").read_text().startswith('"x"')
    res = _invoke("index", "build", "--voxel-file", tmp_path / "v.h5", "-o", tmp_path / "i.csv")
    assert res.exit_code == 2 and "i.csv: the index is written as parquet or pq" in res.output


def test_query_table_default(cli_index):
    res = _invoke(
        "index", "query", "SELECT split, count(*) AS n FROM samples GROUP BY 1 ORDER BY 1",
        "--index", cli_index,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].split() == ["split", "n"]
    assert [ln.split()[0] for ln in lines[2:5]] == ["test", "train", "val"]
    assert lines[-1] == "(3 rows)"


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_query_formats_to_file(cli_index, tmp_path, fmt):
    out = tmp_path / f"q.{fmt}"
    sql = "SELECT domain, resnum, temperature, target_rmsf FROM samples WHERE split = 'test'"
    res = _invoke("index", "query", sql, "--index", cli_index, "--format", fmt, "--output", out)
    assert res.exit_code == 0, res.output
    if fmt == "csv":
        t = pcsv.read_csv(out)
    elif fmt == "json":
        rows = json.loads(out.read_text())
        assert set(rows[0]) == {"domain", "resnum", "temperature", "target_rmsf"}
        t = rows
    else:
        t = pq.read_table(out)
    assert len(t) > 0


def test_query_json_is_valid_json_with_numbers(cli_index, tmp_path):
    # NaN inside a list was written as a bare NaN (not JSON), and sum() of an integer column
    # (a DuckDB HUGEINT, an Arrow decimal) as the string "1234"
    sql = (
        "SELECT sum(resnum) AS total, 2.50::DECIMAL(5, 2) AS d, "
        "[1.5, 'nan'::DOUBLE, 'inf'::DOUBLE] AS l, {'a': 'nan'::DOUBLE} AS s FROM samples"
    )
    out = tmp_path / "q.json"
    res = _invoke("index", "query", sql, "-i", cli_index, "-f", "json", "-o", out)
    assert res.exit_code == 0, res.output
    total = pq.read_table(cli_index, columns=["resnum"])["resnum"].to_numpy().sum()
    rows = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert rows == [{"total": int(total), "d": 2.5, "l": [1.5, None, None], "s": {"a": None}}]


def test_query_parquet_result_keeps_nan_findable(cli_index, tmp_path):
    # with float min/max statistics (which omit NaN) DuckDB found no NaN in a filtered scan
    out = tmp_path / "q.parquet"
    sql = "SELECT resnum, CASE WHEN resnum % 2 = 0 THEN 'nan'::FLOAT ELSE 1 END AS x FROM samples"
    res = _invoke("index", "query", sql, "-i", cli_index, "-f", "parquet", "-o", out)
    assert res.exit_code == 0, res.output
    resnum = pq.read_table(out)["resnum"].to_numpy()
    literal = str(out).replace("'", "''")
    sql = f"SELECT count(*) FROM read_parquet('{literal}') WHERE isnan(x)"
    assert duckdb.sql(sql).fetchall() == [(int((resnum % 2 == 0).sum()),)]
    assert (resnum % 2 == 0).any()


def test_query_csv_writes_nan_as_an_empty_field(cli_index):
    # like a predictions CSV: "nan" made the column text in R
    sql = "SELECT 1 AS k, 'nan'::FLOAT AS x UNION ALL SELECT 2, 0.5 ORDER BY k"
    res = _invoke("index", "query", sql, "-i", cli_index, "-f", "csv")
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines() == ['"k","x"', "1,", "2,0.5"]


@pytest.mark.parametrize(
    ("fmt", "sql"),
    [
        ("csv", "SELECT list(resnum) AS l FROM samples"),
        ("csv", "SELECT '\\xFF'::BLOB AS b"),
        ("parquet", "SELECT INTERVAL 3 DAY AS i"),
    ],
)
def test_query_result_the_format_cannot_hold_is_a_message(cli_index, tmp_path, fmt, sql):
    # was a pyarrow traceback (exit status 1)
    out = tmp_path / f"q.{fmt}"
    res = _invoke("index", "query", sql, "-i", cli_index, "-f", fmt, "-o", out)
    assert res.exit_code == 2, res.output
    assert f"cannot be written as {fmt}" in res.stderr and "::VARCHAR" in res.stderr
    assert not out.exists()


def test_query_output_never_replaces_an_index_given_as_file_url(cli_index, tmp_path):
    # `-i file:///.../idx.parquet -o idx.parquet --overwrite` replaced the index with the result
    index = tmp_path / "idx.parquet"
    index.write_bytes(cli_index.read_bytes())
    before = index.read_bytes()
    res = _invoke(
        "index", "query", "SELECT count(*) AS n FROM samples", "-i", index.as_uri(),
        "-f", "parquet", "-o", index, "--overwrite",
    )  # fmt: skip
    assert res.exit_code == 2 and "is the index this command reads" in res.stderr
    assert index.read_bytes() == before


def test_query_refuses_writes_and_reports_sql_errors(cli_index, tmp_path):
    for sql in ("DELETE FROM samples", "CREATE TABLE t AS SELECT 1", "DROP VIEW samples"):
        res = _invoke("index", "query", sql, "--index", cli_index)
        assert res.exit_code == 2
        assert "read-only" in res.stderr and sql in res.stderr
    res = _invoke("index", "query", f"COPY samples TO '{tmp_path / 'x.csv'}'", "-i", cli_index)
    assert res.exit_code == 2 and "read-only" in res.stderr
    assert not (tmp_path / "x.csv").exists()
    res = _invoke("index", "query", "SELECT nosuchcolumn FROM samples", "--index", cli_index)
    assert res.exit_code == 2 and "nosuchcolumn" in res.stderr
    res = _invoke("index", "query", "SELECT 1", "--index", cli_index, "--format", "parquet")
    assert res.exit_code == 2 and "--output" in res.stderr


@pytest.mark.parametrize("fmt", ["table", "csv", "json", "parquet"])
def test_query_refuses_two_columns_of_one_name(cli_index, tmp_path, fmt):
    # a self-join comparing temperatures: as row dicts, one column's values showed under both
    sql = (
        "SELECT a.resid_str, a.target_rmsf, b.target_rmsf FROM samples a JOIN samples b "
        "USING (domain, chain, resid_str) WHERE a.temperature = 320 AND b.temperature = 450"
    )
    out = tmp_path / f"q.{fmt}"
    res = _invoke("index", "query", sql, "-i", cli_index, "-f", fmt, "-o", out)
    assert res.exit_code == 2 and "more than one column named target_rmsf" in res.stderr
    assert not out.exists()
    res = _invoke(
        "index", "query", sql.replace("b.target_rmsf", "b.target_rmsf AS t450"), "-i", cli_index
    )
    assert res.exit_code == 0 and "t450" in res.stdout


def test_stats_text_and_json(cli_index):
    res = _invoke("index", "stats", "--index", cli_index)
    assert res.exit_code == 0, res.output
    assert "train rows per temperature (K): 320:" in res.output
    assert "target_rmsf (nm" in res.output
    res = _invoke("index", "stats", "--index", cli_index, "--json")
    stats = json.loads(res.output)
    assert set(stats["temperatures"]["train"]) == {"320", "348", "379", "413", "450"}
    tr = stats["target"]["train"]
    assert tr["min"] <= tr["p05"] <= tr["median"] <= tr["p95"] <= tr["max"]
    assert sum(v["rows"] for v in stats["splits"].values()) == pq.read_metadata(cli_index).num_rows


def test_stats_keep_close_temperatures_apart(tmp_path):
    # %g alone would print 310.1231 and 310.1234 both as 310.123: one key, one count lost
    temps = (298.15, 310.1231, 310.1234)
    (tmp_path / "train.txt").write_text("d1\n")
    build_index(
        write_voxels(tmp_path / "v.h5", {"d1": {"A": residues("ALA GLY")}}),
        tmp_path / "i.parquet",
        rmsf_csv=write_csv(tmp_path / "r.csv", csv_rows("d1", "ALA GLY", temps=temps)),
        rmsf_unit="nm",
        train=tmp_path / "train.txt",
    )
    res = _invoke("index", "stats", "--index", tmp_path / "i.parquet", "--json")
    assert res.exit_code == 0, res.output
    counts = json.loads(res.output)["temperatures"]["train"]
    assert counts == {"298.15": 2, "310.1231": 2, "310.1234": 2}
