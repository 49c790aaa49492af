"""Process-group plumbing for ``torchrun``: which rank we are, which device, and collectives.

``torchrun --nproc_per_node=N -m voxelflex train ...`` sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; a plain run has none and everything below degrades to single-process no-ops.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from voxelflex.errors import ConfigError, VoxelflexError

__all__ = ["DistContext", "resolve_device"]

T = TypeVar("T")


def resolve_device(choice: str, local_rank: int = 0) -> torch.device:
    """``auto`` → CUDA if available, else CPU; ``cuda`` without a GPU is an error."""
    if choice == "cpu":
        return torch.device("cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "config key 'train.device': got 'cuda', but no CUDA device is available; "
            "use --device cpu or auto"
        )
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


@dataclass
class DistContext:
    """This process's place in the job.

    Attributes
    ----------
    rank, world_size, local_rank : int
    device : torch.device
        ``cuda:LOCAL_RANK`` or ``cpu``.
    owns_group : bool
        True when :meth:`setup` created the process group (and :meth:`close` destroys it).
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool = False

    @classmethod
    def setup(cls, device_choice: str) -> DistContext:
        """Read torchrun's environment; join the process group (gloo on CPU, nccl on CUDA)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        device = resolve_device(device_choice, local_rank)
        owns = False
        if world > 1 and not dist.is_initialized():
            if device.type == "cuda":
                torch.cuda.set_device(device)
            dist.init_process_group(
                "nccl" if device.type == "cuda" else "gloo",
                rank=rank,
                world_size=world,
                timeout=datetime.timedelta(minutes=30),
            )
            owns = True
        return cls(rank, world, local_rank, device, owns)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_reduce(self, value: torch.Tensor, op: str = "sum") -> torch.Tensor:
        """All-reduce ``op`` (``sum`` or ``min``) across ranks: a copy; the input is untouched."""
        if not self.enabled:
            return value
        out = value.detach().clone()
        dist.all_reduce(out, op={"sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN}[op])
        return out

    def gather_to_main(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` on rank 0 (in rank order); None elsewhere."""
        if not self.enabled:
            return [obj]
        out = [None] * self.world_size if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def on_main(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on rank 0 only; its result, or the VoxelflexError it raised, on every rank.

        The other ranks wait in the broadcast; an error reaches them instead of leaving them
        waiting for a collective rank 0 never joins.
        """
        result: Any = None
        if self.is_main:
            try:
                result = fn()
            except VoxelflexError as exc:
                result = exc
        result = self.broadcast(result)
        if isinstance(result, VoxelflexError):
            raise result
        return result

    def require_same(self, what: str, digest: Callable[[], str], fix: str) -> None:
        """Refuse, on every rank, a ``digest()`` of ``what`` that differs from rank 0's; a
        single process computes nothing.

        Raises
        ------
        ConfigError
            Naming ``what``, how many ranks differ and ``fix``.
        """
        if not self.enabled:
            return
        value = digest()
        main = self.broadcast(value)
        flag = torch.tensor([int(value != main)], device=self.device)
        differing = int(self.all_reduce(flag).item())
        if differing:
            raise ConfigError(
                f"{differing} of {self.world_size} ranks have another {what} than rank 0 "
                f"(this rank, {self.rank}: {value}; rank 0: {main}); {fix}"
            )

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
