"""The predictions table: its columns, how it is assembled from model outputs, written and read.

One row per residue × temperature, in index order (domain, chain, resnum, icode) then ascending
temperature. Parquet files carry :class:`PredictionsMeta` in the footer under
:data:`METADATA_KEY`. CSV files are plain CSV (a header line, then the rows), so any CSV reader
takes them as they are; the same JSON sits beside them in ``<name>.csv.json``
(:func:`sidecar_path`). CSVs written before that carried it on a first line starting with
``# voxelflex predictions``; they are still read.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from voxelflex.atomic import atomic_write_csv, atomic_write_parquet, atomic_write_text
from voxelflex.errors import InputError
from voxelflex.inputs.rmsf_csv import OPTIONAL_COLUMN_DOCS, OPTIONAL_COLUMNS
from voxelflex.paths import decode_utf8
from voxelflex.quantities import (
    RMSF_UNITS,
    outside_range,
    temperature_key,
    temperature_scale_warnings,
)
from voxelflex.sources.shards.manifest import file_sha256

if TYPE_CHECKING:  # annotations only
    from voxelflex.engine.checkpoint import Checkpoint

__all__ = [
    "COLUMN_DOCS",
    "FORMAT_VERSION",
    "METADATA_KEY",
    "RESIDUE_KEY",
    "PredictionsMeta",
    "assemble_predictions",
    "predictions_format",
    "read_predictions",
    "sidecar_path",
    "write_outputs",
    "write_predictions",
]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
METADATA_KEY = b"voxelflex.predictions"
CSV_PREFIX = "# voxelflex predictions "  # first line of CSVs written before the sidecar
RESIDUE_KEY = ("domain", "chain", "resnum", "icode")

COLUMN_DOCS = {
    "domain": "domain key in the voxel HDF5",
    "chain": "chain id",
    "resid_str": "residue key in the voxel HDF5 (residue number as written)",
    "resnum": "residue number (int)",
    "icode": "insertion code ('' if none)",
    "resname": "3-letter residue name",
    "temperature": "temperature in K the prediction is for",
    "predicted_rmsf": "predicted C-alpha RMSF, in the unit `rmsf_unit` of this file's metadata",
    "target_rmsf": (
        "RMSF from the index at this residue and temperature (where none: NaN; in a CSV, empty)"
    ),
    "extrapolated": "true where the temperature lies outside the checkpoint's training range",
    **OPTIONAL_COLUMN_DOCS,
}


@dataclass(frozen=True)
class PredictionsMeta:
    """What a predictions file was made from.

    Attributes
    ----------
    rmsf_unit : str
        Unit of ``predicted_rmsf`` and ``target_rmsf`` (``"nm"`` or ``"angstrom"``).
    checkpoint : str
        Checkpoint path used.
    checkpoint_sha256 : str or None
        SHA-256 of that checkpoint file, so ``evaluate`` can tell whether the file at
        ``checkpoint`` is still the model that made the predictions; None in files written
        before it was recorded.
    index : str
        Index path the residues (and targets) came from; a URL with its user information
        and query shown as ``***`` (:func:`voxelflex.paths.redact_url`).
    splits : list of str
        Index splits the rows came from.
    temperatures : list of float
        Requested temperatures, K.
    training_temperature_range : list of float or None
        [min, max] K seen in training; rows outside are flagged ``extrapolated``.
    model : str
        Model name and preset.
    columns : dict
        Column name → description.
    target_norm : str
        ``"global"``: ``predicted_rmsf`` is RMSF in ``rmsf_unit``. ``"domain"``: the checkpoint
        was trained on per-domain z-scored targets (``train.target_norm``), so
        ``predicted_rmsf`` is a per-domain relative score: compare it within a domain (Pearson,
        Spearman), not as RMSF.
    format_version : int
    """

    rmsf_unit: str
    checkpoint: str
    index: str
    splits: list[str]
    temperatures: list[float]
    training_temperature_range: list[float] | None
    model: str = ""
    columns: dict = field(default_factory=lambda: dict(COLUMN_DOCS))
    target_norm: str = "global"  # absent from files written before it existed: they are global
    checkpoint_sha256: str | None = None  # absent from files written before it existed
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes, *, where: str) -> PredictionsMeta:
        """Inverse of :meth:`to_json`, checked.

        Raises
        ------
        InputError
            Not JSON, another format version, a field missing or unknown, or an RMSF unit
            not in :data:`~voxelflex.quantities.RMSF_UNITS` (the unit every figure of
            evaluate and plot is read in: an edited ``"Å"`` was taken as is).
        """
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"{where}: predictions metadata is not valid JSON ({exc}); rerun `voxelflex "
                "predict`"
            ) from None
        if not isinstance(d, dict) or d.get("format_version") != FORMAT_VERSION:
            version = d.get("format_version") if isinstance(d, dict) else None
            raise InputError(
                f"{where}: predictions format version {version} unsupported, "
                f"expected {FORMAT_VERSION}; rerun `voxelflex predict`"
            )
        if d.get("rmsf_unit") not in RMSF_UNITS:
            raise InputError(
                f"{where}: rmsf_unit {d.get('rmsf_unit')!r} is not one of {list(RMSF_UNITS)}; "
                "it is the checkpoint's unit, as `voxelflex predict` wrote it: restore it or "
                "rerun `voxelflex predict`"
            )
        try:
            return cls(**d)
        except TypeError as exc:  # a field missing, or one this version does not know
            raise InputError(
                f"{where}: predictions metadata malformed ({exc}); rerun `voxelflex predict`"
            ) from None

    @property
    def split(self) -> str:
        """The split name used in output file names (``"+"``-joined when several)."""
        return "+".join(self.splits) if self.splits else "custom"


def assemble_predictions(
    index_table: pa.Table,
    row_id: np.ndarray,
    temperature: np.ndarray,
    predicted: np.ndarray,
    *,
    training_range: tuple[float, float] | None,
) -> pa.Table:
    """Attach residue identity, targets and index annotations to raw model outputs.

    Parameters
    ----------
    index_table : pyarrow.Table
        The whole index table (``row_id`` equals row position).
    row_id : numpy.ndarray, int64, shape (N,)
        For each prediction, the ``row_id`` of any index row of its residue.
    temperature : numpy.ndarray, float32, shape (N,)
        Kelvin.
    predicted : numpy.ndarray, float32, shape (N,)
        Predicted RMSF.
    training_range : (float, float) or None
        Checkpoint training temperature range, K, for the ``extrapolated`` column.

    Returns
    -------
    pyarrow.Table
        Columns of :data:`COLUMN_DOCS` present in the index, sorted by index order and
        temperature. ``target_rmsf`` and annotations come from the index row of the same split,
        residue and temperature (a vectorised hash join); NaN/null where there is none.
    """
    row_id = np.asarray(row_id, dtype=np.int64)
    ident = index_table.select(
        ["split", "domain", "chain", "resid_str", "resnum", "icode", "resname"]
    ).take(pa.array(row_id))
    out = ident.append_column("temperature", pa.array(np.asarray(temperature, np.float32)))
    out = out.append_column("predicted_rmsf", pa.array(np.asarray(predicted, np.float32)))
    # Residue order: row_id is monotone in (split, domain, chain, resnum, icode) order.
    out = out.append_column("_order", pa.array(row_id))
    annotations = [c for c in OPTIONAL_COLUMNS if c in index_table.column_names]
    keys = ["split", *RESIDUE_KEY, "temperature"]
    known = index_table.select([*keys, "target_rmsf", *annotations]).filter(
        pc.is_finite(index_table["temperature"])
    )
    out = out.join(known, keys=keys, join_type="left outer")
    out = out.sort_by([("_order", "ascending"), ("temperature", "ascending")])
    target = out["target_rmsf"].to_numpy(zero_copy_only=False).astype(np.float32)
    target = np.where(np.isfinite(target), target, np.float32(np.nan))  # null -> NaN
    extrap = outside_range(out["temperature"].to_numpy(), training_range)
    cols = {
        "domain": out["domain"],
        "chain": out["chain"],
        "resid_str": out["resid_str"],
        "resnum": out["resnum"],
        "icode": out["icode"],
        "resname": out["resname"],
        "temperature": out["temperature"],
        "predicted_rmsf": out["predicted_rmsf"],
        "target_rmsf": pa.array(target, pa.float32()),
        "extrapolated": pa.array(extrap),
    }
    cols.update({c: out[c].cast(OPTIONAL_COLUMNS[c]) for c in annotations})
    return pa.table(cols)


def _with_meta(table: pa.Table, meta: PredictionsMeta) -> pa.Table:
    md = dict(table.schema.metadata or {})
    md[METADATA_KEY] = meta.to_json().encode()
    return table.replace_schema_metadata(md)


def predictions_format(path: str | Path) -> str:
    """``"parquet"`` or ``"csv"`` from the suffix of a predictions path; InputError otherwise."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in ("parquet", "csv"):
        raise InputError(
            f"{path}: predictions output must end in .parquet or .csv; pass --output "
            "NAME.parquet or NAME.csv"
        )
    return suffix


def sidecar_path(csv_path: str | Path) -> Path:
    """The metadata JSON beside a predictions CSV: ``preds.csv`` → ``preds.csv.json``."""
    csv_path = Path(csv_path)
    return csv_path.with_name(csv_path.name + ".json")


def write_predictions(table: pa.Table, meta: PredictionsMeta, path: str | Path) -> Path:
    """Write predictions to ``.parquet`` or ``.csv`` (chosen by the suffix), atomically.

    A CSV gets its metadata in :func:`sidecar_path` (an older one is removed first and the new
    one written after the CSV, so a crash in between leaves a CSV the reader refuses, never a
    new CSV beside old metadata); a Parquet file in its footer. Every missing value (a NaN
    ``target_rmsf``, a null annotation) is an empty field of the CSV.
    """
    path = Path(path)
    if predictions_format(path) == "parquet":
        atomic_write_parquet(_with_meta(table, meta), path)
    else:
        sidecar_path(path).unlink(missing_ok=True)
        atomic_write_csv(table, path)
        text = json.dumps(json.loads(meta.to_json()), indent=2, sort_keys=True) + "\n"
        atomic_write_text(sidecar_path(path), text)
    return path


_CSV_TYPES = {
    "domain": pa.string(),
    "chain": pa.string(),
    "resid_str": pa.string(),
    "resnum": pa.int32(),
    "icode": pa.string(),
    "resname": pa.string(),
    "temperature": pa.float32(),
    "predicted_rmsf": pa.float32(),
    "target_rmsf": pa.float32(),
    "extrapolated": pa.bool_(),
    **OPTIONAL_COLUMNS,
}


# The columns every reader needs (assemble_predictions writes them all); ``extrapolated`` and
# OPTIONAL_COLUMNS may be absent.
REQUIRED_COLUMNS = tuple(
    c for c in COLUMN_DOCS if c not in OPTIONAL_COLUMNS and c != "extrapolated"
)


def _require_columns(table: pa.Table, path: Path) -> pa.Table:
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise InputError(
            f"{path}: predictions columns {missing} are missing (found {table.column_names}); "
            "pass the file `voxelflex predict` wrote, unchanged (a CSV saved again must keep "
            "commas as separators and every column)"
        )
    return table


def read_predictions(path: str | Path) -> tuple[pa.Table, PredictionsMeta]:
    """Read a predictions file written by :func:`write_predictions` (Parquet or CSV).

    Raises
    ------
    InputError
        A missing file, no voxelflex metadata, or a required column missing.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: predictions file not found; run `voxelflex predict` first")
    if path.suffix.lower() == ".parquet":
        try:
            table = pq.read_table(path, page_checksum_verification=True)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(
                f"{path}: not a readable predictions file, or a damaged one ({exc}); rerun "
                "`voxelflex predict`"
            ) from exc
        raw = (table.schema.metadata or {}).get(METADATA_KEY)
        if raw is None:
            raise InputError(
                f"{path}: not a voxelflex predictions file (no {METADATA_KEY!r} metadata); pass "
                "a file written by `voxelflex predict`"
            )
        # A file saved again by pandas holds large_string columns: one string type for joins
        table = pa.table(
            {
                f.name: table[f.name].cast(pa.string())
                if pa.types.is_large_string(f.type)
                else table[f.name]
                for f in table.schema
            }
        )
        return _require_columns(table, path), PredictionsMeta.from_json(raw, where=str(path))
    sidecar = sidecar_path(path)
    with open(path, "rb") as fh:  # bytes: a file that is not UTF-8 is a message, not a traceback
        first = decode_utf8(
            fh.readline(),
            what=f"predictions CSV {path}",
            fix="pass the file `voxelflex predict` wrote, unchanged",
        )
    if first.startswith(CSV_PREFIX):  # written before the sidecar: metadata on line 1
        meta = PredictionsMeta.from_json(first[len(CSV_PREFIX) :], where=str(path))
        skip = 1
    elif sidecar.is_file():
        meta = PredictionsMeta.from_json(sidecar.read_text(), where=str(sidecar))
        skip = 0
    else:
        raise InputError(
            f"{path}: the predictions CSV's metadata file {sidecar.name} is missing (voxelflex "
            "predict writes it beside the CSV: unit, checkpoint, index, splits); put it back "
            "beside the CSV, pass the Parquet predictions instead (metadata in the file), or "
            f"rerun `voxelflex predict -o {path.name}`"
        )
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(skip_rows=skip),
            convert_options=pacsv.ConvertOptions(
                column_types=_CSV_TYPES,
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        raise InputError(
            f"{path}: not a readable predictions CSV ({exc}); pass the file `voxelflex predict` "
            "wrote, unchanged"
        ) from exc
    table = _require_columns(table, path)
    # a missing target is an empty field in the CSV and NaN in the table, as in Parquet
    where = table.schema.get_field_index("target_rmsf")
    target = pc.fill_null(table["target_rmsf"], pa.scalar(np.nan, pa.float32()))
    return table.set_column(where, "target_rmsf", target), meta


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
    """Write the missing report (removed when empty: a report from an earlier run would
    describe it), then the predictions file with its metadata; warn about extrapolation and
    about temperatures that look like °C.

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
        checkpoint_sha256=file_sha256(checkpoint),
        index=index,
        splits=splits,
        temperatures=[float(t) for t in temperatures],
        training_temperature_range=[float(x) for x in t_range],
        model=f"{spec.name} ({spec.preset}, {spec.conditioning})",
        columns={c: COLUMN_DOCS[c] for c in table.column_names},
        target_norm=spec.target_norm,
    )
    if spec.target_norm != "global":
        log.warning(
            "%s was trained on per-domain z-scored targets: its outputs are relative scores "
            "within each domain (B-factor copies hold 50 + 10 z), not RMSF in %s",
            checkpoint,
            ck.meta.rmsf_unit,
        )
    # The report, the only record of what was not predicted, goes before the predictions, and
    # earlier predictions (--overwrite) are removed before it: a crash in between leaves no
    # predictions file, never one beside an earlier run's report or without its own.
    missing_out.unlink(missing_ok=True)
    out.unlink(missing_ok=True)
    missing_path = None
    if missing_rows.num_rows:
        missing_path = atomic_write_csv(missing_rows, missing_out)
    write_predictions(table, meta, out)
    extrap = tuple(float(t) for t in temperatures[outside_range(temperatures, t_range)])
    if extrap:
        log.warning(
            "%s %s K %s outside the checkpoint's training range %s–%s K: predictions there are "
            "extrapolations (column `extrapolated`), possibly far off, even negative",
            "temperatures" if len(extrap) > 1 else "temperature",
            ", ".join(temperature_key(t) for t in extrap),
            "lie" if len(extrap) > 1 else "lies",
            *(temperature_key(x) for x in t_range),
        )
    for warning in temperature_scale_warnings(
        temperatures, source="predict", fix="pass kelvin to --temperature or --temperatures"
    ):
        log.warning("%s", warning)
    if missing_path is not None:
        log.warning("%d items not predicted; reasons in %s", missing_rows.num_rows, missing_path)
    return extrap, missing_path
