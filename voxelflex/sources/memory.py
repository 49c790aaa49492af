"""A source of packed rows already in memory (structures voxelized on the fly).

Not a registered ``loader.source``: ``voxelflex predict --structure`` builds one from the
frames it has just computed, with :func:`voxelflex.index.memory.frames_index` as its index, so
the rest of prediction (plan, batches, model) is the same as for a voxel file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from voxelflex.errors import SourceError
from voxelflex.index import LoadedIndex
from voxelflex.sources.base import DomainReader, SampleSource
from voxelflex.sources.shards.reader import pick_rows

__all__ = ["MemoryReader", "MemorySource"]


class MemoryReader(DomainReader):
    """Serves domains from ``rows[domain] = (chains, resids, packed uint8 (R, 5789))``."""

    def __init__(self, rows: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
        self.rows = rows

    def read_domain(self, domain: str, chains: np.ndarray, resids: np.ndarray) -> np.ndarray:
        if domain not in self.rows:
            raise SourceError(f"domain {domain} was not voxelized")
        stored_chains, stored_resids, packed = self.rows[domain]
        take = pick_rows(stored_chains, stored_resids, chains, resids, where=f"domain {domain}")
        return packed if take is None else packed[take]


class MemorySource(SampleSource):
    """Serves an in-memory index's residues from packed rows in memory.

    Parameters
    ----------
    index : LoadedIndex
        From :func:`voxelflex.index.memory.frames_index`.
    rows : mapping of str -> (chains, resids, packed)
        Per domain: residue keys (str arrays, shape (R,)) and packed rows uint8 (R, 5789).
    **common
        ``split``, ``temperatures``, ``on_error``, ``features``, ``feature_norm``: as
        :class:`SampleSource`.
    """

    name = "memory"

    def __init__(
        self,
        index: LoadedIndex,
        *,
        rows: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
        **common: Any,
    ) -> None:
        super().__init__(index, **common)
        self.rows = dict(rows)

    def make_reader(self) -> MemoryReader:
        return MemoryReader(self.rows)
