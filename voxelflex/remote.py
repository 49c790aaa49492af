"""Files at a URL, through fsspec: fetched whole, as byte ranges, or downloaded, with retries.

Anything fsspec resolves works: ``https://`` (aiohttp), ``s3://`` (``pip install
'voxelflex[s3]'``), ``gs://`` (``voxelflex[gcs]``), ``file://`` and the rest. Credentials and
endpoints come from the usual places (environment variables such as ``AWS_PROFILE``, fsspec's
config folder ``~/.config/fsspec/``); voxelflex passes none itself.

A :class:`RemoteFolder` is cheap to pickle: its fsspec file system is created on first use in
each process (DataLoader workers are forked, and an event loop or session inherited through a
fork is unusable). File systems are kept for the life of the process that made them, and a
forked child never lets go of the ones it inherited: when fsspec's HTTP file system is garbage
collected it closes its connections, and in a forked child that removes the parent's sockets from
the epoll instance the two processes share, so the parent's next request on a kept-alive
connection waited for aiohttp's 5-minute timeout (``tests/test_remote.py`` reproduces it).

Transient failures (a dropped connection, a short body, a timeout) are retried with a growing
pause; "not found" and "forbidden" are not. Every fetch is counted, so a reader can say how many
bytes it pulled over the network.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeVar

import fsspec

from voxelflex.errors import FetchError, ServerError
from voxelflex.paths import is_url, redact_url, split_url

__all__ = [
    "DEFAULT_RETRIES",
    "BadBytes",
    "FetchStats",
    "RemoteFolder",
    "fetch_url",
]

log = logging.getLogger(__name__)

DEFAULT_RETRIES = 3  # attempts after the first one
_PAUSE_S = 0.2  # first pause before a retry; doubles each time
_CHUNK = 1 << 20  # download block size
T = TypeVar("T")

# Object-store back ends fsspec needs an extra package for, and the voxelflex extra that adds it.
_EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs"}
# http(s) needs no extra: voxelflex depends on fsspec[http]; a broken install lacks aiohttp.
_HTTP_HINT = "pip install 'fsspec[http]' (a voxelflex dependency; reinstall voxelflex)"
_RANGE_FIX = (
    "serve the folder with a server that does (an object store such as S3 or GCS, nginx, "
    "Apache; not `python -m http.server`), copy it to a local folder, or set "
    "loader.shard_cache_dir to a node-local folder with room for the shards (the cache "
    "downloads whole shards, which needs no Range)"
)


class BadBytes(Exception):
    """Raised by a caller's check when fetched bytes are wrong (short, checksum mismatch).

    :class:`RemoteFolder` retries the fetch like any transient failure, and names the last
    such problem if every attempt had it.
    """


@dataclass
class FetchStats:
    """What one process fetched: bytes received (successful and failed attempts) and requests."""

    bytes: int = 0
    requests: int = 0
    retries: int = 0


def _permanent(exc: BaseException) -> bool:
    """Failures a retry cannot fix: the object is not there or not ours to read."""
    return isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError)


# (pid, folder URL) -> (file system, root path). Never emptied: see the module docstring.
_FILESYSTEMS: dict[tuple[int, str], tuple[fsspec.AbstractFileSystem, str]] = {}


def _filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    key = (os.getpid(), url)
    if key in _FILESYSTEMS:
        return _FILESYSTEMS[key]
    try:
        # Not from fsspec's instance cache: fsspec clears it in a forked child, which would
        # collect (and close) the parent's file systems there.
        _FILESYSTEMS[key] = fsspec.core.url_to_fs(url, skip_instance_cache=True)
        return _FILESYSTEMS[key]
    except (ImportError, ValueError) as exc:  # fsspec: "Install s3fs to access S3", unknown
        scheme = url.split("://", 1)[0]
        extra = _EXTRAS.get(scheme)
        if extra:
            hint = f"pip install 'voxelflex[{extra}]'"
        else:
            hint = _HTTP_HINT if scheme in ("http", "https") else "install the fsspec back end"
        raise FetchError(f"{url}: cannot open {scheme}:// URLs ({exc}); {hint}") from exc


class RemoteFolder:
    """A folder at a URL (``https://host/shards``, ``s3://bucket/shards``) read through fsspec.

    Parameters
    ----------
    url : str
        The folder's URL, without a trailing file name.
    retries : int
        Attempts after the first for a transient failure.
    """

    def __init__(self, url: str, *, retries: int = DEFAULT_RETRIES) -> None:
        if not is_url(url):
            raise FetchError(f"{redact_url(repr(url))} is not a URL (scheme://...)")
        if retries < 0:
            raise FetchError(f"retries must be >= 0, got {retries}")
        self.url = url
        base, q, query = url.partition("?")
        self._base = base.rstrip("/")
        # a query that grants the folder (a shared-access token) goes on each of its files
        self._query = q + query
        self.shown = redact_url(self._base)  # for messages: without credentials
        self.retries = retries
        self.stats = FetchStats()
        self._fs: fsspec.AbstractFileSystem | None = None
        self._root = ""
        self._pid: int | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Never ship a live file system (its event loop and sessions) into another process.
        return {"url": self.url, "retries": self.retries}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"], retries=state["retries"])

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        if self._fs is None or self._pid != os.getpid():
            self._fs, self._root = _filesystem(self._base)
            self._pid = os.getpid()
        return self._fs

    def url_of(self, name: str) -> str:
        """The URL of file ``name`` in this folder, for messages (credentials redacted)."""
        return redact_url(f"{self.shown}/{name}")

    def _path(self, name: str) -> str:
        self.fs  # noqa: B018 - resolves _root
        return f"{self._root.rstrip('/')}/{name}{'' if '?' in name else self._query}"

    def _retry(self, name: str, what: str, attempt: Callable[[], T]) -> T:
        """Run ``attempt`` until it succeeds, retrying transient failures with growing pauses."""
        url = self.url_of(name)
        for i in range(self.retries + 1):
            try:
                self.stats.requests += 1
                return attempt()
            except FetchError:
                raise
            except Exception as exc:  # each back end has its own types (aiohttp, botocore, ...)
                if _permanent(exc):
                    kind = "not found" if isinstance(exc, FileNotFoundError) else "refused"
                    raise FetchError(
                        f"{url}: {kind} ({type(exc).__name__}); check the URL and that every file "
                        "of the folder was uploaded"
                    ) from exc
                # the back end's text may quote the URL, credentials and all
                why = redact_url(
                    str(exc) if isinstance(exc, BadBytes) else f"{type(exc).__name__}: {exc}"
                )
                if i == self.retries:
                    raise FetchError(
                        f"{url}: {what} failed {i + 1} times, the last time: {why}"
                    ) from exc
                self.stats.retries += 1
                log.warning("%s: %s failed (%s); retrying", url, what, why)
                time.sleep(_PAUSE_S * 2**i)
        raise AssertionError("unreachable")  # the loop returns or raises

    def fetch(self, name: str) -> bytes:
        """The whole file ``name``."""

        def attempt() -> bytes:
            data = self.fs.cat_file(self._path(name))
            self.stats.bytes += len(data)
            return data

        return self._retry(name, "download", attempt)

    def download(self, name: str, out: BinaryIO, *, size: int, sha256: str) -> None:
        """Stream file ``name`` into ``out``; retried until its size and SHA-256 are as given.

        ``out`` is rewound and truncated before each attempt.

        Raises
        ------
        FetchError
            Not found, refused, or still wrong (size, SHA-256) or failing after the retries.
        """

        def attempt() -> None:
            out.seek(0)
            out.truncate()
            digest = hashlib.sha256()
            n = 0
            with self.fs.open(self._path(name), "rb", block_size=0) as fh:  # a plain stream
                for block in iter(lambda: fh.read(_CHUNK), b""):
                    out.write(block)
                    digest.update(block)
                    n += len(block)
                    self.stats.bytes += len(block)
            if n != size or digest.hexdigest() != sha256:
                raise BadBytes(
                    f"got {n} bytes with sha256 {digest.hexdigest()}, the manifest says {size} "
                    f"bytes with sha256 {sha256} (the file changed on the server, or the transfer "
                    "damaged it)"
                )

        self._retry(name, "download", attempt)

    def fetch_ranges(
        self,
        requests: Sequence[tuple[str, int, int]],
        check: Callable[[int, bytes], None] | None = None,
    ) -> list[bytes | FetchError]:
        """Byte ranges ``[start, end)`` of files of this folder, fetched concurrently.

        Parameters
        ----------
        requests : sequence of (str, int, int)
            File name, first byte, one past the last byte.
        check : callable, optional
            ``check(i, data)`` may raise :class:`BadBytes` for the ``i``-th range (e.g. a
            checksum of what it holds).

        Returns
        -------
        list
            For each request, its bytes or the :class:`FetchError` it ended with: a range that
            failed, came back short or failed ``check`` is fetched again, up to ``retries``
            times; "not found" and "forbidden" are not retried.

        Raises
        ------
        ServerError
            A range came back longer than asked: the server ignores ``Range`` (HTTP 200 with
            the whole file), which no retry fixes.
        """
        out: list[bytes | FetchError | None] = [None] * len(requests)
        last: dict[int, str] = {}
        pending = list(range(len(requests)))
        for attempt in range(self.retries + 1):
            if attempt:
                self.stats.retries += len(pending)
                time.sleep(_PAUSE_S * 2 ** (attempt - 1))
            paths = [self._path(requests[i][0]) for i in pending]
            starts = [requests[i][1] for i in pending]
            ends = [requests[i][2] for i in pending]
            self.stats.requests += len(pending)
            results = self.fs.cat_ranges(paths, starts, ends, on_error="return")
            again = []
            for i, data in zip(pending, results, strict=True):
                name, start, end = requests[i]
                url = self.url_of(name)
                if isinstance(data, BaseException):
                    if _permanent(data):
                        out[i] = FetchError(f"{url}: not found or refused ({type(data).__name__})")
                        continue
                    last[i] = redact_url(f"{type(data).__name__}: {data}")
                    again.append(i)
                    continue
                self.stats.bytes += len(data)
                if len(data) > end - start:  # never a transfer fault: the server ignored Range
                    raise ServerError(
                        f"{url}: asked for bytes {start}-{end - 1}, the server sent {len(data)} "
                        f"bytes: it does not answer Range requests (HTTP 206), and every read "
                        f"of a record would fetch the whole file; {_RANGE_FIX}"
                    )
                try:
                    if len(data) < end - start:
                        raise BadBytes(f"{len(data)} bytes for a range of {end - start}")
                    if check is not None:
                        check(i, data)
                except BadBytes as exc:
                    last[i] = str(exc)
                    again.append(i)
                    continue
                out[i] = data
            pending = again
            if not pending or attempt == self.retries:
                break
            log.warning("%d byte ranges failed (%s); retrying", len(pending), last[pending[0]])
        for i in pending:
            name, start, end = requests[i]
            out[i] = FetchError(
                f"{self.url_of(name)}: bytes {start}-{end - 1} failed {self.retries + 1} times, "
                f"the last time: {last[i]}"
            )
        return out  # type: ignore[return-value] - every slot is filled above


def fetch_url(url: str, *, retries: int = DEFAULT_RETRIES) -> bytes:
    """The whole file at ``url`` (see :meth:`RemoteFolder.fetch`)."""
    folder, name, query = split_url(url)
    return RemoteFolder(folder, retries=retries).fetch(name + query)
