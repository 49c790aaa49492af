"""Benchmark `voxelflex index build` at mdCATH scale: wall time and peak RSS.

Generates (once, reused with --reuse) an aposteriori-layout HDF5 with 5,400 domains and ≈740 k
residue datasets, an RMSF CSV with one row per residue × 5 temperatures (≈3.7 M rows) and split
files. Datasets have the real dtype, shape, chunking and ``label`` attribute but no voxel data
written (HDF5 allocates chunks lazily), so the file is small and quick to make while the key
listing is full size. Each build runs in a child process that reports its own peak RSS
(``resource.getrusage(RUSAGE_SELF)``), so generating the inputs does not count. Prints a table
and writes JSON.

    python benchmarks/index_build.py --out bench_out/index_build [--reuse] [--predict-only]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
from _args import count  # benchmarks/ (scripts run from there)
from _voxel_file import write_voxel_file  # benchmarks/ (scripts run from there)

from voxelflex.atomic import atomic_path, atomic_write_json, atomic_write_text

AMINO_ACIDS = np.array(
    "ALA ARG ASN ASP CYS GLN GLU GLY HIS ILE LEU LYS MET PHE PRO SER THR TRP TYR VAL".split()  # noqa: SIM905
)
TEMPERATURES = (320.0, 348.0, 379.0, 413.0, 450.0)


def generate(out: Path, n_domains: int, mean_residues: int, seed: int) -> dict:
    """Write voxels.hdf5, rmsf.csv and split files into ``out``; return their sizes."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(40, 2 * mean_residues - 40 + 1, n_domains)
    ids = [f"{i // 1000 + 1}{chr(97 + i // 100 % 26)}{i % 100:02d}A00" for i in range(n_domains)]
    names = AMINO_ACIDS[rng.integers(0, 20, int(lengths.sum()))]
    write_voxel_file(out / "voxels.hdf5", ids, lengths.tolist(), labels=names)

    n_temps = len(TEMPERATURES)
    per_residue = np.repeat(np.arange(len(names)), n_temps)
    csv = pa.table(
        {
            "domain_id": pa.array(np.repeat(np.asarray(ids, dtype=object), lengths * n_temps)),
            "resid": np.concatenate([np.arange(1, n + 1) for n in lengths]).repeat(n_temps),
            "resname": names[per_residue],
            "temperature_feature": np.tile(np.asarray(TEMPERATURES), len(names)),
            "target_rmsf": rng.gamma(2.0, 0.1, len(per_residue)).round(4),
        }
    )
    with atomic_path(out / "rmsf.csv", suffix=".csv") as tmp:
        pcsv.write_csv(csv, tmp)
    order = rng.permutation(n_domains)
    cuts = (int(0.8 * n_domains), int(0.9 * n_domains))
    for name, part in zip(("train", "val", "test"), np.split(order, cuts), strict=True):
        atomic_write_text(out / f"{name}.txt", "\n".join(ids[i] for i in part) + "\n")
    return {"domains": n_domains, "residues": int(lengths.sum()), "csv_rows": csv.num_rows}


def _child(out: Path, predict_only: bool) -> None:
    """Run one build in this (child) process and print its report as JSON."""
    from voxelflex.index import build_index

    csv_args = (
        {}
        if predict_only
        else {
            "rmsf_csv": out / "rmsf.csv",
            "rmsf_unit": "nm",
            "train": out / "train.txt",
            "val": out / "val.txt",
            "test": out / "test.txt",
        }
    )
    name = "predict_index.parquet" if predict_only else "index.parquet"
    t0 = time.perf_counter()
    report = build_index(
        out / "voxels.hdf5", out / name, progress=False, overwrite=True, **csv_args
    )
    wall = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"wall_s": wall, "peak_rss_mb": peak_mb, "rows": report.rows}))


def _run_child(out: Path, predict_only: bool) -> dict:
    cmd = [sys.executable, __file__, "--out", str(out), "--child"]
    if predict_only:
        cmd.append("--predict-only")
    proc = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench_out/index_build"))
    ap.add_argument("--domains", type=count(1), default=5400)
    ap.add_argument("--mean-residues", type=count(1), default=137)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reuse", action="store_true", help="reuse previously generated inputs")
    ap.add_argument("--predict-only", action="store_true", help="also time a build without CSV")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.out, args.predict_only)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    sizes_file = args.out / "inputs.json"
    t0 = time.perf_counter()
    if args.reuse and sizes_file.exists():
        sizes = json.loads(sizes_file.read_text())
    else:
        sizes = generate(args.out, args.domains, args.mean_residues, args.seed)
        sizes["generate_s"] = round(time.perf_counter() - t0, 1)
        atomic_write_text(sizes_file, json.dumps(sizes))
    results = {"inputs": sizes, "builds": {"with_csv": _run_child(args.out, False)}}
    if args.predict_only:
        results["builds"]["predict_only"] = _run_child(args.out, True)

    print(
        f"inputs: {sizes['domains']:,} domains, {sizes['residues']:,} residue datasets, "
        f"{sizes['csv_rows']:,} CSV rows"
    )
    print(f"{'build':<14}{'wall s':>9}{'peak RSS MB':>13}{'rows':>12}")
    for name, r in results["builds"].items():
        print(
            f"{name:<14}{r['wall_s']:>9.1f}{r['peak_rss_mb']:>13.0f}{sum(r['rows'].values()):>12,}"
        )
    atomic_write_json(args.out / "index_build.json", results)
    print(f"wrote {args.out / 'index_build.json'}")


if __name__ == "__main__":
    main()
