"""What a training run logs: the model at the start, each epoch's metrics at its end."""

from __future__ import annotations

import logging
from typing import Any

import torch

from voxelflex.models import RMSFModel, parameter_counts

__all__ = ["log_epoch", "log_model"]

log = logging.getLogger("voxelflex.engine.trainer")  # the trainer's lines, as users know them


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


def log_epoch(entry: dict[str, Any], epochs: int) -> None:
    """One line per finished epoch: losses, correlations, per-temperature r, speed."""
    tr, va, tm = entry["train"], entry["val"], entry["timing"]
    per_t = " ".join(f"{k}:{v:.3f}" for k, v in va["pearson_per_temperature"].items())
    log.info(
        "epoch %d/%d  train loss %.4f r %.3f | val loss %.4f r %.3f rmse %.4f | "
        "val r per T %s | %.1fs, %.0f samples/s, data wait %.0f%%",
        entry["epoch"],
        epochs,
        tr["loss"],
        tr["pearson"],
        va["loss"],
        va["pearson"],
        va["rmse"],
        per_t,
        tm["seconds"],
        tm["samples_per_s"],
        100 * tm["data_wait_fraction"],
    )
