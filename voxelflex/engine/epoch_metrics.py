"""Per-epoch collection of predictions and their metrics (via :mod:`voxelflex.metrics`).

Each rank collects the rows it served; :func:`reduce_metrics` gathers them on rank 0, checks that
every row of the split was served exactly once across ranks, and computes loss, Pearson,
Spearman, R², RMSE, MAE and Pearson per temperature.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from voxelflex.errors import TrainingError
from voxelflex.metrics import grouped_metrics, grouped_pearson, regression_metrics, summarize

__all__ = ["EpochAccumulator", "reduce_metrics"]


@dataclass
class EpochAccumulator:
    """Rows served so far this epoch on this rank.

    Row ids, targets and temperatures are taken from the host copy of each batch; predictions
    and loss sums stay on the model's device until :meth:`arrays`, so recording a training
    step costs no host-device synchronisation.
    """

    row_id: list[torch.Tensor] = field(default_factory=list)
    pred: list[torch.Tensor] = field(default_factory=list)
    served: list[torch.Tensor] = field(default_factory=list)
    target: list[torch.Tensor] = field(default_factory=list)
    temperature: list[torch.Tensor] = field(default_factory=list)
    loss_sum: torch.Tensor | float = 0.0
    weight_sum: float = 0.0

    def add(
        self, batch, pred: torch.Tensor, loss_sum: torch.Tensor | float, weight_sum: float
    ) -> None:
        """Record one batch.

        Parameters
        ----------
        batch : Batch
            Best on the host (its copy before moving to the device): served rows
            (``row_id >= 0``) are picked there.
        pred : torch.Tensor, float, shape (B,)
            RMSF predictions for every row of the batch, on any device.
        loss_sum : torch.Tensor or float
            Weighted loss summed over the batch (standardised target units), on any device.
        weight_sum : float
            Sum of the batch's weights.
        """
        served = (batch.row_id >= 0).cpu()
        self.row_id.append(batch.row_id.cpu()[served])
        self.pred.append(pred.detach())
        self.served.append(served)
        self.target.append(batch.target.cpu()[served])
        self.temperature.append(batch.temperature.cpu()[served])
        self.loss_sum = self.loss_sum + (
            loss_sum.detach().double() if isinstance(loss_sum, torch.Tensor) else float(loss_sum)
        )
        self.weight_sum += float(weight_sum)

    def arrays(self) -> dict[str, Any]:
        """Concatenated numpy arrays of served rows and the sums (what ranks exchange)."""
        pred = torch.zeros(0)
        if self.pred:
            # After a mid-epoch resume the rows served before it are on the CPU, later ones on
            # the model's device: one copy each way, not one per batch.
            device = self.pred[-1].device
            pred = torch.cat([p.to(device) for p in self.pred]).float().cpu()
            pred = pred[torch.cat(self.served)]
        cat = {
            k: torch.cat(getattr(self, k)).numpy() if getattr(self, k) else np.zeros(0)
            for k in ("row_id", "target", "temperature")
        }
        return {
            **cat,
            "pred": pred.numpy(),
            "loss_sum": float(self.loss_sum),
            "weight_sum": self.weight_sum,
        }

    def state_dict(self) -> dict[str, Any]:
        """Tensors and floats only (stored in mid-epoch checkpoints)."""
        a = self.arrays()
        return {
            "row_id": torch.as_tensor(a["row_id"], dtype=torch.int64),
            "pred": torch.as_tensor(a["pred"], dtype=torch.float32),
            "target": torch.as_tensor(a["target"], dtype=torch.float32),
            "temperature": torch.as_tensor(a["temperature"], dtype=torch.float32),
            "loss_sum": a["loss_sum"],
            "weight_sum": a["weight_sum"],
        }

    @classmethod
    def merged(cls, parts: list[dict[str, Any]]) -> EpochAccumulator:
        """One accumulator holding several ranks' :meth:`arrays` / :meth:`state_dict`."""
        acc = cls()
        for p in parts:
            for k in ("row_id", "pred", "target", "temperature"):
                getattr(acc, k).append(torch.as_tensor(p[k]))
            acc.served.append(torch.ones(len(p["pred"]), dtype=torch.bool))
            acc.loss_sum += float(p["loss_sum"])
            acc.weight_sum += float(p["weight_sum"])
        return acc


def reduce_metrics(
    parts: list[dict[str, Any]],
    *,
    expected_rows: int,
    split: str,
    epoch: int,
    chain_of_row: np.ndarray | None = None,
) -> dict[str, Any]:
    """Metrics of one epoch from every rank's :meth:`EpochAccumulator.arrays`.

    Parameters
    ----------
    parts : list of dict
        Every rank's arrays.
    expected_rows : int
        Rows the split has (each must be served exactly once).
    split : str
    epoch : int
        1-based, for messages.
    chain_of_row : numpy.ndarray of int64, shape (N_index,), optional
        (domain, chain) code of every index row; adds ``chain_pearson`` (the median over
        chains of each chain's r, all its temperatures together).

    Raises
    ------
    TrainingError
        If a row was served twice or not at all (an epoch-plan bug; training on it would be
        silently biased).
    """
    row_id = np.concatenate([np.asarray(p["row_id"], dtype=np.int64) for p in parts])
    unique = np.unique(row_id)
    if len(unique) != len(row_id) or len(row_id) != expected_rows:
        raise TrainingError(
            f"epoch {epoch}: the {split} loader served {len(row_id)} rows "
            f"({len(row_id) - len(unique)} duplicates), expected each of {expected_rows} rows "
            "exactly once; the epoch plan is inconsistent across ranks"
        )
    order = np.argsort(row_id, kind="stable")  # rank-independent order: reproducible sums
    y = np.concatenate([np.asarray(p["target"]) for p in parts])[order]
    p_ = np.concatenate([np.asarray(p["pred"]) for p in parts])[order]
    t = np.concatenate([np.asarray(p["temperature"]) for p in parts])[order]
    weight_sum = sum(float(p["weight_sum"]) for p in parts)
    loss_sum = sum(float(p["loss_sum"]) for p in parts)
    out: dict[str, Any] = {"loss": loss_sum / weight_sum if weight_sum > 0 else float("nan")}
    out.update(regression_metrics(y, p_))
    per_t = grouped_metrics(y, p_, np.round(t, 2))
    out["pearson_per_temperature"] = {k: v["pearson"] for k, v in per_t.items()}
    if chain_of_row is not None:
        # Median over chains of each chain's r (all its temperatures): what a user who asks
        # "which residues of my protein move" sees, and what early stopping may watch.
        out["chain_pearson"] = summarize(grouped_pearson(y, p_, chain_of_row[row_id[order]])[1])[
            "median"
        ]
    return out
