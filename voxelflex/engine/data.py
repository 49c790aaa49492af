"""What the trainer needs from the data: the index, train/val sources and their plan settings."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from voxelflex.config import Config
from voxelflex.engine.distributed import DistContext
from voxelflex.errors import ConfigError, TrainingError
from voxelflex.index import LoadedIndex, ensure_index, read_index
from voxelflex.sources import PlanConfig, SampleSource, open_source, source_options

__all__ = ["TrainingData", "open_training_data", "plan_config"]


@dataclass(frozen=True)
class TrainingData:
    """Index, sources and plan settings of one training run.

    Attributes
    ----------
    index : LoadedIndex
    train, val : SampleSource
    train_plan_config, val_plan_config : PlanConfig
        Shuffled training plan settings and in-order validation plan settings for this rank.
    target : numpy.ndarray of float32, shape (N_train_rows,)
        Training targets in the index's RMSF unit (for the model's target standardisation).
    """

    index: LoadedIndex
    train: SampleSource
    val: SampleSource
    train_plan_config: PlanConfig
    val_plan_config: PlanConfig
    target: np.ndarray


def plan_config(config: Config, dist: DistContext, *, shuffle: bool) -> PlanConfig:
    """The epoch-plan settings of ``config.loader`` for this rank."""
    lc = config.loader
    return PlanConfig(
        batch_size=lc.batch_size,
        seed=lc.seed,
        num_workers=lc.num_workers,
        world_size=dist.world_size,
        rank=dist.rank,
        shuffle=shuffle,
        mix_buffer_residues=lc.mix_buffer_residues,
    )


def _index_path(config: Config, dist: DistContext) -> Path:
    data = config.data
    if data.index is not None:
        return data.index
    if data.voxel_file is None or data.rmsf_csv is None:
        raise ConfigError(
            "config key 'data.index' is not set: give --index (from `voxelflex index build`), "
            "or data.voxel_file, data.rmsf_csv, data.rmsf_unit and the split files to build one"
        )
    return dist.on_main(  # rank 0 builds; a failure reaches every rank
        lambda: ensure_index(
            config.run_dir / "index" / "index.parquet",
            voxel_file=data.voxel_file,
            rmsf_csv=data.rmsf_csv,
            rmsf_unit=data.rmsf_unit,
            train=data.train_split,
            val=data.val_split,
            test=data.test_split,
            progress=config.train.progress,
        )
    )


def open_training_data(config: Config, dist: DistContext) -> TrainingData:
    """Read (or build) the index and open the train and val sources of ``config.loader.source``.

    Raises
    ------
    ConfigError, TrainingError
        No index, no RMSF unit or temperature range in it, an empty train or val split, or
        per-residue features asked for (no source serves them yet).
    """
    if config.model.features:
        # The seam for structural-context features (docs/architecture.md): the model and the
        # checkpoint carry them, no source fills Batch.features yet.
        raise ConfigError(
            f"config key 'model.features': {list(config.model.features)} asked for, but no "
            "sample source serves per-residue features yet; set model.features=[]"
        )
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
            "rebuild the index with --train-split and --val-split files"
        )
    options = source_options(config)
    train_plan_config = plan_config(config, dist, shuffle=True)
    return TrainingData(
        index=index,
        train=open_source(config.loader.source, index, split="train", **options),
        val=open_source(config.loader.source, index, split="val", **options),
        train_plan_config=train_plan_config,
        val_plan_config=dataclasses.replace(train_plan_config, shuffle=False),
        target=train_rows.column("target_rmsf").to_numpy(zero_copy_only=False).astype(np.float32),
    )
