"""Distributed prediction: each rank writes its part beside the output, rank 0 merges them.

Under ``torchrun ... -m voxelflex predict`` every rank predicts its share of the requested
domains (the sources' plan deals them to ranks) and writes ``row_id``, temperature, prediction
and the residues it could not read to ``.<output name>.parts/part-<run>-<rank>-of-<ranks>.npz``
beside the output (so the output folder must be one every rank sees, as for training runs;
``<run>`` is a token rank 0 draws for the run); after a barrier rank 0 reads every part, and the
caller writes the one output file from them in index order. The parts are deleted once merged.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import numpy as np

from voxelflex.atomic import atomic_path
from voxelflex.engine.distributed import DistContext
from voxelflex.errors import InputError

__all__ = ["Predictions", "merge_parts", "parts_folder"]

# row_id int64 (N,), temperature float32 (N,) in K, predicted float32 (N,), and the residues
# that could not be read: first row_id -> reason.
Predictions = tuple[np.ndarray, np.ndarray, np.ndarray, dict[int, str]]


def parts_folder(out: Path) -> Path:
    """``<folder>/.<name>.parts`` for output ``<folder>/<name>``."""
    return out.with_name(f".{out.name}.parts")


def _part_path(out: Path, run: str, rank: int, world_size: int) -> Path:
    return parts_folder(out) / f"part-{run}-{rank:05d}-of-{world_size:05d}.npz"


def _write_part(path: Path, part: Predictions) -> None:
    row_id, temperature, predicted, skipped = part
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh,
            row_id=row_id,
            temperature=temperature,
            predicted=predicted,
            skipped=np.array(json.dumps({str(k): v for k, v in skipped.items()})),
        )


def _read_part(path: Path) -> Predictions:
    if not path.is_file():
        raise InputError(
            f"{path}: another rank's predictions are not here; under torchrun every rank writes "
            "its part beside --output, so the output folder must be on a file system all ranks "
            "(all nodes) see"
        )
    with np.load(path, allow_pickle=False) as data:
        skipped = {int(k): v for k, v in json.loads(str(data["skipped"])).items()}
        return data["row_id"], data["temperature"], data["predicted"], skipped


def merge_parts(dist: DistContext, out: Path, part: Predictions) -> Predictions | None:
    """Every rank's predictions on rank 0 (None on the others); ``part`` is this rank's.

    A no-op returning ``part`` in a single process. Collective: every rank must call it.
    """
    if not dist.enabled:
        return part
    # Parts are named by a token rank 0 draws for this run: a part an earlier run left (killed
    # before its merge) is never taken for this run's, where a rank's new part is not seen
    run = dist.broadcast(uuid.uuid4().hex[:12] if dist.is_main else None)
    _write_part(_part_path(out, run, dist.rank, dist.world_size), part)
    dist.barrier()
    if not dist.is_main:
        return None
    world = dist.world_size
    parts = [_read_part(_part_path(out, run, r, world)) for r in range(world)]
    shutil.rmtree(parts_folder(out), ignore_errors=True)
    skipped: dict[int, str] = {}
    for p in parts:
        skipped.update(p[3])
    return (
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
        skipped,
    )
