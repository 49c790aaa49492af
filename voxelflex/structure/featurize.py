"""``voxelflex features``: the feature sidecar of structure files, in parallel over files.

For users who already have an aposteriori HDF5 and its structure files: the sidecar is keyed
like the voxel file (domain = file name up to its first dot; chain; residue key), so
``index build --features`` joins it. ``voxelflex voxelize --features`` computes the same table
from the same reading while it voxelizes.
"""

from __future__ import annotations

import csv
import functools
import io
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from tqdm import tqdm

from voxelflex.atomic import atomic_write_text
from voxelflex.errors import InputError, VoxelflexError
from voxelflex.logs import command_log
from voxelflex.paths import check_output, require_suffix
from voxelflex.structure.features import compute_features, feature_table, write_feature_sidecar
from voxelflex.structure.frames import KeyRule, compute_frames
from voxelflex.structure.io import AltlocRule, find_structure_files, read_structure
from voxelflex.structure.parallel import ordered_map

__all__ = ["FeaturizeReport", "featurize_files"]


@dataclass(frozen=True)
class FeaturizeReport:
    """What :func:`featurize_files` wrote.

    Attributes
    ----------
    out_path : Path
        The sidecar.
    skipped_csv : Path
        ``file, reason, detail``: files whose features could not be computed (``reason``
        ``unreadable_file`` or ``features_failed``, as in the voxelizer's skip table); written
        only when there are some.
    files, files_failed, residues : int
    feature_seconds : float
        Time computing features, summed over workers (one core).
    wall_seconds : float
    """

    out_path: Path
    skipped_csv: Path | None
    files: int
    files_failed: int
    residues: int
    feature_seconds: float
    wall_seconds: float

    @property
    def residues_per_second(self) -> float:
        """Feature computation rate on one core (reading excluded)."""
        return self.residues / self.feature_seconds if self.feature_seconds else float("nan")


def _one(
    path: str, *, altloc: str, keys: KeyRule
) -> tuple[str, pa.Table | None, tuple[str, str] | None, float]:
    """The file's feature table, or None and (reason, detail) as in the voxelizer's skip table."""
    try:
        structure = read_structure(path, altloc=altloc)
    except VoxelflexError as exc:
        return path, None, ("unreadable_file", str(exc)), 0.0
    try:
        t0 = time.perf_counter()
        values = compute_features(structure.resolved(), where=path, crystal=structure.crystal)
        seconds = time.perf_counter() - t0
        # the frames' residue keys, as the voxel file has them (not timed: features only)
        table = feature_table(structure.domain, values, compute_frames(structure, keys=keys))
    except VoxelflexError as exc:
        return path, None, ("features_failed", str(exc)), 0.0
    return path, table, None, seconds


def featurize_files(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    out_path: str | os.PathLike,
    *,
    workers: int = 1,
    altloc: AltlocRule = "first",
    keys: KeyRule = "aposteriori",
    progress: bool = True,
    overwrite: bool = False,
) -> FeaturizeReport:
    """Compute the structure features of every residue with N, CA and C in the files.

    Parameters
    ----------
    paths : path or iterable of paths
        Structure files and folders of them (as :func:`voxelflex.structure.voxelize_files`).
    out_path : path
        The sidecar Parquet (written atomically).
    workers : int
        Processes computing features.
    altloc : {"first", "occupancy"}
        Conformer rule; use the one the voxel file was made with.
    keys : {"aposteriori", "icode"}
        Residue keys of the rows (:mod:`voxelflex.structure.keys`); use the rule the voxel file
        was made with (aposteriori's own files: ``"aposteriori"``).
    progress : bool
    overwrite : bool
        Replace an existing sidecar.

    Raises
    ------
    InputError
        No structure file, or none could be read (reasons named).
    """
    start = time.perf_counter()
    files = find_structure_files(paths)
    inputs = [("structure file", f) for f in files]
    out_path = check_output(out_path, inputs=inputs, overwrite=overwrite, what="feature sidecar")
    require_suffix(out_path, (".parquet", ".pq"), what="feature sidecar")
    with command_log(out_path, "features"):
        tables, failed, seconds = [], [], 0.0
        work = functools.partial(_one, altloc=altloc, keys=keys)
        bar = tqdm(total=len(files), unit="file", disable=not progress, desc="features")
        for path, table, error, t in ordered_map(work, [str(f) for f in files], workers):
            bar.update()
            seconds += t
            if table is None:
                failed.append((path, *error))
            else:
                tables.append(table)
        bar.close()
        skipped_csv = None
        stale = out_path.with_name(out_path.name + ".skipped.csv")
        stale.unlink(missing_ok=True)  # an earlier run's report would list files that now succeed
        if failed:
            skipped_csv = stale
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(["file", "reason", "detail"])
            writer.writerows(failed)
            atomic_write_text(skipped_csv, buffer.getvalue())
        if not tables:
            raise InputError(
                f"none of {len(files)} structure file(s) could be read; see {skipped_csv}"
            )
        rows = write_feature_sidecar(out_path, tables, altloc=altloc, keys=keys)
        return FeaturizeReport(
            out_path=out_path,
            skipped_csv=skipped_csv,
            files=len(files),
            files_failed=len(failed),
            residues=rows,
            feature_seconds=seconds,
            wall_seconds=time.perf_counter() - start,
        )
