"""Accuracy plots from a predictions table (rows with a target only).

- ``pred_vs_true``: hexbin density of predicted against true RMSF, one panel per temperature.
- ``error_distribution``: histogram of prediction error (predicted − true) per temperature.
- ``per_temperature_metrics``: Pearson r and RMSE per temperature, model beside the baselines.
- ``residue_type_errors``: MAE and mean error (bias) per residue type.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from matplotlib.lines import Line2D

from voxelflex.analysis.plots.common import (
    new_figure,
    rmsf_name,
    save,
    temperature_colors,
    unit_label,
)
from voxelflex.errors import InputError
from voxelflex.formats import ImageFormat
from voxelflex.metrics import regression_metrics
from voxelflex.quantities import temperature_key

__all__ = [
    "plot_error_distribution",
    "plot_per_temperature_metrics",
    "plot_pred_vs_true",
    "plot_residue_type_errors",
    "scored_mask",
    "scored_rows",
    "unscored_predictions",
]

log = logging.getLogger(__name__)


def _finite(table: pa.Table, name: str) -> np.ndarray:
    values = pc.fill_null(table[name], np.nan).to_numpy(zero_copy_only=False)
    return np.isfinite(values.astype(np.float64))


def scored_mask(table: pa.Table) -> np.ndarray:
    """Rows that are scored: a finite target and a finite prediction (as ``evaluate`` scores)."""
    return _finite(table, "target_rmsf") & _finite(table, "predicted_rmsf")


def unscored_predictions(table: pa.Table) -> int:
    """Rows with a finite target but no finite prediction (left out of every accuracy plot)."""
    return int((_finite(table, "target_rmsf") & ~_finite(table, "predicted_rmsf")).sum())


def scored_rows(table: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray, pa.Table]:
    """``(target, predicted, temperature, rows)`` (float64) over the rows whose target and
    prediction are both finite; a row with a non-finite prediction (an edited or merged file)
    is left out, as ``evaluate`` leaves it out (see :func:`unscored_predictions`)."""
    keep = scored_mask(table)
    if not keep.any():
        raise InputError(
            "the predictions have no row with both a target_rmsf and a finite predicted_rmsf; "
            "accuracy plots need predictions for a split with targets"
        )
    rows = table.filter(pa.array(keep))
    return (
        pc.fill_null(rows["target_rmsf"], np.nan).to_numpy(zero_copy_only=False).astype(np.float64),
        pc.fill_null(rows["predicted_rmsf"], np.nan)
        .to_numpy(zero_copy_only=False)
        .astype(np.float64),
        rows["temperature"].to_numpy().astype(np.float64),
        rows,
    )


def _grid(n: int, max_cols: int = 3) -> tuple[int, int]:
    cols = min(n, max_cols)
    return math.ceil(n / cols), cols


def plot_pred_vs_true(
    table: pa.Table, out_dir: Path, *, rmsf_unit: str | None, fmt: ImageFormat | str = "png"
) -> list[Path]:
    """Hexbin density of predicted vs true RMSF per temperature, with y = x and r, n per panel.

    The data CSV holds each hexagon's centre and count per temperature.
    """
    y, p, t, _ = scored_rows(table)
    temps = np.unique(t)
    unit = unit_label(rmsf_unit)
    lo = float(min(y.min(), p.min()))
    hi = float(max(y.max(), p.max()))
    pad = 0.03 * (hi - lo if hi > lo else 1.0)
    lim = (lo - pad, hi + pad)
    nrows, ncols = _grid(len(temps))
    fig = new_figure(3.6 * ncols + 0.8, 3.4 * nrows)
    axes = np.atleast_1d(
        fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False)
    ).ravel()
    parts = []
    vmax = 1
    hexes = []
    for ax, temp in zip(axes, temps, strict=False):
        sel = t == temp
        hb = ax.hexbin(
            y[sel], p[sel], gridsize=30, extent=(*lim, *lim), mincnt=1, bins="log", cmap="viridis"
        )
        hexes.append(hb)
        counts = hb.get_array()
        vmax = max(vmax, int(counts.max()) if len(counts) else 1)
        centres = hb.get_offsets()
        parts.append(
            pa.table(
                {
                    "temperature": np.full(len(counts), temp, np.float32),
                    "true_rmsf_centre": centres[:, 0],
                    "predicted_rmsf_centre": centres[:, 1],
                    "count": np.asarray(counts, np.int64),
                }
            )
        )
        ax.plot(lim, lim, color="0.3", lw=1, ls="--", label="y = x")
        r = regression_metrics(y[sel], p[sel])["pearson"]
        ax.text(
            0.04,
            0.96,
            f"{temperature_key(temp)} K\nr = {r:.3f}\nn = {int(sel.sum())}",
            transform=ax.transAxes,
            va="top",
            ha="left",
            fontsize="small",
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"},
        )
        ax.set_xlim(lim)
        ax.set_ylim(lim)
        ax.set_aspect("equal")
    for hb in hexes:
        hb.set_clim(1, vmax)
    for ax in axes[len(temps) :]:
        ax.set_visible(False)
    for i, ax in enumerate(axes[: len(temps)]):
        if i + ncols >= len(temps):  # nothing drawn below this panel: it carries the x labels
            ax.tick_params(labelbottom=True)
            ax.set_xlabel(f"true {rmsf_name(rmsf_unit)} ({unit})")
        if ax.get_subplotspec().is_first_col():
            ax.set_ylabel(f"predicted {rmsf_name(rmsf_unit)} ({unit})")
    axes[0].legend(loc="lower right", fontsize="small")
    fig.colorbar(
        hexes[0], ax=list(axes[: len(temps)]), label="residues per hexagon (log scale)", shrink=0.7
    )
    fig.suptitle(f"Predicted vs true {rmsf_name(rmsf_unit)} per temperature")
    return save(fig, pa.concat_tables(parts), out_dir, "pred_vs_true", fmt)


def plot_error_distribution(
    table: pa.Table, out_dir: Path, *, rmsf_unit: str | None, fmt: ImageFormat | str = "png"
) -> list[Path]:
    """Histogram (step outlines) of predicted − true RMSF, one outline per temperature."""
    y, p, t, _ = scored_rows(table)
    err = p - y
    temps = np.unique(t)
    unit = unit_label(rmsf_unit)
    lim = float(np.percentile(np.abs(err), 99.5)) or 1.0
    # ~1.5·sqrt(rows) bins for the smallest temperature, so sparse sets do not look like noise
    n_bins = int(np.clip(1.5 * np.sqrt(min((t == k).sum() for k in temps)), 15, 60))
    edges = np.linspace(-lim, lim, n_bins + 1)
    centres = 0.5 * (edges[:-1] + edges[1:])
    fig = new_figure(7, 4.2)
    ax = fig.subplots()
    parts = []
    for temp, colour in zip(temps, temperature_colors(temps), strict=True):
        e = err[t == temp]
        counts, _ = np.histogram(np.clip(e, -lim, lim), bins=edges)
        density = counts / max(len(e), 1)
        ax.stairs(
            density,
            edges,
            color=colour,
            lw=1.5,
            label=f"{temperature_key(temp)} K (mean {e.mean():+.3f}, sd {e.std():.3f})",
        )
        parts.append(
            pa.table(
                {
                    "temperature": np.full(len(counts), temp, np.float32),
                    "bin_left": edges[:-1],
                    "bin_right": edges[1:],
                    "bin_centre": centres,
                    "count": counts,
                    "fraction": density,
                }
            )
        )
    ax.axvline(0, color="0.3", lw=1, ls="--")
    ax.set_xlabel(
        f"prediction error, predicted − true {rmsf_name(rmsf_unit)} ({unit}); tails clipped to "
        f"±{lim:.3g}"
    )
    ax.set_ylabel("fraction of rows per bin")
    ax.set_title("Error distribution per temperature")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", title="temperature (error mean, sd)", title_fontsize="small")
    return save(fig, pa.concat_tables(parts), out_dir, "error_distribution", fmt)


_BASELINE_LABELS = {
    "residue_type_temperature_mean": "baseline: residue type × T mean",
    "temperature_fit": "baseline: temperature-only fit",
}


def plot_per_temperature_metrics(
    table: pa.Table,
    out_dir: Path,
    *,
    rmsf_unit: str | None,
    metrics: dict | None = None,
    fmt: ImageFormat | str = "png",
) -> list[Path]:
    """Pearson r and RMSE against temperature.

    Baselines are added from ``metrics`` (the JSON of :func:`~voxelflex.analysis.evaluate`).
    """
    y, p, t, _ = scored_rows(table)
    temps = np.unique(t)
    series = {"model": [regression_metrics(y[t == k], p[t == k]) for k in temps]}
    baselines = (metrics or {}).get("baselines", {})
    for name in _BASELINE_LABELS:
        if name in baselines:
            per_t = baselines[name]["per_temperature"]
            series[name] = [per_t.get(temperature_key(k), {}) for k in temps]
            other = [
                f"{temperature_key(k)} K: {b.get('n')} rows, the model {m['n']}"
                for k, b, m in zip(temps, series[name], series["model"], strict=True)
                if b.get("n") is not None and b["n"] != m["n"]
            ]
            if other:  # the same split, but other predictions (other domains or temperatures)
                log.warning(
                    "baseline %s was scored on other rows than these predictions (%s); compare "
                    "with care, or evaluate these predictions",
                    name,
                    "; ".join(other[:3]),
                )
    unit = unit_label(rmsf_unit)
    fig = new_figure(10, 4)
    ax_r, ax_e = fig.subplots(1, 2)
    rows = []
    styles = {
        "model": {"color": "C0", "lw": 2.2, "marker": "o"},
        "residue_type_temperature_mean": {"color": "C1", "ls": "--", "marker": "s"},
        "temperature_fit": {"color": "C2", "ls": ":", "marker": "^"},
    }
    undefined = []
    for name, values in series.items():
        r = [v.get("pearson") for v in values]
        e = [v.get("rmse") for v in values]
        r = np.array([np.nan if x is None else x for x in r], dtype=np.float64)
        e = np.array([np.nan if x is None else x for x in e], dtype=np.float64)
        label = _BASELINE_LABELS.get(name, name)
        if np.isfinite(r).any():
            ax_r.plot(temps, r, label=label, **styles[name])
        else:  # a legend entry without points would look like a plotting bug
            undefined.append(label)
        ax_e.plot(temps, e, label=label, **styles[name])
        rows.append(
            pa.table(
                {
                    "series": [name] * len(temps),
                    "temperature": temps,
                    "n": [v.get("n") for v in values],
                    "pearson": r,
                    "rmse": e,
                }
            )
        )
    ax_r.set_ylabel("Pearson r")
    ax_r.set_title("Pearson r per temperature")
    ax_e.set_ylabel(f"RMSE ({unit})")
    ax_e.set_title("RMSE per temperature")
    for ax in (ax_r, ax_e):
        ax.set_xlabel("temperature (K)")
        ax.set_xticks(temps if len(temps) <= 8 else ax.get_xticks())
        ax.grid(alpha=0.3)
    handles, labels = ax_r.get_legend_handles_labels()
    for label in undefined:  # listed with the reason instead of as an empty series
        handles.append(Line2D([], [], ls="none"))
        labels.append(f"{label}:\nno r within a temperature\n(one value per temperature)")
    ax_r.legend(handles, labels, fontsize="small")
    ax_e.legend(fontsize="small")
    return save(fig, pa.concat_tables(rows), out_dir, "per_temperature_metrics", fmt)


def plot_residue_type_errors(
    table: pa.Table, out_dir: Path, *, rmsf_unit: str | None, fmt: ImageFormat | str = "png"
) -> list[Path]:
    """MAE (bars) and mean error (markers) per residue type, sorted by MAE, counts on the axis."""
    y, p, _, rows = scored_rows(table)
    names, inv = np.unique(np.asarray(rows["resname"].to_pylist(), dtype=str), return_inverse=True)
    err = p - y
    n = np.bincount(inv, minlength=len(names))
    mae = np.bincount(inv, np.abs(err), len(names)) / n
    bias = np.bincount(inv, err, len(names)) / n
    rmse = np.sqrt(np.bincount(inv, err * err, len(names)) / n)
    order = np.argsort(-mae)
    unit = unit_label(rmsf_unit)
    fig = new_figure(max(7, 0.42 * len(names) + 2), 4.5)
    ax = fig.subplots()
    x = np.arange(len(names))
    ax.bar(x, mae[order], color="C0", alpha=0.8, label="MAE")
    ax.plot(x, bias[order], "o", color="C3", label="mean error (predicted − true)")
    ax.axhline(0, color="0.3", lw=0.8)
    ax.set_xticks(
        x, [f"{nm}\n{c}" for nm, c in zip(names[order], n[order], strict=True)], fontsize="x-small"
    )
    ax.set_xlabel("residue type (row count below)")
    ax.set_ylabel(f"error ({unit})")
    ax.set_title("Errors per residue type")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize="small")
    data = pa.table(
        {
            "resname": names[order],
            "n": n[order],
            "mae": mae[order],
            "mean_error": bias[order],
            "rmse": rmse[order],
        }
    )
    return save(fig, data, out_dir, "residue_type_errors", fmt)
