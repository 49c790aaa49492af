"""Sample sources: residue-grouped batches of bit-packed voxels from HDF5 or zstd shards.

``SOURCES`` maps the names accepted by ``--source`` / ``loader.source`` to their classes;
:func:`open_source` is the one entry point the engine and prediction use.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from voxelflex.errors import SourceError
from voxelflex.sources.base import DomainReader, OnError, SampleSource
from voxelflex.sources.batch import Batch
from voxelflex.sources.hdf5 import Hdf5Source
from voxelflex.sources.plan import EpochPlan, PlanConfig, make_plan
from voxelflex.sources.shard_build import ShardBuildReport, build_shards
from voxelflex.sources.shards import ShardSource, ShardVerifyReport, verify_shards
from voxelflex.sources.table import SplitTable

__all__ = [
    "SOURCES",
    "Batch",
    "DomainReader",
    "EpochPlan",
    "Hdf5Source",
    "PlanConfig",
    "SampleSource",
    "ShardBuildReport",
    "ShardSource",
    "ShardVerifyReport",
    "SplitTable",
    "build_shards",
    "make_plan",
    "open_source",
    "verify_shards",
]

SOURCES: dict[str, type[SampleSource]] = {"hdf5": Hdf5Source, "shards": ShardSource}


def open_source(
    name: str,
    index,
    *,
    split: str,
    shards_dir: str | os.PathLike | None = None,
    temperatures: Sequence[float] | None = None,
    on_error: OnError = "raise",
) -> SampleSource:
    """Open sample source ``name`` on one split of ``index``.

    Parameters
    ----------
    name : str
        A key of :data:`SOURCES` (``"hdf5"`` or ``"shards"``).
    index : LoadedIndex
        From :func:`voxelflex.index.read_index`.
    split : str
        Split to serve.
    shards_dir : path, optional
        Shard folder (required by ``"shards"``, ignored by ``"hdf5"``).
    temperatures : sequence of float, optional
        Prediction mode: each residue once × these temperatures (K), no targets, index order.
    on_error : {"raise", "skip"}
        What to do with an unreadable domain (``skip``: weight-0 rows, counted in the log).
    """
    if name not in SOURCES:
        raise SourceError(f"unknown sample source {name!r}; valid sources: {', '.join(SOURCES)}")
    kwargs = {"split": split, "temperatures": temperatures, "on_error": on_error}
    if name == "shards":
        kwargs["shards_dir"] = shards_dir
    return SOURCES[name](index, **kwargs)
