"""Training curves from ``training_history.json``: losses and Pearson r per epoch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
from matplotlib.ticker import MaxNLocator

from voxelflex.analysis.plots.common import new_figure, save, temperature_colors
from voxelflex.analysis.temperatures import temperature_key
from voxelflex.errors import InputError
from voxelflex.formats import ImageFormat

__all__ = ["history_table", "plot_training_curves"]


def _flatten(row: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "_"))
        else:
            out[name] = value
    return out


def history_table(history: str | Path | dict | list) -> pa.Table:
    """Epoch-wise numeric metrics as a table with an ``epoch`` column.

    Accepts a path to the JSON or its content: a list of per-epoch dicts (nested dicts are
    flattened: ``{"val": {"loss": x}}`` becomes ``val_loss``), a dict of per-epoch lists, or
    either under an ``"epochs"`` or ``"history"`` key. Non-numeric entries are dropped.
    """
    where = str(history) if isinstance(history, str | Path) else "training history"
    if isinstance(history, str | Path):
        try:
            history = json.loads(Path(history).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(
                f"{where}: cannot read training history ({exc}); pass the "
                "training_history.json that `voxelflex train` wrote"
            ) from None
    if isinstance(history, dict):
        history = history.get("epochs", history.get("history", history))
    if isinstance(history, list):
        rows = [_flatten(row) for row in history if isinstance(row, dict)]
        keys = list(dict.fromkeys(k for row in rows for k in row))
        history = {k: [row.get(k) for row in rows] for k in keys}
    if not isinstance(history, dict) or not history:
        raise InputError(f"{where}: expected per-epoch metrics (list of dicts or dict of lists)")
    cols = {}
    for key, values in history.items():
        if not isinstance(values, list):
            continue
        try:
            cols[key] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        except (TypeError, ValueError):
            continue
    if not cols:
        raise InputError(f"{where}: no numeric per-epoch metrics found")
    n = max(len(v) for v in cols.values())
    cols = {k: np.pad(v, (0, n - len(v)), constant_values=np.nan) for k, v in cols.items()}
    if "epoch" not in cols:
        cols = {"epoch": np.arange(1, n + 1, dtype=np.float64), **cols}
    return pa.table(cols)


PER_T_PREFIX = "val_pearson_per_temperature_"


def plot_training_curves(
    history: str | Path | dict | list, out_dir: Path, *, fmt: ImageFormat | str = "png"
) -> list[Path]:
    """Loss and pooled Pearson r per epoch, plus validation Pearson r per temperature.

    Series are recognised by name: ``*loss``, ``*pearson`` and ``val_pearson_per_temperature_*``
    (the layout of :mod:`voxelflex.engine.trainer`'s history).
    """
    table = history_table(history)
    epoch = table["epoch"].to_numpy()
    names = [c for c in table.column_names if c != "epoch"]
    losses = [c for c in names if c.lower().endswith("loss")]
    pearsons = [c for c in names if c.lower().endswith("pearson")]
    per_t = sorted(
        (c for c in names if c.startswith(PER_T_PREFIX)),
        key=lambda c: float(c.removeprefix(PER_T_PREFIX)),
    )
    panels = [
        (losses, "loss (training objective)", "Loss per epoch", None),
        (pearsons, "Pearson r", "Pearson r per epoch (pooled)", None),
    ]
    if per_t:
        temps = np.array([float(c.removeprefix(PER_T_PREFIX)) for c in per_t])
        panels.append(
            (per_t, "Pearson r", "Validation Pearson r per temperature", temperature_colors(temps))
        )
    fig = new_figure(5 * len(panels), 4)
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (series, ylabel, title, colours) in zip(axes, panels, strict=True):
        for i, name in enumerate(series):
            label = name.replace("_", " ")
            if colours is not None:
                label = f"{temperature_key(float(name.removeprefix(PER_T_PREFIX)))} K"
            ax.plot(
                epoch,
                table[name].to_numpy(),
                marker="o",
                ms=3,
                label=label,
                color=None if colours is None else colours[i],
            )
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if series:
            ax.legend(fontsize="small")
        else:
            ax.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes)
    return save(fig, table, out_dir, "training_curves", fmt)
