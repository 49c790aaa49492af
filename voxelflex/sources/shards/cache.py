"""A node-local cache of whole shards fetched from a URL, shared by every process on the node.

Without a cache every rank and worker fetches the records it needs by range request, every
epoch; with one, each shard crosses the network once per node (until evicted) and is then read
from local disk.

* **Content-addressed.** A shard is kept as ``<sha256>.tar``, named by the SHA-256 the manifest
  lists. A file that is there is the right one: a rebuilt shard set never meets a stale copy, and
  two shard sets sharing a cache folder never mix.
* **Never partial, never corrupt.** A shard is downloaded whole to ``.tmp/``, checked against the
  manifest's size and SHA-256 (a wrong download is fetched again, then named in the error), and
  only then renamed into place. A copy damaged later on the node's disk is found when one of its
  records fails its checks: :meth:`ShardCache.discard_damaged` removes it (if its SHA-256 is not
  its name) and the next :meth:`ShardCache.open` downloads the shard again.
* **Safe under concurrent processes.** One download per shard and node: a process takes the
  shard's lock file (``flock``) before downloading and looks again once it holds it; the others
  wait, then read the file the first one put there. Eviction takes a cache-wide lock and skips
  shards whose lock is held. A process that opened a cached shard keeps reading it even if another
  process evicts it (POSIX keeps an unlinked file until its last descriptor closes); the disk
  space returns when it closes.
* **Eviction.** ``lru`` deletes the least recently used shards (file mtime, refreshed on every
  use) to make room; ``none`` keeps what fits and reads other shards from the URL. With a cache
  smaller than the data and a fresh random order every epoch, LRU evicts each shard just before
  it is needed again, so ``none`` gives the better hit rate there.
* The limit counts finished shards; downloads in progress (one per process at most) come on top.
* **A full disk** (or quota) while a shard is written to the cache is not the URL's fault: that
  shard, and every shard the process has not cached yet, is read from the URL instead, as one
  that does not fit the limit (shards already cached are still read from the cache).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from voxelflex.errors import ConfigError, FetchError
from voxelflex.remote import RemoteFolder
from voxelflex.sources.shards.manifest import file_sha256

__all__ = ["EVICTIONS", "CacheSettings", "CacheStats", "ShardCache"]

log = logging.getLogger(__name__)

EVICTIONS = ("lru", "none")
_TMP = ".tmp"
_LOCKS = ".locks"
_STALE_TMP_S = 600  # a download that wrote nothing for this long belongs to a dead process


@dataclass(frozen=True)
class CacheSettings:
    """Where and how much to cache (``loader.shard_cache_*``).

    Attributes
    ----------
    folder : Path
        Node-local folder (created if missing); several processes and runs may share it.
    limit_bytes : int
        Size limit of the cached shards in bytes; 0 means no limit.
    eviction : {"lru", "none"}
        What to do when a shard does not fit (see the module docstring).
    """

    folder: Path
    limit_bytes: int = 0
    eviction: str = "lru"

    def __post_init__(self) -> None:
        if self.eviction not in EVICTIONS:
            raise ConfigError(
                f"config key 'loader.shard_cache_eviction': got {self.eviction!r}, expected one "
                f"of {', '.join(EVICTIONS)}"
            )
        if self.limit_bytes < 0:
            raise ConfigError(
                f"config key 'loader.shard_cache_limit_gb': got {self.limit_bytes / 1e9}, "
                "expected a number >= 0 (0: no limit)"
            )


@dataclass
class CacheStats:
    """What one process's cache did: shards found, downloaded, and not cached (no room)."""

    hits: int = 0
    downloads: int = 0
    bypassed: int = 0
    evicted: int = 0


# A cache disk that is full: the shard is read from the URL instead.
_FULL = (errno.ENOSPC, errno.EDQUOT)


class _LocalWriteError(FetchError):
    """Writing the downloaded bytes to the cache failed. A FetchError, so that
    :meth:`RemoteFolder.download` passes it on at once: a retry would fetch the shard again
    over the network only to fail on the same disk, and the error would blame the URL."""

    def __init__(self, exc: OSError) -> None:
        super().__init__(str(exc))
        self.os_error = exc


class _CacheFile:
    """The temporary cache file as :meth:`RemoteFolder.download` writes it: a local write
    error becomes a :class:`_LocalWriteError`."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh

    def write(self, data: bytes) -> int:
        try:
            return self._fh.write(data)
        except OSError as exc:
            raise _LocalWriteError(exc) from exc

    def seek(self, offset: int) -> int:
        return self._fh.seek(offset)

    def truncate(self) -> int:
        return self._fh.truncate()


@contextlib.contextmanager
def _flock(path: Path, *, blocking: bool = True) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing); yields False when
    ``blocking`` is off and another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class ShardCache:
    """Opens shards from the cache, downloading (and evicting) as needed.

    Parameters
    ----------
    settings : CacheSettings
    """

    def __init__(self, settings: CacheSettings) -> None:
        self.settings = settings
        self.folder = Path(settings.folder)
        self.stats = CacheStats()
        self._disk_full = False  # a download hit a full disk: download no more
        for sub in (_TMP, _LOCKS):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        """Where the shard with this SHA-256 is kept."""
        return self.folder / f"{sha256}.tar"

    def _open_present(self, sha256: str, size: int) -> BinaryIO | None:
        """The cached shard, opened, or None. A file of another size is not ours: replaced."""
        path = self.path(sha256)
        try:
            fh = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
        except FileNotFoundError:
            return None
        if os.fstat(fh.fileno()).st_size != size:
            fh.close()
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # last use, for LRU
        return fh

    def open(self, name: str, size: int, sha256: str, remote: RemoteFolder) -> BinaryIO | None:
        """Shard ``name`` (``size`` bytes, ``sha256``) opened from the cache, downloaded from
        ``remote`` first if it is not there; None when it does not fit (eviction ``none``, or
        no shard could be evicted, or the cache's disk is full): read it from the URL instead.

        Raises
        ------
        FetchError
            The download failed, or kept arriving with another size or SHA-256, after retries.
        OSError
            The shard could not be written to the cache for another reason than a full disk
            (permissions, a read-only file system).
        """
        fh = self._open_present(sha256, size)
        if fh is not None:
            self.stats.hits += 1
            return fh
        with _flock(self.folder / _LOCKS / f"{sha256}.lock"):
            fh = self._open_present(sha256, size)  # another process fetched it while we waited
            if fh is not None:
                self.stats.hits += 1
                return fh
            if self._disk_full or not self._make_room(size, keep=sha256):
                self.stats.bypassed += 1
                return None
            tmp = self.folder / _TMP / f"{sha256}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
            try:
                with open(tmp, "wb") as out:
                    try:
                        remote.download(name, _CacheFile(out), size=size, sha256=sha256)
                    except _LocalWriteError as exc:
                        raise exc.os_error from exc
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, self.path(sha256))
            except OSError as exc:
                if exc.errno not in _FULL:
                    raise
                log.warning(
                    "shard cache %s: cannot keep %s (%s); this process reads the shards it has "
                    "not cached from the URL instead: free space, or lower "
                    "loader.shard_cache_limit_gb to what the disk holds",
                    self.folder,
                    name,
                    exc.strerror or exc,
                )
                self._disk_full = True
                self.stats.bypassed += 1
                return None
            finally:
                tmp.unlink(missing_ok=True)
            self.stats.downloads += 1
            # Opened while holding the shard's lock: an evictor skips locked shards.
            return open(self.path(sha256), "rb")

    def discard_damaged(self, sha256: str) -> bool:
        """Remove the cached shard if its bytes are not the shard its name says (SHA-256), so
        that the next :meth:`open` downloads it again.

        Checked under the shard's lock, so that a copy another process downloaded in its place
        meanwhile is kept. Processes that have the damaged file open keep reading it until they
        close it (and find its damaged records themselves).

        Parameters
        ----------
        sha256 : str
            The shard's SHA-256 as the manifest lists it (the cached file's name).

        Returns
        -------
        bool
            True when the file was damaged and is removed; False when it is intact (another
            process downloaded it again meanwhile) or missing (evicted, or removed by another
            process).

        Raises
        ------
        OSError
            The cache folder is not writable (a shared, read-only cache, say): the shard's lock
            file cannot be opened, or the file cannot be removed.
        """
        path = self.path(sha256)
        with _flock(self.folder / _LOCKS / f"{sha256}.lock"):
            try:
                if file_sha256(path) == sha256:
                    return False
            except FileNotFoundError:
                return False
            path.unlink()
            return True

    def _make_room(self, size: int, *, keep: str) -> bool:
        """Evict (LRU) until ``size`` more bytes fit; False when they cannot."""
        limit = self.settings.limit_bytes
        with _flock(self.folder / _LOCKS / "evict.lock"):
            self._drop_stale_temps()
            if not limit:
                return True
            shards = []
            for entry in os.scandir(self.folder):
                if entry.name.endswith(".tar") and entry.is_file():
                    with contextlib.suppress(FileNotFoundError):
                        st = entry.stat()
                        shards.append((st.st_mtime, st.st_size, entry.name))
            total = sum(s for _, s, _ in shards)
            if total + size <= limit:
                return True
            if self.settings.eviction == "none" or size > limit:
                if not self.stats.bypassed:
                    log.info(
                        "shard cache %s is full (%.2f of %.2f GB, eviction %s): shards that do "
                        "not fit are read from the URL",
                        self.folder,
                        total / 1e9,
                        limit / 1e9,
                        self.settings.eviction,
                    )
                return False
            for _, nbytes, fname in sorted(shards):
                if total + size <= limit:
                    break
                sha = fname.removesuffix(".tar")
                if sha == keep:
                    continue
                with _flock(self.folder / _LOCKS / f"{sha}.lock", blocking=False) as free:
                    if free:  # nobody is downloading or opening it right now
                        (self.folder / fname).unlink(missing_ok=True)
                        total -= nbytes
                        self.stats.evicted += 1
            return total + size <= limit

    def _drop_stale_temps(self) -> None:
        """Delete downloads a killed process left behind (nothing written for 10 minutes)."""
        now = time.time()
        for entry in os.scandir(self.folder / _TMP):
            with contextlib.suppress(FileNotFoundError):
                if now - entry.stat().st_mtime > _STALE_TMP_S:
                    os.unlink(entry.path)
