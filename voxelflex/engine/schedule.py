"""Learning-rate schedules: cosine with warm-up (per step), reduce-on-plateau (per epoch), none.

:class:`LRSchedule` hides which kind is in use: the trainer calls :meth:`LRSchedule.after_step`
after every optimizer step and :meth:`LRSchedule.after_epoch` after validation.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from voxelflex.errors import ConfigError

__all__ = ["SCHEDULES", "LRSchedule"]

SCHEDULES = ("cosine", "plateau", "none")
_FLOOR = 0.01  # cosine decays to 1 % of the peak LR, not to zero


class LRSchedule:
    """One of :data:`SCHEDULES` driving ``optimizer``'s learning rate.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
    kind : {"cosine", "plateau", "none"}
    total_steps : int
        Optimizer steps in the whole run (cosine).
    warmup_steps : int
        Linear warm-up steps (cosine).
    mode : {"min", "max"}
        Direction of the monitored metric (plateau).
    patience : int
        Epochs without improvement before halving the LR (plateau).
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
    ) -> None:
        if kind not in SCHEDULES:
            raise ConfigError(f"unknown LR schedule {kind!r}; valid: {', '.join(SCHEDULES)}")
        self.kind = kind
        self._scheduler: Any = None
        if kind == "cosine":

            def factor(step: int) -> float:
                if step < warmup_steps:
                    return (step + 1) / warmup_steps
                span = max(1, total_steps - warmup_steps)
                progress = min(1.0, (step - warmup_steps) / span)
                return _FLOOR + (1 - _FLOOR) * 0.5 * (1 + math.cos(math.pi * progress))

            self._scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        elif kind == "plateau":
            self._scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode=mode, factor=0.5, patience=patience
            )

    def after_step(self) -> None:
        """Call after every optimizer step."""
        if self.kind == "cosine":
            self._scheduler.step()

    def after_epoch(self, monitored: float) -> None:
        """Call after each epoch's validation with the monitored metric's value."""
        if self.kind == "plateau":
            self._scheduler.step(monitored)

    def state_dict(self) -> dict | None:
        return None if self._scheduler is None else self._scheduler.state_dict()

    def load_state_dict(self, state: dict | None) -> None:
        if self._scheduler is not None and state is not None:
            self._scheduler.load_state_dict(state)
