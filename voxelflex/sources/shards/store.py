"""Where a shard folder lives, and how a worker gets the records it needs out of it.

Records are read at the byte offsets the manifest lists (format 3); no tar header is parsed:

* a local folder: each shard is memory-mapped and a record is a slice of the map;
* a URL without a cache: the records a worker needs are fetched with byte-range requests
  (fsspec ``cat_ranges``, concurrently), records with nothing but tar headers between them
  (:data:`MAX_GAP`) coalesced into one request; the CRC-32s of every fetched record are checked
  at once, and a failed, short or wrong range is fetched again before its domains fail;
* a URL with a cache (:mod:`~voxelflex.sources.shards.cache`): each shard is downloaded whole
  once per node, checked against its SHA-256, and mapped from the local copy; a copy damaged
  since (a record fails its checks, and the copy its SHA-256) is removed and downloaded again.

Every record is checked again when it is decoded (sizes, CRC-32s, the zstd frame checksum, the
domain named inside it). Stores are pickled into DataLoader workers; network clients, cache
handles and maps are made in each process on first use.
"""

from __future__ import annotations

import hashlib
import logging
import mmap
import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from voxelflex.errors import FetchError, ShardError
from voxelflex.paths import Location, is_url, join_location
from voxelflex.remote import DEFAULT_RETRIES, BadBytes, FetchStats, RemoteFolder
from voxelflex.sources.shards.cache import CacheSettings, CacheStats, ShardCache
from voxelflex.sources.shards.manifest import MANIFEST_NAME, DomainRecord, ShardEntry, ShardManifest

__all__ = ["MAX_GAP", "MAX_REQUEST", "REBUILD", "ShardStore", "coalesce"]

REBUILD = (
    "rebuild it with `voxelflex shards build` (check all shards with `voxelflex shards verify`)"
)
_REMOTE_FIX = (
    "check the server and the network; `voxelflex shards verify URL` checks every shard there"
)
# Neighbouring records are fetched in one request when at most this many bytes lie between them:
# what separates two records of a shard is one tar header and padding (512-1,535 bytes), so
# only records that follow each other merge, and no other record's bytes are fetched.
MAX_GAP = 2048
MAX_REQUEST = 16 << 20  # bytes one request may span

log = logging.getLogger(__name__)


def coalesce(records: Sequence[DomainRecord]) -> list[list[DomainRecord]]:
    """Group records (of one shard) into runs fetched by one range request each, in file order."""
    groups: list[list[DomainRecord]] = []
    for r in sorted(records, key=lambda r: r.start):
        if groups:
            first, last = groups[-1][0], groups[-1][-1]
            if r.start - last.end <= MAX_GAP and r.end - first.start <= MAX_REQUEST:
                groups[-1].append(r)
                continue
        groups.append([r])
    return groups


def _check_crcs(span: memoryview, base: int, records: Sequence[DomainRecord]) -> None:
    """Raise :class:`BadBytes` if a record's members in ``span`` (file offset ``base``) do not
    have the manifest's CRC-32s."""
    for r in records:
        vox = span[r.vox_offset - base : r.vox_offset - base + r.vox_bytes]
        keys = span[r.keys_offset - base : r.keys_offset - base + r.keys_bytes]
        if zlib.crc32(vox) != r.crc32 or zlib.crc32(keys) != r.keys_crc32:
            raise BadBytes(f"record of domain {r.domain} differs from the manifest (crc32)")


def _map_file(path: Path) -> mmap.mmap | bytes:
    """The file mapped read-only (an empty file: empty bytes, which cannot be mapped)."""
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            return b""
        return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)


class ShardStore:
    """A shard folder at a local path or a URL.

    Parameters
    ----------
    location : path or str
        Folder, or URL (``https://``, ``s3://``, ...) of the folder.
    cache : CacheSettings, optional
        Node-local cache for a URL (ignored for a local folder).
    retries : int
        Retries of a failed or corrupt fetch (URL only).
    """

    def __init__(
        self,
        location: Location,
        *,
        cache: CacheSettings | None = None,
        retries: int = DEFAULT_RETRIES,
    ) -> None:
        self.remote = RemoteFolder(str(location), retries=retries) if is_url(location) else None
        # for messages: a URL without the credentials it may hold
        self.location: Location = self.remote.shown if self.remote else Path(location)
        self.cache_settings = cache if self.remote else None
        self._cache: ShardCache | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_cache": None}  # opened again in each process

    @property
    def is_remote(self) -> bool:
        return self.remote is not None

    def where(self, name: str) -> str:
        """Path or URL of file ``name`` of the folder, for messages."""
        return str(join_location(self.location, name))

    @property
    def fetch_stats(self) -> FetchStats:
        """Bytes and requests this process fetched from the URL (zeros for a local folder)."""
        return self.remote.stats if self.remote else FetchStats()

    @property
    def cache_stats(self) -> CacheStats:
        """Cache hits, downloads and shards not cached in this process (zeros without a cache)."""
        return self._cache.stats if self._cache else CacheStats()

    def manifest(self) -> ShardManifest:
        """Read and check the folder's manifest (fetched first at a URL)."""
        if self.remote is None:
            return ShardManifest.load(self.location)
        url = self.where(MANIFEST_NAME)
        try:
            text = self.remote.fetch(MANIFEST_NAME)
        except FetchError as exc:
            raise ShardError(
                f"{exc}; {self.location} is not a complete shard set: upload the folder "
                "`voxelflex shards build` wrote, manifest.json included"
            ) from exc
        return ShardManifest.from_json(text.decode("utf-8"), where=url)

    def map_shard(self, entry: ShardEntry) -> tuple[mmap.mmap | bytes | None, str | None]:
        """The whole shard, mapped from the folder or (at a URL) from the cache.

        Returns
        -------
        data : mmap or bytes or None
            None at a URL without a cache, or when the shard does not fit the cache: fetch its
            records with :meth:`fetch_records`.
        error : str or None
            Why the shard cannot be had at all (missing file, failed download), ending in the fix.
        """
        if self.remote is None:
            path = Path(self.location) / entry.name
            if not path.is_file():
                return None, f"shard file {path} is missing; {REBUILD}"
            return _map_file(path), None
        if self.cache_settings is None:
            return None, None
        if self._cache is None:
            self._cache = ShardCache(self.cache_settings)
        try:
            fh = self._cache.open(entry.name, entry.bytes, entry.sha256, self.remote)
        except FetchError as exc:
            return None, f"{exc}; {_REMOTE_FIX}"
        if fh is None:
            return None, None
        with fh:  # whole and SHA-256-checked
            return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ), None

    def drop_damaged_copy(self, entry: ShardEntry, data: mmap.mmap | bytes, domain: str) -> bool:
        """The record of ``domain`` in ``data``, mapped by :meth:`map_shard`, failed its checks: if
        ``data`` is a cached copy that is not the shard the manifest lists (its SHA-256), remove
        it from the cache, so that :meth:`map_shard` downloads the shard again.

        Parameters
        ----------
        entry : ShardEntry
            The manifest's entry of the shard.
        data : mmap or bytes
            The whole shard, as :meth:`map_shard` returned it.
        domain : str
            The domain whose record failed its checks (for the log).

        Returns
        -------
        bool
            True when the cached copy was damaged and is out of the cache now (removed here, or
            by another process): map the shard again. False for a local folder, or a copy that
            is the listed shard (the shard itself is at fault, and another copy would be no
            better), or a damaged copy this process cannot remove (a cache it cannot write to;
            logged): the record's error stands.
        """
        if self._cache is None or hashlib.sha256(data).hexdigest() == entry.sha256:
            return False
        try:
            removed = self._cache.discard_damaged(entry.sha256)
        except OSError as exc:
            dropped = False
            outcome = (
                f"the cache {self._cache.folder} is not writable ({exc}), so the copy stays and "
                "its records fail: delete the copy, or make the cache writable, and the shard "
                "is downloaded again"
            )
        else:
            dropped = True
            outcome = (
                "removed it, downloading the shard again"
                if removed
                else "it was gone or replaced already, opening the shard through the cache again"
            )
        log.warning(
            "%s: the cached copy %s is damaged (the record of domain %s failed its checks, and "
            "the copy's SHA-256 differs from the manifest's); %s",
            self.where(entry.name),
            self._cache.path(entry.sha256),
            domain,
            outcome,
        )
        return dropped

    def fetch_records(
        self, wanted: dict[str, Sequence[DomainRecord]]
    ) -> tuple[dict[str, memoryview], dict[str, str]]:
        """Fetch records by byte range (a URL without the shards in a cache).

        Parameters
        ----------
        wanted : dict of str -> sequence of DomainRecord
            Shard file name → the records to fetch from it. All ranges of all shards go out
            together (fsspec runs them concurrently).

        Returns
        -------
        spans : dict of str -> memoryview
            Domain → the record's bytes ``[record.start, record.end)``, CRC-32s checked.
        errors : dict of str -> str
            Domain → why its record could not be fetched (naming the URL), ending in the fix.
        """
        requests: list[tuple[str, int, int]] = []
        groups: list[list[DomainRecord]] = []
        for name, records in wanted.items():
            for group in coalesce(records):
                requests.append((name, group[0].start, group[-1].end))
                groups.append(group)

        def check(i: int, data: bytes) -> None:
            _check_crcs(memoryview(data), requests[i][1], groups[i])

        spans: dict[str, memoryview] = {}
        errors: dict[str, str] = {}
        for (_, base, _), group, data in zip(
            requests, groups, self.remote.fetch_ranges(requests, check), strict=True
        ):
            for r in group:
                if isinstance(data, FetchError):
                    errors[r.domain] = f"{data}; {_REMOTE_FIX}"
                else:
                    spans[r.domain] = memoryview(data)[r.start - base : r.end - base]
        return spans, errors

    def read_shard(self, entry: ShardEntry) -> bytes:
        """The whole shard file (for ``shards verify``; not retried on a bad checksum).

        Raises
        ------
        ShardError
            The file is missing or could not be fetched.
        """
        if self.remote is None:
            path = Path(self.location) / entry.name
            if not path.is_file():
                raise ShardError(f"shard file {path} is missing")
            return path.read_bytes()
        try:
            return self.remote.fetch(entry.name)
        except FetchError as exc:
            raise ShardError(str(exc)) from exc
