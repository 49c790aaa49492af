"""Sample sources: residue-grouped batches of bit-packed voxels from HDF5 or zstd shards.

:data:`voxelflex.registry.SOURCES` names the sources (``--source`` / ``loader.source``);
:func:`open_source` is the one entry point the engine and prediction use, and
:func:`source_options` reads the settings a source declares (``SampleSource.OPTIONS``) from a
run configuration.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from voxelflex.config import Config
from voxelflex.errors import SourceError
from voxelflex.index import LoadedIndex
from voxelflex.registry import SOURCES
from voxelflex.sources.base import DomainReader, OnError, SampleSource, SourceOption
from voxelflex.sources.batch import Batch
from voxelflex.sources.plan import EpochPlan, PlanConfig, make_plan
from voxelflex.sources.shards import (
    ShardBuildReport,
    ShardVerifyReport,
    build_shards,
    verify_shards,
)
from voxelflex.sources.table import SplitTable

__all__ = [
    "Batch",
    "DomainReader",
    "EpochPlan",
    "PlanConfig",
    "SampleSource",
    "ShardBuildReport",
    "ShardVerifyReport",
    "SourceOption",
    "SplitTable",
    "build_shards",
    "make_plan",
    "open_source",
    "source_options",
    "verify_shards",
]


def _known_options() -> set[str]:
    return {opt.name for name in SOURCES for opt in SOURCES.get(name).OPTIONS}


def open_source(
    name: str,
    index: LoadedIndex,
    *,
    split: str,
    temperatures: Sequence[float] | None = None,
    on_error: OnError = "raise",
    features: Sequence[str] = (),
    feature_norm: str = "global",
    **options: Any,
) -> SampleSource:
    """Open sample source ``name`` on one split of ``index``.

    Parameters
    ----------
    name : str
        A name of :data:`voxelflex.registry.SOURCES` (``"hdf5"``, ``"shards"``, ...).
    index : LoadedIndex
        From :func:`voxelflex.index.read_index`.
    split : str
        Split to serve.
    temperatures : sequence of float, optional
        Prediction mode: each residue once × these temperatures (K), no targets, index order.
    on_error : {"raise", "skip"}
        What to do with an unreadable residue or domain (``skip``: weight-0 rows, counted in
        the log and in the loader's ``skipped``).
    features : sequence of str
        Index columns to serve per residue as ``Batch.features``.
    feature_norm : {"global", "domain"}
        How features are served (:class:`~voxelflex.sources.base.SampleSource`).
    **options
        Source settings (e.g. ``shards_dir``); each source takes those it declares in
        ``OPTIONS`` and ignores the other sources' (:func:`source_options` gives them all from
        a config).

    Raises
    ------
    ConfigError
        Unknown source name (the message lists the valid ones).
    SourceError
        An option no source declares, or a required one missing.
    """
    cls = SOURCES.get(name)
    unknown = set(options) - _known_options()
    if unknown:
        raise SourceError(
            f"unknown sample source options {sorted(unknown)}; the sources declare "
            f"{sorted(_known_options())}"
        )
    return cls(
        index,
        split=split,
        temperatures=temperatures,
        on_error=on_error,
        features=features,
        feature_norm=feature_norm,
        **cls.take_options(options),
    )


def source_options(config: Config) -> dict[str, Any]:
    """Every source's declared settings, read from ``config`` (``name -> value``)."""
    return {opt.name: config.get(opt.key) for name in SOURCES for opt in SOURCES.get(name).OPTIONS}
