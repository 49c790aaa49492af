"""What a training run logs: the model at the start, each epoch's metrics at its end."""

from __future__ import annotations

import logging
import math
from typing import Any

import torch

from voxelflex.models import RMSFModel, parameter_counts

__all__ = ["DOMAIN_Z", "error_unit", "format_metric", "log_epoch", "log_model"]

log = logging.getLogger("voxelflex.engine.trainer")  # the trainer's lines, as users know them

# How the history's ``loss_function`` names per-domain z-scored targets
# (``train.target_norm: domain``): its errors are then z units, not the index's RMSF unit.
DOMAIN_Z = "per-domain z-scored"


def log_model(
    model: RMSFModel,
    *,
    device: torch.device,
    autocast: torch.dtype | None,
    world_size: int,
    train_rows: int,
    steps_per_epoch: int,
) -> None:
    """One line: architecture (with any hyperparameters over its preset), parameter counts,
    device, precision, ranks, rows and steps."""
    spec = model.spec
    counts = parameter_counts(model)
    log.info(
        "model %s, conditioning %s: %s parameters (trunk %s, head %s); device %s%s, "
        "%d rank(s); %d train rows, %d optimizer steps/epoch per rank",
        spec.describe(),  # the preset's name alone hid the overrides the counts come from
        spec.conditioning,
        f"{counts['total']:,}",
        f"{counts['trunk']:,}",
        f"{counts['head']:,}",
        device,
        f" ({autocast})" if autocast else " (fp32)",
        world_size,
        train_rows,
        steps_per_epoch,
    )


def format_metric(value: float | None, spec: str) -> str:
    """``value`` formatted, or ``n/a`` for an undefined metric (None in the history)."""
    return "n/a" if value is None or not math.isfinite(value) else format(value, spec)


def error_unit(entry: dict[str, Any]) -> str:
    """The unit of an epoch entry's ``rmse`` and ``mae``: the index's ``rmsf_unit``, or
    ``per-domain z`` for a model trained on per-domain z-scored targets, whose history scores
    those scores (its ``loss_function`` says so) and whose RMSE in the index's unit would be
    mislabelled."""
    return "per-domain z" if DOMAIN_Z in entry.get("loss_function", "") else entry["rmsf_unit"]


def log_epoch(entry: dict[str, Any], epochs: int) -> None:
    """One line per finished epoch: losses, correlations, RMSE (with its unit), per-temperature
    r, speed. ``entry`` is one item of the history (undefined metrics are None)."""
    tr, va, tm = entry["train"], entry["val"], entry["timing"]
    per_t = " ".join(
        f"{k}:{format_metric(v, '.3f')}" for k, v in va["pearson_per_temperature"].items()
    )
    log.info(
        "epoch %d/%d  train loss %s r %s | val loss %s r %s rmse %s %s | "
        "val r per T %s | %.1fs, %.0f samples/s, data wait %.0f%%",
        entry["epoch"],
        epochs,
        format_metric(tr["loss"], ".4f"),
        format_metric(tr["pearson"], ".3f"),
        format_metric(va["loss"], ".4f"),
        format_metric(va["pearson"], ".3f"),
        format_metric(va["rmse"], ".4f"),
        error_unit(entry),
        per_t,
        tm["seconds"],
        tm["samples_per_s"],
        100 * tm["data_wait_fraction"],
    )
