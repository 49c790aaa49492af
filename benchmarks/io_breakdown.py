"""Where the shard source's time goes: whole epochs of path (c), by category, and per process.

Serves the train split of the I/O benchmark's data (``benchmarks/io_throughput.py`` makes it)
from a shard folder, a whole epoch at a time, loader creation included:

* 0 workers: the median epoch time unprofiled, then ``cProfile`` over a few epochs, its own
  time per function summed into categories (zstd decoding, tar header parsing, record checks,
  window copy, gather, per-batch bookkeeping, epoch plan, other). The profiler adds a cost per
  Python call, so categories made of many small calls look larger than they are: read the
  shares, and the unprofiled epoch time for the total.
* 1 worker, twice: with a new worker every epoch (the source's workers closed before each, as
  a first epoch has it) and with the worker kept from epoch to epoch (as training has it):
  wall time, CPU time of the main process and of the worker (from ``/proc``, the worker's
  whole life for a new one), and when the loader was made and the first and the last batch
  came.

It runs against whatever ``voxelflex`` is importable, so the same script measures an older
checkout (``PYTHONPATH=/path/to/old/checkout``) on shards built by that checkout (``--shards``).
Prints a table and writes ``io_breakdown.json`` to ``--out``.

    python benchmarks/io_breakdown.py --data bench_out/io/data --out bench_out/io_breakdown
"""

from __future__ import annotations

import argparse
import cProfile
import multiprocessing
import os
import pstats
import statistics
import time
from pathlib import Path

import torch
from _args import count  # benchmarks/ (scripts run from there)

from voxelflex.atomic import atomic_write_json
from voxelflex.index import read_index
from voxelflex.sources import PlanConfig, open_source

# (category, test on (file, function name)); the first that matches wins.
CATEGORIES = [
    ("zstd decode", lambda f, n: "zstandard" in n or n in ("decompress", "readinto")),
    (
        "tar header parsing (webdataset, tarfile)",
        lambda f, n: (
            f in ("tarfile.py", "tariterators.py", "gopen.py", "filters.py")
            or "BufferedReader" in n
            or n == "unpack_from"
        ),
    ),
    (
        "record checks (CRC-32, keys.json, domain, residue keys)",
        lambda f, n: (
            "crc32" in n
            or f in ("decoder.py", "record.py")
            or (f == "__init__.py" and n == "loads")
            or (
                f == "reader.py"
                and n in ("decode_record", "<genexpr>", "residue_keys", "pick_rows")
            )
            or n in ("<built-in method builtins.all>", "<built-in method builtins.isinstance>")
            or "numpy.asarray" in n
            or "'astype'" in n
            or "'tolist'" in n
            or "'join' of 'str'" in n
        ),
    ),
    ("window copy", lambda f, n: n == "_window"),
    (
        "gather into the batch",
        lambda f, n: "'take'" in n or n in ("_gather", "<listcomp>") or "concatenate" in n,
    ),
    ("epoch plan", lambda f, n: f in ("plan.py", "table.py") and n != "concat_ranges"),
    (
        "per-batch bookkeeping (samples, Batch, loader)",
        lambda f, n: (
            f
            in (
                "transport.py",
                "windows.py",
                "batch.py",
                "dataloader.py",
                "fetch.py",
                "profiler.py",
            )
            or "profiler" in n
            or "from_numpy" in n
            or n == "concat_ranges"
        ),
    ),
]


def _category(file: str, name: str) -> str:
    for category, test in CATEGORIES:
        if test(file, name):
            return category
    return "other"


def _epoch(src, cfg: PlanConfig, epoch: int) -> int:
    return sum(b.n_samples for b in src.loader(cfg, epoch))


def _staged_epoch(src, cfg: PlanConfig, epoch: int) -> dict[str, float]:
    """One epoch's seconds from the start to: loader made, first batch, last batch."""
    t0 = time.perf_counter()
    loader = src.loader(cfg, epoch)
    marks = {"loader_made_s": time.perf_counter() - t0}
    it = iter(loader)
    next(it)
    marks["first_batch_s"] = time.perf_counter() - t0
    for _ in it:
        pass
    marks["last_batch_s"] = time.perf_counter() - t0
    return marks


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _one_worker_epochs(src, cfg: PlanConfig, epochs: int, *, new_worker: bool) -> dict:
    """Median one-worker epoch (by wall time) with its CPU split, and every run."""
    _epoch(src, cfg, 0)  # warm: the kept worker exists, page cache
    runs = []
    for e in range(epochs):
        if new_worker:
            src.close()
        before = {p.pid: _cpu_s(p.pid) for p in multiprocessing.active_children()}
        c0 = time.process_time()
        marks = _staged_epoch(src, cfg, e + 1)
        main_cpu = time.process_time() - c0
        worker = sum(
            _cpu_s(p.pid) - before.get(p.pid, 0.0) for p in multiprocessing.active_children()
        )
        runs.append(
            {
                "wall_s": marks["last_batch_s"],
                "main_cpu_s": main_cpu,
                "worker_cpu_s": worker,
                **marks,
            }
        )
    src.close()
    mid = sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2]
    return {**mid, "runs": runs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("bench_out/io_throughput/data"))
    ap.add_argument("--shards", type=Path, help="shard folder (default: DATA/shards)")
    ap.add_argument("--out", type=Path, default=Path("bench_out/io_breakdown"))
    ap.add_argument("--batch-size", type=count(1), default=1024)
    ap.add_argument("--epochs", type=count(1), default=5, help="epochs timed (median) per setting")
    ap.add_argument("--label", default="", help="name of this measurement in the JSON")
    args = ap.parse_args()
    torch.set_num_threads(1)
    index = read_index(args.data / "index.parquet")
    shards = args.shards or args.data / "shards"
    src = open_source("shards", index, split="train", shards_dir=shards)
    result: dict = {"label": args.label, "batch_size": args.batch_size}

    cfg = PlanConfig(batch_size=args.batch_size, num_workers=0, seed=0)
    n = _epoch(src, cfg, 0)  # warm: imports, page cache
    times = []
    for e in range(args.epochs):
        t0 = time.perf_counter()
        _epoch(src, cfg, e + 1)
        times.append(time.perf_counter() - t0)
    epoch_s = statistics.median(times)
    profile = cProfile.Profile()
    profile.enable()
    for e in range(3):
        _epoch(src, cfg, e + 1)
    profile.disable()
    stats = pstats.Stats(profile).stats
    spent: dict[str, float] = {}
    others = []
    for (file, _, name), (_, _, own, _, _) in stats.items():
        key = _category(Path(file).name, name)
        spent[key] = spent.get(key, 0.0) + own / 3
        if key == "other":
            others.append((own / 3, f"{Path(file).name}:{name}"))
    total = sum(spent.values())
    result["0_workers"] = {
        "samples": n,
        "epoch_s": epoch_s,
        "samples_per_s": n / epoch_s,
        "profiled_epoch_s": total,
        "categories_s": dict(sorted(spent.items(), key=lambda kv: -kv[1])),
        "largest_other_s": dict((k, v) for v, k in sorted(others, reverse=True)[:8]),
    }

    cfg = PlanConfig(batch_size=args.batch_size, num_workers=1, seed=0)
    for label, new_worker in (("1_worker_new", True), ("1_worker_kept", False)):
        run = _one_worker_epochs(src, cfg, args.epochs, new_worker=new_worker)
        result[label] = {**run, "samples_per_s": n / run["wall_s"]}

    args.out.mkdir(parents=True, exist_ok=True)
    name = f"io_breakdown{'_' + args.label if args.label else ''}.json"
    atomic_write_json(args.out / name, result, indent=1)
    zero = result["0_workers"]
    print(
        f"0 workers: {zero['samples_per_s']:,.0f} samples/s ({epoch_s * 1e3:.0f} ms an epoch, "
        f"median of {args.epochs}); profiled {total * 1e3:.0f} ms an epoch:"
    )
    print("| category | ms/epoch (profiled) | share |\n|---|---:|---:|")
    for key, secs in zero["categories_s"].items():
        print(f"| {key} | {secs * 1e3:.1f} | {secs / total:.0%} |")
    for label, what in (("1_worker_new", "a new worker"), ("1_worker_kept", "the worker kept")):
        one = result[label]
        print(
            f"1 worker, {what} each epoch: {one['samples_per_s']:,.0f} samples/s; an epoch "
            f"takes {one['wall_s'] * 1e3:.0f} ms wall, {one['main_cpu_s'] * 1e3:.0f} ms CPU in "
            f"the main process, {one['worker_cpu_s'] * 1e3:.0f} ms CPU in the worker (median "
            f"epoch of {args.epochs}); loader made at {one['loader_made_s'] * 1e3:.0f} ms, first "
            f"batch at {one['first_batch_s'] * 1e3:.0f} ms"
        )
    print(f"wrote {args.out / name}")


if __name__ == "__main__":
    main()
