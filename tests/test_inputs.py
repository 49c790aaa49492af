"""Input readers: voxel HDF5 keys and checks, RMSF CSV validation, split files, id mapping."""

from __future__ import annotations

import re

import h5py
import numpy as np
import pytest

from tests._index_data import csv_rows, residues, write_csv, write_voxels
from voxelflex.errors import ConfigError, FrameError, InputError
from voxelflex.inputs import (
    file_permutation,
    map_domain_ids,
    open_voxel_file,
    parse_residue_keys,
    read_label,
    read_rmsf_csv,
    read_splits,
    residue_keys,
    scan_voxel_file,
    validate_grid,
)
from voxelflex.quantities import check_rmsf_unit

# ---------------------------------------------------------------- voxel HDF5


def test_parse_residue_keys_negative_and_insertion_codes():
    resnum, icode = parse_residue_keys(["1", "-3", "52A", "10"], where="f.h5")
    assert resnum.to_pylist() == [1, -3, 52, 10]
    assert icode.to_pylist() == ["", "", "A", ""]


def test_parse_residue_keys_error_names_key_and_place():
    with pytest.raises(InputError, match=r"f\.h5: dom/A.*'x7'"):
        parse_residue_keys(["1", "x7"], where="f.h5: dom/A")


def test_residue_keys_sorted_numerically(tmp_path):
    keys = ["10", "2", "-1", "52A", "52", "100"]
    path = write_voxels(tmp_path / "v.h5", {"d": {"A": [(k, "ALA") for k in keys]}})
    with open_voxel_file(path) as f:
        rk = residue_keys(f, "d", "A")
    assert list(rk.resid_str) == ["-1", "2", "10", "52", "52A", "100"]
    assert rk.resnum.tolist() == [-1, 2, 10, 52, 52, 100]
    assert rk.resnum.dtype == np.int32
    assert list(rk.icode) == ["", "", "", "", "A", ""]


def test_open_voxel_file_errors_name_the_file(tmp_path):
    with pytest.raises(InputError, match=r"nope\.h5 does not exist"):
        open_voxel_file(tmp_path / "nope.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(InputError, match=r"text\.h5 is not a readable HDF5"):
        open_voxel_file(tmp_path / "text.h5")


def test_file_permutation_reorders_old_encoder(tmp_path):
    path = write_voxels(tmp_path / "v.h5", {}, atom_encoder=("C", "N", "O", "CB", "CA"))
    with open_voxel_file(path) as f:
        assert file_permutation(f).tolist() == [0, 1, 2, 4, 3]


def test_file_permutation_errors(tmp_path):
    path = write_voxels(tmp_path / "v.h5", {}, atom_encoder=("C", "N", "O", "CA", "H"))
    with open_voxel_file(path) as f, pytest.raises(FrameError, match=r"v\.h5.*'H'"):
        file_permutation(f)
    with h5py.File(tmp_path / "bare.h5", "w"):
        pass
    with (
        open_voxel_file(tmp_path / "bare.h5") as f,
        pytest.raises(FrameError, match=r"bare\.h5.*atom_encoder"),
    ):
        file_permutation(f)


@pytest.mark.parametrize(
    ("grid", "match"),
    [
        (np.zeros((16, 16, 16, 5), bool), r"shape \(16, 16, 16, 5\)"),
        (np.zeros((21, 21, 21, 5), np.float32), "dtype float32"),
        (np.full((21, 21, 21, 5), 2, np.uint8), "values above 1"),
    ],
)
def test_validate_grid_names_file_domain_chain_residue(grid, match):
    with pytest.raises(InputError, match=match) as err:
        validate_grid(grid, filename="v.h5", domain="1abcA00", chain="B", resid="-4")
    assert "v.h5: domain 1abcA00, chain B, residue -4" in str(err.value)


def test_validate_grid_accepts_bool_and_binary_uint8():
    validate_grid(np.zeros((21, 21, 21, 5), bool), filename="f", domain="d", chain="A", resid="1")
    validate_grid(
        np.ones((21, 21, 21, 5), np.uint8), filename="f", domain="d", chain="A", resid="1"
    )


def test_read_label_vlen_fixed_and_missing(tmp_path):
    path = write_voxels(tmp_path / "v.h5", {"d": {"A": [("1", "GLY"), ("2", None)]}})
    with h5py.File(path, "a") as f:
        f["d/A/2"].attrs["label"] = np.bytes_("SER")
        f["d/A"].create_dataset("3", data=np.zeros((21, 21, 21, 5), bool))
    with open_voxel_file(path) as f:
        group = f["d/A"]
        assert [read_label(group, r) for r in ("1", "2", "3", "4")] == ["GLY", "SER", None, None]


def test_scan_lists_all_keys_and_records_bad_sampled_datasets(tmp_path):
    layout = {"d1": {"A": residues("ALA GLY SER THR VAL")}, "d2": {"A": residues("LEU")}, "e": {}}
    wrong = np.zeros((21, 21, 21, 4), bool)
    path = write_voxels(tmp_path / "v.h5", layout, bad={("d1", "A", "5"): wrong})
    scan = scan_voxel_file(path, progress=False)
    assert scan.keys.num_rows == 6
    assert scan.keys["resnum"].to_pylist() == [1, 2, 3, 4, 5, 1]
    assert scan.empty_domains == ["e"]
    assert scan.bad["resid_str"].to_pylist() == ["5"]
    assert "domain d1, chain A, residue 5" in scan.bad["detail"][0].as_py()
    assert set(scan.labels["label"].to_pylist()) == {"ALA", "GLY", "SER", "THR", "LEU"}
    assert len(scan.key_hash) == 64


def test_scan_deep_finds_what_sampling_misses(tmp_path):
    layout = {"d1": {"A": residues("ALA GLY SER THR VAL ILE LEU")}}
    grid = np.zeros((21, 21, 21, 5), np.float32)
    path = write_voxels(tmp_path / "v.h5", layout, bad={("d1", "A", "3"): grid})
    assert scan_voxel_file(path, progress=False).bad.num_rows == 0
    deep = scan_voxel_file(path, deep=True, progress=False)
    assert deep.bad["resid_str"].to_pylist() == ["3"]
    assert deep.n_checked == 7


def test_scan_deep_reads_the_data_and_finds_a_damaged_chunk(tmp_path):
    layout = {"d1": {"A": residues("ALA GLY SER")}}
    path = write_voxels(tmp_path / "v.h5", layout)
    with h5py.File(path, "r") as f:
        info = f["d1"]["A"]["2"].id.get_chunk_info(0)
    with open(path, "r+b") as raw:  # overwrite the gzip stream of residue 2's chunk
        raw.seek(info.byte_offset)
        raw.write(b"\xff" * info.size)
    assert scan_voxel_file(path, progress=False).bad.num_rows == 0  # dtype and shape are fine
    deep = scan_voxel_file(path, deep=True, progress=False)
    assert deep.bad["resid_str"].to_pylist() == ["2"]
    assert "residue 2: the voxel data cannot be read" in deep.bad["detail"][0].as_py()


def test_scan_every_dataset_bad_is_an_error(tmp_path):
    grid = np.zeros((11, 11, 11, 5), bool)
    path = write_voxels(
        tmp_path / "v.h5", {"d": {"A": [("1", "ALA")]}}, bad={("d", "A", "1"): grid}
    )
    with pytest.raises(InputError, match=r"every checked dataset failed.*residue 1"):
        scan_voxel_file(path, progress=False)


def test_scan_layout_error_names_entry(tmp_path):
    with h5py.File(tmp_path / "v.h5", "w") as f:
        f.attrs["atom_encoder"] = np.array(["C", "N", "O", "CA", "CB"], dtype="S2")
        f.create_dataset("flat", data=np.zeros(3))
    with pytest.raises(InputError, match="'flat' is a dataset"):
        scan_voxel_file(tmp_path / "v.h5", progress=False)


# ---------------------------------------------------------------- RMSF CSV


def test_read_rmsf_csv_columns_types_and_optional(tmp_path):
    path = write_csv(
        tmp_path / "r.csv",
        [
            ("d1", 1, "ala", 320, 0.1, "H"),
            ("d1", 2, "GLY", 320, 0.2, ""),
            ("d1", 3, "A", 320, 0.3, " "),
        ],
        header="domain_id,resid,resname,temperature_feature,target_rmsf,dssp",
    )
    t = read_rmsf_csv(path)
    assert t["resname"].to_pylist() == ["ALA", "GLY", "A"]
    assert t["line"].to_pylist() == [2, 3, 4]
    assert t["chain"].null_count == 3
    assert str(t.schema.field("temperature").type) == "float"
    assert t["dssp"].to_pylist() == ["H", None, None]  # blank is no code (a " " class before)


def test_csv_missing_columns_named(tmp_path):
    path = write_csv(tmp_path / "r.csv", [("d1", 1, 0.1)], header="domain_id,resid,rmsf")
    with pytest.raises(InputError, match=r"r\.csv.*\['resname', 'temperature_feature'"):
        read_rmsf_csv(path)


@pytest.mark.parametrize(("encoding", "byte"), [("utf-16", "0xff"), ("latin-1", "0xe9")])
def test_csv_not_utf8_is_refused_naming_the_file(tmp_path, encoding, byte):
    # a traceback (UnicodeDecodeError) before; Excel's "Unicode text" is UTF-16
    path = tmp_path / "r.csv"
    text = (
        "domain_id,resid,resname,temperature_feature,target_rmsf,d\u00e9tail\nd1,1,ALA,320,0.1,x\n"
    )
    path.write_bytes(text.encode(encoding))
    with pytest.raises(InputError, match=rf"RMSF CSV {path} is not UTF-8 text .*byte {byte}"):
        read_rmsf_csv(path)


def test_a_gzip_compressed_csv_is_named_as_such(tmp_path):
    # was "is not UTF-8 text (byte 0x8b at offset 1)": true, but not what to do
    import gzip

    path = tmp_path / "rmsf.csv.gz"
    path.write_bytes(gzip.compress(b"domain_id,resid,resname,temperature_feature,target_rmsf\n"))
    with pytest.raises(InputError, match=rf"RMSF CSV {path} is gzip-compressed.*gunzip"):
        read_rmsf_csv(path)


@pytest.mark.parametrize("n_rows", [3, 2000])  # in the header's read buffer (8 KiB), or past it
def test_csv_not_utf8_past_the_header_names_the_line(tmp_path, n_rows):
    # was "its first line has byte 0xe9" (the header is ASCII) or pyarrow's "invalid UTF8 data"
    path = tmp_path / "r.csv"
    lines = ["domain_id,resid,resname,temperature_feature,target_rmsf"]
    lines += [f"d1,{i},ALA,320,0.1" for i in range(1, n_rows)] + [f"d1,{n_rows},AL\u00e9,320,0.1"]
    path.write_bytes("\n".join([*lines, ""]).encode("latin-1"))
    with pytest.raises(InputError) as err:
        read_rmsf_csv(path)
    assert str(err.value) == (
        f"RMSF CSV {path}, line {n_rows + 1}, is not UTF-8 text (byte 0xe9 at offset "
        f"{len(f'd1,{n_rows},AL')}); save it as UTF-8 CSV"
    )


@pytest.mark.parametrize("twice", ["target_rmsf", "dssp"])
def test_csv_column_named_twice_is_refused_naming_it(tmp_path, twice):
    header = f"domain_id,resid,resname,temperature_feature,target_rmsf,dssp,{twice}"
    path = write_csv(tmp_path / "r.csv", [("d1", 1, "ALA", 320, 0.1, "H", "0.2")], header=header)
    with pytest.raises(InputError, match=rf"r\.csv: the header names column\(s\) \['{twice}'\]"):
        read_rmsf_csv(path)


@pytest.mark.parametrize("value", ["2b", "+2"])
def test_csv_unparsable_value_names_line_and_value(tmp_path, value):
    # "+2" is a whole number pyarrow does not read as one: the message said only "could not be
    # read", without the line or how to write it
    path = write_csv(
        tmp_path / "r.csv", [("d1", 1, "ALA", 320, 0.1), ("d1", value, "ALA", 320, 0.1)]
    )
    where = rf"r\.csv, line 3: column 'resid' value '{re.escape(value)}'"
    with pytest.raises(InputError, match=where + " .* leading '-'"):
        read_rmsf_csv(path)


@pytest.mark.parametrize(
    ("bad_row", "what"),
    [
        (("d9", 7, "ALA", 320, "nan"), "NaN, infinite or negative RMSF"),
        (("d9", 7, "ALA", 320, -0.5), "NaN, infinite or negative RMSF"),
        (("d9", 7, "ALA", "inf", 0.5), "non-positive temperature"),
        (("d9", 7, "ALA", -3, 0.5), "non-positive temperature"),
        (("d9", 7, "ALA", 320, ""), "empty target_rmsf"),
        (("", 7, "ALA", 320, 0.5), "empty domain_id"),
    ],
)
def test_csv_bad_values_name_line_domain_resid(tmp_path, bad_row, what):
    path = write_csv(tmp_path / "r.csv", [("d1", 1, "ALA", 320, 0.1), bad_row])
    with pytest.raises(InputError, match=what) as err:
        read_rmsf_csv(path)
    assert "r.csv" in str(err.value)
    assert "line 3" in str(err.value)
    assert "resid 7" in str(err.value)


def test_csv_duplicates_listed_with_lines(tmp_path):
    rows = [*csv_rows("d1", "ALA GLY"), ("d1", 2, "GLY", 450.0, 0.3)]
    path = write_csv(tmp_path / "r.csv", rows)
    with pytest.raises(
        InputError, match=r"1 duplicated.*domain d1 resid 2 at 450 K on lines \[5, 6\]"
    ) as err:
        read_rmsf_csv(path)
    # without a chain column, two chains that share numbers look like this: say so
    assert str(err.value).endswith("if they are residues of different chains that share "
                                   "numbers, add a `chain` column")  # fmt: skip


def test_csv_duplicates_are_found_on_the_values_the_index_keeps(tmp_path):
    # " d1" is read as d1 and 320.00001 K is 320 K in float32: both rows would be one key
    for twin in ((" d1", 2, "GLY", 320.0, 0.5), ("d1", 2, "GLY", 320.00001, 0.5)):
        path = write_csv(tmp_path / "r.csv", [*csv_rows("d1", "ALA GLY"), twin])
        with pytest.raises(InputError, match=r"domain d1 resid 2 at 320 K on lines \[4, 6\]"):
            read_rmsf_csv(path)


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_csv_line_numbers_count_blank_lines(tmp_path, newline):
    # pyarrow skips blank lines; the line an error names must still be the file's line
    lines = ["domain_id,resid,resname,temperature_feature,target_rmsf", "", "d1,1,ALA,320,0.1"]
    lines += ["", "", "d1,2,GLY,320,-0.5", ""]
    path = tmp_path / "r.csv"
    path.write_bytes(newline.join(lines).encode())
    with pytest.raises(InputError, match=r"line 6 \(domain d1, resid 2\)"):
        read_rmsf_csv(path)
    path.write_bytes(newline.join(lines).replace("-0.5", "0.5").encode())
    assert read_rmsf_csv(path)["line"].to_pylist() == [3, 6]
    path.write_bytes(newline.join(lines).replace(",2,", ",2b,").encode())
    with pytest.raises(InputError, match=r"line 6: column 'resid' value '2b'"):
        read_rmsf_csv(path)


def test_csv_header_with_spaces_after_commas(tmp_path):
    path = write_csv(
        tmp_path / "r.csv",
        [("d1", 1, "ALA", 320, 0.1), ("d1", "2b", "ALA", 320, 0.1)],
        header="domain_id, resid, resname, temperature_feature, target_rmsf",
    )
    with pytest.raises(InputError, match=r"line 3: column 'resid' value '2b'"):
        read_rmsf_csv(path)
    path.write_text(path.read_text().replace("2b", "2"))
    assert read_rmsf_csv(path)["resid"].to_pylist() == [1, 2]


def test_csv_duplicates_respect_chain_column(tmp_path):
    header = "domain_id,chain,resid,resname,temperature_feature,target_rmsf"
    ok = [("d1", "A", 1, "ALA", 320, 0.1), ("d1", "B", 1, "ALA", 320, 0.1)]
    assert read_rmsf_csv(write_csv(tmp_path / "ok.csv", ok, header)).num_rows == 2
    dup = [*ok, ("d1", "B", 1, "ALA", 320, 0.2)]
    with pytest.raises(InputError, match="domain d1 chain B resid 1") as err:
        read_rmsf_csv(write_csv(tmp_path / "dup.csv", dup, header))
    assert "add a `chain` column" not in str(err.value)


def test_csv_chain_is_read_without_spaces_like_the_domain_id(tmp_path):
    # spaces after commas: " A" is chain A (the HDF5 key), as " d1" is domain d1
    path = tmp_path / "r.csv"
    header = "domain_id, chain, resid, resname, temperature_feature, target_rmsf\n"
    path.write_text(header + "d1, A, 1, ALA, 320, 0.1\n")
    assert read_rmsf_csv(path)["chain"].to_pylist() == ["A"]
    path.write_text(header + "d1, A, 1, ALA, 320, 0.1\nd1,A,1,ALA,320,0.2\n")
    with pytest.raises(InputError, match=r"domain d1 chain A resid 1 at 320 K on lines \[2, 3\]"):
        read_rmsf_csv(path)


def test_csv_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"none\.csv does not exist"):
        read_rmsf_csv(tmp_path / "none.csv")


@pytest.mark.parametrize("unit", [None, "A", "nanometre"])
def test_rmsf_unit_has_no_default(unit):
    with pytest.raises(ConfigError, match=r"--rmsf-unit nm or --rmsf-unit angstrom"):
        check_rmsf_unit(unit)
    assert check_rmsf_unit("angstrom") == "angstrom"


# ---------------------------------------------------------------- split files


def test_split_files_comments_blank_lines(tmp_path):
    (tmp_path / "train.txt").write_text("# train domains\n\n1abcA00\n 2defB01  # note\n1abcA00\n")
    (tmp_path / "test.txt").write_text("3xyzA00\n")
    t = read_splits({"train": tmp_path / "train.txt", "val": None, "test": tmp_path / "test.txt"})
    assert t.to_pylist() == [
        {"domain_id": "1abcA00", "split": "train"},
        {"domain_id": "2defB01", "split": "train"},
        {"domain_id": "3xyzA00", "split": "test"},
    ]


def test_split_leakage_lists_domains_and_files(tmp_path):
    (tmp_path / "train.txt").write_text("a\nb\nc\n")
    (tmp_path / "val.txt").write_text("b\n")
    (tmp_path / "test.txt").write_text("c\n")
    files = {s: tmp_path / f"{s}.txt" for s in ("train", "val", "test")}
    with pytest.raises(InputError, match="2 domains are in more than one split") as err:
        read_splits(files)
    msg = str(err.value)
    assert "b in train" in msg and "val (" in msg and "c in train" in msg and "test.txt" in msg


def test_split_file_missing(tmp_path):
    # named by both commands' options: train builds its index with them too (it said
    # "check --train/--val/--test", index build's flags, to a `train --val-split` user)
    with pytest.raises(
        InputError,
        match=r"val split file .*val\.txt does not exist; check --val \(index build\) or "
        r"--val-split / data\.val_split \(train\)",
    ):
        read_splits({"val": tmp_path / "val.txt"})


# ---------------------------------------------------------------- id mapping


def test_id_mapping_exact_then_prefix_and_unmapped():
    m = map_domain_ids(
        ["1abcA00", "2defA00_pdb", "9zzzA00"],
        ["1abcA00", "2defA00", "5gggA00"],
        voxel_file="v.h5",
        csv_file="r.csv",
    )
    assert m.table.to_pylist() == [
        {"domain": "1abcA00", "domain_id": "1abcA00", "match": "exact"},
        {"domain": "2defA00_pdb", "domain_id": "2defA00", "match": "prefix"},
    ]
    assert m.unmapped_keys == ["9zzzA00"]
    assert m.unmapped_ids == ["5gggA00"]


def test_id_mapping_exact_beats_prefix_and_ambiguity_is_an_error():
    m = map_domain_ids(["1abc_x"], ["1abc_x", "1abc"], voxel_file="v.h5", csv_file="r.csv")
    assert m.table["domain_id"].to_pylist() == ["1abc_x"]
    with pytest.raises(InputError, match=r"'1abcA00' <- \['1abcA00_1', '1abcA00_2'\]") as err:
        map_domain_ids(["1abcA00_1", "1abcA00_2"], ["1abcA00"], voxel_file="v.h5", csv_file="r.csv")
    assert "r.csv" in str(err.value) and "v.h5" in str(err.value)


def test_csv_empty_chain_named(tmp_path):
    header = "domain_id,chain,resid,resname,temperature_feature,target_rmsf"
    rows = [("d1", "A", 1, "ALA", 320, 0.1), ("d1", "", 2, "GLY", 320, 0.1)]
    with pytest.raises(InputError, match=r"empty chain, e\.g\. line 3 \(domain d1, resid 2\)"):
        read_rmsf_csv(write_csv(tmp_path / "r.csv", rows, header))
