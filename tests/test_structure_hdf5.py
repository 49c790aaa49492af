"""voxelize_files writes aposteriori's HDF5 layout, atomically, and index build reads it."""

import csv
import os
import shutil
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from voxelflex.cli.main import app
from voxelflex.errors import InputError
from voxelflex.index import build_index, read_index
from voxelflex.structure import compute_frames, read_structure, voxelize_files, write_voxel_hdf5
from voxelflex.structure import hdf5 as hdf5_module
from voxelflex.structure.features import read_feature_sidecar
from voxelflex.structure.frames import SKIP_REASONS

DATA = Path(__file__).parent / "data"
STRUCTURES = DATA / "structures"
REAL = DATA / "aposteriori_1vii.hdf5"


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    """1vii, 1a8o and 1bd2s (aposteriori refuses the last) voxelized into one file."""
    folder = tmp_path_factory.mktemp("in")
    for name in ("1vii.pdb.gz", "1a8o.pdb.gz", "1bd2s.cif.gz"):
        shutil.copy(STRUCTURES / name, folder / name)
    out = folder.parent / "voxels.hdf5"
    return voxelize_files(folder, out, progress=False)


def test_a_feature_sidecar_is_replaced_only_by_voxelize_features(tmp_path, caplog):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(STRUCTURES / "1vii.pdb.gz", folder)
    first = voxelize_files(folder, tmp_path / "v.hdf5", features=True, progress=False)
    sidecar = first.features_path.read_bytes()
    # without --features the sidecar is left alone (it may be `voxelflex features` output for
    # these very structures), and a replaced voxel file says so
    caplog.set_level("WARNING", logger="voxelflex.structure.hdf5")
    voxelize_files(folder, tmp_path / "v.hdf5", overwrite=True, progress=False)
    assert first.features_path.read_bytes() == sidecar
    assert "is not (no --features)" in caplog.text
    # a run that voxelizes nothing keeps the old pair whole
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "x.pdb").write_text("REMARK nothing\n")
    with pytest.raises(InputError, match="no residue could be voxelized"):
        voxelize_files(empty, tmp_path / "v.hdf5", features=True, overwrite=True, progress=False)
    assert first.features_path.read_bytes() == sidecar
    shutil.copy(STRUCTURES / "1a8o.pdb.gz", folder)
    again = voxelize_files(
        folder, tmp_path / "v.hdf5", features=True, overwrite=True, progress=False
    )
    assert again.features_path.read_bytes() != sidecar  # replaced with the new file's


def test_cli_voxelize_reports_files_aposteriori_would_refuse(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("1vii.pdb.gz", "1bd2s.cif.gz"):  # aposteriori refuses the second whole
        shutil.copy(STRUCTURES / name, folder / name)
    out = tmp_path / "v.hdf5"
    result = CliRunner().invoke(app, ["voxelize", str(folder), "-o", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "aposteriori 2.4.0 would refuse 1 of these files whole" in result.output


def test_cli_voxelize_refuses_an_output_not_named_hdf5(tmp_path):
    # `-o voxels.csv` wrote an HDF5 file under a CSV name, exit 0
    result = CliRunner().invoke(
        app, ["voxelize", str(STRUCTURES / "1vii.pdb.gz"), "-o", str(tmp_path / "v.csv")]
    )
    assert result.exit_code == 2
    assert "the voxel file is written as hdf5 or h5" in result.output
    assert not list(tmp_path.iterdir())


def test_layout_dtype_chunks_and_attributes_match_aposteriori(three):
    with h5py.File(REAL, "r") as real, h5py.File(three.out_path, "r") as ours:
        for name, value in real.attrs.items():
            if name != "atom_filter_fn":  # aposteriori writes a memory address into it
                assert np.array_equal(ours.attrs[name], value), name
                assert type(ours.attrs[name]) is type(value), name
        assert ours.attrs["voxelflex_keys"] == "aposteriori"
        for resid, theirs in real["1vii"]["A"].items():
            mine = ours["1vii"]["A"][resid]
            assert np.array_equal(mine[()], theirs[()])
            for prop in ("dtype", "shape", "chunks", "compression", "compression_opts"):
                assert getattr(mine, prop) == getattr(theirs, prop), prop
            for offset in [(x, y, z, 0) for x in (0, 11) for y in (0, 11) for z in (0, 11)]:
                assert mine.id.read_direct_chunk(offset) == theirs.id.read_direct_chunk(offset)
            for name, value in theirs.attrs.items():
                assert np.array_equal(mine.attrs[name], value)
                assert type(mine.attrs[name]) is type(value)


def test_file_holds_every_frame_of_every_structure(three):
    assert three.files == 3 and three.domains == 3 and three.files_failed == 0
    assert three.files_aposteriori_rejects == 1  # 1bd2s: residue 50 has no N
    frames = compute_frames(read_structure(STRUCTURES / "1a8o.pdb.gz"))
    with h5py.File(three.out_path, "r") as f:
        assert sorted(f) == ["1a8o", "1bd2s", "1vii"]
        keys = zip(frames.chains, frames.resids, strict=True)
        grids = np.stack([f["1a8o"][c][r][()] for c, r in keys])
    assert np.array_equal(grids, frames.grids())
    assert three.residues == 36 + 70 + 7


def test_skip_report_gives_one_reason_per_row(three):
    with open(three.skipped_csv) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == three.skipped
    assert any(
        (r["domain"], r["resid"], r["reason"]) == ("1bd2s", "50", "no_backbone") for r in rows
    )
    assert all(r["reason"] in SKIP_REASONS and r["detail"] for r in rows)
    # the counts the CLI prints
    assert three.skipped_by_reason == dict(sorted(Counter(r["reason"] for r in rows).items()))


def test_index_build_reads_the_file_unchanged(three, tmp_path):
    build_index(three.out_path, tmp_path / "index.parquet", deep=True, progress=False)
    table = read_index(tmp_path / "index.parquet").table
    assert table.num_rows == three.residues
    assert set(table["domain"].to_pylist()) == {"1vii", "1a8o", "1bd2s"}


def test_workers_give_the_same_file(three, tmp_path):
    files = [STRUCTURES / n for n in ("1vii.pdb.gz", "1a8o.pdb.gz", "1bd2s.cif.gz")]
    report = voxelize_files(files, tmp_path / "w2.hdf5", workers=2, progress=False)
    with h5py.File(three.out_path, "r") as a, h5py.File(report.out_path, "r") as b:
        for domain in a:
            for chain in a[domain]:
                for resid in a[domain][chain]:
                    assert np.array_equal(a[domain][chain][resid][()], b[domain][chain][resid][()])


@pytest.mark.parametrize("features", [False, True])
def test_a_second_file_with_the_same_domain_key_is_skipped(tmp_path, features):
    report = voxelize_files(
        [STRUCTURES / "1a8o.pdb.gz", STRUCTURES / "1a8o.cif.gz"], tmp_path / "v.hdf5",
        progress=False, features=features,
    )  # fmt: skip
    assert report.domains == 1
    with open(report.skipped_csv) as fh:
        assert any(
            r["reason"] == "duplicate_domain" and "already in the file" in r["detail"]
            for r in csv.DictReader(fh)
        )
    if features:  # the sidecar holds the written file's features only, each key once
        table, _ = read_feature_sidecar(report.features_path)
        assert table.num_rows == report.residues


def test_a_file_without_framable_residues_is_skipped_not_a_crash(tmp_path):
    lines = (STRUCTURES / "1bd2t.pdb").read_text().splitlines(keepends=True)
    ca_only = tmp_path / "caonly.pdb"  # no residue has N, CA and C
    ca_only.write_text("".join(x for x in lines if not x.startswith("ATOM") or x[12:16] == " CA "))
    good = shutil.copy(STRUCTURES / "1bd2s.pdb.gz", tmp_path / "1bd2s.pdb.gz")
    report = voxelize_files([ca_only, good], tmp_path / "v.hdf5", progress=False)
    assert report.domains == 1
    with open(report.skipped_csv) as fh:
        reasons = {r["domain"]: r["reason"] for r in csv.DictReader(fh) if r["resid"] == ""}
    assert reasons["caonly"] == "no_residues"


def test_a_file_whose_features_fail_is_skipped_whole_with_the_reason(tmp_path):
    lines = (STRUCTURES / "1bd2t.pdb").read_text().splitlines(keepends=True)
    ca = next(i for i, line in enumerate(lines) if line[12:16] == " CA ")
    bad = tmp_path / "twoca.pdb"
    bad.write_text("".join([*lines[: ca + 1], lines[ca], *lines[ca + 1 :]]))  # CA twice
    good = shutil.copy(STRUCTURES / "1bd2s.pdb.gz", tmp_path / "1bd2s.pdb.gz")
    report = voxelize_files([bad, good], tmp_path / "v.hdf5", progress=False, features=True)
    assert report.files_failed == 1
    with h5py.File(report.out_path) as f:
        assert list(f) == ["1bd2s"]
    with open(report.skipped_csv) as fh:
        reasons = {r["domain"]: (r["reason"], r["detail"]) for r in csv.DictReader(fh)}
    assert reasons["twoca"][0] == "features_failed" and "2 atoms named CA" in reasons["twoca"][1]
    table, _ = read_feature_sidecar(report.features_path)
    assert set(table["domain"].to_pylist()) == {"1bd2s"}


def test_nothing_voxelized_leaves_no_file(tmp_path):
    bad = tmp_path / "x.pdb"
    bad.write_text("REMARK no atoms\nEND\n")
    with pytest.raises(InputError, match="no residue could be voxelized"):
        voxelize_files(bad, tmp_path / "v.hdf5", progress=False)
    assert not (tmp_path / "v.hdf5").exists()
    assert (tmp_path / "v.hdf5.skipped.csv").exists()


def test_a_crash_while_writing_leaves_no_file_that_looks_whole(tmp_path):
    frames = compute_frames(read_structure(STRUCTURES / "1vii.pdb.gz"))

    def crashing():
        yield frames
        raise RuntimeError("worker died")

    with pytest.raises(RuntimeError):
        write_voxel_hdf5(crashing(), tmp_path / "v.hdf5")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("crash_in", ["report", "rename"])
def test_a_crash_as_voxelize_lands_never_pairs_the_frames_with_another_skip_report(
    tmp_path, monkeypatch, crash_in
):
    """The skip report was written after the HDF5 landed: a kill in between left the new voxel
    file beside the earlier run's report, what this run skipped silently dropped."""
    bad = tmp_path / "x.pdb"
    bad.write_text("REMARK no atoms\nEND\n")
    now = [STRUCTURES / "1vii.pdb.gz", STRUCTURES / "1bd2t.pdb", bad]
    out = tmp_path / "v.hdf5"
    report = voxelize_files(now[:1], out, progress=False)
    earlier = out.read_bytes(), report.skipped_csv.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # killed writing the report, or as the voxel file lands

    if crash_in == "report":
        monkeypatch.setattr(hdf5_module, "atomic_write_text", crash)
    else:
        monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        voxelize_files(now, out, progress=False, overwrite=True)
    monkeypatch.undo()
    if out.exists():  # the earlier voxel file stands only with its own report
        assert (out.read_bytes(), report.skipped_csv.read_bytes()) == earlier
    report = voxelize_files(now, out, progress=False, overwrite=True)
    assert report.domains == 2 and "x.pdb" in report.skipped_csv.read_text()
