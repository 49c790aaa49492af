"""Shards and index at a URL: a localhost server that honours Range and injects faults.

Batches from the URL must equal those from the local folder bit for bit; a dropped connection, a
404 and bytes that changed on the server must each end in a successful retry or an error naming
the URL, never in a shorter epoch. The node-local cache must hold only whole, checked shards,
download each shard once however many processes ask, and evict as configured.
"""

from __future__ import annotations

import contextlib
import errno
import faulthandler
import gc
import hashlib
import io
import json
import multiprocessing
import os
import re
import shutil
import threading
import types
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import torch
from typer.testing import CliRunner

from tests._batches import assert_same_batches
from tests._range_server import RangeServer
from voxelflex.analysis.missing import skipped_lines
from voxelflex.analysis.predictions import read_predictions
from voxelflex.cli.main import app
from voxelflex.config import load_config
from voxelflex.demo.generate import build_demo_index, generate_demo
from voxelflex.errors import FetchError, IndexFormatError, ServerError, ShardError
from voxelflex.index import connect, read_index
from voxelflex.index.query import run_query
from voxelflex.index.skips import skip_table_path, write_skip_table
from voxelflex.remote import RemoteFolder
from voxelflex.sources import PlanConfig, build_shards, open_source
from voxelflex.sources.shards import store as store_module
from voxelflex.sources.shards.cache import CacheSettings, ShardCache
from voxelflex.sources.shards.manifest import MANIFEST_NAME, ShardManifest

pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create")


@pytest.fixture(scope="module")
def index(demo_index):
    return read_index(demo_index)


@pytest.fixture(scope="module")
def built(index, tmp_path_factory):
    out = tmp_path_factory.mktemp("url_shards")
    build_shards(index, out, domains_per_shard=6, progress=False)  # 4 shards
    return out


@pytest.fixture(scope="module")
def local_batches(index, built):
    """The local folder's batches for a worker count (the plan depends on it)."""
    done = {}

    def get(workers=0):
        if workers not in done:
            done[workers] = _batches(index, built, workers=workers)[0]
        return done[workers]

    return get


@pytest.fixture
def served(built, tmp_path):
    """A private copy of the shard folder (free to change) served on localhost."""
    folder = shutil.copytree(built, tmp_path / "served")
    with RangeServer(folder) as server:
        yield server, folder


def _batches(index, shards_dir, *, workers=0, epoch=1, **options):
    src = open_source("shards", index, split="train", shards_dir=shards_dir, **options)
    cfg = PlanConfig(batch_size=64, seed=1, num_workers=workers, mix_buffer_residues=100)
    loader = src.loader(cfg, epoch)
    batches = list(loader)
    return batches, loader.skipped


def _shard_gets(server, name):
    """GET requests for shard ``name`` (None: for any shard)."""
    return [
        r
        for r in server.requests
        if r.method == "GET" and (r.name == name if name else r.name.endswith(".tar"))
    ]


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("cached", [False, True])
def test_batches_from_a_url_equal_the_local_folder(
    index, built, local_batches, served, tmp_path, workers, cached
):
    server, _ = served
    options = {"cache_dir": tmp_path / "cache"} if cached else {}
    batches, skipped = _batches(index, server.url, workers=workers, **options)
    assert_same_batches(local_batches(workers), batches)
    assert not skipped
    manifest = ShardManifest.load(built)
    shard_bytes = sum(s.bytes for s in manifest.shards)
    fetched = server.bytes_sent - len((built / MANIFEST_NAME).read_bytes())
    if cached:
        # one download per shard for the node, whatever the number of workers
        for s in manifest.shards:
            assert len(_shard_gets(server, s.name)) == 1, s.name
        assert fetched == shard_bytes
        server.clear()
        again, _ = _batches(index, server.url, workers=workers, epoch=2, **options)
        assert [r.name for r in server.requests] == [MANIFEST_NAME]  # all from the cache
        assert len(again) == len(batches)
    else:
        # each worker fetches its own records by range request, neighbours coalesced: the
        # epoch costs the bytes of the records it needs, plus at most a tar header and its
        # padding before each (the demo's records are small, ≈4 KB, so that is ≈24 % here and
        # ≈5 % at mdCATH's ≈150 residues a domain; docs/performance.md)
        records = [
            r
            for _, r in open_source(
                "shards", index, split="train", shards_dir=built
            ).records.values()
        ]
        needed = sum(r.payload_bytes for r in records)
        assert needed <= fetched <= sum(r.end - r.start + 1536 for r in records)
        gets = [r for r in server.requests if r.method == "GET" and r.name != MANIFEST_NAME]
        assert all(r.status == 206 for r in gets)  # range requests, answered as such
        assert len(gets) < len(records)  # neighbouring records coalesced into one request


def test_the_manifest_is_fetched_and_checked_before_any_shard(index, served):
    server, folder = served
    data = json.loads((folder / MANIFEST_NAME).read_text())
    data["source"]["voxel_fingerprint"]["key_hash"] = "0" * 64
    (folder / MANIFEST_NAME).write_text(json.dumps(data))
    with pytest.raises(ShardError, match=rf"{server.url}: the shards were built from .*stale"):
        open_source("shards", index, split="train", shards_dir=server.url)
    assert {r.name for r in server.requests} == {MANIFEST_NAME}  # no shard was read
    (folder / MANIFEST_NAME).unlink()
    with pytest.raises(ShardError, match=rf"{server.url}/manifest.json: not found.*upload"):
        open_source("shards", index, split="train", shards_dir=server.url)


@pytest.mark.parametrize("cached", [False, True])
@pytest.mark.parametrize("fault", ["drop", "corrupt"])
def test_a_fault_once_is_retried_and_the_batches_are_unchanged(
    index, local_batches, served, tmp_path, fault, cached
):
    server, _ = served
    server.inject("shard-000001.tar", fault)
    options = {"cache_dir": tmp_path / "cache"} if cached else {}
    batches, skipped = _batches(index, server.url, **options)
    assert_same_batches(local_batches(), batches)
    assert not skipped
    assert len(_shard_gets(server, "shard-000001.tar")) == 2  # the bad reply, then a good one
    if cached:  # only whole, checked shards in the cache
        manifest = ShardManifest.load(served[1])
        kept = sorted(p.name for p in (tmp_path / "cache").glob("*.tar"))
        assert kept == sorted(f"{s.sha256}.tar" for s in manifest.shards)
        for path in (tmp_path / "cache").glob("*.tar"):
            assert hashlib.sha256(path.read_bytes()).hexdigest() == path.stem


@pytest.mark.parametrize("cached", [False, True])
@pytest.mark.parametrize(
    "fault,message",
    [
        ("drop", "failed 2 times"),
        ("404", "not found"),
        ("corrupt", "failed 2 times, the last time: "),
    ],
)
def test_a_lasting_fault_names_the_url_and_never_shortens_the_epoch(
    index, served, tmp_path, fault, message, cached
):
    server, folder = served
    server.inject("shard-000002.tar", fault, times=None)
    options = {"retries": 1}
    if cached:
        options["cache_dir"] = tmp_path / "cache"
    url = f"{server.url}/shard-000002.tar"
    with pytest.raises(ShardError, match=rf"shard {url}, domain \S+: .*{message}"):
        _batches(index, server.url, **options)
    # under the skip policy every row is still served: the shard's rows with weight 0, each
    # reported with the URL
    batches, skipped = _batches(index, server.url, **options, on_error="skip")
    row_id = torch.cat([b.row_id for b in batches])
    weight = torch.cat([b.weight for b in batches])
    train = index.table.filter(pc.equal(index.table["split"], "train"))
    assert sorted(row_id[row_id >= 0].tolist()) == train["row_id"].to_pylist()
    lost = {r.domain for r in ShardManifest.load(folder).shards[2].records}
    in_lost = pc.is_in(train["domain"], pc.cast(list(lost), "string")).to_numpy(
        zero_copy_only=False
    )
    zero = set(row_id[(weight == 0) & (row_id >= 0)].tolist())
    assert zero == set(train["row_id"].to_numpy()[in_lost].tolist())
    assert skipped and all(url in why for why in skipped.values())
    assert all("check the server and the network" in why for why in skipped.values())
    if cached:  # nothing partial or corrupt was kept: the other shards, whole and checked
        bad = ShardManifest.load(folder).shards[2].sha256
        kept = list((tmp_path / "cache").glob("*.tar"))
        assert len(kept) == 3 and bad not in {p.stem for p in kept}
        for path in kept:
            assert hashlib.sha256(path.read_bytes()).hexdigest() == path.stem
        assert not list((tmp_path / "cache" / ".tmp").iterdir())


@pytest.mark.parametrize("workers", [0, 2])
def test_a_server_that_ignores_range_stops_every_policy(
    index, local_batches, served, tmp_path, workers
):
    """Reproduction: a server answering range requests with the whole file (HTTP 200, as
    ``python -m http.server`` does) made ``predict`` (on_error="skip") drop every domain, exit 0."""
    server, _ = served
    shards = ShardManifest.load(served[1]).shards
    for on_error in ("raise", "skip"):
        server.clear()
        for s in shards:
            server.inject(s.name, "ignore_range", times=None)
        with pytest.raises(
            ServerError, match=rf"{server.url}/shard-\S+\.tar: asked for bytes"
        ) as err:
            _batches(index, server.url, workers=workers, on_error=on_error)
        assert "does not answer Range requests (HTTP 206)" in str(err.value)
        assert "loader.shard_cache_dir" in str(err.value) and "verify" not in str(err.value)
        gets = _shard_gets(server, None)
        assert gets and {r.status for r in gets} == {200}
        assert len({(r.name, r.range) for r in gets}) == len(gets)  # refused at once, no retry
    # the cache downloads whole shards: such a server serves it correctly
    batches, skipped = _batches(index, server.url, workers=workers, cache_dir=tmp_path / "c")
    assert_same_batches(local_batches(workers), batches)
    assert not skipped


def _a_train_record(index, folder):
    """(shard entry, record) of a domain of the train split (what ``_batches`` reads)."""
    src = open_source("shards", index, split="train", shards_dir=folder)
    name, record = next(iter(src.records.values()))
    return src.shards[name], record


def _flip_a_record_byte(path, record):
    """Flip one byte inside ``record``'s voxel member of the shard file at ``path``."""
    data = bytearray(path.read_bytes())
    data[record.vox_offset + record.vox_bytes // 2] ^= 0xFF
    path.write_bytes(bytes(data))  # the same size: the cache's size check passes


@pytest.mark.parametrize("workers", [0, 2])
def test_a_damaged_cached_shard_is_downloaded_again(
    index, local_batches, served, tmp_path, caplog, workers
):
    """Reproduction: a byte flipped in a cached shard failed every later run with a checksum
    error naming the URL (whose shard was intact); predict dropped its domains and exited 0."""
    server, folder = served
    shard, record = _a_train_record(index, folder)
    cache = tmp_path / "cache"
    _batches(index, server.url, workers=workers, cache_dir=cache)
    cached = cache / f"{shard.sha256}.tar"
    _flip_a_record_byte(cached, record)
    server.clear()
    with caplog.at_level("WARNING", logger="voxelflex.sources.shards.store"):
        batches, skipped = _batches(index, server.url, workers=workers, cache_dir=cache)
    assert_same_batches(local_batches(workers), batches)
    assert not skipped
    assert len(_shard_gets(server, shard.name)) == 1  # downloaded again, once
    assert [r.name for r in _shard_gets(server, None)] == [shard.name]
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == shard.sha256
    if not workers:  # workers log in their own processes
        assert f"the cached copy {cached} is damaged" in caplog.text
        assert f"{server.url}/{shard.name}" in caplog.text


@contextlib.contextmanager
def _read_only(folder, monkeypatch):
    """``folder`` and everything in it read-only, as a shared cache another user filled (for
    root, whom chmod does not stop, opening a file there for writing is refused instead)."""
    if os.geteuid() == 0:
        real_open = os.open

        def refuse(path, flags, *args, **kwargs):
            if flags & (os.O_WRONLY | os.O_RDWR) and Path(path).is_relative_to(folder):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return real_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", refuse)
        yield
        return
    paths = [folder, *folder.rglob("*")]
    for path in paths:
        path.chmod(path.stat().st_mode & ~0o222)
    try:
        yield
    finally:
        for path in paths:
            path.chmod(path.stat().st_mode | 0o200)


def test_discard_damaged_removes_only_a_damaged_copy(tmp_path):
    cache = ShardCache(CacheSettings(tmp_path))
    sha256 = hashlib.sha256(b"shard").hexdigest()
    assert not cache.discard_damaged(sha256)  # not cached
    cache.path(sha256).write_bytes(b"shard")
    assert not cache.discard_damaged(sha256) and cache.path(sha256).exists()  # intact
    cache.path(sha256).write_bytes(b"shart")
    assert cache.discard_damaged(sha256) and not cache.path(sha256).exists()


@pytest.mark.parametrize("on_error", ["skip", "raise"])
def test_a_damaged_copy_in_a_read_only_cache_fails_only_its_domain(
    index, served, tmp_path, caplog, monkeypatch, on_error
):
    """Reproduction: removing a damaged copy from a read-only cache raised PermissionError
    instead of the record's error, so predict (on_error="skip") stopped instead of skipping."""
    server, folder = served
    shard, record = _a_train_record(index, folder)
    cache = tmp_path / "cache"
    _batches(index, server.url, cache_dir=cache)
    cached = cache / f"{shard.sha256}.tar"
    _flip_a_record_byte(cached, record)
    message = rf"shard {server.url}/{shard.name}, domain {record.domain}: checksum mismatch"
    with (
        _read_only(cache, monkeypatch),
        caplog.at_level("WARNING", logger="voxelflex.sources.shards.store"),
    ):
        if on_error == "raise":
            with pytest.raises(ShardError, match=message):
                _batches(index, server.url, cache_dir=cache)
        else:
            batches, skipped = _batches(index, server.url, cache_dir=cache, on_error="skip")
            assert batches and skipped
            assert all(re.match(message, why) for why in skipped.values())
    assert f"the cached copy {cached} is damaged" in caplog.text
    assert f"the cache {cache} is not writable" in caplog.text
    assert cached.exists()


def test_an_intact_cached_shard_is_hashed_once_however_many_records_fail(
    index, served, tmp_path, monkeypatch
):
    """Records that fail their checks in an intact cached copy (the manifest lists wrong
    CRC-32s) hash the copy once, not once per record."""
    server, folder = served
    src = open_source("shards", index, split="train", shards_dir=folder)
    shard = next(iter(src.records.values()))[0]
    wrong = [d for d, (name, _) in src.records.items() if name == shard][:2]
    assert len(wrong) == 2
    data = json.loads((folder / MANIFEST_NAME).read_text())
    for listed in (r for s in data["shards"] for r in s["records"] if r["domain"] in wrong):
        listed["crc32"] ^= 1
    (folder / MANIFEST_NAME).write_text(json.dumps(data))
    hashed = []

    def sha256(data):
        hashed.append(len(data))
        return hashlib.sha256(data)

    monkeypatch.setattr(store_module, "hashlib", types.SimpleNamespace(sha256=sha256))
    _, skipped = _batches(index, server.url, cache_dir=tmp_path / "cache", on_error="skip")
    assert {re.search(r"domain (\S+):", why)[1] for why in skipped.values()} == set(wrong)
    assert hashed == [src.shards[shard].bytes]


@pytest.mark.parametrize("damage", ["shard", "manifest"])
def test_a_shard_damaged_at_the_url_still_fails_with_a_cache(index, served, tmp_path, damage):
    server, folder = served
    shard, record = _a_train_record(index, folder)
    cache = tmp_path / "cache"
    _batches(index, server.url, cache_dir=cache)
    url = f"{server.url}/{shard.name}"
    if damage == "shard":  # the cached copy and the one at the URL: the download fails its SHA
        _flip_a_record_byte(cache / f"{shard.sha256}.tar", record)
        _flip_a_record_byte(folder / shard.name, record)
        message = rf"shard {url}, domain \S+: {url}: download failed .*sha256.*shards verify"
    else:  # the manifest lists a wrong CRC-32: the intact cached copy is not downloaded again
        data = json.loads((folder / MANIFEST_NAME).read_text())
        (listed,) = (
            r for s in data["shards"] for r in s["records"] if r["domain"] == record.domain
        )
        listed["crc32"] ^= 1
        message = rf"shard {url}, domain {record.domain}: checksum mismatch.*rebuild"
        (folder / MANIFEST_NAME).write_text(json.dumps(data))
    server.clear()
    with pytest.raises(ShardError, match=message):
        _batches(index, server.url, cache_dir=cache, retries=0)
    assert len(_shard_gets(server, shard.name)) == (damage == "shard")


def test_a_kept_worker_retries_what_failed_in_an_epoch_it_did_not_finish(
    index, local_batches, tmp_path
):
    folder = tmp_path / "one_domain_a_shard"
    build_shards(index, folder, domains_per_shard=1, progress=False)
    with RangeServer(folder) as server:
        src = open_source("shards", index, split="train", shards_dir=server.url, retries=0)
        cfg = PlanConfig(batch_size=64, seed=1, num_workers=1, mix_buffer_residues=100)
        last = str(src.plan(cfg, 1).streams[0].table.domains[-1])  # the worker reads it last
        server.inject(src.records[last][0], "404", times=None)
        first = iter(src.loader(cfg, 1))  # the worker fetches its records up front: one fails
        next(first)
        del first  # abandoned long before that domain came up
        server.clear()  # the server is back
        batches = list(src.loader(cfg, 1))  # the same worker: the failure is not remembered
        src.close()
    assert_same_batches(local_batches(1), batches)


def test_a_reader_keeps_only_the_records_of_the_epoch_it_prepares(index, served):
    server, _ = served
    src = open_source("shards", index, split="train", shards_dir=server.url)
    domains = src.table.domains.tolist()
    reader = src.make_reader()  # what a worker holds from epoch to epoch
    reader.prepare(domains[:8])  # an epoch abandoned before it read any of them
    assert set(reader._spans) == set(domains[:8])
    reader.prepare(domains[6:])
    assert set(reader._spans) == set(domains[6:])  # 6 and 7 reused, 0-5 let go


def test_each_epoch_of_a_kept_reader_uses_its_cached_shards_again(index, served, tmp_path):
    server, _ = served
    src = open_source(
        "shards", index, split="train", shards_dir=server.url, cache_dir=tmp_path / "cache"
    )
    t = src.table
    domains = t.domains.tolist()
    reader = src.make_reader()  # what a worker holds from epoch to epoch
    for epoch in range(2):
        reader.prepare(domains)  # an epoch starts
        for i, d in enumerate(domains):
            r0, r1 = t.domain_res_offsets[i], t.domain_res_offsets[i + 1]
            reader.read_domain(d, t.chains[r0:r1], t.resids[r0:r1])
        stats = reader.store.cache_stats
        # each epoch opens each shard through the cache once (downloads first, then hits): an
        # LRU use per epoch, as when workers were new each epoch
        assert (stats.downloads, stats.hits) == (4, 4 * epoch)


def _fetch_all(url, folder, names, order_seed, out):
    manifest = ShardManifest.load(folder)
    entries = {s.name: s for s in manifest.shards}
    cache = ShardCache(CacheSettings(out))
    remote = RemoteFolder(url)
    digests = []
    for name in sorted(names, key=lambda n: hash((n, order_seed))):
        e = entries[name]
        with cache.open(name, e.bytes, e.sha256, remote) as fh:
            digests.append(hashlib.sha256(fh.read()).hexdigest() == e.sha256)
    os._exit(0 if all(digests) else 1)


def test_concurrent_processes_download_each_shard_once(served, tmp_path):
    server, folder = served
    names = [s.name for s in ShardManifest.load(folder).shards]
    ctx = multiprocessing.get_context("fork")
    procs = [
        ctx.Process(target=_fetch_all, args=(server.url, folder, names, i, tmp_path / "c"))
        for i in range(4)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * 4
    for name in names:
        assert len(_shard_gets(server, name)) == 1, name


@pytest.mark.parametrize("eviction", ["lru", "none"])
def test_the_cache_keeps_to_its_limit(served, tmp_path, eviction):
    server, folder = served
    shards = ShardManifest.load(folder).shards[:3]
    limit = shards[0].bytes + shards[1].bytes + shards[2].bytes // 2  # room for two
    cache = ShardCache(CacheSettings(tmp_path / "c", limit_bytes=limit, eviction=eviction))
    remote = RemoteFolder(server.url)
    for i, s in enumerate(shards[:2]):
        with cache.open(s.name, s.bytes, s.sha256, remote):
            pass
        os.utime(cache.path(s.sha256), (1000 + i, 1000 + i))  # shard 0 used longest ago
    third = cache.open(shards[2].name, shards[2].bytes, shards[2].sha256, remote)
    kept = {p.stem for p in (tmp_path / "c").glob("*.tar")}
    if eviction == "lru":
        assert third is not None
        third.close()
        assert kept == {shards[1].sha256, shards[2].sha256}
        assert cache.stats.evicted == 1
    else:  # keep what fits; the third is read from the URL
        assert third is None and cache.stats.bypassed == 1
        assert kept == {shards[0].sha256, shards[1].sha256}


def test_a_full_cache_disk_reads_the_shards_from_the_url(
    index, local_batches, served, tmp_path, monkeypatch
):
    """Reproduction: a full disk under the cache failed each download four times, every one a
    whole transfer, then every domain of the shard, with an error telling to check the server.
    The shards are now read from the URL, each downloaded at most once."""
    from voxelflex.sources.shards import cache as cache_module

    class FullDisk(io.BytesIO):
        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def open_on_a_full_disk(path, mode="r", *args, **kwargs):
        if "w" in mode:
            open(path, mode).close()  # the file is made, then nothing fits
            return FullDisk()
        return open(path, mode, *args, **kwargs)

    monkeypatch.setattr(cache_module, "open", open_on_a_full_disk, raising=False)
    server, _ = served
    batches, skipped = _batches(index, server.url, cache_dir=tmp_path / "c")
    assert_same_batches(local_batches(), batches)
    assert not skipped
    whole = [r for r in _shard_gets(server, None) if r.range is None]
    assert len(whole) == 1  # the first download, once; then records by range request
    assert not list((tmp_path / "c").rglob("*.tar")) and not os.listdir(tmp_path / "c" / ".tmp")


def test_cached_or_bypassed_shards_give_the_same_batches(index, local_batches, served, tmp_path):
    server, folder = served
    biggest = max(s.bytes for s in ShardManifest.load(folder).shards)
    options = {"cache_dir": tmp_path / "c", "cache_limit_gb": 1.5 * biggest / 1e9}
    for eviction in ("none", "lru"):
        batches, _ = _batches(index, server.url, cache_eviction=eviction, **options)
        assert_same_batches(local_batches(), batches)


def test_verify_at_a_url(served):
    server, folder = served
    runner = CliRunner()
    result = runner.invoke(app, ["shards", "verify", server.url])
    assert result.exit_code == 0 and "4 shards, 24 domains, all intact" in result.output
    path = folder / "shard-000003.tar"
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF
    path.write_bytes(bytes(data))
    result = runner.invoke(app, ["shards", "verify", server.url])
    assert result.exit_code == 2
    assert f"shard {server.url}/shard-000003.tar: sha256" in result.output


def test_the_index_at_a_url(demo_index, index, tmp_path):
    folder = tmp_path / "idx"
    folder.mkdir()
    shutil.copy(demo_index, folder / "index.parquet")
    with RangeServer(folder) as server:
        url = f"{server.url}/index.parquet"
        remote = read_index(url)
        assert remote.path == url and remote.meta == index.meta
        assert remote.table.equals(index.table)
        sql = "SELECT split, count(*) AS n FROM samples GROUP BY 1 ORDER BY 1"
        assert run_query(url, sql).equals(run_query(demo_index, sql))
        con = connect(url)
        with pytest.raises(Exception, match="disabled"):  # DuckDB reads no file for a URL index
            con.sql(f"SELECT * FROM read_parquet('{demo_index}')").fetchall()
        result = CliRunner().invoke(app, ["index", "stats", "--index", url])
        assert result.exit_code == 0, result.output
        with pytest.raises(IndexFormatError, match=rf"index {server.url}/nope.parquet: not found"):
            read_index(f"{server.url}/nope.parquet")


def test_an_index_url_with_a_query_keeps_it_for_its_skip_table(demo_index, tmp_path):
    # a query with "/" (a signature, a folder token) was cut at its last "/": the index read
    # the wrong object and the skip table's URL named none; the skip table also lost the query
    folder = tmp_path / "idx"
    folder.mkdir()
    shutil.copy(demo_index, folder / "index.parquet")
    line = {"kind": "domain", "domain": "d1", "domain_id": "d1", "chain": None, "resid": None}
    write_skip_table(
        pa.Table.from_pylist([{**line, "reason": "no_residues", "detail": "x"}]),
        folder / "index.skipped.csv",
    )
    with RangeServer(folder) as server:  # it answers the path and ignores the query
        url = f"{server.url}/index.parquet?X-Amz-Signature=ab/cd%2F&X-Amz-Expires=60"
        assert skip_table_path(url) == (
            f"{server.url}/index.skipped.csv?X-Amz-Signature=ab/cd%2F&X-Amz-Expires=60"
        )
        assert read_index(url).table.num_rows == read_index(demo_index).table.num_rows
        lines = skipped_lines(url, ["d1"])
        assert lines["reason"].to_pylist() == ["not_indexed"]
        assert lines["detail"].to_pylist() == ["no_residues: x"]


def test_config_keeps_urls_and_names_missing_back_ends(tmp_path):
    cfg = load_config(overrides=["data.shards_dir=s3://bucket/shards", "data.index=idx.parquet"])
    assert cfg.data.shards_dir == "s3://bucket/shards"
    assert cfg.data.index == tmp_path.cwd() / "idx.parquet"
    with pytest.raises(FetchError, match=r"nosuch://x: cannot open nosuch:// URLs"):
        RemoteFolder("nosuch://x").fetch("y")


def _child_fetches(folder, crash_report):
    with open(crash_report, "w") as report:
        faulthandler.enable(report, all_threads=True)  # a crash says where, in the failure
        folder.fetch(MANIFEST_NAME)  # the inherited folder makes its own file system here
        gc.collect()
    os._exit(0)


def test_a_forked_child_does_not_break_the_parents_connections(built, tmp_path):
    """Reproduction: fsspec's HTTP file system, collected in a forked child, closed the parent's
    kept-alive sockets in the epoll instance both share; the parent's next request then hung
    for aiohttp's 5-minute timeout."""
    crash_report = tmp_path / "child_crash.txt"
    with RangeServer(built) as server:
        parent = RemoteFolder(server.url)
        parent.fetch(MANIFEST_NAME)  # leaves a kept-alive connection in the parent's pool
        # The child's gc.collect() is for what it inherits from this test; garbage earlier tests
        # left in pytest's process (once, in CI, the child died of SIGSEGV) is collected here.
        gc.collect()
        child = multiprocessing.get_context("fork").Process(
            target=_child_fetches, args=(parent, crash_report)
        )
        child.start()
        child.join(30)
        assert child.exitcode == 0, crash_report.read_text() if crash_report.exists() else ""
        done = []
        thread = threading.Thread(
            target=lambda: done.append(parent.fetch(MANIFEST_NAME)), daemon=True
        )
        thread.start()
        thread.join(20)
        assert done, "the parent's request hung after a forked child exited"


def test_index_build_refuses_a_url_as_its_output(demo_data, tmp_path, monkeypatch):
    """data.index from a config (--output URL: tests/test_outputs.py, with every output)."""
    monkeypatch.chdir(tmp_path)  # a URL taken for a relative path would be written here
    args = ["index", "build", "--voxel-file", str(demo_data.voxel_file)]
    result = CliRunner().invoke(app, [*args, "--set", "data.index=https://h/i.pq"])
    text = " ".join(result.output.replace("│", " ").split())
    assert result.exit_code == 2, text
    assert "https://h/i.pq is a URL, but index build's output (--output, data.index)" in text, text


def test_credentials_in_a_url_stay_out_of_messages_and_logs(
    index, local_batches, served, tmp_path, caplog
):
    """Reproduction: with ``https://user:token@host/shards`` the token was in every retry
    warning, every error and every reason of the missing report."""
    server, _ = served
    url = server.url.replace("http://", "http://alice:s3cret@")
    batches, skipped = _batches(index, url)  # the credentials still reach the server
    assert_same_batches(local_batches(), batches)
    server.inject("shard-000002.tar", "drop", times=None)
    with caplog.at_level("WARNING", logger="voxelflex"):
        _, skipped = _batches(index, url, retries=1, on_error="skip")
        with pytest.raises(ShardError) as err:
            _batches(index, url, retries=1)
        with pytest.raises(IndexFormatError) as index_err:
            read_index(f"{url}/nope.parquet")
    texts = [*skipped.values(), str(err.value), str(index_err.value), caplog.text]
    assert skipped and "retrying" in caplog.text
    for text in texts:
        assert "s3cret" not in text and "alice" not in text, text
    assert all("http://***@127.0.0.1" in text for text in texts)


def test_a_folder_url_with_a_token_query_reads_every_file_with_it(
    index, built, local_batches, tmp_path, caplog
):
    """A folder URL with a query (a shared-access token) put the file name inside the query
    (``...?sig=x/manifest.json``); the query is now added to each file's URL and kept out of
    messages like user information."""
    token = "sv=2026&sig=s3cret%2Fa/b"
    with RangeServer(built, query=token) as server:
        url = f"{server.url}?{token}"
        batches, skipped = _batches(index, url)
        assert_same_batches(local_batches(), batches)
        assert not skipped
        assert {r.status for r in server.requests} <= {200, 206}
        server.inject("shard-000002.tar", "drop", times=None)
        with caplog.at_level("WARNING", logger="voxelflex"):
            _, skipped = _batches(index, url, retries=1, on_error="skip")
    texts = [*skipped.values(), caplog.text]
    assert skipped and "retrying" in caplog.text
    for text in texts:
        assert "s3cret" not in text and "sig=" not in text, text


def test_credentials_in_a_url_stay_out_of_a_commands_log_and_its_errors(demo_index, tmp_path):
    """Reproduction: ``index query -o`` logged the index URL as given into ``n.log`` (logs were
    redacted only where a message called redact_url), and ``shards build --index URL`` refused
    it naming the URL with its credentials."""
    folder = tmp_path / "idx"
    folder.mkdir()
    shutil.copy(demo_index, folder / "index.parquet")
    runner = CliRunner()
    with RangeServer(folder, query="sig=t0ken") as server:
        url = server.url.replace("http://", "http://alice:s3cret@") + "/index.parquet?sig=t0ken"
        sql = "SELECT count(*) AS n FROM samples"
        result = runner.invoke(
            app, ["index", "query", sql, "-i", url, "-o", str(tmp_path / "n.csv")]
        )
        assert result.exit_code == 0, result.output
        refused = runner.invoke(app, ["shards", "build", "--index", url, "-o", str(tmp_path / "s")])
    log = (tmp_path / "n.log").read_text()
    assert "query over http://***@" in log and "index.parquet?***" in log, log
    assert refused.exit_code == 2 and "http://***@" in refused.output
    for text in (log, result.output, refused.output):
        assert "alice" not in text and "s3cret" not in text and "t0ken" not in text, text


def test_credentials_in_a_url_stay_out_of_every_file_but_the_runs_config(tmp_path):
    """Reproduction: a URL's ``user:token@`` and ``?sig=`` were stored as given in the
    checkpoints' config, the predictions' metadata (Parquet footer, ``.csv.json``), a shard
    manifest built from a URL index and ``index query``'s log, files that are shared with
    results and bug reports. Only the run's ``config.yaml`` keeps the URL as given: ``-c
    config.yaml --resume`` reads its data from it (documented in docs/training.md)."""
    paths = generate_demo(tmp_path / "demo", n_domains=6, seed=3)
    served = tmp_path / "served"
    build_demo_index(paths, served / "index.parquet")
    build_shards(read_index(served / "index.parquet"), served / "shards", progress=False)
    secrets = (b"alice", b"s3cret", b"t0ken")
    with RangeServer(served, query="sig=t0ken") as server:
        base = server.url.replace("http://", "http://alice:s3cret@")
        index, shards = f"{base}/index.parquet?sig=t0ken", f"{base}/shards?sig=t0ken"
        run, out = tmp_path / "runs" / "r", tmp_path / "out"
        build_shards(read_index(index), out / "shards", progress=False)  # the CLI takes a path
        sets = [
            *("model.preset=tiny", "model.name=multipath", "loader.batch_size=256"),
            *("loader.num_workers=0", "train.progress=false", "train.plot=false"),
            *("loader.source=shards", f"data.shards_dir={shards}", "train.epochs=1"),
        ]
        runner = CliRunner()

        def ok(*args):
            result = runner.invoke(app, [str(a) for a in args])
            assert result.exit_code == 0, result.output
            return result

        options = [a for s in sets for a in ("--set", s)]
        trained = ok(
            "train", "--index", index, "--output-dir", run.parent, "--run-name", "r", *options
        )
        assert "holds data.index and data.shards_dir as given" in trained.output
        ok("train", "-c", run / "config.yaml", "--resume", "--set", "train.epochs=2")
        ok("predict", "-c", run / "models" / "best.pt", "--index", index, "--split", "test")
        ok("predict", "-c", run / "models" / "best.pt", "--index", index, "-o", out / "val.csv")
        predictions = run / "metrics" / "predictions_test.parquet"
        result = runner.invoke(app, ["evaluate", "-p", str(predictions), "--no-importance"])
        assert result.exit_code == 2  # the index as recorded has lost its credentials
        assert "--index" in result.output and "http://***@" in result.output, result.output
        ok("evaluate", "-p", predictions, "--index", index, "--no-importance")
        for wrong in (["-c", run / "models" / "best.pt", "--domain", "nosuch"], ["-c", index]):
            result = runner.invoke(app, ["predict", "--index", index, *map(str, wrong)])
            assert result.exit_code == 2 and "***@" in result.output, result.output
            assert not [s for s in secrets if s.decode() in result.output], result.output
        ok("index", "query", "SELECT count(*) FROM samples", "--index", index, "-o", out / "n.csv")
    recorded = index.replace("alice:s3cret@", "***@").replace("?sig=t0ken", "?***")
    assert read_predictions(predictions)[1].index == recorded
    written = [p for p in (run, out) for p in p.rglob("*") if p.is_file()]
    assert {"best.pt", "val.csv.json", "manifest.json", "n.log"} <= {p.name for p in written}
    for path in written:
        if path != run / "config.yaml":
            data = path.read_bytes()
            assert not [s for s in secrets if s in data], path
    assert index in (run / "config.yaml").read_text()  # kept as given, documented


def test_every_voxelflex_error_redacts_the_urls_in_its_message():
    """Library callers read ``str(exc)``: a message that quoted a URL as given (predict's 'have
    no temperatures', importance's 'no rows with targets') carried its token to them."""
    import pickle

    from voxelflex.errors import ConfigError, DomainRefused

    url = "https://alice:s3cret@host/run/index.parquet?sig=t0ken/x&e=1"
    err = ConfigError(f"split(s) ['test'] of {url} have no temperatures")
    assert (
        str(err)
        == "split(s) ['test'] of https://***@host/run/index.parquet?*** have no temperatures"
    )
    assert str(pickle.loads(pickle.dumps(err))) == str(err)  # across a worker's pipe
    refused = DomainRefused("not_mdcath", f"{url}: no group")
    assert refused.detail == str(refused) == "https://***@host/run/index.parquet?***: no group"
    assert str(ConfigError("is it? yes, 3 < 4")) == "is it? yes, 3 < 4"  # prose untouched
