"""Index build: joins, sorting, metadata, skip table, offsets, prediction rows, read checks."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from tests._index_data import csv_rows, residues, write_csv, write_voxels
from voxelflex.demo.generate import generate_demo
from voxelflex.errors import ConfigError, IndexFormatError, InputError
from voxelflex.index import (
    METADATA_KEY,
    SCHEMA,
    SKIP_REASONS,
    build_index,
    connect,
    ensure_index,
    read_index,
)
from voxelflex.inputs import read_split_file


def _build(tmp_path, layout, rows, splits=None, header=None, **kw):
    """Build an index from a hand-made voxel layout and CSV rows; return (report, table, skip)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    voxels = write_voxels(tmp_path / "v.h5", layout, bad=kw.pop("bad", {}))
    args = {}
    if rows is not None:
        csv_args = {"header": header} if header else {}
        args = {
            "rmsf_csv": write_csv(tmp_path / "r.csv", rows, **csv_args),
            "rmsf_unit": kw.pop("rmsf_unit", "nm"),
        }
    for split, ids in (splits or {}).items():
        (tmp_path / f"{split}.txt").write_text("\n".join(ids) + "\n")
        args[split] = tmp_path / f"{split}.txt"
    report = build_index(voxels, tmp_path / "idx.parquet", progress=False, **args, **kw)
    table = read_index(report.index_path).table
    skip = pcsv.read_csv(
        report.skip_table_path,
        convert_options=pcsv.ConvertOptions(
            column_types={"resid": pa.string()}, strings_can_be_null=True
        ),
    )
    return report, table, skip


def _reasons(skip) -> list[tuple]:
    return sorted(
        zip(
            skip["reason"].to_pylist(),
            skip["domain"].to_pylist(),
            skip["domain_id"].to_pylist(),
            skip["resid"].to_pylist(),
            strict=True,
        ),
        key=str,
    )


# ---------------------------------------------------------------- demo data (happy path)


def test_demo_index_rows_sort_and_splits(demo_data, demo_index):
    loaded = read_index(demo_index)
    t = loaded.table
    assert t.schema.names[: len(SCHEMA)] == SCHEMA.names
    csv = pcsv.read_csv(demo_data.rmsf_csv)
    assert t.num_rows == csv.num_rows  # every CSV row used, nothing predicted
    assert t["row_id"].to_pylist() == list(range(t.num_rows))
    order = {"train": 0, "val": 1, "test": 2, "predict": 3}
    keys = list(
        zip(
            [order[s] for s in t["split"].to_pylist()],
            t["domain"].to_pylist(),
            t["chain"].to_pylist(),
            t["resnum"].to_pylist(),
            t["temperature"].to_pylist(),
            strict=True,
        )
    )
    assert keys == sorted(keys)
    for split, path in (("train", demo_data.train_split), ("test", demo_data.test_split)):
        got = set(pc.filter(t["domain"], pc.equal(t["split"], split)).to_pylist())
        assert got == set(read_split_file(path))
    assert set(t.column_names) >= {"relative_accessibility", "dssp", "secondary_structure_encoded"}


def test_demo_index_meta_and_side_files(demo_data, demo_index):
    meta = read_index(demo_index, columns=["row_id"]).meta
    assert meta.rmsf_unit == "nm"
    assert meta.voxel_file == os.path.abspath(demo_data.voxel_file)
    fp = meta.fingerprints["voxel_file"]
    assert fp["size"] == os.path.getsize(demo_data.voxel_file) and len(fp["key_hash"]) == 64
    assert set(meta.fingerprints) >= {"rmsf_csv", "train_split", "val_split", "test_split"}
    assert meta.temperature_range == (320.0, 450.0)
    rng = json.loads(demo_index.with_name("index.temperature_range.json").read_text())
    assert (rng["min"], rng["max"], rng["unit"]) == (320.0, 450.0, "K")
    skip = demo_index.with_name("index.skipped.csv").read_text().splitlines()
    assert skip == ['"kind","domain","domain_id","chain","resid","reason","detail"']


def test_prediction_index_without_csv(demo_data, tmp_path):
    report = build_index(demo_data.voxel_file, tmp_path / "p.parquet", progress=False)
    t = read_index(report.index_path).table
    assert set(t["split"].to_pylist()) == {"predict"}
    assert t.num_rows == report.rows["predict"] == report.residues["predict"]
    assert pc.all(pc.is_nan(t["temperature"])).as_py()
    assert pc.all(pc.is_nan(t["target_rmsf"])).as_py()
    assert t["resname"].null_count == 0
    csv = pcsv.read_csv(demo_data.rmsf_csv)
    assert t.num_rows == csv.num_rows // 5  # one row per residue
    assert read_index(report.index_path).meta.rmsf_unit is None
    assert report.temperature_range is None


def test_resid_offset_is_reported_not_applied(tmp_path):
    paths = generate_demo(
        tmp_path / "d", n_domains=3, min_residues=20, max_residues=25, csv_resid_offset=-1
    )
    # every domain shifted: no row becomes a target, which is an error naming the step
    with pytest.raises(InputError, match=r"none of the \d+ rows .* resid_offset \d+") as err:
        build_index(
            paths.voxel_file,
            tmp_path / "i.parquet",
            rmsf_csv=paths.rmsf_csv,
            rmsf_unit="nm",
            progress=False,
        )
    assert "i.skipped.csv" in str(err.value) and not (tmp_path / "i.parquet").exists()
    skip = pcsv.read_csv(tmp_path / "i.skipped.csv")
    assert skip["reason"].to_pylist() == ["resid_offset"] * 3
    assert "HDF5 resnum = CSV resid +1" in skip["detail"][0].as_py()
    # one domain shifted among good ones: reported and left as predict rows, not renumbered
    good = generate_demo(tmp_path / "g", n_domains=3, min_residues=20, max_residues=25)
    rows = pcsv.read_csv(good.rmsf_csv)
    first = rows["domain_id"][0].as_py()
    shifted = pc.if_else(
        pc.equal(rows["domain_id"], first), pc.subtract(rows["resid"], 1), rows["resid"]
    )
    pcsv.write_csv(rows.set_column(1, "resid", shifted), tmp_path / "one.csv")
    report = build_index(
        good.voxel_file,
        tmp_path / "j.parquet",
        rmsf_csv=tmp_path / "one.csv",
        rmsf_unit="nm",
        progress=False,
    )
    assert report.skipped == {"resid_offset": 1} and report.rows["train"] > 0
    assert any("resid_offset" in w for w in report.warnings)
    assert (
        "HDF5 resnum = CSV resid +1" in pcsv.read_csv(report.skip_table_path)["detail"][0].as_py()
    )


# ---------------------------------------------------------------- hand-made cases


def test_partial_csv_and_unknown_ids_in_skip_table(tmp_path):
    layout = {"d1": {"A": residues("ALA GLY SER")}, "d2": {"A": residues("LEU VAL")}}
    rows = csv_rows("d1", "ALA GLY") + csv_rows("gone", "ALA")
    report, t, skip = _build(tmp_path, layout, rows, splits={"train": ["d1", "ghost"]})
    assert report.rows == {"train": 4, "val": 0, "test": 0, "predict": 3}
    # d1 has rows in train (targets) and predict (SER, no target): counted once in the total
    assert report.domains == {"train": 1, "val": 0, "test": 0, "predict": 2}
    assert report.totals == {"rows": 7, "residues": 5, "domains": 2}
    (total,) = [line.split() for line in report.summary().splitlines() if "each once" in line]
    assert total == ["all", "7", "rows", "5", "residues", "2", "domains", "(each", "once)"]
    predict = t.filter(pc.equal(t["split"], "predict"))
    assert list(
        zip(
            predict["domain"].to_pylist(),
            predict["resid_str"].to_pylist(),
            predict["resname"].to_pylist(),
            strict=True,
        )
    ) == [("d1", "3", "SER"), ("d2", "1", "LEU"), ("d2", "2", "VAL")]
    assert _reasons(skip) == sorted(
        [
            ("no_rmsf", "d1", "d1", "3"),
            ("no_rmsf", "d2", None, None),
            ("not_in_hdf5", None, "gone", None),
            ("split_id_unknown", None, "ghost", None),
        ],
        key=str,
    )
    assert set(skip["reason"].to_pylist()) <= set(SKIP_REASONS)
    assert report.skipped["no_rmsf"] == 2
    assert any("split_id_unknown" in w for w in report.warnings)


@pytest.mark.parametrize(
    ("train", "says"),
    [
        (["d1, d2"], r"lists 1 ids, none of them a domain .*\['d1, d2'\]"),  # commas
        (["D1", "D2"], r"lists 2 ids, none of them a domain"),  # other case
    ],
)
# alone, every CSV row is no_split: still named, not "none of the rows became a target"
@pytest.mark.parametrize("others", [{"val": ["d2"]}, {}], ids=["with_val", "alone"])
def test_a_split_file_matching_no_domain_is_an_error_naming_it(tmp_path, train, says, others):
    layout = {"d1": {"A": residues("ALA GLY")}, "d2": {"A": residues("LEU")}}
    rows = csv_rows("d1", "ALA GLY") + csv_rows("d2", "LEU")
    with pytest.raises(InputError, match=rf"train split file .*train.txt {says}") as err:
        _build(tmp_path, layout, rows, splits={"train": train, **others})
    assert "CSV's ids are like ['d1', 'd2']" in str(err.value)
    assert "one domain id a line" in str(err.value) and "case-sensitive" in str(err.value)
    assert not (tmp_path / "idx.parquet").exists()


def test_train_on_an_index_with_an_empty_train_split_says_so(tmp_path):
    layout = {"d1": {"A": residues("ALA GLY")}, "d2": {"A": residues("LEU")}}
    rows = csv_rows("d1", "ALA GLY") + csv_rows("d2", "LEU")
    # no train split file: every listed domain is val or test, train holds nothing
    report, _, _ = _build(tmp_path, layout, rows, splits={"val": ["d1"], "test": ["d2"]})
    from voxelflex.config import load_config
    from voxelflex.engine.data import open_training_data
    from voxelflex.errors import TrainingError

    config = load_config(None, [f"data.index={report.index_path}", f"output_dir={tmp_path}"])
    with pytest.raises(TrainingError, match="train split is empty"):
        open_training_data(config, None, None)
    # an empty split file is allowed (a small dataset), with a warning naming it
    report, _, _ = _build(tmp_path / "e", layout, rows, splits={"train": ["d1"], "val": []})
    assert any("val.txt lists no domain id" in w for w in report.warnings)


def test_domain_in_no_split_becomes_predict(tmp_path):
    layout = {"d1": {"A": residues("ALA")}, "d2": {"A": residues("GLY")}}
    rows = csv_rows("d1", "ALA") + csv_rows("d2", "GLY")
    report, _, skip = _build(tmp_path, layout, rows, splits={"test": ["d2"]})
    assert report.rows == {"train": 0, "val": 0, "test": 2, "predict": 1}
    assert _reasons(skip) == [("no_split", "d1", "d1", None)]


def test_no_split_files_means_all_train(tmp_path):
    report, _, _ = _build(tmp_path, {"d1": {"A": residues("ALA GLY")}}, csv_rows("d1", "ALA GLY"))
    assert report.rows["train"] == 4 and report.temperature_range == (320.0, 450.0)


def test_csv_residue_missing_from_hdf5(tmp_path):
    layout = {"d1": {"A": residues("ALA GLY")}}
    rows = csv_rows("d1", "ALA GLY TRP")
    report, _, skip = _build(tmp_path, layout, rows)
    assert report.rows["train"] == 4
    assert _reasons(skip) == [("not_in_hdf5", "d1", "d1", "3")]
    assert "line 6" in skip["detail"][0].as_py()


def test_resname_mismatch_skips_domain(tmp_path):
    layout = {"d1": {"A": residues("ALA GLY SER")}, "d2": {"A": residues("VAL")}}
    rows = csv_rows("d1", "ALA TRP SER") + csv_rows("d2", "VAL")
    report, t, skip = _build(tmp_path, layout, rows)
    assert report.skipped == {"resname_mismatch": 1}
    assert "resid 2 (CSV vs HDF5: TRP vs GLY)" in skip["detail"][0].as_py()
    assert set(t.filter(pc.equal(t["domain"], "d1"))["split"].to_pylist()) == {"predict"}


def test_every_target_residue_is_checked_against_its_label(tmp_path):
    # A long chain: the scan's label sample (8 residues) misses most of them. One residue's
    # frame is another residue (1PPC: aposteriori keys GLY 184A's frame 184, the CSV's 184 is
    # TYR), and one dataset has no label.
    names = ["ALA", "SER", "VAL", "LEU"] * 15
    layout_names = list(names)
    layout_names[36] = "GLY"
    layout = {"d1": {"A": [(str(i + 1), n) for i, n in enumerate(layout_names)]}}
    layout["d1"]["A"][40] = ("41", None)
    report, t, skip = _build(tmp_path, layout, csv_rows("d1", " ".join(names)))
    assert report.skipped == {"resname_mismatch": 1, "no_label": 1}
    reasons = dict(zip(skip["resid"].to_pylist(), skip["detail"].to_pylist(), strict=True))
    assert "CSV residue ALA but the voxel dataset holds GLY" in reasons["37"]
    train = t.filter(pc.equal(t["split"], "train"))
    assert train.num_rows == 2 * 58 and not {"37", "41"} & set(train["resid_str"].to_pylist())
    # the mismatched residue's frame stays, without a target
    predict = t.filter(pc.equal(t["split"], "predict"))
    assert predict["resid_str"].to_pylist() == ["37"] and predict["resname"][0].as_py() == "GLY"


def test_a_residue_with_two_mismatched_csv_names_is_one_skip_line(tmp_path):
    # residue 37 (ALA, outside the scan's label sample) is GLY at 320 K and TRP at 450 K in the
    # CSV: one residue left out, its two rows counted once each
    names = ["ALA", "SER", "VAL", "LEU"] * 15
    layout = {"d1": {"A": [(str(i + 1), n) for i, n in enumerate(names)]}}
    rows = [
        (d, r, {320.0: "GLY", 450.0: "TRP"}[tt] if r == 37 else n, tt, v)
        for d, r, n, tt, v in csv_rows("d1", " ".join(names))
    ]
    report, t, skip = _build(tmp_path, layout, rows + csv_rows("dx", " ".join(["ALA"] * 70)))
    assert report.skipped == {"resname_mismatch": 1, "not_in_hdf5": 1}
    assert "CSV residue GLY, TRP but the voxel dataset holds ALA" in skip["detail"][1].as_py()
    assert (
        "only 118 of 260 RMSF CSV rows became targets; dropped per reason: domain_not_in_hdf5 "
        f"140, resname_mismatch 2 (see {report.skip_table_path})"
    ) in report.warnings
    assert t.filter(pc.equal(t["resid_str"], "37"))["split"].to_pylist() == ["predict"]


def test_rows_of_an_empty_domain_are_counted(tmp_path):
    # d2's HDF5 group holds no residue: its CSV rows are dropped, and counted as dropped
    layout = {"d1": {"A": residues("ALA")}, "d2": {"A": []}}
    rows = csv_rows("d1", "ALA") + csv_rows("d2", "ALA GLY SER")
    report, _, _ = _build(tmp_path, layout, rows)
    assert report.skipped == {"no_residues": 1}
    assert report.warnings == [
        f"only 2 of 8 RMSF CSV rows became targets; dropped per reason: no_residues 6 (see "
        f"{report.skip_table_path})"
    ]


def test_force_field_residue_names_match_pdb_labels(tmp_path):
    # mdCATH CSVs name histidines by protonation state; the voxelized structure says HIS
    layout = {"d1": {"A": residues("ALA HIS CYS HIS LYS")}}
    report, t, _ = _build(tmp_path, layout, csv_rows("d1", "ALA HSD CYX HSE LSN"))
    assert report.skipped == {} and report.rows["train"] == 10
    assert t["resname"].to_pylist()[2:4] == ["HSD", "HSD"]  # the CSV's names are kept


def test_voxel_labels_in_lower_case_or_padded_match_the_csv_names(tmp_path):
    # the CSV's names were upper-cased and trimmed, the voxel file's labels not: every residue
    # of a file labelled "ala" or "GLY " was refused as resname_mismatch
    layout = {"d1": {"A": [("1", "ala"), ("2", "GLY "), ("3", "his")]}}
    report, t, _ = _build(tmp_path, layout, csv_rows("d1", "ALA GLY HSD"))
    assert report.skipped == {} and report.rows["train"] == 6
    assert t["resname"].to_pylist() == ["ALA", "ALA", "GLY", "GLY", "HSD", "HSD"]  # the CSV's


def test_prefix_mapping_and_ambiguity(tmp_path):
    layout = {"1abcA00_pdb": {"A": residues("ALA")}}
    _, t, _ = _build(tmp_path, layout, csv_rows("1abcA00", "ALA"))
    assert t["domain"][0].as_py() == "1abcA00_pdb" and t["domain_id"][0].as_py() == "1abcA00"
    layout = {"1abcA00_1": {"A": residues("ALA")}, "1abcA00_2": {"A": residues("ALA")}}
    with pytest.raises(InputError, match=r"'1abcA00' <- \['1abcA00_1', '1abcA00_2'\]"):
        _build(tmp_path / "amb", layout, csv_rows("1abcA00", "ALA"))


def test_implausible_rmsf_scale_warns_about_the_unit(tmp_path):
    layout = {"d1": {"A": residues("ALA GLY")}}
    report, _, _ = _build(tmp_path, layout, csv_rows("d1", "ALA GLY"))  # 0.1 nm = 1 Å
    assert not any("unit" in w for w in report.warnings)
    report, _, _ = _build(tmp_path / "a", layout, csv_rows("d1", "ALA GLY"), rmsf_unit="angstrom")
    (warning,) = [w for w in report.warnings if "--rmsf-unit nm" in w]
    assert "median RMSF" in warning and "0.105 angstrom" in warning and "r.csv" in warning


def test_temperatures_that_look_like_celsius_warn(tmp_path):
    layout = {"d1": {"A": residues("ALA GLY")}}
    report, _, _ = _build(tmp_path, layout, csv_rows("d1", "ALA GLY", temps=(100.0, 320.0)))
    assert not any("kelvin" in w for w in report.warnings)  # cryo-crystallography is fine
    celsius = csv_rows("d1", "ALA GLY", temps=(25.0, 37.0, 77.0))  # °C, and liquid nitrogen
    report, t, _ = _build(tmp_path / "c", layout, celsius)
    (warning,) = [w for w in report.warnings if "kelvin" in w]
    assert "temperatures 25, 37 K are below 60 K in 4 rows" in warning and "r.csv" in warning
    assert "add 273.15" in warning and "298.15 K for 25 °C" in warning
    assert t.num_rows == 6  # a warning: nothing is dropped


def test_relative_accessibility_in_percent_warns(tmp_path):
    layout = {"d1": {"A": residues("ALA GLY")}}
    header = "domain_id,resid,resname,temperature_feature,target_rmsf,relative_accessibility"
    rows = [(*r, 0.35) for r in csv_rows("d1", "ALA GLY")]
    report, _, _ = _build(tmp_path, layout, rows, header=header)
    assert not any("relative_accessibility" in w for w in report.warnings)
    rows = [(*r, 35.0) for r in csv_rows("d1", "ALA")] + [
        (*r, "") for r in csv_rows("d1", "GLY", 2)
    ]
    report, t, _ = _build(tmp_path / "p", layout, rows, header=header)
    (warning,) = [w for w in report.warnings if "relative_accessibility" in w]
    assert warning.startswith("2 row(s) of RMSF CSV") and "from 35 to 35" in warning
    assert "divide by 100" in warning and t.num_rows == 4  # a warning: nothing is dropped


def test_split_file_may_name_the_hdf5_key(tmp_path):
    # The CSV says 1abcA00, the voxel file 1abcA00_pdb: a split file may list either name.
    layout = {"1abcA00_pdb": {"A": residues("ALA")}, "2defA00_pdb": {"A": residues("GLY")}}
    rows = csv_rows("1abcA00", "ALA") + csv_rows("2defA00", "GLY")
    splits = {"train": ["1abcA00_pdb"], "test": ["2defA00"]}
    report, t, skip = _build(tmp_path, layout, rows, splits=splits)
    assert skip.num_rows == 0 and report.rows["train"] == 2 and report.rows["test"] == 2
    assert set(zip(t["domain_id"].to_pylist(), t["split"].to_pylist(), strict=True)) == {
        ("1abcA00", "train"),
        ("2defA00", "test"),
    }
    splits = {"train": ["1abcA00_pdb"], "test": ["1abcA00"]}  # one domain under two names
    with pytest.raises(InputError, match=r"1abcA00_pdb: 1abcA00 in test and 1abcA00_pdb in train"):
        _build(tmp_path / "leak", layout, rows, splits=splits)


def test_multi_chain_domains(tmp_path):
    layout = {"d1": {"A": residues("ALA GLY"), "B": residues("SER")}}
    layout2 = {**layout, "d2": {"A": residues("VAL")}}
    report, t, skip = _build(tmp_path, layout2, csv_rows("d1", "ALA GLY") + csv_rows("d2", "VAL"))
    assert _reasons(skip) == [("multi_chain", "d1", "d1", None)]
    assert report.rows["predict"] == 3
    header = "domain_id,chain,resid,resname,temperature_feature,target_rmsf"
    rows = [
        (d, "B" if r == 3 else "A", 1 if r == 3 else r, n, tt, v)
        for d, r, n, tt, v in csv_rows("d1", "ALA GLY SER")
    ]
    report, t, skip = _build(tmp_path / "c", layout, rows, header=header)
    assert report.rows["train"] == 6 and skip.num_rows == 0
    assert sorted(set(zip(t["chain"].to_pylist(), t["resname"].to_pylist(), strict=True))) == [
        ("A", "ALA"),
        ("A", "GLY"),
        ("B", "SER"),
    ]


def test_insertion_codes_and_negative_resids_sorted(tmp_path):
    keys = [("5", "ALA"), ("-2", "GLY"), ("5A", "SER"), ("10", "THR")]
    _, t, _ = _build(tmp_path, {"d": {"A": keys}}, None)
    assert t["resid_str"].to_pylist() == ["-2", "5", "5A", "10"]
    assert t["icode"].to_pylist() == ["", "", "A", ""]


def test_residue_keys_of_one_number_are_refused(tmp_path):
    # "02" and "2" are one residue number: the CSV row for 2 would become a target on both frames
    keys = [("1", "ALA"), ("2", "GLY"), ("02", "GLY")]
    with pytest.raises(InputError, match=r"d/A: residue keys '02' and '2' .* residue number 2"):
        _build(tmp_path, {"d": {"A": keys}}, csv_rows("d", "ALA GLY"))


def test_bad_voxel_dataset_is_skipped(tmp_path):
    # the skip line names the CSV id the HDF5 key maps to, not only the key
    layout = {"d1_pdb": {"A": residues("ALA GLY SER")}}
    bad = {("d1_pdb", "A", "3"): np.zeros((21, 21, 21, 5), np.float64)}
    _, t, skip = _build(tmp_path, layout, csv_rows("d1", "ALA GLY SER"), bad=bad)
    assert _reasons(skip) == [("bad_voxel_dataset", "d1_pdb", "d1", "3")]
    assert "3" not in t["resid_str"].to_pylist()


def test_leakage_and_argument_errors(tmp_path):
    layout = {"d1": {"A": residues("ALA")}}
    with pytest.raises(InputError, match=r"d1 in train .* and test"):
        _build(tmp_path, layout, csv_rows("d1", "ALA"), splits={"train": ["d1"], "test": ["d1"]})
    voxels = tmp_path / "v.h5"
    with pytest.raises(ConfigError, match="rmsf-unit"):
        build_index(voxels, tmp_path / "x.parquet", rmsf_csv=tmp_path / "r.csv", progress=False)
    with pytest.raises(ConfigError, match="without an RMSF CSV"):
        build_index(voxels, tmp_path / "x.parquet", train=tmp_path / "train.txt", progress=False)
    assert not (tmp_path / "x.parquet").exists()


# ---------------------------------------------------------------- reading and checks


def test_read_index_detects_stale_voxel_file(tmp_path):
    report, _, _ = _build(tmp_path, {"d1": {"A": residues("ALA")}}, None)
    voxels = tmp_path / "v.h5"
    st = os.stat(voxels)
    os.utime(voxels, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(IndexFormatError, match=r"v\.h5 changed since the index was built") as err:
        read_index(report.index_path)
    assert "voxelflex index build" in str(err.value)
    assert read_index(report.index_path, check_inputs=False).table.num_rows == 1


def test_read_index_detects_a_changed_rmsf_csv(tmp_path):
    report, _, _ = _build(tmp_path, {"d1": {"A": residues("ALA")}}, csv_rows("d1", "ALA"))
    csv = tmp_path / "r.csv"
    csv.write_text(csv.read_text() + "\n")
    with pytest.raises(IndexFormatError, match=r"rmsf csv .*r\.csv changed since") as err:
        read_index(report.index_path)
    assert "voxelflex index build" in str(err.value)


def test_an_input_rewritten_during_the_build_leaves_the_index_stale(tmp_path, monkeypatch):
    """An RMSF CSV rewritten after the build read it (here: while it scans the voxel file) was
    fingerprinted at the end of the build, so the index with the old targets looked current and
    `voxelflex train` reused it on every run. The fingerprints are now taken before reading."""
    import voxelflex.index.build as build_module

    voxels = write_voxels(tmp_path / "v.h5", {"d1": {"A": residues("ALA GLY")}})
    csv = write_csv(tmp_path / "r.csv", csv_rows("d1", "ALA GLY"))
    scan = build_module.scan_voxel_file

    def scan_while_the_csv_changes(*args, **kwargs):
        mtime = os.stat(csv).st_mtime_ns
        write_csv(csv, [(*row[:4], 2 * row[4]) for row in csv_rows("d1", "ALA GLY")])
        os.utime(csv, ns=(mtime + 10**9, mtime + 10**9))  # same size; a later mtime on any clock
        return scan(*args, **kwargs)

    monkeypatch.setattr(build_module, "scan_voxel_file", scan_while_the_csv_changes)
    out = tmp_path / "run" / "index.parquet"
    inputs = {"voxel_file": voxels, "rmsf_csv": csv, "rmsf_unit": "nm", "progress": False}
    ensure_index(out, **inputs)
    built = read_index(out, check_inputs=False).table["target_rmsf"].to_pylist()
    with pytest.raises(IndexFormatError, match=r"r\.csv changed since the index was built"):
        read_index(out)
    monkeypatch.setattr(build_module, "scan_voxel_file", scan)
    ensure_index(out, **inputs)  # rebuilt from the CSV as it is now, not reused
    assert read_index(out).table["target_rmsf"].to_pylist() == [2 * v for v in built]


def test_index_travels_without_its_inputs(tmp_path, caplog):
    """Index + shards can move to a machine without the HDF5: missing inputs only warn."""
    report, _, _ = _build(tmp_path, {"d1": {"A": residues("ALA")}}, None)
    (tmp_path / "v.h5").unlink()
    assert read_index(report.index_path).table.num_rows == 1
    assert "v.h5" in caplog.text and "is not here" in caplog.text


def test_read_index_version_and_foreign_files(tmp_path):
    report, _, _ = _build(tmp_path, {"d1": {"A": residues("ALA")}}, None)
    t = pq.read_table(report.index_path)
    meta = json.loads(t.schema.metadata[METADATA_KEY])
    meta["format_version"] = 99
    pq.write_table(t.replace_schema_metadata({METADATA_KEY: json.dumps(meta)}), tmp_path / "o.pq")
    with pytest.raises(IndexFormatError, match=r"o\.pq: index format version 99 unsupported"):
        read_index(tmp_path / "o.pq")
    meta["format_version"] = 1
    del meta["fingerprints"]
    pq.write_table(t.replace_schema_metadata({METADATA_KEY: json.dumps(meta)}), tmp_path / "o.pq")
    with pytest.raises(IndexFormatError, match=r"o\.pq: index metadata field missing.*rebuild"):
        read_index(tmp_path / "o.pq")
    pq.write_table(pa.table({"a": [1]}), tmp_path / "plain.parquet")
    with pytest.raises(IndexFormatError, match=r"plain\.parquet has no voxelflex index metadata"):
        read_index(tmp_path / "plain.parquet")
    with pytest.raises(IndexFormatError, match=r"missing\.parquet does not exist"):
        read_index(tmp_path / "missing.parquet")
    with pytest.raises(IndexFormatError, match=r"is a folder; give the index file"):
        read_index(tmp_path)  # said "does not exist"


def test_connect_view_and_nan_filters(tmp_path, demo_index):
    con = connect(demo_index)
    n = con.sql("SELECT count(*) FROM samples WHERE split = 'train'").fetchall()[0][0]
    assert n > 0
    with pytest.raises(Exception, match="disabled by configuration"):
        con.execute(f"COPY (SELECT 1) TO '{tmp_path / 'x.csv'}'")
    con.close()
    report, _, _ = _build(tmp_path, {"d1": {"A": residues("ALA GLY")}}, csv_rows("d1", "ALA"))
    con = connect(report.index_path)
    # NaN temperature of predict rows must be visible to filters (no float min/max stats).
    got = con.sql("SELECT split, isnan(temperature) FROM samples WHERE split = 'predict'")
    assert got.fetchall() == [("predict", True)]
    con.close()


def test_an_edited_or_damaged_index_is_refused(demo_index, tmp_path):
    # rows removed with pyarrow keep the footer: the rest would be relabelled by position
    table = pq.read_table(demo_index)
    first = table["domain"][0].as_py()
    edited = tmp_path / "edited.parquet"
    pq.write_table(table.filter(pc.not_equal(table["domain"], first)), edited)
    with pytest.raises(IndexFormatError, match=r"row_id is not the row position"):
        read_index(edited, check_inputs=False)
    # one damaged byte in a data page: page checksums catch it (it decoded to another target)
    data = bytearray(demo_index.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged = tmp_path / "damaged.parquet"
    damaged.write_bytes(bytes(data))
    with pytest.raises(IndexFormatError, match=r"is damaged \(.*CRC checksum"):
        read_index(damaged, check_inputs=False)
    # SQL too: DuckDB checks no page checksum, and summed the damaged page's 1.6e35 as a target
    with pytest.raises(IndexFormatError, match=r"damaged\.parquet is damaged \(.*CRC checksum"):
        connect(damaged)
