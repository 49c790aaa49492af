"""Learning-rate schedules: cosine with warm-up (per step) or reduce-on-plateau (per epoch)."""

from __future__ import annotations

import math

import torch

__all__ = ["make_scheduler"]

_FLOOR = 0.01  # cosine decays to 1 % of the peak LR, not to zero


def make_scheduler(
    optimizer: torch.optim.Optimizer,
    kind: str,
    *,
    total_steps: int,
    warmup_steps: int,
    mode: str,
    patience: int,
):
    """The scheduler for ``kind`` (``cosine``, ``plateau`` or ``none``), or None.

    Parameters
    ----------
    total_steps : int
        Optimizer steps in the whole run (cosine).
    warmup_steps : int
        Linear warm-up steps (cosine).
    mode : {"min", "max"}
        Direction of the monitored metric (plateau).
    patience : int
        Epochs without improvement before halving the LR (plateau).
    """
    if kind == "cosine":

        def factor(step: int) -> float:
            if step < warmup_steps:
                return (step + 1) / warmup_steps
            span = max(1, total_steps - warmup_steps)
            progress = min(1.0, (step - warmup_steps) / span)
            return _FLOOR + (1 - _FLOOR) * 0.5 * (1 + math.cos(math.pi * progress))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    if kind == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=mode, factor=0.5, patience=patience
        )
    return None
