"""``voxelflex import mdcath``: mdCATH domain files → a dataset folder voxelflex trains on.

Each file becomes a part on disk (:func:`voxelflex.datasets.mdcath.import_domain`, in worker
processes with ``workers > 1``); an interrupted import resumes from its parts. When every file is
done the outputs are written from the parts, each atomically, the report last::

    DATASET/voxels.hdf5                aposteriori layout (domain → chain "A" → residue number)
    DATASET/voxels.features.parquet    structure features (`index build --features`)
    DATASET/rmsf.csv                   RMSF per residue and temperature (replica mean and std)
    DATASET/splits/{train,val,test}.txt
    DATASET/config.yaml                the data section of a training config for this dataset
    DATASET/import_skipped.csv         every domain, residue or value not used, one reason each
    DATASET/import_report.json         counts, settings, timings; written last (import complete)
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import yaml
from tqdm import tqdm

from voxelflex.atomic import atomic_write_csv, atomic_write_text
from voxelflex.datasets.mdcath import (
    SKIP_REASONS,
    SKIP_SCHEMA,
    ImportSettings,
    import_domain,
    skip_line,
)
from voxelflex.datasets.parts import part_name, read_part, write_part
from voxelflex.datasets.splits import (
    SPLIT_NAMES,
    check_random_split,
    random_splits,
    read_groups,
    splits_from_files,
)
from voxelflex.errors import ConfigError, InputError
from voxelflex.inputs.splits import read_split_file
from voxelflex.logs import command_log
from voxelflex.paths import within
from voxelflex.quantities import check_rmsf_unit
from voxelflex.structure.features import write_feature_sidecar
from voxelflex.structure.hdf5 import write_voxel_hdf5
from voxelflex.structure.parallel import ordered_map

__all__ = ["OUTPUTS", "ImportReport", "find_mdcath_files", "import_mdcath"]

log = logging.getLogger(__name__)

STATE_DIR = ".import"
REPORT = "import_report.json"
OUTPUTS = {
    "voxel_file": "voxels.hdf5",
    "features": "voxels.features.parquet",
    "rmsf_csv": "rmsf.csv",
    "splits": "splits",
    "config": "config.yaml",
    "skipped": "import_skipped.csv",
    "report": REPORT,
}


@dataclass(frozen=True)
class ImportReport:
    """What :func:`import_mdcath` did (also in ``import_report.json``).

    Attributes
    ----------
    out_dir : pathlib.Path
    paths : dict of str to pathlib.Path
        The outputs (:data:`OUTPUTS`).
    files : int
        Domain files given.
    resumed : int
        Files whose part an earlier, interrupted run had already written.
    domains : int
        Domains imported.
    refused : int
        Files refused as a whole.
    residues : int
        Residues of the imported domains (RMSF entries).
    voxelized : int
        Residue grids written.
    rows : int
        RMSF CSV rows.
    skipped : dict of str to int
        Report lines per reason (:data:`SKIP_REASONS`).
    splits : dict of str to int
        Domains per split.
    seconds : dict of str to float
        Per step, summed over the domain work (``read``, ``rename``, ``parse``, ``frames``,
        ``compress``, ``features``, ``part``) and the final outputs (``write_hdf5``,
        ``write_tables``); ``wall`` for the whole call.
    """

    out_dir: Path
    paths: dict[str, Path]
    files: int
    resumed: int
    domains: int
    refused: int
    residues: int
    voxelized: int
    rows: int
    skipped: dict[str, int]
    splits: dict[str, int]
    seconds: dict[str, float]

    @property
    def residues_per_second(self) -> float:
        """Residues imported per second of wall time (all steps, final outputs included)."""
        wall = self.seconds.get("wall", 0.0)
        return self.residues / wall if wall else float("nan")


def find_mdcath_files(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """``mdcath_dataset_*.h5`` files of folders (not recursive) and files named directly.

    Raises
    ------
    InputError
        A path that does not exist, or none found.
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(p.glob("mdcath_dataset_*.h5"))
        elif p.is_file():
            found.append(p)
        else:
            raise InputError(f"{p} does not exist; pass mdCATH domain files or their folder")
    if not found:
        raise InputError(
            f"no mdcath_dataset_*.h5 files in {[str(p) for p in paths]}; download them first "
            "(docs/mdcath.md)"
        )
    # One path per file: a file reached twice (relative and absolute, a symlink) is one input.
    unique: dict[Path, Path] = {}
    for f in sorted(found):
        unique.setdefault(f.resolve(), f)
    return sorted(unique.values())


def _work(path: str, settings: ImportSettings, parts_dir: str) -> dict:
    """Worker: import one file into its part; return the part's meta (small, for the bar)."""
    start = time.perf_counter()
    part = import_domain(path, settings)
    write_part(Path(parts_dir) / part_name(path), part)
    part.meta.setdefault("seconds", {})["part"] = (
        time.perf_counter() - start - sum(part.meta.get("seconds", {}).values())
    )
    return part.meta


def _refuse_inputs_in_outputs(out: Path, given: Mapping[str, str | os.PathLike | None]) -> None:
    """Refuse an input file that is, or lies inside, one of the import's outputs.

    ``--overwrite`` deletes those first (and a finished import replaces them at its end): the
    split files an earlier import wrote, given back as ``--train-split``, were deleted before
    they were read.

    Raises
    ------
    InputError
        Naming the option, the file and the output it lies in.
    """
    owned = [out / name for name in (*OUTPUTS.values(), STATE_DIR)]
    for option, path in given.items():
        hit = None if path is None else next((o for o in owned if within(path, o)), None)
        if hit is not None:
            raise InputError(
                f"{option} {path} is inside {hit}, which this import writes (and "
                f"--overwrite deletes first): copy the file out of {out} and give the copy"
            )


def _prepare(out: Path, settings: ImportSettings, overwrite: bool) -> Path:
    """The parts folder of ``out``: made, resumed, or cleared (``overwrite``).

    Raises
    ------
    InputError
        ``out`` holds a finished import (without ``overwrite``), an interrupted import with
        other settings (without ``overwrite``), files an import did not write, or files with
        an import's output names but no import's record (without ``overwrite``).
    """
    state = out / STATE_DIR
    ours = {*OUTPUTS.values(), STATE_DIR}
    if out.exists() and not out.is_dir():
        raise InputError(f"--output {out} is a file; name a folder for the dataset")
    foreign = sorted(
        e.name
        for e in (out.iterdir() if out.is_dir() else ())
        if e.name not in ours and not (e.name.startswith(".") and e.name.endswith(".tmp"))
    )
    if foreign:
        raise InputError(
            f"{out} holds {len(foreign)} entries an mdCATH import did not write: {foreign[:10]}; "
            "choose a new or empty --output folder"
        )
    settings_file = state / "settings.json"
    # An output name counts as this importer's own only where an import left its record: the
    # settings of an interrupted one, or the report of a finished one. Without either, a
    # voxels.hdf5 or rmsf.csv there is the user's dataset, never replaced silently.
    if not overwrite and not settings_file.is_file() and not (out / REPORT).exists():
        theirs = sorted(
            e.name for e in (out.iterdir() if out.is_dir() else ()) if e.name in OUTPUTS.values()
        )
        if theirs:
            raise InputError(
                f"{out} already holds {', '.join(theirs)} that no mdCATH import wrote (no "
                f"{REPORT} or {STATE_DIR}/settings.json there); choose a new or empty --output "
                "folder, or pass --overwrite to replace them"
            )
    wanted = json.loads(json.dumps(settings.to_dict()))  # as the file holds them: lists
    if overwrite:
        # the report, which says the import is complete, goes first: a crash while clearing
        # never leaves it over a half-deleted dataset
        for name in [REPORT, *sorted(ours - {REPORT})]:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
    elif (out / REPORT).exists():
        raise InputError(
            f"{out} holds a finished import ({REPORT}); pass --overwrite to import again, or "
            "choose another --output folder"
        )
    elif settings_file.exists() and json.loads(settings_file.read_text()) != wanted:
        raise InputError(
            f"{out} holds an interrupted import made with other settings "
            f"({settings_file}); rerun with the same --temperatures, --replicas and "
            "--rmsf-unit to resume it, or pass --overwrite to start over"
        )
    for leftover in out.glob(".*.tmp") if out.is_dir() else ():
        leftover.unlink()
    parts = state / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    for leftover in parts.glob(".*.tmp"):
        leftover.unlink()  # a part being written when the last run stopped
    atomic_write_text(settings_file, json.dumps(wanted, indent=2) + "\n")
    return parts


@dataclass(frozen=True)
class _SplitRule:
    """How the domains are split (the split options of :func:`import_mdcath`)."""

    fractions: tuple[float, float, float]
    seed: int
    superfamilies: str | os.PathLike | None
    groups: Mapping[str, str] | None  # read from superfamilies before the import's work
    split_files: Mapping[str, str | os.PathLike | None] | None


def _splits(domains: list[str], rule: _SplitRule) -> tuple[dict[str, list[str]], list[dict], dict]:
    """The splits, their report lines and how they were made."""
    fractions, seed, groups = rule.fractions, rule.seed, rule.groups
    superfamilies, split_files = rule.superfamilies, rule.split_files
    if split_files and any(split_files.values()):
        splits, unassigned, absent = splits_from_files(domains, split_files)
        lines = [skip_line(d, "no_split", "in none of the split files") for d in unassigned]
        lines += [
            skip_line(d, "split_domain_absent", f"listed in the {name} split file")
            for name, ds in absent.items()
            for d in ds
        ]
        how = {"from": {k: str(v) for k, v in split_files.items() if v}}
        _warn_empty_split_files(splits, split_files)
        return splits, lines, how
    splits = random_splits(domains, fractions, seed, groups)
    how = {"random": {"fractions": list(fractions), "seed": seed}}
    if superfamilies:
        how["random"]["grouped_by"] = str(superfamilies)
        how["random"]["groups"] = len({groups[d] for d in domains})
    return splits, [], how


def _warn_empty_split_files(
    splits: Mapping[str, list[str]], split_files: Mapping[str, str | os.PathLike | None]
) -> None:
    """Warn when the user's split files leave train or val empty: the import succeeds (a set
    to predict or evaluate on needs neither), but training on it is refused, hours later."""
    for name in ("train", "val"):
        if splits[name]:
            continue
        path = split_files.get(name)
        why = f"no --{name}-split file given" if path is None else f"{path} lists no domain id"
        log.warning(
            "the %s split is empty (%s): `voxelflex train -c <output>/config.yaml` refuses a "
            "dataset without train and val domains; import again with --overwrite and a "
            "--%s-split file (or no split files, for a random split by --fractions), or give "
            "train --train-split and --val-split files of your own",
            name,
            why,
            name,
        )


def _config_yaml(out: Path, unit: str) -> str:
    p = {k: (out / v).absolute() for k, v in OUTPUTS.items()}
    data = {"voxel_file": str(p["voxel_file"]), "rmsf_csv": str(p["rmsf_csv"]), "rmsf_unit": unit}
    data |= {f"{s}_split": str(p["splits"] / f"{s}.txt") for s in SPLIT_NAMES}
    data["features"] = str(p["features"])
    return (
        "# The data of this mdCATH import; train with\n"
        f"#   voxelflex train -c {p['config']}\n"
        "# (the index is built on the first run). Model settings: docs/mdcath.md.\n"
        # dumped, not formatted: a folder name with " #" or ": " is quoted, not misread
        + yaml.safe_dump({"data": data}, sort_keys=False)
    )


def import_mdcath(
    inputs: str | os.PathLike | Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    settings: ImportSettings | None = None,
    workers: int = 1,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    superfamilies: str | os.PathLike | None = None,
    split_files: Mapping[str, str | os.PathLike | None] | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> ImportReport:
    """Import mdCATH domain files into a voxelflex dataset folder (module docstring).

    Parameters
    ----------
    inputs : path or iterable of paths
        ``mdcath_dataset_*.h5`` files or folders of them.
    out_dir : path
        The dataset folder. An interrupted import there resumes (same settings); a finished
        one is refused without ``overwrite``.
    settings : ImportSettings, optional
        Temperatures, replicas, RMSF unit (default: all five of each, nm).
    workers : int
        Processes importing domains (1: this one).
    fractions : (float, float, float)
        Random split: train, val and test shares of the domains.
    seed : int
        Random split seed.
    superfamilies : path, optional
        ``domain_id,superfamily`` lines: the random split keeps each superfamily in one split.
    split_files : mapping, optional
        ``train``/``val``/``test`` → the user's split files (instead of a random split).
    progress : bool
    overwrite : bool
        Replace a finished or interrupted import in ``out_dir``.

    Returns
    -------
    ImportReport

    Raises
    ------
    InputError, ConfigError
        No input files, an output folder that cannot be used, bad split settings, or no
        domain that could be imported (the report lines are still written).
    """
    t_start = time.perf_counter()
    settings = settings or ImportSettings()
    settings = dataclasses.replace(settings, rmsf_unit=check_rmsf_unit(settings.rmsf_unit))
    if not settings.temperatures or not settings.replicas:
        raise ConfigError("--temperatures and --replicas need at least one value each")
    for name, values in (("temperatures", settings.temperatures), ("replicas", settings.replicas)):
        if len(set(values)) != len(values):  # a repeat would weigh a replica twice, or write
            raise ConfigError(  # every row twice
                f"--{name} {','.join(map(str, values))} repeats a value; list each once"
            )
    if not (split_files and any(split_files.values())):
        check_random_split(fractions, seed)  # like the mapping: before hours of work
    files = find_mdcath_files(inputs)
    out = Path(out_dir)
    given = {"--superfamilies": superfamilies}
    given.update({f"--{k}-split": v for k, v in (split_files or {}).items()})
    _refuse_inputs_in_outputs(out, given)
    groups = read_groups(superfamilies) if superfamilies else None  # fails before the work
    for name, path in (split_files or {}).items():
        if path is not None:  # so does a missing split file (read again at the end)
            read_split_file(path, what=f"{name} split file", option=f"--{name}-split")
    parts_dir = _prepare(out, settings, overwrite)
    with command_log(out, "import mdcath"):
        done = {p.name for p in parts_dir.glob("*.npz")}
        names = {str(f): part_name(f) for f in files}
        for stale in done - set(names.values()):
            (parts_dir / stale).unlink()  # a changed or no longer given source file
        todo = [str(f) for f in files if names[str(f)] not in done]
        resumed = len(files) - len(todo)
        if resumed:
            log.info("resuming: %d of %d files already imported", resumed, len(files))
        seconds: Counter = Counter()
        bar = tqdm(
            total=len(files),
            initial=resumed,
            unit="domain",
            disable=not progress,
            desc="import mdcath",
        )
        work = functools.partial(_work, settings=settings, parts_dir=str(parts_dir))
        for meta in ordered_map(work, todo, workers):
            seconds.update(meta.get("seconds", {}))
            bar.update()
        bar.close()
        report = _assemble(
            [parts_dir / names[str(f)] for f in files],
            out,
            settings,
            _SplitRule(fractions, seed, superfamilies, groups, split_files),
            seconds,
            resumed=resumed,
            t_start=t_start,
        )
        shutil.rmtree(out / STATE_DIR)
        return report


def _assemble(
    parts: list[Path],
    out: Path,
    settings: ImportSettings,
    rule: _SplitRule,
    seconds: Counter,
    *,
    resumed: int,
    t_start: float,
) -> ImportReport:
    """Write the outputs from the parts (one a source file, in input order), each
    atomically, the report last."""
    rows, features, skips = [], [], []
    renamed: Counter = Counter()
    offsets: dict[str, int | None] = {}
    seen: dict[str, str] = {}
    counts = Counter()

    def frames() -> Iterator:
        for part in map(read_part, parts):
            dom = part.meta["domain"]
            if part.frames is None:
                skips.append(part.skips)
                counts["refused"] += 1
                continue
            if seen.setdefault(dom, part.meta["source"]) != part.meta["source"]:
                counts["refused"] += 1
                detail = f"{part.meta['source']}: domain {dom} was imported from {seen[dom]}"
                skips.append(
                    pa.Table.from_pylist(
                        [skip_line(dom, "duplicate_domain", detail)], schema=SKIP_SCHEMA
                    )
                )
                continue
            skips.append(part.skips)  # a refused duplicate's lines are not counted
            counts["domains"] += 1
            counts["residues"] += part.meta["residues"]
            counts["voxelized"] += part.meta["voxelized"]
            rows.append(part.rows)
            features.append(part.features)
            renamed.update(part.meta["renamed"])
            if part.meta["numbering_offset"] != 0:
                offsets[dom] = part.meta["numbering_offset"]
            yield part.frames

    paths = {k: out / v for k, v in OUTPUTS.items()}
    t0 = time.perf_counter()
    try:
        write_voxel_hdf5(frames(), paths["voxel_file"], keys="aposteriori", altloc="first")
    except InputError:
        skip_table = pa.concat_tables(skips) if skips else SKIP_SCHEMA.empty_table()
        atomic_write_csv(skip_table, paths["skipped"])
        reasons = Counter(skip_table["reason"].to_pylist())
        raise InputError(
            f"no domain of {len(parts)} files could be imported (report lines per reason: "
            f"{dict(reasons)}; each is listed in {paths['skipped']})"
        ) from None
    t1 = time.perf_counter()
    write_feature_sidecar(paths["features"], features, altloc="first", keys="aposteriori")
    table = pa.concat_tables(rows)
    atomic_write_csv(table, paths["rmsf_csv"])
    domains = sorted(seen)
    splits, split_lines, how = _splits(domains, rule)
    for name, listed in splits.items():
        atomic_write_text(paths["splits"] / f"{name}.txt", "".join(f"{d}\n" for d in listed))
    skip_table = pa.concat_tables([*skips, pa.Table.from_pylist(split_lines, schema=SKIP_SCHEMA)])
    atomic_write_csv(skip_table, paths["skipped"])
    atomic_write_text(paths["config"], _config_yaml(out, settings.rmsf_unit))
    seconds.update(write_hdf5=t1 - t0, write_tables=time.perf_counter() - t1)
    seconds["wall"] = time.perf_counter() - t_start
    report = ImportReport(
        out_dir=out,
        paths=paths,
        files=len(parts),
        resumed=resumed,
        domains=counts["domains"],
        refused=counts["refused"],
        residues=counts["residues"],
        voxelized=counts["voxelized"],
        rows=table.num_rows,
        skipped=dict(sorted(Counter(skip_table["reason"].to_pylist()).items())),
        splits={k: len(v) for k, v in splits.items()},
        seconds={k: round(v, 3) for k, v in seconds.items()},
    )
    summary = {
        **{k: v for k, v in dataclasses.asdict(report).items() if k not in ("out_dir", "paths")},
        "outputs": {k: v for k, v in OUTPUTS.items()},
        "settings": settings.to_dict(),
        "splits_made": how,
        "charmm_renames": dict(sorted(renamed.items())),
        "numbering_offsets": offsets,
        "skip_reasons": {r: SKIP_REASONS[r] for r in report.skipped},
        "residues_per_second": round(report.residues_per_second, 1),
    }
    atomic_write_text(paths["report"], json.dumps(summary, indent=2, default=str) + "\n")
    return report
