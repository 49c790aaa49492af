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

    Any improvement makes a new best (``best.pt``); early stopping counts epochs since the value
    last improved by more than ``min_delta`` (on the value at that epoch, as Keras does).

    Attributes
    ----------
    monitor : str
        ``val_<metric>``, a key of the validation metrics after ``val_``.
    patience : int
        Epochs without improvement before :attr:`should_stop`; 0 never stops.
    min_delta : float
        Smallest change of the monitored value that resets the early-stopping count (>= 0).
    best : float or None
    bad_epochs : int
        Epochs since the last improvement by more than ``min_delta``.
    anchor : float or None
        The value of that improvement.
    """

    monitor: str
    patience: int
    min_delta: float = 0.0
    best: float | None = None
    bad_epochs: int = 0
    anchor: float | None = None

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
        improved = self._better(value, self.best, 0.0)
        if improved and math.isfinite(value):
            self.best = value
        # A NaN is never progress: epochs of NaN count towards patience even before any
        # finite value (it still counts as improved while there is no best, so best.pt exists).
        significant = math.isfinite(value) and self._better(value, self.anchor, self.min_delta)
        if significant:
            self.anchor = value
        self.bad_epochs = 0 if significant else self.bad_epochs + 1
        return improved

    def _better(self, value: float, reference: float | None, delta: float) -> bool:
        if not math.isfinite(value):
            return reference is None
        if reference is None:
            return True
        return value > reference + delta if self.mode == "max" else value < reference - delta

    @property
    def should_stop(self) -> bool:
        return bool(self.patience) and self.bad_epochs >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {
            "monitor": self.monitor,
            "best": self.best,
            "bad_epochs": self.bad_epochs,
            "anchor": self.anchor,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state["best"]
        self.bad_epochs = state["bad_epochs"]
        # Checkpoints from before min_delta: the anchor was the best value.
        self.anchor = state.get("anchor", self.best)
