"""One imported domain on disk between runs: the resumable unit of ``voxelflex import mdcath``.

A part is an ``.npz`` file (no pickles) in ``<dataset>/.import/parts/`` named after its source
file and that file's size and modification time, so a changed source file is imported again.
It holds everything the final outputs need from the domain: the voxel grids as their HDF5 gzip
chunks, the RMSF rows, the feature rows and the report lines. Written atomically: a part that
exists is whole.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from voxelflex.atomic import atomic_path
from voxelflex.structure.hdf5 import CompressedFrames

__all__ = ["DomainPart", "part_name", "read_part", "write_part"]


def part_name(source: str | os.PathLike) -> str:
    """``<file name>.<size>-<mtime ns>.<folder hash>.npz``: names the source file as it is now.

    The hash of the file's resolved folder tells copies of one file in two folders apart (a
    ``cp -p`` keeps size and time), so each has a part and the second is seen as a duplicate.
    """
    st = os.stat(source)
    folder = hashlib.sha256(str(Path(source).resolve().parent).encode()).hexdigest()[:8]
    return f"{Path(source).name}.{st.st_size}-{st.st_mtime_ns}.{folder}.npz"


@dataclass(frozen=True)
class DomainPart:
    """What one source file contributes to the dataset.

    Attributes
    ----------
    meta : dict
        ``domain``, ``source``, ``settings`` (hash), ``renamed`` (CHARMM renames),
        ``numbering_offset`` (or None), ``seconds`` per step, counts.
    frames : CompressedFrames or None
        The voxel grids (None for a refused domain).
    rows : pyarrow.Table
        RMSF CSV rows (possibly empty).
    features : pyarrow.Table or None
        Feature sidecar rows.
    skips : pyarrow.Table
        Report lines: ``domain, chain, resid, temperature, reason, detail``.
    """

    meta: dict
    frames: CompressedFrames | None
    rows: pa.Table
    features: pa.Table | None
    skips: pa.Table


def _ipc(table: pa.Table | None) -> np.ndarray:
    if table is None:
        return np.zeros(0, np.uint8)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return np.frombuffer(sink.getvalue(), np.uint8)


def _table(data: np.ndarray) -> pa.Table | None:
    if len(data) == 0:
        return None
    return pa.ipc.open_stream(pa.py_buffer(data.tobytes())).read_all()


def write_part(path: str | os.PathLike, part: DomainPart) -> None:
    """Write ``part`` atomically to ``path``."""
    arrays = {
        "meta": np.frombuffer(json.dumps(part.meta).encode("utf-8"), np.uint8),
        "rows": _ipc(part.rows),
        "features": _ipc(part.features),
        "skips": _ipc(part.skips),
    }
    f = part.frames
    if f is not None:
        sizes = np.array([[len(c) for c in res] for res in f.chunks], np.int64).reshape(-1, 8)
        arrays |= {
            "chains": f.chains.astype(str),
            "resids": f.resids.astype(str),
            "labels": f.labels.astype(str),
            "chunk_sizes": sizes,
            "chunk_bytes": np.frombuffer(b"".join(b"".join(res) for res in f.chunks), np.uint8),
        }
    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def read_part(path: str | os.PathLike) -> DomainPart:
    """Read a part written by :func:`write_part`."""
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(z["meta"].tobytes().decode("utf-8"))
        frames = None
        if "chunk_bytes" in z:
            data = z["chunk_bytes"].tobytes()
            ends = np.cumsum(z["chunk_sizes"].ravel()).tolist()
            starts = [0, *ends[:-1]]
            flat = [data[a:b] for a, b in zip(starts, ends, strict=True)]
            frames = CompressedFrames(
                meta["domain"],
                meta["source"],
                z["chains"],
                z["resids"],
                z["labels"],
                [flat[i : i + 8] for i in range(0, len(flat), 8)],
            )
        return DomainPart(
            meta, frames, _table(z["rows"]), _table(z["features"]), _table(z["skips"])
        )
