"""``voxelflex predict``: RMSF from a checkpoint for a split, some domains, or a prediction index.

Prediction uses the sample sources' prediction mode: each residue's voxels are read and unpacked
once and the trunk runs once per residue for all requested temperatures together, so a sweep of
16 temperatures costs one read and one trunk pass per residue, plus 16 small head evaluations.

Nothing is dropped silently: requested domains that are not in the index, residues the index
builder skipped (from ``<index>.skipped.csv``), residues (HDF5) or domains (a shard record)
whose voxels could not be read, and predictions that came out NaN or infinite are listed in
``<output stem>_missing.csv`` with a reason (:data:`MISSING_REASONS`), counted in
:class:`PredictReport` and logged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import torch

from voxelflex.analysis.formats import TableFormat
from voxelflex.analysis.predictions import (
    COLUMN_DOCS,
    PredictionsMeta,
    assemble_predictions,
    predictions_format,
    write_predictions,
    write_table_csv,
)
from voxelflex.analysis.temperatures import temperature_key
from voxelflex.errors import ConfigError, InputError, SourceError
from voxelflex.index.schema import SPLITS
from voxelflex.paths import check_output

__all__ = [
    "MISSING_REASONS",
    "MISSING_SCHEMA",
    "PredictReport",
    "default_predictions_path",
    "importance_for_rows",
    "predict",
]

log = logging.getLogger(__name__)

MISSING_SCHEMA = pa.schema(
    [
        ("domain", pa.string()),
        ("chain", pa.string()),  # null for a whole domain
        ("resid", pa.string()),  # null for a whole domain or chain
        ("temperature", pa.float32()),  # K; null unless only some temperatures are missing
        ("reason", pa.string()),  # a key of MISSING_REASONS
        ("detail", pa.string()),
    ]
)
MISSING_REASONS = {
    "not_in_index": "a requested domain the index (or the requested split) does not hold",
    "not_indexed": "left out of the index by `index build` (its skip table's reason in detail)",
    "unreadable": "voxels could not be read (the error in detail)",
    "non_finite": "the model predicted NaN or infinity; never written as a number",
}
# Skip-table reasons under which an item never reached the index (see voxelflex.index.skips).
_NOT_INDEXED = ("not_in_hdf5", "bad_voxel_dataset", "no_label", "no_residues", "chain_not_in_hdf5")


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


def _missing_table(rows: list[tuple]) -> pa.Table:
    """Rows ``(domain, chain, resid, temperature, reason, detail)`` as a :data:`MISSING_SCHEMA`
    table."""
    cols = list(zip(*rows, strict=True)) if rows else [[]] * len(MISSING_SCHEMA)
    return pa.table(
        [pa.array(c, f.type) for c, f in zip(cols, MISSING_SCHEMA, strict=True)],
        schema=MISSING_SCHEMA,
    )


def _unread_lines(index_table: pa.Table, skipped: dict[int, str]) -> list[tuple]:
    """Missing lines for residues a source could not read (first row_id → reason).

    A domain whose residues all failed with one message (a whole domain unreadable, e.g. a
    damaged shard record) becomes one domain line; otherwise each residue gets its own line
    (per-residue messages name the residue).
    """
    if not skipped:
        return []
    ids = sorted(skipped)
    keys = index_table.select(["domain", "chain", "resid_str"]).take(pa.array(ids)).to_pylist()
    by_domain: dict[str, list[tuple]] = {}
    for row_id, k in zip(ids, keys, strict=True):
        by_domain.setdefault(k["domain"], []).append((k["chain"], k["resid_str"], skipped[row_id]))
    out = []
    for domain, residues in by_domain.items():
        reasons = {why for *_, why in residues}
        if len(residues) > 1 and len(reasons) == 1:
            out.append((domain, None, None, None, "unreadable", reasons.pop()))
        else:
            out += [(domain, c, r, None, "unreadable", why) for c, r, why in residues]
    return out


def _non_finite_lines(
    index_table: pa.Table, row_id: np.ndarray, temperature: np.ndarray, value: np.ndarray
) -> list[tuple]:
    """One missing line per non-finite prediction (residue × temperature)."""
    keys = index_table.select(["domain", "chain", "resid_str"]).take(pa.array(row_id)).to_pylist()
    return [
        (k["domain"], k["chain"], k["resid_str"], float(t), "non_finite", f"predicted {v}")
        for k, t, v in zip(keys, temperature.tolist(), value.tolist(), strict=True)
    ]


def _skipped_lines(index_path: Path, domains: Iterable[str]) -> pa.Table:
    """Lines of the index's skip table that left items of ``domains`` out of the index."""
    from voxelflex.index.skips import SKIP_SCHEMA, skip_table_path

    path = skip_table_path(index_path)
    if not path.is_file():
        return _missing_table([])
    types = {f.name: f.type for f in SKIP_SCHEMA}
    skipped = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=types))
    wanted = pa.array(sorted(set(domains)), pa.string())
    of_wanted = pc.or_(
        pc.fill_null(pc.is_in(skipped["domain"], wanted), False),
        pc.fill_null(pc.is_in(skipped["domain_id"], wanted), False),
    )
    hit = pc.and_(pc.is_in(skipped["reason"], pa.array(_NOT_INDEXED)), of_wanted)
    lines = skipped.filter(hit)
    n = lines.num_rows
    detail = pc.binary_join_element_wise(lines["reason"], pc.fill_null(lines["detail"], ""), ": ")
    return pa.table(
        [
            pc.coalesce(lines["domain"], lines["domain_id"]),
            lines["chain"],
            lines["resid"],
            pa.nulls(n, pa.float32()),
            pa.array(["not_indexed"] * n, pa.string()),
            detail,
        ],
        schema=MISSING_SCHEMA,
    )


def _select(index, split: str | None, domains: Sequence[str] | None) -> tuple[dict, list]:
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


def _restrict(index, domains: list[str] | None):
    """The index with only ``domains``' rows (row_id values keep pointing into the full index)."""
    if domains is None:
        return index
    return replace(
        index,
        table=index.table.filter(pc.is_in(index.table["domain"], pa.array(domains, pa.string()))),
    )


def _split_temperatures(index, split: str, domains: list[str] | None) -> np.ndarray:
    table = _restrict(index, domains).table
    t = table.filter(pc.equal(table["split"], split))["temperature"]
    t = np.unique(pc.drop_null(t).to_numpy(zero_copy_only=False))
    return t[np.isfinite(t)].astype(np.float32)


def predict(
    checkpoint: str | Path,
    index_path: str | Path,
    *,
    split: str | None = None,
    domains: Sequence[str] | None = None,
    temperatures: Sequence[float] | np.ndarray | None = None,
    source: str = "hdf5",
    shards_dir: str | Path | None = None,
    out_path: str | Path | None = None,
    batch_size: int = 256,
    num_workers: int = 0,
    device: str = "cpu",
    fmt: TableFormat | str = "parquet",
    overwrite: bool = False,
) -> PredictReport:
    """Predict RMSF and write a predictions file (see :mod:`voxelflex.analysis.predictions`).

    Parameters
    ----------
    checkpoint : path
        Trained model (``best.pt``).
    index_path : path
        Sample index; its frame and RMSF unit must match the checkpoint's (a prediction-only
        index has no unit and is accepted).
    split : str, optional
        Split to predict; default ``test`` if the index has it, else ``predict``. With
        ``domains``: only look there.
    domains : sequence of str, optional
        Domain keys or CSV domain ids; each is predicted in the split that holds it.
    temperatures : sequence of float, optional
        Kelvin. Default: the temperatures of the split's rows (required for split ``predict``).
    source : {"hdf5", "shards"}
        Where voxels come from (``shards`` needs ``shards_dir``).
    out_path : path, optional
        ``.parquet`` or ``.csv``; default :func:`default_predictions_path` with ``fmt``.
    batch_size : int
        Residues per batch (each with all its temperatures).
    num_workers : int
        DataLoader workers reading voxels.
    device : str
        Torch device, e.g. ``"cpu"``, ``"cuda"``.
    fmt : {"parquet", "csv"}
        Format of the default output path (ignored with ``out_path``).
    overwrite : bool
        Replace an existing predictions file (refused otherwise; see :mod:`voxelflex.paths`).

    Returns
    -------
    PredictReport
    """
    from voxelflex.engine.checkpoint import load_for_inference
    from voxelflex.engine.step import predict_batch
    from voxelflex.index import read_index
    from voxelflex.sources import PlanConfig, open_source

    index_path = Path(index_path)
    model, ck = load_for_inference(checkpoint, device)
    index = read_index(index_path)
    ck.check_data(index.meta, where=str(index_path))
    by_split, missing = _select(index, split, domains)
    if not by_split:
        raise InputError(
            f"none of the requested domains is in {index_path}: "
            + "; ".join(f"{m[0]} ({m[-1]})" for m in missing[:10])
        )
    split_names = sorted(by_split, key=SPLITS.index)
    out = (
        Path(out_path)
        if out_path
        else default_predictions_path(checkpoint, "+".join(split_names), TableFormat(fmt).value)
    )
    inputs = {
        "checkpoint": checkpoint,
        "index": index_path,
        "voxel file": index.meta.voxel_file,
        "shard folder": shards_dir,
    }
    predictions_format(out)
    check_output(out, inputs=inputs, overwrite=overwrite, what="predictions file")
    missing_out = check_output(
        out.with_name(out.stem + "_missing.csv"), inputs=inputs, overwrite=True
    )
    if temperatures is not None and len(temperatures):
        temps = np.unique(np.asarray(temperatures, dtype=np.float32))
    else:
        found = [_split_temperatures(index, s, d) for s, d in by_split.items()]
        temps = np.unique(np.concatenate(found)) if found else np.zeros(0, np.float32)
        if len(temps) == 0 and by_split:
            raise ConfigError(
                f"split(s) {sorted(by_split)} of {index_path} have no temperatures (a prediction "
                "index); pass --temperature K (repeatable) or --temperatures START:STOP:STEP"
            )
    row_ids, t_out, p_out = [], [], []
    unread: dict[int, str] = {}
    for s, doms in by_split.items():
        src = open_source(
            source,
            _restrict(index, doms),
            split=s,
            shards_dir=shards_dir,
            temperatures=temps.tolist(),
            on_error="skip",  # an unreadable domain is reported, the rest still predicted
        )
        cfg = PlanConfig(batch_size=batch_size * len(temps), shuffle=False, num_workers=num_workers)
        loader = src.loader(cfg, epoch=0)
        for batch in loader:
            pred = predict_batch(model, batch, device).numpy()
            ok = ((batch.row_id >= 0) & (batch.weight > 0)).numpy()
            row_ids.append(batch.row_id.numpy()[ok])
            t_out.append(batch.temperature.numpy()[ok])
            p_out.append(pred[ok])
        unread.update(loader.skipped)
    missing += _unread_lines(index.table, unread)
    row_id = np.concatenate(row_ids) if row_ids else np.zeros(0, np.int64)
    t_all = np.concatenate(t_out) if t_out else np.zeros(0, np.float32)
    p_all = np.concatenate(p_out) if p_out else np.zeros(0, np.float32)
    finite = np.isfinite(p_all)
    if not finite.all():
        # A NaN written as a number is a wrong number: such rows are reported, never written.
        missing += _non_finite_lines(index.table, row_id[~finite], t_all[~finite], p_all[~finite])
        log.warning(
            "%d predictions are NaN or infinite (a broken model or input); they are listed in "
            "the _missing.csv report with reason non_finite, not written",
            int((~finite).sum()),
        )
        row_id, t_all, p_all = row_id[finite], t_all[finite], p_all[finite]
    table = assemble_predictions(
        index.table, row_id, t_all, p_all, training_range=ck.temperature_range
    )
    predicted_domains = set(table["domain"].unique().to_pylist())
    skipped = _skipped_lines(index_path, [*(domains or []), *predicted_domains])
    missing_table = pa.concat_tables([_missing_table(missing), skipped])
    meta = PredictionsMeta(
        rmsf_unit=ck.rmsf_unit,
        checkpoint=str(Path(checkpoint).resolve()),
        index=str(index_path.resolve()),
        splits=split_names,
        temperatures=[float(t) for t in temps],
        training_temperature_range=[float(x) for x in ck.temperature_range],
        model=f"{ck.model_name} ({ck.preset}, {ck.conditioning})",
        columns={c: COLUMN_DOCS[c] for c in table.column_names},
    )
    write_predictions(table, meta, out)
    extrap = tuple(float(t) for t in temps if ck.is_extrapolation(np.array([t]))[0])
    if extrap:
        log.warning(
            "temperatures %s K lie outside the checkpoint's training range %s–%s K: predictions "
            "there are extrapolations (column `extrapolated`)",
            ", ".join(temperature_key(t) for t in extrap),
            *(temperature_key(x) for x in ck.temperature_range),
        )
    missing_path = None
    missing_out.unlink(missing_ok=True)  # a report from an earlier run would describe it
    if missing_table.num_rows:
        missing_path = missing_out
        write_table_csv(missing_table, missing_path)
        log.warning(
            "%d domains/residues not predicted; reasons in %s", missing_table.num_rows, missing_path
        )
    n_res = len(np.unique(row_id))
    log.info("predicted %d residues × %d temperatures -> %s", n_res, len(temps), out)
    return PredictReport(
        path=out,
        n_rows=table.num_rows,
        n_residues=n_res,
        temperatures=tuple(float(t) for t in temps),
        extrapolated_temperatures=extrap,
        n_missing=missing_table.num_rows,
        missing_path=missing_path,
    )


def importance_for_rows(
    *,
    checkpoint: Path,
    index_path: Path,
    splits: Sequence[str],
    domains: Sequence[str],
    n_shuffles: int = 3,
    seed: int = 0,
    source: str = "hdf5",
    shards_dir: str | Path | None = None,
    batch_size: int = 256,
    device: str = "cpu",
) -> dict:
    """Permutation importance over the index rows (with targets) of ``domains`` in ``splits``.

    See :func:`voxelflex.analysis.importance.permutation_importance`; one voxel read per residue.
    """
    from voxelflex.analysis.importance import permutation_importance
    from voxelflex.engine.checkpoint import load_for_inference
    from voxelflex.index import read_index
    from voxelflex.sources import PlanConfig, open_source

    model, ck = load_for_inference(checkpoint, device)
    index = read_index(index_path)
    ck.check_data(index.meta, where=str(index_path))
    restricted = _restrict(index, list(domains))
    use_features = bool(model.spec.features)

    def forward(grids: torch.Tensor, batch) -> torch.Tensor:
        feats = batch.features if use_features else None
        return model(grids, batch.residue_index, batch.temperature, feats)

    def batches():
        for s in splits:
            try:
                src = open_source(source, restricted, split=s, shards_dir=shards_dir)
            except SourceError as exc:
                log.warning("permutation importance: split %s skipped: %s", s, exc)
                continue
            per_residue = int(src.table.residue_samples().max())
            cfg = PlanConfig(batch_size=batch_size * per_residue, shuffle=False)
            yield from src.loader(cfg, epoch=0)

    result = permutation_importance(
        forward,
        batches(),
        channels=ck.frame.channels,
        device=device,
        n_shuffles=n_shuffles,
        seed=seed,
    )
    if result["n_rows"] == 0:
        raise InputError(
            f"{index_path}: no rows with targets in split(s) {list(splits)} for the predicted "
            "domains, so permutation importance has nothing to score; evaluate predictions of a "
            "split with targets (or pass --no-importance)"
        )
    return result
