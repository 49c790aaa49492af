"""Benchmark :func:`voxelflex.structure.features.compute_features` on one CPU core.

Each chain of each input structure is timed on its own, as an mdCATH domain would be (one chain,
≈137 residues, CHARMM hydrogens), and each file as a whole (every chain at once, as a crystal
structure is). Crystal structures carry no hydrogens, so by default one riding hydrogen is added
per heavy atom (1.0 Å away, fixed seed) to match an all-atom mdCATH file's atom count; the
function drops hydrogens first, so they cost only that filter (``--no-hydrogens`` to skip).
Parsing is not timed. BLAS and OpenMP are pinned to one thread before numpy loads.

    python tools/real_set/build_real_set.py bench_out/real_set
    python benchmarks/features_speed.py bench_out/real_set/structures [--out DIR] [--repeats N]

Prints a table (by chain length; 100–200 residues is mdCATH-sized) and writes
``features_speed.json`` to ``--out``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import gzip  # noqa: E402
import io  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import biotite  # noqa: E402
import biotite.structure as struc  # noqa: E402
import biotite.structure.io.pdb as pdb  # noqa: E402
import biotite.structure.io.pdbx as pdbx  # noqa: E402
import numpy as np  # noqa: E402
from _args import count  # benchmarks/ (scripts run from there)  # noqa: E402

from voxelflex.atomic import atomic_write_json  # noqa: E402
from voxelflex.errors import InputError  # noqa: E402
from voxelflex.structure.features import SASA_POINTS, compute_features  # noqa: E402

BUCKETS = ((0, 100), (100, 200), (200, 400), (400, 100_000))


def _read(path: Path) -> struc.AtomArray:
    data = path.read_bytes()
    text = (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).decode("latin-1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if ".cif" in path.suffixes:
            return pdbx.get_structure(pdbx.CIFFile.read(io.StringIO(text)), model=1)
        return pdb.PDBFile.read(io.StringIO(text)).get_structure(model=1)


def _with_hydrogens(atoms: struc.AtomArray, rng: np.random.Generator) -> struc.AtomArray:
    """``atoms`` plus one hydrogen per heavy atom, each placed right after its heavy atom."""
    heavy = atoms[~np.isin(atoms.element, ["H", "D"])]
    h = heavy.copy()
    step = rng.normal(size=(h.array_length(), 3))
    h.coord = h.coord + step / np.linalg.norm(step, axis=1, keepdims=True)
    h.atom_name = np.char.add("H", h.atom_name.astype(str))
    h.element[:] = "H"
    both = heavy + h
    order = np.argsort(np.tile(np.arange(heavy.array_length()), 2), kind="stable")
    return both[order]


def _time(atoms: struc.AtomArray, repeats: int) -> tuple[float, int]:
    """Best-of-``repeats`` seconds of one compute_features call, and the residues it returned."""
    n = len(compute_features(atoms))  # warm-up: CCD lookups are cached after the first call
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        compute_features(atoms)
        best = min(best, time.perf_counter() - start)
    return best, n


def _files(paths: list[Path]) -> list[Path]:
    out = []
    for p in paths:
        found = sorted(p.iterdir()) if p.is_dir() else [p]
        out += [f for f in found if {".pdb", ".cif"} & set(f.suffixes)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("structures", nargs="+", type=Path, help="PDB/mmCIF files or folders")
    ap.add_argument("--out", type=Path, default=Path("bench_out/features_speed"))
    ap.add_argument("--repeats", type=count(1), default=3)
    ap.add_argument("--no-hydrogens", action="store_true", help="time the files as read")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    chains, files = [], []
    for path in _files(args.structures):
        atoms = _read(path)
        if not args.no_hydrogens:
            atoms = _with_hydrogens(atoms, rng)
        seconds, n = _time(atoms, args.repeats)
        files.append(
            {"file": path.name, "residues": n, "atoms": atoms.array_length(), "s": seconds}
        )
        for chain_id in np.unique(atoms.chain_id):
            chain = atoms[atoms.chain_id == chain_id]
            try:
                seconds, n = _time(chain, args.repeats)
            except InputError:  # a chain of water or ligands only: no protein chain to time
                continue
            row = {"file": path.name, "chain": str(chain_id), "residues": n}
            chains.append({**row, "atoms": chain.array_length(), "s": seconds})

    lines = [
        f"compute_features, one core, sasa points {SASA_POINTS}, "
        f"{'as read' if args.no_hydrogens else 'one hydrogen added per heavy atom'}",
        f"{'chain length':<14} {'chains':>6} {'residues':>9} {'atoms/res':>9} "
        f"{'ms/chain (median)':>17} {'residues/s':>10}",
    ]
    summary = {}
    for lo, hi in BUCKETS:
        rows = [c for c in chains if lo <= c["residues"] < hi]
        if not rows:
            continue
        res = sum(c["residues"] for c in rows)
        rate = res / sum(c["s"] for c in rows)
        label = f"{lo}-{hi}" if hi < 100_000 else f"≥{lo}"
        summary[label] = {"chains": len(rows), "residues": res, "residues_per_s": rate}
        lines.append(
            f"{label:<14} {len(rows):>6} {res:>9} "
            f"{sum(c['atoms'] for c in rows) / res:>9.1f} "
            f"{1000 * np.median([c['s'] for c in rows]):>17.1f} {rate:>10.0f}"
        )
    whole = sum(f["residues"] for f in files) / sum(f["s"] for f in files)
    lines.append(f"whole files (all chains at once): {len(files)} files, {whole:.0f} residues/s")
    print("\n".join(lines))
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "summary_by_chain_length": summary,
        "whole_files_residues_per_s": whole,
        "hydrogens_added": not args.no_hydrogens,
        "sasa_points": SASA_POINTS,
        "repeats": args.repeats,
        "biotite": biotite.__version__,
        "numpy": np.__version__,
        "cpu": platform.processor() or platform.machine(),
        "chains": chains,
        "files": files,
    }
    atomic_write_json(args.out / "features_speed.json", report, indent=1)
    print(f"wrote {args.out / 'features_speed.json'}")


if __name__ == "__main__":
    main()
