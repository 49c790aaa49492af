"""An index that is built and current: reuse it when its inputs are the same and unchanged."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from voxelflex.errors import ConfigError, VoxelflexError
from voxelflex.index.build import build_index
from voxelflex.index.fingerprint import fingerprint_change
from voxelflex.index.read import read_meta
from voxelflex.index.schema import IndexMeta

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
    keep: bool = False,
) -> Path:
    """Build the index at ``path`` unless it was built from exactly these inputs, unchanged.

    A resumed run then skips rebuilding (minutes for mdCATH). ``path`` is owned by the caller
    (a run's own ``index/index.parquet``): an outdated one is replaced, unless ``keep``.

    Parameters
    ----------
    keep : bool
        Refuse to replace an index at ``path`` that is not current (a resumed run: its
        checkpoints were trained on that index, which a rebuild would lose for good).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ConfigError
        With ``keep``: the index at ``path`` is not current; the message says why.
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
            meta = read_meta(path, check_inputs=False)
        except VoxelflexError as exc:  # not an index, another format version or frame
            why = str(exc)
        else:
            why = _why_not_current(meta, rmsf_unit, wanted)
        if why is None:
            for fp in meta.fingerprints.values():
                if not os.path.isfile(fp["path"]):  # as read_meta warns of it
                    log.warning("%s is not here; using the index %s as built", fp["path"], path)
            log.info("reusing the sample index %s (its inputs are unchanged)", path)
            return path
        if keep:
            raise ConfigError(
                f"--resume: the run's index {path} is not current ({why}); the run was trained "
                "on it, and rebuilding it would lose it for good. Restore the inputs as they "
                "were (same files, sizes and modification times) to resume, or start a new run "
                "from these inputs (another --run-name, or --overwrite)"
            )
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


def _why_not_current(meta: IndexMeta, rmsf_unit: str | None, wanted: dict[str, str]) -> str | None:
    """Why an index was not built from these inputs as they are now; None if it was."""
    changed = [
        f"{name.replace('_', ' ')} {fp['path']} changed since the index was built ({detail})"
        for name, fp in sorted(meta.fingerprints.items())
        if (detail := fingerprint_change(fp))
    ]
    if changed:
        return "; ".join(changed)
    if meta.rmsf_unit != rmsf_unit:
        return f"it holds RMSF in {meta.rmsf_unit}, the run asks for {rmsf_unit}"
    built = meta.input_paths()
    if built == wanted:
        return None
    differ = sorted(k for k in built.keys() | wanted.keys() if built.get(k) != wanted.get(k))
    return "built from other inputs: " + "; ".join(
        f"{k} {built.get(k)} (index) vs {wanted.get(k)} (run)" for k in differ
    )
