"""Plots of a run: each writes an image (PNG, SVG or PDF) and the CSV of the data it draws.

:func:`plot` makes every plot its inputs allow; the ``plot_*`` functions make one each.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from voxelflex.analysis.evaluate import ACCESSIBILITY_BINS, secondary_structure_column
from voxelflex.analysis.plots.accuracy import (
    plot_error_distribution,
    plot_per_temperature_metrics,
    plot_pred_vs_true,
    plot_residue_type_errors,
    scored_mask,
    unscored_predictions,
)
from voxelflex.analysis.plots.common import RELATIVE_UNIT
from voxelflex.analysis.plots.profiles import (
    check_picks,
    choose_domain,
    plot_rmsf_profile,
    plot_temperature_response,
)
from voxelflex.analysis.plots.strata import (
    plot_accessibility_errors,
    plot_secondary_structure_errors,
)
from voxelflex.analysis.plots.training import plot_training_curves
from voxelflex.analysis.predictions import read_predictions
from voxelflex.columns import strings
from voxelflex.engine.checkpointing import HISTORY_FILE
from voxelflex.errors import InputError
from voxelflex.formats import ImageFormat
from voxelflex.logs import command_log
from voxelflex.sources.table import zscore_segments

__all__ = [
    "ImageFormat",
    "default_plot_dir",
    "domain_zscored_targets",
    "find_run_files",
    "plot",
    "plot_accessibility_errors",
    "plot_error_distribution",
    "plot_per_temperature_metrics",
    "plot_pred_vs_true",
    "plot_residue_type_errors",
    "plot_rmsf_profile",
    "plot_secondary_structure_errors",
    "plot_temperature_response",
    "plot_training_curves",
    "plot_training_run",
]

log = logging.getLogger(__name__)


TARGET_SPLITS = ("train", "val", "test")  # splits whose rows have targets


def _split_of(path: Path, prefix: str) -> str:
    """The split in a run file's name: ``predictions_test.parquet`` -> ``test``."""
    return path.stem.removeprefix(prefix)


def _prediction_files(run_dir: Path, split: str | None = None) -> list[Path]:
    """``predictions_<split>.{parquet,csv}`` (any split when None) in ``run_dir/metrics`` and
    ``run_dir``, without predict's ``*_missing`` reports."""
    pattern = split or "*"
    return [
        p
        for d in (run_dir / "metrics", run_dir)
        for n in (f"predictions_{pattern}.parquet", f"predictions_{pattern}.csv")
        for p in sorted(d.glob(n))
        if not p.stem.endswith("_missing")  # predict's report of what it could not predict
    ]


def _metrics_files(run_dir: Path, split: str) -> list[Path]:
    return [
        p
        for d in (run_dir / "metrics", run_dir)
        for p in d.glob(f"evaluation_metrics_{split}.json")
    ]


def _newest(paths: list[Path]) -> Path | None:
    return max(paths, key=lambda p: (p.stat().st_mtime, str(p))) if paths else None


def find_run_files(run_dir: str | Path, split: str | None = None) -> dict[str, Path | None]:
    """Locate a run's ``training_history.json``, predictions and evaluation metrics.

    Looks in ``run_dir`` and ``run_dir/metrics`` for ``predictions_<split>.{parquet,csv}`` and
    ``evaluation_metrics_<split>.json`` (the newest of each, for ``split``). When ``split`` is
    None, the predictions are chosen in this order, so that the metrics always belong to them:

    1. predictions whose split was evaluated (an ``evaluation_metrics_<split>.json`` is there);
    2. predictions of a split with targets (``train``, ``val``, ``test`` or a ``+`` of them),
       before any other (``predict``, ``from_structures``, a user's ``predictions_<name>``);
    3. the newest (then the last by name).

    The metrics are those of the chosen predictions' split (None if it was not evaluated), so
    the two never mix splits.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(
            f"{run_dir}: run folder not found; pass the folder `voxelflex train` wrote "
            "(<output_dir>/<run_name>), or --predictions / --history"
        )
    history = run_dir / "training_history.json"
    candidates = _prediction_files(run_dir, split)

    def rank(p: Path) -> tuple:
        name = _split_of(p, "predictions_")
        evaluated = bool(_metrics_files(run_dir, name))
        with_targets = all(part in TARGET_SPLITS for part in name.split("+"))
        return (evaluated, with_targets, p.stat().st_mtime, str(p))

    predictions = max(candidates, key=rank) if candidates else None
    if predictions is not None:
        split = _split_of(predictions, "predictions_")
    return {
        "history": history if history.is_file() else None,
        "predictions": predictions,
        "metrics": _newest(_metrics_files(run_dir, split or "*")),
    }


def default_plot_dir(
    *,
    run_dir: str | Path | None = None,
    predictions: str | Path | None = None,
    history: str | Path | None = None,
) -> Path:
    """``<run_dir>/visualizations``; without a run folder, beside the predictions (or history).

    Predictions in a run's ``metrics/`` folder put the plots in that run's ``visualizations/``.
    """
    if run_dir is not None:
        return Path(run_dir) / "visualizations"
    anchor = Path(predictions or history or ".").resolve().parent
    return (anchor.parent if anchor.name == "metrics" else anchor) / "visualizations"


# Every plot's file-name stem (``rmsf_profile`` is followed by ``_<domain>``): what an existing
# plot folder is checked for before anything is drawn.
PLOT_NAMES = (
    "training_curves",
    "pred_vs_true",
    "error_distribution",
    "per_temperature_metrics",
    "residue_type_errors",
    "secondary_structure_errors",
    "accessibility_errors",
    "rmsf_profile",
    "temperature_response",
)


def _existing_plots(out_dir: Path) -> list[str]:
    """Files in ``out_dir`` that a plot run writes (images of any format and data CSVs)."""
    if not out_dir.is_dir():
        return []
    suffixes = {f".{f.value}" for f in ImageFormat} | {".csv"}
    return sorted(
        p.name
        for p in out_dir.iterdir()
        if p.suffix in suffixes and p.stem.removesuffix("_data").startswith(PLOT_NAMES)
    )


def _drawn_by_train(out_dir: Path, history: Path | None) -> set[str]:
    """The training-curve files ``voxelflex train`` drew into its run's ``visualizations/``
    when ``history`` is that run's history: redrawing them from it loses nothing."""
    if history is None or Path(history).name != HISTORY_FILE:
        return set()
    if out_dir.resolve() != (Path(history).resolve().parent / "visualizations"):
        return set()
    return {f"training_curves.{f.value}" for f in ImageFormat} | {"training_curves_data.csv"}


def plot(
    out_dir: str | Path,
    *,
    run_dir: str | Path | None = None,
    predictions: str | Path | None = None,
    history: str | Path | None = None,
    metrics: str | Path | None = None,
    fmt: ImageFormat | str = "png",
    domain: str | None = None,
    residues: Sequence[str] | None = None,
    profile_temperatures: Sequence[float] | None = None,
    accessibility_bins: Sequence[float] | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Make every plot the given inputs allow; return the written paths (images and CSVs).

    Parameters
    ----------
    out_dir : path
        Folder for ``<plot>.<fmt>`` and ``<plot>_data.csv``.
    run_dir : path, optional
        A training run folder; fills in ``history``, ``predictions`` and ``metrics`` not given
        (:func:`find_run_files`; with ``predictions``, the metrics of their own split).
    predictions : path, optional
        Predictions file (accuracy plots need targets; profiles work without).
    history : path, optional
        ``training_history.json`` for the training curves.
    metrics : path, optional
        ``evaluation_metrics_<split>.json``; adds the baselines to the per-temperature plot and
        gives the accessibility bins evaluate used. Metrics of another split than the
        predictions' are refused (given here) or left out with a warning (found in ``run_dir``).
    fmt : {"png", "svg", "pdf"}
    domain : str, optional
        Domain of the RMSF profile (default: the one with the median per-domain Pearson r).
    residues : sequence of str, optional
        ``DOMAIN:CHAIN:RESIDUE`` specs for the temperature response (default: four residues of
        the profile's domain, least to most flexible).
    profile_temperatures : sequence of float, optional
        Temperatures (K) drawn in the profile.
    accessibility_bins : sequence of float, optional
        Bin edges of the accessibility plot; default: those in ``metrics``, else
        ``evaluate.accessibility_bins``' default.
    overwrite : bool
        Replace plots already in ``out_dir`` (refused otherwise; see :mod:`voxelflex.paths`).
        The training curves ``voxelflex train`` drew into its run's ``visualizations/`` are
        redrawn from the same history without it.
    """
    out_dir = Path(out_dir)
    fmt = ImageFormat(fmt)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"plot folder {out_dir} is a file; --output-dir names a folder")
    explicit_metrics = metrics is not None
    loaded = None  # (table, meta) of the predictions
    choice = None  # which predictions of the run folder, said in the log
    if run_dir is not None:
        if predictions is None:
            found = find_run_files(run_dir)
            predictions = found["predictions"]
            choice = _choice(Path(run_dir), predictions)
        else:  # the run's metrics of the given predictions' split, not of the run's newest
            loaded = read_predictions(predictions)
            found = find_run_files(run_dir, split=loaded[1].split)
        history = history or found["history"]
        metrics = metrics or found["metrics"]
    own = _drawn_by_train(out_dir, history)
    existing = [name for name in _existing_plots(out_dir) if name not in own]
    if existing and not overwrite:
        raise InputError(
            f"plot folder {out_dir} already holds {len(existing)} plot files (e.g. "
            f"{existing[:3]}); choose another --output-dir, or pass --overwrite to replace them"
        )
    if history is None and predictions is None:
        alone = (
            f" (--metrics {metrics} draws baselines beside predictions, not alone)"
            if metrics
            else ""
        )
        raise InputError(
            "nothing to plot: give a run folder with training_history.json or predictions, "
            f"or --predictions / --history{alone}"
        )
    if predictions is not None:
        loaded = loaded or read_predictions(predictions)
    metrics_dict = _read_metrics(Path(metrics)) if metrics and loaded else None
    if metrics_dict is not None:
        metrics_dict = _same_predictions(
            metrics_dict, Path(metrics), Path(predictions), loaded[1], explicit=explicit_metrics
        )
    if loaded is not None:  # before any plot (the training curves too) is written
        check_picks(loaded[0], domain, residues, profile_temperatures)
    with command_log(out_dir, "plot"):
        if choice:
            log.info("%s", choice)
        paths: list[Path] = []
        if history is not None:
            paths += plot_training_curves(history, out_dir, fmt=fmt)
        if loaded is not None:
            if metrics_dict is not None:
                log.info("metrics (baselines): %s", metrics)
            elif run_dir is not None:
                log.info(
                    "no evaluation_metrics_%s.json in %s: no baselines (run `voxelflex evaluate "
                    "-p %s` to add them)",
                    loaded[1].split,
                    run_dir,
                    predictions,
                )
            paths += _prediction_plots(
                *loaded,
                predictions,
                out_dir,
                metrics=metrics_dict,
                fmt=fmt,
                domain=domain,
                residues=residues,
                profile_temperatures=profile_temperatures,
                accessibility_bins=accessibility_bins,
            )
        for p in paths:
            log.info("wrote %s", p)
    return paths


def _choice(run_dir: Path, predictions: Path | None) -> str | None:
    """Which predictions of a run folder are plotted, and which were passed over."""
    if predictions is None:
        return None
    others = [p.name for p in _prediction_files(run_dir) if p != predictions]
    return f"predictions: {predictions} (split {_split_of(predictions, 'predictions_')})" + (
        f"; not plotted: {', '.join(others)} (choose one with --predictions)" if others else ""
    )


def _read_metrics(path: Path) -> dict:
    """The evaluation metrics JSON at ``path``, checked before any plot is written."""
    fix = "pass the evaluation_metrics_<split>.json that `voxelflex evaluate` wrote"
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read evaluation metrics ({exc}); {fix}") from None
    if not isinstance(metrics, dict):  # e.g. a training history (a list of epochs)
        raise InputError(f"{path} is not evaluation metrics (a {type(metrics).__name__}); {fix}")
    return metrics


def _same_predictions(
    metrics: dict, metrics_path: Path, predictions: Path, meta, *, explicit: bool
) -> dict | None:
    """``metrics`` when they were computed on the predictions' split in their RMSF unit;
    otherwise refused (given with --metrics) or dropped with a warning (found in the run
    folder). Baselines in Å drawn beside a model in nm would look ten times worse than they are.
    """
    split = metrics.get("split")
    if split is None and metrics_path.stem.startswith("evaluation_metrics_"):
        split = _split_of(metrics_path, "evaluation_metrics_")
    unit = metrics.get("rmsf_unit")
    if split is None:
        log.warning(
            "%s does not say which split it was computed on; its baselines are drawn beside the "
            "%s split's predictions %s as they are",
            metrics_path,
            meta.split,
            predictions,
        )
    if split not in (None, meta.split):
        what = (
            f"{metrics_path} holds the metrics of the {split} split, but {predictions} holds "
            f"predictions of the {meta.split} split"
        )
        harm = "its baselines would be drawn beside another split's model"
    elif unit is not None and unit != meta.rmsf_unit:
        what = (
            f"{metrics_path} holds errors in RMSF {unit}, but {predictions} holds RMSF in "
            f"{meta.rmsf_unit}"
        )
        harm = f"its baselines would be drawn in {unit} on an axis in {meta.rmsf_unit}"
    else:
        return metrics
    if explicit:
        raise InputError(
            f"{what}: {harm}; pass the metrics of the same predictions (`voxelflex evaluate -p "
            f"{predictions}` writes evaluation_metrics_{meta.split}.json), or leave out --metrics"
        )
    log.warning("%s: its baselines and bins are not used", what)
    return None


def _prediction_plots(
    table,
    meta,
    predictions: str | Path,
    out_dir: Path,
    *,
    metrics: dict | None,
    fmt: ImageFormat,
    domain: str | None,
    residues: Sequence[str] | None,
    profile_temperatures: Sequence[float] | None,
    accessibility_bins: Sequence[float] | None,
) -> list[Path]:
    unit = meta.rmsf_unit
    baselines = metrics
    if meta.target_norm != "global":
        # per-domain relative scores: compared with the targets z-scored the same way, never
        # with RMSF in nm or Å
        log.info(
            "%s holds per-domain relative scores (a checkpoint trained with "
            "train.target_norm=%s): its targets are z-scored within each domain as training "
            "did, every axis and error is in per-domain z units%s",
            predictions,
            meta.target_norm,
            "; evaluate's baselines (RMSF errors) are not drawn" if metrics else "",
        )
        table = domain_zscored_targets(table)
        unit = RELATIVE_UNIT
        baselines = None
    paths: list[Path] = []
    has_target = bool(scored_mask(table).any())
    unscored = unscored_predictions(table)
    if unscored:
        log.warning(
            "%s: %d rows have a target but no finite prediction; they are left out of every "
            "accuracy plot (n counts the scored rows only)",
            predictions,
            unscored,
        )
    if has_target:
        paths += plot_pred_vs_true(table, out_dir, rmsf_unit=unit, fmt=fmt)
        paths += plot_error_distribution(table, out_dir, rmsf_unit=unit, fmt=fmt)
        paths += plot_per_temperature_metrics(
            table, out_dir, rmsf_unit=unit, metrics=baselines, fmt=fmt
        )
        paths += plot_residue_type_errors(table, out_dir, rmsf_unit=unit, fmt=fmt)
        if secondary_structure_column(table) is not None:
            paths += _optional(plot_secondary_structure_errors, table, out_dir, unit, fmt)
        if "relative_accessibility" in table.column_names:
            stratum = (metrics or {}).get("stratified", {}).get("relative_accessibility", {})
            bins = accessibility_bins or stratum.get("bins") or ACCESSIBILITY_BINS
            paths += _optional(plot_accessibility_errors, table, out_dir, unit, fmt, bins=bins)
    else:
        log.info("%s: no row with a target and a prediction: accuracy plots skipped", predictions)
    domain = domain or choose_domain(table)
    paths += plot_rmsf_profile(
        table,
        out_dir,
        rmsf_unit=unit,
        domain=domain,
        temperatures=profile_temperatures,
        fmt=fmt,
    )
    paths += plot_temperature_response(
        table,
        out_dir,
        rmsf_unit=unit,
        domain=domain,
        residues=residues,
        training_range=meta.training_temperature_range,
        fmt=fmt,
    )
    return paths


def domain_zscored_targets(table: pa.Table) -> pa.Table:
    """``table`` with ``target_rmsf`` z-scored within each domain (population deviation, over
    the domain's rows with a target, all temperatures together), as ``train.target_norm:
    domain`` z-scores the targets a model learns (:func:`voxelflex.sources.table.zscore_segments`;
    a domain with constant targets gets zeros)."""
    y = pc.fill_null(table["target_rmsf"], np.nan).to_numpy(zero_copy_only=False)
    y = y.astype(np.float64)
    has = np.isfinite(y)
    _, codes = np.unique(strings(table["domain"])[has], return_inverse=True)
    order = np.argsort(codes, kind="stable")
    offsets = np.r_[0, np.cumsum(np.bincount(codes))].astype(np.int64)
    z = np.empty(int(has.sum()), dtype=np.float32)
    z[order] = zscore_segments(y[has][order], offsets)
    out = np.full(len(y), np.nan, dtype=np.float32)
    out[has] = z
    column = table.schema.get_field_index("target_rmsf")
    return table.set_column(column, "target_rmsf", pa.array(out, pa.float32()))


def _optional(plot_fn, table, out_dir, unit, fmt, **kwargs) -> list[Path]:
    """A stratified plot whose column may hold no usable value: skipped with a log line."""
    try:
        return plot_fn(table, out_dir, rmsf_unit=unit, fmt=fmt, **kwargs)
    except InputError as exc:
        log.info("%s skipped: %s", plot_fn.__name__.removeprefix("plot_"), exc)
        return []


def plot_training_run(run_dir: str | Path, *, fmt: ImageFormat | str = "png") -> list[Path]:
    """The plots ``voxelflex train`` draws at the end: the training curves of ``run_dir``, into
    ``<run_dir>/visualizations`` (replacing the ones it drew before, e.g. on ``--resume``).

    Returns
    -------
    list of Path
        The image and its data CSV.
    """
    run_dir = Path(run_dir)
    out_dir = run_dir / "visualizations"
    with command_log(out_dir, "plot (end of train)"):
        paths = plot_training_curves(run_dir / HISTORY_FILE, out_dir, fmt=fmt)
        for p in paths:
            log.info("wrote %s", p)
    return paths
