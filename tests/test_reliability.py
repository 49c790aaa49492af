"""Defects an adversarial pass found: each was a wrong number with exit 0, a lost file or a
traceback. One test per item of the reliability issue; each docstring holds the reproduction."""

from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tests._checkpoints import make_checkpoint
from tests._index_data import csv_rows, residues, write_csv, write_voxels
from voxelflex.analysis import inference
from voxelflex.analysis.predict import predict
from voxelflex.cli.main import app
from voxelflex.config import load_config
from voxelflex.demo.generate import build_demo_index, generate_demo
from voxelflex.engine.checkpoint import load_for_inference
from voxelflex.errors import CheckpointError, ConfigError, InputError, ShardError
from voxelflex.index import build_index, read_index
from voxelflex.index.query import run_query
from voxelflex.inputs import read_split_file, read_splits, scan_voxel_file
from voxelflex.sources import PlanConfig, build_shards, open_source, verify_shards
from voxelflex.sources.shards.manifest import MANIFEST_NAME

pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create")

CHANNELS = ("C", "N", "O", "CA", "CB")


def _cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """7 demo domains (all three splits): data, index and shards (copy before damaging)."""
    root = tmp_path_factory.mktemp("small")
    data = generate_demo(root / "data", n_domains=7, min_residues=8, max_residues=12, seed=2)
    build_demo_index(data, root / "index.parquet")
    build_shards(root / "index.parquet", root / "shards", domains_per_shard=2, progress=False)
    return data, root / "index.parquet", root / "shards"


def _copy(small, tmp_path):
    data, index, shards = small
    shutil.copytree(data.root, tmp_path / "data")
    return tmp_path / "data", index, shutil.copytree(shards, tmp_path / "shards")


def _batches(source, index, split, **kw):
    src = open_source(source, index, split=split, **kw)
    return list(src.loader(PlanConfig(batch_size=64, shuffle=False), 0))


# ------------------------------------------------------------------ 1. residue key collisions


def _distinct_grids(n: int) -> np.ndarray:
    """``n`` file-layout grids, grid ``i`` with voxel ``i`` of channel C set (all different)."""
    grids = np.zeros((n, 21, 21, 21, 5), dtype=bool)
    for i in range(n):
        grids[i].reshape(-1, 5)[i, 0] = True
    return grids


def _partial_domain_agrees(tmp_path, chains: dict[str, list[int]]) -> None:
    """One domain with these chains and residue numbers; its first residue has no RMSF, so the
    split holds part of the domain and the shard reader picks residues out of the record."""
    keys = [(c, str(r)) for c, rs in chains.items() for r in rs]
    grids = _distinct_grids(len(keys))
    with h5py.File(tmp_path / "v.h5", "w") as f:
        f.attrs["atom_encoder"] = np.array(CHANNELS, dtype="S2")
        for (chain, resid), grid in zip(keys, grids, strict=True):
            ds = f.require_group("d1").require_group(chain).create_dataset(resid, data=grid)
            ds.attrs["label"] = "ALA"
    header = "domain_id,chain,resid,resname,temperature_feature,target_rmsf"
    rows = [("d1", c, int(r), "ALA", 320.0, 0.1) for c, r in keys[1:]]
    build_index(
        tmp_path / "v.h5",
        tmp_path / "i.parquet",
        rmsf_csv=write_csv(tmp_path / "r.csv", rows, header),
        rmsf_unit="nm",
        progress=False,
        overwrite=True,
    )
    index = read_index(tmp_path / "i.parquet")
    shutil.rmtree(tmp_path / "s", ignore_errors=True)
    build_shards(index, tmp_path / "s", progress=False)
    a = _batches("hdf5", index, "train")
    b = _batches("shards", index, "train", shards_dir=tmp_path / "s")
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x.packed, y.packed) and torch.equal(x.row_id, y.row_id)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    chains=st.dictionaries(
        st.text(alphabet="A1a2", min_size=1, max_size=3),
        st.lists(st.integers(-3, 30), min_size=1, max_size=3, unique=True),
        min_size=1,
        max_size=3,
    ).filter(lambda d: sum(len(v) for v in d.values()) >= 2)
)
@example(chains={"A": [12, 13], "A1": [2, 3]})
def test_both_sources_agree_on_random_chain_and_residue_strings(tmp_path, chains):
    """Reproduction: a domain with chains "A" (residues 12, 13) and "A1" (residues 2, 3) and a
    residue without RMSF; `--source shards` served residue A1/2's voxels for A/12 because the
    key joined chain and residue with a NUL that NumPy strips ("A12" == "A12").

    Property: for any chain ids and residue numbers, on this partial-domain path, the shard
    source returns the HDF5 source's rows."""
    _partial_domain_agrees(Path(tempfile.mkdtemp(dir=tmp_path)), chains)


# ------------------------------------------------------------------ 2. stale shards


def test_shards_of_another_voxel_file_are_refused(small, tmp_path):
    """Reproduction: build shards, re-voxelize (the voxel file changes), rebuild the index; the
    old shards passed `shards verify`, `train` and `predict --source shards` (predictions off by
    up to 0.024 nm). Now the manifest records the voxel file's fingerprint (format 2)."""
    data, _, shards = _copy(small, tmp_path)
    voxels = data / "voxels.hdf5"
    index = build_index(voxels, tmp_path / "i.parquet", progress=False).index_path
    build_shards(index, shards, progress=False)
    with h5py.File(voxels, "a") as f:  # re-voxelized: one grid differs
        first = f[next(iter(f))]
        chain = first[next(iter(first))]
        ds = chain[next(iter(chain))]
        ds[0, 0, 0, 0] = not ds[0, 0, 0, 0]
    build_index(voxels, tmp_path / "i.parquet", progress=False, overwrite=True)
    fresh = read_index(tmp_path / "i.parquet")
    with pytest.raises(ShardError, match=r"shards are stale") as err:
        open_source("shards", fresh, split="predict", shards_dir=shards, temperatures=[300.0])
    assert str(voxels) in str(err.value) and "i.parquet" in str(err.value)
    assert "stale" in verify_shards(shards, index=fresh).index_mismatch
    result = _cli("shards", "verify", shards, "--index", tmp_path / "i.parquet")
    assert result.exit_code == 2 and "stale" in result.output
    # format-1 folders: refused with the fix
    manifest = json.loads((shards / MANIFEST_NAME).read_text())
    manifest["format_version"] = 1
    (shards / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(ShardError, match=r"version 1 unsupported.*rebuild with `voxelflex shards"):
        verify_shards(shards)


# ------------------------------------------------------------------ 3. the record's own domain


def test_swapped_domain_names_in_the_manifest_are_caught(small, tmp_path):
    """Reproduction: swap two domains' names in manifest.json; `verify` said "all intact" and
    training served each domain the other's voxels. Now the record's keys.json names its
    domain (and carries a checksum in the manifest) and the reader compares."""
    _, index_path, shards = _copy(small, tmp_path)
    path = shards / MANIFEST_NAME
    m = json.loads(path.read_text())
    records = [r for s in m["shards"] for r in s["records"]]
    a, b = records[0], records[1]
    a["domain"], b["domain"] = b["domain"], a["domain"]
    m["domain_shard"] = {r["domain"]: i for i, s in enumerate(m["shards"]) for r in s["records"]}
    path.write_text(json.dumps(m))
    problems = verify_shards(shards).problems
    assert any("holds domain" in p and a["domain"] in p for p in problems)
    index = read_index(index_path)
    split = index.table.filter(pc.equal(index.table["domain"], a["domain"]))["split"][0].as_py()
    with pytest.raises(ShardError, match=r"holds domain .* but the manifest lists it"):
        _batches("shards", index, split, shards_dir=shards)
    # an edited frame is reported, not "all intact"
    m["frame"]["frame_edge_length"] = 10.0
    path.write_text(json.dumps(m))
    assert any("frame" in p for p in verify_shards(shards).problems)


# ------------------------------------------------------------------ 4. BOM in split files


def test_a_bom_in_a_split_file_keeps_the_first_domain_in_its_split(tmp_path):
    """Reproduction: Notepad saves `train.txt` with a UTF-8 BOM; the first id became
    '\\ufeff1a0AA00', silently moving that domain out of the train split."""
    path = tmp_path / "train.txt"
    path.write_bytes("\ufeff1a0AA00\n2b0BA00\n".encode())
    assert read_split_file(path) == ["1a0AA00", "2b0BA00"]
    assert read_splits({"train": path})["domain_id"].to_pylist() == ["1a0AA00", "2b0BA00"]


# ------------------------------------------------------------------ 5. no target rows


def test_an_index_without_any_target_row_is_an_error_naming_the_step(tmp_path):
    """Reproduction: a header-only CSV, or a `chain` column naming no HDF5 chain, built an index
    without a single target with exit 0; `train` then blamed a missing --rmsf-csv."""
    voxels = write_voxels(tmp_path / "v.h5", {"d1": {"A": residues("ALA GLY SER")}})
    header = "domain_id,resid,resname,temperature_feature,target_rmsf"
    empty = write_csv(tmp_path / "empty.csv", [], header)
    with pytest.raises(InputError, match=r"empty\.csv has no data rows"):
        build_index(voxels, tmp_path / "i.parquet", rmsf_csv=empty, rmsf_unit="nm", progress=False)
    header = "domain_id,chain,resid,resname,temperature_feature,target_rmsf"
    rows = [(d, "B", r, n, t, v) for d, r, n, t, v in csv_rows("d1", "ALA GLY SER")]
    wrong = write_csv(tmp_path / "chain.csv", rows, header)
    with pytest.raises(InputError, match=r"none of the 6 rows .*chain_not_in_hdf5 6"):
        build_index(voxels, tmp_path / "i.parquet", rmsf_csv=wrong, rmsf_unit="nm", progress=False)
    skip = pacsv.read_csv(tmp_path / "i.skipped.csv").to_pylist()
    (line,) = [r for r in skip if r["reason"] == "chain_not_in_hdf5"]
    assert line["chain"] == "B" and "its chains: A" in line["detail"]
    # most rows dropped: built, with a warning that counts them
    layout = {"d1": {"A": residues("ALA")}, "d2": {"A": residues("GLY")}}
    voxels = write_voxels(tmp_path / "v2.h5", layout)
    rows = csv_rows("d1", "ALA") + csv_rows("gone", "ALA GLY SER")
    report = build_index(
        voxels,
        tmp_path / "j.parquet",
        rmsf_csv=write_csv(tmp_path / "most.csv", rows),
        rmsf_unit="nm",
        progress=False,
    )
    assert report.rows["train"] == 2
    assert any("only 2 of 8" in w and "domain_not_in_hdf5 6" in w for w in report.warnings)


# ------------------------------------------------------------------ 6. non-finite numbers


def test_non_finite_weights_config_values_and_predictions_are_never_numbers(
    demo_index, tmp_path, monkeypatch
):
    """Reproduction: a checkpoint with NaN weights made `predict` write all-NaN with exit 0;
    `--set train.lr=inf` passed validation."""
    ckpt = make_checkpoint(tmp_path / "nan.pt")
    payload = torch.load(ckpt, weights_only=True)
    name = next(k for k, v in payload["model"].items() if v.is_floating_point() and v.numel())
    payload["model"][name].view(-1)[0] = float("nan")
    torch.save(payload, ckpt)
    with pytest.raises(CheckpointError, match=rf"weight '{name}' holds 1 NaN"):
        load_for_inference(ckpt)
    for bad in ("inf", "nan", "-inf"):
        with pytest.raises(ConfigError, match=r"train\.lr.*a finite number"):
            load_config(None, [f"train.lr={bad}"])
    # a model that outputs NaN for some inputs: those rows go to _missing.csv, not the table
    good = make_checkpoint(tmp_path / "good.pt")
    real = inference.predict_batch

    def half_nan(model, batch, device, **kw):
        out = real(model, batch, device, **kw)
        out[batch.temperature > 340] = float("nan")
        return out

    monkeypatch.setattr(inference, "predict_batch", half_nan)
    report = predict(
        good, demo_index, split="test", temperatures=[320.0, 350.0], out_path=tmp_path / "p.csv"
    )
    table = pacsv.read_csv(report.path)  # plain CSV: no line to skip
    assert table.num_rows == report.n_rows and set(table["temperature"].to_pylist()) == {320.0}
    missing = pacsv.read_csv(report.missing_path)
    non_finite = missing.filter(pc.equal(missing["reason"], "non_finite"))
    assert non_finite.num_rows == report.n_residues
    assert set(non_finite["temperature"].to_pylist()) == {350.0}


# ------------------------------------------------------------------ 7. outputs that are inputs


def test_an_output_that_is_an_input_is_refused(small, tmp_path):
    """Reproduction: `index build --voxel-file X -o X` replaced the HDF5 with a Parquet;
    `predict -o` and `index query -o` could overwrite the index they read."""
    data, index, _ = _copy(small, tmp_path)
    voxels = data / "voxels.hdf5"
    before = voxels.read_bytes()
    result = _cli("index", "build", "--voxel-file", voxels, "-o", voxels)
    assert result.exit_code == 2 and "is the voxel file this command reads" in result.output
    result = _cli(
        "index", "build", "--voxel-file", voxels, "--rmsf-csv", data / "rmsf.csv",
        "--rmsf-unit", "nm", "-o", data / "rmsf.csv",
    )  # fmt: skip
    assert result.exit_code == 2 and "is the RMSF CSV this command reads" in result.output
    assert voxels.read_bytes() == before
    own = shutil.copy(index, tmp_path / "index.parquet")
    result = _cli("index", "query", "SELECT 1", "--index", own, "-o", own, "--overwrite")
    assert result.exit_code == 2 and "is the index this command reads" in result.output
    ckpt = make_checkpoint(tmp_path / "m.pt")
    result = _cli("predict", "-c", ckpt, "-i", own, "--split", "val", "-o", own, "--overwrite")
    assert result.exit_code == 2 and "is the index this command reads" in result.output
    assert read_index(own).table.num_rows > 0


# ------------------------------------------------------------------ 8. existing outputs


def test_existing_outputs_are_refused_unless_resumed_or_overwritten(small, tmp_path):
    """Reproduction: `train` with an existing --run-name and no --resume replaced best.pt,
    latest.pt and the history; `predict`/`index build` replaced their outputs silently."""
    data, index, _ = _copy(small, tmp_path)
    args = ["train", "--index", index, "--output-dir", tmp_path, "--run-name", "r", "--epochs", "1"]
    args += ["--preset", "tiny", "--workers", "0", "--set", "train.progress=false"]
    assert _cli(*args).exit_code == 0
    best = (tmp_path / "r" / "models" / "best.pt").read_bytes()
    result = _cli(*args)
    assert result.exit_code == 2
    assert "already holds a run" in result.output and "--resume" in result.output
    assert "--overwrite" in result.output
    assert (tmp_path / "r" / "models" / "best.pt").read_bytes() == best
    assert _cli(*args, "--overwrite").exit_code == 0
    assert _cli(*args, "--overwrite", "--resume").exit_code == 2  # contradictory
    # the run's config.yaml, reused, must not repeat --overwrite and delete the run it describes
    saved = tmp_path / "r" / "config.yaml"
    assert load_config(saved).train.overwrite is False and load_config(saved).train.resume is False
    best = (tmp_path / "r" / "models" / "best.pt").read_bytes()
    result = _cli("train", "--config", saved, "--set", "train.lr=0.0001")
    assert result.exit_code == 2 and "already holds a run" in result.output
    assert (tmp_path / "r" / "models" / "best.pt").read_bytes() == best
    ckpt = tmp_path / "r" / "models" / "best.pt"
    out = tmp_path / "p.parquet"
    assert _cli("predict", "-c", ckpt, "-i", index, "-o", out).exit_code == 0
    result = _cli("predict", "-c", ckpt, "-i", index, "-o", out)
    assert result.exit_code == 2 and "already exists" in result.output
    assert _cli("predict", "-c", ckpt, "-i", index, "-o", out, "--overwrite").exit_code == 0
    voxels = data / "voxels.hdf5"
    assert (
        _cli("index", "build", "--voxel-file", voxels, "-o", tmp_path / "i.parquet").exit_code == 0
    )
    result = _cli("index", "build", "--voxel-file", voxels, "-o", tmp_path / "i.parquet")
    assert result.exit_code == 2 and "--overwrite" in result.output
    plots = tmp_path / "plots"
    assert _cli("plot", "-r", tmp_path / "r", "-o", plots).exit_code == 0
    result = _cli("plot", "-r", tmp_path / "r", "-o", plots)
    assert result.exit_code == 2 and "already holds" in result.output
    # the demo owns its folder, but not a folder it did not make
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    result = _cli("demo", "--output", tmp_path / "mine", "--domains", "6", "--epochs", "1")
    assert result.exit_code == 2 and "did not write" in result.output
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


# ------------------------------------------------------------------ 9. shards build's folder


def test_shards_build_replaces_only_its_own_files(small, tmp_path):
    """Reproduction: `shards build -o DIR` deleted stray `shard-*.tar` files and an unrelated
    manifest.json in DIR."""
    _, index, _ = small
    out = tmp_path / "s"
    out.mkdir()
    (out / "shard-000009.tar").write_bytes(b"someone else's archive")
    (out / "manifest.json").write_text('{"name": "my project"}')
    with pytest.raises(ShardError, match=r"shard-000009\.tar.*move those files away") as err:
        build_shards(index, out, progress=False)
    assert "manifest.json" in str(err.value)
    assert (out / "shard-000009.tar").read_bytes() == b"someone else's archive"
    assert json.loads((out / "manifest.json").read_text()) == {"name": "my project"}
    # its own folder, rebuilt with other settings: old shards it named are replaced or removed
    own = tmp_path / "own"
    first = build_shards(index, own, domains_per_shard=1, progress=False)
    report = build_shards(index, own, domains_per_shard=3, progress=False)
    names = sorted(p.name for p in own.glob("shard-*.tar"))
    assert first.n_shards == 7 and report.n_shards == 3
    assert names == [f"shard-00000{i}.tar" for i in range(3)] and verify_shards(own).ok


# ------------------------------------------------------------------ 10. messages, not tracebacks


def test_damage_and_bad_paths_give_messages_not_tracebacks(small, tmp_path):
    """Reproduction: a flipped bit in a shard's keys.json during `train`, `-o` pointing at a
    directory, and a checkpoint without its `model` key each ended in a traceback."""
    _, index, shards = _copy(small, tmp_path)
    table = read_index(index).table
    domain = table.filter(pc.equal(table["split"], "train"))["domain"][0].as_py()
    manifest = json.loads((shards / MANIFEST_NAME).read_text())
    shard = shards / manifest["shards"][manifest["domain_shard"][domain]]["name"]
    with tarfile.open(shard) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(".keys.json"))
    data = bytearray(shard.read_bytes())
    data[member.offset_data + 5] ^= 0x01
    shard.write_bytes(bytes(data))
    result = _cli(
        "train", "--index", index, "--source", "shards", "--shards-dir", shards,
        "--output-dir", tmp_path, "--run-name", "t", "--epochs", "1", "--preset", "tiny",
        "--workers", "1", "--set", "train.progress=false",
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert f"shard {shard}, domain" in result.output and "keys.json" in result.output
    (tmp_path / "dir").mkdir()
    result = _cli("index", "build", "--voxel-file", small[0].voxel_file, "-o", tmp_path / "dir")
    assert result.exit_code == 2 and "is a directory" in result.output
    payload = torch.load(make_checkpoint(tmp_path / "c.pt"), weights_only=True)
    del payload["model"]
    torch.save(payload, tmp_path / "c.pt")
    result = _cli("predict", "-c", tmp_path / "c.pt", "-i", index, "-o", tmp_path / "p.parquet")
    assert result.exit_code == 2 and "lacks ['model']" in result.output


# ------------------------------------------------------------------ 11. one bad residue


def test_one_unreadable_residue_is_reported_and_the_rest_predicted(tmp_path):
    """Reproduction: with the HDF5 source, `predict` dropped a whole domain (to _missing.csv)
    for one residue whose dataset could not be read."""
    layout = {"d1": {"A": residues("ALA GLY SER THR VAL LEU ILE")}}
    bad = {("d1", "A", "2"): np.zeros((21, 21, 21, 5), np.float32)}  # not caught by sampling
    voxels = write_voxels(tmp_path / "v.h5", layout, bad=bad)
    index = build_index(voxels, tmp_path / "i.parquet", progress=False).index_path
    report = predict(
        make_checkpoint(tmp_path / "c.pt"),
        index,
        temperatures=[300.0],
        out_path=tmp_path / "p.parquet",
    )
    assert report.n_residues == 6
    missing = pacsv.read_csv(report.missing_path, read_options=pacsv.ReadOptions()).to_pylist()
    assert len(missing) == 1
    line = missing[0]
    assert (line["domain"], line["chain"], str(line["resid"]), line["reason"]) == (
        "d1",
        "A",
        "2",
        "unreadable",
    )
    assert "grid dtype float32" in line["detail"]


# ------------------------------------------------------------------ 12. one label rule


def test_quick_and_deep_scans_apply_the_same_label_rule(tmp_path):
    """Reproduction: one domain without `label` attributes kept 40 residues with the quick check
    and 0 with --deep; now both skip every unlabelled residue with reason no_label."""
    layout = {
        "d1": {"A": [(str(i), None) for i in range(1, 41)]},
        "d2": {"A": residues("ALA GLY")},
    }
    voxels = write_voxels(tmp_path / "v.h5", layout)
    rows = csv_rows("d1", " ".join(["ALA"] * 40)) + csv_rows("d2", "ALA GLY")
    csv = write_csv(tmp_path / "r.csv", rows)
    kept = {}
    for deep in (False, True):
        assert len(scan_voxel_file(voxels, deep=deep, progress=False).no_label) == 40
        report = build_index(
            voxels,
            tmp_path / f"{deep}.parquet",
            rmsf_csv=csv,
            rmsf_unit="nm",
            deep=deep,
            progress=False,
        )
        kept[deep] = report.residues["train"]
        assert report.skipped.get("no_label") == 40
    assert kept[False] == kept[True] == 2


# ------------------------------------------------------------------ 13. small things


def test_directory_csv_pickled_checkpoint_and_duckdb_temp_folder(demo_index, tmp_path, monkeypatch):
    """Reproduction: a directory as --rmsf-csv was "does not exist"; a checkpoint holding a
    pickled call repeated torch's advice to load it with weights_only=False; `index query` could
    read files under DuckDB's temp folder <cwd>/.tmp/."""
    voxels = write_voxels(tmp_path / "v.h5", {"d1": {"A": residues("ALA")}})
    (tmp_path / "csvdir").mkdir()
    with pytest.raises(InputError, match=r"csvdir is a directory, not a file; check --rmsf-csv"):
        build_index(voxels, tmp_path / "i.parquet", rmsf_csv=tmp_path / "csvdir", rmsf_unit="nm")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"format_version": 1, "model": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError) as err:
        load_for_inference(tmp_path / "evil.pt")
    assert "weights_only=False" not in str(err.value) and "do not load it" in str(err.value)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".tmp").mkdir()
    pa.parquet.write_table(pa.table({"secret": [42]}), tmp_path / ".tmp" / "s.parquet")
    with pytest.raises(InputError, match="file system operations are disabled"):
        run_query(demo_index, "SELECT * FROM read_parquet('.tmp/s.parquet')")
