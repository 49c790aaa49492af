"""Write frames in aposteriori's HDF5 layout, and voxelize many structure files into one file.

Layout (what ``voxelflex index build`` reads, as aposteriori 2.4.0 writes it): ``f[domain][chain]
[resid]`` is a bool dataset ``(21, 21, 21, 5)`` (x, y, z, channel C, N, O, CA, CB), gzip level 4
in chunks of ``(11, 11, 11, 5)``, with attributes ``label`` (residue name), ``encoded_residue``
(bool one-hot over the 20 standard residues) and ``rotamers`` (``"NAN"``). Root attributes are
aposteriori's (``make_frame_dataset_ver``, ``frame_dims``, ``atom_encoder``, ``encode_cb``,
``atom_filter_fn``, ``residue_encoder``, ``frame_edge_length``, ``voxels_as_gaussian``) plus
voxelflex's record of how the file was made (``voxelflex_*``).

Most of the time of a write goes to HDF5 itself (a dataset and three attributes per residue), so
the gzip chunks are compressed beside the frames (in the worker processes) and written with
``write_direct_chunk``.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import logging
import os
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
from tqdm import tqdm

from voxelflex.atomic import atomic_path, atomic_write_text
from voxelflex.errors import InputError, VoxelflexError
from voxelflex.frame import FRAME
from voxelflex.logs import command_log
from voxelflex.paths import check_output, require_suffix
from voxelflex.structure.features import compute_features, feature_table, write_feature_sidecar
from voxelflex.structure.frames import KEY_RULES, FrameSet, KeyRule, Skip, compute_frames
from voxelflex.structure.io import (
    ALTLOC_RULES,
    AltlocRule,
    domain_key,
    find_structure_files,
    read_structure,
)
from voxelflex.structure.parallel import ordered_map
from voxelflex.structure.residue_codes import STANDARD_RESIDUES, encode_residue

__all__ = [
    "VOXELIZER_VERSION",
    "CompressedFrames",
    "VoxelizeReport",
    "WriteResult",
    "compress_frames",
    "voxelize_files",
    "write_voxel_hdf5",
]

log = logging.getLogger(__name__)

# Bump when the frames or the layout written change; recorded as `voxelflex_voxelizer_version`.
VOXELIZER_VERSION = 1
APOSTERIORI_VERSION = "2.4.0"  # the frame dataset format and algorithm reproduced
_SIDE = FRAME.voxels_per_side
_CHUNK = (_SIDE + 1) // 2  # 11: aposteriori's (h5py's automatic) chunk edge
_N_CHANNELS = len(FRAME.channels)
_CHUNK_OFFSETS = [
    (x, y, z, 0) for x in (0, _CHUNK) for y in (0, _CHUNK) for z in (0, _CHUNK)
]  # C order of the 2 x 2 x 2 chunk grid
_GZIP_LEVEL = 4
_EMPTY_CHUNK = zlib.compress(bytes(_CHUNK**3 * _N_CHANNELS), _GZIP_LEVEL)
_STR = h5py.string_dtype("utf-8")  # attribute text: variable-length UTF-8, as h5py writes str


def _voxelflex_version() -> str:
    try:
        return version("voxelflex")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


@dataclass(frozen=True)
class CompressedFrames:
    """What the HDF5 writer needs of a :class:`FrameSet`: keys, labels and each grid as the
    eight gzip chunks HDF5 stores (small enough to keep on disk between runs).

    Attributes
    ----------
    domain, source : str
        As :class:`FrameSet`.
    chains, resids, labels : numpy.ndarray of str, shape (R,)
        HDF5 chain and residue keys, three-letter names.
    chunks : list of list of bytes
        Per residue, the zlib-compressed (level 4) chunks ``(11, 11, 11, 5)`` of its bool grid
        in the C order of the 2 x 2 x 2 chunk grid; edge chunks zero-padded, as HDF5 stores them.
    """

    domain: str
    source: str
    chains: np.ndarray
    resids: np.ndarray
    labels: np.ndarray
    chunks: list[list[bytes]]

    def __len__(self) -> int:
        return len(self.chains)


def compress_frames(frames: FrameSet) -> CompressedFrames:
    """Compress each grid of ``frames`` into its HDF5 gzip chunks (:class:`CompressedFrames`)."""
    grids = frames.grids()  # (R, 21, 21, 21, 5) bool view
    n = len(frames)
    # One copy straight into the chunk layout (R, 8 chunks, 11, 11, 11, 5); edges stay zero.
    blocks = np.zeros((n, 8, _CHUNK, _CHUNK, _CHUNK, _N_CHANNELS), dtype=bool)
    for i, (x, y, z, _) in enumerate(_CHUNK_OFFSETS):
        part = grids[:, x : x + _CHUNK, y : y + _CHUNK, z : z + _CHUNK]
        blocks[:, i, : part.shape[1], : part.shape[2], : part.shape[3]] = part
    blocks = blocks.reshape(n, 8, _CHUNK**3 * _N_CHANNELS)  # explicit: n may be 0
    filled = blocks.any(axis=2)  # about one chunk in ten is empty: its bytes are a constant
    chunks = [
        [
            zlib.compress(b.tobytes(), _GZIP_LEVEL) if f else _EMPTY_CHUNK
            for b, f in zip(res, full, strict=True)
        ]
        for res, full in zip(blocks, filled, strict=True)
    ]
    return CompressedFrames(
        frames.domain, frames.source, frames.chains, frames.resids, frames.labels, chunks
    )


def _root_attrs(keys: str, altloc: str) -> dict[str, object]:
    return {
        # aposteriori 2.4.0's own attributes, as its CLI with `-ae CNOCBCA -cb True` writes them
        "make_frame_dataset_ver": APOSTERIORI_VERSION,
        "frame_dims": np.array([_SIDE, _SIDE, _SIDE, _N_CHANNELS], dtype=np.int64),
        "atom_encoder": list(FRAME.channels),
        "encode_cb": True,
        "atom_filter_fn": "<function default_atom_filter>",
        "residue_encoder": list(STANDARD_RESIDUES),
        "frame_edge_length": float(FRAME.frame_edge_length),
        "voxels_as_gaussian": False,
        # how voxelflex made the file
        "voxelflex_voxelizer_version": VOXELIZER_VERSION,
        "voxelflex_version": _voxelflex_version(),
        "voxelflex_frame": json.dumps(FRAME.to_dict()),
        "voxelflex_keys": keys,
        "voxelflex_altloc": altloc,
    }


@dataclass(frozen=True)
class WriteResult:
    """What :func:`write_voxel_hdf5` wrote.

    Attributes
    ----------
    domains : int
        Domains written.
    residues : int
        Residue datasets written.
    seconds : float
        Time spent in HDF5 (not waiting for frames).
    skipped : tuple of Skip
        Structures not written: no residue, or a domain key already written.
    """

    domains: int
    residues: int
    seconds: float
    skipped: tuple[Skip, ...]


@dataclass
class _WriteStats:
    domains: int = 0
    residues: int = 0
    seconds: float = 0.0
    skipped: list[Skip] = field(default_factory=list)


class _Writer:
    """Appends domains to an open HDF5 file; a domain key already written is skipped.

    The first residue dataset is made with h5py's high-level API; every later one copies its
    creation properties and types through the low-level API, which is ≈1.6x faster and gives
    the same datasets and attributes.
    """

    def __init__(self, f: h5py.File):
        self.f = f
        self.stats = _WriteStats()
        self._template: tuple | None = None
        self._lcpl = h5py.h5p.create(h5py.h5p.LINK_CREATE)
        self._lcpl.set_char_encoding(h5py.h5t.CSET_UTF8)  # as h5py names links

    def _first_dataset(self, group: h5py.Group, resid: str, label: str, encoded: np.ndarray):
        ds = group.create_dataset(
            resid,
            shape=(_SIDE, _SIDE, _SIDE, _N_CHANNELS),
            dtype=bool,
            chunks=(_CHUNK, _CHUNK, _CHUNK, _N_CHANNELS),
            compression="gzip",
            compression_opts=_GZIP_LEVEL,
        )
        ds.attrs["label"] = label
        ds.attrs["rotamers"] = "NAN"
        ds.attrs["encoded_residue"] = encoded
        text, onehot = ds.attrs.get_id("label"), ds.attrs.get_id("encoded_residue")
        self._template = (
            ds.id.get_create_plist(),
            ds.id.get_type(),
            ds.id.get_space(),
            text.get_type(),
            text.get_space(),
            onehot.get_type(),
            onehot.get_space(),
        )
        return ds.id

    def _dataset(self, group: h5py.Group, resid: str, label: str, encoded: np.ndarray):
        if self._template is None:
            return self._first_dataset(group, resid, label, encoded)
        dcpl, tid, space, text_t, text_s, onehot_t, onehot_s = self._template
        ds = h5py.h5d.create(group.id, resid.encode(), tid, space, dcpl=dcpl, lcpl=self._lcpl)
        for name, value in ((b"label", label), (b"rotamers", "NAN")):
            h5py.h5a.create(ds, name, text_t, text_s).write(np.array(value, dtype=_STR))
        h5py.h5a.create(ds, b"encoded_residue", onehot_t, onehot_s).write(encoded)
        return ds

    def add(self, item: CompressedFrames) -> None:
        start = time.perf_counter()
        frames = item
        if len(frames) == 0:
            self.stats.skipped.append(
                Skip(frames.domain, "", "", "no_residues", f"{frames.source}: nothing to voxelize")
            )
            return
        if frames.domain in self.f:
            self.stats.skipped.append(
                Skip(
                    frames.domain,
                    "",
                    "",
                    "duplicate_domain",
                    f"{frames.source}: domain key {frames.domain!r} is "
                    "already in the file (from an earlier file of the same name up to its first "
                    "dot); rename one of the files",
                )
            )
            return
        domain = self.f.create_group(frames.domain)
        encoded = encode_residue(frames.labels)
        chains: dict[str, h5py.Group] = {}
        keys = zip(frames.chains.tolist(), frames.resids.tolist(), strict=True)
        for i, (chain, resid) in enumerate(keys):
            group = chains.get(chain)
            if group is None:
                group = chains[chain] = domain.create_group(chain)
            ds = self._dataset(group, resid, str(frames.labels[i]), encoded[i])
            for offset, data in zip(_CHUNK_OFFSETS, item.chunks[i], strict=True):
                ds.write_direct_chunk(offset, data)
        self.stats.domains += 1
        self.stats.residues += len(frames)
        self.stats.seconds += time.perf_counter() - start


def write_voxel_hdf5(
    framesets: Iterable[FrameSet | CompressedFrames],
    out_path: str | os.PathLike,
    *,
    keys: KeyRule = "aposteriori",
    altloc: AltlocRule = "first",
    before_landing: Callable[[WriteResult], None] | None = None,
) -> WriteResult:
    """Write frames into one HDF5 file in aposteriori's layout, atomically.

    Parameters
    ----------
    framesets : iterable of FrameSet or CompressedFrames
        One per structure, consumed once (a generator keeps memory bounded).
    out_path : path
        The HDF5 file; written to a temporary sibling and renamed at the end, so a crash never
        leaves a file that looks whole.
    keys, altloc : str
        Recorded in the root attributes (how the frames were made).
    before_landing : callable, optional
        Called with the result once every frame is written, before the file is renamed into
        place: for the files that describe it (a skip report), so that they are never older.

    Returns
    -------
    WriteResult

    Raises
    ------
    InputError
        Not one residue to write (no file is left behind).
    """
    with atomic_path(out_path, suffix=".hdf5") as tmp:
        with h5py.File(tmp, "w") as f:
            for name, value in _root_attrs(keys, altloc).items():
                f.attrs[name] = value
            writer = _Writer(f)
            for item in framesets:
                writer.add(item if isinstance(item, CompressedFrames) else compress_frames(item))
        stats = writer.stats
        if stats.residues == 0:
            raise InputError(f"{out_path}: no residue to write; nothing was voxelized")
        result = WriteResult(stats.domains, stats.residues, stats.seconds, tuple(stats.skipped))
        if before_landing is not None:
            before_landing(result)
    return result


@dataclass(frozen=True)
class VoxelizeReport:
    """What :func:`voxelize_files` did.

    Attributes
    ----------
    out_path : pathlib.Path
        The HDF5 file written.
    skipped_csv : pathlib.Path
        ``file, domain, chain, resid, reason, detail``: one row per file, chain or residue not
        written; ``reason`` is a key of :data:`voxelflex.structure.frames.SKIP_REASONS`.
    files : int
        Structure files given.
    files_failed : int
        Files that could not be read at all.
    files_aposteriori_rejects : int
        Files aposteriori 2.4.0 would have refused as a whole (voxelflex wrote what was sound).
    domains, residues : int
        Domains and residue datasets written.
    skipped : int
        Rows of ``skipped_csv``.
    skipped_by_reason : dict of str to int
        The same rows counted per reason.
    read_seconds, frame_seconds, compress_seconds : float
        Time summed over workers: parsing files, computing frames in memory, gzip of the chunks.
    write_seconds : float
        Time in HDF5 (one process).
    wall_seconds : float
        Elapsed time of the whole call.
    workers : int
    features_path : pathlib.Path or None
        The feature sidecar, when asked for.
    feature_seconds : float
        Time summed over workers computing features.
    """

    out_path: Path
    skipped_csv: Path
    files: int
    files_failed: int
    files_aposteriori_rejects: int
    domains: int
    residues: int
    skipped: int
    read_seconds: float
    frame_seconds: float
    compress_seconds: float
    write_seconds: float
    wall_seconds: float
    workers: int
    features_path: Path | None = None
    feature_seconds: float = 0.0
    skipped_by_reason: dict[str, int] = field(default_factory=dict)

    @property
    def frames_per_second(self) -> float:
        """Residues per second of frame computation in memory, per worker (one core)."""
        return self.residues / self.frame_seconds if self.frame_seconds else float("nan")

    @property
    def write_per_second(self) -> float:
        """Residues per second written to HDF5 (one process)."""
        return self.residues / self.write_seconds if self.write_seconds else float("nan")


@dataclass(frozen=True)
class _FileResult:
    path: str
    item: CompressedFrames | None
    failure: Skip | None  # why item is None
    read_seconds: float
    frame_seconds: float
    compress_seconds: float
    features: pa.Table | None = None
    feature_seconds: float = 0.0
    skipped: tuple[Skip, ...] = ()
    rejects: bool = False


def _voxelize_one(path: str, *, keys: str, altloc: str, features: bool) -> _FileResult:
    t0 = time.perf_counter()
    try:
        structure = read_structure(path, altloc=altloc)
    except VoxelflexError as exc:
        failure = Skip(domain_key(path), "", "", "unreadable_file", str(exc))
        return _FileResult(path, None, failure, time.perf_counter() - t0, 0.0, 0.0)
    t1 = time.perf_counter()
    frames = compute_frames(structure, keys=keys)
    t2 = time.perf_counter()
    item = compress_frames(frames)
    t3 = time.perf_counter()
    table = None
    if features:  # the same reading of the file as the frames: one conformer, one model
        try:
            values = compute_features(structure.resolved(), where=path, crystal=structure.crystal)
        except VoxelflexError as exc:  # frames without features would join nothing: skip all
            failure = Skip(domain_key(path), "", "", "features_failed", str(exc))
            return _FileResult(path, None, failure, t1 - t0, t2 - t1, t3 - t2)
        table = feature_table(structure.domain, values, frames)
    return _FileResult(
        path,
        item,
        None,
        t1 - t0,
        t2 - t1,
        t3 - t2,
        table,
        time.perf_counter() - t3,
        frames.skipped,
        bool(frames.aposteriori_rejects),
    )


def _results(
    paths: Sequence[Path], keys: str, altloc: str, workers: int, features: bool
) -> Iterator[_FileResult]:
    """Per-file results in input order."""
    return ordered_map(
        functools.partial(_voxelize_one, keys=keys, altloc=altloc, features=features),
        [str(p) for p in paths],
        workers,
    )


def _write_skips(path: Path, rows: list[tuple[str, Skip]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["file", "domain", "chain", "resid", "reason", "detail"])
    for file, s in rows:
        writer.writerow([file, s.domain, s.chain, s.resid, s.reason, s.detail])
    atomic_write_text(path, buf.getvalue())


def voxelize_files(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    out_path: str | os.PathLike,
    *,
    workers: int = 1,
    keys: KeyRule = "aposteriori",
    altloc: AltlocRule = "first",
    progress: bool = True,
    features: bool = False,
    overwrite: bool = False,
) -> VoxelizeReport:
    """Voxelize structure files into one HDF5 file in aposteriori's layout.

    Parameters
    ----------
    paths : path or iterable of paths
        Structure files (``.pdb``, ``.ent``, ``.cif``, ``.mmcif``, each optionally ``.gz``) and
        folders of them.
    out_path : path
        HDF5 file to write (atomically). The skip report is written beside it as
        ``<out_path>.skipped.csv``.
    workers : int
        Processes computing frames (reading, frames, gzip) in parallel; one process writes.
    keys : {"aposteriori", "icode"}
        Residue keys (:func:`voxelflex.structure.compute_frames`).
    altloc : {"first", "occupancy"}
        Conformer rule (:func:`voxelflex.structure.read_structure`).
    progress : bool
        Show a progress bar over files.
    features : bool
        Also compute the structure features (:func:`voxelflex.structure.features.compute_features`)
        of the same residues from the same reading, into the sidecar
        ``<out stem>.features.parquet``.
    overwrite : bool
        Replace an existing output (refused otherwise: :mod:`voxelflex.paths`).

    Returns
    -------
    VoxelizeReport

    Raises
    ------
    InputError
        No structure file given, or not one residue could be voxelized (no file is written).
    """
    if keys not in KEY_RULES:
        raise InputError(f"keys={keys!r} is not one of {KEY_RULES}")
    if altloc not in ALTLOC_RULES:
        raise InputError(f"altloc={altloc!r} is not one of {ALTLOC_RULES}")
    if workers < 1:
        raise InputError(f"workers={workers} must be at least 1")
    files = find_structure_files(paths)
    inputs = [("structure file", f) for f in files]
    require_suffix(out_path, (".hdf5", ".h5"), what="voxel file")
    out_path = check_output(out_path, inputs=inputs, overwrite=overwrite, what="voxel file")
    with command_log(out_path, "voxelize"):
        features_path = out_path.with_suffix(".features.parquet") if features else None
        if features_path is not None:
            check_output(features_path, inputs=inputs, overwrite=overwrite, what="feature sidecar")
        start = time.perf_counter()
        rows: list[tuple[str, Skip]] = []
        tables: list[pa.Table] = []
        written_domains: set[str] = set()
        totals = {
            "read": 0.0,
            "frame": 0.0,
            "compress": 0.0,
            "features": 0.0,
            "failed": 0,
            "rejects": 0,
        }

        def items() -> Iterator[CompressedFrames]:
            bar = tqdm(total=len(files), unit="file", disable=not progress, desc="voxelize")
            for result in _results(files, keys, altloc, workers, features):
                bar.update()
                totals["read"] += result.read_seconds
                totals["frame"] += result.frame_seconds
                totals["compress"] += result.compress_seconds
                totals["features"] += result.feature_seconds
                if result.item is None:
                    totals["failed"] += 1
                    rows.append((result.path, result.failure))
                    continue
                # The writer keeps the first file of a domain key that has residues; the sidecar
                # keeps that file's features, no other's.
                if len(result.item) and result.item.domain not in written_domains:
                    written_domains.add(result.item.domain)
                    if result.features is not None:
                        tables.append(result.features)
                totals["rejects"] += result.rejects
                rows.extend((result.path, s) for s in result.skipped)
                yield result.item
            bar.close()

        def before_landing(written: WriteResult) -> None:
            # Every frame is in the temporary file, which the writer renames into place next.
            # The sidecar being replaced (--features) and the earlier voxel file go first, then
            # the skip report, so a crash in between never pairs the new frames with the old
            # features or report, nor the old frames with the new report; without --features
            # the sidecar is left alone.
            if features_path is not None and written_domains:
                features_path.unlink(missing_ok=True)
            out_path.unlink(missing_ok=True)
            _write_skips(skipped_csv, [*rows, *(("", s) for s in written.skipped)])

        skipped_csv = out_path.with_name(out_path.name + ".skipped.csv")
        sidecar = out_path.with_suffix(".features.parquet")
        if features_path is None and out_path.exists() and sidecar.exists():
            log.warning(
                "%s is replaced but %s beside it is not (no --features): recompute the sidecar "
                "if the structures changed",
                out_path,
                sidecar,
            )
        try:
            written = write_voxel_hdf5(
                items(), out_path, keys=keys, altloc=altloc, before_landing=before_landing
            )
        except InputError:
            _write_skips(skipped_csv, rows)
            raise InputError(
                f"no residue could be voxelized from {len(files)} file(s), so {out_path} was not "
                f"written; reasons in {skipped_csv}"
            ) from None
        rows.extend(("", s) for s in written.skipped)
        if features_path is not None:
            write_feature_sidecar(features_path, tables, altloc=altloc, keys=keys)
        return VoxelizeReport(
            out_path=out_path,
            skipped_csv=skipped_csv,
            files=len(files),
            files_failed=int(totals["failed"]),
            files_aposteriori_rejects=int(totals["rejects"]),
            domains=written.domains,
            residues=written.residues,
            skipped=len(rows),
            read_seconds=totals["read"],
            frame_seconds=totals["frame"],
            compress_seconds=totals["compress"],
            write_seconds=written.seconds,
            wall_seconds=time.perf_counter() - start,
            workers=workers,
            features_path=features_path,
            feature_seconds=totals["features"],
            skipped_by_reason=dict(sorted(Counter(s.reason for _, s in rows).items())),
        )
