"""Evaluation on predictions tables: metrics against hand-computed cases, baselines, JSON output."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from tests._damage import flip_last_byte_of_column
from tests._index_data import csv_rows, residues, write_csv, write_voxels
from voxelflex.analysis.baselines import fit_baselines
from voxelflex.analysis.evaluate import evaluate, format_summary, prediction_metrics
from voxelflex.analysis.predictions import (
    PredictionsMeta,
    read_predictions,
    write_predictions,
)
from voxelflex.analysis.temperatures import parse_sweep, resolve_temperatures
from voxelflex.demo.generate import build_demo_index
from voxelflex.demo.structures import generate_structure_demo
from voxelflex.errors import ConfigError, InputError, VoxelflexError
from voxelflex.index import build_index, read_index
from voxelflex.metrics import grouped_pearson, pearson, regression_metrics, summarize
from voxelflex.quantities import temperature_key
from voxelflex.sources.shards.manifest import file_sha256


def _table(**cols) -> pa.Table:
    n = len(cols["target_rmsf"])
    base = {
        "domain": ["d1"] * n,
        "chain": ["A"] * n,
        "resid_str": [str(i + 1) for i in range(n)],
        "resnum": pa.array(np.arange(1, n + 1), pa.int32()),
        "icode": [""] * n,
        "resname": ["ALA"] * n,
        "temperature": [320.0] * n,
        "extrapolated": [False] * n,
    }
    base.update(cols)
    base["temperature"] = pa.array(base["temperature"], pa.float32())
    base["predicted_rmsf"] = pa.array(base["predicted_rmsf"], pa.float32())
    base["target_rmsf"] = pa.array(base["target_rmsf"], pa.float32())
    return pa.table(base)


def _meta(index: str = "/nonexistent/index.parquet") -> PredictionsMeta:
    return PredictionsMeta(
        rmsf_unit="nm",
        checkpoint="/nonexistent/best.pt",
        index=index,
        splits=["test"],
        temperatures=[320.0, 350.0],
        training_temperature_range=[320.0, 450.0],
        model="multipath (tiny, film)",
    )


def test_pearson_spearman_and_errors_match_hand_computation():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    p = np.array([1.0, 3.0, 2.0, 4.0])
    m = regression_metrics(y, p)
    # r = cov / (sd sd) = 4 / 5; ranks equal values here, so Spearman = Pearson
    assert m["pearson"] == pytest.approx(0.8)
    assert m["spearman"] == pytest.approx(0.8)
    assert m["rmse"] == pytest.approx(np.sqrt(0.5))
    assert m["mae"] == pytest.approx(0.5)
    assert m["r2"] == pytest.approx(1 - 2 / 5)
    assert np.isnan(pearson([1.0, 2.0, 3.0], [0.3, 0.3, 0.3]))  # constant prediction
    # a constant target has no R²: rounding in its float64 mean left SST at 1e-34, R² at -1e31
    assert np.isnan(regression_metrics(np.full(3, 0.1), np.array([0.1, 0.2, 0.3]))["r2"])


def test_grouped_pearson_equals_per_group_pearson_and_flags_small_groups():
    rng = np.random.default_rng(0)
    y, p = rng.random(30), rng.random(30)
    codes = np.repeat([7, 3, 5], 10)
    codes[-1] = 9  # a group of one row: undefined
    groups, r = grouped_pearson(y, p, codes)
    assert groups.tolist() == [3, 5, 7, 9]
    for g, value in zip(groups[:3], r[:3], strict=True):
        assert value == pytest.approx(pearson(y[codes == g], p[codes == g]))
    assert np.isnan(r[3])


def test_grouped_pearson_of_a_constant_group_is_undefined_not_tiny():
    # the float64 mean of three 0.1s rounds: without a guard r came out -6.5e-17, not NaN
    y = np.array([0.2, 0.5, 0.9, 0.2, 0.5, 0.9])
    p = np.array([0.1, 0.1, 0.1, 0.3, 0.6, 0.8])
    _, r = grouped_pearson(y, p, np.repeat([0, 1], 3))
    assert np.isnan(r[0]) and r[1] == pytest.approx(pearson(y[3:], p[3:]))
    _, r = grouped_pearson(p[:3], y[:3], np.zeros(3, np.int64))  # constant truth, too
    assert np.isnan(r[0])


def test_summarize_quartiles_and_undefined_count():
    s = summarize(np.array([0.2, 0.4, 0.6, 0.8, np.nan]))
    assert s == {
        "n": 4,
        "n_undefined": 1,
        "mean": pytest.approx(0.5),
        "median": pytest.approx(0.5),
        "q25": pytest.approx(0.35),
        "q75": pytest.approx(0.65),
    }


def test_per_domain_pearson_aggregates_each_domain_at_each_temperature():
    # d1 at 320 K: r = 1; d2 at 320 K: r = -1; d1 at 350 K: r = 0.8; d2 at 350 K: constant truth
    table = _table(
        domain=["d1"] * 3 + ["d2"] * 3 + ["d1"] * 4 + ["d2"] * 2,
        temperature=[320.0] * 6 + [350.0] * 6,
        target_rmsf=[1, 2, 3, 1, 2, 3, 1, 2, 3, 4, 5, 5],
        predicted_rmsf=[1, 2, 3, 3, 2, 1, 1, 3, 2, 4, 1, 2],
    )
    m = prediction_metrics(table)
    d320 = m["per_domain_pearson"]["320"]
    assert d320["n"] == 2 and d320["mean"] == pytest.approx(0.0)
    assert d320["q25"] == pytest.approx(-0.5) and d320["q75"] == pytest.approx(0.5)
    d350 = m["per_domain_pearson"]["350"]
    assert d350["n"] == 1 and d350["n_undefined"] == 1
    assert d350["median"] == pytest.approx(0.8)
    assert m["per_temperature"]["320"]["n"] == 6
    assert m["per_temperature"]["350"]["pearson"] == pytest.approx(
        pearson([1, 2, 3, 4, 5, 5], [1, 3, 2, 4, 1, 2])
    )


def test_per_domain_r_over_all_temperatures_carries_the_temperature_trend():
    # docs/analysis.md, "Weighting": a prediction of one value per temperature has a high r
    # within a domain over all temperatures, none at one temperature; a 2-row domain gets r = 1
    rng = np.random.default_rng(0)
    t = np.repeat([320.0, 450.0], 20)
    y = np.where(t == 320, 0.1, 0.3) + rng.normal(0, 0.03, 40)
    table = _table(
        domain=["d1"] * 40 + ["d2"] * 2,
        resid_str=[str(i) for i in range(42)],
        temperature=[*t, 320.0, 320.0],
        target_rmsf=[*y, 0.1, 0.2],
        predicted_rmsf=[*np.where(t == 320, 0.1, 0.3), 0.5, 0.9],
    )
    m = prediction_metrics(table)["per_domain_pearson"]
    assert m["all_temperatures"]["n"] == 2 and m["all_temperatures"]["median"] > 0.9
    assert (m["320"]["n"], m["320"]["n_undefined"]) == (1, 1)  # d1 constant at 320 K
    assert m["320"]["median"] == pytest.approx(1.0)  # d2: 2 rows
    assert m["450"]["n"] == 0 and m["450"]["n_undefined"] == 1


def test_close_temperatures_keep_their_own_metrics():
    # %g labelled 310.1231 and 310.1234 both "310.123": one set of metrics replaced the other
    table = _table(
        temperature=[310.1231] * 3 + [310.1234] * 3,
        target_rmsf=[1, 2, 3, 1, 2, 3],
        predicted_rmsf=[1, 2, 3, 3, 2, 1],
    )
    per_t = prediction_metrics(table)["per_temperature"]
    assert per_t["310.1231"]["pearson"] == pytest.approx(1.0)
    assert per_t["310.1234"]["pearson"] == pytest.approx(-1.0)


def test_rows_without_target_are_counted_not_scored():
    table = _table(target_rmsf=[1.0, 2.0, np.nan, 4.0], predicted_rmsf=[1.0, 2.0, 9.0, 4.0])
    m = prediction_metrics(table)
    assert m["n_rows"] == 3 and m["n_rows_without_target"] == 1
    assert m["overall"]["rmse"] == pytest.approx(0.0)


def test_stratification_by_accessibility_bins_secondary_structure_and_residue_type():
    acc = [0.05, 0.0, 0.2, 0.39, 0.4, 1.0, np.nan, 1.2]
    table = _table(
        target_rmsf=np.arange(8.0),
        predicted_rmsf=np.arange(8.0) + 0.5,
        relative_accessibility=pa.array(acc, pa.float32()),
        dssp=["H", "H", "E", "E", "C", None, "C", "H"],
        resname=["GLY", "GLY", "ALA", "ALA", "ALA", "LYS", "LYS", "LYS"],
    )
    s = prediction_metrics(table)["stratified"]
    bins = s["relative_accessibility"]["groups"]
    assert {k: v["n"] for k, v in bins.items()} == {
        "[0, 0.1)": 2,
        "[0.1, 0.4)": 2,
        "[0.4, 1.01)": 2,
    }
    assert s["relative_accessibility"]["n_without_value"] == 2  # NaN and 1.2
    assert {k: v["n"] for k, v in s["secondary_structure"]["groups"].items()} == {
        "C": 2,
        "E": 2,
        "H": 3,
    }
    assert s["secondary_structure"]["n_without_value"] == 1
    assert s["residue_type"]["groups"]["LYS"]["mae"] == pytest.approx(0.5)


def test_a_value_on_a_custom_bin_edge_lands_in_the_bin_it_opens():
    # 0.7 and 0.35 as float32 (the index's type) are just below the float64 edges
    table = _table(
        target_rmsf=np.arange(4.0),
        predicted_rmsf=np.arange(4.0),
        relative_accessibility=pa.array([0.35, 0.7, 0.2, 0.9], pa.float32()),
    )
    bins = prediction_metrics(table, accessibility_bins=[0, 0.35, 0.7, 1.01])["stratified"]
    groups = bins["relative_accessibility"]["groups"]
    assert {k: v["n"] for k, v in groups.items()} == {
        "[0, 0.35)": 1,
        "[0.35, 0.7)": 1,
        "[0.7, 1.01)": 2,
    }


def test_baselines_residue_type_temperature_mean_and_temperature_fit():
    train = pa.table(
        {
            "resname": ["ALA", "ALA", "GLY", "ALA", "GLY"],
            "temperature": pa.array([320, 320, 320, 450, 450], pa.float32()),
            "target_rmsf": pa.array([0.1, 0.3, 0.5, 0.6, 0.9], pa.float32()),
        }
    )
    rows = pa.table(
        {
            "resname": ["ALA", "GLY", "TRP", "ALA"],
            "temperature": pa.array([320, 450, 320, 379], pa.float32()),
        }
    )
    b = fit_baselines(train, rows)
    slope, intercept = np.polyfit([320, 320, 320, 450, 450], [0.1, 0.3, 0.5, 0.6, 0.9], 1)
    fit = intercept + slope * np.array([320, 450, 320, 379])
    np.testing.assert_allclose(b.predictions["temperature_fit"], fit, rtol=1e-5)
    # TRP never seen, 379 K never seen: both fall back to the temperature fit
    np.testing.assert_allclose(
        b.predictions["residue_type_temperature_mean"], [0.2, 0.9, fit[2], fit[3]], rtol=1e-5
    )
    assert b.fallback_rows == 2 and b.n_train == 5


def test_baselines_with_one_train_temperature_keep_the_residue_type_means():
    # one temperature (a crystal set, a single-temperature run): the temperature line is flat
    # at the train mean; the residue-type means (and the physics lines) still stand
    train = pa.table(
        {
            "resname": ["ALA", "GLY", "ALA"],
            "temperature": pa.array([320, 320, 320], pa.float32()),
            "target_rmsf": pa.array([0.1, 0.4, 0.3], pa.float32()),
        }
    )
    b = fit_baselines(train, train)
    np.testing.assert_allclose(b.predictions["temperature_fit"], [0.8 / 3] * 3, rtol=1e-6)
    np.testing.assert_allclose(b.predictions["residue_type_temperature_mean"], [0.2, 0.4, 0.2])
    assert b.coefficients == pytest.approx((0.8 / 3, 0.0))
    with pytest.raises(InputError, match="no row with a target"):
        fit_baselines(train.slice(0, 0), train)


def test_evaluate_writes_strict_json_and_records_skipped_parts(tmp_path):
    rng = np.random.default_rng(1)
    y = rng.random(40)
    table = _table(
        domain=["d1"] * 20 + ["d2"] * 20,
        temperature=[320.0, 350.0] * 20,
        target_rmsf=y,
        predicted_rmsf=y + rng.normal(0, 0.1, 40),
    )
    preds = write_predictions(table, _meta(), tmp_path / "metrics" / "predictions_test.csv")
    report = evaluate(preds, importance=False)
    assert report.path == tmp_path / "metrics" / "evaluation_metrics_test.json"
    on_disk = json.loads(report.path.read_text())  # strict JSON: NaN written as null
    assert on_disk["overall"]["n"] == 40 and on_disk["rmsf_unit"] == "nm"
    assert "does not exist" in on_disk["baselines"]["skipped"]
    assert on_disk["permutation_importance"] == {"skipped": "not requested"}
    text = format_summary(on_disk)
    assert "model" in text and "320 K" in text and "350 K" in text
    # importance over other rows than the table (predict -t 320: all indexed temperatures)
    # says so beside its drops; over the same rows it does not
    drops = {"temperature": {"pearson_drop": 0.1}}
    for n, said in ((100, True), (40, False)):
        on_disk["permutation_importance"] = {
            "n_rows": n,
            "baseline_pearson": 0.5,
            "features": drops,
        }
        line = format_summary(on_disk).splitlines()[-1]
        assert line.startswith("permutation importance (drop in Pearson): temperature 0.100")
        assert ("(from Pearson 0.500 over 100 index rows" in line) is said
    # docs/analysis.md's "Contents of the JSON" names every top-level key, and only those
    docs = (Path(__file__).resolve().parents[1] / "docs" / "analysis.md").read_text()
    table = docs.split("Contents of the JSON:")[1].split("\n\n")[1]
    documented = {
        key
        for line in table.splitlines()[2:]
        for key in re.findall(r"`(\w+)[.`]", line.split("|")[1])
    }
    assert set(on_disk) == documented


def test_an_index_or_checkpoint_given_that_cannot_be_read_is_refused_not_skipped(tmp_path):
    # exit 0 before, the baselines (importance) skipped with a warning: what -i (-c) asked for
    # was quietly left out. The recorded ones still skip (the test above).
    y = np.linspace(0.1, 0.5, 6)
    preds = write_predictions(_table(target_rmsf=y, predicted_rmsf=y), _meta(), tmp_path / "p.csv")
    not_an_index = tmp_path / "index.parquet"
    not_an_index.write_text("domain_id,resid\n")
    with pytest.raises(VoxelflexError, match=f"{not_an_index} is not a Parquet file"):
        evaluate(preds, index_path=not_an_index, importance=False)
    with pytest.raises(InputError, match=f"checkpoint {tmp_path / 'best.pt'} does not exist"):
        evaluate(preds, checkpoint=tmp_path / "best.pt", importance=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.parquet", "p.csv", "p.csv.json"]


def test_a_metrics_output_not_named_json_is_refused(tmp_path):
    # `-o metrics.csv` wrote JSON into a .csv file, exit 0
    y = np.linspace(0.1, 0.5, 6)
    preds = write_predictions(_table(target_rmsf=y, predicted_rmsf=y), _meta(), tmp_path / "p.csv")
    with pytest.raises(InputError, match=r"metrics.csv: the metrics file is written as json"):
        evaluate(preds, importance=False, out_path=tmp_path / "metrics.csv")
    assert not (tmp_path / "metrics.csv").exists()


def test_importance_refuses_a_checkpoint_other_than_the_one_that_made_the_predictions(tmp_path):
    rng = np.random.default_rng(2)
    y = rng.random(20)
    table = _table(target_rmsf=y, predicted_rmsf=y + rng.normal(0, 0.1, 20))
    made = tmp_path / "run" / "models" / "best.pt"
    made.parent.mkdir(parents=True)
    made.write_bytes(b"the model that predicted")
    meta = dataclasses.replace(_meta(), checkpoint=str(made), checkpoint_sha256=file_sha256(made))
    preds = write_predictions(table, meta, tmp_path / "predictions_test.parquet")
    assert read_predictions(preds)[1].checkpoint_sha256 == file_sha256(made)
    other = tmp_path / "other.pt"
    other.write_bytes(b"another model")
    with pytest.raises(InputError, match=r"other.pt .*is not the model that made .*-c"):
        evaluate(preds, checkpoint=other, out_path=tmp_path / "m1.json")
    made.write_bytes(b"a later training wrote this best.pt")  # the recorded path, replaced
    with pytest.raises(InputError, match=r"is not the model that made.*--no-importance"):
        evaluate(preds, out_path=tmp_path / "m2.json")
    assert not (tmp_path / "m1.json").exists() and not (tmp_path / "m2.json").exists()
    # without importance the metrics are written and name the predictions' checkpoint
    report = evaluate(preds, importance=False, out_path=tmp_path / "m3.json")
    recorded = json.loads(report.path.read_text())["checkpoint"]
    assert recorded == {"path": str(made), "sha256": meta.checkpoint_sha256}


def _index_and_rows(tmp_path, unit: str = "nm"):
    """An index of one domain (4 residues × 2 temperatures, all train) and its rows as a
    predictions table (prediction = target + 0, 0.01 or 0.02)."""
    names = "ALA GLY ALA GLY"
    voxels = write_voxels(tmp_path / f"v_{unit}.h5", {"d1": {"A": residues(names)}})
    rows = csv_rows("d1", names)
    rmsf = write_csv(tmp_path / f"rmsf_{unit}.csv", rows)
    index = build_index(
        voxels, tmp_path / f"index_{unit}.parquet", rmsf_csv=rmsf, rmsf_unit=unit, progress=False
    ).index_path
    table = _table(
        resid_str=[str(r[1]) for r in rows],
        resnum=pa.array([r[1] for r in rows], pa.int32()),
        resname=[r[2] for r in rows],
        temperature=[r[3] for r in rows],
        target_rmsf=[r[4] for r in rows],
        predicted_rmsf=[r[4] + 0.01 * (k % 3) for k, r in enumerate(rows)],
    )
    meta = dataclasses.replace(_meta(str(index)), splits=["train"])
    return index, voxels, table, meta


def test_baselines_need_the_index_but_not_its_voxel_file(tmp_path):
    _, voxels, table, meta = _index_and_rows(tmp_path)
    voxels.unlink()  # e.g. evaluating on another machine than the one that trained
    preds = write_predictions(table, meta, tmp_path / "predictions_train.parquet")
    baselines = evaluate(preds, importance=False).metrics["baselines"]
    assert "skipped" not in baselines and baselines["n_train_rows"] == 8


def test_evaluate_refuses_an_index_the_predictions_do_not_come_from(tmp_path):
    _, _, table, meta = _index_and_rows(tmp_path)
    preds = write_predictions(table, meta, tmp_path / "p.parquet")
    angstrom, *_ = _index_and_rows(tmp_path, unit="angstrom")
    with pytest.raises(InputError, match="holds targets in angstrom"):
        evaluate(preds, index_path=angstrom, importance=False, out_path=tmp_path / "m.json")
    # the rows claim the test split; the index holds them in train (baselines fitted on them)
    claimed = write_predictions(
        table, dataclasses.replace(meta, splits=["test"]), tmp_path / "t.parquet"
    )
    with pytest.raises(InputError, match=r"8 of 8 scored rows .* not a row of split\(s\)"):
        evaluate(claimed, importance=False, out_path=tmp_path / "m.json")
    edited = table.set_column(
        table.schema.get_field_index("target_rmsf"),
        "target_rmsf",
        pa.array(table["target_rmsf"].to_numpy() * np.array([1] * 7 + [2]), pa.float32()),
    )
    changed = write_predictions(edited, meta, tmp_path / "e.parquet")
    with pytest.raises(InputError, match=r"1 of 8 .* d1/A/4 at 450 K: target 0.26 here, 0.13"):
        evaluate(changed, importance=False, out_path=tmp_path / "m.json")


def test_a_predictions_csv_saved_with_semicolons_or_without_columns_is_a_message(tmp_path):
    from typer.testing import CliRunner

    from voxelflex.cli.main import app

    y = np.linspace(0.1, 0.5, 6)
    preds = write_predictions(_table(target_rmsf=y, predicted_rmsf=y), _meta(), tmp_path / "p.csv")
    text = preds.read_text()
    preds.write_text(text.replace(",", ";"))  # a spreadsheet's "save as CSV" in some locales
    with pytest.raises(InputError, match=r"p.csv: predictions columns \['domain'.* missing"):
        read_predictions(preds)
    for command in (["evaluate", "-p", str(preds), "--no-importance"], ["plot", "-p", str(preds)]):
        result = CliRunner().invoke(app, [*command, "-o", str(tmp_path / "out")])
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert "predictions columns" in result.output
    header, rest = text.split("\n", 1)
    preds.write_text(header.replace("predicted_rmsf", "prediction") + "\n" + rest)  # renamed
    with pytest.raises(InputError, match=r"\['predicted_rmsf'\] are missing"):
        read_predictions(preds)


@pytest.mark.parametrize("start", [b"\x89HDF\r\n", "domain,\u00e9".encode("latin-1")])
def test_a_predictions_csv_that_is_not_utf8_is_a_message(tmp_path, start):
    # a UnicodeDecodeError traceback before (an HDF5 file, or a CSV saved as Latin-1)
    preds = tmp_path / "p.csv"
    preds.write_bytes(start + b"\n1,2\n")
    with pytest.raises(InputError, match=rf"predictions CSV {preds} is not UTF-8 text"):
        read_predictions(preds)


def test_a_missing_value_in_a_predictions_csv_is_an_empty_field_and_reads_back(tmp_path):
    from typer.testing import CliRunner

    from voxelflex.cli.main import app

    y = np.linspace(0.1, 0.6, 6)
    target = np.where(np.arange(6) == 2, np.nan, y)  # no target at row 3
    accessibility = pa.array([0.2, None, 0.4, 0.5, 0.6, 0.7], pa.float32())
    table = _table(target_rmsf=target, predicted_rmsf=y, relative_accessibility=accessibility)
    csv = write_predictions(table, _meta(), tmp_path / "metrics" / "predictions_test.csv")
    parquet = write_predictions(table, _meta(), tmp_path / "predictions_test.parquet")
    text = csv.read_text()
    assert "nan" not in text.lower()
    header, *lines = (line.replace('"', "").split(",") for line in text.splitlines())
    rows = [dict(zip(header, line, strict=True)) for line in lines]
    assert rows[2]["target_rmsf"] == "" and rows[2]["relative_accessibility"] == "0.4"  # R: NA
    assert rows[1]["relative_accessibility"] == "" and rows[1]["target_rmsf"] == "0.2"
    from_csv, _ = read_predictions(csv)
    from_parquet, _ = read_predictions(parquet)
    from_parquet = from_parquet.cast(from_csv.schema)
    rest = [c for c in from_csv.column_names if c != "target_rmsf"]
    assert from_csv.select(rest).equals(from_parquet.select(rest))  # a null annotation
    target = from_csv["target_rmsf"].to_numpy()  # NaN, as in Parquet
    np.testing.assert_array_equal(target, from_parquet["target_rmsf"].to_numpy())
    assert np.isnan(target[2])
    # DuckDB over the Parquet file finds the NaN (min/max statistics, which omit NaN, hid it)
    sql = f"SELECT count(*) FROM read_parquet('{parquet}') WHERE isnan(target_rmsf)"
    assert duckdb.sql(sql).fetchall() == [(1,)]
    assert evaluate(csv, importance=False).metrics["overall"]["n"] == 5
    result = CliRunner().invoke(app, ["plot", "-p", str(csv), "-o", str(tmp_path / "plots")])
    assert result.exit_code == 0, result.output


def test_evaluate_refuses_repeated_rows(tmp_path):
    _, _, table, meta = _index_and_rows(tmp_path)
    twice = write_predictions(
        pa.concat_tables([table, table.slice(2, 1)]), meta, tmp_path / "p.csv"
    )
    with pytest.raises(
        InputError, match=r"1 \(domain, chain, residue, temperature\) keys .* d1/A/2 at 320 K"
    ):
        evaluate(twice, importance=False)


def test_a_predictions_file_saved_again_with_large_strings_evaluates_alike(tmp_path):
    data = generate_structure_demo(tmp_path / "data", n_domains=4, seed=0)
    index = build_demo_index(data, tmp_path / "index.parquet").index_path
    everything = read_index(index).table
    rows = everything.filter(pc.equal(everything["split"], "train"))
    table = rows.select(["domain", "chain", "resid_str", "resnum", "icode", "resname"])
    target = rows["target_rmsf"].to_numpy()
    table = table.append_column("temperature", rows["temperature"])
    table = table.append_column("predicted_rmsf", pa.array(target * 1.1 + 0.01, pa.float32()))
    table = table.append_column("target_rmsf", rows["target_rmsf"])
    meta = dataclasses.replace(_meta(str(index)), splits=["train"])
    path = write_predictions(table, meta, tmp_path / "p.parquet")
    first = evaluate(path, importance=False).metrics
    assert "gnm" in first["baselines"]  # the physics baselines join the feature columns
    saved = pq.read_table(path)  # as pandas' pyarrow strings write it back: large_string
    large = pa.schema(
        [f.with_type(pa.large_string()) if f.type == pa.string() else f for f in saved.schema],
        metadata=saved.schema.metadata,
    )
    pq.write_table(saved.cast(large), path)
    again = evaluate(path, importance=False, overwrite=True).metrics
    assert again["baselines"] == first["baselines"] and again["overall"] == first["overall"]


def test_relative_predictions_are_marked_as_such(tmp_path, caplog):
    _, _, table, meta = _index_and_rows(tmp_path)
    relative = dataclasses.replace(meta, target_norm="domain")
    path = write_predictions(table, relative, tmp_path / "p.parquet")
    with caplog.at_level("WARNING", logger="voxelflex.analysis.evaluate"):
        metrics = evaluate(path, importance=False).metrics
    assert metrics["target_norm"] == "domain" and "per-domain relative scores" in caplog.text
    text = format_summary(metrics)
    assert "its R², RMSE and MAE are not RMSF errors" in text
    assert "(scores against RMSF)" in text and "nm²" not in text  # no RMSF unit on their MSE
    # files written before the field existed read as absolute RMSF
    old = json.loads(meta.to_json())
    del old["target_norm"]
    assert PredictionsMeta.from_json(json.dumps(old), where="x").target_norm == "global"
    plain = evaluate(
        write_predictions(table, meta, tmp_path / "q.parquet"), importance=False, overwrite=True
    ).metrics
    assert "not RMSF errors" not in format_summary(plain)


def test_rows_without_a_prediction_are_counted_and_left_out_of_every_score(tmp_path):
    _, _, table, meta = _index_and_rows(tmp_path)
    p = table["predicted_rmsf"].to_numpy().copy()
    p[[1, 6]] = np.nan
    holed = table.set_column(
        table.schema.get_field_index("predicted_rmsf"), "predicted_rmsf", pa.array(p)
    )
    preds = write_predictions(holed, meta, tmp_path / "p.parquet")
    metrics = evaluate(preds, importance=False).metrics
    assert metrics["n_rows"] == 6 and metrics["n_rows_without_prediction"] == 2
    assert metrics["overall"]["n"] == 6
    assert metrics["baselines"]["temperature_fit"]["overall"]["n"] == 6


def test_evaluate_refuses_predictions_without_targets(tmp_path):
    table = _table(target_rmsf=[np.nan, np.nan], predicted_rmsf=[0.1, 0.2])
    preds = write_predictions(table, _meta(), tmp_path / "p.parquet")
    with pytest.raises(InputError, match="no row has a target_rmsf"):
        evaluate(preds, importance=False)


def test_predictions_round_trip_keeps_unit_and_types(tmp_path):
    table = _table(target_rmsf=[0.1, np.nan], predicted_rmsf=[0.2, 0.3], icode=["", "A"])
    for name in ("p.csv", "p.parquet"):
        write_predictions(table, _meta(), tmp_path / name)
        back, meta = read_predictions(tmp_path / name)
        assert meta.rmsf_unit == "nm" and "predicted_rmsf" in meta.columns
        assert back["icode"].to_pylist() == ["", "A"]
        assert back["resid_str"].type == pa.string()
        assert np.isnan(back["target_rmsf"].to_numpy()[1])
    assert (tmp_path / "p.csv").read_text().startswith('"domain","chain"')  # plain CSV
    assert json.loads((tmp_path / "p.csv.json").read_text())["rmsf_unit"] == "nm"


def test_edited_predictions_metadata_is_refused_naming_the_file(tmp_path):
    # an edited sidecar's "Å" was taken as the unit of every figure; a dropped field or a
    # broken JSON ended in a TypeError / JSONDecodeError traceback
    table = _table(target_rmsf=[0.1, 0.2], predicted_rmsf=[0.2, 0.3])
    preds = write_predictions(table, _meta(), tmp_path / "p.csv")
    sidecar = tmp_path / "p.csv.json"
    good = json.loads(sidecar.read_text())
    edits = {
        r"rmsf_unit 'Å' is not one of \['nm', 'angstrom'\]": {**good, "rmsf_unit": "Å"},
        r"rmsf_unit None is not one of": {k: v for k, v in good.items() if k != "rmsf_unit"},
        r"predictions metadata malformed .*'index'": {
            k: v for k, v in good.items() if k != "index"
        },
    }
    for message, edited in edits.items():
        sidecar.write_text(json.dumps(edited))
        with pytest.raises(InputError, match=r"p\.csv\.json: " + message):
            read_predictions(preds)
    sidecar.write_text(json.dumps(good)[:-5])
    with pytest.raises(InputError, match=r"p\.csv\.json: predictions metadata is not valid JSON"):
        read_predictions(preds)


def test_temperature_sweep_parsing():
    assert parse_sweep("300:450:10").tolist() == list(range(300, 451, 10))
    assert parse_sweep("300:305:10").tolist() == [300.0]
    both = resolve_temperatures([350.0, 320.0], "300:340:20")
    assert both.tolist() == [300.0, 320.0, 340.0, 350.0]
    assert resolve_temperatures([], None) is None
    assert temperature_key(320.0) == "320" and temperature_key(320.5) == "320.5"
    assert temperature_key(np.float32(298.15)) == "298.15"  # float32 noise is not shown
    assert temperature_key(320.0004) == "320.0004"  # near a whole kelvin is not that kelvin
    for bad in ("300:450", "450:300:10", "300:450:0", "a:b:c", "0:1:0.00001"):
        with pytest.raises(ConfigError):
            parse_sweep(bad)
    with pytest.raises(ConfigError, match="> 0 K"):
        resolve_temperatures([-5.0])


def test_a_damaged_predictions_file_is_a_message_not_another_number(tmp_path):
    table = _table(target_rmsf=[0.1, 0.2, 0.3], predicted_rmsf=[0.2, 0.3, 0.4])
    path = write_predictions(table, _meta(), tmp_path / "p.parquet")
    flip_last_byte_of_column(path, "predicted_rmsf")
    with pytest.raises(InputError, match=r"p\.parquet: .* a damaged one \(.*CRC"):
        read_predictions(path)
