"""Shard build, format, resume, verification and corruption handling."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import tarfile
import zlib
from dataclasses import replace

import pyarrow.compute as pc
import pytest
import torch
import webdataset as wds
from typer.testing import CliRunner

from tests._range_server import RangeServer
from voxelflex.cli.main import app
from voxelflex.errors import ShardError
from voxelflex.index import build_index, read_index
from voxelflex.sources import PlanConfig, build_shards, open_source, verify_shards
from voxelflex.sources.shards.manifest import MANIFEST_NAME, ShardManifest


@pytest.fixture(scope="module")
def index(demo_index):
    return read_index(demo_index)


@pytest.fixture(scope="module")
def built(index, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards_template")
    build_shards(index, out, domains_per_shard=10, workers=2, progress=False)
    return out


@pytest.fixture
def shards(built, tmp_path):
    """A private copy of the shard folder, free to damage."""
    return shutil.copytree(built, tmp_path / "shards")


def _epoch(index, shards, domain, num_workers=0, **kw):
    """Serve the split holding ``domain`` from the shards, in one pass."""
    rows = index.table.filter(pc.equal(index.table["domain"], domain))
    split = rows["split"][0].as_py()
    src = open_source("shards", index, split=split, shards_dir=shards, **kw)
    cfg = PlanConfig(batch_size=64, shuffle=False, num_workers=num_workers)
    return list(src.loader(cfg, 0))


def _member_offset(path, name):
    with tarfile.open(path) as tar:
        info = tar.getmember(name)
        return info.offset_data, info.size


def test_shards_are_plain_tar_and_webdataset_readable(built, index):
    manifest = ShardManifest.load(built)
    assert manifest.n_domains == len(pc.unique(index.table["domain"]))
    assert [s.name for s in manifest.shards] == [
        "shard-000000.tar",
        "shard-000001.tar",
        "shard-000002.tar",
    ]
    with tarfile.open(built / "shard-000000.tar") as tar:
        names = tar.getnames()
    record = manifest.shards[0].records[0]
    assert names[:2] == [f"{record.key}.keys.json", f"{record.key}.vox.zst"]
    assert all(name.count(".") == 2 for name in names)
    # a plain WebDataset pipeline over the brace pattern sees one sample per domain
    url = str(built / "shard-{000000..000002}.tar")
    samples = list(wds.WebDataset(url, shardshuffle=False))
    assert len(samples) == manifest.n_domains
    keys = json.loads(samples[0]["keys.json"])
    assert keys["domain"] == record.domain and len(keys["resids"]) == record.n_residues
    # domains are shuffled across shards, not in sorted order
    order = [r.domain for s in manifest.shards for r in s.records]
    assert order != sorted(order)
    # the manifest's member offsets are where any tar reader finds the members' data
    for shard in manifest.shards:
        with tarfile.open(built / shard.name) as tar:
            at = {m.name: (m.offset_data, m.size) for m in tar.getmembers()}
        for r in shard.records:
            assert at[f"{r.key}.vox.zst"] == (r.vox_offset, r.vox_bytes)
            assert at[f"{r.key}.keys.json"] == (r.keys_offset, r.keys_bytes)


def test_rerun_after_interruption_rebuilds_only_missing_shards(shards, index):
    before = ShardManifest.load(shards)
    (shards / MANIFEST_NAME).unlink()
    (shards / "shard-000001.tar").unlink()
    report = build_shards(index, shards, domains_per_shard=10, workers=1, progress=False)
    assert (report.built, report.reused) == (1, 2)
    assert ShardManifest.load(shards).to_json() == before.to_json()
    # killed after a shard's build record was written, before the shard was renamed into
    # place: the record names the shard, whose old content is then replaced
    (shards / MANIFEST_NAME).unlink()
    (shards / "shard-000001.tar").write_bytes(b"an older shard-000001.tar")
    report = build_shards(index, shards, domains_per_shard=10, workers=1, progress=False)
    assert (report.built, report.reused) == (1, 2)
    assert ShardManifest.load(shards).to_json() == before.to_json()
    # other settings invalidate every shard
    report = build_shards(index, shards, domains_per_shard=12, progress=False)
    assert (report.built, report.reused, report.n_shards) == (2, 0, 2)
    assert not (shards / "shard-000002.tar").exists()


def test_rerun_refuses_shard_files_no_build_record_names(shards, index, caplog):
    """Reproduction: with an earlier build's .build/ present, a foreign shard-000050.tar in the
    folder was taken as a leftover of the build and deleted."""
    (shards / "shard-000050.tar").write_bytes(b"someone else's archive")
    (shards / "notes.txt").write_text("keep me")
    with pytest.raises(ShardError, match=r"move those files away") as err:
        build_shards(index, shards, domains_per_shard=12, progress=False)
    assert "['notes.txt', 'shard-000050.tar']" in str(err.value)
    assert (shards / "shard-000050.tar").read_bytes() == b"someone else's archive"
    assert (shards / "notes.txt").read_text() == "keep me"
    # moved away: the build's own shards from other settings are still replaced or removed
    (shards / "shard-000050.tar").unlink()
    (shards / "notes.txt").unlink()
    with caplog.at_level(logging.INFO, logger="voxelflex.sources.shards.writer"):
        report = build_shards(index, shards, domains_per_shard=12, progress=False)
    assert (report.built, report.reused, report.n_shards) == (2, 0, 2)
    assert sorted(p.name for p in shards.glob("shard-*.tar")) == [
        "shard-000000.tar",
        "shard-000001.tar",
    ]
    assert "shard-000002.tar, left over from an earlier build" in caplog.text
    # a copy without .build/: the shards its manifest names stay the build's once the
    # manifest is removed (an interrupted build resumes, not refuses)
    shutil.rmtree(shards / ".build")
    (shards / "shard-000001.tar").unlink()
    report = build_shards(index, shards, domains_per_shard=12, progress=False)
    assert (report.built, report.reused) == (2, 0)


def test_rerun_rebuilds_shards_whose_voxel_file_or_residues_changed(shards, index):
    manifest = ShardManifest.load(shards)
    fingerprints = dict(index.meta.fingerprints)
    fingerprints["voxel_file"] = {**fingerprints["voxel_file"], "mtime_ns": 1}
    touched = replace(index, meta=replace(index.meta, fingerprints=fingerprints))
    report = build_shards(touched, shards, domains_per_shard=10, progress=False)
    assert (report.built, report.reused) == (3, 0)
    # one residue fewer in one domain: only the shard holding that domain is rebuilt
    domain = manifest.shards[1].records[0].domain
    t = touched.table
    first = pc.index(t["domain"], domain).as_py()
    drop = pc.and_(pc.equal(t["domain"], domain), pc.equal(t["resid_str"], t["resid_str"][first]))
    fewer = replace(touched, table=t.filter(pc.invert(drop)))
    report = build_shards(fewer, shards, domains_per_shard=10, progress=False)
    assert (report.built, report.reused) == (1, 2)


def test_a_voxel_file_rewritten_during_the_build_is_refused(tmp_path, monkeypatch):
    """Reproduction: shards read from a voxel file rewritten during the build were recorded
    under the fingerprint the index holds, so a run whose index travelled without the voxel
    file (the check is then skipped) served voxels of either version without a word."""
    from voxelflex.demo.generate import build_demo_index, generate_demo
    from voxelflex.sources.shards import writer

    paths = generate_demo(tmp_path / "demo", n_domains=3, seed=1)
    build_demo_index(paths, tmp_path / "index.parquet")
    index = read_index(tmp_path / "index.parquet")
    encode = writer._encode_domain

    def encode_then_rewrite(task):
        st = os.stat(task[0])
        os.utime(task[0], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # rewritten
        return encode(task)

    monkeypatch.setattr(writer, "_encode_domain", encode_then_rewrite)
    out = tmp_path / "shards"
    with pytest.raises(ShardError, match=r"changed while the shards were built"):
        build_shards(index, out, domains_per_shard=2, progress=False)
    assert not (out / MANIFEST_NAME).exists() and not list(out.glob("shard-*.tar"))
    monkeypatch.setattr(writer, "_encode_domain", encode)
    build_demo_index(paths, tmp_path / "index.parquet", overwrite=True)  # the voxels as now
    index = read_index(tmp_path / "index.parquet")
    assert build_shards(index, out, domains_per_shard=2, progress=False).built == 2


def test_manifest_version_and_presence_are_checked(shards, index):
    path = shards / MANIFEST_NAME
    data = json.loads(path.read_text())
    data["format_version"] = 99
    path.write_text(json.dumps(data))
    with pytest.raises(ShardError, match="version 99 unsupported, expected 3"):
        open_source("shards", index, split="train", shards_dir=shards)
    # a format-2 folder (no member offsets) is refused with the fix
    data["format_version"] = 2
    for shard in data["shards"]:
        for record in shard["records"]:
            del record["vox_offset"], record["keys_offset"]
    path.write_text(json.dumps(data))
    with pytest.raises(ShardError, match=r"version 2 unsupported, expected 3; rebuild with `vox"):
        open_source("shards", index, split="train", shards_dir=shards)
    path.unlink()
    with pytest.raises(ShardError, match=r"no manifest\.json"):
        verify_shards(shards)
    # not a folder at all: said so (it read as an interrupted build)
    with pytest.raises(ShardError, match=r"nope does not exist; give the shard folder"):
        verify_shards(shards / "nope")
    with pytest.raises(ShardError, match=r"shard-000001\.tar is a file, not the shard folder"):
        verify_shards(shards / "shard-000001.tar")


def test_truncated_shard_names_shard_and_domain(shards, index):
    manifest = ShardManifest.load(shards)
    path = shards / "shard-000001.tar"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    last = manifest.shards[1].records[-1]
    with pytest.raises(ShardError) as err:
        _epoch(index, shards, last.domain)
    named = re.search(r"shard-000001\.tar, domain (\S+):", str(err.value))
    assert named and named.group(1) in {r.domain for r in manifest.shards[1].records[1:]}
    assert "manifest says" in str(err.value)


@pytest.mark.parametrize("num_workers", [0, 1])
def test_flipped_bytes_raise_checksum_mismatch(shards, index, num_workers):
    record = ShardManifest.load(shards).shards[0].records[2]
    path = shards / "shard-000000.tar"
    offset, size = _member_offset(path, f"{record.key}.vox.zst")
    data = bytearray(path.read_bytes())
    data[offset + size // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(
        ShardError, match=f"^shard .*shard-000000.tar, domain {record.domain}: checksum mismatch"
    ) as err:
        _epoch(index, shards, record.domain, num_workers=num_workers)
    assert "Traceback" not in str(err.value)  # a worker's error reads like the main process's


def test_bad_zstd_frame_is_reported(shards, index):
    manifest = ShardManifest.load(shards)
    record = manifest.shards[2].records[0]
    path = shards / "shard-000002.tar"
    offset, size = _member_offset(path, f"{record.key}.vox.zst")
    data = bytearray(path.read_bytes())
    data[offset : offset + size] = b"\x00" * size
    path.write_bytes(bytes(data))
    # make the checksum agree so the zstd decoder is the one that notices
    text = json.loads((shards / MANIFEST_NAME).read_text())
    text["shards"][2]["records"][0]["crc32"] = zlib.crc32(b"\x00" * size)
    (shards / MANIFEST_NAME).write_text(json.dumps(text))
    with pytest.raises(ShardError, match=f"domain {record.domain}: bad zstd frame"):
        _epoch(index, shards, record.domain)


def _drop_member(path, member):
    with tarfile.open(path) as tar:
        kept = [(m, tar.extractfile(m).read()) for m in tar.getmembers() if m.name != member]
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for info, data in kept:
            tar.addfile(info, io.BytesIO(data))


def test_missing_member_is_reported_and_verify_lists_every_problem(shards, index):
    manifest = ShardManifest.load(shards)
    record = manifest.shards[1].records[3]
    _drop_member(shards / "shard-000001.tar", f"{record.key}.keys.json")
    # the reader reads at the manifest's offsets: what is there now fails the checksums
    with pytest.raises(ShardError, match=r"shard-000001\.tar, domain \S+: checksum mismatch"):
        _epoch(index, shards, record.domain)
    (shards / "shard-000002.tar").write_bytes(b"")  # a second, different problem
    report = verify_shards(shards)
    assert not report.ok
    text = "\n".join(report.problems)
    # verify reads the tar headers and names the member
    assert f"shard-000001.tar, domain {record.domain}: member {record.key}.keys.json is" in text
    assert "shard-000002.tar" in text and "manifest says" in text
    # every domain of the empty shard is named
    for r in manifest.shards[2].records:
        assert f"shard-000002.tar, domain {r.domain}: the shard ends" in text
    result = CliRunner().invoke(app, ["shards", "verify", str(shards)])
    assert result.exit_code == 2, result.exc_info
    assert "problems in 3 shards" in result.output and record.domain in result.output


@pytest.mark.parametrize("num_workers", [0, 2])
def test_skip_policy_serves_the_rest_and_counts(shards, index, caplog, num_workers):
    record = ShardManifest.load(shards).shards[0].records[1]
    path = shards / "shard-000000.tar"
    offset, _ = _member_offset(path, f"{record.key}.vox.zst")
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        batches = _epoch(index, shards, record.domain, num_workers, on_error="skip")
    if num_workers == 0:  # worker processes log to their own stderr
        assert f"skipped domain {record.domain}" in caplog.text
    weight = torch.cat([b.weight for b in batches])
    row_id = torch.cat([b.row_id for b in batches])
    skipped = set(row_id[(weight == 0) & (row_id >= 0)].tolist())
    rows = index.table.filter(pc.equal(index.table["domain"], record.domain))
    assert skipped == set(rows["row_id"].to_pylist())


def test_verify_with_an_index_of_another_voxel_file_names_both(shards, index, tmp_path):
    """Reproduction: intact shards checked against the wrong index ended in "1 problems in 1
    shards (listed above); rebuild …", as if the shards were damaged."""
    voxels = tmp_path / "other.hdf5"
    shutil.copy(index.meta.voxel_file, voxels)  # another file: another mtime
    other = build_index(voxels, tmp_path / "other.parquet", progress=False).index_path
    report = verify_shards(shards, index=read_index(other))
    assert not report.ok and report.problems == ()
    result = CliRunner().invoke(app, ["shards", "verify", str(shards), "--index", str(other)])
    assert result.exit_code == 2
    text = " ".join(result.output.split())  # unwrapped
    assert "3 shards, 24 domains, all intact, but the shards were built from voxel file" in text
    assert index.meta.voxel_file in text and str(voxels) in text
    assert "either the index or the shard folder is the wrong one" in text
    assert str(index.path) in text and "problems" not in text


def test_cli_build_and_verify(index, tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli_shards"
    args = ["shards", "build", "--index", str(index.path), "--output", str(out)]
    result = runner.invoke(app, [*args, "--domains-per-shard", "30", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "1 shard (1 built, 0 reused), 24 domains" in result.output
    result = runner.invoke(app, ["shards", "verify", str(out)])
    assert result.exit_code == 0 and "all intact" in result.output


def _edit_records(folder, edit):
    """Apply ``edit(records)`` to the records of shard 1 in the manifest (a list of dicts)."""
    path = folder / MANIFEST_NAME
    data = json.loads(path.read_text())
    edit(data["shards"][1]["records"])
    path.write_text(json.dumps(data))


OFFSET_FIELDS = ("vox_offset", "vox_bytes", "crc32", "keys_offset", "keys_bytes", "keys_crc32")


@pytest.mark.parametrize("at_url", [False, True])
def test_a_wrong_offset_in_the_manifest_is_caught_and_named(shards, index, at_url):
    """A record whose manifest offset is wrong is never decoded as another domain."""
    records = ShardManifest.load(shards).shards[1].records
    a, b = records[2], records[3]
    # (1) a's offsets point 512 bytes on (into a's own vox member): its checksums fail
    _edit_records(shards, lambda rs: rs[2].update(vox_offset=a.vox_offset + 512))
    with RangeServer(shards) as server:
        folder = server.url if at_url else shards
        where = f"{folder}/shard-000001.tar" if at_url else "shard-000001.tar"
        with pytest.raises(ShardError, match=rf"{where}, domain {a.domain}: (checksum|.*crc32)"):
            _domains(index, folder, a.domain)
        if not at_url:  # verify compares the tar headers with the manifest and names the member
            text = "\n".join(verify_shards(shards).problems)
            assert f"domain {a.domain}: member {a.key}.vox.zst is at offset {a.vox_offset}" in text
        # (2) a and b swapped: each points to the other's record, sizes and checksums included,
        # so every checksum passes; the domain named inside the record does not
        _edit_records(shards, lambda rs: rs[2].update(vox_offset=a.vox_offset))

        def swap(rs):
            for name in OFFSET_FIELDS:
                rs[2][name], rs[3][name] = rs[3][name], rs[2][name]

        _edit_records(shards, swap)
        with pytest.raises(ShardError, match=rf"domain {a.domain}: record {a.key} holds domain"):
            _domains(index, folder, a.domain)
        # under the skip policy both domains are reported, and no row gets the other's voxels
        for r in (a, b):
            batches, skipped = _domains(index, folder, r.domain, on_error="skip")
            assert all(w == 0 for batch in batches for w in batch.weight[batch.row_id >= 0])
            assert skipped and all(f"domain {r.domain}: record" in w for w in skipped.values())
    # (3) a's entry a copy of b's: the two records would overlap, refused when the manifest loads
    _edit_records(shards, lambda rs: rs[3].update({n: rs[2][n] for n in OFFSET_FIELDS}))
    with pytest.raises(ShardError, match=rf"domains {a.domain} and {b.domain} overlap|overlap"):
        open_source("shards", index, split="train", shards_dir=shards)


def _domains(index, folder, *domains, **kw):
    """Batches (and skipped residues) of ``domains``, served as a prediction."""
    from voxelflex.analysis.predict import restrict_index

    sub = restrict_index(index, list(domains))
    split = sub.table["split"][0].as_py()
    sub = replace(sub, table=sub.table.filter(pc.equal(sub.table["split"], split)))
    src = open_source(
        "shards", sub, split=split, shards_dir=folder, temperatures=[300.0], retries=1, **kw
    )
    loader = src.loader(PlanConfig(batch_size=64, shuffle=False), 0)
    return list(loader), loader.skipped
