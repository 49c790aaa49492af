"""Plots: every plot writes a non-empty image and the CSV of its data, from tables and JSON."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pytest

from voxelflex.analysis.plots import (
    common,
    default_plot_dir,
    find_run_files,
    plot,
    plot_rmsf_profile,
    plot_temperature_response,
)
from voxelflex.analysis.plots.profiles import choose_domain, choose_residues
from voxelflex.analysis.plots.training import history_table
from voxelflex.analysis.predictions import (
    PredictionsMeta,
    write_predictions,
)
from voxelflex.errors import InputError
from voxelflex.quantities import outside_range

TEMPS = (320.0, 348.0, 379.0, 413.0, 450.0)


def _predictions(sweep: bool = False, seed: int = 0) -> pa.Table:
    """3 domains × 12 residues; targets at the mdCATH temperatures only."""
    rng = np.random.default_rng(seed)
    temps = np.unique(np.r_[TEMPS, np.arange(300, 471, 10)] if sweep else TEMPS)
    n_res, doms = 12, ["1aaaA00", "1bbbA00", "1cccA00"]
    dom = np.repeat(doms, n_res * len(temps))
    resnum = np.tile(np.repeat(np.arange(1, n_res + 1), len(temps)), len(doms))
    t = np.tile(temps, n_res * len(doms))
    base = 0.1 + 0.3 * np.abs(np.sin(resnum / 3 + np.arange(len(dom)) // (n_res * len(temps))))
    true = base * (1 + 0.5 * (t - 320) / 130)
    target = np.where(np.isin(t, TEMPS), true * rng.lognormal(0, 0.05, len(t)), np.nan)
    return pa.table(
        {
            "domain": dom,
            "chain": ["A"] * len(t),
            "resid_str": resnum.astype(str),
            "resnum": pa.array(resnum, pa.int32()),
            "icode": [""] * len(t),
            "resname": np.array(["ALA", "GLY", "LYS", "SER"])[resnum % 4],
            "temperature": pa.array(t, pa.float32()),
            "predicted_rmsf": pa.array(true * rng.lognormal(0, 0.15, len(t)), pa.float32()),
            "target_rmsf": pa.array(target, pa.float32()),
            "extrapolated": outside_range(t, (320.0, 450.0)),
        }
    )


def _write(tmp_path, table: pa.Table, split: str = "test", path=None, **meta_fields):
    meta = PredictionsMeta(
        rmsf_unit="nm",
        checkpoint="best.pt",
        index="index.parquet",
        splits=[split],
        temperatures=sorted(set(table["temperature"].to_pylist())),
        training_temperature_range=[320.0, 450.0],
        **meta_fields,
    )
    path = path or tmp_path / "run" / "metrics" / f"predictions_{split}.parquet"
    return write_predictions(table, meta, path)


# the layout of voxelflex.engine.trainer's training_history.json
HISTORY = [
    {
        "epoch": e,
        "lr": 1e-3,
        "train": {"loss": 1.0 / e, "pearson": 0.5 + 0.05 * e},
        "val": {
            "loss": 1.2 / e,
            "pearson": 0.45 + 0.05 * e,
            "pearson_per_temperature": {str(t): 0.4 + 0.05 * e - t / 5000 for t in TEMPS},
        },
        "timing": {"seconds": 3.0},
    }
    for e in (1, 2, 3)
]


def test_plot_run_writes_every_plot_and_its_data(tmp_path):
    preds = _write(tmp_path, _predictions(sweep=True))
    run = preds.parent.parent
    (run / "training_history.json").write_text(json.dumps(HISTORY))
    out = default_plot_dir(run_dir=run)
    paths = plot(out, run_dir=run)
    names = sorted(p.name for p in paths if p.suffix == ".png")
    domain = choose_domain(_predictions(sweep=True))
    assert names == sorted(
        [
            "training_curves.png",
            "pred_vs_true.png",
            "error_distribution.png",
            "per_temperature_metrics.png",
            "residue_type_errors.png",
            f"rmsf_profile_{domain}.png",
            "temperature_response.png",
        ]
    )
    for p in paths:
        assert p.parent == out and p.stat().st_size > 0
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert p.with_name(p.stem + "_data.csv") in paths
    curves = pacsv.read_csv(out / "training_curves_data.csv")
    assert {"epoch", "train_loss", "val_pearson", "val_pearson_per_temperature_320.0"} <= set(
        curves.column_names
    )
    response = pacsv.read_csv(out / "temperature_response_data.csv")
    n_temps = len(np.unique(np.r_[TEMPS, np.arange(300, 471, 10)]))
    assert response.num_rows == 4 * n_temps  # four residues × every predicted temperature


def test_plot_formats_and_predictions_without_targets(tmp_path):
    table = _predictions()
    no_target = table.set_column(
        table.schema.get_field_index("target_rmsf"),
        "target_rmsf",
        pa.array(np.full(table.num_rows, np.nan), pa.float32()),
    )
    preds = _write(tmp_path, no_target)
    paths = plot(tmp_path / "svg", predictions=preds, fmt="svg", domain="1bbbA00")
    images = sorted(p.name for p in paths if p.suffix == ".svg")
    # accuracy plots need targets; the profile and the temperature response do not
    assert images == ["rmsf_profile_1bbbA00.svg", "temperature_response.svg"]
    assert all(p.stat().st_size > 0 for p in paths)
    pdf = plot(tmp_path / "pdf", history=_history_file(tmp_path), fmt="pdf")
    assert pdf[0].read_bytes()[:4] == b"%PDF"


def _history_file(tmp_path):
    path = tmp_path / "training_history.json"
    path.write_text(json.dumps(HISTORY))
    return path


def test_plot_baselines_from_metrics_json(tmp_path):
    preds = _write(tmp_path, _predictions())
    per_t = {str(int(t)): {"n": 36, "pearson": 0.1, "rmse": 0.2} for t in TEMPS}
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"baselines": {"temperature_fit": {"per_temperature": per_t}}}))
    plot(tmp_path / "vis", predictions=preds, metrics=metrics)
    data = pacsv.read_csv(tmp_path / "vis" / "per_temperature_metrics_data.csv")
    assert sorted(set(data["series"].to_pylist())) == ["model", "temperature_fit"]
    assert data.num_rows == 2 * len(TEMPS)


def test_wrong_history_or_metrics_files_are_clear_errors_before_any_plot(tmp_path):
    preds = _write(tmp_path, _predictions())
    history = _history_file(tmp_path)
    with pytest.raises(InputError, match=r"not evaluation metrics .*evaluation_metrics_<split>"):
        plot(tmp_path / "vis", predictions=preds, metrics=history)  # the history, not metrics
    assert not (tmp_path / "vis").exists()
    with pytest.raises(InputError, match=r"cannot read training history"):
        plot(tmp_path / "vis", history=preds)  # a Parquet file is not JSON text


@pytest.mark.parametrize(
    ("picks", "message"),
    [
        ({"domain": "nope"}, "'nope' is not in the predictions"),
        ({"residues": ["1aaaA00:A:999"]}, "'1aaaA00:A:999' is not in the predictions"),
        ({"profile_temperatures": [298.15]}, r"no predictions at 298\.15 K"),
    ],
)
def test_a_pick_not_in_the_predictions_stops_before_any_plot_is_written(tmp_path, picks, message):
    # the picks' plots came last: 6-7 other plots (and the training curves) were written first,
    # and the folder then needed --overwrite
    preds = _write(tmp_path, _predictions())
    with pytest.raises(InputError, match=message):
        plot(tmp_path / "vis", predictions=preds, history=_history_file(tmp_path), **picks)
    assert not list((tmp_path / "vis").glob("*.png"))
    assert not list((tmp_path / "vis").glob("*_data.csv"))


def test_residue_choice_and_errors():
    table = _predictions()
    specs = choose_residues(table, "1aaaA00", k=3)
    assert len(specs) == 3 and all(s.startswith("1aaaA00:A:") for s in specs)
    with pytest.raises(InputError, match="nothing to plot"):
        plot("unused")
    with pytest.raises(InputError, match=r"--metrics m\.json draws baselines beside predictions"):
        plot("unused", metrics="m.json")  # said only "nothing to plot"
    with pytest.raises(InputError, match="'nope' is not in the predictions"):
        plot_rmsf_profile(table, "unused", rmsf_unit="nm", domain="nope")
    with pytest.raises(InputError, match="DOMAIN:CHAIN:RESIDUE"):
        plot_temperature_response(table, "unused", rmsf_unit="nm", residues=["1aaaA00-5"])


def test_history_table_accepts_dict_of_lists():
    table = history_table({"train_loss": [1.0, 0.5], "val_pearson": [0.2, None]})
    assert table["epoch"].to_pylist() == [1.0, 2.0]
    assert np.isnan(table["val_pearson"].to_numpy()[1])


def test_find_run_files_picks_run_outputs(tmp_path):
    preds = _write(tmp_path, _predictions())
    found = find_run_files(preds.parent.parent)
    assert found == {"history": None, "predictions": preds, "metrics": None}
    assert default_plot_dir(predictions=preds) == preds.parent.parent / "visualizations"


def test_find_run_files_pairs_predictions_with_the_metrics_of_their_split(tmp_path):
    preds = _write(tmp_path, _predictions())  # predictions_test
    metrics = preds.parent
    val = _write(tmp_path, _predictions(), split="val")
    os.utime(val, (preds.stat().st_mtime + 10,) * 2)  # the newest
    # neither evaluated: the newest of the splits with targets
    assert find_run_files(metrics.parent) == {"history": None, "predictions": val, "metrics": None}
    (metrics / "evaluation_metrics_test.json").write_text("{}")
    # the evaluated split first, whatever is newer: its metrics belong to it
    found = find_run_files(metrics.parent)
    assert found["predictions"] == preds
    assert found["metrics"] == metrics / "evaluation_metrics_test.json"
    (metrics / "evaluation_metrics_val.json").write_text("{}")
    assert find_run_files(metrics.parent)["metrics"] == metrics / "evaluation_metrics_val.json"
    found = find_run_files(metrics.parent, split="test")
    assert found["predictions"] == preds
    assert found["metrics"] == metrics / "evaluation_metrics_test.json"


def test_run_folder_prefers_evaluated_predictions_with_targets_over_newer_others(tmp_path, caplog):
    """The demo writes metrics/predictions_from_structures.parquet (no targets) after the test
    predictions; a user may add predictions_<domain>.parquet: neither displaces the test split."""
    table = _predictions()
    preds = _write(tmp_path, table)
    run = preds.parent.parent
    later = preds.stat().st_mtime + 10
    no_target = table.set_column(
        table.schema.get_field_index("target_rmsf"),
        "target_rmsf",
        pa.array(np.full(table.num_rows, np.nan), pa.float32()),
    )
    for name in ("from_structures", "1aaaA00"):
        other = _write(
            tmp_path, no_target, split="predict", path=preds.parent / f"predictions_{name}.parquet"
        )
        os.utime(other, (later,) * 2)
    assert find_run_files(run)["predictions"] == preds  # a split with targets, not evaluated
    (preds.parent / "evaluation_metrics_test.json").write_text(json.dumps({"split": "test"}))
    caplog.set_level("INFO", logger="voxelflex.analysis.plots")
    paths = plot(run / "vis", run_dir=run)
    assert "pred_vs_true.png" in {p.name for p in paths}
    assert f"predictions: {preds} (split test)" in caplog.text
    assert "not plotted: predictions_1aaaA00.parquet, predictions_from_structures.parquet" in (
        caplog.text
    )


def _metrics_json(path, split: str, value: float):
    per_t = {str(int(t)): {"n": 36, "pearson": value, "rmse": value} for t in TEMPS}
    base = {"temperature_fit": {"per_temperature": per_t}}
    path.write_text(json.dumps({"split": split, "baselines": base}))
    return path


def test_predictions_of_another_split_never_get_the_run_s_baselines(tmp_path, caplog):
    preds = _write(tmp_path, _predictions())
    run = preds.parent.parent
    test_json = _metrics_json(preds.parent / "evaluation_metrics_test.json", "test", 0.1)
    val = _write(tmp_path, _predictions(seed=1), split="val", path=tmp_path / "v" / "p.parquet")

    def baselines(out) -> set:
        data = pacsv.read_csv(out / "per_temperature_metrics_data.csv")
        return set(data["series"].to_pylist()) - {"model"}

    plot(tmp_path / "a", run_dir=run, predictions=val)  # the run's test metrics: not for val
    assert baselines(tmp_path / "a") == set()
    _metrics_json(preds.parent / "evaluation_metrics_val.json", "val", 0.2)
    plot(tmp_path / "b", run_dir=run, predictions=val)  # the val metrics of the run
    rmse = pacsv.read_csv(tmp_path / "b" / "per_temperature_metrics_data.csv")["rmse"]
    assert baselines(tmp_path / "b") == {"temperature_fit"} and 0.2 in rmse.to_pylist()
    mismatch = r"_test\.json holds the metrics of the test split, but .*p\.parquet holds pre"
    with pytest.raises(InputError, match=mismatch + r"dictions of the val split"):
        plot(tmp_path / "c", predictions=val, metrics=test_json)
    # a metrics file whose content says another split than its name: dropped with a warning
    _metrics_json(preds.parent / "evaluation_metrics_val.json", "test", 0.2)
    caplog.set_level("WARNING", logger="voxelflex.analysis.plots")
    plot(tmp_path / "d", run_dir=run, predictions=val)
    assert baselines(tmp_path / "d") == set() and "baselines and bins are not used" in caplog.text


def test_baselines_in_another_rmsf_unit_are_never_drawn_beside_the_model(tmp_path, caplog):
    # predictions in nm (about 0.1-0.6), the same split's metrics of an index in Å: the
    # baselines' RMSE of 1.5 Å would be drawn as 1.5 nm, ten times the model's error
    preds = _write(tmp_path, _predictions())
    metrics = _metrics_json(preds.parent / "evaluation_metrics_test.json", "test", 1.5)
    metrics.write_text(json.dumps({**json.loads(metrics.read_text()), "rmsf_unit": "angstrom"}))
    with pytest.raises(InputError, match=r"errors in RMSF angstrom, but .* holds RMSF in nm"):
        plot(tmp_path / "a", predictions=preds, metrics=metrics)
    caplog.set_level("WARNING", logger="voxelflex.analysis.plots")
    plot(tmp_path / "b", run_dir=preds.parent.parent)  # found in the run folder: left out
    data = pacsv.read_csv(tmp_path / "b" / "per_temperature_metrics_data.csv")
    assert set(data["series"].to_pylist()) == {"model"}
    assert "holds errors in RMSF angstrom" in caplog.text


def test_find_run_files_ignores_the_missing_report(tmp_path):
    preds = _write(tmp_path, _predictions())
    (preds.parent / "predictions_test_missing.csv").write_text("domain,chain,resid,reason\n")
    assert find_run_files(preds.parent.parent)["predictions"] == preds


def _with_nan_predictions(table: pa.Table, rows: list[int]) -> pa.Table:
    p = table["predicted_rmsf"].to_numpy().copy()
    p[rows] = np.nan
    return table.set_column(
        table.schema.get_field_index("predicted_rmsf"), "predicted_rmsf", pa.array(p, pa.float32())
    )


def test_rows_without_a_finite_prediction_are_left_out_and_counted(tmp_path, caplog):
    table = _predictions()
    # every residue with code "C" loses its prediction at 320 K
    codes = np.where((table["resnum"].to_numpy() == 1), "C", "H")
    table = table.append_column("dssp", pa.array(codes))
    t = table["temperature"].to_numpy()
    hit = [*np.flatnonzero((codes == "C") & (t == 320.0)).tolist(), 1]  # and one at 348 K
    preds = _write(tmp_path, _with_nan_predictions(table, hit))
    caplog.set_level("WARNING", logger="voxelflex.analysis.plots")
    plot(tmp_path / "vis", predictions=preds)  # no crash on NaN histogram edges
    assert f"{len(hit)} rows have a target but no finite prediction" in caplog.text
    scored = table.num_rows - len(hit)
    hexes = pacsv.read_csv(tmp_path / "vis" / "pred_vs_true_data.csv")
    assert sum(hexes["count"].to_pylist()) == scored
    per_t = pacsv.read_csv(tmp_path / "vis" / "per_temperature_metrics_data.csv")
    assert sum(per_t["n"].to_pylist()) == scored
    ss = pacsv.read_csv(tmp_path / "vis" / "secondary_structure_errors_data.csv")
    pooled = ss.filter(pa.compute.equal(ss["temperature"], "all"))
    assert sum(pooled["n"].to_pylist()) == scored
    assert np.isfinite(pooled["mae"].to_numpy()).all()
    at_320 = ss.filter(pa.compute.equal(ss["temperature"], "320")).to_pylist()
    assert [r["n"] for r in at_320 if r["group"] == "C"] == [0]


def test_group_stats_with_a_group_of_non_finite_predictions():
    from voxelflex.analysis.plots.strata import group_stats

    y = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    p = np.array([0.1, 0.3, 0.2, np.nan, np.nan])
    stats = group_stats(y, p, np.array([0, 0, 0, 1, 1]), 2)
    assert np.isfinite(stats["pearson"][0]) and np.isnan(stats["pearson"][1])


def test_baselines_scored_on_other_rows_are_flagged(tmp_path, caplog):
    preds = _write(tmp_path, _predictions())
    metrics = _metrics_json(tmp_path / "evaluation_metrics_test.json", "test", 0.1)
    caplog.set_level("WARNING", logger="voxelflex.analysis.plots")
    plot(tmp_path / "a", predictions=preds, metrics=metrics)  # 36 rows per temperature: same
    assert "other rows" not in caplog.text
    subset = _write(tmp_path, _predictions().slice(0, 60), path=tmp_path / "s.parquet")
    plot(tmp_path / "b", predictions=subset, metrics=metrics)
    assert "baseline temperature_fit was scored on other rows" in caplog.text
    assert "320 K: 36 rows, the model 12" in caplog.text


def test_relative_predictions_are_plotted_against_per_domain_z_scored_targets(
    tmp_path, monkeypatch
):
    """A train.target_norm: domain checkpoint predicts per-domain z-scores: never drawn or scored
    as RMSF in nm beside the targets in nm, nor beside evaluate's baselines (RMSF errors)."""
    from tests.test_parity_metrics_plots import _captured

    table = _predictions()
    y = table["target_rmsf"].to_numpy().astype(np.float64)
    dom = np.asarray(table["domain"].to_pylist())
    z = np.full(len(y), np.nan)
    for d in np.unique(dom):
        sel = (dom == d) & np.isfinite(y)
        z[sel] = (y[sel] - y[sel].mean()) / y[sel].std()
    rng = np.random.default_rng(3)
    scores = z + rng.normal(0, 0.3, len(z))
    table = table.set_column(
        table.schema.get_field_index("predicted_rmsf"),
        "predicted_rmsf",
        pa.array(scores, pa.float32()),
    )
    preds = _write(tmp_path, table, target_norm="domain")
    metrics = _metrics_json(tmp_path / "evaluation_metrics_test.json", "test", 0.1)
    figures = _captured(monkeypatch)
    plot(tmp_path / "vis", predictions=preds, metrics=metrics, domain="1aaaA00")
    labels = {
        label
        for fig in figures
        for ax in fig.axes
        for label in (ax.get_xlabel(), ax.get_ylabel())
        if label
    }
    assert "predicted relative RMSF (per-domain z)" in labels
    assert "true relative RMSF (per-domain z)" in labels
    assert "RMSE (per-domain z)" in labels
    assert not any("(nm)" in label for label in labels)
    per_t = pacsv.read_csv(tmp_path / "vis" / "per_temperature_metrics_data.csv")
    assert set(per_t["series"].to_pylist()) == {"model"}  # no RMSF baselines beside z-scores
    at_320 = np.isclose(table["temperature"].to_numpy(), 320.0)
    rmse = np.sqrt(np.mean((scores[at_320] - z[at_320]) ** 2))
    assert per_t["rmse"][0].as_py() == pytest.approx(rmse, rel=1e-4)
    profile = pacsv.read_csv(tmp_path / "vis" / "rmsf_profile_1aaaA00_data.csv")
    np.testing.assert_allclose(
        profile["target_rmsf"].to_numpy(), z[dom == "1aaaA00"], rtol=0, atol=1e-5
    )


def test_profile_title_says_when_there_is_no_truth(tmp_path, monkeypatch):
    from tests.test_parity_metrics_plots import _captured

    table = _predictions()
    no_target = table.set_column(
        table.schema.get_field_index("target_rmsf"),
        "target_rmsf",
        pa.array(np.full(table.num_rows, np.nan), pa.float32()),
    )
    figures = _captured(monkeypatch)
    plot_rmsf_profile(no_target, tmp_path, rmsf_unit="nm", domain="1aaaA00")
    plot_rmsf_profile(table, tmp_path, rmsf_unit="nm", domain="1aaaA00")
    titles = [f.get_suptitle() for f in figures]
    assert titles == [
        "RMSF profile of 1aaaA00: predicted (no targets), one panel per temperature",
        "RMSF profile of 1aaaA00: predicted and true, one panel per temperature",
    ]


def test_profile_and_response_draw_along_the_chain_and_temperature_in_any_row_order(
    tmp_path, monkeypatch
):
    """A predictions CSV re-sorted (by temperature, residues reversed) draws what index order
    draws; two temperatures equal to 3 decimals get a panel each."""
    from tests.test_parity_metrics_plots import _captured

    table = _predictions().filter(pc.field("domain") == "1aaaA00")
    close = table.slice(0, 1).set_column(
        table.schema.get_field_index("temperature"),
        "temperature",
        pa.array([table["temperature"][0].as_py() + 0.0003], pa.float32()),
    )
    rows = pa.concat_tables([table, close])
    # by temperature first, residues last to first
    shuffled = rows.take(np.lexsort((-rows["resnum"].to_numpy(), rows["temperature"].to_numpy())))
    figures = _captured(monkeypatch)
    temps = sorted({*table["temperature"].to_pylist(), close["temperature"][0].as_py()})[:3]
    for some in (rows, shuffled):
        plot_rmsf_profile(some, tmp_path, rmsf_unit="nm", domain="1aaaA00", temperatures=temps)
        plot_temperature_response(some, tmp_path, rmsf_unit="nm", residues=["1aaaA00:A:3"])
    (a, a_resp), (b, b_resp) = figures[:2], figures[2:]
    assert len(a.axes) == len(b.axes) == 3  # the close temperature is a panel of its own
    for ax_a, ax_b in zip([*a.axes, a_resp.axes[0]], [*b.axes, b_resp.axes[0]], strict=True):
        for line_a, line_b in zip(ax_a.get_lines(), ax_b.get_lines(), strict=True):
            assert np.array_equal(line_a.get_xdata(), line_b.get_xdata())
            assert np.array_equal(line_a.get_ydata(), line_b.get_ydata(), equal_nan=True)
        x = ax_b.get_lines()[0].get_xdata()
        assert (np.diff(x) > 0).all()  # along the chain / up in temperature


def test_a_crash_between_a_plot_and_its_data_never_pairs_them_with_another_run_s(
    tmp_path, monkeypatch
):
    """The image landed before its data CSV: a kill in between left the new image beside the
    earlier plot's data, which looked like the data behind it."""
    table = pa.table({"x": [1.0, 2.0]})
    fig = common.new_figure(2, 2)
    image, data = common.save(fig, table, tmp_path, "pred_vs_true", "png")
    earlier = image.read_bytes(), data.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # killed after the image, before its data

    monkeypatch.setattr(common, "atomic_write_csv", crash)
    fig.suptitle("another run")
    with pytest.raises(KeyboardInterrupt):
        common.save(fig, pa.table({"x": [3.0]}), tmp_path, "pred_vs_true", "png")
    if data.exists():
        assert (image.read_bytes(), data.read_bytes()) == earlier


def test_default_residues_rank_by_the_finite_predictions_only():
    """A residue with one missing prediction is ranked by its others, not as the most
    flexible (a NaN mean sorted last)."""
    table = _predictions().filter(pc.field("domain") == "1aaaA00")
    before = choose_residues(table, "1aaaA00")
    least = before[0].rsplit(":", 1)[1]
    p = table["predicted_rmsf"].to_numpy().copy()
    p[np.flatnonzero(table["resid_str"].to_numpy(zero_copy_only=False) == least)[2]] = np.nan
    edited = table.set_column(
        table.schema.get_field_index("predicted_rmsf"), "predicted_rmsf", pa.array(p)
    )
    assert choose_residues(edited, "1aaaA00") == before
    # a residue with no finite prediction at all is not a choice
    none = np.where(table["resid_str"].to_numpy(zero_copy_only=False) == least, np.nan, p)
    edited = table.set_column(
        table.schema.get_field_index("predicted_rmsf"), "predicted_rmsf", pa.array(none)
    )
    assert f"1aaaA00:A:{least}" not in choose_residues(edited, "1aaaA00")


def test_profile_temperatures_given_twice_are_one_panel_and_the_legend_names_the_truth(
    tmp_path, monkeypatch
):
    from tests.test_parity_metrics_plots import _captured

    figures = _captured(monkeypatch)
    table = _predictions(sweep=True)
    plot_rmsf_profile(
        table, tmp_path, rmsf_unit="nm", domain="1aaaA00", temperatures=[348.0, 300.0, 348.0]
    )
    axes = [a for a in figures[0].axes if a.lines]
    assert len(axes) == 2  # 300 K and 348 K, each once
    data = pacsv.read_csv(tmp_path / "rmsf_profile_1aaaA00_data.csv")
    assert sorted(set(data["temperature"].to_pylist())) == [300.0, 348.0]
    assert data.num_rows == 2 * 12
    # the first panel (300 K, a sweep temperature) has no truth; the legend still names it
    assert figures[0].axes[0].get_legend_handles_labels()[1] == ["predicted"]
    legend = [t.get_text() for t in figures[0].axes[0].get_legend().get_texts()]
    assert legend == ["predicted", "true"]
    with pytest.raises(
        InputError, match=r"no predictions at 298\.15 K; predicted temperatures: 300, 310"
    ):
        plot_rmsf_profile(table, tmp_path, rmsf_unit="nm", domain="1aaaA00", temperatures=[298.15])
