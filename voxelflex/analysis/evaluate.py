"""Evaluation of a predictions file: metrics, stratification, baselines, permutation importance.

Output: ``evaluation_metrics_<split>.json`` (by default in the predictions file's folder, which
``voxelflex predict`` puts under ``<run_dir>/metrics/``). Rows without a target are counted and
left out of every metric; NaN metrics (too few rows, zero variance) are written as ``null``.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from voxelflex.analysis.baselines import BASELINE_NAMES, fit_baselines
from voxelflex.analysis.importance import importance_for_rows
from voxelflex.analysis.predictions import PredictionsMeta, read_predictions
from voxelflex.analysis.temperatures import temperature_key
from voxelflex.atomic import atomic_write_text
from voxelflex.columns import strings
from voxelflex.config import Config, load_config
from voxelflex.errors import InputError, VoxelflexError
from voxelflex.index import read_index
from voxelflex.metrics import (
    grouped_metrics,
    grouped_pearson,
    regression_metrics,
    summarize,
)
from voxelflex.paths import Location, check_output, is_url

__all__ = [
    "ACCESSIBILITY_BINS",
    "EvaluationReport",
    "evaluate",
    "format_summary",
    "prediction_metrics",
]

log = logging.getLogger(__name__)

ACCESSIBILITY_BINS = (0.0, 0.1, 0.4, 1.01)


@dataclass(frozen=True)
class EvaluationReport:
    """Result of :func:`evaluate`: the metrics dict and where its JSON was written."""

    path: Path
    metrics: dict


def _column(table: pa.Table, name: str, dtype=np.float64) -> np.ndarray:
    return np.asarray(pc.fill_null(table[name], np.nan).to_numpy(zero_copy_only=False), dtype)


def _per_temperature(y: np.ndarray, p: np.ndarray, t: np.ndarray) -> dict:
    return {temperature_key(k): regression_metrics(y[t == k], p[t == k]) for k in np.unique(t)}


def _stratified(table: pa.Table, y: np.ndarray, p: np.ndarray) -> dict:
    out = {}
    names = table.column_names
    ss_col = next((c for c in ("dssp", "secondary_structure_encoded") if c in names), None)
    if ss_col is not None:
        ss = strings(table[ss_col])
        if (ss != "").any():
            out["secondary_structure"] = {"column": ss_col, **_grouped(y, p, ss, "")}
    if "relative_accessibility" in names:
        acc = _column(table, "relative_accessibility")
        edges = np.asarray(ACCESSIBILITY_BINS)
        labels = np.array([f"[{a:g}, {b:g})" for a, b in itertools.pairwise(edges)])
        where = np.digitize(acc, edges) - 1  # NaN and out-of-range land outside 0..len-1
        ok = np.isfinite(acc) & (where >= 0) & (where < len(labels))
        if ok.any():
            binned = np.where(ok, labels[np.clip(where, 0, len(labels) - 1)], "")
            out["relative_accessibility"] = {"bins": list(edges), **_grouped(y, p, binned, "")}
    out["residue_type"] = _grouped(y, p, strings(table["resname"]), "")
    return out


def _grouped(y: np.ndarray, p: np.ndarray, groups: np.ndarray, missing) -> dict:
    has = groups != missing
    return {
        "n_without_value": int((~has).sum()),
        "groups": grouped_metrics(y[has], p[has], groups[has]),
    }


def _per_domain(table: pa.Table, y: np.ndarray, p: np.ndarray, t: np.ndarray) -> dict:
    _, dom = np.unique(strings(table["domain"]), return_inverse=True)
    out = {"all_temperatures": summarize(grouped_pearson(y, p, dom)[1])}
    for k in np.unique(t):
        sel = t == k
        out[temperature_key(k)] = summarize(grouped_pearson(y[sel], p[sel], dom[sel])[1])
    return out


def prediction_metrics(table: pa.Table) -> dict:
    """Metrics of ``predicted_rmsf`` against ``target_rmsf`` over rows with a finite target.

    Parameters
    ----------
    table : pyarrow.Table
        A predictions table (see :mod:`voxelflex.analysis.predictions`).

    Returns
    -------
    dict
        ``n_rows``, ``n_rows_without_target``, ``n_extrapolated``, ``overall`` (n, pearson,
        spearman, r2, rmse, mae), ``per_temperature`` (same, keyed by K), ``per_domain_pearson``
        (mean, median, q25, q75 of each domain's r, over all temperatures and per temperature)
        and ``stratified`` (secondary structure, accessibility bins [0, 0.1, 0.4, 1.01], residue
        type; the first two only when the columns exist).
    """
    y_all = _column(table, "target_rmsf")
    has = np.isfinite(y_all)
    rows = table.filter(pa.array(has))
    y, p, t = y_all[has], _column(rows, "predicted_rmsf"), _column(rows, "temperature")
    n_extra = 0
    if "extrapolated" in rows.column_names:
        n_extra = int(pc.sum(pc.fill_null(rows["extrapolated"], False)).as_py() or 0)
    return {
        "n_rows": int(has.sum()),
        "n_rows_without_target": int((~has).sum()),
        "n_extrapolated": n_extra,
        "overall": regression_metrics(y, p),
        "per_temperature": _per_temperature(y, p, t),
        "per_domain_pearson": _per_domain(rows, y, p, t),
        "stratified": _stratified(rows, y, p),
    }


def _baselines(rows: pa.Table, index_path: Location) -> dict:
    # Baselines need only the index's train targets, not the voxel file behind it.
    loaded = read_index(
        index_path,
        columns=["split", "resname", "temperature", "target_rmsf"],
        check_inputs=False,
    )
    train = loaded.table.filter(pc.equal(loaded.table["split"], "train"))
    fitted = fit_baselines(
        train,
        rows.select(["resname", "temperature"]).cast(
            pa.schema([("resname", pa.string()), ("temperature", pa.float32())])
        ),
        where=str(index_path),
    )
    y, t = _column(rows, "target_rmsf"), _column(rows, "temperature")
    out: dict = {"n_train_rows": fitted.n_train, "fallback_rows": fitted.fallback_rows}
    for name in BASELINE_NAMES:
        p = fitted.predictions[name]
        out[name] = {
            "overall": regression_metrics(y, p),
            "per_temperature": _per_temperature(y, p, t),
        }
    out["temperature_fit"]["coefficients"] = {
        "intercept": fitted.coefficients[0],
        "slope_per_K": fitted.coefficients[1],
    }
    return out


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, float | np.floating):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


def evaluate(
    predictions: str | Path,
    *,
    index_path: str | Path | None = None,
    checkpoint: str | Path | None = None,
    out_path: str | Path | None = None,
    importance: bool = True,
    n_shuffles: int = 3,
    seed: int = 0,
    overwrite: bool = False,
    config: Config | None = None,
) -> EvaluationReport:
    """Compute all metrics of a predictions file and write them as JSON.

    Parameters
    ----------
    predictions : path
        Output of :func:`voxelflex.analysis.predict.predict` (Parquet or CSV).
    index_path, checkpoint : path, optional
        Default to the ones recorded in the predictions file. The index's train split fits the
        baselines; the checkpoint is needed for permutation importance.
    out_path : path, optional
        Default ``<predictions folder>/evaluation_metrics_<split>.json``.
    importance : bool
        Compute permutation importance (reads the split's voxels again: one pass).
    n_shuffles, seed : int
        Shuffles per input and their seed.
    overwrite : bool
        Replace an existing metrics JSON (refused otherwise; see :mod:`voxelflex.paths`).
    config : Config, optional
        How permutation importance reads voxels (source and its options, batch size, device),
        as for :func:`voxelflex.analysis.predict.predict`; default: the packaged defaults.

    Returns
    -------
    EvaluationReport
    """
    predictions = Path(predictions)
    table, meta = read_predictions(predictions)
    index_path = index_path or meta.index
    index_path = index_path if is_url(index_path) else Path(index_path)
    checkpoint = Path(checkpoint or meta.checkpoint)
    out = check_output(
        out_path or predictions.parent / f"evaluation_metrics_{meta.split}.json",
        inputs={"predictions": predictions, "index": index_path, "checkpoint": checkpoint},
        overwrite=overwrite,
        what="metrics file",
    )
    metrics = prediction_metrics(table)
    if metrics["n_rows"] == 0:
        raise InputError(
            f"{predictions}: no row has a target_rmsf; evaluate needs predictions for a split "
            "with targets (e.g. `voxelflex predict --split test`)"
        )
    metrics = {
        "split": meta.split,
        "rmsf_unit": meta.rmsf_unit,
        "predictions": str(predictions),
        **metrics,
    }
    rows = table.filter(pc.is_finite(table["target_rmsf"]))
    try:
        metrics["baselines"] = _baselines(rows, index_path)
    except VoxelflexError as exc:
        log.warning("baselines skipped: %s", exc)
        metrics["baselines"] = {"skipped": str(exc)}
    metrics["permutation_importance"] = _importance(
        meta,
        rows,
        enabled=importance,
        index_path=index_path,
        checkpoint=checkpoint,
        n_shuffles=n_shuffles,
        seed=seed,
        config=config or load_config(),
    )
    atomic_write_text(out, json.dumps(_jsonable(metrics), indent=2, allow_nan=False) + "\n")
    log.info("evaluation metrics written to %s", out)
    return EvaluationReport(path=out, metrics=_jsonable(metrics))


def _importance(meta: PredictionsMeta, rows: pa.Table, *, enabled: bool, **kwargs) -> dict:
    if not enabled:
        return {"skipped": "not requested"}
    domains = sorted(set(strings(rows["domain"]).tolist()))
    try:
        return importance_for_rows(splits=meta.splits, domains=domains, **kwargs)
    except VoxelflexError as exc:
        log.warning("permutation importance skipped: %s", exc)
        return {"skipped": str(exc)}


def _fmt(x) -> str:
    return "   n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:6.3f}"


def format_summary(metrics: dict) -> str:
    """A short text table: the model beside the baselines, overall and Pearson r per temperature.

    Parameters
    ----------
    metrics : dict
        As returned by :func:`evaluate` (``EvaluationReport.metrics``).
    """
    unit = metrics.get("rmsf_unit") or "?"
    rows = [("model", metrics["overall"], metrics["per_temperature"])]
    labels = {
        "residue_type_temperature_mean": "baseline: residue type × T mean",
        "temperature_fit": "baseline: temperature-only fit",
    }
    baselines = metrics.get("baselines", {})
    for name, label in labels.items():
        if name in baselines:
            rows.append((label, baselines[name]["overall"], baselines[name]["per_temperature"]))
    temps = list(metrics["per_temperature"])
    n_unscored = metrics.get("n_rows_without_target", 0)
    unscored = f" ({n_unscored} without, not scored)" if n_unscored else ""
    width = max(len(r[0]) for r in rows)
    pooled = f"{'Pearson':>7} {'Spearman':>8} {'R²':>6} {'RMSE':>6} {'MAE':>6}"
    per_t = " ".join(f"{t + ' K':>6}" for t in temps)
    lines = [
        f"{metrics.get('split', '')} split: {metrics['n_rows']} rows with a target{unscored}, "
        f"RMSF in {unit}",
        f"{'':{width}}  {'pooled over temperatures':<{len(pooled)}} | Pearson r per temperature",
        f"{'':{width}}  {pooled} | {per_t}",
    ]
    for label, overall, by_t in rows:
        values = [_fmt(overall[k]) for k in ("pearson", "spearman", "r2", "rmse", "mae")]
        line = f"{label:{width}}  {values[0]:>7} {values[1]:>8} {' '.join(values[2:])} | "
        line += " ".join(f"{_fmt(by_t.get(t, {}).get('pearson')):>6}" for t in temps)
        lines.append(line)
    dom = metrics["per_domain_pearson"]["all_temperatures"]
    lines.append(
        f"per-domain Pearson (all T): median {_fmt(dom['median']).strip()}, "
        f"quartiles {_fmt(dom['q25']).strip()}–{_fmt(dom['q75']).strip()} over {dom['n']} domains"
    )
    imp = metrics.get("permutation_importance", {})
    if "features" in imp:
        drops = ", ".join(
            f"{k.removeprefix('channel_')} {v['pearson_drop']:.3f}"
            for k, v in imp["features"].items()
        )
        lines.append(f"permutation importance (drop in Pearson): {drops}")
    return "\n".join(lines)
