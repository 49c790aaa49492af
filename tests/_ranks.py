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


def predict_rank(rank: int, port: int, root: str, workers: list[int]) -> None:
    """``predict`` as rank ``rank`` of 2 started by torchrun, with ``workers[rank]`` DataLoader
    workers; writes what it got (the report's row count, or the error)."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE="2",
    )
    torch.set_num_threads(1)
    from voxelflex.analysis.predict import predict
    from voxelflex.config import load_config
    from voxelflex.errors import VoxelflexError

    sets = [f"loader.num_workers={workers[rank]}", "train.device=cpu", "predict.progress=false"]
    try:
        report = predict(
            Path(root, "ck.pt"),
            Path(root, "index.parquet"),
            split="train",
            temperatures=[300.0],
            out_path=Path(root, "two.parquet"),
            config=load_config(overrides=sets),
        )
        result = f"rows {report.n_rows}"
    except VoxelflexError as exc:
        result = str(exc)
    Path(root, f"rank{rank}.txt").write_text(result)
