"""The best value of the monitored validation metric, and when to stop early."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["BestTracker", "monitor_mode"]


def monitor_mode(monitor: str) -> str:
    """``"max"`` for correlations, ``"min"`` for losses and errors (``monitor`` = ``val_<m>``)."""
    return "max" if monitor in ("val_pearson", "val_spearman", "val_chain_pearson") else "min"


@dataclass
class BestTracker:
    """Tracks ``monitor`` over epochs: the best value and the epochs since it improved.

    Attributes
    ----------
    monitor : str
        ``val_<metric>``, a key of the validation metrics after ``val_``.
    patience : int
        Epochs without improvement before :attr:`should_stop`; 0 never stops.
    best : float or None
    bad_epochs : int
    """

    monitor: str
    patience: int
    best: float | None = None
    bad_epochs: int = 0

    @property
    def mode(self) -> str:
        return monitor_mode(self.monitor)

    def value(self, metrics: dict[str, Any]) -> float:
        """The monitored value in one epoch's validation metrics."""
        return metrics[self.monitor.removeprefix("val_")]

    def update(self, metrics: dict[str, Any]) -> bool:
        """Record one epoch; True when the monitored value improved (the first finite one does).

        A NaN value (e.g. a constant prediction's Pearson r) never improves on a finite best,
        and counts as an improvement only while there is no best yet.
        """
        value = self.value(metrics)
        if not math.isfinite(value):
            improved = self.best is None
        elif self.best is None:
            improved = True
        else:
            improved = value > self.best if self.mode == "max" else value < self.best
        if improved and math.isfinite(value):
            self.best = value
        self.bad_epochs = 0 if improved else self.bad_epochs + 1
        return improved

    @property
    def should_stop(self) -> bool:
        return bool(self.patience) and self.bad_epochs >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state["best"]
        self.bad_epochs = state["bad_epochs"]
