"""Training curves from ``training_history.json``: losses and Pearson r per epoch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
from matplotlib.ticker import MaxNLocator

from voxelflex.analysis.formats import ImageFormat
from voxelflex.analysis.plots.common import new_figure, save
from voxelflex.errors import InputError

__all__ = ["history_table", "plot_training_curves"]


def history_table(history: str | Path | dict | list) -> pa.Table:
    """Epoch-wise numeric metrics as a table with an ``epoch`` column.

    Accepts a path to the JSON or its content: a list of per-epoch dicts, a dict of per-epoch
    lists, or either under an ``"epochs"`` or ``"history"`` key. Non-numeric entries are dropped.
    """
    where = str(history) if isinstance(history, str | Path) else "training history"
    if isinstance(history, str | Path):
        try:
            history = json.loads(Path(history).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"{where}: cannot read training history ({exc})") from None
    if isinstance(history, dict):
        history = history.get("epochs", history.get("history", history))
    if isinstance(history, list):
        keys = sorted({k for row in history if isinstance(row, dict) for k in row})
        history = {k: [row.get(k) for row in history] for k in keys}
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


def plot_training_curves(
    history: str | Path | dict | list, out_dir: Path, *, fmt: ImageFormat | str = "png"
) -> list[Path]:
    """Loss (left) and Pearson r (right) per epoch, one line per recorded series.

    Series are recognised by name: those containing ``loss`` go left, ``pearson`` right.
    """
    table = history_table(history)
    epoch = table["epoch"].to_numpy()
    names = [c for c in table.column_names if c != "epoch"]
    losses = [c for c in names if "loss" in c.lower()]
    pearsons = [c for c in names if "pearson" in c.lower()]
    fig = new_figure(10, 4)
    ax_loss, ax_r = fig.subplots(1, 2)
    for ax, series, ylabel in (
        (ax_loss, losses, "loss (training objective)"),
        (ax_r, pearsons, "Pearson r"),
    ):
        for name in series:
            ax.plot(epoch, table[name].to_numpy(), marker="o", ms=3, label=name.replace("_", " "))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if series:
            ax.legend(fontsize="small")
        else:
            ax.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes)
    ax_loss.set_title("Loss per epoch")
    ax_r.set_title("Pearson r per epoch")
    return save(fig, table, out_dir, "training_curves", fmt)
