"""Metrics and plots users of the earlier VoxelFlex expect (issue 14): MSE, mean relative error,
CV-RMSE, stratified metrics per temperature, configurable accessibility bins; error plots by
secondary structure and accessibility, learning rate and best epoch on the training curves, the
baseline without a per-temperature r, units on the loss panel, a readable RMSF profile."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from matplotlib.figure import Figure

from tests.test_plots import HISTORY, TEMPS, _predictions, _write
from voxelflex.analysis.evaluate import evaluate, format_summary, prediction_metrics
from voxelflex.analysis.plots import plot, plot_rmsf_profile, plot_training_curves
from voxelflex.analysis.plots.strata import group_stats
from voxelflex.analysis.plots.training import LOSS_LABEL, best_epoch, history_table
from voxelflex.config import load_config
from voxelflex.errors import ConfigError
from voxelflex.metrics import METRIC_NAMES, regression_metrics


def _annotated(seed: int = 0) -> pa.Table:
    """The plot tests' predictions plus dssp and relative accessibility columns."""
    table = _predictions(seed=seed)
    rng = np.random.default_rng(seed)
    n = table.num_rows
    table = table.append_column("dssp", pa.array(rng.choice(["H", "E", "C"], n)))
    acc = rng.random(n)
    acc[:5] = np.nan  # unknown accessibility: counted as without a value
    return table.append_column("relative_accessibility", pa.array(acc, pa.float32()))


def test_mse_mean_relative_error_and_cv_rmse_by_hand():
    y = np.array([1.0, 2.0, 4.0, 0.0])
    p = np.array([1.5, 1.0, 4.0, 0.5])
    m = regression_metrics(y, p)
    assert m["mse"] == pytest.approx((0.25 + 1 + 0 + 0.25) / 4)
    # over rows with y > 0 only: |0.5|/1, |1|/2, 0/4
    assert m["mean_relative_error"] == pytest.approx((0.5 + 0.5 + 0.0) / 3)
    assert m["cv_rmse_percent"] == pytest.approx(100 * np.sqrt(m["mse"]) / 1.75)
    assert set(METRIC_NAMES) <= set(m)
    empty = regression_metrics(np.array([]), np.array([]))
    assert empty["n"] == 0 and all(np.isnan(empty[k]) for k in METRIC_NAMES)


def test_stratified_metrics_pooled_and_per_temperature_with_configurable_bins():
    table = _annotated()
    s = prediction_metrics(table, accessibility_bins=(0.0, 0.5, 1.0))["stratified"]
    acc = s["relative_accessibility"]
    assert acc["bins"] == [0.0, 0.5, 1.0] and set(acc["groups"]) == {"[0, 0.5)", "[0.5, 1)"}
    assert acc["n_without_value"] == 5
    assert set(acc["per_temperature"]) == {str(int(t)) for t in TEMPS}
    for stratum in ("secondary_structure", "relative_accessibility", "residue_type"):
        pooled = s[stratum]["groups"]
        per_t = s[stratum]["per_temperature"]
        for group, metrics in pooled.items():  # every pooled row is in exactly one temperature
            assert sum(per_t[t][group]["n"] for t in per_t if group in per_t[t]) == metrics["n"]
            assert {"mse", "mean_relative_error", "cv_rmse_percent"} <= set(metrics)


def test_evaluate_reads_bins_and_defaults_from_the_config(tmp_path):
    preds = _write(tmp_path, _annotated())
    config = load_config(
        overrides=["evaluate.accessibility_bins=[0, 0.25, 0.5, 1.0]", "evaluate.importance=false"]
    )
    report = evaluate(preds, config=config)
    strat = report.metrics["stratified"]["relative_accessibility"]
    assert strat["bins"] == [0.0, 0.25, 0.5, 1.0] and len(strat["groups"]) == 3
    assert report.metrics["permutation_importance"] == {"skipped": "not requested"}
    assert "mean relative error" in format_summary(report.metrics)
    with pytest.raises(ConfigError, match=r"evaluate\.accessibility_bins"):
        load_config(overrides=["evaluate.accessibility_bins=[0.5, 0.1]"])


def test_secondary_structure_and_accessibility_error_plots(tmp_path):
    preds = _write(tmp_path, _annotated())
    metrics = tmp_path / "m.json"
    metrics.write_text(
        json.dumps({"stratified": {"relative_accessibility": {"bins": [0.0, 0.3, 1.0]}}})
    )
    paths = plot(tmp_path / "vis", predictions=preds, metrics=metrics)
    names = {p.name for p in paths}
    assert {"secondary_structure_errors.png", "accessibility_errors.png"} <= names
    ss = pacsv.read_csv(tmp_path / "vis" / "secondary_structure_errors_data.csv")
    assert set(ss["group"].to_pylist()) == {"H", "E", "C"}
    assert set(ss["temperature"].to_pylist()) == {"all", *(str(int(t)) for t in TEMPS)}
    acc = pacsv.read_csv(tmp_path / "vis" / "accessibility_errors_data.csv")
    assert set(acc["group"].to_pylist()) == {"[0, 0.3)", "[0.3, 1)"}  # the metrics' bins
    pooled = acc.filter(pa.compute.equal(acc["temperature"], "all"))
    assert sum(pooled["n"].to_pylist()) == _annotated().num_rows - 5


def _captured(monkeypatch) -> list[Figure]:
    """Figures handed to ``save`` in the plot modules (to inspect what was drawn)."""
    figures = []
    for module in ("accuracy", "profiles", "training", "strata"):
        mod = __import__(f"voxelflex.analysis.plots.{module}", fromlist=["save"])
        real = mod.save

        def spy(fig, *args, _real=real, **kwargs):
            figures.append(fig)
            return _real(fig, *args, **kwargs)

        monkeypatch.setattr(mod, "save", spy)
    return figures


def test_training_curves_show_learning_rate_best_epoch_and_the_loss_unit(tmp_path, monkeypatch):
    history = [
        dict(h, lr=1e-3 / h["epoch"], is_best=h["epoch"] == 2, monitor="val_loss") for h in HISTORY
    ]
    for h in history:  # the trainer's layout: each split also has its chain_pearson
        h["train"] = dict(h["train"], chain_pearson=0.6)
        h["val"] = dict(h["val"], chain_pearson=0.55)
    history[0]["loss_function"] = "MSE of standardised RMSF (dimensionless)"
    figures = _captured(monkeypatch)
    plot_training_curves(history, tmp_path)
    axes = figures[0].axes
    assert [a.get_title() for a in axes] == [
        "Loss per epoch",
        "Pearson r per epoch",
        "Validation Pearson r per temperature",
        "Learning rate",
    ]
    assert axes[0].get_ylabel() == "loss: MSE of standardised RMSF (dimensionless)"
    assert axes[3].get_yscale() == "log"
    for ax in axes:
        labels = ax.get_legend_handles_labels()[1]
        assert "best epoch 2 (val_loss)" in labels
    # the trainer's chain_pearson is the median r over chains, not a pooled r: said so
    r_labels = axes[1].get_legend_handles_labels()[1]
    assert r_labels[:4] == [
        "train r (pooled)",
        "train r (median per chain)",
        "val r (pooled)",
        "val r (median per chain)",
    ]
    # histories from before is_best and loss_function: best by val Pearson, the generic unit
    table = history_table(HISTORY)
    assert best_epoch(table) == (3, "highest val Pearson r")
    figures.clear()
    plot_training_curves(HISTORY, tmp_path)
    assert figures[0].axes[0].get_ylabel() == f"loss: {LOSS_LABEL}"


def test_per_temperature_legend_explains_a_baseline_without_r(tmp_path, monkeypatch):
    preds = _write(tmp_path, _predictions())
    per_t = {str(int(t)): {"n": 36, "pearson": None, "rmse": 0.2} for t in TEMPS}
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"baselines": {"temperature_fit": {"per_temperature": per_t}}}))
    figures = _captured(monkeypatch)
    plot(tmp_path / "vis", predictions=preds, metrics=metrics)
    fig = next(f for f in figures if f.axes[0].get_title() == "Pearson r per temperature")
    ax_r, ax_e = fig.axes[:2]
    r_labels = [t.get_text() for t in ax_r.get_legend().get_texts()]
    assert r_labels[0] == "model"
    assert "no r within a temperature" in r_labels[1]  # said why, not drawn as an empty series
    assert len(ax_r.lines) == 1  # only the model has points
    assert "baseline: temperature-only fit" in ax_e.get_legend_handles_labels()[1]


def test_rmsf_profile_draws_one_panel_per_temperature(tmp_path, monkeypatch):
    figures = _captured(monkeypatch)
    plot_rmsf_profile(_predictions(), tmp_path, rmsf_unit="nm", domain="1aaaA00")
    panels = [a for a in figures[0].axes if a.lines]
    assert len(panels) == len(TEMPS)  # at most five, one each
    for ax in panels:
        assert len(ax.lines) == 2  # predicted and true, nothing else to tell apart


def test_group_error_stats_match_the_metrics():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    p = np.array([1.5, 2.0, 2.0, 4.5])
    stats = group_stats(y, p, np.array([0, 0, 1, 1]), 2)
    for g, sel in enumerate(([0, 1], [2, 3])):
        m = regression_metrics(y[sel], p[sel])
        assert stats["mae"][g] == pytest.approx(m["mae"])
        assert stats["rmse"][g] == pytest.approx(m["rmse"])
