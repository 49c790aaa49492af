"""What the trainer needs from the data: the index, train/val sources and their plan settings."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from voxelflex.columns import codes
from voxelflex.config import Config
from voxelflex.engine.distributed import DistContext
from voxelflex.errors import ConfigError, TrainingError
from voxelflex.index import IndexMeta, LoadedIndex, ensure_index, read_index
from voxelflex.index.fingerprint import file_fingerprint
from voxelflex.inputs.splits import read_split_file
from voxelflex.models import ModelSpec
from voxelflex.quantities import outside_range
from voxelflex.sources import PlanConfig, SampleSource, open_source, source_options
from voxelflex.structure.features import FEATURE_GROUPS

__all__ = [
    "TrainingData",
    "expand_features",
    "index_digest",
    "open_training_data",
    "plan_config",
    "settings_digest",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingData:
    """Index, sources and plan settings of one training run.

    Attributes
    ----------
    index : LoadedIndex
    train, val : SampleSource
    train_plan_config, val_plan_config : PlanConfig
        Shuffled training plan settings and in-order validation plan settings for this rank.
    features : tuple of str
        Per-residue feature columns the model takes (groups expanded).
    target : numpy.ndarray of float32, shape (N_train_rows,)
        Training targets as the model sees them (the index's RMSF unit, or per-domain z-scores
        with ``train.target_norm = domain``), for the model's target standardisation.
    feature_mean, feature_std : numpy.ndarray of float64, shape (F,)
        Standardisation of the features over the train split's residues (after the per-domain
        z-scores of ``feature_norm = domain``, so then nearly 0 and 1).
    chain_of_row : numpy.ndarray of int64, shape (N_index,)
        Code of every index row's (domain, chain) (per-chain metrics).
    """

    index: LoadedIndex
    train: SampleSource
    val: SampleSource
    train_plan_config: PlanConfig
    val_plan_config: PlanConfig
    features: tuple[str, ...]
    target: np.ndarray
    feature_mean: np.ndarray
    feature_std: np.ndarray
    chain_of_row: np.ndarray


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


def expand_features(names: tuple[str, ...]) -> tuple[str, ...]:
    """``model.features`` with group names (``contact``, ``gnm``, ...) replaced by their columns.

    Order is kept and repeats are dropped, so the model's input order is what the config says.
    """
    out: list[str] = []
    for name in names:
        out += FEATURE_GROUPS.get(name, (name,))
    return tuple(dict.fromkeys(out))


def _pair_codes(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """One int64 code per distinct (a, b) pair of non-negative codes."""
    return a * (int(b.max(initial=0)) + 1) + b


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
            features=data.features,
            progress=config.train.progress,
            keep=config.train.resume,  # its checkpoints were trained on the run's index
        )
    )


# data.* keys an index is built from, named as IndexMeta.input_paths() names them
_INPUTS = ("voxel_file", "rmsf_csv", "train_split", "val_split", "test_split", "features")


def _check_index_inputs(config: Config, meta: IndexMeta, path: Path) -> None:
    """With ``data.index`` the index is used as built: refuse build inputs set to others.

    A split file that lists the index's domain ids of its split, or a copy of a recorded input
    (same size and mtime), is the same input under another name and passes.

    Raises
    ------
    ConfigError
        ``data.rmsf_unit`` set to another unit than the index's targets, or a voxel file, RMSF
        CSV, feature sidecar or split file other than the index was built from (named).
    """
    data = config.data
    if data.rmsf_unit is not None and data.rmsf_unit != meta.rmsf_unit:
        raise ConfigError(
            f"data.rmsf_unit is {data.rmsf_unit} but the index {path} holds targets in "
            f"{meta.rmsf_unit}; the unit is fixed when the index is built: drop --rmsf-unit, or "
            "rebuild the index with the right one"
        )
    differ = [said for key in _INPUTS if (said := _other_input(key, getattr(data, key), meta))]
    if differ:
        raise ConfigError(
            f"training with the index {path} uses it as it was built, but "
            + "; ".join(differ)
            + ". Build an index from these inputs (`voxelflex index build ... -o NEW.parquet`) "
            "and train on it, or drop them to train on the index as it is"
        )


def _other_input(key: str, given: Path | None, meta: IndexMeta) -> str | None:
    """How ``data.<key>`` differs from the input the index recorded; None when it does not."""
    recorded = meta.fingerprints.get(key)
    if given is None or (recorded and os.path.abspath(given) == recorded["path"]):
        return None
    built_from = recorded["path"] if recorded else "none"
    if key.endswith("_split"):
        split = key.removesuffix("_split")
        ids = set(read_split_file(given, option=f"data.{key}"))
        built = set(meta.split_ids.get(split, ()))
        if ids == built:
            return None
        odd = sorted(ids ^ built)
        return (
            f"data.{key} {given} lists {len(ids)} domain(s), the index's {split} split "
            f"{len(built)} (built from {built_from}); {len(odd)} differ, e.g. {odd[:5]}"
        )
    if recorded and Path(given).is_file():
        now = file_fingerprint(given)
        if all(now[k] == recorded.get(k) for k in ("size", "mtime_ns")):
            return None  # a copy (cp -p) of the recorded file
    return f"data.{key} is {given}, the index was built from {built_from}"


def _warn_temperatures(
    index: LoadedIndex,
    train_range,
    path: Path,
    earlier: tuple[float, float] | None = None,
) -> None:
    """Warn when the model cannot learn a temperature trend, or validation leaves its range
    (with ``earlier``, the ``--init-from`` checkpoint's training range, widened by it)."""
    if train_range is None:
        return
    lo, hi = train_range
    if lo == hi and earlier is None:
        log.warning(
            "the train split of %s has one temperature (%g K): the model cannot learn how "
            "flexibility changes with temperature, and its predictions at any other "
            "temperature are meaningless",
            path,
            lo,
        )
    elif lo == hi:
        log.warning(
            "the train split of %s has one temperature (%g K): the model keeps the "
            "checkpoint's temperature scaling and trend (trained on %g-%g K), but fine-tuning "
            "at one temperature can bend that trend; check its predictions at other "
            "temperatures (few epochs or a low learning rate keep more of it)",
            path,
            lo,
            earlier[0],
            earlier[1],
        )
    if earlier is not None:
        lo, hi = min(lo, earlier[0]), max(hi, earlier[1])
    t = index.table.filter(pc.equal(index.table["split"], "val"))["temperature"].to_numpy()
    outside = int(np.count_nonzero(outside_range(t, (lo, hi))))
    if outside:
        log.warning(
            "%d of %d val rows of %s lie outside the train temperature range %g-%g K; the best "
            "checkpoint and early stopping are chosen partly on extrapolations",
            outside,
            len(t),
            path,
            lo,
            hi,
        )


def index_digest(index: LoadedIndex) -> str:
    """Short hash of what training reads from an index: its metadata fingerprint and the
    split, temperature and target of every row (≈13 MB hashed for mdCATH's 3.3 M rows)."""
    h = hashlib.sha256(index.meta.fingerprint().encode())
    table = index.table
    for name in ("split", "domain"):  # codes, not Arrow buffers, whose padding is undefined
        h.update(codes(table.column(name)).tobytes())
    for name in ("temperature", "target_rmsf"):
        h.update(np.ascontiguousarray(table.column(name).to_numpy()).tobytes())
    return h.hexdigest()[:16]


def settings_digest(config: Config) -> str:
    """Short hash of the settings every rank must share (model, training, batch plan); paths,
    device and progress bars may differ between nodes.

    The batch plan includes ``loader.num_workers`` and ``loader.mix_buffer_residues``: every
    rank deals the domains to ``world_size × workers`` streams and counts every stream's
    batches, so a rank with another value serves other domains (some twice, some never) and
    another number of steps.
    """
    train = dataclasses.asdict(config.train)
    for local in ("progress", "device", "init_from"):
        train.pop(local, None)
    shared = {
        "model": dataclasses.asdict(config.model),
        "train": train,
        "loader": {
            k: getattr(config.loader, k)
            for k in ("batch_size", "seed", "source", "num_workers", "mix_buffer_residues")
        },
    }
    return hashlib.sha256(json.dumps(shared, sort_keys=True, default=str).encode()).hexdigest()[:16]


def open_training_data(
    config: Config,
    dist: DistContext,
    spec: ModelSpec,
    *,
    earlier: tuple[float, float] | None = None,
) -> TrainingData:
    """Read (or build) the index and open the train and val sources of ``config.loader.source``,
    serving ``spec``'s features and targets normalised as ``spec.feature_norm`` and
    ``spec.target_norm`` say (the spec
    of an ``--init-from`` checkpoint may differ from the config's model section).

    ``earlier`` is the training temperature range of an ``--init-from`` checkpoint: the
    temperature warnings then count it as trained on too.

    Raises
    ------
    ConfigError, TrainingError, SourceError
        No index, no RMSF unit or temperature range in it, an empty train or val split, or
        feature columns the index lacks (named).
    """
    path = _index_path(config, dist)
    index = read_index(path)
    meta = index.meta
    if meta.rmsf_unit is None:
        raise TrainingError(
            f"{path} is a prediction index (no RMSF targets); build it with --rmsf-csv and "
            "train/val splits to train on it"
        )
    if meta.temperature_range is None:  # targets, but none in the train split
        raise TrainingError(
            f"{path} has RMSF targets but its train split is empty (counts: "
            f"{meta.counts.get('rows')}); rebuild it with a --train-split file that lists domains "
            "of the CSV and the voxel file (one domain id a line; ids are case-sensitive)"
        )
    if config.data.index is not None:
        _check_index_inputs(config, meta, path)
    split = index.table.column("split")
    _warn_temperatures(index, meta.temperature_range, path, earlier)
    n_train = int(pc.sum(pc.equal(split, "train")).as_py() or 0)
    n_val = int(pc.sum(pc.equal(split, "val")).as_py() or 0)
    if n_train == 0 or n_val == 0:
        empty = " and ".join(n for n, k in (("train", n_train), ("val", n_val)) if k == 0)
        # the fix depends on where the splits came from: an import's splits/ or the user's files
        raise TrainingError(
            f"{path} has {n_train} train and {n_val} val rows; training needs both (the "
            f"{empty} split is empty). An index built from split files: rebuild it with "
            "--train-split and --val-split files that each list domains of the RMSF CSV and "
            "the voxel file. Data of `voxelflex import mdcath` (train -c DATASET/config.yaml): "
            "import again with --overwrite and other --fractions (more domains, or a larger "
            "val fraction) or with --train-split and --val-split files, or give train "
            "--train-split and --val-split files of your own, which replace DATASET/splits/"
        )
    features = spec.features
    options = source_options(config)
    train, val = (
        open_source(
            config.loader.source,
            index,
            split=split,
            features=features,
            feature_norm=spec.feature_norm,
            **options,
        )
        for split in ("train", "val")
    )
    if spec.target_norm == "domain":
        train.table = train.table.with_domain_zscored_targets()
        val.table = val.table.with_domain_zscored_targets()
    values = train.table.features.astype(np.float64)
    train_plan_config = plan_config(config, dist, shuffle=True)
    return TrainingData(
        index=index,
        train=train,
        val=val,
        train_plan_config=train_plan_config,
        val_plan_config=dataclasses.replace(train_plan_config, shuffle=False),
        features=features,
        target=train.table.target,
        feature_mean=values.mean(axis=0) if len(values) else np.zeros(len(features)),
        feature_std=values.std(axis=0) if len(values) else np.ones(len(features)),
        chain_of_row=_pair_codes(codes(index.table["domain"]), codes(index.table["chain"])),
    )
