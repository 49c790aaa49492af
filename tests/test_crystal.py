"""The crystal neighbours of a structure (``wcn_lattice``) against a brute-force lattice, and the
cell, space group and method read from PDB and mmCIF files."""

import gzip
import itertools
from pathlib import Path

import gemmi
import numpy as np
import pytest

from voxelflex.errors import InputError
from voxelflex.structure import read_structure
from voxelflex.structure.crystal import Crystal, lattice_neighbours
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
    assert s.crystal == Crystal((41.98, 41.98, 88.92, 90.0, 90.0, 90.0), "P 43 21 2", XRAY)
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
    for name in f.names:  # the other features do not depend on the crystal
        if name != "wcn_lattice":
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


def test_placeholder_cells_and_unusable_crystals():
    nmr = read_structure(STRUCTURES / "1vii.pdb.gz")  # CRYST1 1 1 1 P 1, SOLUTION NMR
    assert nmr.crystal.method == "SOLUTION NMR" and not nmr.crystal.is_crystal
    assert not compute_features(nmr.resolved(), crystal=nmr.crystal).column("wcn_lattice").any()
    assert read_structure(STRUCTURES / "1bd2t.pdb").crystal is None  # no CRYST1 record
    xyz = np.zeros((3, 3))
    with pytest.raises(InputError, match=r"x\.pdb: a X-RAY DIFFRACTION structure .*'Q 9'.*CRYST1"):
        lattice_neighbours(
            xyz, Crystal((40.0, 40, 40, 90, 90, 90), "Q 9", XRAY), 20.0, where="x.pdb"
        )
    with pytest.raises(InputError, match=r"cell \(1\.0, 1, 1"):
        lattice_neighbours(xyz, Crystal((1.0, 1, 1, 90, 90, 90), "P 1", XRAY), 20.0, where="x")
    assert lattice_neighbours(xyz, None, 20.0, where="x").shape == (0, 3)


def test_a_crystal_file_with_a_broken_space_group_is_skipped_with_its_reason(tmp_path):
    with gzip.open(STRUCTURES / "1a8o.pdb.gz", "rt") as f:
        text = f.read().replace("P 43 21 2 ", "P 99 99 9 ")
    path = tmp_path / "bad.pdb"
    path.write_text(text)
    s = read_structure(path)
    with pytest.raises(InputError, match=r"bad\.pdb: .*'P 99 99 9'"):
        compute_features(s.resolved(), where=str(path), crystal=s.crystal)
