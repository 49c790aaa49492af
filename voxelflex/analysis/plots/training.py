"""Training curves from ``training_history.json``: loss, Pearson r and learning rate per epoch,
the best epoch marked."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
from matplotlib.ticker import MaxNLocator

from voxelflex.analysis.plots.common import new_figure, save, temperature_colors
from voxelflex.errors import InputError
from voxelflex.formats import ImageFormat
from voxelflex.quantities import temperature_key

__all__ = ["LOSS_LABEL", "best_epoch", "history_table", "plot_training_curves"]


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
        except (OSError, ValueError) as exc:  # ValueError: not JSON, or not text at all
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
LOSS_LABEL = "loss on standardised RMSF (dimensionless)"
"""Axis label of the loss panel for histories that do not describe their loss: every voxelflex
version trains on standardised targets, so the loss has no unit (1 = the training targets'
variance for MSE)."""


def _raw_rows(history: str | Path | dict | list) -> list[dict]:
    """The per-epoch dicts of a history in the trainer's layout (else an empty list)."""
    if isinstance(history, str | Path):
        try:
            history = json.loads(Path(history).read_text())
        except (OSError, json.JSONDecodeError):
            return []
    return [row for row in history if isinstance(row, dict)] if isinstance(history, list) else []


def best_epoch(table: pa.Table) -> tuple[int, str] | None:
    """The epoch ``best.pt`` holds, and what picked it.

    From the ``is_best`` flags the trainer writes; for older histories, the epoch of the highest
    validation Pearson r (the default monitor). None when neither is recorded.
    """
    epoch = table["epoch"].to_numpy()
    if "is_best" in table.column_names:
        flags = np.nan_to_num(table["is_best"].to_numpy()) > 0
        if flags.any():
            return int(epoch[np.flatnonzero(flags)[-1]]), "monitor"
    if "val_pearson" in table.column_names:
        r = table["val_pearson"].to_numpy()
        if np.isfinite(r).any():
            return int(epoch[int(np.nanargmax(r))]), "highest val Pearson r"
    return None


def _pearson_label(name: str) -> str:
    """Legend label of a ``*pearson`` series: ``val_pearson`` is the r over all rows pooled,
    ``val_chain_pearson`` the trainer's median over (domain, chain) of each chain's r."""
    lowered = name.lower()
    if lowered.endswith("chain_pearson"):
        split, what = name[: -len("chain_pearson")], "median per chain"
    else:
        split, what = name[: -len("pearson")], "pooled"
    return f"{split.rstrip('_').replace('_', ' ')} r ({what})".strip()


def plot_training_curves(
    history: str | Path | dict | list, out_dir: Path, *, fmt: ImageFormat | str = "png"
) -> list[Path]:
    """Loss, pooled Pearson r, validation Pearson r per temperature and the learning rate per
    epoch, with the best epoch (the one in ``best.pt``) marked on every panel.

    Series are recognised by name: ``*loss``, ``*pearson`` (``*chain_pearson``: the median r
    per chain, labelled so beside the pooled r), ``val_pearson_per_temperature_*``
    and ``lr`` (the layout of :mod:`voxelflex.engine.trainer`'s history); the loss axis says
    what the loss measures (the history's ``loss_function``).
    """
    table = history_table(history)
    rows = _raw_rows(history)
    epoch = table["epoch"].to_numpy()
    names = [c for c in table.column_names if c != "epoch"]
    losses = [c for c in names if c.lower().endswith("loss")]
    pearsons = [c for c in names if c.lower().endswith("pearson")]
    per_t = sorted(
        (c for c in names if c.startswith(PER_T_PREFIX)),
        key=lambda c: float(c.removeprefix(PER_T_PREFIX)),
    )
    loss_label = next((r["loss_function"] for r in rows if "loss_function" in r), LOSS_LABEL)
    monitor = next((r["monitor"] for r in rows if "monitor" in r), None)
    temps = np.array([float(c.removeprefix(PER_T_PREFIX)) for c in per_t])
    panels = [
        (losses, f"loss: {loss_label}", "Loss per epoch", None),
        (pearsons, "Pearson r", "Pearson r per epoch", None),
        (per_t, "Pearson r", "Validation Pearson r per temperature", temperature_colors(temps)),
        (["lr"] if "lr" in names else [], "learning rate (log scale)", "Learning rate", None),
    ]
    best = best_epoch(table)
    fig = new_figure(11, 8)
    axes = np.atleast_1d(fig.subplots(2, 2)).ravel()
    for ax, (series, ylabel, title, colours) in zip(axes, panels, strict=True):
        for i, name in enumerate(series):
            label = name.replace("_", " ")
            if series is pearsons:
                label = _pearson_label(name)
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
        if best is not None and series:
            why = monitor if best[1] == "monitor" and monitor else best[1]
            ax.axvline(best[0], color="0.35", ls=":", lw=1.2, label=f"best epoch {best[0]} ({why})")
        if series == ["lr"] and np.all(table["lr"].to_numpy() > 0):
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel, fontsize="small" if len(ylabel) > 30 else None)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if series:
            ax.legend(fontsize="small")
        else:
            ax.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes)
    return save(fig, table, out_dir, "training_curves", fmt)
