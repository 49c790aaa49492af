"""The first non-finite training loss: tracked on the device, checked across ranks."""

from __future__ import annotations

from pathlib import Path

import torch

from voxelflex.engine.distributed import DistContext
from voxelflex.errors import TrainingError

__all__ = ["LossWatch"]

_NONE = torch.iinfo(torch.int64).max  # no non-finite loss seen
_CUDA_CHECK_EVERY = 50  # steps between reads of the loss watch on CUDA


class LossWatch:
    """The first non-finite training loss and its batch, kept on the device.

    Reading it is a host-device sync, so on CUDA the trainer reads it every
    ``_CUDA_CHECK_EVERY`` steps, before every checkpoint and at each epoch end (a bad step may
    be followed by a few more before the run stops; nothing after it is saved); on the CPU,
    where reading is free, after every step.
    """

    def __init__(self, device: torch.device) -> None:
        self.every = 1 if device.type == "cpu" else _CUDA_CHECK_EVERY
        self.batch = torch.full((), _NONE, dtype=torch.int64, device=device)
        self.value = torch.zeros((), dtype=torch.float32, device=device)

    def record(self, loss: torch.Tensor, batch_number: int) -> None:
        """Remember ``loss`` and its 1-based batch number if it is the first non-finite one."""
        loss = loss.detach().float()
        first = ~torch.isfinite(loss) & (self.batch == _NONE)
        self.batch = torch.where(first, batch_number, self.batch)
        self.value = torch.where(first, loss, self.value)

    def check(self, dist: DistContext, *, epoch: int, latest: Path) -> None:
        """Raise :class:`TrainingError` if any rank saw a non-finite loss (collective).

        Parameters
        ----------
        epoch : int
            The current epoch, 0-based (the message says it 1-based).
        latest : Path
            The run's ``latest.pt``, kept as the last good checkpoint.
        """
        first = int(dist.all_reduce(self.batch, "min"))
        if first == _NONE:
            return
        local = int(self.batch) == first
        value = f"{float(self.value)}" if local else "on another rank"
        kept = (
            f"the last good checkpoint {latest} is kept"
            if latest.is_file()
            else "no checkpoint had been written yet"
        )
        raise TrainingError(
            f"non-finite training loss ({value}) at epoch {epoch + 1}, batch "
            f"{first}: stopped; {kept}. Lower train.lr, check the data for extreme "
            "targets, or use train.precision=fp32"
        )
