"""The crystal neighbours of a structure (``wcn_lattice``) against a brute-force lattice, and the
cell, space group and method read from PDB and mmCIF files."""

import itertools
import logging
from pathlib import Path

import gemmi
import numpy as np
from biotite.structure.io import pdbx

from voxelflex.structure import read_structure
from voxelflex.structure.crystal import (
    Crystal,
    lattice_neighbours,
    read_cif_crystal,
    read_pdb_crystal,
)
from voxelflex.structure.features import LATTICE_CUTOFF, compute_features

STRUCTURES = Path(__file__).parent / "data" / "structures"
XRAY = "X-RAY DIFFRACTION"


def _brute_force(ca: np.ndarray, crystal: Crystal) -> np.ndarray:
    """wcn_lattice by every operator with every translation in -3..3 cells, no pruning."""
    cell = gemmi.UnitCell(*crystal.cell)
    out = np.zeros(len(ca))
    group = gemmi.find_spacegroup_by_name(crystal.space_group)
    for op, shift in itertools.product(
        group.operations(), itertools.product(range(-3, 4), repeat=3)
    ):
        if op.triplet() == "x,y,z" and not any(shift):
            continue
        for x in ca:
            f = op.apply_to_xyz(cell.fractionalize(gemmi.Position(*x)).tolist())
            image = np.array(cell.orthogonalize(gemmi.Fractional(*(np.add(f, shift)))).tolist())
            d2 = np.square(ca - image).sum(axis=1)
            near = d2 <= LATTICE_CUTOFF**2
            out[near] += 1.0 / np.maximum(d2[near], 1.0)
    return out


def test_lattice_contacts_equal_a_brute_force_sum_over_the_lattice():
    s = read_structure(STRUCTURES / "1a8o.pdb.gz")  # P 43 21 2, 8 operators
    assert s.crystal.cell == (41.98, 41.98, 88.92, 90.0, 90.0, 90.0)
    assert (s.crystal.space_group, s.crystal.method) == ("P 43 21 2", XRAY)
    assert s.crystal.fractional[:3] == (0.023821, 0.0, 0.0)  # SCALE1, the standard frame
    atoms = s.resolved()
    f = compute_features(atoms, where="1a8o", crystal=s.crystal)
    ca = atoms[(atoms.atom_name == "CA") & np.isin(atoms.res_id, f.resnum)].coord.astype(float)
    got = f.column("wcn_lattice")
    np.testing.assert_allclose(got, _brute_force(ca, s.crystal), rtol=1e-5)
    assert (got > 0).mean() > 0.5  # a small crystal: most residues touch a neighbour
    # without the crystal (None, or a method that is not crystallography) there is none
    assert not compute_features(atoms, where="1a8o").column("wcn_lattice").any()
    nmr = Crystal(s.crystal.cell, s.crystal.space_group, "SOLUTION NMR")
    assert not compute_features(atoms, where="1a8o", crystal=nmr).column("wcn_lattice").any()
    plain = compute_features(atoms, where="1a8o")
    assert f.column("wcn_lattice_w7").any() and not plain.column("wcn_lattice_w7").any()
    for name in f.names:  # the other features do not depend on the crystal
        if name not in ("wcn_lattice", "wcn_lattice_w7"):
            assert np.array_equal(f.column(name), plain.column(name)), name


def test_pdb_and_mmcif_of_one_crystal_agree_and_a_cell_translation_changes_nothing(tmp_path):
    pdb, cif = (read_structure(STRUCTURES / f"1a8o.{x}.gz") for x in ("pdb", "cif"))
    assert cif.crystal == pdb.crystal
    a = compute_features(pdb.resolved(), crystal=pdb.crystal).column("wcn_lattice")
    b = compute_features(cif.resolved(), crystal=cif.crystal).column("wcn_lattice")
    np.testing.assert_allclose(a, b, rtol=1e-6)
    moved = pdb.resolved()
    moved.coord = moved.coord + np.array([41.98, -2 * 41.98, 88.92], dtype=np.float32)
    c = compute_features(moved, crystal=pdb.crystal).column("wcn_lattice")
    np.testing.assert_allclose(c, a, rtol=1e-4)


def test_placeholder_cells_and_unusable_crystals(caplog):
    nmr = read_structure(STRUCTURES / "1vii.pdb.gz")  # CRYST1 1 1 1 P 1, SOLUTION NMR
    assert nmr.crystal.method == "SOLUTION NMR" and not nmr.crystal.is_crystal
    assert not compute_features(nmr.resolved(), crystal=nmr.crystal).column("wcn_lattice").any()
    assert read_structure(STRUCTURES / "1bd2t.pdb").crystal is None  # no CRYST1, no EXPDTA
    xyz = np.zeros((3, 3))
    fibre = Crystal((1.0, 1, 1, 90, 90, 90), "P 1", "FIBER DIFFRACTION")  # no 3D lattice
    assert not fibre.is_crystal and not lattice_neighbours(xyz, fibre, 20.0, where="f").size
    assert lattice_neighbours(xyz, None, 20.0, where="x").shape == (0, 3)
    # a crystal structure whose lattice cannot be built has no known neighbours, and says so
    unusable = {
        "'Q 9'": Crystal((40.0, 40, 40, 90, 90, 90), "Q 9", XRAY),
        "cell None": Crystal(None, "", XRAY),  # X-ray without CRYST1 (the real set's 1osm)
        "cell (1.0, 1, 1": Crystal((1.0, 1, 1, 90, 90, 90), "P 1", XRAY),
        "no experimental method": Crystal((40.0, 40, 40, 90, 90, 90), "P 21 21 21", ""),
    }
    for text, crystal in unusable.items():
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="voxelflex.structure.crystal"):
            assert lattice_neighbours(xyz, crystal, 20.0, where="x.pdb").shape == (0, 3)
        assert "x.pdb:" in caplog.text and text in caplog.text and "wcn_lattice is 0" in caplog.text


def test_rhombohedral_axes_and_a_structure_in_its_own_frame(tmp_path):
    """R 3 on rhombohedral axes (a = b = c, α = β = γ ≠ 90°) is not R 3 on hexagonal axes; a
    structure written in another frame than the cell's standard one says so in SCALEn."""
    s = read_structure(STRUCTURES / "1a8o.pdb.gz")
    atoms = s.resolved()
    ca = atoms[atoms.atom_name == "CA"].coord.astype(float)
    rhombo = Crystal((45.0, 45.0, 45.0, 70.0, 70.0, 70.0), "R 3", XRAY)
    got = lattice_neighbours(ca, rhombo, LATTICE_CUTOFF, where="r")
    explicit = Crystal(rhombo.cell, "R 3:R", XRAY)
    np.testing.assert_allclose(
        np.sort(got, axis=0), np.sort(lattice_neighbours(ca, explicit, 20.0, where="r"), axis=0)
    )
    # rotate the molecule 30° about z and write the matching SCALE: the same crystal
    c, sn = np.cos(np.pi / 6), np.sin(np.pi / 6)
    rot = np.array([[c, -sn, 0], [sn, c, 0], [0, 0, 1]])
    standard = np.array(gemmi.UnitCell(*s.crystal.cell).frac.mat.tolist())
    own = standard @ rot.T  # fractional of a rotated point = standard fractional of the original
    rotated = Crystal(s.crystal.cell, s.crystal.space_group, XRAY, (*own.ravel(), 0.0, 0.0, 0.0))
    moved = atoms.copy()
    moved.coord = (atoms.coord.astype(float) @ rot.T).astype(np.float32)
    a = compute_features(atoms, crystal=s.crystal).column("wcn_lattice")
    b = compute_features(moved, crystal=rotated).column("wcn_lattice")
    np.testing.assert_allclose(b, a, rtol=1e-4)


def test_every_stated_method_is_read_not_only_the_first():
    # A joint entry: mmCIF lists one method a row, PDB continues EXPDTA on a second line.
    cif = pdbx.CIFFile()
    block = pdbx.CIFBlock(
        {"exptl": pdbx.CIFCategory({"method": ["SOLUTION SCATTERING", "X-RAY DIFFRACTION"]})}
    )
    cif["X"] = block
    crystal = read_cif_crystal(cif.block)
    assert crystal.method == "SOLUTION SCATTERING; X-RAY DIFFRACTION" and crystal.is_crystal
    pdb = read_pdb_crystal("EXPDTA    NEUTRON DIFFRACTION; X-RAY\nEXPDTA   2 DIFFRACTION\n")
    assert pdb.method == "NEUTRON DIFFRACTION; X-RAY DIFFRACTION" and pdb.is_crystal
    assert read_pdb_crystal("EXPDTA    SOLUTION NMR\n").method == "SOLUTION NMR"
