"""What the trainer needs from the data: the index, train/val sources, plans and statistics."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow.compute as pc

from voxelflex.config import Config
from voxelflex.engine.checkpoint import index_fingerprint
from voxelflex.engine.distributed import DistContext
from voxelflex.errors import ConfigError, TrainingError, VoxelflexError

if TYPE_CHECKING:
    from voxelflex.index import LoadedIndex
    from voxelflex.sources import PlanConfig, SampleSource

__all__ = ["TrainingData", "open_training_data"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingData:
    """Index, sources and plan settings of one training run.

    Attributes
    ----------
    index : LoadedIndex
    train, val : SampleSource
    plan, val_plan : PlanConfig
        Shuffled training plan and in-order validation plan for this rank.
    fingerprint : str
        :func:`~voxelflex.engine.checkpoint.index_fingerprint` of the index.
    target : numpy.ndarray of float32, shape (N_train_rows,)
        Training targets in the index's RMSF unit (for the model's target standardisation).
    features : numpy.ndarray of float32, shape (N_train_rows, F)
        Training rows' feature columns, NaN where missing (for their standardisation).
    """

    index: LoadedIndex
    train: SampleSource
    val: SampleSource
    plan: PlanConfig
    val_plan: PlanConfig
    fingerprint: str
    target: np.ndarray
    features: np.ndarray


def _index_path(config: Config, dist: DistContext) -> Path:
    data = config.data
    if data.index is not None:
        return data.index
    if data.voxel_file is None or data.rmsf_csv is None:
        raise ConfigError(
            "config key 'data.index' is not set: give --index (from `voxelflex index build`), "
            "or data.voxel_file, data.rmsf_csv, data.rmsf_unit and the split files to build one"
        )
    out = config.run_dir / "index" / "index.parquet"

    def build() -> None:  # rank 0 only; a failure reaches every rank
        from voxelflex.index import build_index

        if _built_from_same_inputs(out, config):
            log.info("reusing the sample index %s (its inputs are unchanged)", out)
            return
        log.info("building the sample index %s from %s", out, data.voxel_file)
        build_index(
            data.voxel_file,
            out,
            rmsf_csv=data.rmsf_csv,
            rmsf_unit=data.rmsf_unit,
            train=data.train_split,
            val=data.val_split,
            test=data.test_split,
            progress=config.train.progress,
            overwrite=True,  # the run's own copy, rebuilt because its inputs changed
        )

    dist.on_main(build)
    return out


def _built_from_same_inputs(out: Path, config: Config) -> bool:
    """True when ``out`` exists and was built from exactly the configured, unchanged inputs.

    A resumed run then skips rebuilding the index (minutes for mdCATH).
    """
    from voxelflex.index import read_meta

    if not out.is_file():
        return False
    try:
        meta = read_meta(out)  # IndexFormatError when an input changed since the build
    except VoxelflexError:
        return False
    data = config.data
    wanted = {
        "voxel_file": data.voxel_file,
        "rmsf_csv": data.rmsf_csv,
        "train_split": data.train_split,
        "val_split": data.val_split,
        "test_split": data.test_split,
    }
    recorded = {name: fp.get("path") for name, fp in meta.fingerprints.items()}
    return meta.rmsf_unit == data.rmsf_unit and recorded == {
        name: str(path) for name, path in wanted.items() if path is not None
    }


def open_training_data(config: Config, dist: DistContext) -> TrainingData:
    """Read (or build) the index and open the train and val sources of ``config.loader.source``.

    Raises
    ------
    ConfigError, TrainingError
        No index, no RMSF unit or temperature range in it, an empty train or val split, or
        feature columns the index lacks.
    """
    from voxelflex.index import read_index
    from voxelflex.sources import PlanConfig, open_source

    path = _index_path(config, dist)
    index = read_index(path)
    meta = index.meta
    if meta.rmsf_unit is None or meta.temperature_range is None:
        raise TrainingError(
            f"{path} is a prediction index (no RMSF targets); build it with --rmsf-csv and "
            "train/val splits to train on it"
        )
    split = index.table.column("split")
    train_rows = index.table.filter(pc.equal(split, "train"))
    n_val = int(pc.sum(pc.equal(split, "val")).as_py() or 0)
    if train_rows.num_rows == 0 or n_val == 0:
        raise TrainingError(
            f"{path} has {train_rows.num_rows} train and {n_val} val rows; training needs both: "
            "rebuild the index with --train and --val split files"
        )
    missing = [f for f in config.model.features if f not in index.table.column_names]
    if missing:
        raise ConfigError(
            f"config key 'model.features': {missing} are not columns of {path}; available: "
            f"{', '.join(index.table.column_names)}"
        )
    if config.model.features:
        # Fail before building anything: otherwise the first step finds Batch.features empty.
        raise ConfigError(
            f"config key 'model.features': {list(config.model.features)} asked for, but the "
            "sample sources do not serve per-residue features yet (their batches carry none); "
            "set model.features=[]"
        )
    features = (
        np.stack(
            [
                train_rows.column(f).to_numpy(zero_copy_only=False).astype(np.float32)
                for f in config.model.features
            ],
            axis=1,
        )
        if config.model.features
        else np.zeros((train_rows.num_rows, 0), np.float32)
    )
    lc = config.loader
    plan = PlanConfig(
        batch_size=lc.batch_size,
        seed=lc.seed,
        num_workers=lc.num_workers,
        world_size=dist.world_size,
        rank=dist.rank,
        shuffle=True,
        mix_buffer_residues=lc.mix_buffer_residues,
    )
    val_plan = dataclasses.replace(plan, shuffle=False)
    kwargs = {"shards_dir": config.data.shards_dir}
    return TrainingData(
        index=index,
        train=open_source(lc.source, index, split="train", **kwargs),
        val=open_source(lc.source, index, split="val", **kwargs),
        plan=plan,
        val_plan=val_plan,
        fingerprint=index_fingerprint(meta),
        target=train_rows.column("target_rmsf").to_numpy(zero_copy_only=False).astype(np.float32),
        features=features,
    )
