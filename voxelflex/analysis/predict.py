"""``voxelflex predict``: RMSF from a checkpoint for a split, some domains, or a prediction index.

Prediction uses the sample sources' prediction mode: each residue's voxels are read and unpacked
once and the trunk runs once per residue for all requested temperatures together, so a sweep of
16 temperatures costs one read and one trunk pass per residue, plus 16 small head evaluations.
Settings come from the run configuration (``loader.source`` and the source's options,
``loader.num_workers``, ``predict.residues_per_batch``, ``train.device``), so a training run's
config applies to prediction unchanged.

Under ``torchrun ... -m voxelflex predict`` the ranks split the requested domains and rank 0
writes the one output (:mod:`voxelflex.analysis.parts`). The model runs on fixed-shape batches
(:mod:`voxelflex.analysis.inference`), so a distributed run writes the same file, bit for bit,
as one process.

Nothing is dropped silently and no NaN is written as a number (see
:mod:`voxelflex.analysis.missing`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from voxelflex.analysis.inference import run_model
from voxelflex.analysis.missing import (
    missing_table,
    non_finite_lines,
    skipped_lines,
    unread_lines,
)
from voxelflex.analysis.parts import Predictions, merge_parts
from voxelflex.analysis.predictions import (
    assemble_predictions,
    predictions_format,
    sidecar_path,
    write_outputs,
)
from voxelflex.config import Config, load_config
from voxelflex.engine.checkpoint import Checkpoint, load_for_inference
from voxelflex.engine.data import index_digest
from voxelflex.engine.distributed import DistContext
from voxelflex.errors import ConfigError, InputError
from voxelflex.formats import TableFormat
from voxelflex.index import LoadedIndex, read_index
from voxelflex.index.schema import SPLITS
from voxelflex.logs import command_log
from voxelflex.paths import Location, check_output, is_url, redact_url
from voxelflex.sources import open_source, source_options
from voxelflex.wording import counted

__all__ = [
    "PredictReport",
    "default_predictions_path",
    "predict",
    "request_digest",
    "restrict_index",
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


def request_digest(
    split: str | None,
    domains: Sequence[str] | None,
    temperatures: Sequence[float] | np.ndarray | None,
    num_workers: int,
) -> str:
    """Short hash of what every rank of a distributed ``predict`` must be asked the same: the
    split, the domains (in any order), the temperatures and the worker count."""
    temps = None if temperatures is None else np.unique(np.asarray(temperatures, np.float32))
    request = {
        "split": split,
        "domains": None if domains is None else sorted(set(domains)),
        "temperatures": None if temps is None else temps.tolist(),
        "num_workers": num_workers,
    }
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()[:16]


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
    ck.check_data(index.meta, where=str(index_path), checkpoint=str(checkpoint))
    dist.require_same(
        "index",
        lambda: index_digest(index),
        "give every node a copy of the same index (and shards)",
    )
    # Each rank takes its share of the requested domains dealt to ranks × workers streams: a
    # rank with other domains or another worker count takes another share (rows predicted
    # twice, domains never, and no line in the missing report)
    dist.require_same(
        "prediction request (split, domains, temperatures, loader.num_workers)",
        lambda: request_digest(split, domains, temperatures, config.loader.num_workers),
        "start every rank with the same --split, --domain, --temperature(s) and --workers (the "
        "ranks split the requested domains by ranks × workers)",
    )
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


def _absent_from_splits(index: LoadedIndex, split_names: list[str]) -> dict[str, list[str]]:
    """Split → the ids it was given (``IndexMeta.split_ids``) that hold no row in it."""
    absent = {}
    for split in split_names:
        rows = index.table.filter(pc.equal(index.table["split"], split))
        held = {x for c in ("domain", "domain_id") for x in pc.unique(rows[c]).to_pylist()}
        gone = [d for d in index.meta.split_ids.get(split, []) if d not in held]
        if gone:
            absent[split] = gone
    return absent


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
    absent = {} if domains else _absent_from_splits(index, split_names)
    missing_rows = pa.concat_tables(
        [
            missing_table(missing),
            skipped_lines(index_path, [*(domains or []), *predicted_domains], absent),
        ]
    )
    # The metadata travels with the predictions (shared, attached to reports): a URL's
    # credentials stay out of it, and evaluate then asks for --index instead.
    index_name = redact_url(index_path) if is_url(index_path) else str(index_path.resolve())
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
    log.info(
        "predicted %s × %s -> %s",
        counted(n_res, "residue"),
        counted(len(temps), "temperature"),
        out,
    )
    return PredictReport(
        path=out,
        n_rows=table.num_rows,
        n_residues=n_res,
        temperatures=tuple(float(t) for t in temps),
        extrapolated_temperatures=extrap,
        n_missing=missing_rows.num_rows,
        missing_path=missing_path,
    )
