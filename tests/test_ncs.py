"""NCS copies a file marks as not given (PDB ``MTRIX`` with iGiven blank, mmCIF
``_struct_ncs_oper.code generate``): features see them as environment, exactly as if the file
held them, while rows and voxel frames stay the file's own."""

import gzip
import io
import logging
from pathlib import Path

import biotite.structure.io.pdb as pdb
import biotite.structure.io.pdbx as pdbx
import gemmi
import numpy as np

from voxelflex.structure import compute_frames, features
from voxelflex.structure.crystal import Crystal, NcsOperator, ncs_operators
from voxelflex.structure.features import compute_features
from voxelflex.structure.io import parse_structure

STRUCTURES = Path(__file__).parent / "data" / "structures"
XRAY = "X-RAY DIFFRACTION"
HEADER = (
    f"EXPDTA    {XRAY}\nCRYST1   41.980   41.980   88.920  90.00  90.00  90.00 P 43 21 2     8\n"
)
# A two-fold about z through (31, 36): a copy that packs against the side of 1a8o's chain A,
# closest heavy atoms 2.9 Å apart; the explicit copy is the operator's exactly (three decimals).
ROTATION = np.diag([-1.0, -1.0, 1.0])
VECTOR = np.array([62.0, 72.0, 0.0])


def _chain_a():
    with gzip.open(STRUCTURES / "1a8o.pdb.gz", "rt") as fh:
        atoms = pdb.PDBFile.read(fh).get_structure(model=1, altloc="first")
    return atoms[(atoms.chain_id == "A") & ~atoms.hetero]


def _atoms_text(atoms) -> str:
    out = pdb.PDBFile()
    out.set_structure(atoms)
    buf = io.StringIO()
    out.write(buf)
    return buf.getvalue()


def _mtrix(rotation, vector, serial: int, given: str) -> str:
    return "".join(
        f"MTRIX{i + 1} {serial:3d}{rotation[i, 0]:10.6f}{rotation[i, 1]:10.6f}"
        f"{rotation[i, 2]:10.6f}     {vector[i]:10.5f}    {given}\n"
        for i in range(3)
    )


def _copy(atoms):
    b = atoms.copy()
    b.coord = (atoms.coord.astype(np.float64) @ ROTATION.T + VECTOR).astype(np.float32)
    b.chain_id[:] = "B"
    return b


def _features(text: str, name: str = "x.pdb"):
    s = parse_structure(text, name)
    return s, compute_features(s.resolved(), where=name, crystal=s.crystal)


def _assert_rows_equal(got, want, chain: str = "A") -> None:
    mine = want.chain == chain
    assert len(got) == mine.sum() and (got.chain == chain).all()
    np.testing.assert_array_equal(got.resnum, want.resnum[mine])
    for name in got.names:  # every feature
        np.testing.assert_allclose(
            got.column(name), want.column(name)[mine], rtol=1e-5, atol=1e-6, err_msg=name
        )


def test_mtrix_copies_not_given_join_the_environment_as_if_written_out():
    a = _chain_a()
    held = _atoms_text(a)
    _, alone = _features(HEADER + held)
    _, both = _features(HEADER + _atoms_text(a + _copy(a)))
    text = HEADER + _mtrix(np.eye(3), np.zeros(3), 1, "1") + _mtrix(ROTATION, VECTOR, 2, " ")
    s, ncs = _features(text + held)
    assert s.crystal.ncs == (NcsOperator("2", tuple(ROTATION.ravel()), tuple(VECTOR)),)
    # gemmi reads the same operators as not given
    ops = [op for op in gemmi.read_pdb_string(text + held).ncs if not op.given]
    assert [op.id for op in ops] == ["2"]
    np.testing.assert_allclose(ops[0].tr.mat.tolist(), ROTATION)
    np.testing.assert_allclose(ops[0].tr.vec.tolist(), VECTOR)

    _assert_rows_equal(ncs, both)
    # the copy touches chain A: the interface is buried, the contact numbers rise
    assert (ncs.column("rsa") < alone.column("rsa") - 0.1).sum() >= 3
    assert (ncs.column("wcn_ca") > alone.column("wcn_ca")).all()
    # frames are the file's own, as aposteriori's (it does not expand NCS)
    mine, plain = compute_frames(s), compute_frames(parse_structure(held, "x.pdb"))
    np.testing.assert_array_equal(mine.packed, plain.packed)
    np.testing.assert_array_equal(mine.resids, plain.resids)


def test_given_identity_and_unusable_operators_add_nothing(caplog):
    a = _chain_a()
    held = _atoms_text(a)
    _, alone = _features(HEADER + held)
    given = HEADER + _mtrix(ROTATION, VECTOR, 2, "1")  # the file holds that copy
    s, f = _features(given + held)
    assert s.crystal.ncs == ()
    np.testing.assert_array_equal(f.values, alone.values)
    identity = HEADER + _mtrix(np.eye(3), np.zeros(3), 1, " ")
    s, f = _features(identity + held)
    assert len(s.crystal.ncs) == 1
    np.testing.assert_array_equal(f.values, alone.values)
    with caplog.at_level(logging.WARNING, logger="voxelflex.structure.crystal"):
        for bad in (2.0 * ROTATION, np.diag([-1.0, 1.0, 1.0])):  # not orthonormal; a mirror
            _, f = _features(HEADER + _mtrix(bad, VECTOR, 2, " ") + held, "bad.pdb")
            np.testing.assert_array_equal(f.values, alone.values)
        garbled = _mtrix(ROTATION, VECTOR, 2, " ").replace("-1.000000", "  garbage", 1)
        _, f = _features(HEADER + garbled + held, "bad.pdb")
        np.testing.assert_array_equal(f.values, alone.values)
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 3
    assert all("bad.pdb: NCS operator 2" in w and "not a rotation" in w for w in warned)
    assert all("fix or remove the operator" in w for w in warned)


def test_a_copy_marked_not_given_that_the_file_holds_is_not_generated_again(caplog):
    a = _chain_a()
    both = _atoms_text(a + _copy(a))
    _, want = _features(HEADER + both)
    mislabelled = HEADER + _mtrix(ROTATION, VECTOR, 2, " ") + both
    with caplog.at_level(logging.WARNING, logger="voxelflex.structure.crystal"):
        _, got = _features(mislabelled, "held.pdb")
    np.testing.assert_array_equal(got.values, want.values)
    assert "held.pdb: NCS operator 2" in caplog.text and "mark it given" in caplog.text
    # no crystal, or one without operators: no copies
    for crystal in (None, Crystal(None, "", XRAY)):
        rotations, vectors = ncs_operators(crystal, np.zeros((3, 3)), where="x")
        assert rotations.shape == (0, 3, 3) and vectors.shape == (0, 3)


def _cif_text(atoms, codes: dict[str, tuple[np.ndarray, np.ndarray]]) -> str:
    cif = pdbx.CIFFile()
    pdbx.set_structure(cif, atoms, data_block="x")
    block = cif.block
    block["exptl"] = pdbx.CIFCategory({"method": "X-RAY DIFFRACTION"})
    block["cell"] = pdbx.CIFCategory(
        {"length_a": 41.98, "length_b": 41.98, "length_c": 88.92}
        | {f"angle_{x}": 90.0 for x in ("alpha", "beta", "gamma")}
    )
    block["symmetry"] = pdbx.CIFCategory({"space_group_name_H-M": "P 43 21 2"})
    columns = {"id": [str(i + 1) for i in range(len(codes))], "code": list(codes)}
    for i in range(3):
        for j in range(3):
            columns[f"matrix[{i + 1}][{j + 1}]"] = [f"{r[i, j]:.6f}" for r, _ in codes.values()]
        columns[f"vector[{i + 1}]"] = [f"{v[i]:.5f}" for _, v in codes.values()]
    block["struct_ncs_oper"] = pdbx.CIFCategory(columns)
    buf = io.StringIO()
    cif.write(buf)
    return buf.getvalue()


def test_mmcif_struct_ncs_oper_generate_joins_the_environment():
    a = _chain_a()
    _, both = _features(HEADER + _atoms_text(a + _copy(a)))
    text = _cif_text(a, {"given": (np.eye(3), np.zeros(3)), "generate": (ROTATION, VECTOR)})
    s, ncs = _features(text, "x.cif")
    assert s.crystal.ncs == (NcsOperator("2", tuple(ROTATION.ravel()), tuple(VECTOR)),)
    gem = gemmi.make_structure_from_block(gemmi.cif.read_string(text).sole_block())
    assert [(op.id, op.given) for op in gem.ncs] == [("2", False)]  # gemmi drops the identity
    _assert_rows_equal(ncs, both)
    # the same operator marked given adds nothing
    _, given = _features(_cif_text(a, {"given": (ROTATION, VECTOR)}), "x.cif")
    _, alone = _features(HEADER + _atoms_text(a))
    np.testing.assert_allclose(given.values, alone.values, rtol=1e-5, atol=1e-6)


def test_a_large_asymmetric_unit_builds_gnm_per_chain_as_the_written_out_file(monkeypatch):
    """Above GNM_MAX_NODES CA atoms (copies counted) Γ is built per chain, as for the file that
    holds every copy; only the file's own nodes are then inverted."""
    a = _chain_a()
    monkeypatch.setattr(features, "GNM_MAX_NODES", 100)  # 66 CA atoms, 132 with the copy
    _, both = _features(HEADER + _atoms_text(a + _copy(a)))
    _, ncs = _features(HEADER + _mtrix(ROTATION, VECTOR, 2, " ") + _atoms_text(a))
    _, alone = _features(HEADER + _atoms_text(a))
    _assert_rows_equal(ncs, both)
    np.testing.assert_allclose(ncs.column("gnm_msf"), alone.column("gnm_msf"), rtol=1e-6)
