"""Cheap input fingerprints (size, mtime; key listing for the HDF5), not content hashes.

Hashing a multi-GB voxel file would take longer than building the index; size and mtime catch
a replaced or rewritten file (a copy that keeps both, ``cp -p`` of an equal-size rewrite, passes).
The HDF5's key-listing hash is recorded for the shard manifest, which compares it with the
index's; it is not recomputed from the file here.
"""

from __future__ import annotations

import logging
import os

from voxelflex.errors import IndexFormatError

__all__ = ["check_fingerprint", "file_fingerprint", "fingerprint_change"]

log = logging.getLogger(__name__)


def file_fingerprint(path: str | os.PathLike, **extra: object) -> dict:
    """Return ``{"path", "size", "mtime_ns", **extra}`` for ``path``."""
    st = os.stat(path)
    return {"path": os.path.abspath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns, **extra}


def fingerprint_change(recorded: dict) -> str | None:
    """How the file behind ``recorded`` changed (``"size 1 -> 2"``); None if it did not, or is
    not there."""
    if not os.path.isfile(recorded["path"]):
        return None
    now = file_fingerprint(recorded["path"])
    changed = [k for k in ("size", "mtime_ns") if now[k] != recorded.get(k)]
    return ", ".join(f"{k} {recorded.get(k)} -> {now[k]}" for k in changed) or None


def check_fingerprint(recorded: dict, *, index_path: str, what: str) -> None:
    """Raise :class:`IndexFormatError` if the file behind ``recorded`` changed.

    A missing file is only logged: an index travels with its shards to machines that lack the
    HDF5 or the CSV, and whatever later needs the file names it when opening it fails.
    """
    path = recorded["path"]
    fix = f"rebuild the index with `voxelflex index build` (index: {index_path})"
    if not os.path.isfile(path):
        log.warning(
            "%s %s recorded in index %s is not here; using the index as built",
            what,
            path,
            index_path,
        )
        return
    if detail := fingerprint_change(recorded):
        raise IndexFormatError(
            f"{what} {path} changed since the index was built ({detail}): the index is stale; {fix}"
        )
