"""Where a shard folder lives: a local folder, or a URL with an optional node-local cache.

A :class:`ShardStore` reads the manifest and gets records out of shards, wherever they are:

* a local folder: each shard file is read with webdataset's tar iterators;
* a URL without a cache: each shard is streamed (fsspec) through the same tar iterators, once
  per worker and epoch; the records kept are checked (CRC-32) and the stream's length compared
  with the manifest, and a wrong or broken stream is read again before its domains fail;
* a URL with a cache (:mod:`~voxelflex.sources.shards.cache`): each shard is downloaded whole
  once per node, checked against the manifest's SHA-256, and read from the local copy.

Stores are pickled into DataLoader workers; their network clients and cache handles are made
in each process on first use.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

from webdataset.tariterators import group_by_keys, tar_file_expander

from voxelflex.errors import FetchError, ShardError
from voxelflex.paths import Location, is_url, join_location
from voxelflex.remote import DEFAULT_RETRIES, BadBytes, FetchStats, RemoteFolder
from voxelflex.sources.shards.cache import CacheSettings, CacheStats, ShardCache
from voxelflex.sources.shards.manifest import (
    MANIFEST_NAME,
    VOX_MEMBER,
    DomainRecord,
    ShardEntry,
    ShardManifest,
)

__all__ = ["REBUILD", "ShardStore", "scan_shard", "scan_stream"]

REBUILD = (
    "rebuild it with `voxelflex shards build` (check all shards with `voxelflex shards verify`)"
)
_REMOTE_FIX = (
    "check the server and the network; `voxelflex shards verify URL` checks every shard there"
)


def scan_stream(
    stream: BinaryIO, keys: Sequence[str] | None, where: str
) -> tuple[dict[str, dict], str | None]:
    """Read the records ``keys`` (all when None) from a tar stream with webdataset's iterators.

    Returns
    -------
    found : dict
        Record key → members (suffix → bytes), as grouped by ``webdataset``.
    error : str or None
        Why reading stopped early (truncated or damaged tar), or None.
    """
    wanted = None if keys is None else set(keys)

    def select(fname: str) -> bool:
        return wanted is None or fname.split(".", 1)[0] in wanted

    found: dict[str, dict] = {}
    try:
        files = tar_file_expander([{"url": where, "stream": stream}], select_files=select)
        for sample in group_by_keys(files):
            found[sample["__key__"]] = sample
    except Exception as exc:  # tarfile and the transport raise several types on damage
        return found, f"{where} is unreadable after {len(found)} records: {exc.args[0]!r}"
    return found, None


def scan_shard(
    path: Path, keys: Sequence[str] | None, expected_bytes: int
) -> tuple[dict[str, dict], str | None]:
    """:func:`scan_stream` over a local shard file, comparing its size with the manifest's.

    Parameters
    ----------
    path : Path
        Shard file.
    keys : sequence of str or None
        Record keys to keep; other records are skipped without being stored.
    expected_bytes : int
        Size from the manifest (a difference is reported with any error).
    """
    if not path.is_file():
        return {}, f"shard file {path} is missing"
    size = path.stat().st_size
    note = (
        "" if size == expected_bytes else f" (file is {size} bytes, manifest says {expected_bytes})"
    )
    with open(path, "rb") as fh:
        found, error = scan_stream(fh, keys, str(path))
    if error:
        return found, error + note
    if note:
        return found, f"{path} is damaged or truncated{note}"
    return found, None


def _check_kept(found: dict[str, dict], records: Sequence[DomainRecord]) -> str | None:
    """Why the kept records are not what the manifest lists (missing, CRC-32), or None."""
    for r in records:
        vox = found.get(r.key, {}).get(VOX_MEMBER)
        if vox is None:
            return f"record {r.key} (domain {r.domain}) is missing"
        if len(vox) != r.vox_bytes or zlib.crc32(vox) != r.crc32:
            return f"record {r.key} (domain {r.domain}) differs from the manifest (crc32)"
    return None


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
        self.location: Location = self.remote.url if self.remote else Path(location)
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

    def scan(
        self, entry: ShardEntry, records: Sequence[DomainRecord]
    ) -> tuple[dict[str, dict], str | None]:
        """The members of ``records`` (of shard ``entry``), and why reading stopped early if it
        did (a sentence ending in the fix).

        A local shard is read as it is; at a URL, from the cache or streamed (both checked,
        and fetched again when wrong, see the module docstring).
        """
        keys = [r.key for r in records]
        if self.remote is None:
            found, error = scan_shard(Path(self.location) / entry.name, keys, entry.bytes)
            return found, error and f"{error}; {REBUILD}"
        where = self.where(entry.name)
        try:
            if self.cache_settings is not None:
                if self._cache is None:
                    self._cache = ShardCache(self.cache_settings)
                fh = self._cache.open(entry.name, entry.bytes, entry.sha256, self.remote)
                if fh is not None:
                    with fh:  # whole and SHA-256-checked: read as a local file
                        return scan_stream(fh, keys, where)
            return self.remote.stream(entry.name, lambda s: self._scan_remote(s, entry, records))
        except FetchError as exc:
            return {}, f"{exc}; {_REMOTE_FIX}"

    def _scan_remote(
        self, stream: Any, entry: ShardEntry, records: Sequence[DomainRecord]
    ) -> tuple[dict[str, dict], None]:
        where = self.where(entry.name)
        found, error = scan_stream(stream, [r.key for r in records], where)
        if error is None:
            while stream.read(1 << 20):  # the tar's end-of-archive padding: count it all
                pass
            if stream.position != entry.bytes:
                error = f"{where} is {stream.position} bytes, the manifest says {entry.bytes}"
        error = error or _check_kept(found, records)
        if error:
            raise BadBytes(error)
        return found, None

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

    @staticmethod
    def scan_bytes(data: bytes, where: str) -> tuple[dict[str, dict], str | None]:
        """:func:`scan_stream` over a shard held in memory (all records)."""
        return scan_stream(io.BytesIO(data), None, where)
