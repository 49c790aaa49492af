"""The epoch plan and the shared batching, on a synthetic in-memory index (no file I/O)."""

from __future__ import annotations

import pickle
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest

from voxelflex.errors import ConfigError, IndexFormatError, SourceError
from voxelflex.frame import PACKED_BYTES
from voxelflex.sources import transport
from voxelflex.sources.base import DomainReader, SampleSource
from voxelflex.sources.plan import PlanConfig, make_plan, stream_plan
from voxelflex.sources.table import SplitTable
from voxelflex.sources.windows import StreamSamples, WindowBuffers

pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create")


def _index_table(n_domains=13, seed=0, split="train") -> pa.Table:
    """Domains of 3-17 residues; most residues have 5 temperatures, some 2 or 3."""
    rng = np.random.default_rng(seed)
    cols = {k: [] for k in ("split", "domain", "chain", "resid_str", "resnum", "icode")}
    temps, targets = [], []
    for d in range(n_domains):
        for r in range(int(rng.integers(3, 18))):
            n_t = int(rng.choice([2, 3, 5, 5, 5]))
            for t in range(n_t):
                cols["split"].append(split)
                cols["domain"].append(f"{d:02d}abcA00")
                cols["chain"].append("A")
                cols["resid_str"].append(str(r + 1))
                cols["resnum"].append(r + 1)
                cols["icode"].append("")
                temps.append(320.0 + 30 * t)
                targets.append(rng.random())
    n = len(temps)
    return pa.table(
        {
            "row_id": pa.array(np.arange(n), pa.int64()),
            **{k: v for k, v in cols.items() if k != "resnum"},
            "resnum": pa.array(cols["resnum"], pa.int32()),
            "temperature": pa.array(temps, pa.float32()),
            "target_rmsf": pa.array(targets, pa.float32()),
        }
    )


class _TagReader(DomainReader):
    """Rows whose first 4 bytes spell the residue number and whose 5th is the domain number."""

    def read_domain(self, domain, chains, resids):
        rows = np.zeros((len(resids), PACKED_BYTES), dtype=np.uint8)
        rows[:, :4] = np.asarray(resids.astype(np.int32)).view(np.uint8).reshape(-1, 4)
        rows[:, 4] = int(domain[:2])
        return rows


class _MemSource(SampleSource):
    name = "mem"

    def make_reader(self):
        return _TagReader()


@pytest.fixture(scope="module")
def table():
    return _index_table()


@pytest.fixture(scope="module")
def source(table):
    return _MemSource(SimpleNamespace(table=table, path="mem"), split="train")


def _rank_batches(src, cfg, epoch=0, start=0, monkeypatch=None):
    """What the loader on rank ``cfg.rank`` yields, with its workers simulated in this process.

    The epoch is published to the pool as the loader does; each worker's generator learns its
    id on its first ``next`` (while that id is patched in); their messages are taken
    round-robin, skipping finished workers, as a DataLoader does, and turned into batches by the
    loader (which copies rows out of the ring as it goes).
    """
    loader = src.loader(cfg, epoch, start)
    if cfg.num_workers == 0:
        out = list(loader)
    else:
        generation = loader.pool.publish(loader.plan, start)
        gens, heads = [], []
        for j in range(cfg.num_workers):
            monkeypatch.setattr(transport, "get_worker_info", lambda j=j: SimpleNamespace(id=j))
            gens.append(iter(loader.pool.dataset))
            heads.append(next(gens[-1], None))
        monkeypatch.undo()

        def round_robin():
            active = list(range(len(gens)))
            while active:
                for j in list(active):
                    message, heads[j] = heads[j] or next(gens[j], None), None
                    if message is None:
                        active.remove(j)
                    else:
                        yield message

        out = list(loader.from_messages(round_robin(), generation))
    assert len(out) == len(loader)
    return out


@pytest.mark.parametrize("world_size,num_workers", [(1, 0), (1, 1), (1, 2), (1, 3), (2, 2)])
def test_every_row_served_exactly_once_with_equal_batch_counts(
    source, table, world_size, num_workers, monkeypatch
):
    seen, counts = [], []
    for rank in range(world_size):
        cfg = PlanConfig(batch_size=16, num_workers=num_workers, world_size=world_size, rank=rank)
        batches = _rank_batches(source, cfg, monkeypatch=monkeypatch)
        counts.append(len(batches))
        assert len(batches) == source.num_batches(cfg, 0)
        for b in batches:
            assert b.n_samples <= 16
            real = b.row_id >= 0
            assert bool((b.weight[real] == 1).all()) and bool((b.weight[~real] == 0).all())
            seen.extend(b.row_id[real].tolist())
    assert len(set(counts)) == 1
    assert sorted(seen) == table["row_id"].to_pylist()


@pytest.mark.parametrize("world_size,num_workers", [(1, 0), (1, 3), (2, 2), (3, 1)])
@pytest.mark.parametrize("accumulation", [1, 2, 3])
def test_optimizer_steps_count_the_groups_that_hold_data_on_some_rank(
    world_size, num_workers, accumulation, monkeypatch
):
    # the trainer steps once per group of `accumulation` batches with data on any rank; the
    # schedule was sized by all batches, padding included, and so ended above its floor.
    # 4 uneven domains in small batches: streams of 16, 10 and 8 batches on 3 workers
    src = _MemSource(
        SimpleNamespace(table=_index_table(n_domains=4, seed=2), path="m"), split="train"
    )
    cfgs = [
        PlanConfig(batch_size=8, num_workers=num_workers, world_size=world_size, rank=r)
        for r in range(world_size)
    ]
    data = [
        [bool((b.weight > 0).any()) for b in _rank_batches(src, cfg, monkeypatch=monkeypatch)]
        for cfg in cfgs
    ]
    any_rank = np.array(data).any(axis=0)
    groups = [any_rank[g : g + accumulation].any() for g in range(0, len(any_rank), accumulation)]
    assert {src.plan(cfg, 0).optimizer_steps(accumulation) for cfg in cfgs} == {sum(groups)}
    if (world_size, num_workers, accumulation) == (1, 3, 1):
        assert (sum(groups), len(groups)) == (34, 48)  # 14 batches of padding only


@pytest.mark.parametrize("chunk", [StreamSamples.CHUNK, 3])  # 3: batches cross chunk edges
def test_batches_carry_the_right_residue_and_row_data(source, table, monkeypatch, chunk):
    cfg = PlanConfig(batch_size=20, num_workers=2, mix_buffer_residues=40)
    rows = table.to_pydict()
    with pytest.MonkeyPatch.context() as m:  # _rank_batches undoes the fixture's patches
        m.setattr(StreamSamples, "CHUNK", chunk)
        batches = _rank_batches(source, cfg, monkeypatch=monkeypatch)
    for b in batches:
        if b.row_id[0] < 0:
            continue
        tags = b.packed.numpy()[b.residue_index.numpy()]
        resnum = tags[:, :4].copy().view(np.int32).ravel()
        for i, rid in enumerate(b.row_id.tolist()):
            assert resnum[i] == rows["resnum"][rid]
            assert tags[i, 4] == int(rows["domain"][rid][:2])
            assert b.temperature[i].item() == rows["temperature"][rid]
            assert b.target[i].item() == pytest.approx(rows["target_rmsf"][rid])
        # a residue's temperature rows stay together in one batch
        res = list(zip(tags[:, 4].tolist(), resnum.tolist(), strict=True))
        assert len(set(res)) == b.n_residues


@pytest.mark.parametrize("num_workers", [1, 2, 3])
def test_resume_at_batch_k_gives_the_remaining_batches(source, num_workers, monkeypatch):
    cfg = PlanConfig(batch_size=16, num_workers=num_workers, mix_buffer_residues=30)
    full = _rank_batches(source, cfg, epoch=3, monkeypatch=monkeypatch)
    for k in (1, 5, len(full) - 1, len(full)):
        rest = _rank_batches(source, cfg, epoch=3, start=k, monkeypatch=monkeypatch)
        assert len(rest) == len(full) - k
        for a, b in zip(full[k:], rest, strict=True):
            assert a.row_id.tolist() == b.row_id.tolist()
            assert bool((a.packed == b.packed).all())


def test_plan_is_deterministic_and_changes_with_epoch(table):
    t = SplitTable.from_arrow(table, "train")
    cfg = PlanConfig(batch_size=16, num_workers=2, mix_buffer_residues=30)
    a, b, c = make_plan(t, cfg, 0), make_plan(t, cfg, 0), make_plan(t, cfg, 1)
    for sa, sb in zip(a.streams, b.streams, strict=True):
        assert np.array_equal(sa.table.row_id, sb.table.row_id)
        assert np.array_equal(sa.order, sb.order)
    assert not all(
        np.array_equal(sa.table.domains, sc.table.domains)
        for sa, sc in zip(a.streams, c.streams, strict=True)
    )


@pytest.mark.parametrize("world_size,rank,num_workers", [(1, 0, 0), (1, 0, 3), (2, 1, 2)])
def test_a_worker_plans_its_own_stream_as_the_main_process_does(
    table, world_size, rank, num_workers
):
    t = SplitTable.from_arrow(table, "train")
    cfg = PlanConfig(
        batch_size=16,
        num_workers=num_workers,
        world_size=world_size,
        rank=rank,
        mix_buffer_residues=30,
    )
    for epoch in (0, 4):
        plan = make_plan(t, cfg, epoch)
        for s, expected in enumerate(plan.streams):
            alone = stream_plan(t, cfg, epoch, s)
            assert np.array_equal(alone.table.row_id, expected.table.row_id)
            for name in ("order", "window_offsets", "batch_offsets"):
                assert np.array_equal(getattr(alone, name), getattr(expected, name)), name


def test_mixing_window_spans_domains_and_shuffles_residues(table):
    t = SplitTable.from_arrow(table, "train")
    plan = make_plan(t, PlanConfig(batch_size=64, mix_buffer_residues=10_000), 0)
    (stream,) = plan.streams
    assert len(stream.window_offsets) == 2  # one window over all domains
    first = stream.order[stream.batch_offsets[0] : stream.batch_offsets[1]]
    domains = np.searchsorted(stream.table.domain_res_offsets, first, side="right") - 1
    assert len(set(domains.tolist())) > 2


def test_no_shuffle_serves_index_order(source, table, monkeypatch):
    cfg = PlanConfig(batch_size=16, shuffle=False)
    ids = [
        i for b in _rank_batches(source, cfg, monkeypatch=monkeypatch) for i in b.row_id.tolist()
    ]
    assert ids == table["row_id"].to_pylist()


def test_no_shuffle_still_cuts_windows_so_memory_stays_bounded(source, table, monkeypatch):
    cfg = PlanConfig(batch_size=16, shuffle=False, mix_buffer_residues=20)
    (stream,) = source.plan(cfg, 0).streams
    sizes = np.diff(stream.window_res_offsets)
    assert len(sizes) > 3 and (sizes[:-1] >= 20).all() and (sizes[:-1] < 20 + 17).all()
    batches = _rank_batches(source, cfg, monkeypatch=monkeypatch)
    ids = np.concatenate([b.row_id.numpy() for b in batches])
    assert ids.tolist() == table["row_id"].to_pylist()
    # grids gathered across window boundaries still belong to their rows
    tags = np.concatenate([b.packed.numpy()[b.residue_index.numpy(), :5] for b in batches])
    resnum = tags[:, :4].copy().view(np.int32).ravel()
    assert resnum.tolist() == table["resnum"].to_pylist()
    assert tags[:, 4].tolist() == [int(d[:2]) for d in table["domain"].to_pylist()]


def test_prediction_mode_one_row_per_residue_and_temperature(table, monkeypatch):
    src = _MemSource(
        SimpleNamespace(table=table, path="mem"), split="train", temperatures=[300.0, 350.0, 400.0]
    )
    n_res = src.residue_count
    assert src.sample_count == 3 * n_res
    batches = _rank_batches(src, PlanConfig(batch_size=30, shuffle=True), monkeypatch=monkeypatch)
    temps = np.concatenate([b.temperature.numpy() for b in batches])
    assert np.array_equal(temps, np.tile(np.float32([300, 350, 400]), n_res))
    assert all(bool(b.target.isnan().all()) for b in batches)
    first_rows = SplitTable.from_arrow(table, "train").res_row_offsets[:-1]
    ids = np.concatenate([b.row_id.numpy() for b in batches])
    assert np.array_equal(ids, np.repeat(first_rows, 3))


def test_more_streams_than_domains_pads_with_weight_zero(monkeypatch):
    small = _index_table(n_domains=2)
    src = _MemSource(SimpleNamespace(table=small, path="mem"), split="train")
    cfg = PlanConfig(batch_size=1000, num_workers=3)
    batches = _rank_batches(src, cfg, monkeypatch=monkeypatch)
    assert len(batches) == 3
    pad = [b for b in batches if b.row_id[0] == -1]
    assert len(pad) == 1 and pad[0].weight.item() == 0 and np.isfinite(pad[0].temperature.item())


def test_config_and_input_errors(table):
    t = SplitTable.from_arrow(table, "train")
    with pytest.raises(ConfigError, match=r"raise the batch size \(`loader.batch_size`"):
        make_plan(t, PlanConfig(batch_size=4), 0)
    with pytest.raises(ConfigError, match="rank"):
        PlanConfig(world_size=2, rank=2)
    with pytest.raises(ConfigError, match="num_workers"):
        PlanConfig(num_workers=-1)
    with pytest.raises(SourceError, match="start_batch"):
        make_plan(t, PlanConfig(batch_size=16), 0).worker_streams(10_000)
    with pytest.raises(SourceError, match="no rows in split 'val'"):
        SplitTable.from_arrow(table, "val")
    with pytest.raises(SourceError, match="valid splits"):
        SplitTable.from_arrow(table, "training")
    no_temps = table.set_column(
        table.schema.get_field_index("temperature"),
        "temperature",
        pa.array(np.full(table.num_rows, np.nan, np.float32)),
    )
    with pytest.raises(SourceError, match="pass the temperatures"):
        SplitTable.from_arrow(no_temps, "train")
    assert SplitTable.from_arrow(no_temps, "train", temperatures=[300.0]).n_samples > 0
    shuffled = table.take(pa.array(np.random.default_rng(0).permutation(table.num_rows)))
    with pytest.raises(IndexFormatError, match="not grouped by domain"):
        SplitTable.from_arrow(shuffled, "train")
    # rows reordered within each domain (row_id renumbered: read_index's check passes): each
    # run of a residue's rows became a residue of its own, predicted and written several times
    by_temperature = table.sort_by([("domain", "ascending"), ("temperature", "ascending")])
    for mode in (None, [300.0]):
        with pytest.raises(IndexFormatError, match=r"residue 00abcA00 A 1 .* not sorted"):
            SplitTable.from_arrow(by_temperature, "train", temperatures=mode)


def test_window_buffers_are_reused_and_stay_with_their_process():
    buffers = WindowBuffers()
    a = buffers.take(10, cap=12)
    assert a.shape == (15, PACKED_BYTES) and a.dtype == np.uint8  # 12 rows + 25 % headroom
    a[:] = 7
    buffers.give(a)
    assert buffers.take(15, cap=12) is a  # reused: no fresh pages for every window
    buffers.give(a)
    b = buffers.take(20, cap=16)  # the spare is too small: dropped, a bigger one made
    assert b is not a and b.shape == (25, PACKED_BYTES)
    buffers.give(b)
    copy = pickle.loads(pickle.dumps(buffers))  # a copy (a pickled source) makes its own
    assert copy.take(5, cap=5) is not b
