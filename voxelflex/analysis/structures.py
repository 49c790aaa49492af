"""``voxelflex predict --structure``: RMSF for users' own PDB/mmCIF files, no HDF5 written.

Each file is read and voxelized in memory exactly as ``voxelflex voxelize`` would
(:mod:`voxelflex.structure`), its structure features are computed when the checkpoint takes
them, and the frames go through the same prediction path as an index's residues
(:func:`voxelflex.analysis.inference.run_model`). Outputs:

- the predictions table (columns as ``voxelflex predict``; ``domain`` = the file name up to its
  first dot), and ``<stem>_missing.csv`` for anything not predicted, with its reason;
- for one temperature, a copy of every structure in its own format with the predicted RMSF in
  Å (or the equivalent B-factor ``8π²/3 · RMSF²``) in the B-factor column of every atom of the
  residue; atoms without a prediction get :data:`voxelflex.structure.DEFAULT_SENTINEL` (-1.00).
  A negative predicted RMSF is written as 0, a B-factor too wide for a PDB file's column as
  999.99, each counted in a warning (the table keeps the predictions; it is written first).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from voxelflex.analysis.inference import run_model
from voxelflex.analysis.missing import missing_table, non_finite_lines, unread_lines
from voxelflex.analysis.predictions import (
    assemble_predictions,
    predictions_format,
    sidecar_path,
    write_outputs,
)
from voxelflex.config import Config, load_config
from voxelflex.engine.checkpoint import load_for_inference
from voxelflex.engine.distributed import resolve_device
from voxelflex.errors import ConfigError, InputError, VoxelflexError
from voxelflex.index.memory import frames_index
from voxelflex.logs import command_log
from voxelflex.paths import check_output
from voxelflex.quantities import to_angstrom
from voxelflex.sources.memory import MemorySource
from voxelflex.structure import (
    BFACTOR_MODES,
    DEFAULT_SENTINEL,
    FrameSet,
    compute_frames,
    domain_key,
    find_structure_files,
    read_structure,
    write_bfactor_copy,
)
from voxelflex.structure.features import FeatureMeta, compute_features, feature_table

__all__ = ["StructurePredictReport", "predict_structures"]

log = logging.getLogger(__name__)

FILES_PER_CHUNK = 64  # structures held in memory at once (packed frames: 5.8 KB a residue)
# What the copies hold for a checkpoint trained on per-domain z-scored targets.
RELATIVE_SCORE = "relative score (50 + 10 z)"
# What the copies hold for a checkpoint predicting RMSF, per --bfactor-as.
BFACTOR_CONTENT = {"rmsf": "RMSF (Å)", "bfactor": "B-factor 8π²/3·RMSF² (Å²)"}


@dataclass(frozen=True)
class StructurePredictReport:
    """What :func:`predict_structures` wrote.

    Attributes
    ----------
    path : Path
        The predictions table.
    bfactor_dir : Path
        Folder of the structure copies with the predictions in the B-factor column.
    bfactor_temperature : float
        K, the temperature written into the copies.
    files, files_failed : int
    n_rows, n_residues : int
    n_missing : int
    missing_path : Path or None
    bfactor_content : str
        What the copies hold: ``"RMSF (Å)"``, ``"B-factor 8π²/3·RMSF² (Å²)"``, or
        :data:`RELATIVE_SCORE` for a checkpoint trained with ``train.target_norm: domain``.
    """

    path: Path
    bfactor_dir: Path
    bfactor_temperature: float
    files: int
    files_failed: int
    n_rows: int
    n_residues: int
    n_missing: int
    missing_path: Path | None
    bfactor_content: str = "RMSF (Å)"


def _frames(
    path: Path, *, keys: str, altloc: str, features: Sequence[str]
) -> tuple[FrameSet, pa.Table | None]:
    structure = read_structure(path, altloc=altloc)
    frames = compute_frames(structure, keys=keys)
    table = None
    if features:  # the same reading as the frames: one conformer of the first model
        table = feature_table(
            structure.domain,
            compute_features(structure.resolved(), where=str(path), crystal=structure.crystal),
            frames,
        )
    return frames, table


def predict_structures(
    checkpoint: str | Path,
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    temperatures: Sequence[float],
    out_path: str | Path,
    bfactor_dir: str | Path | None = None,
    bfactor_temperature: float | None = None,
    bfactor_as: str = "rmsf",
    keys: str = "aposteriori",
    altloc: str = "first",
    overwrite: bool = False,
    config: Config | None = None,
) -> StructurePredictReport:
    """Predict RMSF for structure files and write the table and B-factor copies.

    Parameters
    ----------
    checkpoint : path
    paths : path or iterable of paths
        PDB/mmCIF files (plain or ``.gz``) and folders of them.
    temperatures : sequence of float
        K; at least one.
    out_path : path
        Predictions ``.parquet`` or ``.csv``.
    bfactor_dir : path, optional
        Folder for the structure copies (same file names); default ``<out stem>_structures``
        beside ``out_path``.
    bfactor_temperature : float, optional
        K, the temperature whose predictions go into the copies; default the first of
        ``temperatures`` as given.
    bfactor_as : {"rmsf", "bfactor"}
        RMSF in Å, or ``8π²/3 · RMSF²`` in Å². A checkpoint trained with
        ``train.target_norm: domain`` predicts per-domain z-scores: its copies hold 50 + 10 z
        (clipped to 0-999.99) and ``"bfactor"`` is refused.
    keys, altloc : str
        Voxelizer rules (``voxelflex voxelize --keys/--altloc``).
    overwrite : bool
    config : Config, optional
        Workers, batch size and device (as :func:`voxelflex.analysis.predict.predict`).

    Raises
    ------
    ConfigError, InputError, CheckpointError
        No temperature, a ``bfactor_temperature`` not finite and > 0 K, no structure file, an
        unknown ``bfactor_as``, a checkpoint trained on another frame or on structure features
        computed with other parameters (another feature format or biotite version is a
        warning: :meth:`~voxelflex.engine.Checkpoint.check_features`), or nothing could be
        predicted.
    """
    config = config or load_config()
    requested = np.asarray(list(temperatures), dtype=np.float32)
    temps = np.unique(requested)
    if len(temps) == 0:
        raise ConfigError(
            "predict --structure needs temperatures: pass --temperature K (repeatable) or "
            "--temperatures START:STOP:STEP"
        )
    if bfactor_as not in BFACTOR_MODES:
        raise ConfigError(f"--bfactor-as {bfactor_as!r}: choose one of {list(BFACTOR_MODES)}")
    if bfactor_temperature is None:
        bfactor_temperature = float(requested[0])
    if not (np.isfinite(bfactor_temperature) and bfactor_temperature > 0):
        raise ConfigError(
            f"--bfactor-temperature {bfactor_temperature:g}: temperatures must be finite and "
            "> 0 K; pass kelvin (e.g. 300)"
        )
    temps = np.unique(np.append(temps, np.float32(bfactor_temperature)))
    files = _files(paths)
    out = Path(out_path)
    inputs = [("checkpoint", checkpoint), *(("structure file", f) for f in files)]
    if predictions_format(out) == "csv":  # its metadata sidecar is replaced with it
        check_output(sidecar_path(out), inputs=inputs, overwrite=True, what="metadata file")
    check_output(out, inputs=inputs, overwrite=overwrite, what="predictions file")
    missing_out = out.with_name(out.stem + "_missing.csv")
    check_output(missing_out, inputs=inputs, overwrite=True)
    bfactor_dir = Path(bfactor_dir or out.with_name(out.stem + "_structures"))
    copies = [bfactor_dir / f.name for f in files]
    for copy in copies:
        check_output(copy, inputs=inputs, overwrite=overwrite, option="--bfactor-dir")
    with command_log(out, "predict --structure"):
        device = str(resolve_device(config.train.device))
        model, ck = load_for_inference(checkpoint, device)
        ck.check_features(
            FeatureMeta().provenance(),
            given="predict --structure",
            checkpoint=str(checkpoint),
        )
        relative = ck.model_spec.target_norm != "global"
        if relative and bfactor_as == "bfactor":
            raise ConfigError(
                f"{checkpoint} was trained with train.target_norm=domain: it predicts relative "
                "scores (per-domain z-scores), not RMSF, and --bfactor-as bfactor would square "
                "them (a rigid and a flexible residue alike); use --bfactor-as rmsf (the copies "
                "then hold 50 + 10 z) or a checkpoint trained with target_norm: global"
            )
        rules = {"keys": keys, "altloc": altloc}
        tables, missing, failed = [], [], 0
        pending: list[tuple[Path, Path, str]] = []  # (structure, copy, domain): copies to write
        bar = tqdm(
            total=len(files),
            unit="file",
            desc="predict structures",
            disable=len(files) < 2 or not config.predict.progress,
        )
        for start in range(0, len(files), FILES_PER_CHUNK):
            chunk = list(zip(files, copies, strict=True))[start : start + FILES_PER_CHUNK]
            paths_in = [p for p, _ in chunk]
            read, lines, n_failed = _read_chunk(paths_in, ck.model_spec.features, rules)
            missing += lines
            failed += n_failed
            bar.update(len(chunk))
            if not read:
                continue
            table, lines = _predict_chunk(model, ck, read, temps, config, device, checkpoint)
            missing += lines
            tables.append(table)
            copy_of = dict(chunk)
            pending += [(path, copy_of[path], frames.domain) for path, frames, _ in read]
        bar.close()
        if not tables:
            raise InputError(
                f"nothing could be predicted from {len(files)} structure file(s); reasons: "
                + "; ".join(f"{m[0]}: {m[-1]}" for m in missing[:5])
            )
        table = pa.concat_tables(tables)
        _, missing_path = write_outputs(
            table,
            missing_table(missing),
            ck,
            checkpoint=checkpoint,
            index="(structures)",
            splits=["predict"],
            temperatures=temps,
            out=out,
            missing_out=missing_out,
        )
        # after the table, so that the predictions are kept whatever happens to a copy
        failures = _write_copies(
            table,
            pending,
            bfactor_temperature,
            None if relative else ck.meta.rmsf_unit,
            bfactor_as,
            rules,
        )
        _remove_stale_copies(copies, [w for w in pending if w[1] not in failures])
        if failures:
            raise InputError(
                f"{len(failures)} of {len(pending)} B-factor copies could not be written "
                f"({out} and the other copies were): " + "; ".join(failures.values())
            )
        residues = table.select(["domain", "chain", "resid_str"]).group_by(
            ["domain", "chain", "resid_str"], use_threads=False
        )
        return StructurePredictReport(
            path=out,
            bfactor_dir=bfactor_dir,
            bfactor_temperature=bfactor_temperature,
            files=len(files),
            files_failed=failed,
            n_rows=table.num_rows,
            n_residues=residues.aggregate([]).num_rows,
            n_missing=len(missing),
            missing_path=missing_path,
            bfactor_content=RELATIVE_SCORE if relative else BFACTOR_CONTENT[bfactor_as],
        )


def _files(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """The structure files, refused when two share a domain key, ignoring case (predictions
    would mix; on a case-insensitive file system, macOS or Windows, one copy would replace the
    other's)."""
    files = find_structure_files(paths)
    seen: dict[str, Path] = {}
    for f in files:
        other = seen.setdefault(domain_key(f).casefold(), f)
        if other != f:
            a, b = domain_key(other), domain_key(f)
            keys = f"the same domain key {b!r}" if a == b else f"domain keys {a!r} and {b!r}"
            raise InputError(
                f"{other} and {f} have {keys} (the file name up to its first dot; case is "
                "ignored, as on macOS and Windows and in PDB ids); predictions and B-factor "
                "copies would mix them: rename one or predict them apart"
            )
    return files


def _remove_stale_copies(copies: list[Path], written: list[tuple[Path, Path, str]]) -> None:
    """Remove an earlier run's copy of a file this run did not predict (unreadable, or no
    residue with a frame): left in place (``--overwrite``), it would look like this run's."""
    made = {copy for _, copy, _ in written}
    for copy in copies:
        if copy not in made and copy.exists():
            copy.unlink()
            log.warning(
                "removed %s, an earlier run's B-factor copy: its structure was not predicted "
                "this time (the missing report says why)",
                copy,
            )


def _read_chunk(
    paths: list[Path], features: Sequence[str], rules: dict
) -> tuple[list[tuple[Path, FrameSet, pa.Table | None]], list[tuple], int]:
    """Frames (and features) of the files; missing lines for what could not be framed."""
    read, missing, failed = [], [], 0
    for path in paths:
        try:
            frames, feats = _frames(path, features=features, **rules)
        except VoxelflexError as exc:
            failed += 1
            missing.append((domain_key(path), None, None, None, "unreadable_file", str(exc)))
            continue
        missing += [
            (
                s.domain,
                s.chain or None,
                s.resid or None,
                None,
                "not_framed",
                f"{s.reason}: {s.detail}",
            )
            for s in frames.skipped
        ]
        if len(frames):
            read.append((path, frames, feats))
    return read, missing, failed


def _predict_chunk(
    model, ck, read: list, temps: np.ndarray, config: Config, device: str, checkpoint
) -> tuple[pa.Table, list[tuple]]:
    """Predictions of one chunk of structures, and missing lines for what was not predicted."""
    spec = ck.model_spec
    feats = [t for _, _, t in read if t is not None]
    index = frames_index([f for _, f, _ in read], pa.concat_tables(feats) if feats else None)
    ck.meta.check_data(index.meta, where="the voxelizer's frame", checkpoint=str(checkpoint))
    source = MemorySource(
        index,
        rows={f.domain: (f.chains, f.resids, f.packed) for _, f, _ in read},
        split="predict",
        temperatures=temps.tolist(),
        on_error="skip",
        features=spec.features,
        feature_norm=spec.feature_norm,
    )
    row_id, t_all, p_all, unread = run_model(model, [source], config, device)
    missing = unread_lines(index.table, unread)
    finite = np.isfinite(p_all)
    missing += non_finite_lines(index.table, row_id[~finite], t_all[~finite], p_all[~finite])
    if spec.features:
        missing += _featureless(index.table, read)
    table = assemble_predictions(
        index.table,
        row_id[finite],
        t_all[finite],
        p_all[finite],
        training_range=ck.meta.temperature_range,
    )
    return table, missing


def _featureless(index_table: pa.Table, read: list) -> list[tuple]:
    """Missing lines for framed residues that got no feature row (and so no prediction)."""
    have = set(
        zip(*(index_table[c].to_pylist() for c in ("domain", "chain", "resid_str")), strict=True)
    )
    return [
        (f.domain, c, r, None, "no_features", "no structure features for this residue")
        for _, f, _ in read
        for c, r in zip(f.chains.tolist(), f.resids.tolist(), strict=True)
        if (f.domain, c, r) not in have
    ]


def _write_copies(
    table: pa.Table,
    written: list[tuple[Path, Path, str]],
    temperature: float,
    unit: str | None,
    as_: str,
    rules: dict,
) -> dict[Path, str]:
    """One B-factor copy per ``(structure, copy, domain)``, from the predictions at
    ``temperature``: RMSF in Å (or ``8π²/3 · RMSF²`` in Å²), or for a relative model (``unit``
    None) its per-domain z-score as 50 + 10 z, clipped to [0, 999.99] so it never meets the
    -1.00 of atoms without a prediction.

    A negative predicted RMSF (a linear head extrapolating) is written as 0: squared it would
    become a large B-factor, and at -1 Å or below it would meet the sentinel. A B-factor of
    1000 Å² or more (RMSF ≥ 6.16 Å) does not fit a PDB file's column and is written as 999.99.
    Both are counted in a warning; the predictions table keeps the predicted values.
    A file whose copy cannot be written (a damaged record in a model after the first, which
    prediction never reads) does not stop the others: returns ``{copy: error}`` for them.
    """
    at_t = table.filter(pc.equal(table["temperature"], pa.scalar(temperature, pa.float32())))
    z_or_rmsf = at_t["predicted_rmsf"].to_numpy().astype(np.float64)
    if unit is None:
        values = np.clip(50.0 + 10.0 * z_or_rmsf, 0.0, 999.99)
    else:
        values = to_angstrom(z_or_rmsf, unit)
        negative = values < 0
        if negative.any():
            log.warning(
                "%d of %d residues have a negative predicted RMSF at %g K (lowest %.3g Å): the "
                "structure copies hold 0.00 for them (the predictions table keeps the values)",
                int(negative.sum()),
                len(values),
                temperature,
                float(values.min()),
            )
            values = np.where(negative, 0.0, values)
    per_domain: dict[str, dict[tuple[str, str], float]] = {}
    for d, c, r, v in zip(
        at_t["domain"].to_pylist(),
        at_t["chain"].to_pylist(),
        at_t["resid_str"].to_pylist(),
        values.tolist(),
        strict=True,
    ):
        per_domain.setdefault(d, {})[(c, r)] = v
    clipped, failures = 0, {}
    for path, copy, domain in written:
        try:
            report = write_bfactor_copy(
                path,
                copy,
                per_domain.get(domain, {}),
                as_=as_,
                sentinel=DEFAULT_SENTINEL,
                clip=True,
                **rules,
            )
        except InputError as exc:
            failures[copy] = str(exc)
            continue
        clipped += report.residues_clipped
    if clipped:
        log.warning(
            "%d residues have a value too wide for the PDB B-factor column (a B-factor of "
            "1000 Å² or more, from an RMSF of 6.16 Å or more): the PDB copies hold 999.99 for "
            "them; `--bfactor-as rmsf` writes RMSF in Å, which fits (mmCIF copies hold every "
            "value)",
            clipped,
        )
    return failures
