"""The crystal a structure file describes, and the protein's neighbours in it.

A crystal structure's B-factors fall where a residue touches a neighbouring copy of the molecule
in the lattice, which the file's own atoms do not show. The file states the lattice: the unit
cell and space group (PDB ``CRYST1``; mmCIF ``_cell`` and ``_symmetry`` / ``_space_group``) and
the experimental method (``EXPDTA``; ``_exptl.method``). Space-group operators come from gemmi's
table (all 230 groups and their settings), not from a hand-written one.

The lattice is used only when the method is a diffraction or crystallography method: NMR and
electron-microscopy entries carry a placeholder cell (1 Å, P 1), and simulation frames a
periodic box that is not a crystal. Such files have no lattice neighbours.

A file may hold only part of its asymmetric unit: non-crystallographic symmetry (NCS) operators
the file marks as not given (PDB ``MTRIXn`` with the iGiven column blank or 0; mmCIF
``_struct_ncs_oper.code generate``) generate the rest. :func:`ncs_operators` gives the usable
ones, whatever the method; the copies they generate are the file's protein too (features see
them as environment, never as residues of their own).
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

import gemmi
import numpy as np

__all__ = [
    "Crystal",
    "NcsOperator",
    "lattice_neighbours",
    "ncs_operators",
    "read_cif_crystal",
    "read_pdb_crystal",
]

log = logging.getLogger(__name__)

_CRYSTAL_METHODS = ("DIFFRACTION", "CRYSTALLOGRAPHY")
_CRYST1_COLUMNS = ((6, 15), (15, 24), (24, 33), (33, 40), (40, 47), (47, 54))  # a b c α β γ
_MTRIX_COLUMNS = ((10, 20), (20, 30), (30, 40), (45, 55))  # m[n][1] m[n][2] m[n][3] v[n]
_ORTHONORMAL_TOLERANCE = 0.01  # largest |R Rᵀ − I| entry of a usable NCS rotation
# An operator within both of these of the identity is the identity (it adds no copy).
_IDENTITY_ROTATION = 1e-4  # largest |R − I| element
_IDENTITY_SHIFT = 1e-3  # Å, largest |t| element
_HELD_SAMPLE = 256  # CA atoms of a copy compared with the file's, evenly spaced
_HELD_DISTANCE = 1.0  # Å: a copy whose CA atoms mostly lie this close to the file's is held


@dataclass(frozen=True)
class NcsOperator:
    """One NCS operator the file marks as not given: x' = R x + t generates a copy.

    Attributes
    ----------
    id : str
        Its serial number (``MTRIXn``) or ``_struct_ncs_oper.id``.
    matrix : tuple of float
        R (3 × 3) row by row, 9 values; NaN where the file's value is not a number.
    vector : tuple of float
        t, Å, 3 values; NaN where the file's value is not a number.
    """

    id: str
    matrix: tuple[float, ...]
    vector: tuple[float, ...]


@dataclass(frozen=True)
class Crystal:
    """Unit cell, space group and method as the file states them.

    Attributes
    ----------
    cell : tuple of float or None
        a, b, c (Å) and alpha, beta, gamma (degrees); None when the file states none.
    space_group : str
        Hermann–Mauguin symbol as written (``"P 21 21 21"``).
    method : str
        Experimental method as written (``"X-RAY DIFFRACTION"``), ``""`` when none is stated.
    fractional : tuple of float or None
        The file's own orthogonal → fractional transform (PDB ``SCALEn``, mmCIF
        ``_atom_sites.fract_transf_*``): 3 × 3 matrix row by row, then the vector; None when
        not stated.
    ncs : tuple of NcsOperator
        The NCS operators the file marks as not given (``MTRIXn`` with iGiven blank or 0,
        ``_struct_ncs_oper.code generate``), in file order; those marked given are left out (the
        file holds their copies). :func:`ncs_operators` checks them.
    """

    cell: tuple[float, float, float, float, float, float] | None
    space_group: str
    method: str
    fractional: tuple[float, ...] | None = None
    ncs: tuple[NcsOperator, ...] = ()

    @property
    def is_crystal(self) -> bool:
        """True when the method is a diffraction or crystallography method on a 3D crystal
        (fibre diffraction has no 3D lattice)."""
        method = self.method.upper()
        return "FIBER" not in method and any(m in method for m in _CRYSTAL_METHODS)


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")  # ncs_operators warns about the operator


def _pdb_ncs(mtrix: dict[str, dict[str, str]]) -> tuple[NcsOperator, ...]:
    """The operators of ``MTRIXn`` records (serial → row number → line) not marked given."""
    out = []
    for serial, rows in mtrix.items():
        lines = [rows.get(k, "") for k in "123"]
        if any(line[59:60].strip() not in ("", "0") for line in lines if line):
            continue  # iGiven 1: the file holds the copy
        values = [[_number(line[i:j]) for i, j in _MTRIX_COLUMNS] for line in lines]
        matrix = tuple(v for row in values for v in row[:3])
        out.append(NcsOperator(serial, matrix, tuple(row[3] for row in values)))
    return tuple(out)


def read_pdb_crystal(text: str) -> Crystal | None:
    """The ``CRYST1`` cell and space group, ``SCALEn``, the ``EXPDTA`` method(s) and the
    ``MTRIXn`` operators not marked given of PDB ``text``; None when it states none of them."""
    cryst = method = None
    scale = {}
    mtrix: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        if cryst is None and line.startswith("CRYST1"):
            cryst = line
        elif line.startswith("EXPDTA"):  # continuation lines (columns 9-10) go on the text
            method = f"{method or ''} {line[10:79].strip()}".strip()
        elif line.startswith(("SCALE1", "SCALE2", "SCALE3")):
            scale[line[5]] = line
        elif line.startswith(("MTRIX1", "MTRIX2", "MTRIX3")):
            mtrix.setdefault(line[7:10].strip(), {})[line[5]] = line.ljust(60)
        if line.startswith(("ATOM  ", "HETATM")):
            break  # all are header records
    ncs = _pdb_ncs(mtrix)
    cell = None
    if cryst is not None:
        try:
            cell = tuple(float(cryst[i:j]) for i, j in _CRYST1_COLUMNS)
        except ValueError:
            cell = None  # a malformed CRYST1 is no cell (a crystal structure then warns)
    if cell is None and method is None and not ncs:
        return None
    fractional = None
    if len(scale) == 3:
        try:
            rows = [[float(scale[k][i : i + 10]) for i in (10, 20, 30)] for k in "123"]
            fractional = (*(v for r in rows for v in r), *(float(scale[k][45:55]) for k in "123"))
        except ValueError:
            fractional = None
    group = cryst[55:66].strip() if cell is not None else ""
    return Crystal(
        cell=cell, space_group=group, method=method or "", fractional=fractional, ncs=ncs
    )


def _cif_ncs(block) -> tuple[NcsOperator, ...]:
    """The ``_struct_ncs_oper`` rows with code ``generate`` of a biotite ``CIFBlock``."""
    try:
        category = block["struct_ncs_oper"]
        codes = category["code"].as_array(str)
    except KeyError:
        return ()
    if "id" in category:
        ids = category["id"].as_array(str)
    else:
        ids = np.arange(1, len(codes) + 1).astype(str)

    def column(name: str) -> list[float]:
        if name not in category:
            return [float("nan")] * len(codes)
        return [_number(v) for v in category[name].as_array(str)]

    matrix = [column(f"matrix[{i}][{j}]") for i in "123" for j in "123"]
    vector = [column(f"vector[{i}]") for i in "123"]
    return tuple(
        NcsOperator(str(ids[k]), tuple(m[k] for m in matrix), tuple(v[k] for v in vector))
        for k, code in enumerate(codes)
        if str(code).strip().lower() == "generate"
    )


def read_cif_crystal(block) -> Crystal | None:
    """The cell, space group, fractional transform and methods of a biotite ``CIFBlock``;
    None when it states neither a cell nor a method."""

    def item(category: str, name: str) -> str | None:
        try:
            value = str(block[category][name].as_array(str)[0])
        except (KeyError, IndexError):
            return None
        return None if value in (".", "?") else value

    def numbers(category: str, names: list[str]) -> tuple[float, ...] | None:
        values = [item(category, n) for n in names]
        try:
            return None if None in values else tuple(float(v) for v in values)
        except ValueError:
            return None

    cell = numbers(
        "cell", [f"length_{x}" for x in "abc"] + [f"angle_{x}" for x in ("alpha", "beta", "gamma")]
    )
    try:  # a joint refinement lists each method in its own row; EXPDTA joins them with "; "
        methods = [str(m) for m in block["exptl"]["method"].as_array(str)]
    except KeyError:
        methods = []
    method = "; ".join(m for m in methods if m not in (".", "?")) or None
    ncs = _cif_ncs(block)
    if cell is None and method is None and not ncs:
        return None
    group = item("symmetry", "space_group_name_H-M") or item("space_group", "name_H-M_alt") or ""
    fractional = numbers(
        "atom_sites",
        [f"fract_transf_matrix[{i}][{j}]" for i in "123" for j in "123"]
        + [f"fract_transf_vector[{i}]" for i in "123"],
    )
    return Crystal(
        cell=cell, space_group=group, method=method or "", fractional=fractional, ncs=ncs
    )


def ncs_operators(
    crystal: Crystal | None, ca_xyz: np.ndarray, *, where: str
) -> tuple[np.ndarray, np.ndarray]:
    """The NCS operators that generate copies the file does not hold, checked.

    The identity adds nothing and is left out. An operator that is not a rotation (a matrix
    that is not orthonormal with determinant +1, a value that is not a number) is left out with
    a warning naming the file and the fix, and so is one whose copy lands on the file's own
    atoms (most of its CA atoms within 1 Å of the file's: the file holds that copy).

    Parameters
    ----------
    crystal : Crystal or None
        The file's crystal; None or no :attr:`Crystal.ncs`: no operators.
    ca_xyz : numpy.ndarray of float64, shape (N, 3)
        The file's CA positions, Å (to recognise a copy the file already holds).
    where : str
        The file, for the warnings.

    Returns
    -------
    rotations : numpy.ndarray of float64, shape (K, 3, 3)
    vectors : numpy.ndarray of float64, shape (K, 3)
        Å; a copy's positions are ``xyz @ rotations[k].T + vectors[k]``.
    """
    rotations, vectors = [], []
    for op in crystal.ncs if crystal is not None else ():
        rot = np.array(op.matrix, dtype=np.float64).reshape(3, 3)
        vec = np.array(op.vector, dtype=np.float64)
        if not (np.isfinite(rot).all() and np.isfinite(vec).all()) or (
            np.abs(rot @ rot.T - np.eye(3)).max() > _ORTHONORMAL_TOLERANCE
            or np.linalg.det(rot) <= 0
        ):
            log.warning(
                "%s: NCS operator %s (MTRIX, mmCIF _struct_ncs_oper) is not a rotation "
                "(matrix %s, vector %s): its copy is not generated and features see the file's "
                "own chains only there; fix or remove the operator, or write the copy into the "
                "file and mark the operator given (MTRIX iGiven 1, _struct_ncs_oper.code given)",
                where,
                op.id,
                np.round(rot, 4).tolist(),
                np.round(vec, 3).tolist(),
            )
            continue
        if (
            np.abs(rot - np.eye(3)).max() <= _IDENTITY_ROTATION
            and np.abs(vec).max() <= _IDENTITY_SHIFT
        ):
            continue
        if len(ca_xyz) and _held(ca_xyz, ca_xyz @ rot.T + vec):
            log.warning(
                "%s: NCS operator %s is marked not given (MTRIX iGiven blank, _struct_ncs_oper "
                "code generate) but its copy lies on the file's own atoms: not generated again; "
                "mark it given (MTRIX iGiven 1, _struct_ncs_oper.code given)",
                where,
                op.id,
            )
            continue
        rotations.append(rot)
        vectors.append(vec)
    return np.array(rotations).reshape(-1, 3, 3), np.array(vectors).reshape(-1, 3)


def _held(ca_xyz: np.ndarray, copy: np.ndarray) -> bool:
    """Whether most CA atoms of ``copy`` lie within :data:`_HELD_DISTANCE` of the file's (checked
    on at most :data:`_HELD_SAMPLE` of them, evenly spaced)."""
    copy = copy[:: max(1, len(copy) // _HELD_SAMPLE)]
    near = 0
    for atom in copy:
        near += bool(np.square(ca_xyz - atom).sum(axis=1).min() <= _HELD_DISTANCE**2)
    return near > len(copy) / 2


def _transforms(crystal: Crystal) -> tuple[np.ndarray, np.ndarray]:
    """Orthogonal → fractional as (3 × 3 matrix, vector): the file's own (SCALEn) where it is
    not the standard one of the cell (a structure in another frame), else the standard one."""
    standard = np.array(gemmi.UnitCell(*crystal.cell).frac.mat.tolist())
    if crystal.fractional is not None:
        own = np.array(crystal.fractional[:9]).reshape(3, 3)
        vector = np.array(crystal.fractional[9:])
        if not np.allclose(own, standard, rtol=1e-3, atol=1e-5) or np.abs(vector).max() > 1e-4:
            return own, vector
    return standard, np.zeros(3)


def _unstated_crystal(crystal: Crystal | None) -> bool:
    """A real cell and a space group other than P 1 but no method: a crystal structure whose
    header was stripped (a simulation box is P 1)."""
    return (
        crystal is not None
        and not crystal.method
        and crystal.cell is not None
        and min(crystal.cell[:3]) > 1.0
        and crystal.space_group.replace(" ", "") not in ("", "P1")
    )


def lattice_neighbours(
    xyz: np.ndarray, crystal: Crystal | None, cutoff: float, *, where: str
) -> np.ndarray:
    """Positions of the atoms ``xyz`` in every other copy of the crystal within ``cutoff``.

    Every space-group operator with every lattice translation that brings a copy within
    ``cutoff`` of the atoms' bounding box, except the file's own copy (the identity without
    translation). A crystal structure whose cell or space group cannot be used has no known
    neighbours: a warning names the file and the fix.

    Parameters
    ----------
    xyz : numpy.ndarray of float64, shape (N, 3)
        Atom positions, Å, in the file's frame.
    crystal : Crystal or None
        The file's crystal; None or not :attr:`Crystal.is_crystal`: no neighbours.
    cutoff : float
        Å.
    where : str
        The file, for the warning.

    Returns
    -------
    numpy.ndarray of float64, shape (M, 3)
        Neighbour positions within ``cutoff`` of the bounding box of ``xyz`` (a superset of
        those within ``cutoff`` of an atom).
    """
    if crystal is None or not crystal.is_crystal or not len(xyz):
        if _unstated_crystal(crystal):
            log.warning(
                "%s: a cell and space group %r but no experimental method: read as no crystal, "
                "wcn_lattice is 0; if it is a crystal structure, add EXPDTA X-RAY DIFFRACTION "
                "(mmCIF: _exptl.method)",
                where,
                crystal.space_group,
            )
        return np.zeros((0, 3))
    cell = crystal.cell
    group = (
        gemmi.find_spacegroup_by_name(crystal.space_group, cell[3], cell[5])  # R 3: which axes
        if cell is not None
        else None
    )
    if group is None or min(cell[:3]) <= 1.0:
        log.warning(
            "%s: a %s structure whose cell %s or space group %r cannot be used: no crystal "
            "neighbours known, wcn_lattice is 0; add or fix the CRYST1 record (mmCIF: _cell and "
            "_symmetry.space_group_name_H-M)",
            where,
            crystal.method,
            cell,
            crystal.space_group,
        )
        return np.zeros((0, 3))
    to_frac, vector = _transforms(crystal)
    to_orth = np.linalg.inv(to_frac)
    frac = xyz @ to_frac.T + vector
    low, high = frac.min(axis=0), frac.max(axis=0)
    reach = cutoff * np.linalg.norm(to_frac, axis=1)  # the cutoff along each axis, in cells
    copies = []
    for op in group.operations():
        rot = np.array(op.rot, dtype=np.float64) / op.DEN
        moved = frac @ rot.T + np.array(op.tran, dtype=np.float64) / op.DEN
        first = np.ceil(low - reach - moved.max(axis=0)).astype(int)
        last = np.floor(high + reach - moved.min(axis=0)).astype(int)
        identity = op.triplet() == "x,y,z"
        shifts = itertools.product(*(range(f, t + 1) for f, t in zip(first, last, strict=True)))
        for shift in shifts:
            if identity and not any(shift):
                continue
            copies.append(moved + np.array(shift, dtype=np.float64))
    if not copies:
        return np.zeros((0, 3))
    out = (np.concatenate(copies) - vector) @ to_orth.T
    box_low, box_high = xyz.min(axis=0) - cutoff, xyz.max(axis=0) + cutoff
    return out[((out >= box_low) & (out <= box_high)).all(axis=1)]
