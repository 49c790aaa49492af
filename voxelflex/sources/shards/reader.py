"""Shard source: serves packed rows from the zstd WebDataset shards of ``voxelflex shards build``.

The shard folder may be local or at a URL (:mod:`~voxelflex.sources.shards.store`). A worker
reads each of its domains' records at the byte offsets the manifest lists (a slice of a
memory-mapped shard, or bytes fetched by range request), without parsing tar headers, and
decodes each domain once, in plan order, when its mixing window comes up. Every record is
checked against the manifest before use: its members' CRC-32s (which also catch a wrong offset),
the domain named in its ``keys.json``, the zstd frame's own checksum and the row count; a
failure raises :class:`~voxelflex.errors.ShardError` naming the shard (path or URL) and the
domain.
"""

from __future__ import annotations

import logging
import mmap
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from voxelflex.errors import ShardError, SourceError
from voxelflex.index import LoadedIndex
from voxelflex.paths import Location
from voxelflex.remote import DEFAULT_RETRIES
from voxelflex.sources.base import DomainReader, OnError, SampleSource, SourceOption
from voxelflex.sources.shards.cache import CacheSettings
from voxelflex.sources.shards.manifest import (
    DomainRecord,
    ShardEntry,
)
from voxelflex.sources.shards.record import FIX, decode_record, pick_rows
from voxelflex.sources.shards.store import ShardStore
from voxelflex.wording import counted

__all__ = ["ShardReader", "ShardSource"]

log = logging.getLogger(__name__)


class ShardReader(DomainReader):
    """Reads domains from shards inside one worker, each record at its manifest offset.

    A local shard (or one in the node-local cache) is memory-mapped when first needed; at a URL
    without a cache, :meth:`prepare` fetches the worker's records by byte range up front. A
    record of a cached shard that fails its checks is read once more, from a fresh download,
    when the cached copy turns out damaged (:meth:`ShardStore.drop_damaged_copy`).

    Parameters
    ----------
    store : ShardStore
        The shard folder (local or at a URL).
    shards : dict of str -> ShardEntry
        The manifest's entries of the shards that hold the domains served, by file name.
    records : dict of str -> (str, DomainRecord)
        Domain → (shard file name, its record) for the domains served.
    """

    def __init__(
        self,
        store: ShardStore,
        shards: dict[str, ShardEntry],
        records: dict[str, tuple[str, DomainRecord]],
    ) -> None:
        self.store = store
        self.shards = shards
        self.records = records
        self._maps: dict[str, mmap.mmap | bytes] = {}
        # Shards whose map was checked whole after a record failed (the copy is the listed
        # shard, or cannot be replaced): the errors of their other records are final.
        self._checked: set[str] = set()
        self._spans: dict[str, memoryview] = {}
        self._errors: dict[str, str] = {}
        self._where: dict[str, str] = {}  # shard -> path or URL, for messages

    def __getstate__(self) -> dict:
        # Maps and fetched records belong to the process that made them.
        return {**self.__dict__, "_maps": {}, "_checked": set(), "_spans": {}, "_errors": {}}

    def prepare(self, domains: Sequence[str]) -> None:
        """At a URL: get the shards holding ``domains`` into the cache, or fetch their records.

        A local folder needs nothing up front (its shards are mapped when first read). Workers
        live across epochs, so at a URL each epoch starts afresh: cached shards are opened
        through the cache again (an LRU use each, so that shards this worker reads are not the
        ones evicted, and an evicted file is not held open), records fetched for an epoch this
        worker did not finish are dropped unless this epoch reads them too, and a fetch that
        failed then is tried again.
        """
        if not self.store.is_remote:
            return
        self._maps.clear()
        self._checked.clear()
        keep = set(domains)
        self._spans = {d: span for d, span in self._spans.items() if d in keep}
        self._errors.clear()
        self._fetch(domains)

    def _fetch(self, domains: Sequence[str]) -> None:
        """Get the shards or records of those ``domains`` not fetched yet (at a URL)."""
        by_shard: dict[str, list[str]] = {}
        for d in domains:
            if d not in self._spans and d not in self._errors:
                by_shard.setdefault(self.records[d][0], []).append(d)
        fetch: dict[str, list[DomainRecord]] = {}
        for shard, doms in sorted(by_shard.items()):
            if shard not in self._maps:
                data, error = self.store.map_shard(self.shards[shard])
                if error is not None:
                    for d in doms:
                        self._errors[d] = f"shard {self.store.where(shard)}, domain {d}: {error}"
                    continue
                if data is not None:
                    self._maps[shard] = data
                    continue
            if shard not in self._maps:
                fetch[shard] = [self.records[d][1] for d in doms]
        if fetch:
            spans, errors = self.store.fetch_records(fetch)
            self._spans.update(spans)
            for d, error in errors.items():
                self._errors[d] = (
                    f"shard {self.store.where(self.records[d][0])}, domain {d}: {error}"
                )
        fetched, cache = self.store.fetch_stats, self.store.cache_stats
        log.debug(
            "%s: records of %d domains ready; this process fetched %.2f MB in %d requests "
            "(%d retried); cache: %d hits, %d downloads, %d shards not cached",
            self.store.location,
            len(domains),
            fetched.bytes / 1e6,
            fetched.requests,
            fetched.retries,
            cache.hits,
            cache.downloads,
            cache.bypassed,
        )

    def _span(self, domain: str) -> memoryview | bytes:
        """The record's bytes ``[start, end)`` (shorter if the file ends early)."""
        if domain in self._spans:
            return self._spans.pop(domain)  # fetched once, decoded once
        shard, record = self.records[domain]
        if shard not in self._maps:
            data, error = self.store.map_shard(self.shards[shard])
            if error is not None:
                raise ShardError(f"shard {self.store.where(shard)}, domain {domain}: {error}")
            if data is None:  # a URL without the shard in the cache: fetch this record now
                self._fetch([domain])
                if domain in self._errors:
                    raise ShardError(self._errors.pop(domain))
                return self._spans.pop(domain)
            self._maps[shard] = data
        data = self._maps[shard]
        if len(data) != self.shards[shard].bytes and len(data) < record.end:
            raise ShardError(
                f"shard {self.store.where(shard)}, domain {domain}: the file is {len(data)} "
                f"bytes, the manifest says {self.shards[shard].bytes}, and this record ends at "
                f"byte {record.end}; the shard is truncated: {FIX}"
            )
        return memoryview(data)[record.start : record.end]

    def read_domain(self, domain: str, chains: np.ndarray, resids: np.ndarray) -> np.ndarray:
        if domain not in self.records:
            raise SourceError(f"domain {domain} is not among this reader's shards")
        if domain in self._errors:
            raise ShardError(self._errors.pop(domain))
        shard, record = self.records[domain]
        path = self._where.get(shard) or self._where.setdefault(shard, self.store.where(shard))
        try:
            rows, keys = decode_record(path, record, self._span(domain))
        except ShardError:
            data = self._maps.get(shard)
            if data is None or shard in self._checked:
                raise
            if not self.store.drop_damaged_copy(self.shards[shard], data, domain):
                self._checked.add(shard)
                raise
            del self._maps[shard]  # mapped again from a fresh download; its errors are final
            rows, keys = decode_record(path, record, self._span(domain))
        if keys["chains"] == chains.tolist() and keys["resids"] == resids.tolist():
            return rows  # the whole record, in order: the common case, no key arithmetic
        take = pick_rows(
            keys["chains"], keys["resids"], chains, resids, where=f"shard {path}, domain {domain}"
        )
        return rows if take is None else rows[take]


class ShardSource(SampleSource):
    """Serves a split from a shard folder (local or at a URL) built from the same index.

    The manifest is read and checked (format, frame, the voxel file the shards were built from,
    the split's domains) before any shard is read.

    Parameters
    ----------
    shards_dir : path or str
        Folder with ``manifest.json`` (see :func:`voxelflex.sources.shards.writer.build_shards`),
        or its URL (``https://``, ``s3://``, ``gs://``, anything fsspec opens).
    cache_dir : path, optional
        Node-local cache of whole shards for a URL (:mod:`~voxelflex.sources.shards.cache`);
        None: fetch the records by range request each epoch.
    cache_limit_gb : float, optional
        Cache size limit in GB (0 or None: no limit).
    cache_eviction : {"lru", "none"}, optional
        Default ``lru``.
    retries : int, optional
        Retries of a failed or corrupt fetch (default 3).
    Other parameters (``split``, ``temperatures``, ``on_error``, ``features``,
    ``feature_norm``) as
    :class:`~voxelflex.sources.base.SampleSource`.
    """

    name = "shards"
    OPTIONS = (
        SourceOption(
            "shards_dir",
            "data.shards_dir",
            required=True,
            help="a shard folder or its URL (create one with `voxelflex shards build --index "
            "INDEX --output DIR`)",
        ),
        SourceOption("cache_dir", "loader.shard_cache_dir", help="node-local shard cache folder"),
        SourceOption("cache_limit_gb", "loader.shard_cache_limit_gb", help="cache size in GB"),
        SourceOption("cache_eviction", "loader.shard_cache_eviction", help="lru or none"),
        SourceOption("retries", "loader.fetch_retries", help="retries of a failed fetch"),
    )

    def __init__(
        self,
        index: LoadedIndex,
        *,
        split: str,
        shards_dir: Location,
        cache_dir: str | os.PathLike | None = None,
        cache_limit_gb: float | None = None,
        cache_eviction: str | None = None,
        retries: int | None = None,
        temperatures: Sequence[float] | None = None,
        on_error: OnError = "raise",
        features: Sequence[str] = (),
        feature_norm: str = "global",
    ) -> None:
        super().__init__(
            index,
            split=split,
            temperatures=temperatures,
            on_error=on_error,
            features=features,
            feature_norm=feature_norm,
        )
        cache = None
        if cache_dir is not None:
            cache = CacheSettings(
                Path(cache_dir),
                limit_bytes=round((cache_limit_gb or 0) * 1e9),
                eviction=cache_eviction or "lru",
            )
        self.store = ShardStore(
            shards_dir, cache=cache, retries=DEFAULT_RETRIES if retries is None else retries
        )
        self.shards_dir = self.store.location
        self.manifest = self.store.manifest()
        index.meta.frame.require_same(
            self.manifest.frame, what="the shards", where=str(self.shards_dir)
        )
        self.manifest.check_index(
            index.meta, index_path=str(index.path), where=str(self.shards_dir)
        )
        dmap = self.manifest.domain_map()
        n_res = np.diff(self.table.domain_res_offsets).tolist()
        missing = [d for d in self.table.domains.tolist() if d not in dmap]
        short = [
            d
            for d, n in zip(self.table.domains.tolist(), n_res, strict=True)
            if d in dmap and dmap[d][1].n_residues < n
        ]
        if missing or short:
            raise ShardError(
                f"{self.shards_dir}: the shards lack {len(missing)} domains and hold too few "
                f"residues for {len(short)} domains of split {self.split!r} (e.g. "
                f"{(missing + short)[:5]}); they were built from another index: rebuild them "
                f"with `voxelflex shards build --index {index.path}`"
            )
        self.records = {
            d: (self.manifest.shards[dmap[d][0]].name, dmap[d][1])
            for d in self.table.domains.tolist()
        }
        used = {name for name, _ in self.records.values()}
        self.shards = {s.name: s for s in self.manifest.shards if s.name in used}
        self.n_shards = len(self.shards)

    def make_reader(self) -> ShardReader:
        return ShardReader(self.store, self.shards, self.records)

    def loader(self, cfg, epoch, start_batch=0, *, pin_memory=False):
        if self.n_shards < cfg.n_streams:
            log.info(
                "%s %s split %r for %s × %s: the plan deals domains, not shards, so workers "
                "share shards and none idles",
                counted(self.n_shards, "shard"),
                "holds" if self.n_shards == 1 else "hold",
                self.split,
                counted(cfg.world_size, "rank"),
                counted(cfg.streams_per_rank, "worker"),
            )
        return super().loader(cfg, epoch, start_batch, pin_memory=pin_memory)
