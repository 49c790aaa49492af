"""The crystal a structure file describes, and the protein's neighbours in it.

A crystal structure's B-factors fall where a residue touches a neighbouring copy of the molecule
in the lattice, which the file's own atoms do not show. The file states the lattice: the unit
cell and space group (PDB ``CRYST1``; mmCIF ``_cell`` and ``_symmetry`` / ``_space_group``) and
the experimental method (``EXPDTA``; ``_exptl.method``). Space-group operators come from gemmi's
table (all 230 groups and their settings), not from a hand-written one.

The lattice is used only when the method is a diffraction or crystallography method: NMR and
electron-microscopy entries carry a placeholder cell (1 Å, P 1), and simulation frames a
periodic box that is not a crystal. Such files have no lattice neighbours.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import gemmi
import numpy as np

from voxelflex.errors import InputError

__all__ = ["Crystal", "lattice_neighbours", "read_cif_crystal", "read_pdb_crystal"]

_CRYSTAL_METHODS = ("DIFFRACTION", "CRYSTALLOGRAPHY")
_CRYST1_COLUMNS = ((6, 15), (15, 24), (24, 33), (33, 40), (40, 47), (47, 54))  # a b c α β γ


@dataclass(frozen=True)
class Crystal:
    """Unit cell, space group and method as the file states them.

    Attributes
    ----------
    cell : tuple of float
        a, b, c (Å) and alpha, beta, gamma (degrees).
    space_group : str
        Hermann–Mauguin symbol as written (``"P 21 21 21"``).
    method : str
        Experimental method as written (``"X-RAY DIFFRACTION"``), ``""`` when none is stated.
    """

    cell: tuple[float, float, float, float, float, float]
    space_group: str
    method: str

    @property
    def is_crystal(self) -> bool:
        """True when the method is a diffraction or crystallography method."""
        return any(m in self.method.upper() for m in _CRYSTAL_METHODS)


def read_pdb_crystal(text: str) -> Crystal | None:
    """The ``CRYST1`` cell and space group and the first ``EXPDTA`` method of PDB ``text``;
    None without a ``CRYST1`` record."""
    cryst = method = None
    for line in text.splitlines():
        if cryst is None and line.startswith("CRYST1"):
            cryst = line
        elif method is None and line.startswith("EXPDTA"):
            method = line[10:79].strip()
        if line.startswith(("ATOM  ", "HETATM")):
            break  # both are header records
    if cryst is None:
        return None
    try:
        cell = tuple(float(cryst[i:j]) for i, j in _CRYST1_COLUMNS)
    except ValueError:
        return None  # a malformed CRYST1: read as no cell (is_crystal files then refuse, below)
    return Crystal(cell=cell, space_group=cryst[55:66].strip(), method=method or "")


def read_cif_crystal(block) -> Crystal | None:
    """The cell, space group and first method of a biotite ``CIFBlock``; None without a cell."""

    def item(category: str, name: str) -> str | None:
        try:
            value = str(block[category][name].as_array(str)[0])
        except (KeyError, IndexError):
            return None
        return None if value in (".", "?") else value

    lengths = [item("cell", f"length_{x}") for x in "abc"]
    angles = [item("cell", f"angle_{x}") for x in ("alpha", "beta", "gamma")]
    if None in lengths or None in angles:
        return None
    group = item("symmetry", "space_group_name_H-M") or item("space_group", "name_H-M_alt") or ""
    try:
        cell = tuple(float(v) for v in (*lengths, *angles))
    except ValueError:
        return None
    return Crystal(cell=cell, space_group=group, method=item("exptl", "method") or "")


def lattice_neighbours(
    xyz: np.ndarray, crystal: Crystal | None, cutoff: float, *, where: str
) -> np.ndarray:
    """Positions of the atoms ``xyz`` in every other copy of the crystal within ``cutoff``.

    Every space-group operator with every lattice translation that brings a copy within
    ``cutoff`` of the atoms' bounding box, except the file's own copy (the identity without
    translation).

    Parameters
    ----------
    xyz : numpy.ndarray of float64, shape (N, 3)
        Atom positions, Å, in the file's frame.
    crystal : Crystal or None
        The file's crystal; None or not :attr:`Crystal.is_crystal`: no neighbours.
    cutoff : float
        Å.
    where : str
        The file, for errors.

    Returns
    -------
    numpy.ndarray of float64, shape (M, 3)
        Neighbour positions within ``cutoff`` of the bounding box of ``xyz`` (a superset of
        those within ``cutoff`` of an atom).

    Raises
    ------
    InputError
        A crystal structure whose cell or space group cannot be used.
    """
    if crystal is None or not crystal.is_crystal or not len(xyz):
        return np.zeros((0, 3))
    group = gemmi.find_spacegroup_by_name(crystal.space_group)
    a, b, c = crystal.cell[:3]
    if group is None or min(a, b, c) <= 1.0:
        raise InputError(
            f"{where}: a {crystal.method} structure whose cell {crystal.cell} or space group "
            f"{crystal.space_group!r} cannot be used for its crystal neighbours; fix the CRYST1 "
            "record (mmCIF: _cell and _symmetry.space_group_name_H-M)"
        )
    cell = gemmi.UnitCell(*crystal.cell)
    to_frac = np.array(cell.frac.mat.tolist())
    to_orth = np.array(cell.orth.mat.tolist())
    frac = xyz @ to_frac.T
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
    out = np.concatenate(copies) @ to_orth.T
    box_low, box_high = xyz.min(axis=0) - cutoff, xyz.max(axis=0) + cutoff
    return out[((out >= box_low) & (out <= box_high)).all(axis=1)]
