"""Benchmark the built-in voxelizer against aposteriori 2.4.0's frame function, in one run.

On the same structures (tools/aposteriori_reference.py's pinned set: single crystal chains of
79-173 residues, plus protein-only copies of two simulation snapshots with hydrogens), this times

1. aposteriori's ``create_frames_from_structure`` in-process (not its CLI, which polls and pays
   start-up) in aposteriori's own venv, with ampal's parse timed separately;
2. voxelflex's ``read_structure`` and ``compute_frames`` (frames in memory, what ``predict
   --structure`` uses) on one thread;
3. writing the HDF5 (gzip chunks + one dataset and three attributes a residue), separately;
4. ``voxelize_files`` end to end with 1..N worker processes.

Prints a table and writes ``bench_out/voxelize_speed/voxelize_speed.json``.

    python benchmarks/voxelize_speed.py [--apo-files 8] [--repeat 5] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core: the rates are per core

import numpy as np  # noqa: E402
from _args import count  # benchmarks/ (scripts run from there)  # noqa: E402

from voxelflex.atomic import atomic_write_json  # noqa: E402
from voxelflex.structure import (  # noqa: E402
    compute_frames,
    read_structure,
    voxelize_files,
    write_voxel_hdf5,
)
from voxelflex.structure.hdf5 import compress_frames  # noqa: E402
from voxelflex.structure.residue_codes import STANDARD_RESIDUES  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "apo_ref", ROOT / "tools" / "aposteriori_reference.py"
)
apo_ref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(apo_ref)

# Simulation snapshots with hydrogens (MDAnalysisTests 2.11.0), kept to their protein atoms:
# their solvent and ions are ATOM records that make ampal refuse the files.
WITH_HYDROGENS = {
    "adkoplsaa.pdb": "MDAnalysisTests/data/adk_oplsaa.pdb",  # adenylate kinase, 214 residues
    "cobrotoxin.pdb": "MDAnalysisTests/data/cobrotoxin_dry_neutral_0.pdb",  # 62 residues
}
AMINO = set(STANDARD_RESIDUES)

APO_TIMER = r"""
import contextlib, gzip, io, json, pathlib, sys, time, warnings
import ampal
from aposteriori.data_prep import create_frame_data_set as cfds

job = json.loads(pathlib.Path(sys.argv[1]).read_text())
codec = cfds.Codec.CNOCACB()
out = []
for name in job["files"]:
    path = pathlib.Path(name)
    gz = path.name.endswith(".gz")
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        text = gzip.open(path, "rt").read() if gz else path.read_text()
        ampal.load_pdb(text, path=False)
        t1 = time.perf_counter()
        _, chains = cfds.create_frames_from_structure(
            path, 12.0, 21, cfds.default_atom_filter, None, gz, 0, True, codec,
            voxels_as_gaussian=False, voxelise_all_states=False, tag_rotamers=False)
        t2 = time.perf_counter()
    frames = sum(len(v) for v in chains.values())
    out.append({"file": path.name, "frames": frames, "parse_s": t1 - t0, "total_s": t2 - t1})
pathlib.Path(job["report"]).write_text(json.dumps(out))
"""


def prepare(work: Path, python: Path) -> list[Path]:
    """The crystal chains of the pinned set plus protein-only copies of the snapshots with H."""
    structures = apo_ref.fetch_structures(python, work)
    chains = [p for p in structures if p.name.split(".")[0] in apo_ref.DSSP_CHAINS]
    tarball = apo_ref.sdist_path(python, work, "MDAnalysisTests==2.11.0")
    for name, member in WITH_HYDROGENS.items():
        target = work / "structures" / name
        if not target.exists():
            text = apo_ref.sdist_member(tarball, member).decode()
            lines = [x for x in text.splitlines() if not x.startswith(("ATOM", "HETATM"))
                     or x[17:20] in AMINO]  # fmt: skip
            target.write_text("\n".join(lines) + "\n")
        chains.append(target)
    return chains


def time_aposteriori(python: Path, files: list[Path], work: Path) -> list[dict]:
    script, job = work / "apo_timer.py", work / "apo_job.json"
    script.write_text(APO_TIMER)
    job.write_text(json.dumps({"files": [str(f) for f in files], "report": str(work / "apo.json")}))
    subprocess.run([str(python), str(script), str(job)], check=True, env={**os.environ})
    return json.loads((work / "apo.json").read_text())


def time_voxelflex(files: list[Path], repeat: int) -> list[dict]:
    rows = []
    for path in files:
        start = time.perf_counter()
        structure = read_structure(path)
        read_s = time.perf_counter() - start
        compute_frames(structure)  # warm
        start = time.perf_counter()
        for _ in range(repeat):
            frames = compute_frames(structure)
        frame_s = (time.perf_counter() - start) / repeat
        rows.append({
            "file": path.name, "residues": len(frames), "atoms": structure.atoms.array_length(),
            "hydrogens": int(np.count_nonzero(structure.atoms.element == "H")),
            "read_s": read_s, "frame_s": frame_s, "frames": frames,
        })  # fmt: skip
    return rows


def time_write(rows: list[dict], work: Path) -> dict:
    framesets = [r["frames"] for r in rows]
    residues = sum(len(f) for f in framesets)
    start = time.perf_counter()
    compressed = [compress_frames(f) for f in framesets]
    compress_s = time.perf_counter() - start
    start = time.perf_counter()
    written = write_voxel_hdf5(compressed, work / "write.hdf5")
    write_s = time.perf_counter() - start
    return {
        "residues": residues,
        "compress_s": compress_s,
        "hdf5_s": written.seconds,
        "write_call_s": write_s,
        "bytes_per_residue": (work / "write.hdf5").stat().st_size / residues,
    }


def time_workers(files: list[Path], workers: list[int], copies: int, work: Path) -> list[dict]:
    """voxelize_files end to end on ``copies`` renamed copies of the files (best of two runs)."""
    folder = work / "many"
    folder.mkdir(exist_ok=True)
    for i in range(copies):
        for f in files:
            link = folder / f"c{i}x{f.name}"
            if not link.exists():
                link.symlink_to(f.resolve())
    out = []
    for n in workers:
        # best of two: the machine may be shared, and a run is only a few seconds
        runs = [voxelize_files(folder, work / f"w{n}.hdf5", workers=n, progress=False,
                               overwrite=True)
                for _ in range(2)]  # fmt: skip
        report = min(runs, key=lambda r: r.wall_seconds)
        out.append({
            "workers": n, "files": report.files, "residues": report.residues,
            "wall_s": report.wall_seconds, "frame_s": report.frame_seconds,
            "read_s": report.read_seconds, "compress_s": report.compress_seconds,
            "write_s": report.write_seconds,
            "residues_per_s": report.residues / report.wall_seconds,
        })  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench_out" / "voxelize_speed")
    parser.add_argument("--venv", type=Path, default=apo_ref.DEFAULT_VENV)
    parser.add_argument("--apo-files", type=count(1), default=8, help="files aposteriori times")
    parser.add_argument(
        "--repeat", type=count(1), default=5, help="compute_frames repeats per file"
    )
    parser.add_argument("--workers", type=count(1), nargs="+", default=[1, 2])
    parser.add_argument(
        "--copies", type=count(1), default=4, help="copies of the set for --workers"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    python = apo_ref.ensure_venv(args.venv)
    files = prepare(args.out, python)

    ours = time_voxelflex(files, args.repeat)
    # aposteriori on a spread of chain lengths (it takes ≈50 ms a residue)
    by_length = sorted(range(len(files)), key=lambda i: ours[i]["residues"])
    pick = sorted(by_length[:: max(1, len(files) // args.apo_files)][: args.apo_files])
    pick = sorted(set(pick) | {i for i, f in enumerate(files) if f.name in WITH_HYDROGENS})
    theirs = {r["file"]: r for r in time_aposteriori(python, [files[i] for i in pick], args.out)}
    write = time_write(ours, args.out)
    scaling = time_workers(files, args.workers, args.copies, args.out)

    print(f"{'file':<16}{'res':>5}{'atoms':>7}{'H':>6}{'vf read ms':>11}{'vf frames ms':>13}"
          f"{'vf res/s':>10}{'apo ms/res':>11}{'ratio':>8}")  # fmt: skip
    table = []
    for r in ours:
        apo = theirs.get(r["file"])
        apo_frame = apo and (apo["total_s"] - apo["parse_s"]) / max(apo["frames"], 1)
        ratio = apo_frame / (r["frame_s"] / r["residues"]) if apo else None
        print(f"{r['file']:<16}{r['residues']:>5}{r['atoms']:>7}{r['hydrogens']:>6}"
              f"{r['read_s'] * 1e3:>11.1f}{r['frame_s'] * 1e3:>13.2f}"
              f"{r['residues'] / r['frame_s']:>10.0f}"
              f"{apo_frame * 1e3 if apo else float('nan'):>11.1f}"
              f"{ratio if ratio else float('nan'):>8.0f}")  # fmt: skip
        table.append({k: v for k, v in r.items() if k != "frames"} | {"aposteriori": apo})
    n_res = sum(r["residues"] for r in ours)
    vf_frame_s = sum(r["frame_s"] for r in ours)
    vf_read_s = sum(r["read_s"] for r in ours)
    apo_res = sum(theirs[f]["frames"] for f in theirs)
    apo_frame_s = sum(theirs[f]["total_s"] - theirs[f]["parse_s"] for f in theirs)
    apo_total_s = sum(theirs[f]["total_s"] for f in theirs)
    vf_same = [r for r in ours if r["file"] in theirs]
    vf_same_frame = sum(r["frame_s"] for r in vf_same) / sum(r["residues"] for r in vf_same)
    vf_same_total = sum(r["frame_s"] + r["read_s"] for r in vf_same) / sum(
        r["residues"] for r in vf_same
    )
    summary = {
        "files": len(files),
        "residues": n_res,
        "mean_chain_length": n_res / len(files),
        "voxelflex_frames_per_s": n_res / vf_frame_s,
        "voxelflex_read_plus_frames_per_s": n_res / (vf_frame_s + vf_read_s),
        "aposteriori_files": len(theirs),
        "aposteriori_residues": apo_res,
        "aposteriori_ms_per_residue_frames": 1e3 * apo_frame_s / apo_res,
        "aposteriori_ms_per_residue_with_parse": 1e3 * apo_total_s / apo_res,
        "ratio_frames": (apo_frame_s / apo_res) / vf_same_frame,
        "ratio_with_parse": (apo_total_s / apo_res) / vf_same_total,
        "hdf5_write_per_s": write["residues"] / write["hdf5_s"],
        "gzip_chunks_per_s": write["residues"] / write["compress_s"],
        "write_incl_gzip_per_s": write["residues"] / (write["hdf5_s"] + write["compress_s"]),
        "bytes_per_residue": write["bytes_per_residue"],
        "workers": scaling,
    }
    print(
        f"\nvoxelflex frames in memory: {summary['voxelflex_frames_per_s']:,.0f} residues/s "
        f"(one thread; with parsing {summary['voxelflex_read_plus_frames_per_s']:,.0f}/s)"
    )
    print(
        f"aposteriori 2.4.0: {summary['aposteriori_ms_per_residue_frames']:.1f} ms/residue "
        f"for frames ({summary['aposteriori_ms_per_residue_with_parse']:.1f} with parsing) on "
        f"{apo_res} residues; ratio {summary['ratio_frames']:,.0f}x "
        f"({summary['ratio_with_parse']:,.0f}x with parsing)"
    )
    print(
        f"HDF5 write: {summary['hdf5_write_per_s']:,.0f} residues/s in HDF5, gzip chunks "
        f"{summary['gzip_chunks_per_s']:,.0f}/s, together "
        f"{summary['write_incl_gzip_per_s']:,.0f}/s; "
        f"{summary['bytes_per_residue']:,.0f} bytes/residue"
    )
    for s in scaling:
        print(
            f"voxelize_files workers={s['workers']}: {s['residues']} residues from {s['files']} "
            f"files in {s['wall_s']:.2f} s = {s['residues_per_s']:,.0f} residues/s end to end"
        )
    atomic_write_json(
        args.out / "voxelize_speed.json",
        {"summary": summary, "files": table, "write": write},
        default=float,
    )
    print(f"\nwrote {args.out / 'voxelize_speed.json'}")


if __name__ == "__main__":
    sys.exit(main())
