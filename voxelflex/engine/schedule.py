"""Learning-rate schedules: cosine with warm-up (per step), step decay and reduce-on-plateau (per
epoch), or none.

:class:`LRSchedule` hides which kind is in use: the trainer calls :meth:`LRSchedule.after_step`
after every optimizer step and :meth:`LRSchedule.after_epoch` after validation. No schedule
takes the learning rate below ``min_lr``.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from voxelflex.config import choices
from voxelflex.errors import ConfigError

__all__ = ["SCHEDULES", "LRSchedule"]

SCHEDULES = choices("train.scheduler")
_FLOOR = 0.01  # cosine decays to 1 % of the peak LR, not to zero


class LRSchedule:
    """One of :data:`SCHEDULES` driving ``optimizer``'s learning rate.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
    kind : {"cosine", "step", "plateau", "none"}
    total_steps : int
        Optimizer steps in the whole run (cosine).
    warmup_steps : int
        Linear warm-up steps (cosine).
    mode : {"min", "max"}
        Direction of the monitored metric (plateau).
    patience : int
        Epochs without improvement before a reduction (plateau).
    factor : float
        LR multiplier at each reduction (step, plateau), in (0, 1).
    step_epochs : int
        Epochs between reductions (step).
    threshold : float
        Relative change of the monitored metric that counts as an improvement (plateau).
    min_lr : float
        Lower bound of the learning rate (every kind).
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        kind: str,
        *,
        total_steps: int,
        warmup_steps: int,
        mode: str,
        patience: int,
        factor: float = 0.5,
        step_epochs: int = 10,
        threshold: float = 1e-4,
        min_lr: float = 0.0,
    ) -> None:
        if kind not in SCHEDULES:
            raise ConfigError(f"unknown LR schedule {kind!r}; valid: {', '.join(SCHEDULES)}")
        self.kind = kind
        self._scheduler: Any = None
        peak = optimizer.param_groups[0]["lr"]
        floor = min(1.0, min_lr / peak)  # min_lr as a fraction of the peak LR
        if kind == "cosine":

            def cosine(step: int) -> float:
                if step < warmup_steps:
                    return max(floor, (step + 1) / warmup_steps)
                span = max(1, total_steps - warmup_steps)
                progress = min(1.0, (step - warmup_steps) / span)
                return max(floor, _FLOOR + (1 - _FLOOR) * 0.5 * (1 + math.cos(math.pi * progress)))

            self._scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine)
        elif kind == "step":

            def step_decay(epoch: int) -> float:
                return max(floor, factor ** (epoch // step_epochs))

            self._scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, step_decay)
        elif kind == "plateau":
            self._scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer,
                mode=mode,
                factor=factor,
                patience=patience,
                threshold=threshold,
                min_lr=min_lr,
            )

    def after_step(self) -> None:
        """Call after every optimizer step."""
        if self.kind == "cosine":
            self._scheduler.step()

    def after_epoch(self, monitored: float) -> None:
        """Call after each epoch's validation with the monitored metric's value."""
        if self.kind == "plateau":
            self._scheduler.step(monitored)
        elif self.kind == "step":
            self._scheduler.step()

    def state_dict(self) -> dict | None:
        return None if self._scheduler is None else self._scheduler.state_dict()

    def load_state_dict(self, state: dict | None) -> None:
        if self._scheduler is not None and state is not None:
            self._scheduler.load_state_dict(state)
