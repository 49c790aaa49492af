"""Contract tests run against every sample source, and the HDF5 ↔ shards consistency test."""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import torch

from tests._batches import assert_same_batches
from tests._range_server import RangeServer  # a localhost server that honours Range
from voxelflex.config import load_config
from voxelflex.errors import ConfigError, ResidueReadError, SourceError
from voxelflex.frame import PACKED_BYTES
from voxelflex.index import read_index
from voxelflex.inputs.voxel_hdf5 import file_permutation
from voxelflex.packing import pack_file_grids
from voxelflex.registry import SOURCES
from voxelflex.sources import PlanConfig, build_shards, open_source, source_options
from voxelflex.sources.memory import MemorySource
from voxelflex.sources.windows import StreamSamples

pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create")


@pytest.fixture(scope="module")
def index(demo_index):
    return read_index(demo_index)


@pytest.fixture(scope="module")
def shards_dir(index, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards")
    build_shards(index, out, domains_per_shard=5, progress=False)
    return out


@pytest.fixture(scope="module")
def shards_url(shards_dir):
    """The shard folder served over HTTP on localhost."""
    with RangeServer(shards_dir) as server:
        yield server.url


# Every registered source, plus the shard source reading its folder from a URL.
@pytest.fixture(params=[*sorted(SOURCES), "shards@url"])
def open_(request, index, shards_dir, shards_url):
    name, _, at = request.param.partition("@")
    folder = shards_url if at else shards_dir

    def factory(split="train", **kw):
        return open_source(name, index, split=split, shards_dir=folder, **kw)

    return factory


def _split_rows(index, split):
    return index.table.filter(pc.equal(index.table["split"], split))


def _epoch(src, cfg, epoch=0, start=0):
    loader = src.loader(cfg, epoch, start)
    batches = list(loader)
    assert len(batches) == len(loader) == src.num_batches(cfg, epoch) - start
    return batches


class TestSourceContract:
    def test_counts_match_the_index(self, open_, index):
        rows = _split_rows(index, "train")
        src = open_("train")
        assert src.sample_count == rows.num_rows
        assert src.residue_count == rows.num_rows // 5  # demo: 5 temperatures a residue
        assert src.domain_count == len(pc.unique(rows["domain"]))

    def test_epoch_serves_every_row_once_with_typed_batches(self, open_, index):
        src = open_("train")
        cfg = PlanConfig(batch_size=32, mix_buffer_residues=64)
        ids = []
        for b in _epoch(src, cfg):
            assert b.packed.dtype == torch.uint8 and b.packed.shape == (b.n_residues, PACKED_BYTES)
            assert b.residue_index.dtype == torch.int64
            assert int(b.residue_index.max()) < b.n_residues
            assert torch.equal(torch.unique(b.residue_index), torch.arange(b.n_residues))
            for name in ("temperature", "target", "weight"):
                assert getattr(b, name).dtype == torch.float32
                assert getattr(b, name).shape == (b.n_samples,)
            assert b.row_id.dtype == torch.int64 and b.features is None  # no source serves any
            assert b.n_samples <= 32
            ids.extend(b.row_id[b.row_id >= 0].tolist())
        assert sorted(ids) == _split_rows(index, "train")["row_id"].to_pylist()

    def test_voxels_and_rows_match_the_voxel_file(self, open_, index):
        src = open_("val")
        table = index.table.to_pydict()
        with h5py.File(index.meta.voxel_file, "r") as f:
            perm = file_permutation(f)
            for b in _epoch(src, PlanConfig(batch_size=25, seed=3))[:3]:
                for i in (0, b.n_samples - 1):
                    rid = int(b.row_id[i])
                    grid = f[table["domain"][rid]][table["chain"][rid]][table["resid_str"][rid]][()]
                    expected = pack_file_grids(grid[None], perm)[0]
                    assert np.array_equal(b.packed[int(b.residue_index[i])].numpy(), expected)
                    assert b.temperature[i].item() == table["temperature"][rid]
                    assert b.target[i].item() == pytest.approx(table["target_rmsf"][rid])

    def test_unshuffled_split_is_served_in_index_order(self, open_, index):
        src = open_("test")
        ids = [
            i
            for b in _epoch(src, PlanConfig(batch_size=50, shuffle=False))
            for i in b.row_id.tolist()
        ]
        assert ids == _split_rows(index, "test")["row_id"].to_pylist()

    def test_prediction_mode_serves_each_residue_at_requested_temperatures(self, open_, index):
        src = open_("test", temperatures=[300.0, 330.0])
        assert src.prediction and src.sample_count == 2 * src.residue_count
        batches = _epoch(src, PlanConfig(batch_size=40))
        temps = torch.cat([b.temperature for b in batches])
        assert torch.equal(temps, torch.tensor([300.0, 330.0]).repeat(src.residue_count))
        assert all(bool(b.target.isnan().all()) for b in batches)
        first_rows = _split_rows(index, "test")["row_id"].to_numpy()[::5]
        ids = torch.cat([b.row_id for b in batches]).numpy()
        assert np.array_equal(ids, np.repeat(first_rows, 2))

    def test_two_ranks_get_equal_counts_and_disjoint_rows(self, open_, index):
        src = open_("train")
        ids, counts = [], []
        for rank in (0, 1):
            batches = _epoch(src, PlanConfig(batch_size=64, world_size=2, rank=rank))
            counts.append(len(batches))
            ids.extend(i for b in batches for i in b.row_id.tolist() if i >= 0)
        assert counts[0] == counts[1]
        assert sorted(ids) == _split_rows(index, "train")["row_id"].to_pylist()


def test_hdf5_and_shards_give_identical_batches(index, shards_dir):
    for cfg, epoch in (
        (PlanConfig(batch_size=48, seed=7, mix_buffer_residues=100), 2),
        (PlanConfig(batch_size=64, world_size=2, rank=1, num_workers=0), 0),
    ):
        a = _epoch(open_source("hdf5", index, split="train"), cfg, epoch)
        b = _epoch(open_source("shards", index, split="train", shards_dir=shards_dir), cfg, epoch)
        assert_same_batches(a, b)


def test_memory_source_gives_the_hdf5_sources_batches(index):
    """`predict --structure` serves frames from memory: given the file's rows (in another order
    than the index's), it serves what the HDF5 source serves, bit for bit."""
    rows = {}
    with h5py.File(index.meta.voxel_file, "r") as f:
        perm = file_permutation(f)
        for domain in pc.unique(_split_rows(index, "val")["domain"]).to_pylist():
            keys = [(c, r) for c in f[domain] for r in f[domain][c]][::-1]
            grids = np.stack([f[domain][c][r][()] for c, r in keys])
            rows[domain] = (
                np.array([c for c, _ in keys]),
                np.array([r for _, r in keys]),
                pack_file_grids(grids, perm),
            )
    cfg = PlanConfig(batch_size=48, seed=5, mix_buffer_residues=60)
    for kw in ({}, {"temperatures": [300.0, 350.0]}):
        a = _epoch(open_source("hdf5", index, split="val", **kw), cfg, 1)
        b = _epoch(MemorySource(index, rows=rows, split="val", **kw), cfg, 1)
        assert_same_batches(a, b)


def test_worker_processes_round_robin_resume_and_agree_across_sources(index, shards_dir):
    cfg = PlanConfig(batch_size=40, num_workers=2, mix_buffer_residues=80)
    full = _epoch(open_source("hdf5", index, split="train"), cfg, 1)
    shards = open_source("shards", index, split="train", shards_dir=shards_dir)
    rest = _epoch(shards, cfg, 1, start=3)
    assert [b.row_id.tolist() for b in rest] == [b.row_id.tolist() for b in full[3:]]
    assert all(torch.equal(x.packed, y.packed) for x, y in zip(full[3:], rest, strict=True))


def test_workers_live_across_epochs_and_serve_what_fresh_workers_serve(index, shards_dir):
    cfg = PlanConfig(batch_size=40, num_workers=2, mix_buffer_residues=80)
    kept = open_source("shards", index, split="train", shards_dir=shards_dir)
    before = {p.pid for p in multiprocessing.active_children()}
    epochs = [_epoch(kept, cfg, e) for e in range(3)]
    workers = {p.pid for p in multiprocessing.active_children()} - before
    assert len(workers) == 2  # the same two processes served all three epochs
    for e in (1, 2):  # an epoch abandoned half-way, then a resume, from the same workers
        it = iter(kept.loader(cfg, e))
        next(it)
        next(it)
        del it
        rest = _epoch(kept, cfg, e, start=5)
        assert_same_batches(rest, epochs[e][5:])
    assert {p.pid for p in multiprocessing.active_children()} - before == workers
    for e, batches in enumerate(epochs):
        fresh = open_source("shards", index, split="train", shards_dir=shards_dir)
        assert_same_batches(batches, _epoch(fresh, cfg, e))
        fresh.close()
    assert len({tuple(b.row_id.tolist()) for b in (ep[0] for ep in epochs)}) == 3  # reshuffled
    kept.close()
    assert not {p.pid for p in multiprocessing.active_children()} & workers


def test_workers_take_the_first_epochs_plan_from_the_main_process(index, monkeypatch):
    from voxelflex.sources import transport

    plans = multiprocessing.get_context("fork").Value("i", 0)  # counts the workers' own plans

    def counted(*args):
        with plans.get_lock():
            plans.value += 1
        return real(*args)

    real = transport.stream_plan
    monkeypatch.setattr(transport, "stream_plan", counted)  # inherited by the forked workers
    cfg = PlanConfig(batch_size=40, num_workers=2, mix_buffer_residues=80)
    src = open_source("hdf5", index, split="train")
    reference = open_source("hdf5", index, split="train")
    assert_same_batches(_epoch(src, cfg, 0, start=3), _epoch(reference, cfg, 0)[3:])
    assert plans.value == 0  # the workers were forked holding the main process's plan
    assert_same_batches(_epoch(src, cfg, 1), _epoch(reference, cfg, 1))
    assert plans.value == 4  # kept workers plan later epochs themselves (both sources')
    src.close()
    reference.close()


def test_a_kept_workers_planning_error_reaches_the_main_process_by_name(index, monkeypatch):
    from voxelflex.sources import transport

    def broken(*args):
        raise SourceError("the plan of epoch 1 failed")

    cfg = PlanConfig(batch_size=40, num_workers=1, mix_buffer_residues=80)
    src = open_source("hdf5", index, split="train")
    _epoch(src, cfg, 0)  # the worker is forked now, with the real stream_plan
    monkeypatch.setattr(transport, "stream_plan", broken)
    src.close()  # a new worker, forked with the broken planner, for epoch 0 (inherited plan)
    _epoch(src, cfg, 0)
    with pytest.raises(SourceError, match=r"^the plan of epoch 1 failed$"):
        _epoch(src, cfg, 1)  # not "DataLoader worker exited unexpectedly"
    monkeypatch.undo()
    assert len(_epoch(src, cfg, 1)) == src.num_batches(cfg, 1)  # new workers after the error
    src.close()


def test_a_batch_changed_in_place_leaves_the_next_iteration_alone(index):
    src = open_source("hdf5", index, split="train")
    loader = src.loader(PlanConfig(batch_size=200, num_workers=1, mix_buffer_residues=80), 0)
    first = list(loader)
    assert len(first) < StreamSamples.CHUNK  # one chunk: kept for the second iteration
    for b in first:
        b.target.zero_()
        b.row_id.fill_(-7)
    again = list(loader)  # the same loader: its per-sample arrays are kept by chunk
    assert all((b.row_id >= 0).any() for b in again[:3])
    assert all(b.target.abs().sum() > 0 for b in again[:3])
    src.close()


def test_workers_need_fork_and_say_so(index, monkeypatch):
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    src = open_source("hdf5", index, split="train")
    with pytest.raises(SourceError, match=r"'fork' start method.*num_workers to 0"):
        src.loader(PlanConfig(num_workers=1), 0)
    assert len(_epoch(src, PlanConfig(num_workers=0), 0)) > 0


def test_a_new_epoch_ends_the_one_being_read_and_a_new_plan_gets_new_workers(index, shards_dir):
    src = open_source("hdf5", index, split="train")
    reference = open_source("hdf5", index, split="train")
    cfg = PlanConfig(batch_size=40, num_workers=1, mix_buffer_residues=80)
    first = iter(src.loader(cfg, 0))
    next(first)
    second = iter(src.loader(cfg, 1))  # starts while epoch 0 is half read
    head = [next(second) for _ in range(6)]
    with pytest.raises(SourceError, match="one epoch at a time"):
        list(first)
    assert_same_batches(head + list(second), _epoch(reference, cfg, 1))  # unharmed by the stale one
    bigger = PlanConfig(batch_size=400, num_workers=1, mix_buffer_residues=800)
    assert_same_batches(_epoch(src, bigger, 1), _epoch(reference, bigger, 1))
    assert_same_batches(_epoch(src, cfg, 2), _epoch(reference, cfg, 2))
    src.close()
    reference.close()


def test_a_closed_source_starts_no_workers_for_an_old_loader_and_replans_a_new_table(index):
    src = open_source("hdf5", index, split="train")
    cfg = PlanConfig(batch_size=40, num_workers=1, mix_buffer_residues=80)
    old = src.loader(cfg, 0)
    src.close()
    before = multiprocessing.active_children()
    with pytest.raises(SourceError, match="workers were ended"):
        list(old)
    assert multiprocessing.active_children() == before
    planned = src.plan(cfg, 0)
    src.table = src.table.with_domain_zscored_targets()  # as training with target_norm=domain
    replanned = src.plan(cfg, 0)
    assert replanned is not planned
    target = np.concatenate([s.table.target for s in replanned.streams])
    assert np.array_equal(np.sort(target), np.sort(src.table.target))
    assert_same_batches(
        _epoch(src, cfg, 0), _epoch(src, dataclasses.replace(cfg, num_workers=0), 0)
    )
    src.close()


def test_registry_lists_valid_names_and_sources_declare_their_options(index, shards_dir):
    with pytest.raises(ConfigError, match=r"unknown sample source 'zarr' .*valid: hdf5, shards"):
        open_source("zarr", index, split="train")
    with pytest.raises(SourceError, match=r"shard folder .*config key 'data.shards_dir'"):
        open_source("shards", index, split="train")
    with pytest.raises(SourceError, match=r"unknown sample source options \['shard_dir'\]"):
        open_source("hdf5", index, split="train", shard_dir=shards_dir)
    options = source_options(load_config(None, [f"data.shards_dir={shards_dir}"]))
    assert options == {
        "shards_dir": shards_dir,
        "cache_dir": None,
        "cache_limit_gb": 0.0,
        "cache_eviction": "lru",
        "retries": 3,
    }
    assert open_source("hdf5", index, split="train", **options).sample_count > 0


def _with_renamed_domain(index, new_name):
    """The index with its first train domain renamed (as if the voxel file had lost it)."""
    table = index.table
    first = table["domain"][0].as_py()
    renamed = pc.if_else(pc.equal(table["domain"], first), new_name, table["domain"])
    table = table.set_column(table.schema.get_field_index("domain"), "domain", renamed)
    return type(index)(path=index.path, table=table, meta=index.meta), first


def test_hdf5_missing_domain_raises_or_is_skipped_and_counted(index, caplog):
    broken, _ = _with_renamed_domain(index, "00000A00")
    cfg = PlanConfig(batch_size=64, shuffle=False)
    with pytest.raises(SourceError, match=r"voxels\.hdf5: domain 00000A00 is in the index"):
        _epoch(open_source("hdf5", broken, split="train"), cfg)
    with caplog.at_level(logging.WARNING):
        batches = _epoch(open_source("hdf5", broken, split="train", on_error="skip"), cfg)
    assert "skipped domain 00000A00" in caplog.text and "1 domains skipped" in caplog.text
    ids = pa.array(torch.cat([b.row_id for b in batches]).numpy())
    weights = torch.cat([b.weight for b in batches]).numpy()
    lost = pc.equal(broken.table["domain"], "00000A00").to_numpy(zero_copy_only=False)
    lost_ids = set(broken.table["row_id"].to_numpy()[lost].tolist())
    assert {int(i) for i, w in zip(ids.to_pylist(), weights, strict=True) if w == 0} == lost_ids


def test_shards_from_another_index_are_refused(index, shards_dir):
    broken, _ = _with_renamed_domain(index, "00000A00")
    with pytest.raises(SourceError, match=r"lack 1 domains.*rebuild them"):
        open_source("shards", broken, split="train", shards_dir=shards_dir)


@pytest.mark.parametrize(
    "dtype,shape,message",
    [
        (np.float32, (21, 21, 21, 5), "grid dtype float32, expected bool"),
        (np.bool_, (21, 21, 21, 4), r"grid shape \(21, 21, 21, 4\)"),
    ],
)
def test_hdf5_reader_names_file_domain_and_residue_of_a_bad_grid(tmp_path, dtype, shape, message):
    from voxelflex.errors import FrameError
    from voxelflex.sources.hdf5 import Hdf5Reader

    path = tmp_path / "bad.hdf5"
    with h5py.File(path, "w") as f:
        f.attrs["atom_encoder"] = np.array(["C", "N", "O", "CA", "CB"], dtype=object)
        chain = f.create_group("1abcA00").create_group("A")
        chain.create_dataset("1", data=np.zeros((21, 21, 21, 5), bool))
        chain.create_dataset("2", data=np.zeros(shape, dtype))
    reader = Hdf5Reader(path)
    assert reader.read_domain("1abcA00", np.array(["A"]), np.array(["1"])).shape == (
        1,
        PACKED_BYTES,
    )
    with pytest.raises(
        ResidueReadError, match=rf"bad\.hdf5: domain 1abcA00, chain A, residue 2: {message}"
    ) as err:
        reader.read_domain("1abcA00", np.array(["A", "A"]), np.array(["1", "2"]))
    assert isinstance(err.value.first, FrameError) and list(err.value.bad) == [1]
    assert err.value.rows.shape == (2, PACKED_BYTES) and not err.value.rows[1].any()
    with pytest.raises(SourceError, match="residue 7: not in the voxel file"):
        reader.read_domain("1abcA00", np.array(["A"]), np.array(["7"]))


def test_hdf5_reader_reads_binary_uint8_grids_like_bool(tmp_path):
    """The index builder accepts 0/1 uint8 grids, so the HDF5 source must serve them too."""
    from voxelflex.errors import InputError
    from voxelflex.sources.hdf5 import Hdf5Reader

    rng = np.random.default_rng(0)
    grids = rng.random((2, 21, 21, 21, 5)) < 0.01
    paths = {}
    for dtype in (np.bool_, np.uint8):
        paths[dtype] = tmp_path / f"{np.dtype(dtype).name}.hdf5"
        with h5py.File(paths[dtype], "w") as f:
            f.attrs["atom_encoder"] = np.array(["C", "N", "O", "CB", "CA"], dtype=object)
            chain = f.create_group("1abcA00").create_group("A")
            for i, grid in enumerate(grids):
                chain.create_dataset(str(i + 1), data=grid.astype(dtype))
            chain.create_dataset("9", data=np.full((21, 21, 21, 5), 2, np.uint8))
    keys = (np.array(["A", "A"]), np.array(["1", "2"]))
    rows = {d: Hdf5Reader(p).read_domain("1abcA00", *keys) for d, p in paths.items()}
    np.testing.assert_array_equal(rows[np.uint8], rows[np.bool_])
    with pytest.raises(
        SourceError, match=r"uint8\.hdf5: domain 1abcA00, chain A, residue 9: .*above 1"
    ) as err:
        Hdf5Reader(paths[np.uint8]).read_domain("1abcA00", np.array(["A"]), np.array(["9"]))
    assert isinstance(err.value.first, InputError)


def test_hdf5_skip_policy_covers_a_bad_grid_but_not_a_file_wide_problem(tmp_path):
    from tests._index_data import residues, write_voxels
    from voxelflex.errors import FrameError
    from voxelflex.index import build_index
    from voxelflex.sources.hdf5 import Hdf5Reader

    # residue 2 of d2 is float: the index build checks first, middle and last only
    bad = {("d2", "A", "2"): np.zeros((21, 21, 21, 5), np.float32)}
    layout = {d: {"A": residues("ALA GLY SER THR VAL LEU ILE")} for d in ("d1", "d2")}
    voxels = write_voxels(tmp_path / "v.h5", layout, bad=bad)
    built = read_index(build_index(voxels, tmp_path / "i.parquet", progress=False).index_path)
    cfg = PlanConfig(batch_size=8, shuffle=False)
    src = open_source("hdf5", built, split="predict", temperatures=[300.0])
    with pytest.raises(FrameError, match=r"v\.h5: domain d2, chain A, residue 2: grid dtype"):
        _epoch(src, cfg)
    src = open_source("hdf5", built, split="predict", temperatures=[300.0], on_error="skip")
    loader = src.loader(cfg, 0)
    batches = list(loader)
    weight = torch.cat([b.weight for b in batches]).numpy()
    assert weight.tolist() == [1.0] * 8 + [0.0] + [1.0] * 5  # only the bad residue
    ((row_id, reason),) = loader.skipped.items()
    assert built.table["resid_str"][row_id].as_py() == "2" and "grid dtype float32" in reason
    write_voxels(tmp_path / "bare.h5", layout)
    with h5py.File(tmp_path / "bare.h5", "a") as f:
        del f.attrs["atom_encoder"]
    with pytest.raises(FrameError, match="atom_encoder"):
        Hdf5Reader(tmp_path / "bare.h5").prepare(["d1"])


def test_index_and_shards_travel_without_the_voxel_file(tmp_path):
    """Shards serve an index whose HDF5 is gone; the HDF5 source says what to do instead."""
    from voxelflex.demo.generate import generate_demo
    from voxelflex.errors import InputError
    from voxelflex.index import build_index

    data = generate_demo(tmp_path / "d", n_domains=3, min_residues=5, max_residues=8)
    report = build_index(data.voxel_file, tmp_path / "i.parquet", progress=False)
    build_shards(report.index_path, tmp_path / "s", progress=False)
    data.voxel_file.unlink()
    moved = read_index(report.index_path)
    cfg = PlanConfig(batch_size=64, shuffle=False)
    shards = open_source(
        "shards", moved, split="predict", shards_dir=tmp_path / "s", temperatures=[300.0]
    )
    assert sum(b.n_samples for b in shards.loader(cfg, 0)) == moved.table.num_rows
    hdf5 = open_source("hdf5", moved, split="predict", temperatures=[300.0])
    with pytest.raises(InputError, match=r"voxels\.hdf5 .* does not exist: .*--source shards"):
        list(hdf5.loader(cfg, 0))


def test_shards_serve_a_split_that_holds_part_of_a_domain(tmp_path):
    """A residue without RMSF becomes a `predict` row; its domain's shard record holds every
    residue, so the shard reader picks the split's residues by key, as the HDF5 source does."""
    import pyarrow.csv as pacsv

    from voxelflex.demo.generate import generate_demo
    from voxelflex.index import build_index

    data = generate_demo(tmp_path / "d", n_domains=4, min_residues=10, max_residues=15)
    rows = pacsv.read_csv(data.rmsf_csv)
    dom = rows["domain_id"][0].as_py()
    drop = pc.and_(pc.equal(rows["resid"], 3), pc.equal(rows["domain_id"], dom))
    pacsv.write_csv(rows.filter(pc.invert(drop)), tmp_path / "r.csv")
    build_index(
        data.voxel_file,
        tmp_path / "i.parquet",
        rmsf_csv=tmp_path / "r.csv",
        rmsf_unit="nm",
        train=data.train_split,
        val=data.val_split,
        test=data.test_split,
        progress=False,
    )
    index = read_index(tmp_path / "i.parquet")
    assert index.table.filter(pc.equal(index.table["split"], "predict")).num_rows == 1
    split = index.table.filter(pc.equal(index.table["domain"], dom))["split"][0].as_py()
    build_shards(index, tmp_path / "s", progress=False)
    cfg = PlanConfig(batch_size=64, shuffle=False)
    hdf5 = list(open_source("hdf5", index, split=split).loader(cfg, 0))
    shards = list(
        open_source("shards", index, split=split, shards_dir=tmp_path / "s").loader(cfg, 0)
    )
    assert len(hdf5) == len(shards)
    for a, b in zip(hdf5, shards, strict=True):
        assert torch.equal(a.packed, b.packed) and torch.equal(a.row_id, b.row_id)
