"""An index that is built and current: reuse it when its inputs are the same and unchanged."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from voxelflex.errors import VoxelflexError
from voxelflex.index.build import build_index
from voxelflex.index.read import read_meta

__all__ = ["ensure_index"]

log = logging.getLogger(__name__)


def ensure_index(
    path: str | os.PathLike,
    *,
    voxel_file: str | os.PathLike,
    rmsf_csv: str | os.PathLike | None = None,
    rmsf_unit: str | None = None,
    train: str | os.PathLike | None = None,
    val: str | os.PathLike | None = None,
    test: str | os.PathLike | None = None,
    features: str | os.PathLike | None = None,
    progress: bool = True,
) -> Path:
    """Build the index at ``path`` unless it was built from exactly these inputs, unchanged.

    A resumed run then skips rebuilding (minutes for mdCATH). ``path`` is owned by the caller
    (a run's own ``index/index.parquet``): an outdated one is replaced.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    wanted = {
        "voxel_file": voxel_file,
        "rmsf_csv": rmsf_csv,
        "train_split": train,
        "val_split": val,
        "test_split": test,
        "features": features,
    }
    wanted = {k: os.path.abspath(v) for k, v in wanted.items() if v is not None}
    if path.is_file():
        try:
            meta = read_meta(path)  # IndexFormatError when an input changed since the build
        except VoxelflexError:
            meta = None
        if meta is not None and meta.rmsf_unit == rmsf_unit and meta.input_paths() == wanted:
            log.info("reusing the sample index %s (its inputs are unchanged)", path)
            return path
    log.info("building the sample index %s from %s", path, voxel_file)
    build_index(
        voxel_file,
        path,
        rmsf_csv=rmsf_csv,
        rmsf_unit=rmsf_unit,
        train=train,
        val=val,
        test=test,
        features=features,
        progress=progress,
        overwrite=True,
    )
    return path
