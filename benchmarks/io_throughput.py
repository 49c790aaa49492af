"""I/O benchmark: samples/s and bytes/sample of every way voxels reach the model.

Generates (once; ``--reuse`` keeps it) a demo dataset in aposteriori layout with realistic
sparsity (≈9 true voxels a channel, ≈4.5 KB a residue on disk), default 500 domains × 100-200
residues × 5 temperatures, builds its index and shards, then measures on the train split, for
0, 1 and 2 DataLoader workers (samples = residue × temperature rows served):

(a) the earlier system: per-sample h5py ``ds[()]``, float32 cast, transpose, default collate;
(b) the HDF5 source; (c) the shard source (packed batches); (d) (c) plus CPU unpack to float32;
(e) the ceiling: zstd-decoding the same compressed domain records, already in RAM, to packed
rows (one process); and the shard source reading the shard folder from a localhost HTTP server
(``tests/_range_server.py``, one thread per connection): (f) without a cache, (g) with an empty
node-local cache (first epoch), (h) with that cache filled (next epoch).

Each measurement of (a)-(e) runs in a new Python process, for at most ``--seconds`` (from loader
creation, so worker start-up and shard scanning count); the headline figure is that first
epoch. (b)-(d) then serve up to ``--epochs`` epochs back to back from the same source, as
training does (workers kept from epoch to epoch), reported as "later epochs" when the first
one finished; such a fast path is measured ``--repeats`` times with a new source, and its
headline is the median first epoch (single epochs of 0.2-0.4 s scatter by ±30 % on two shared
cores). The (c)/(e) ratios are paired: before each repeat, (e) is measured again in the same
process (``PAIRED_S``) and the repeat's epochs are divided by it, so the machine's speed
drifting between two measurements (another job starting) does not move the ratio; the ratio
to the table's separate (e) is reported too (``_unpaired``). The HTTP paths always
serve a whole epoch, and report the bytes the server sent for shards per epoch against the
shard folder's bytes and against the bytes of the records the epoch needs. Also reports the
per-worker metadata memory at 3.3 M index rows and, with ``--datasets N``, the cost of h5py
lookups and reads in a file of N residue datasets. Prints a table and writes
``io_throughput.json`` and ``io_throughput.png`` to ``--out``.

    python benchmarks/io_throughput.py --out bench_out/io [--reuse] [--datasets 300000]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
import zstandard
from _voxel_file import write_voxel_file  # benchmarks/ (scripts run from there)
from torch.utils.data import DataLoader, Dataset

from voxelflex.atomic import atomic_write_json, atomic_write_text
from voxelflex.demo.generate import build_demo_index, generate_demo
from voxelflex.frame import PACKED_BYTES
from voxelflex.index import read_index
from voxelflex.inputs.voxel_hdf5 import file_permutation
from voxelflex.packing import unpack_torch
from voxelflex.sources import PlanConfig, build_shards, open_source
from voxelflex.sources.base import DomainReader, SampleSource
from voxelflex.sources.shards.manifest import MANIFEST_NAME

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for tests/
from _args import count  # benchmarks/ (scripts run from there)

from tests._range_server import RangeServer  # the range-capable server of the tests

PATHS = {
    "a": "earlier system (h5py per sample, float32)",
    "b": "HDF5 source (packed batches)",
    "c": "shard source (packed batches)",
    "d": "shard source + CPU unpack to float32",
    "e": "ceiling: zstd decode in RAM",
    "f": "shards at a localhost URL, no cache",
    "g": "shards at a localhost URL, empty cache",
    "h": "shards at a localhost URL, filled cache",
}
HTTP_PATHS = "fgh"
PAIRED_S = 0.3  # seconds of (e) measured before each repeat of (b)-(d), for paired ratios


def prepare_data(out: Path, n_domains: int, reuse: bool, workers: int) -> dict:
    """Demo data, index and shards under ``out/data`` (with ``reuse``, shards are rebuilt only
    when missing or of an older format: ``shards build`` resumes)."""
    data = out / "data"
    index_path, shards = data / "index.parquet", data / "shards"
    if not (reuse and index_path.is_file()):
        t0 = time.perf_counter()
        demo = generate_demo(data, n_domains=n_domains, min_residues=100, max_residues=200, seed=1)
        t1 = time.perf_counter()
        build_demo_index(demo, index_path)
        print(f"data: generated in {t1 - t0:.0f} s, index {time.perf_counter() - t1:.1f} s")
    report = build_shards(index_path, shards, workers=workers, progress=False)
    print(
        f"shards: {report.n_shards} ({report.built} built, {report.reused} reused) in "
        f"{report.seconds:.1f} s, {workers} workers"
    )
    return _load(index_path, shards)


def _load(index_path: Path, shards: Path) -> dict:
    index = read_index(index_path)
    return {
        "index": index,
        "index_path": index_path,
        "shards": shards,
        "voxel_file": Path(index.meta.voxel_file),
    }


def in_new_process(fn, data: dict, *args, torch_threads: int):
    """``fn(data, *args)`` in a new Python process (spawned), which reads the index itself.

    Each path is measured in a process of its own: served in the process that had run the
    earlier paths, a one-worker first epoch of (c) ran 10-30 % slower (a forked worker of a
    1.9 GB process took 2.4× the page faults); a training process never runs those paths.
    """
    context = multiprocessing.get_context("spawn")
    # a spawned process starts its own processes (DataLoader workers) by spawning too: it is
    # told this one's start method (fork on Linux before Python 3.14)
    method = multiprocessing.get_start_method()
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        paths = (data["index_path"], data["shards"])
        return pool.submit(_call_fresh, fn, paths, args, torch_threads, method).result()


def _call_fresh(fn, paths: tuple[Path, Path], args: tuple, torch_threads: int, method: str):
    multiprocessing.set_start_method(method, force=True)
    torch.set_num_threads(torch_threads)
    return fn(_load(*paths), *args)


class _EarlierSystem(Dataset):
    """One sample per index row: open the residue dataset, read, float32, transpose."""

    def __init__(self, voxel_file: str, rows: pa.Table, seed: int) -> None:
        order = np.random.default_rng(seed).permutation(rows.num_rows)
        rows = rows.take(pa.array(order))
        self.path = voxel_file
        self.keys = list(
            zip(
                rows["domain"].to_pylist(),
                rows["chain"].to_pylist(),
                rows["resid_str"].to_pylist(),
                strict=True,
            )
        )
        self.temperature = rows["temperature"].to_numpy()
        self.target = rows["target_rmsf"].to_numpy()
        self.file = None
        self.perm = None

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int):
        if self.file is None:
            self.file = h5py.File(self.path, "r")
            self.perm = torch.from_numpy(file_permutation(self.file))
        domain, chain, resid = self.keys[i]
        grid = torch.from_numpy(self.file[domain][chain][resid][()].astype(np.float32))
        x = grid.permute(3, 0, 1, 2)[self.perm]
        return x, self.temperature[i], self.target[i]


def _timed(batches, seconds: float, count) -> dict:
    """Serve until the loader ends or ``seconds`` pass.

    Returns samples/s over the whole run including worker start-up, shard scanning and the
    first window's reads (``with_startup``, the headline figure), after the first batch
    (``steady``; flattering, since the first mixing window is read before it), and the wait
    for the first batch.
    """
    t0 = time.perf_counter()
    n = n_first = 0
    first = None
    for batch in batches:
        n += count(batch)
        now = time.perf_counter()
        if first is None:
            first, n_first = now - t0, n
        if now - t0 > seconds:
            break
    total = time.perf_counter() - t0
    steady = (n - n_first) / (total - first) if total > first and n > n_first else n / total
    return {"steady": steady, "with_startup": n / total, "first_batch_s": first, "samples": n}


def measure(
    data: dict, path: str, workers: int, seconds: float, batch_size: int, epochs: int, repeats: int
) -> dict:
    """Rates of one path with ``workers`` DataLoader workers (see :func:`_timed`).

    Sources serve up to ``epochs`` epochs back to back, as training does (their workers are kept
    from one epoch to the next). When the first epoch ends before the time cap, all of it is
    done ``repeats`` times, each with a new source (new workers): a fast path's single epoch
    lasts 0.2-0.4 s and scatters by ±30 % on two shared cores. Before each repeat the ceiling
    (e) is measured again in this process for ``PAIRED_S``, and each epoch's rate is divided
    by it: a paired ratio, which the machine's drift between measurements does not move.
    Returns the figures of the median first epoch, ``first_epochs`` (each repeat's
    ``with_startup``), ``later_epochs`` (the ``with_startup`` rate of every later epoch), and
    ``first_ratios`` / ``later_ratios`` (the same ÷ the paired ceiling).
    """
    index = data["index"]
    cfg = PlanConfig(batch_size=batch_size, num_workers=workers, seed=0)
    if path == "a":
        rows = index.table.filter(pc.equal(index.table["split"], "train"))
        ds = _EarlierSystem(str(data["voxel_file"]), rows, seed=0)
        loader = DataLoader(ds, batch_size=batch_size, num_workers=workers)
        run = _timed(loader, seconds, lambda b: len(b[1]))
        return {
            **run,
            "first_epochs": [run["with_startup"]],
            "later_epochs": [],
            "first_ratios": [],
            "later_ratios": [],
        }
    name = "hdf5" if path == "b" else "shards"

    def count(batch) -> int:
        if path == "d":
            unpack_torch(batch.packed)
        return int((batch.row_id >= 0).sum())

    records = ceiling_records(data)
    firsts, later, later_ratios = [], [], []
    for _ in range(repeats):
        ceiling = decode_rate(records, PAIRED_S)
        src = open_source(name, index, split="train", shards_dir=data["shards"])
        for epoch in range(epochs):
            run = _timed(src.loader(cfg, epoch=epoch), seconds, count)
            if epoch:
                later.append(run["with_startup"])
                later_ratios.append(run["with_startup"] / ceiling)
            else:
                firsts.append({**run, "ratio": run["with_startup"] / ceiling})
            if run["samples"] < src.sample_count:  # the time cap ended the epoch
                break
        src.close()
        if firsts[-1]["samples"] < src.sample_count:  # a capped run is long enough alone
            break
    mid = sorted(firsts, key=lambda r: r["with_startup"])[len(firsts) // 2]
    return {
        **mid,
        "first_epochs": [r["with_startup"] for r in firsts],
        "later_epochs": later,
        "first_ratios": [r["ratio"] for r in firsts],
        "later_ratios": later_ratios,
    }


def measure_http(
    data: dict, server: RangeServer, path: str, workers: int, batch_size: int, cache: Path
) -> dict:
    """A whole epoch of the shard source at ``server``'s URL; rates and the bytes it sent.

    ``f``: no cache; ``g``: ``cache`` emptied first; ``h``: ``cache`` as ``g`` left it.
    """
    if path == "g":
        shutil.rmtree(cache, ignore_errors=True)
    options = {} if path == "f" else {"cache_dir": cache}
    server.clear()
    src = open_source("shards", data["index"], split="train", shards_dir=server.url, **options)
    cfg = PlanConfig(batch_size=batch_size, num_workers=workers, seed=0)
    run = _timed(src.loader(cfg, epoch=0), float("inf"), lambda b: int((b.row_id >= 0).sum()))
    shard_gets = [r for r in server.requests if r.method == "GET" and r.name != MANIFEST_NAME]
    run["bytes_fetched"] = sum(r.sent for r in shard_gets)
    run["requests"] = len(shard_gets)
    run["statuses"] = {str(k): v for k, v in sorted(server.statuses().items())}
    run["bytes_needed"] = sum(r.payload_bytes for _, r in src.records.values())
    run["complete"] = run["samples"] == src.sample_count
    if path == "f" and any(r.status != 206 for r in shard_gets):
        # without a cache records are fetched by range: anything but 206 would mean whole files
        raise SystemExit(f"({path}): expected only 206 replies for shards, got {run['statuses']}")
    return run


def measure_ceiling(data: dict, seconds: float) -> float:
    """(e): zstd decode of the train domains' records held in RAM, samples/s (one process)."""
    return decode_rate(ceiling_records(data), min(seconds, 3.0))


def ceiling_records(data: dict) -> list[tuple[bytes, int, int]]:
    """The train domains' compressed voxel members, read into RAM: (bytes, residues, samples)."""
    src = open_source("shards", data["index"], split="train", shards_dir=data["shards"])
    samples = dict(
        zip(src.table.domains.tolist(), src.table.domain_samples().tolist(), strict=True)
    )
    records = []
    for shard, r in src.records.values():
        with open(data["shards"] / shard, "rb") as fh:
            fh.seek(r.vox_offset)
            records.append((fh.read(r.vox_bytes), r.n_residues, samples[r.domain]))
    return records


def decode_rate(records: list[tuple[bytes, int, int]], seconds: float) -> float:
    """Samples/s of zstd-decoding ``records`` to packed rows: whole passes, at least ``seconds``."""
    dctx = zstandard.ZstdDecompressor()
    n, t0 = 0, time.perf_counter()
    while not n or time.perf_counter() - t0 < seconds:
        for vox, n_res, n_samples in records:
            np.frombuffer(dctx.decompress(vox), dtype=np.uint8).reshape(n_res, PACKED_BYTES)
            n += n_samples
    return n / (time.perf_counter() - t0)


def _private_kb() -> dict:
    """This process's memory from /proc (kB): rss and private (USS)."""
    fields = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        fields[key] = int(value.split()[0])
    return {"rss_kb": fields["Rss"], "uss_kb": fields["Private_Clean"] + fields["Private_Dirty"]}


class _ZeroReader(DomainReader):
    """Serves zero grids; records the worker's memory when it starts."""

    def __init__(self, report_dir: str) -> None:
        self.report_dir = report_dir

    def prepare(self, domains) -> None:
        worker = torch.utils.data.get_worker_info()
        name = f"worker{worker.id if worker else 0}.json"
        mem = _private_kb() | {"domains": len(domains)}
        atomic_write_text(Path(self.report_dir) / name, json.dumps(mem))

    def read_domain(self, domain, chains, resids):
        return np.zeros((len(chains), PACKED_BYTES), dtype=np.uint8)


class _ZeroSource(SampleSource):
    name = "zero"

    def __init__(self, table: pa.Table, report_dir: Path) -> None:
        super().__init__(SimpleNamespace(table=table, path="synthetic"), split="train")
        self.report_dir = report_dir

    def make_reader(self) -> _ZeroReader:
        return _ZeroReader(str(self.report_dir))


def _synthetic_index(n_domains: int, residues: int, temps: int = 5) -> pa.Table:
    n_res = n_domains * residues
    n = n_res * temps
    dom = np.repeat(np.arange(n_domains), residues * temps)
    resnum = np.tile(np.repeat(np.arange(1, residues + 1), temps), n_domains)
    names = np.char.add("d", np.char.zfill(np.arange(n_domains).astype(str), 6))
    return pa.table(
        {
            "row_id": np.arange(n, dtype=np.int64),
            "split": pa.array(["train"] * n),
            "domain": pa.DictionaryArray.from_arrays(dom.astype(np.int32), names).cast(pa.string()),
            "chain": pa.array(["A"] * n),
            "resid_str": pa.array(resnum.astype(str)),
            "resnum": resnum.astype(np.int32),
            "icode": pa.array([""] * n),
            "temperature": np.tile(np.float32([320, 348, 379, 413, 450][:temps]), n_res),
            "target_rmsf": np.random.default_rng(0).random(n, dtype=np.float32),
        }
    )


def memory_probe(out: Path, rows: int = 3_300_000, workers: int = 2) -> dict:
    """Per-worker memory (metadata arrays and process USS) at ``rows`` index rows."""
    result = {}
    for label, n_domains in (("tiny", 10), ("full", max(1, rows // (137 * 5)))):
        table = _synthetic_index(n_domains, 137)
        report = out / f"mem_{label}"
        report.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        src = _ZeroSource(table, report)
        t_table = time.perf_counter() - t0
        cfg = PlanConfig(batch_size=256, num_workers=workers)
        t0 = time.perf_counter()
        plan = src.plan(cfg, 0)
        t_plan = time.perf_counter() - t0
        for i, _ in enumerate(src.loader(cfg, 0)):
            if i >= 2 * workers:
                break
        per_worker = [json.loads((report / f"worker{w}.json").read_text()) for w in range(workers)]
        result[label] = {
            "index_rows": table.num_rows,
            "split_table_mb": src.table.nbytes / 1e6,
            "table_seconds": t_table,
            "plan_seconds": t_plan,
            "stream_metadata_mb": [
                (s.table.nbytes + s.order.nbytes + s.batch_offsets.nbytes) / 1e6
                for s in plan.streams
            ],
            "worker_uss_mb": [w["uss_kb"] / 1e3 for w in per_worker],
            "worker_rss_mb": [w["rss_kb"] / 1e3 for w in per_worker],
        }
    full, tiny = result["full"], result["tiny"]
    result["worker_uss_growth_mb"] = float(
        np.mean(full["worker_uss_mb"]) - np.mean(tiny["worker_uss_mb"])
    )
    return result


def _chunks(grid: np.ndarray) -> list[tuple[tuple, bytes]]:
    """gzip-4 chunks (11, 11, 11, 5) of a (21, 21, 21, 5) grid, as HDF5 stores them."""
    import zlib

    padded = np.zeros((22, 22, 22, 5), dtype=np.uint8)
    padded[:21, :21, :21] = grid
    out = []
    for x in (0, 11):
        for y in (0, 11):
            for z in (0, 11):
                block = np.ascontiguousarray(padded[x : x + 11, y : y + 11, z : z + 11])
                out.append(((x, y, z, 0), zlib.compress(block.tobytes(), 4)))
    return out


def make_big_file(path: Path, n_datasets: int, residues: int = 150) -> None:
    """aposteriori-layout file of ``n_datasets`` residue datasets (real gzip chunks)."""
    rng = np.random.default_rng(0)
    templates = []
    for _ in range(16):
        grid = np.zeros((21, 21, 21, 5), dtype=np.uint8)
        for c in range(5):
            xyz = rng.integers(0, 21, (3, 9))
            grid[xyz[0], xyz[1], xyz[2], c] = 1
        templates.append(_chunks(grid))
    n_domains = (n_datasets + residues - 1) // residues
    lengths = [min(residues, n_datasets - d * residues) for d in range(n_domains)]
    write_voxel_file(
        path,
        [f"{d:05d}A00" for d in range(n_domains)],
        lengths,
        chunks=lambda d, r: templates[(d + r) % 16],
    )


def lookup_probe(path: Path, n_domains: int = 60, seed: int = 0) -> dict:
    """Residues/s on random domains of ``path``: open only, ``ds[()]``, and the source reader."""
    from voxelflex.sources.hdf5 import Hdf5Reader

    with h5py.File(path, "r") as f:
        domains = list(f.keys())
        n_datasets = sum(len(f[d]["A"]) for d in domains[:5]) * len(domains) // 5
        pick = np.random.default_rng(seed).choice(domains, min(n_domains, len(domains)), False)
        keys = {d: sorted(f[d]["A"].keys(), key=int) for d in pick}
        out = {"datasets": n_datasets}
        t0, n = time.perf_counter(), 0
        for d in pick:
            gid = h5py.h5g.open(h5py.h5g.open(f.id, d.encode()), b"A")
            for r in keys[d]:
                h5py.h5d.open(gid, r.encode())
                n += 1
        out["open_only_per_s"] = n / (time.perf_counter() - t0)
        t0, n = time.perf_counter(), 0
        for d in pick:
            for r in keys[d]:
                f[d]["A"][r][()].astype(np.float32)
                n += 1
        out["ds_read_per_s"] = n / (time.perf_counter() - t0)
    reader, t0, n = Hdf5Reader(path), time.perf_counter(), 0
    for d in pick:
        resids = np.asarray(keys[d])
        reader.read_domain(d, np.full(len(resids), "A"), resids)
        n += len(resids)
    out["source_reader_per_s"] = n / (time.perf_counter() - t0)
    return out


def _chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    labels = list(PATHS)
    width = 0.25
    for j, w in enumerate(("0", "1", "2")):
        values = [results[p].get(w, np.nan) for p in labels]  # (e): one process only
        ax.bar(np.arange(len(labels)) + (j - 1) * width, values, width, label=f"{w} workers")
    ax.set_xticks(np.arange(len(labels)), [f"({p})" for p in labels])
    ax.set_yscale("log")
    ax.set_ylabel("samples / s")
    ax.set_title("voxelflex I/O paths (samples = residue × temperature rows)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench_out/io_throughput"))
    ap.add_argument("--domains", type=count(1), default=500)
    ap.add_argument("--workers", type=count(0), nargs="+", default=[0, 1, 2])
    ap.add_argument("--seconds", type=float, default=6.0, help="time cap per measurement")
    ap.add_argument("--batch-size", type=count(1), default=256)
    ap.add_argument(
        "--epochs",
        type=count(1),
        default=3,
        help="epochs of (b)-(d) served back to back from one source (the first is the headline)",
    )
    ap.add_argument(
        "--repeats",
        type=count(1),
        default=5,
        help="new sources per (b)-(d) measurement whose first epoch beats the time cap "
        "(the headline is the median first epoch)",
    )
    ap.add_argument("--reuse", action="store_true", help="reuse the generated data")
    ap.add_argument("--datasets", type=count(0), default=0, help="also probe a file of N datasets")
    ap.add_argument("--memory-rows", type=count(1), default=3_300_000)
    ap.add_argument(
        "--paths", default="abcdefgh", help="paths to measure, e.g. 'cefgh' (default: all)"
    )
    ap.add_argument(
        "--torch-threads",
        type=count(1),
        default=1,
        help="intra-op threads of this process (workers always use 1); more threads than free "
        "cores make torch's CPU ops in the main process crawl on a shared machine",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.torch_threads)
    args.out.mkdir(parents=True, exist_ok=True)
    data = prepare_data(args.out, args.domains, args.reuse, workers=max(args.workers))
    index = data["index"]
    n_rows = index.table.num_rows
    shard_bytes = sum(p.stat().st_size for p in data["shards"].glob("shard-*.tar"))
    bytes_per_sample = {
        "hdf5": data["voxel_file"].stat().st_size / n_rows,
        "shards": shard_bytes / n_rows,
    }
    results: dict[str, dict[str, float]] = {p: {} for p in PATHS}
    details: dict[str, dict[str, dict]] = {p: {} for p in PATHS if p != "e"}
    later: dict[str, dict[str, float]] = {p: {} for p in "abcd"}
    for path in [p for p in "abcd" if p in args.paths]:
        for w in args.workers:
            run = in_new_process(
                measure,
                data,
                *(path, w, args.seconds, args.batch_size, args.epochs, args.repeats),
                torch_threads=args.torch_threads,
            )
            details[path][str(w)] = run
            results[path][str(w)] = run["with_startup"]
            again = ""
            if len(run["first_epochs"]) > 1:
                again = f"; median of {len(run['first_epochs'])} first epochs: " + " / ".join(
                    f"{r:,.0f}" for r in run["first_epochs"]
                )
            if run["first_ratios"]:
                again += "; ÷ paired (e): " + " / ".join(f"{r:.2f}" for r in run["first_ratios"])
            if run["later_epochs"]:
                later[path][str(w)] = float(np.median(run["later_epochs"]))
                again += (
                    f"; later epochs {later[path][str(w)]:,.0f}/s (median of "
                    f"{len(run['later_epochs'])}, workers kept)"
                )
            print(
                f"({path}) {w} workers: {run['with_startup']:,.0f} samples/s "
                f"({run['samples']:,} samples, {run['first_batch_s']:.2f} s to first batch; "
                f"{run['steady']:,.0f}/s after it){again}",
                flush=True,
            )
    results["e"]["0"] = in_new_process(
        measure_ceiling, data, args.seconds, torch_threads=args.torch_threads
    )
    print(f"(e) in RAM: {results['e']['0']:,.0f} samples/s")
    fetched: dict[str, dict[str, dict]] = {p: {} for p in HTTP_PATHS}
    with RangeServer(data["shards"]) as server:
        for w in args.workers:
            for path in [p for p in HTTP_PATHS if p in args.paths]:
                run = measure_http(
                    data, server, path, w, args.batch_size, args.out / "cache" / str(w)
                )
                details[path][str(w)] = run
                results[path][str(w)] = run["with_startup"]
                fetched[path][str(w)] = {
                    "of_shard_bytes": run["bytes_fetched"] / shard_bytes,
                    "of_needed_bytes": run["bytes_fetched"] / run["bytes_needed"],
                }
                print(
                    f"({path}) {w} workers: {run['with_startup']:,.0f} samples/s, fetched "
                    f"{run['bytes_fetched'] / 1e6:.2f} MB in {run['requests']} requests "
                    f"{run['statuses']} = {fetched[path][str(w)]['of_shard_bytes']:.2f} × the "
                    f"shards, {fetched[path][str(w)]['of_needed_bytes']:.2f} × the records needed",
                    flush=True,
                )
    one = "1" if 1 in args.workers else str(args.workers[0])
    zero = "0" if 0 in args.workers else one

    def ratio(p: str, q: str, w: str) -> float:
        return results[p].get(w, np.nan) / results[q].get(w if q != "e" else "0", np.nan)

    def paired(w: str, kind: str) -> float:
        """Median of (c)'s epochs ÷ the ceiling measured just before them (see measure)."""
        values = details["c"].get(w, {}).get(kind)
        return float(np.median(values)) if values else np.nan

    ratios = {
        "c/a": ratio("c", "a", one),
        "b/a": ratio("b", "a", one),
        "c/e": paired(one, "first_ratios"),
        "c/e_0_workers": paired(zero, "first_ratios"),
        "c/e_later_epochs": paired(one, "later_ratios"),
        "c/e_later_epochs_0_workers": paired(zero, "later_ratios"),
        "c/e_unpaired": ratio("c", "e", one),
        "c/e_0_workers_unpaired": ratio("c", "e", zero),
        "hdf5_bytes/shard_bytes": bytes_per_sample["hdf5"] / bytes_per_sample["shards"],
    }
    # A ratio with a path not run at that worker count is null: json writes NaN, which is not JSON.
    ratios = {k: None if np.isnan(v) else v for k, v in ratios.items()}
    memory = memory_probe(args.out, args.memory_rows) if args.memory_rows else {}
    lookup = {"small": lookup_probe(data["voxel_file"])}
    if args.datasets:
        big = args.out / f"big_{args.datasets}.hdf5"
        if not (args.reuse and big.is_file()):
            t0 = time.perf_counter()
            make_big_file(big, args.datasets)
            print(f"big file: {args.datasets} datasets in {time.perf_counter() - t0:.0f} s")
        lookup["big"] = lookup_probe(big)
    src = open_source("hdf5", index, split="train")
    summary = {
        "dataset": {
            "domains": len(pc.unique(index.table["domain"])),
            "train_samples": src.sample_count,
            "train_residues": src.residue_count,
            "index_rows": n_rows,
        },
        "batch_size": args.batch_size,
        "torch_threads": args.torch_threads,
        "cpu_count": os.cpu_count(),
        "seconds_cap": args.seconds,
        "epochs": args.epochs,
        "repeats": args.repeats,
        "samples_per_s": results,
        "samples_per_s_later_epochs": later,
        "runs": details,
        "load_average": os.getloadavg(),
        "bytes_per_sample": bytes_per_sample,
        "ratios_one_worker": ratios,
        "http_bytes_fetched_per_epoch": fetched,
        "memory": memory,
        "hdf5_lookup": lookup,
    }
    atomic_write_json(args.out / "io_throughput.json", summary, indent=1)
    _chart(results, args.out / "io_throughput.png")
    print(f"\n| path | {' | '.join(f'{w} workers' for w in args.workers)} | bytes/sample |")
    print("|---|" + "---:|" * (len(args.workers) + 1))
    for p, label in PATHS.items():
        kind = "hdf5" if p in "ab" else "shards"
        cells = [f"{results[p][str(w)]:,.0f}" if str(w) in results[p] else "" for w in args.workers]
        if p == "e":
            cells = [f"{results['e']['0']:,.0f} (1 process)"] + [""] * (len(args.workers) - 1)
        print(f"| ({p}) {label} | {' | '.join(cells)} | {bytes_per_sample[kind]:,.0f} |")
    shown = (f"{k} = {'n/a' if v is None else f'{v:.2f}'}" for k, v in ratios.items())
    print("\nratios at one worker: " + ", ".join(shown))
    print("\nbytes fetched per epoch ÷ shard bytes (÷ bytes of the records needed):")
    for p in HTTP_PATHS:
        cells = [
            f"{f['of_shard_bytes']:.2f} ({f['of_needed_bytes']:.2f})" if f else ""
            for f in (fetched[p].get(str(w)) for w in args.workers)
        ]
        print(f"| ({p}) {PATHS[p]} | {' | '.join(cells)} |")
    if memory:
        full = memory["full"]
        print(
            f"memory at {full['index_rows']:,} rows: split table {full['split_table_mb']:.0f} MB "
            f"(main), plan {full['plan_seconds']:.2f} s; per worker metadata "
            f"{np.mean(full['stream_metadata_mb']):.0f} MB, "
            f"USS {np.mean(full['worker_uss_mb']):.0f} MB "
            f"(tiny index: {np.mean(memory['tiny']['worker_uss_mb']):.0f} MB)"
        )
    for label, probe in lookup.items():
        print(f"h5py {label} file ({probe['datasets']:,} datasets): {probe}")
    print(f"wrote {args.out / 'io_throughput.json'} and {args.out / 'io_throughput.png'}")


if __name__ == "__main__":
    main()
