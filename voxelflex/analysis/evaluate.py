"""Evaluation of a predictions file: metrics, stratification, baselines, permutation importance.

Output: ``evaluation_metrics_<split>.json`` (by default in the predictions file's folder, which
``voxelflex predict`` puts under ``<run_dir>/metrics/``). Rows without a target are counted and
left out of every metric; NaN metrics (too few rows, zero variance) are written as ``null``.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from voxelflex.analysis.baselines import (
    BASELINE_NAMES,
    PHYSICS_BASELINES,
    fit_baselines,
    fit_temperature_lines,
)
from voxelflex.analysis.importance import importance_for_rows
from voxelflex.analysis.predictions import PredictionsMeta, read_predictions
from voxelflex.atomic import atomic_write_json, json_safe
from voxelflex.columns import codes, repeated_keys, strings
from voxelflex.config import Config, default_value, load_config
from voxelflex.engine.report import format_metric
from voxelflex.errors import InputError, VoxelflexError
from voxelflex.index import LoadedIndex, read_index, read_meta
from voxelflex.logs import command_log
from voxelflex.metrics import (
    grouped_metrics,
    grouped_pearson,
    regression_metrics,
    summarize,
)
from voxelflex.paths import Location, check_output, is_url, require_file, require_suffix
from voxelflex.quantities import temperature_key
from voxelflex.sources.shards.manifest import file_sha256

__all__ = [
    "ACCESSIBILITY_BINS",
    "EvaluationReport",
    "accessibility_bins",
    "evaluate",
    "format_summary",
    "prediction_metrics",
    "secondary_structure_column",
]

log = logging.getLogger(__name__)

# The packaged default of evaluate.accessibility_bins (the earlier VoxelFlex's sasa_bins).
ACCESSIBILITY_BINS = tuple(default_value("evaluate.accessibility_bins"))


@dataclass(frozen=True)
class EvaluationReport:
    """Result of :func:`evaluate`: the metrics dict and where its JSON was written."""

    path: Path
    metrics: dict


def _column(table: pa.Table, name: str, dtype=np.float64) -> np.ndarray:
    return np.asarray(pc.fill_null(table[name], np.nan).to_numpy(zero_copy_only=False), dtype)


def _per_temperature(y: np.ndarray, p: np.ndarray, t: np.ndarray) -> dict:
    return {temperature_key(k): regression_metrics(y[t == k], p[t == k]) for k in np.unique(t)}


def secondary_structure_column(table: pa.Table) -> str | None:
    """The column secondary structure is read from: ``dssp``, else
    ``secondary_structure_encoded``, else None."""
    names = table.column_names
    return next((c for c in ("dssp", "secondary_structure_encoded") if c in names), None)


def accessibility_bins(
    accessibility: np.ndarray, edges: Sequence[float]
) -> tuple[np.ndarray, list[str]]:
    """Label each relative accessibility with its bin ``"[a, b)"``; ``""`` outside every bin.

    Parameters
    ----------
    accessibility : numpy.ndarray, float, shape (N,)
        NaN where unknown.
    edges : sequence of float
        Increasing bin edges.

    Returns
    -------
    labels : numpy.ndarray of str, shape (N,)
    names : list of str
        Every bin's label, in order.
    """
    edges = np.asarray(edges, dtype=np.float64)
    names = [f"[{a:g}, {b:g})" for a, b in itertools.pairwise(edges)]
    # The index stores accessibility as float32: compare against float32 edges too, so a value
    # of exactly 0.7 lands in [0.7, ...), not below (0.7 in float32 is 0.69999999 in float64).
    at_precision = edges.astype(np.float32).astype(np.float64)
    where = np.digitize(np.asarray(accessibility, np.float64), at_precision) - 1  # NaN: outside
    ok = np.isfinite(accessibility) & (where >= 0) & (where < len(names))
    labels = np.where(ok, np.asarray(names)[np.clip(where, 0, len(names) - 1)], "")
    return labels, names


def _stratified(
    table: pa.Table, y: np.ndarray, p: np.ndarray, t: np.ndarray, bins: Sequence[float]
) -> dict:
    out = {}
    ss_col = secondary_structure_column(table)
    if ss_col is not None:
        ss = strings(table[ss_col])
        if (ss != "").any():
            out["secondary_structure"] = {"column": ss_col, **_grouped(y, p, t, ss)}
    if "relative_accessibility" in table.column_names:
        binned, _ = accessibility_bins(_column(table, "relative_accessibility"), bins)
        if (binned != "").any():
            out["relative_accessibility"] = {
                "bins": [float(b) for b in bins],
                **_grouped(y, p, t, binned),
            }
    out["residue_type"] = _grouped(y, p, t, strings(table["resname"]))
    return out


def _grouped(y: np.ndarray, p: np.ndarray, t: np.ndarray, groups: np.ndarray) -> dict:
    """Metrics per group pooled over temperatures, and per temperature; ``""`` = no value."""
    has = groups != ""
    y, p, t, groups = y[has], p[has], t[has], groups[has]
    return {
        "n_without_value": int((~has).sum()),
        "groups": grouped_metrics(y, p, groups),
        "per_temperature": {
            temperature_key(k): grouped_metrics(y[t == k], p[t == k], groups[t == k])
            for k in np.unique(t)
        },
    }


def _grouped_pearson_summary(
    groups: np.ndarray, y: np.ndarray, p: np.ndarray, t: np.ndarray
) -> dict:
    """Summary of each group's Pearson r: over all temperatures, then per temperature."""
    out = {"all_temperatures": summarize(grouped_pearson(y, p, groups)[1])}
    for k in np.unique(t):
        sel = t == k
        out[temperature_key(k)] = summarize(grouped_pearson(y[sel], p[sel], groups[sel])[1])
    return out


def _per_domain(table: pa.Table, y: np.ndarray, p: np.ndarray, t: np.ndarray) -> dict:
    _, dom = np.unique(strings(table["domain"]), return_inverse=True)
    return _grouped_pearson_summary(dom, y, p, t)


def _per_chain(table: pa.Table, y: np.ndarray, p: np.ndarray, t: np.ndarray) -> dict:
    keys = np.stack([strings(table["domain"]), strings(table["chain"])], axis=1)
    _, chain = np.unique(keys, axis=0, return_inverse=True)
    return _grouped_pearson_summary(chain.ravel(), y, p, t)


def prediction_metrics(
    table: pa.Table, accessibility_bins: Sequence[float] = ACCESSIBILITY_BINS
) -> dict:
    """Metrics of ``predicted_rmsf`` against ``target_rmsf`` over rows where both are finite.

    Parameters
    ----------
    table : pyarrow.Table
        A predictions table (see :mod:`voxelflex.analysis.predictions`).
    accessibility_bins : sequence of float
        Edges of the relative accessibility bins (default ``evaluate.accessibility_bins``).

    Returns
    -------
    dict
        ``n_rows`` (scored), ``n_rows_without_target``, ``n_rows_without_prediction`` (a target
        but no finite prediction: ``predict`` writes none, an edited file may hold some),
        ``n_extrapolated``, ``overall`` (n and
        :data:`voxelflex.metrics.METRIC_NAMES`: pearson, spearman, r2, rmse, mae, mse,
        mean_relative_error, cv_rmse_percent), ``per_temperature`` (same, keyed by K),
        ``per_domain_pearson`` and ``per_chain_pearson`` (mean, median, q25, q75 of each
        domain's or chain's r, over all temperatures and per temperature) and ``stratified``
        (secondary structure, accessibility bins, residue type, each pooled and per
        temperature; the first two only when the columns exist).
    """
    y_all = _column(table, "target_rmsf")
    with_target = np.isfinite(y_all)
    has = with_target & np.isfinite(_column(table, "predicted_rmsf"))
    rows = table.filter(pa.array(has))
    y, p, t = y_all[has], _column(rows, "predicted_rmsf"), _column(rows, "temperature")
    n_extra = 0
    if "extrapolated" in rows.column_names:
        n_extra = int(pc.sum(pc.fill_null(rows["extrapolated"], False)).as_py() or 0)
    return {
        "n_rows": int(has.sum()),
        "n_rows_without_target": int((~with_target).sum()),
        "n_rows_without_prediction": int((with_target & ~has).sum()),
        "n_extrapolated": n_extra,
        "overall": regression_metrics(y, p),
        "per_temperature": _per_temperature(y, p, t),
        "per_domain_pearson": _per_domain(rows, y, p, t),
        "per_chain_pearson": _per_chain(rows, y, p, t),
        "stratified": _stratified(rows, y, p, t, accessibility_bins),
    }


_KEYS = ["domain", "chain", "resid_str"]


def _read_index_rows(index_path: Location) -> LoadedIndex:
    """The index columns evaluation needs (targets, splits, physics features); never the voxel
    file behind it."""
    meta = read_meta(index_path, check_inputs=False)
    physics = sorted({c for cols in PHYSICS_BASELINES.values() for c in cols} & set(meta.features))
    return read_index(
        index_path,
        columns=["split", "resname", "temperature", "target_rmsf", *_KEYS, *physics],
        check_inputs=False,
    )


def _check_duplicates(table: pa.Table, predictions: Path) -> None:
    repeated = repeated_keys(table, [*_KEYS, "temperature"])
    if repeated:
        n, d = repeated
        raise InputError(
            f"{predictions}: {n} (domain, chain, residue, temperature) keys occur more "
            f"than once, e.g. {d['domain']}/{d['chain']}/{d['resid_str']} at "
            f"{d['temperature']:g} K ({d['rows']} rows); a predictions file holds each "
            "once (was it concatenated with another?): remove the repeats or predict again"
        )


def _check_rows_in_index(
    rows: pa.Table, meta: PredictionsMeta, index: LoadedIndex, predictions: Path
) -> None:
    """Refuse scored rows that are not rows of the index's predicted splits with the same target:
    the model is scored on the file's targets and the baselines are fitted on the index's train
    split, so a different index (other unit, other split, other data) would give wrong numbers."""
    fix = (
        f"evaluate with the index the predictions were made from (recorded: {meta.index}; "
        "--index overrides it)"
    )
    unit = index.meta.rmsf_unit
    if unit and meta.rmsf_unit and unit != meta.rmsf_unit:
        raise InputError(
            f"{predictions}: RMSF in {meta.rmsf_unit}, but index {index.path} holds targets in "
            f"{unit}; {fix}"
        )
    f32 = pa.float32()
    table = index.table
    mine = table.filter(pc.is_in(table["split"], pa.array(meta.splits, pa.string())))
    mine = pa.table(
        {
            **{k: mine[k] for k in _KEYS},
            "temperature": mine["temperature"].cast(f32),
            "target_index": mine["target_rmsf"].cast(f32),
        }
    )
    scored = pa.table(
        {
            **{k: rows[k].cast(pa.string()) for k in _KEYS},
            "temperature": rows["temperature"].cast(f32),
            "target_rmsf": rows["target_rmsf"].cast(f32),
        }
    )
    joined = scored.join(mine, [*_KEYS, "temperature"], join_type="left outer")
    y, y_index = _column(joined, "target_rmsf"), _column(joined, "target_index")
    bad = ~(np.abs(y - y_index) <= 1e-6 + 1e-5 * np.abs(y_index))  # NaN: not in the index
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        r = joined.slice(i, 1).to_pylist()[0]
        where = f"{r['domain']}/{r['chain']}/{r['resid_str']} at {r['temperature']:g} K"
        what = (
            f"not a row of split(s) {meta.splits} there"
            if r["target_index"] is None
            else f"target {r['target_rmsf']:g} here, {r['target_index']:g} there"
        )
        raise InputError(
            f"{predictions}: {int(bad.sum())} of {len(bad)} scored rows do not match index "
            f"{index.path} (e.g. {where}: {what}); {fix}"
        )


def _baselines(rows: pa.Table, loaded: LoadedIndex) -> dict:
    index_path = loaded.path
    train = loaded.table.filter(pc.equal(loaded.table["split"], "train"))
    physics = {
        n: cols
        for n, cols in PHYSICS_BASELINES.items()
        if set(cols) <= set(loaded.table.column_names)
        # no crystal neighbours in train (simulations): the same line as contact_number
        and not ("wcn_lattice" in cols and not pc.any(pc.greater(train["wcn_lattice"], 0)).as_py())
    }
    columns = sorted({c for cols in physics.values() for c in cols})
    keys = _KEYS
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
    if physics:
        # The rows' feature values, from any index row of the same residue.
        per_residue = (
            loaded.table.select([*keys, *columns])
            .group_by(keys, use_threads=False)
            .aggregate([(c, "first") for c in columns])
        )
        order = pa.array(np.arange(rows.num_rows))
        joined = (
            rows.select(keys)
            .append_column("_order", order)
            .join(per_residue, keys=keys, join_type="left outer")
        ).sort_by("_order")  # every row is an index row (_check_rows_in_index): none is lost
        y_train, t_train = _column(train, "target_rmsf"), _column(train, "temperature")
        domains = codes(train["domain"])
        for name, cols in physics.items():
            p, slope, intercepts = fit_temperature_lines(
                sum(_column(train, c) for c in cols),
                y_train,
                t_train,
                domains,
                sum(_column(joined, f"{c}_first") for c in cols),
                t,
                what=f"{index_path}: baseline {name}",
            )
            # A residue without the feature (NaN in the index) has no baseline prediction: its
            # rows drop out of this baseline's scores, which then compare other rows with the
            # model's; say so instead of letting only a smaller `n` tell.
            without = ~np.isfinite(p)
            if without.any():
                r = joined.slice(int(np.flatnonzero(without)[0]), 1).to_pylist()[0]
                log.warning(
                    "%s: baseline %s has no %s value for %d of %d scored rows (e.g. %s/%s/%s); "
                    "it is scored without them, on fewer rows than the model",
                    index_path,
                    name,
                    " + ".join(cols),
                    int(without.sum()),
                    len(p),
                    r["domain"],
                    r["chain"],
                    r["resid_str"],
                )
            out[name] = {
                "feature": " + ".join(cols),
                "n_rows_without_feature": int(without.sum()),
                "overall": regression_metrics(y, p),
                "per_temperature": _per_temperature(y, p, t),
                "per_domain_pearson": _per_domain(rows, y, p, t),
                "per_chain_pearson": _per_chain(rows, y, p, t),
                "coefficients": {
                    "slope": slope,
                    "intercept_per_temperature": {
                        temperature_key(k): a for k, a in intercepts.items()
                    },
                },
            }
    return out


def evaluate(
    predictions: str | Path,
    *,
    index_path: str | Path | None = None,
    checkpoint: str | Path | None = None,
    out_path: str | Path | None = None,
    importance: bool | None = None,
    n_shuffles: int | None = None,
    seed: int | None = None,
    overwrite: bool = False,
    config: Config | None = None,
) -> EvaluationReport:
    """Compute all metrics of a predictions file and write them as JSON.

    Parameters
    ----------
    predictions : path
        Output of :func:`voxelflex.analysis.predict.predict` (Parquet or CSV).
    index_path, checkpoint : path, optional
        Default to the ones recorded in the predictions file (an index URL recorded without
        its credentials must be given). The index's train split fits the baselines; the
        checkpoint is needed for permutation importance. A recorded one that cannot be read
        skips the baselines (importance) with the reason; a given one is refused.
    out_path : path, optional
        Default ``<predictions folder>/evaluation_metrics_<split>.json``.
    importance : bool, optional
        Compute permutation importance (reads the split's voxels again: one pass); default
        ``evaluate.importance``.
    n_shuffles, seed : int, optional
        Shuffles per input and their seed; default ``evaluate.shuffles``, ``evaluate.seed``.
    overwrite : bool
        Replace an existing metrics JSON (refused otherwise; see :mod:`voxelflex.paths`).
    config : Config, optional
        The ``evaluate`` section (the defaults above, ``accessibility_bins``) and how
        permutation importance reads voxels (source and its options, batch size, device,
        ``predict.progress``), as for :func:`voxelflex.analysis.predict.predict`; default: the
        packaged defaults.

    Returns
    -------
    EvaluationReport

    Raises
    ------
    InputError
        Among others: ``index_path`` given but not a readable index, or ``checkpoint`` given
        but missing while ``importance`` is on.
    """
    config = config or load_config()
    ec = config.evaluate
    importance = ec.importance if importance is None else importance
    n_shuffles = ec.shuffles if n_shuffles is None else n_shuffles
    seed = ec.seed if seed is None else seed
    predictions = Path(predictions)
    table, meta = read_predictions(predictions)
    _check_duplicates(table, predictions)
    if index_path is None and is_url(meta.index) and "***" in meta.index:
        # predict records a URL without its credentials (redact_url): reading it would fail
        # with "not found" or "forbidden", which names no fix
        raise InputError(
            f"{predictions}: the predictions were made from index {meta.index}, recorded "
            "without its credentials; give the index again with --index (the URL as given to "
            "predict, or credentials in the environment: AWS_* variables, ~/.config/fsspec/)"
        )
    # An index or checkpoint given (-i, -c) that cannot be used is refused; the recorded ones
    # may have moved since, and only skip the baselines or importance with the reason.
    given_index, given_checkpoint = index_path is not None, checkpoint is not None
    index_path = index_path or meta.index
    index_path = index_path if is_url(index_path) else Path(index_path)
    checkpoint = Path(checkpoint or meta.checkpoint)
    if importance and given_checkpoint:
        require_file(checkpoint, what="checkpoint", option="--checkpoint")
    if out_path is not None:  # JSON named .csv opens as garbage in a spreadsheet
        require_suffix(out_path, (".json",), what="metrics file")
    out = check_output(
        out_path or predictions.parent / f"evaluation_metrics_{meta.split}.json",
        inputs={"predictions": predictions, "index": index_path, "checkpoint": checkpoint},
        overwrite=overwrite,
        what="metrics file",
    )
    used = _check_checkpoint(checkpoint, meta, predictions) if importance else None
    loaded = _read_index_rows(index_path) if given_index else None
    with command_log(out, "evaluate"):
        metrics = prediction_metrics(table, ec.accessibility_bins)
        if metrics["n_rows"] == 0:
            raise InputError(
                f"{predictions}: no row has a target_rmsf; evaluate needs predictions for a split "
                "with targets (e.g. `voxelflex predict --split test`)"
            )
        if metrics["n_rows_without_prediction"]:
            log.warning(
                "%s: %d rows have a target but no finite prediction; they are left out of every "
                "score, the baselines' too",
                predictions,
                metrics["n_rows_without_prediction"],
            )
        metrics = {
            "split": meta.split,
            "rmsf_unit": meta.rmsf_unit,
            "target_norm": meta.target_norm,
            "predictions": str(predictions),
            # the model that made the predictions, as the predictions file records it
            "checkpoint": {"path": meta.checkpoint, "sha256": meta.checkpoint_sha256},
            **metrics,
        }
        if meta.target_norm != "global":
            log.warning(
                "%s holds per-domain relative scores (a checkpoint trained with "
                "train.target_norm=%s): read Pearson and Spearman within domains and chains; "
                "pooled RMSE, MAE and R² compare those scores with RMSF in %s",
                predictions,
                meta.target_norm,
                meta.rmsf_unit,
            )
        rows = table.filter(
            pc.and_(pc.is_finite(table["target_rmsf"]), pc.is_finite(table["predicted_rmsf"]))
        )
        try:
            loaded = loaded if loaded is not None else _read_index_rows(index_path)
        except VoxelflexError as exc:
            log.warning("baselines skipped: %s", exc)
            metrics["baselines"] = {"skipped": str(exc)}
        else:
            _check_rows_in_index(rows, meta, loaded, predictions)
            try:
                metrics["baselines"] = _baselines(rows, loaded)
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
            config=config,
        )
        if used is not None and "skipped" not in metrics["permutation_importance"]:
            metrics["permutation_importance"]["checkpoint"] = used
        metrics = json_safe(metrics)  # once: what the file holds is what is returned
        atomic_write_json(out, metrics)
        log.info("evaluation metrics written to %s", out)
        return EvaluationReport(path=out, metrics=metrics)


def _check_checkpoint(checkpoint: Path, meta: PredictionsMeta, predictions: Path) -> dict | None:
    """The checkpoint permutation importance will use (path and SHA-256), when it is the one
    that made the predictions.

    Raises
    ------
    InputError
        ``checkpoint`` (``-c``, or the recorded path, where a later training may have written
        another model) is not the file the predictions file records.
    """
    if not checkpoint.is_file():
        return None  # importance is skipped with the reason
    sha = file_sha256(checkpoint)
    if meta.checkpoint_sha256 is None:
        log.warning(
            "%s does not record which checkpoint file made it (written by an earlier voxelflex):"
            " permutation importance uses %s without checking that it is that model",
            predictions,
            checkpoint,
        )
    elif sha != meta.checkpoint_sha256:
        raise InputError(
            f"checkpoint {checkpoint} (sha256 {sha[:12]}…) is not the model that made "
            f"{predictions} ({meta.checkpoint}, sha256 {meta.checkpoint_sha256[:12]}…; replaced "
            "since, e.g. by another training into the same run folder?): permutation importance "
            "would score another model. Pass -c with the checkpoint that made the predictions, "
            "rerun `voxelflex predict` with this one, or pass --no-importance"
        )
    return {"path": str(checkpoint.resolve()), "sha256": sha}


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
    return format_metric(x, "6.3f").rjust(6)  # a column of the summary table


def format_summary(metrics: dict) -> str:
    """A short text table: the model beside the baselines, overall and Pearson r per temperature.

    Parameters
    ----------
    metrics : dict
        As returned by :func:`evaluate` (``EvaluationReport.metrics``).
    """
    unit = metrics.get("rmsf_unit") or "?"
    relative = metrics.get("target_norm", "global") != "global"
    rows = [("model", metrics["overall"], metrics["per_temperature"])]
    labels = {
        "residue_type_temperature_mean": "baseline: residue type × T mean",
        "temperature_fit": "baseline: temperature-only fit",
        "contact_number": "baseline: contact number (wcn_ca)",
        "gnm": "baseline: GNM fluctuation",
        "crystal_contact_number": "baseline: crystal contact number",
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
        f"RMSF in {unit}"
        + (
            "; the model's outputs are per-domain relative scores (train.target_norm=domain): "
            "its R², RMSE and MAE are not RMSF errors"
            if relative
            else ""
        ),
        f"{'':{width}}  {'pooled over temperatures':<{len(pooled)}} | Pearson r per temperature",
        f"{'':{width}}  {pooled} | {per_t}",
    ]
    for label, overall, by_t in rows:
        values = [_fmt(overall[k]) for k in ("pearson", "spearman", "r2", "rmse", "mae")]
        line = f"{label:{width}}  {values[0]:>7} {values[1]:>8} {' '.join(values[2:])} | "
        line += " ".join(f"{_fmt(by_t.get(t, {}).get('pearson')):>6}" for t in temps)
        lines.append(line)
    overall = metrics["overall"]
    if "mse" in overall:  # written by this version; older metrics files lack them
        mse, mre, cv = overall["mse"], overall["mean_relative_error"], overall["cv_rmse_percent"]
        lines.append(
            f"model, pooled: MSE {'n/a' if mse is None else f'{mse:.3g}'}"
            # a relative model's squared errors mix scores with RMSF: no unit to give them
            + (" (scores against RMSF), " if relative else f" {unit}², ")
            + "mean relative error "
            f"{'n/a' if mre is None else f'{100 * mre:.1f} %'}, CV-RMSE "
            f"{'n/a' if cv is None else f'{cv:.1f} %'} (RMSE / mean target)"
        )
    dom = metrics["per_domain_pearson"]["all_temperatures"]
    lines.append(
        f"per-domain Pearson (all T): median {_fmt(dom['median']).strip()}, "
        f"quartiles {_fmt(dom['q25']).strip()}–{_fmt(dom['q75']).strip()} over {dom['n']} domains"
    )
    chains = metrics["per_chain_pearson"]["all_temperatures"]
    if chains["n"] != dom["n"]:  # multi-chain domains (crystal entries): per chain too
        lines.append(
            f"per-chain Pearson (all T): median {_fmt(chains['median']).strip()}, quartiles "
            f"{_fmt(chains['q25']).strip()}–{_fmt(chains['q75']).strip()} over {chains['n']} "
            "chains"
        )
    physics = [
        f"{labels[n].removeprefix('baseline: ')} "
        f"{_fmt(b['per_chain_pearson']['all_temperatures']['median']).strip()}"
        for n, b in baselines.items()
        if isinstance(b, dict) and "per_chain_pearson" in b
    ]
    if physics:
        lines.append("per-chain Pearson of the physics baselines (median): " + ", ".join(physics))
    imp = metrics.get("permutation_importance", {})
    if "features" in imp:
        drops = ", ".join(
            f"{k.removeprefix('channel_')} {v['pearson_drop']:.3f}"
            for k, v in imp["features"].items()
        )
        base = ""
        if imp.get("n_rows") != metrics.get("overall", {}).get("n"):
            # importance scores every indexed temperature of the predicted domains: with
            # `predict -t 320` other rows than the table above, said beside its drops
            base = (
                f" (from Pearson {_fmt(imp.get('baseline_pearson')).strip()} over "
                f"{imp.get('n_rows')} index rows of the predicted domains, all their temperatures)"
            )
        lines.append(f"permutation importance (drop in Pearson): {drops}{base}")
    return "\n".join(lines)
