"""A worker for two in-process gloo ranks (tests/test_train.py): each rank compares its value
with rank 0's through :meth:`DistContext.require_same` and writes what it got."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist

from voxelflex.engine.distributed import DistContext
from voxelflex.errors import ConfigError


def compare(rank: int, port: int, values: list[str], out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    ctx = DistContext(rank=rank, world_size=2, local_rank=rank, device=torch.device("cpu"))
    try:
        ctx.require_same("index", lambda: values[rank], "give every node the same index")
        result = "same"
    except ConfigError as exc:
        result = str(exc)
    finally:
        dist.destroy_process_group()
    Path(out, f"rank{rank}.txt").write_text(result)
