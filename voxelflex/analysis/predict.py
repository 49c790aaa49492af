"""``voxelflex predict``: RMSF from a checkpoint for a split, some domains, or a prediction index.

Prediction uses the sample sources' prediction mode: each residue's voxels are read and unpacked
once and the trunk runs once per residue for all requested temperatures together, so a sweep of
16 temperatures costs one read and one trunk pass per residue, plus 16 small head evaluations.
Settings come from the run configuration (``loader.source`` and the source's options,
``loader.num_workers``, ``predict.residues_per_batch``, ``train.device``), so a training run's
config applies to prediction unchanged.

Under ``torchrun ... -m voxelflex predict`` the ranks split the requested domains and rank 0
writes the one output (:mod:`voxelflex.analysis.parts`). The trunk always sees batches of exactly
``predict.residues_per_batch`` residues (the last one of each worker padded with empty grids):
convolution kernels pick their algorithm, and so their rounding, by batch size, so a fixed shape
makes a residue's prediction independent of which residues share its batch, of the worker count
and of the rank count. A distributed run writes the same file, bit for bit, as one process.

Nothing is dropped silently and no NaN is written as a number (see
:mod:`voxelflex.analysis.missing`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from tqdm import tqdm

from voxelflex.analysis.missing import (
    missing_table,
    non_finite_lines,
    skipped_lines,
    unread_lines,
)
from voxelflex.analysis.parts import Predictions, merge_parts
from voxelflex.analysis.predictions import (
    COLUMN_DOCS,
    PredictionsMeta,
    assemble_predictions,
    predictions_format,
    sidecar_path,
    write_predictions,
)
from voxelflex.analysis.temperatures import temperature_key
from voxelflex.atomic import atomic_write_csv
from voxelflex.config import Config, load_config
from voxelflex.engine.checkpoint import Checkpoint, load_for_inference
from voxelflex.engine.distributed import DistContext
from voxelflex.engine.step import predict_batch
from voxelflex.errors import ConfigError, InputError
from voxelflex.formats import TableFormat
from voxelflex.index import LoadedIndex, read_index
from voxelflex.index.schema import SPLITS
from voxelflex.logs import command_log
from voxelflex.models import RMSFModel
from voxelflex.paths import Location, check_output, is_url
from voxelflex.quantities import outside_range
from voxelflex.sources import Batch, PlanConfig, SampleSource, open_source, source_options

__all__ = [
    "PredictReport",
    "default_predictions_path",
    "predict",
    "restrict_index",
    "run_model",
    "write_outputs",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictReport:
    """What :func:`predict` wrote.

    Attributes
    ----------
    path : Path
        Predictions file.
    n_rows, n_residues : int
        Rows (residue × temperature) and residues predicted.
    temperatures : tuple of float
        Kelvin, ascending.
    extrapolated_temperatures : tuple of float
        Those outside the checkpoint's training range.
    n_missing : int
        Lines of the missing report (domains or residues not predicted).
    missing_path : Path or None
        ``<stem>_missing.csv`` when ``n_missing`` > 0.
    """

    path: Path
    n_rows: int
    n_residues: int
    temperatures: tuple[float, ...]
    extrapolated_temperatures: tuple[float, ...]
    n_missing: int
    missing_path: Path | None


def default_predictions_path(checkpoint: str | Path, split: str, fmt: str = "parquet") -> Path:
    """``<run_dir>/metrics/predictions_<split>.<fmt>``.

    ``run_dir`` is the checkpoint's folder, or its parent when that folder is named ``models``
    or ``checkpoints``.
    """
    ckpt = Path(checkpoint).resolve()
    run_dir = ckpt.parent.parent if ckpt.parent.name in ("models", "checkpoints") else ckpt.parent
    return run_dir / "metrics" / f"predictions_{split}.{fmt}"


def _select(
    index: LoadedIndex, split: str | None, domains: Sequence[str] | None
) -> tuple[dict, list]:
    """Map the request to ``{split: domain keys or None for all}`` and missing-domain lines."""
    table = index.table
    if domains is None:
        if split is None:
            present = set(table["split"].unique().to_pylist())
            split = next((s for s in ("test", "predict") if s in present), None)
            if split is None:
                raise ConfigError(
                    f"{index.path} has no test or predict rows; choose --split from "
                    f"{sorted(present)} or pass --domain"
                )
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
        return {split: None}, []
    rows = table.select(["split", "domain", "domain_id"])
    if split is not None:
        rows = rows.filter(pc.equal(rows["split"], split))
    wanted = pa.array(list(dict.fromkeys(domains)), pa.string())
    hit = rows.filter(pc.or_(pc.is_in(rows["domain"], wanted), pc.is_in(rows["domain_id"], wanted)))
    found = hit.group_by(["split", "domain", "domain_id"]).aggregate([])
    by_split: dict[str, list[str]] = {}
    seen = set()
    for s, d, di in zip(
        *(found[c].to_pylist() for c in ("split", "domain", "domain_id")), strict=True
    ):
        by_split.setdefault(s, []).append(d)
        seen.update((d, di))
    where = f"split {split!r} of the index" if split else "the index"
    missing = [
        (d, None, None, None, "not_in_index", f"not in {where}")
        for d in wanted.to_pylist()
        if d not in seen
    ]
    return {s: sorted(set(v)) for s, v in by_split.items()}, missing


def restrict_index(index: LoadedIndex, domains: list[str] | None) -> LoadedIndex:
    """The index with only ``domains``' rows (row_id values keep pointing into the full index)."""
    if domains is None:
        return index
    keep = pc.is_in(index.table["domain"], pa.array(domains, pa.string()))
    return replace(index, table=index.table.filter(keep))


def _split_temperatures(index: LoadedIndex, split: str, domains: list[str] | None) -> np.ndarray:
    table = restrict_index(index, domains).table
    t = table.filter(pc.equal(table["split"], split))["temperature"]
    t = np.unique(pc.drop_null(t).to_numpy(zero_copy_only=False))
    return t[np.isfinite(t)].astype(np.float32)


def _fixed_shape(batch: Batch, residues: int, per_residue: int) -> Batch:
    """``batch`` padded with empty residues (each with ``per_residue`` weight-0 samples) to
    ``residues`` residues; its own samples stay first and in order."""
    missing = residues - batch.n_residues
    if missing <= 0:
        return batch
    n = missing * per_residue
    return Batch(
        packed=torch.cat([batch.packed, batch.packed.new_zeros(missing, batch.packed.shape[1])]),
        residue_index=torch.arange(residues).repeat_interleave(per_residue),
        temperature=torch.cat([batch.temperature, batch.temperature[:per_residue].repeat(missing)]),
        target=torch.cat([batch.target, batch.target.new_full((n,), float("nan"))]),
        weight=torch.cat([batch.weight, batch.weight.new_zeros(n)]),
        row_id=torch.cat([batch.row_id, batch.row_id.new_full((n,), -1)]),
        features=None
        if batch.features is None
        else torch.cat(
            [batch.features, batch.features.new_zeros(missing, batch.features.shape[1])]
        ),
    )


def run_model(
    model: RMSFModel,
    sources: Sequence[SampleSource],
    config: Config,
    device: str,
    dist: DistContext | None = None,
) -> Predictions:
    """Predict every sample the ``sources`` (in prediction mode) serve to this rank.

    Batches go through the model padded to ``config.predict.residues_per_batch`` residues (see
    the module docstring); a rank's padding batches (no sample) are not run at all.

    Returns
    -------
    row_id : numpy.ndarray of int64, shape (N,)
    temperature : numpy.ndarray of float32, shape (N,)
        K.
    predicted : numpy.ndarray of float32, shape (N,)
        RMSF in the checkpoint's unit (possibly non-finite: the caller reports those).
    skipped : dict of int -> str
        Residues (first row_id) the sources could not read, with the reason.
    """
    residues = config.predict.residues_per_batch
    row_ids, t_out, p_out = [], [], []
    skipped: dict[int, str] = {}
    for src in sources:
        per_residue = len(src.temperatures)
        cfg = PlanConfig(
            batch_size=residues * per_residue,
            shuffle=False,
            num_workers=config.loader.num_workers,
            world_size=dist.world_size if dist else 1,
            rank=dist.rank if dist else 0,
        )
        try:
            loader = src.loader(cfg, epoch=0)
            bar = tqdm(
                loader,
                total=src.num_batches(cfg, 0),
                desc=f"predict ({src.split})" if len(sources) > 1 else "predict",
                unit="batch",
                disable=not config.predict.progress or (dist is not None and not dist.is_main),
                leave=False,
            )
            for batch in bar:
                ok = ((batch.row_id >= 0) & (batch.weight > 0)).numpy()
                if not ok.any():
                    continue
                fixed = _fixed_shape(batch, residues, per_residue)
                pred = predict_batch(model, fixed, device).numpy()[: batch.n_samples]
                row_ids.append(batch.row_id.numpy()[ok])
                t_out.append(batch.temperature.numpy()[ok])
                p_out.append(pred[ok])
            skipped.update(loader.skipped)
        finally:
            src.close()  # one epoch is all predict reads: its workers can end now
    return (
        np.concatenate(row_ids) if row_ids else np.zeros(0, np.int64),
        np.concatenate(t_out) if t_out else np.zeros(0, np.float32),
        np.concatenate(p_out) if p_out else np.zeros(0, np.float32),
        skipped,
    )


def predict(
    checkpoint: str | Path,
    index_path: Location,
    *,
    split: str | None = None,
    domains: Sequence[str] | None = None,
    temperatures: Sequence[float] | np.ndarray | None = None,
    out_path: str | Path | None = None,
    fmt: TableFormat | str = "parquet",
    overwrite: bool = False,
    config: Config | None = None,
) -> PredictReport:
    """Predict RMSF and write a predictions file (see :mod:`voxelflex.analysis.predictions`).

    Parameters
    ----------
    checkpoint : path
        Trained model (``best.pt``).
    index_path : path or str
        Sample index (a file or its URL); its frame and RMSF unit must match the
        checkpoint's (a prediction-only index has no unit and is accepted).
    split : str, optional
        Split to predict; default ``test`` if the index has it, else ``predict``. With
        ``domains``: only look there.
    domains : sequence of str, optional
        Domain keys or CSV domain ids; each is predicted in the split that holds it.
    temperatures : sequence of float, optional
        Kelvin. Default: the temperatures of the split's rows (required for split ``predict``).
    out_path : path, optional
        ``.parquet`` or ``.csv``; default :func:`default_predictions_path` with ``fmt``.
    fmt : {"parquet", "csv"}
        Format of the default output path (ignored with ``out_path``).
    overwrite : bool
        Replace an existing predictions file (refused otherwise; see :mod:`voxelflex.paths`).
    config : Config, optional
        Source, source options, workers, batch size and device (default: the packaged
        defaults, i.e. the HDF5 source on ``auto`` device).

    Returns
    -------
    PredictReport
    """
    config = config or load_config()
    dist = DistContext.setup(config.train.device)  # torchrun: this rank's share and device
    try:
        return _predict(
            dist,
            checkpoint,
            index_path,
            split=split,
            domains=domains,
            temperatures=temperatures,
            out_path=out_path,
            fmt=fmt,
            overwrite=overwrite,
            config=config,
        )
    finally:
        dist.close()


def _predict(
    dist: DistContext,
    checkpoint: str | Path,
    index_path: Location,
    *,
    split: str | None,
    domains: Sequence[str] | None,
    temperatures: Sequence[float] | np.ndarray | None,
    out_path: str | Path | None,
    fmt: TableFormat | str,
    overwrite: bool,
    config: Config,
) -> PredictReport:
    device = str(dist.device)
    index_path = index_path if is_url(index_path) else Path(index_path)
    model, ck = load_for_inference(checkpoint, device)
    index = read_index(index_path)
    ck.meta.check_data(index.meta, where=str(index_path))
    by_split, missing = _select(index, split, domains)
    if not by_split:
        raise InputError(
            f"none of the requested domains is in {index_path}: "
            + "; ".join(f"{m[0]} ({m[-1]})" for m in missing[:10])
        )
    split_names = sorted(by_split, key=SPLITS.index)
    out = Path(out_path or default_predictions_path(checkpoint, "+".join(split_names), fmt))
    inputs = {
        "checkpoint": checkpoint,
        "index": index_path,
        "voxel file": index.meta.voxel_file,
        "shard folder": config.data.shards_dir,
    }
    if predictions_format(out) == "csv":  # its metadata sidecar is replaced with it
        check_output(sidecar_path(out), inputs=inputs, overwrite=True, what="metadata file")
    check_output(out, inputs=inputs, overwrite=overwrite, what="predictions file")
    missing_out = check_output(
        out.with_name(out.stem + "_missing.csv"), inputs=inputs, overwrite=True
    )
    # rank 0 logs beside the output; other ranks' warnings reach the console only
    logged = command_log(out, "predict") if dist.is_main else contextlib.nullcontext()
    with logged:
        if temperatures is not None and len(temperatures):
            temps = np.unique(np.asarray(temperatures, dtype=np.float32))
        else:
            found = [_split_temperatures(index, s, d) for s, d in by_split.items()]
            temps = np.unique(np.concatenate(found))
            if len(temps) == 0:
                raise ConfigError(
                    f"split(s) {sorted(by_split)} of {index_path} have no temperatures (a "
                    "prediction index); pass --temperature K (repeatable) or --temperatures "
                    "START:STOP:STEP"
                )
        sources = [
            open_source(
                config.loader.source,
                restrict_index(index, doms),
                split=s,
                temperatures=temps.tolist(),
                on_error="skip",  # an unreadable residue is reported, the rest still predicted
                features=ck.model_spec.features,
                feature_norm=ck.model_spec.feature_norm,
                **source_options(config),
            )
            for s, doms in by_split.items()
        ]
        merged = merge_parts(dist, out, run_model(model, sources, config, device, dist))
        return dist.on_main(  # rank 0 writes; the report (or its error) reaches every rank
            lambda: _write(
                merged,
                index=index,
                index_path=index_path,
                checkpoint=checkpoint,
                ck=ck,
                split_names=split_names,
                domains=domains,
                temps=temps,
                missing=missing,
                out=out,
                missing_out=missing_out,
            )
        )


def write_outputs(
    table: pa.Table,
    missing_rows: pa.Table,
    ck: Checkpoint,
    *,
    checkpoint: str | Path,
    index: str,
    splits: list[str],
    temperatures: np.ndarray,
    out: Path,
    missing_out: Path,
) -> tuple[tuple[float, ...], Path | None]:
    """Write the predictions file with its metadata and the missing report (removed when
    empty: a report from an earlier run would describe it); warn about extrapolation.

    Returns
    -------
    extrapolated : tuple of float
        Requested temperatures (K) outside the checkpoint's training range.
    missing_path : Path or None
        The missing report, when it has rows.
    """
    t_range = ck.meta.temperature_range
    spec = ck.model_spec
    meta = PredictionsMeta(
        rmsf_unit=ck.meta.rmsf_unit,
        checkpoint=str(Path(checkpoint).resolve()),
        index=index,
        splits=splits,
        temperatures=[float(t) for t in temperatures],
        training_temperature_range=[float(x) for x in t_range],
        model=f"{spec.name} ({spec.preset}, {spec.conditioning})",
        columns={c: COLUMN_DOCS[c] for c in table.column_names},
    )
    write_predictions(table, meta, out)
    extrap = tuple(float(t) for t in temperatures[outside_range(temperatures, t_range)])
    if extrap:
        log.warning(
            "temperatures %s K lie outside the checkpoint's training range %s–%s K: predictions "
            "there are extrapolations (column `extrapolated`)",
            ", ".join(temperature_key(t) for t in extrap),
            *(temperature_key(x) for x in t_range),
        )
    missing_out.unlink(missing_ok=True)
    missing_path = None
    if missing_rows.num_rows:
        missing_path = atomic_write_csv(missing_rows, missing_out)
        log.warning("%d items not predicted; reasons in %s", missing_rows.num_rows, missing_path)
    return extrap, missing_path


def _write(
    predictions: Predictions,
    *,
    index: LoadedIndex,
    index_path: Location,
    checkpoint: str | Path,
    ck: Checkpoint,
    split_names: list[str],
    domains: Sequence[str] | None,
    temps: np.ndarray,
    missing: list[tuple],
    out: Path,
    missing_out: Path,
) -> PredictReport:
    """Write the predictions file and the missing report from every rank's predictions."""
    row_id, t_all, p_all, unread = predictions
    missing += unread_lines(index.table, unread)
    finite = np.isfinite(p_all)
    if not finite.all():
        # A NaN written as a number is a wrong number: such rows are reported, never written.
        missing += non_finite_lines(index.table, row_id[~finite], t_all[~finite], p_all[~finite])
        log.warning(
            "%d predictions are NaN or infinite (a broken model or input); they are listed in "
            "the _missing.csv report with reason non_finite, not written",
            int((~finite).sum()),
        )
        row_id, t_all, p_all = row_id[finite], t_all[finite], p_all[finite]
    t_range = ck.meta.temperature_range
    table = assemble_predictions(index.table, row_id, t_all, p_all, training_range=t_range)
    predicted_domains = set(table["domain"].unique().to_pylist())
    missing_rows = pa.concat_tables(
        [
            missing_table(missing),
            skipped_lines(index_path, [*(domains or []), *predicted_domains]),
        ]
    )
    index_name = str(index_path) if is_url(index_path) else str(index_path.resolve())
    extrap, missing_path = write_outputs(
        table,
        missing_rows,
        ck,
        checkpoint=checkpoint,
        index=index_name,
        splits=split_names,
        temperatures=temps,
        out=out,
        missing_out=missing_out,
    )
    n_res = len(np.unique(row_id))
    log.info("predicted %d residues × %d temperatures -> %s", n_res, len(temps), out)
    return PredictReport(
        path=out,
        n_rows=table.num_rows,
        n_residues=n_res,
        temperatures=tuple(float(t) for t in temps),
        extrapolated_temperatures=extrap,
        n_missing=missing_rows.num_rows,
        missing_path=missing_path,
    )
