"""A localhost HTTP server that honours ``Range`` and injects faults (tests and benchmarks).

Python's ``http.server`` ignores ``Range`` (it always answers 200 with the whole file), so a
client that reads byte ranges would silently get whole files. This handler answers a single
``bytes=a-b`` range with 206 and ``Content-Range``, ``HEAD`` with the size, and keeps
connections alive (HTTP/1.1) as object stores do. It counts what it sends, and each file can be
given faults to apply to its next requests:

``drop``
    send the headers of the full reply, half of the body, then close the connection;
``404``
    answer 404 as if the file were not there;
``corrupt``
    flip one byte in the middle of the body;
``ignore_range``
    answer 200 with the whole file, as the stock handler does.

    with RangeServer(folder) as server:
        server.inject("shard-000001.tar", "drop")      # once; times=None: every request
        url = server.url                               # http://127.0.0.1:PORT
        ...
        server.bytes_sent, server.statuses()
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
from collections import Counter
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

__all__ = ["FAULTS", "RangeServer", "Request"]

FAULTS = ("drop", "404", "corrupt", "ignore_range")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass(frozen=True)
class Request:
    """One request as served: method, file name, HTTP status, range asked for, body bytes sent."""

    method: str
    name: str
    status: int
    range: str | None
    sent: int


class RangeServer:
    """Serve ``root`` on 127.0.0.1 (a free port) from a background thread.

    Parameters
    ----------
    root : path
        Folder whose files are served (no listings, nothing outside it).
    query : str, optional
        A query string every request must carry (a folder's access token): without it, 404.
    """

    def __init__(self, root: str | os.PathLike, *, query: str | None = None) -> None:
        self.root = Path(root).resolve()
        self.query = query
        self._lock = threading.Lock()
        self._faults: dict[str, list[str | None]] = {}
        self.requests: list[Request] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ control

    def __enter__(self) -> RangeServer:
        owner = self

        class Handler(_Handler):
            server_owner = owner

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def inject(self, name: str, fault: str, times: int | None = 1) -> None:
        """Apply ``fault`` to the next ``times`` requests for ``name`` (None: all of them)."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; valid: {FAULTS}")
        with self._lock:
            self._faults[name] = [fault] * times if times is not None else [fault, None]

    def clear(self) -> None:
        """Forget faults and the request log."""
        with self._lock:
            self._faults.clear()
            self.requests.clear()

    @property
    def bytes_sent(self) -> int:
        """Body bytes sent (or begun) for GET requests: what a client fetched."""
        with self._lock:
            return sum(r.sent for r in self.requests if r.method == "GET")

    def statuses(self, method: str = "GET") -> Counter:
        """HTTP status → number of ``method`` requests answered with it."""
        with self._lock:
            return Counter(r.status for r in self.requests if r.method == method)

    # ------------------------------------------------------------------ handler hooks

    def _next_fault(self, name: str) -> str | None:
        with self._lock:
            queue = self._faults.get(name)
            if not queue:
                return None
            if queue[-1] is None:  # persistent: [fault, None]
                return queue[0]
            fault = queue.pop(0)
            if not queue:
                del self._faults[name]
            return fault

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)


class _Server(ThreadingHTTPServer):
    # socketserver's backlog of 5 drops the SYNs of a client that opens dozens of connections
    # at once (fsspec fetches byte ranges concurrently); each dropped SYN costs a 1-3 s resend.
    request_queue_size = 256


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as object stores do
    server_owner: RangeServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm
        # and the client's delayed ACK add ≈40 ms to every keep-alive request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format, *args) -> None:
        """Quiet: the owner keeps the request log."""

    def _file(self) -> tuple[str, Path | None]:
        url = urlsplit(self.path)
        name = unquote(url.path).lstrip("/")
        path = (self.server_owner.root / name).resolve()
        token = self.server_owner.query
        if self.server_owner.root not in path.parents or not path.is_file():
            return name, None
        if token is not None and unquote(url.query) != unquote(token):  # clients may requote
            return name, None
        return name, path

    def do_HEAD(self) -> None:
        name, path = self._file()
        if path is None:
            self._empty(HTTPStatus.NOT_FOUND, "HEAD", name)
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Length", str(path.stat().st_size))
        self.send_header("Accept-Ranges", "bytes")
        self.server_owner._record(Request("HEAD", name, 200, None, 0))
        self.end_headers()

    def do_GET(self) -> None:
        name, path = self._file()
        fault = self.server_owner._next_fault(name) if path else None
        if path is None or fault == "404":
            self._empty(HTTPStatus.NOT_FOUND, "GET", name)
            return
        size = path.stat().st_size
        asked = self.headers.get("Range")
        status, start, end = HTTPStatus.OK, 0, size
        if asked and fault != "ignore_range":
            match = _RANGE.match(asked.strip())
            if match is None or match.groups() == ("", ""):
                self._empty(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, "GET", name, asked)
                return
            a, b = match.groups()
            if a == "":  # suffix range: the last b bytes
                start, end = max(0, size - int(b)), size
            else:
                start, end = int(a), size if b == "" else min(int(b) + 1, size)
            if start >= size or start >= end:
                self._empty(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, "GET", name, asked)
                return
            status = HTTPStatus.PARTIAL_CONTENT
        with open(path, "rb") as fh:  # only the bytes asked for
            fh.seek(start)
            body = bytearray(fh.read(end - start))
        if fault == "corrupt" and body:
            body[len(body) // 2] ^= 0xFF
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        if status == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        self.end_headers()
        # Recorded before the body goes out: a client that has its reply may look at the log
        # before this thread runs again.
        if fault == "drop":
            half = len(body) // 2
            self.server_owner._record(Request("GET", name, int(status), asked, half))
            with contextlib.suppress(OSError):
                self.wfile.write(body[:half])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.server_owner._record(Request("GET", name, int(status), asked, len(body)))
        self.wfile.write(body)

    def _empty(self, status: HTTPStatus, method: str, name: str, asked: str | None = None) -> None:
        self.server_owner._record(Request(method, name, int(status), asked, 0))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()
