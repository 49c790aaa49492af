"""Outputs that open anywhere (issue 14): a plain predictions CSV with a metadata sidecar, older
CSVs still read, a log file for every command that writes results, progress bars for the steps
that take a while."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pytest
from typer.testing import CliRunner

from tests._checkpoints import make_checkpoint
from voxelflex.analysis import predictions as predictions_module
from voxelflex.analysis.missing import missing_table
from voxelflex.analysis.predict import predict
from voxelflex.analysis.predictions import read_predictions, sidecar_path
from voxelflex.cli.main import app
from voxelflex.config import load_config
from voxelflex.engine.checkpoint import Checkpoint
from voxelflex.errors import InputError
from voxelflex.logs import LOG_FILE, log_file_for

DATA = Path(__file__).parent / "data"
runner = CliRunner()


def _invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run folder with a (small, untrained) checkpoint in models/ and the log train starts."""
    root = tmp_path_factory.mktemp("outputs") / "run"
    make_checkpoint(root / "models" / "best.pt")
    (root / LOG_FILE).parent.mkdir()
    (root / LOG_FILE).write_text("")
    return root


@pytest.fixture(scope="module")
def csv_predictions(run, demo_index, tmp_path_factory):
    out = tmp_path_factory.mktemp("csv") / "preds.csv"
    config = load_config(overrides=["predict.progress=false"])
    predict(run / "models" / "best.pt", demo_index, split="test", out_path=out, config=config)
    return out


def test_predictions_csv_is_plain_for_every_reader(csv_predictions):
    table, _ = read_predictions(csv_predictions)
    assert sidecar_path(csv_predictions).name == "preds.csv.json"
    sidecar = json.loads(sidecar_path(csv_predictions).read_text())
    assert sidecar["rmsf_unit"] == "nm" and sidecar["columns"]["predicted_rmsf"]
    # Python's csv module: the first row is the header, every row has every column
    with open(csv_predictions, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == table.column_names
    assert len(rows) == table.num_rows + 1 and {len(r) for r in rows} == {len(rows[0])}
    # DuckDB infers the same columns and row count, with numbers as numbers
    con = duckdb.connect()
    try:
        rel = con.execute(f"SELECT * FROM read_csv_auto('{csv_predictions}')")
        columns = [d[0] for d in rel.description]
        n_rows = len(rel.fetchall())
        kinds = dict(
            con.execute(
                f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM "
                f"read_csv_auto('{csv_predictions}'))"
            ).fetchall()
        )
    finally:
        con.close()
    assert columns == table.column_names and n_rows == table.num_rows
    assert kinds["predicted_rmsf"] in ("DOUBLE", "FLOAT") and kinds["resnum"] == "BIGINT"


def test_predictions_csv_reads_in_pandas_as_is(csv_predictions):
    import pandas as pd

    frame = pd.read_csv(csv_predictions)
    table, _ = read_predictions(csv_predictions)
    assert list(frame.columns) == table.column_names and len(frame) == table.num_rows
    np.testing.assert_allclose(frame["predicted_rmsf"], table["predicted_rmsf"].to_numpy())


def test_evaluate_reads_csvs_written_with_the_old_header_line(tmp_path):
    old = shutil.copy(DATA / "predictions_header_v1.csv", tmp_path / "predictions_test.csv")
    table, meta = read_predictions(old)
    assert meta.rmsf_unit == "nm" and table.num_rows == 12
    result = _invoke("evaluate", "-p", old, "--no-importance")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "evaluation_metrics_test.json").read_text())
    assert metrics["overall"]["n"] == 12 and "skipped" in metrics["baselines"]


def test_a_csv_without_its_sidecar_gets_a_clear_error(csv_predictions, tmp_path):
    lone = shutil.copy(csv_predictions, tmp_path / "lone.csv")
    result = _invoke("evaluate", "-p", lone, "--no-importance")
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "metadata file lone.csv.json is missing" in message
    assert "pass the Parquet predictions instead" in message
    assert "Traceback" not in result.output


def test_a_crash_between_csv_and_metadata_never_pairs_new_rows_with_old_metadata(
    csv_predictions, tmp_path, monkeypatch
):
    out = shutil.copy(csv_predictions, tmp_path / "p.csv")
    shutil.copy(sidecar_path(csv_predictions), sidecar_path(out))
    table, meta = read_predictions(out)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # killed after the CSV landed, before its metadata

    monkeypatch.setattr(predictions_module, "atomic_write_text", crash)
    with pytest.raises(KeyboardInterrupt):
        predictions_module.write_predictions(table.slice(0, 3), meta, out)
    with pytest.raises(InputError, match=r"metadata file p\.csv\.json is missing"):
        read_predictions(out)


@pytest.mark.parametrize("crash_in", ["report", "predictions"])
def test_a_crash_while_predict_writes_never_leaves_predictions_beside_another_report(
    run, csv_predictions, tmp_path, monkeypatch, crash_in
):
    """The missing report is the only record of what was not predicted: a kill between the
    predictions and their report left new predictions beside no report, or an earlier run's."""
    out = tmp_path / "p.parquet"
    missing_out = tmp_path / "p_missing.csv"
    table, _ = read_predictions(csv_predictions)
    ck = Checkpoint.load(run / "models" / "best.pt")
    lines = missing_table([("d1", None, None, None, "not_in_index", "x")])

    def write(rows, missing):
        predictions_module.write_outputs(
            rows, missing, ck, checkpoint=run / "models" / "best.pt", index="i",
            splits=["test"], temperatures=np.array([300.0]), out=out, missing_out=missing_out,
        )  # fmt: skip

    write(table, lines)  # an earlier run: its predictions and report
    earlier = out.read_bytes(), missing_out.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    target = "atomic_write_csv" if crash_in == "report" else "atomic_write_parquet"
    monkeypatch.setattr(predictions_module, target, crash)
    with pytest.raises(KeyboardInterrupt):
        write(table.slice(0, 5), missing_table([("d2", None, None, None, "not_in_index", "y")]))
    monkeypatch.undo()
    # never predictions beside a report that is not theirs (or without theirs): none, or both
    # as the earlier run left them
    if out.exists():
        assert (out.read_bytes(), missing_out.read_bytes()) == earlier
    write(table.slice(0, 5), missing_table([]))  # a rerun with nothing missing: no report
    assert read_predictions(out)[0].num_rows == 5 and not missing_out.exists()


def test_commands_that_write_results_log_into_the_run_folder_or_beside_the_output(
    run, demo_index, demo_data, tmp_path
):
    assert log_file_for(run / "metrics" / "predictions_test.parquet") == run / LOG_FILE
    assert log_file_for(tmp_path / "work" / "index.parquet") == tmp_path / "work" / "index.log"
    (tmp_path / "project" / "models").mkdir(parents=True)  # a user's folder, not a run
    project_index = tmp_path / "project" / "index.parquet"
    assert log_file_for(project_index) == tmp_path / "project" / "index.log"
    # predict, evaluate, plot of a run: the run's log
    result = _invoke("predict", "-c", run / "models" / "best.pt", "-i", demo_index,
                     "--split", "test", "--no-progress")  # fmt: skip
    assert result.exit_code == 0, result.output
    preds = run / "metrics" / "predictions_test.parquet"
    result = _invoke("evaluate", "-p", preds, "--no-importance")
    assert result.exit_code == 0, result.output
    result = _invoke("plot", "--run-dir", run)
    assert result.exit_code == 0, result.output
    text = (run / LOG_FILE).read_text()
    for command in ("predict", "evaluate", "plot"):
        assert f"voxelflex 0.1.0: {command} -> " in text, command
    # index build, shards build and index query -o: beside their output
    work = tmp_path / "work"
    d = demo_data
    result = _invoke("index", "build", "--voxel-file", d.voxel_file, "--rmsf-csv", d.rmsf_csv,
                     "--rmsf-unit", "nm", "--train-split", d.train_split, "--val-split",
                     d.val_split, "-o", work / "index.parquet", "--no-progress")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "index build -> " in (work / "index.log").read_text()
    result = _invoke("shards", "build", "--index", work / "index.parquet", "-o", work / "shards",
                     "--no-progress")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "shards build -> " in (work / "shards.log").read_text()
    assert not (work / "shards" / "shards.log").exists()  # nothing stray in the shard folder
    # voxelize and features: beside their output too
    structure = Path(__file__).parent / "data" / "structures" / "1a8o.pdb.gz"
    result = _invoke("voxelize", structure, "-o", work / "voxels.hdf5", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "voxelize -> " in (work / "voxels.log").read_text()
    result = _invoke("features", structure, "-o", work / "f.parquet", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "features -> " in (work / "f.log").read_text()
    sql = "SELECT split, count(*) AS n FROM samples GROUP BY split"
    result = _invoke("index", "query", sql, "-i", work / "index.parquet", "-f", "csv",
                     "-o", work / "counts.csv")  # fmt: skip
    assert result.exit_code == 0, result.output
    log = (work / "counts.log").read_text()
    assert "index query -> " in log and "GROUP BY split" in log
    # ... and it follows the overwrite policy
    result = _invoke("index", "query", sql, "-i", work / "index.parquet", "-o", work / "counts.csv")
    assert result.exit_code == 2 and "already exists" in result.output
    # read-only commands write no log
    before = sorted(p.name for p in work.iterdir())
    for args in (
        ("index", "stats", "-i", work / "index.parquet"),
        ("index", "query", sql, "-i", work / "index.parquet"),
        ("shards", "verify", work / "shards"),
    ):
        result = _invoke(*args)
        assert result.exit_code == 0, result.output
    assert sorted(p.name for p in work.iterdir()) == before
    assert not list((work / "shards").glob("*.log"))


def test_predict_and_evaluate_show_progress_unless_told_not_to(run, demo_index, tmp_path, capfd):
    checkpoint = run / "models" / "best.pt"
    quiet = load_config(overrides=["predict.progress=false"])
    predict(checkpoint, demo_index, split="test", out_path=tmp_path / "q.parquet", config=quiet)
    assert "predict" not in capfd.readouterr().err
    result = _invoke("predict", "-c", checkpoint, "-i", demo_index, "--split", "test",
                     "-o", tmp_path / "p.parquet")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "predict:" in result.output  # the bar (tqdm, on stderr)
    result = _invoke("evaluate", "-p", tmp_path / "p.parquet", "--shuffles", "1")
    assert result.exit_code == 0, result.output
    assert "permutation importance (test)" in result.output
    result = _invoke("evaluate", "-p", tmp_path / "p.parquet", "--shuffles", "1", "--no-progress",
                     "--overwrite")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "permutation importance (test)" not in result.output


URL = "http://127.0.0.1:9/out"


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["shards", "build", "--index", "idx.parquet", "-o", URL], "--output"),
        (["index", "build", "--voxel-file", "v.hdf5", "-o", URL + ".parquet"], "--output"),
        (["index", "query", "SELECT 1", "-i", "idx.parquet", "-o", URL + ".csv"], "--output"),
        (["voxelize", "x.pdb", "-o", URL + ".hdf5"], "--output"),
        (["features", "x.pdb", "-o", URL + ".parquet"], "--output"),
        (["predict", "-c", "best.pt", "-o", URL + ".csv"], "--output"),
        (
            ["predict", "-c", "best.pt", "--structure", "x.pdb", "--bfactor-dir", URL],
            "--bfactor-dir",
        ),
        (["evaluate", "-p", "preds.csv", "-o", URL + ".json"], "--output"),
        (["plot", "-p", "preds.csv", "-o", URL], "--output-dir"),
        (["import", "mdcath", "mdcath", "-o", URL], "--output"),
        (["config", "migrate", "old.yaml", "-o", URL + ".yaml"], "--output"),
        (["train", "--index", "idx.parquet", "--output-dir", URL], "--output-dir"),
        (["train", "--index", "idx.parquet", "--set", f"output_dir={URL}"], "output_dir"),
        (["demo", "-o", URL], "--output"),
    ],
    ids=lambda v: " ".join(v[:2]) if isinstance(v, list) else v,
)
def test_a_url_output_is_refused_not_written_to_a_local_http_folder(
    args, option, tmp_path, monkeypatch
):
    """``-o http://host/x`` once wrote ./http:/host/x and exited 0: outputs are local."""
    monkeypatch.chdir(tmp_path)
    result = _invoke(*args)
    text = " ".join(result.output.replace("│", " ").split())
    assert result.exit_code == 2, text
    assert option in text and URL in text, text
    assert "is a URL" in text and "upload" in text and "aws s3 cp" in text, text
    assert not list(tmp_path.iterdir())  # no http: folder, no log


def test_an_atomic_write_syncs_the_file_then_its_folder(tmp_path, monkeypatch):
    """The rename is made durable too: without the folder's fsync a power loss could keep a
    later file (a manifest) and lose an earlier one (its shard)."""
    import os

    from voxelflex.atomic import atomic_write_text

    synced, real = [], os.fsync
    monkeypatch.setattr(
        os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real(fd))
    )
    atomic_write_text(tmp_path / "sub" / "a.txt", "x")
    assert (tmp_path / "sub" / "a.txt").read_text() == "x"
    assert len(synced) == 2 and synced[1] == str(tmp_path / "sub")
    assert Path(synced[0]).parent == tmp_path / "sub"  # the temporary file, before its rename
