"""Per-residue context features (voxelflex.structure.features) on hand-built backbones."""

import ast
import inspect
import logging
from pathlib import Path

import biotite.structure as struc
import biotite.structure.io.pdb as pdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import voxelflex.structure.features as features
from tests._damage import flip_last_byte_of_column
from voxelflex.errors import InputError
from voxelflex.structure import compute_frames, read_structure, voxelize_files
from voxelflex.structure.features import (
    FEATURE_GROUPS,
    FEATURE_NAMES,
    FEATURES,
    FeatureMeta,
    compute_features,
    feature_names,
    feature_table,
    read_feature_sidecar,
    write_feature_sidecar,
)
from voxelflex.structure.featurize import featurize_files

STRUCTURES = Path(__file__).parent / "data" / "structures"
HELIX = (-57.0, -47.0)
STRAND = (-120.0, 130.0)


def _place(a, b, c, bond, angle, torsion):
    """Atom d with |cd| = bond, angle bcd and torsion abcd in degrees (NeRF)."""
    angle, torsion = np.radians(angle), np.radians(torsion)
    bc = (c - b) / np.linalg.norm(c - b)
    n = np.cross(b - a, bc)
    n /= np.linalg.norm(n)
    m = np.stack([bc, np.cross(n, bc), n], axis=1)
    d = bond * np.array(
        [-np.cos(angle), np.sin(angle) * np.cos(torsion), np.sin(angle) * np.sin(torsion)]
    )
    return c + m @ d


def _backbone(n_res, phi_psi, *, chain="A", start=1, res_name="ALA", origin=(0.0, 0.0, 0.0)):
    """An ideal N, CA, C, O backbone of ``n_res`` residues with the given (phi, psi)."""
    phi, psi = phi_psi
    xyz = [np.array([0.0, 1.458, 0.0]), np.zeros(3), np.array([1.525, 0.0, 0.0])]
    for _ in range(1, n_res):
        xyz.append(_place(xyz[-3], xyz[-2], xyz[-1], 1.329, 116.2, psi))  # N
        xyz.append(_place(xyz[-3], xyz[-2], xyz[-1], 1.458, 121.7, 180.0))  # CA
        xyz.append(_place(xyz[-3], xyz[-2], xyz[-1], 1.525, 111.2, phi))  # C
    xyz = np.array(xyz).reshape(n_res, 3, 3)
    o = [_place(xyz[i, 0], xyz[i, 1], xyz[i, 2], 1.231, 120.5, psi + 180.0) for i in range(n_res)]
    coords = np.concatenate([xyz, np.array(o)[:, None, :]], axis=1).reshape(-1, 3)
    atoms = struc.AtomArray(4 * n_res)
    atoms.coord = coords + np.asarray(origin)
    atoms.atom_name = np.tile(["N", "CA", "C", "O"], n_res)
    atoms.element = np.tile(["N", "C", "C", "O"], n_res)
    atoms.res_id = np.repeat(np.arange(start, start + n_res), 4)
    atoms.res_name = np.full(4 * n_res, res_name)
    atoms.chain_id = np.full(4 * n_res, chain)
    atoms.hetero = np.zeros(4 * n_res, dtype=bool)
    return atoms


def _sheet():
    """Three parallel 8-residue strands 4.8 Å apart in one chain (two breaks): a small, compact
    test protein."""
    strands = [_backbone(8, STRAND, start=1 + 8 * i, origin=(0.0, 0.0, 4.8 * i)) for i in range(3)]
    return strands[0] + strands[1] + strands[2]


def _keyed(tmp_path, atoms, keys="aposteriori", domain="d"):
    """``atoms`` written as a PDB file and read back: its features and their sidecar rows."""
    path = tmp_path / f"{domain}.pdb"
    out = pdb.PDBFile()
    out.set_structure(atoms)
    out.write(str(path))
    structure = read_structure(path)
    f = compute_features(structure.resolved())
    return f, feature_table(domain, f, compute_frames(structure, keys=keys))


def _msf_reference(ca: np.ndarray) -> np.ndarray:
    d = np.linalg.norm(ca[:, None] - ca[None], axis=-1)
    k = -(d <= features.GNM_CUTOFF).astype(float)
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(k, -k.sum(axis=1))
    return np.diag(np.linalg.pinv(k, hermitian=True))


def test_feature_list_groups_every_feature_once_with_unit_and_definition():
    grouped = [n for names in FEATURE_GROUPS.values() for n in names]
    assert sorted(grouped) == sorted(FEATURE_NAMES) and len(set(grouped)) == len(grouped)
    assert set(FEATURE_GROUPS) == {"contact", "gnm", "lattice", "position", "rsa", "ss", "window"}
    assert all(f.unit and len(f.definition) > 20 for f in FEATURES)
    assert feature_names(["gnm", "contact"]) == (
        "wcn_ca",
        "wcn_heavy",
        "n_ca_8",
        "n_ca_12",
        "n_ca_16",
        "gnm_msf",
    )
    with pytest.raises(InputError, match=r"unknown feature group.*'bfactor'.*choose from"):
        feature_names(["bfactor"])


def test_contact_features_follow_their_definition_exactly():
    atoms = _backbone(6, STRAND) + _backbone(3, HELIX, chain="B", origin=(0.0, 9.0, 0.0))
    f = compute_features(atoms)
    ca = atoms.coord[atoms.atom_name == "CA"].astype(float)
    heavy_res = np.repeat(np.arange(9), 4)
    for i in range(9):
        r2 = np.square(ca - ca[i]).sum(axis=1)
        others = np.arange(9) != i
        assert f.column("wcn_ca")[i] == pytest.approx((1 / r2[others]).sum(), rel=1e-5)
        h2 = np.square(atoms.coord - ca[i]).sum(axis=1)
        assert f.column("wcn_heavy")[i] == pytest.approx((1 / h2[heavy_res != i]).sum(), rel=1e-5)
        for radius in features.NEIGHBOUR_RADII:
            expected = int((r2[others] <= radius**2).sum())
            assert f.column(f"n_ca_{radius:g}")[i] == expected


def test_helix_is_helix_strand_is_strand_and_a_helix_is_more_packed():
    helix = compute_features(_backbone(20, HELIX))
    strand = compute_features(_backbone(20, STRAND))
    middle = slice(4, 16)
    assert helix.column("ss_helix")[middle].all() and not helix.column("ss_strand").any()
    assert strand.column("ss_strand")[middle].all() and not strand.column("ss_helix").any()
    one_hot = helix.values[:, [FEATURE_NAMES.index(f"ss_{s}") for s in ("helix", "strand", "coil")]]
    assert (one_hot.sum(axis=1) == 1).all()
    assert helix.column("wcn_ca")[middle].min() > strand.column("wcn_ca")[middle].max()
    assert helix.column("n_ca_8")[middle].min() > strand.column("n_ca_8")[middle].max()


def test_gnm_matches_the_pseudo_inverse_and_is_symmetric_along_a_chain():
    atoms = _backbone(15, STRAND)
    f = compute_features(atoms)
    msf = f.column("gnm_msf")
    ref = _msf_reference(atoms.coord[atoms.atom_name == "CA"].astype(float))
    np.testing.assert_allclose(msf, ref, rtol=1e-4)
    np.testing.assert_allclose(msf, msf[::-1], rtol=1e-4)
    assert msf[0] > msf[7] and msf[0] == msf.max()


def test_gnm_of_disconnected_chains_is_that_of_each_chain_alone_and_isolated_gets_the_max():
    a = _backbone(10, HELIX)
    b = _backbone(7, STRAND, chain="B", origin=(100.0, 0.0, 0.0))
    lone = _backbone(1, STRAND, chain="C", origin=(0.0, 100.0, 0.0))
    both = compute_features(a + b + lone).column("gnm_msf")
    np.testing.assert_allclose(both[:10], compute_features(a).column("gnm_msf"), rtol=1e-5)
    np.testing.assert_allclose(both[10:17], compute_features(b).column("gnm_msf"), rtol=1e-5)
    assert both[17] == both[:17].max()


def test_above_the_size_limit_gnm_is_computed_per_chain(monkeypatch):
    a = _backbone(10, HELIX)
    b = _backbone(10, HELIX, chain="B", origin=(0.0, 6.0, 0.0))  # in contact with a
    joint = compute_features(a + b).column("gnm_msf")
    monkeypatch.setattr(features, "GNM_MAX_NODES", 15)
    split = compute_features(a + b).column("gnm_msf")
    assert not np.allclose(joint[:10], split[:10])
    np.testing.assert_allclose(split[:10], compute_features(a).column("gnm_msf"), rtol=1e-5)


def test_chain_break_is_a_terminus_but_a_numbering_gap_alone_is_not():
    atoms = _backbone(20, HELIX)
    broken = atoms[atoms.res_id != 10]  # residue 10 missing: C(9)-N(11) is ~3 Å and more
    f = compute_features(broken)
    term = dict(zip(f.resnum.tolist(), f.column("term_distance").tolist(), strict=True))
    assert term[1] == 0 and term[9] == 0 and term[11] == 0 and term[20] == 0
    assert term[5] == 4 and term[15] == 4
    rel = f.column("rel_position")
    assert rel[0] == 0 and rel[-1] == 1 and (np.diff(rel) > 0).all()
    renumbered = atoms.copy()
    renumbered.res_id = np.where(renumbered.res_id > 10, renumbered.res_id + 5, renumbered.res_id)
    g = compute_features(renumbered)
    assert g.column("term_distance").tolist() == [min(i, 19 - i) for i in range(20)]


def test_window_means_stay_within_a_chain_segment():
    # Two chains in one file, the first broken after residue 9: each window column is the mean
    # of its source over the residues at most 3 before or after in the same segment.
    first = _backbone(20, HELIX)
    first = first[first.res_id != 10]
    second = _backbone(12, HELIX)
    second.chain_id[:] = "B"
    second.coord += np.array([0.0, 25.0, 0.0])
    f = compute_features(first + second)
    segment = [
        (c, c == "A" and r < 10) for c, r in zip(f.chain.tolist(), f.resnum.tolist(), strict=True)
    ]
    for name in ("wcn_ca", "wcn_heavy", "wcn_lattice", "rsa"):
        source = f.column(name).astype(np.float64)
        expected = [
            np.mean(
                [
                    source[j]
                    for j in range(len(f.chain))
                    if segment[j] == segment[i] and abs(j - i) <= 3
                ]
            )
            for i in range(len(f.chain))
        ]
        np.testing.assert_allclose(f.column(f"{name}_w7"), expected, rtol=1e-6)
    assert FEATURE_GROUPS["window"] == ("wcn_ca_w7", "wcn_heavy_w7", "wcn_lattice_w7", "rsa_w7")


def test_features_never_read_b_factors_or_occupancy():
    atoms = _sheet()
    rng = np.random.default_rng(0)
    atoms.set_annotation("b_factor", np.full(atoms.array_length(), 20.0))
    atoms.set_annotation("occupancy", np.ones(atoms.array_length()))
    before = compute_features(atoms).values
    atoms.b_factor = rng.uniform(1, 200, atoms.array_length())
    atoms.occupancy = rng.uniform(0, 1, atoms.array_length())
    np.testing.assert_array_equal(compute_features(atoms).values, before)


def test_features_are_invariant_to_rigid_motion():
    atoms = _sheet()
    before = compute_features(atoms)
    moved = atoms.copy()
    theta = 0.7
    rot = np.array(
        [[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]]
    ) @ np.array([[1, 0, 0], [0, np.cos(1.1), -np.sin(1.1)], [0, np.sin(1.1), np.cos(1.1)]])
    moved.coord = moved.coord @ rot.T + np.array([31.0, -7.0, 12.5])
    after = compute_features(moved)
    rsa = FEATURE_NAMES.index("rsa")
    exact = [i for i, n in enumerate(FEATURE_NAMES) if n not in ("rsa", "rsa_w7")]
    np.testing.assert_allclose(after.values[:, exact], before.values[:, exact], rtol=1e-4)
    # Shrake-Rupley's point mesh is fixed in space: a rotation moves each residue's SASA by a
    # little (most for these side-chain-less residues of four atoms), the mean by less.
    diff = np.abs(after.values[:, rsa] - before.values[:, rsa])
    assert diff.max() < 0.1 and diff.mean() < 0.03


def test_hydrogens_water_ions_and_ligands_are_not_part_of_the_environment():
    atoms = _sheet()
    before = compute_features(atoms).values
    extra = struc.AtomArray(6)
    extra.coord = atoms.coord[[1, 5, 9, 13, 17, 21]] + 1.0
    extra.atom_name = np.array(["H", "HA", "O", "NA", "CA", "C"])
    extra.element = np.array(["H", "H", "O", "NA", "C", "C"])
    extra.res_name = np.array(["ALA", "ALA", "HOH", "NA", "LIG", "LIG"])
    extra.res_id = np.array([1, 2, 100, 101, 102, 102])
    extra.chain_id = np.full(6, "A")
    extra.hetero = np.array([False, False, True, True, True, True])
    mixed = atoms + extra
    # keep each H inside its residue so the residue grouping is the file's
    order = np.argsort(
        np.concatenate([np.arange(atoms.array_length()), [0.5, 4.5, 1e6, 1e6, 1e6, 1e6]]),
        kind="stable",
    )
    mixed = mixed[order]
    f = compute_features(mixed)
    assert len(f) == atoms.array_length() // 4
    np.testing.assert_allclose(f.values, before, rtol=1e-6)


def test_rows_are_the_residues_with_n_ca_c_and_keys_follow_the_voxelizer(tmp_path):
    atoms = _backbone(8, HELIX, chain=" ")  # " ": biotite writes "" one column short
    atoms.ins_code = np.where(atoms.res_id == 5, "A", "")
    atoms.res_id = np.where(atoms.res_id >= 5, atoms.res_id - 1, atoms.res_id)  # 4, 4A, 5
    no_n = ~((atoms.res_id == 2) & (atoms.atom_name == "N"))
    f, icode = _keyed(tmp_path, atoms[no_n], "icode")
    assert f.chain.tolist() == [""] * 7  # the file's own chain id
    assert f.icode.tolist() == ["", "", "", "A", "", "", ""]
    assert f.resnum.dtype == np.int32 and f.values.dtype == np.float32
    assert icode["chain"].to_pylist() == ["A"] * 7  # the voxel file's chain key
    assert icode["resid_str"].to_pylist() == ["1", "3", "4", "4A", "5", "6", "7"]
    # aposteriori's keys: only the first residue of a number has a frame, and a row
    _, rows = _keyed(tmp_path, atoms[no_n])
    assert rows["resid_str"].to_pylist() == ["1", "3", "4", "5", "6", "7"]
    assert rows["icode"].to_pylist() == [""] * 6
    # residue 2 has no N: not a row, but its CA still counts as a neighbour
    full = compute_features(atoms)
    assert f.column("n_ca_8")[0] == pytest.approx(full.column("n_ca_8")[0])


def test_modified_and_force_field_residues_count_but_hetero_non_amino_acids_do_not():
    atoms = _backbone(7, HELIX)
    atoms.res_name = np.where(atoms.res_id == 2, "MSE", atoms.res_name)
    atoms.hetero = atoms.res_id == 2
    atoms.res_name = np.where(atoms.res_id == 3, "HSD", atoms.res_name)  # CHARMM histidine
    # an inhibitor group with a full backbone (not a CCD amino acid): the voxelizer frames it
    atoms.res_name = np.where(atoms.res_id == 5, "3WX", atoms.res_name)
    atoms.res_name = np.where(atoms.res_id == 6, "LIGAND", atoms.res_name)  # not three letters
    atoms.hetero = atoms.hetero | np.isin(atoms.res_id, [5, 6])
    no_o = ~((atoms.res_id == 7) & (atoms.atom_name == "O"))
    atoms.res_name = np.where(atoms.res_id == 7, "LIG", atoms.res_name)  # no O
    atoms.hetero = atoms.hetero | (atoms.res_id == 7)
    waters = struc.array([struc.Atom([30.0 + i, 0.0, 0.0], atom_name="O") for i in range(2)])
    waters.chain_id[:] = "A"
    waters.res_id[:] = 100  # two waters under one number: one residue with two atoms named O
    waters.res_name[:] = "HOH"
    waters.hetero[:] = True
    waters.element[:] = "O"
    f = compute_features(atoms[no_o] + waters)
    assert f.resname.tolist() == ["ALA", "MSE", "HSD", "ALA", "3WX"]


def test_secondary_structure_reads_the_ca_of_every_protein_residue():
    atoms = _backbone(20, HELIX)
    atoms.res_name = np.where(atoms.res_id == 8, "HIS", atoms.res_name)
    atoms.res_name = np.where(atoms.res_id == 14, "CYS", atoms.res_name)
    ss = [FEATURE_NAMES.index(f"ss_{s}") for s in ("helix", "strand", "coil")]
    reference = compute_features(atoms).values[:, ss]
    assert reference[:, 0].sum() == 18
    # CHARMM's and AMBER's names (no CCD amino acids), and a HETATM peptide group (3WX)
    for names in (("HSD", "CYX"), ("HIE", "ASH"), ("3WX", "LSN")):
        renamed = atoms.copy()
        renamed.res_name = np.where(renamed.res_id == 8, names[0], renamed.res_name)
        renamed.res_name = np.where(renamed.res_id == 14, names[1], renamed.res_name)
        renamed.hetero = (renamed.res_id == 8) & (names[0] == "3WX")
        np.testing.assert_array_equal(compute_features(renamed).values[:, ss], reference)
    # a chain whose atoms come in two blocks, the second starting at the first one's last
    # number: one row per residue, not a failure
    again = _backbone(6, HELIX, start=20, origin=(30.0, 0.0, 0.0))
    f = compute_features(atoms + _backbone(5, STRAND, chain="B", origin=(0, 30, 0)) + again)
    assert len(f) == 31 and (f.values[:, ss].sum(axis=1) == 1).all()


@pytest.mark.parametrize(
    "name", sorted(p.name for p in STRUCTURES.iterdir() if ".pdb" in p.name or ".cif" in p.name)
)
@pytest.mark.parametrize("keys", ["aposteriori", "icode"])
def test_rows_are_exactly_the_residues_the_voxelizer_frames(name, keys):
    structure = read_structure(STRUCTURES / name)
    frames = compute_frames(structure, keys=keys)
    table = feature_table(name, compute_features(structure.resolved(), where=name), frames)
    rows = list(zip(table["chain"].to_pylist(), table["resid_str"].to_pylist(), strict=True))
    assert len(set(rows)) == len(rows)
    # each key's row describes the residue whose frame holds that key
    assert dict(zip(rows, table["resname"].to_pylist(), strict=True)) == dict(
        zip(zip(frames.chains, frames.resids, strict=True), frames.labels, strict=True)
    )


def test_a_residue_with_an_insertion_code_before_its_plain_number_keeps_its_own_features(
    tmp_path,
):
    # as in 1PPC, where GLY 184A comes before TYR 184: aposteriori keys GLY 184A's frame "184"
    atoms = _backbone(6, HELIX)
    atoms.res_id = np.array([1, 2, 3, 3, 4, 5])[atoms.res_id - 1]
    first = np.flatnonzero(atoms.res_id == 3)[:4]
    atoms.ins_code = np.full(atoms.array_length(), "")
    atoms.ins_code[first] = "A"
    atoms.res_name[first] = "GLY"
    path = tmp_path / "ppc.pdb"
    out = pdb.PDBFile()
    out.set_structure(atoms)
    out.write(str(path))
    structure = read_structure(path)
    f = compute_features(structure.resolved())
    frames = compute_frames(structure, keys="aposteriori")
    table = feature_table("ppc", f, frames)
    row = table.filter(pc.equal(table["resid_str"], "3")).to_pylist()
    assert [(r["resname"], r["icode"]) for r in row] == [("GLY", "A")]
    assert row[0]["rel_position"] == pytest.approx(f.column("rel_position")[2])
    assert dict(zip(frames.resids, frames.labels, strict=True))["3"] == "GLY"


def test_a_residue_without_a_frame_never_takes_the_key_of_one(tmp_path):
    # UNK 3 has N, CA and C (features) but no O (no frame); MET 3A after it holds frame "3"
    atoms = _backbone(5, HELIX)
    atoms.res_id = np.array([1, 2, 3, 3, 4])[atoms.res_id - 1]
    second = np.flatnonzero(atoms.res_id == 3)[4:]
    atoms.ins_code = np.full(atoms.array_length(), "")
    atoms.ins_code[second] = "A"
    atoms.res_name[second] = "MET"
    atoms.res_name[(atoms.res_id == 3) & (atoms.ins_code == "")] = "UNK"
    no_o = ~((atoms.res_name == "UNK") & (atoms.atom_name == "O"))
    f, table = _keyed(tmp_path, atoms[no_o])
    assert "UNK" in f.resname.tolist()
    row = table.filter(pc.equal(table["resid_str"], "3")).to_pylist()
    assert [(r["resname"], r["icode"]) for r in row] == [("MET", "A")]
    assert row[0]["gnm_msf"] == pytest.approx(f.column("gnm_msf")[3])


@pytest.mark.parametrize("blank_first", [True, False])
def test_a_blank_chain_and_a_chain_a_are_two_chains_and_the_blank_one_holds_key_a(
    tmp_path, blank_first
):
    blank = _backbone(5, HELIX, chain="")
    other = _backbone(7, STRAND, chain="A")
    other.coord = other.coord + 30.0  # far away: no contact between the chains
    f, table = _keyed(tmp_path, blank + other if blank_first else other + blank)
    n_before = 0 if blank_first else 7
    assert f.chain.tolist() == ([""] * 5 + ["A"] * 7 if blank_first else ["A"] * 7 + [""] * 5)
    # chain position per chain, not over the merged name
    assert f.column("rel_position").tolist()[n_before : n_before + 5] == [0, 0.25, 0.5, 0.75, 1]
    # the voxelizer (as aposteriori: chains sorted by id) gives key A to the blank chain,
    # wherever it is in the file, and so does the sidecar
    assert table.num_rows == 5 and table["chain"].to_pylist() == ["A"] * 5
    np.testing.assert_array_equal(
        table["wcn_ca"].to_numpy(), f.column("wcn_ca")[n_before : n_before + 5]
    )


def test_rsa_with_few_sphere_points_stays_close_to_biotites_default(monkeypatch):
    atoms = _sheet()
    coarse = compute_features(atoms).column("rsa")
    monkeypatch.setattr(features, "SASA_POINTS", 1000)
    fine = compute_features(atoms).column("rsa")
    assert np.abs(coarse - fine).mean() < 0.02
    assert (fine > 0.1).all()  # a bare backbone hairpin is exposed everywhere


def test_input_errors_name_the_problem_and_the_fix():
    atoms = _backbone(4, HELIX)
    with pytest.raises(InputError, match=r"2 models; pass one model"):
        compute_features(struc.stack([atoms, atoms]), where="x.pdb")
    with pytest.raises(InputError, match=r"expected a biotite AtomArray"):
        compute_features("x.pdb")
    doubled = atoms + atoms[atoms.res_id == 2]
    doubled = doubled[np.argsort(np.append(np.arange(16), [4.5] * 4), kind="stable")]
    with pytest.raises(
        InputError, match=r"x\.pdb: chain 'A' residue ALA 2 has 2 atoms named N.*alternate"
    ):
        compute_features(doubled, where="x.pdb")
    nan = atoms.copy()
    nan.coord[5] = np.nan
    with pytest.raises(InputError, match=r"x\.pdb: atom CA of chain 'A' residue 2 has non-finite"):
        compute_features(nan, where="x.pdb")
    water = atoms.copy()
    water.res_name[:] = "HOH"
    water.hetero[:] = True
    with pytest.raises(InputError, match=r"no protein residue"):
        compute_features(water, where="x.pdb")
    with pytest.raises(InputError, match=r"x\.pdb: no two CA atoms are within 7\.3 Å.*1 CA"):
        compute_features(_backbone(1, HELIX), where="x.pdb")


def test_sidecar_round_trip_with_versioned_documented_footer(tmp_path):
    f, t1 = _keyed(tmp_path, _sheet(), domain="1abc")
    _, t2 = _keyed(tmp_path, _backbone(5, HELIX, chain="B"), domain="2xyz")
    out = tmp_path / "out"
    out.mkdir()
    path = out / "features.parquet"
    assert write_feature_sidecar(path, [t1, t2]) == 29
    assert [p.name for p in out.iterdir()] == ["features.parquet"]  # no temporary left
    table, meta = read_feature_sidecar(path)
    assert table.column_names[:6] == ["domain", "chain", "resid_str", "resnum", "icode", "resname"]
    assert table.column_names[6:] == list(FEATURE_NAMES)
    assert table["domain"].to_pylist() == ["1abc"] * 24 + ["2xyz"] * 5
    np.testing.assert_array_equal(table["gnm_msf"].to_numpy()[:24], f.column("gnm_msf"))
    assert meta == FeatureMeta() and meta.parameters["gnm_cutoff_angstrom"] == 7.3
    assert {s.name: s.unit for s in meta.features}["wcn_ca"] == "1/Å²"
    flip_last_byte_of_column(path, "gnm_msf")  # page checksums: never another feature value
    with pytest.raises(InputError, match=r"features\.parquet is not a Parquet file or is damaged"):
        read_feature_sidecar(path)


def test_sidecar_refuses_duplicate_keys_other_versions_and_foreign_files(tmp_path, caplog):
    _, t = _keyed(tmp_path, _backbone(5, HELIX), domain="1abc")
    with pytest.raises(InputError, match=r"keys occur twice, e\.g\. 1abc/A/1"):
        write_feature_sidecar(tmp_path / "dup.parquet", [t, t])
    path = tmp_path / "f.parquet"
    write_feature_sidecar(path, [t])
    old = pq.read_table(path)

    def with_version(v: int) -> None:
        meta = old.schema.metadata[features.METADATA_KEY].replace(
            b'"format_version": 6', b'"format_version": %d' % v
        )
        pq.write_table(old.replace_schema_metadata({features.METADATA_KEY: meta}), path)

    with_version(0)
    with pytest.raises(InputError, match=r"format version 0 unsupported, expected 6; recompute"):
        read_feature_sidecar(path)
    with_version(1)  # before HETATM amino acids were residues: read, with a warning
    with caplog.at_level(logging.WARNING, logger="voxelflex.structure.features"):
        table, meta = read_feature_sidecar(path)
    assert meta.format_version == 1 and table.num_rows == t.num_rows
    assert "treated HETATM amino acids (MSE" in caplog.text and "recompute it" in caplog.text
    caplog.clear()
    with_version(2)  # before rows followed the voxel file's key rule
    with caplog.at_level(logging.WARNING, logger="voxelflex.structure.features"):
        _, meta = read_feature_sidecar(path)
    assert meta.format_version == 2 and "keyed residues by number and insertion" in caplog.text
    caplog.clear()
    with_version(3)  # before rows took the keys of the residue's own frame
    with caplog.at_level(logging.WARNING, logger="voxelflex.structure.features"):
        _, meta = read_feature_sidecar(path)
    assert meta.format_version == 3 and "a residue without a frame sharing" in caplog.text
    caplog.clear()
    with_version(4)  # before the NCS copies a file does not hold joined the environment
    with caplog.at_level(logging.WARNING, logger="voxelflex.structure.features"):
        _, meta = read_feature_sidecar(path)
    assert meta.format_version == 4 and "did not generate the NCS copies" in caplog.text
    assert "recompute it" in caplog.text
    caplog.clear()
    with_version(5)  # before secondary structure read the CA of force-field names (HSD)
    with caplog.at_level(logging.WARNING, logger="voxelflex.structure.features"):
        _, meta = read_feature_sidecar(path)
    assert meta.format_version == 5 and "such as HSD, HIE and CYX" in caplog.text
    pq.write_table(old.replace_schema_metadata({}), path)
    with pytest.raises(InputError, match=r"no voxelflex feature metadata"):
        read_feature_sidecar(path)
    twice = pa.concat_tables([old, old.slice(0, 1)]).replace_schema_metadata(old.schema.metadata)
    pq.write_table(twice, path)  # written by other means than write_feature_sidecar
    with pytest.raises(InputError, match=r"1 \(domain, chain, resid_str\) keys occur twice"):
        read_feature_sidecar(path)
    with pytest.raises(InputError, match=r"does not exist"):
        read_feature_sidecar(tmp_path / "missing.parquet")


def test_structure_layer_imports_only_what_it_may():
    tree = ast.parse(inspect.getsource(features))
    imported = {
        n.module if isinstance(n, ast.ImportFrom) else a.name
        for n in ast.walk(tree)
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in n.names
    }
    internal = {m for m in imported if m and m.startswith("voxelflex")}
    allowed = (
        "voxelflex.frame",
        "voxelflex.errors",
        "voxelflex.atomic",
        "voxelflex.inputs",
        "voxelflex.structure.residue_codes",
        "voxelflex.structure.keys",  # residue ids, shared with the frames and B-factor copies
        "voxelflex.structure.crystal",  # the crystal's cell and space group (lattice group)
        "voxelflex.columns",  # Arrow column helpers (numpy and pyarrow only)
    )
    assert all(m.startswith(allowed) for m in internal), internal


def test_features_command_equals_voxelize_features_and_reports_only_this_runs_failures(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("1vii.pdb.gz", "1a8o.pdb.gz"):
        (folder / name).write_bytes((STRUCTURES / name).read_bytes())
    (folder / "broken.pdb").write_text("ATOM  garbage\n")
    out = tmp_path / "f.parquet"
    report = featurize_files(folder, out, progress=False)
    assert report.files_failed == 1
    assert report.skipped_csv.read_text().splitlines()[0] == "file,reason,detail"
    assert ",unreadable_file," in report.skipped_csv.read_text().splitlines()[1]
    # the two routes to a sidecar give the same rows and values
    (folder / "broken.pdb").unlink()
    voxelized = voxelize_files(folder, tmp_path / "v.hdf5", features=True, progress=False)
    report = featurize_files(folder, out, progress=False, overwrite=True)
    assert report.skipped_csv is None and not (tmp_path / "f.parquet.skipped.csv").exists()
    mine, _ = read_feature_sidecar(out)
    theirs, _ = read_feature_sidecar(voxelized.features_path)
    order = [(k, "ascending") for k in ("domain", "chain", "resid_str")]
    assert mine.sort_by(order).equals(theirs.sort_by(order))
