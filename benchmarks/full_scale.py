"""Full-scale rehearsal: mdCATH's size, from domain files to predictions, on this machine.

Generates ``--domains`` (default 5,398) mdCATH-layout domain files of realistic size and geometry
(``--residues`` in all, default 740,813: mean 137 a domain, lengths log-normal in 50-500), then
runs and times, each stage as its own process tree::

    import   voxelflex import mdcath --workers 1
    index    voxelflex index build (with the feature sidecar)
    shards   voxelflex shards build --workers 2
    loader   one epoch of the shard source's train split at batch size 1,024 (1 worker)
    train    voxelflex train, `small` preset, batch size 1,024: stopped (Ctrl-C) after the
             checkpoint at optimizer step 200
    predict  voxelflex predict on the test split with that checkpoint

Per stage: wall time, peak memory (PSS summed over the stage's processes, sampled every 0.2 s),
files and bytes written. Prints a table and writes ``full_scale.json`` to ``--out``.

The structures: :func:`voxelflex.demo.assemble.assemble_domain` cuts them from six real chains
shipped with the package (or from ``--structures``), with one hydrogen added per heavy atom
but O (mdCATH's structures carry hydrogens: about as many atoms again), named as CHARMM names
them (chain "0", HSD, OT1/OT2). One coordinate frame per replica keeps files small (≈0.5 MB a
domain; the importer never reads coordinates).

    python benchmarks/full_scale.py --out bench_out/full [--reuse] [--domains 5398]
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import biotite.structure as struc
import numpy as np
from _args import count  # benchmarks/ (scripts run from there)

from voxelflex.atomic import atomic_write_json, atomic_write_text
from voxelflex.demo.assemble import assemble_domain, source_chains, to_pdb_text
from voxelflex.demo.mdcath import charmm_pdb, write_mdcath_file
from voxelflex.engine.checkpoint import Checkpoint

TEMPERATURES = ("320", "348", "379", "413", "450")
TARGET_GB = 4.0


# ------------------------------------------------------------------ generation


def _lengths(n_domains: int, total: int, rng: np.random.Generator) -> np.ndarray:
    raw = np.exp(rng.normal(np.log(125), 0.42, n_domains))
    lengths = np.clip(np.round(raw * total / raw.sum()), 50, 500).astype(np.int64)
    while (diff := total - int(lengths.sum())) != 0:
        i = rng.integers(n_domains, size=abs(diff))
        np.add.at(lengths, i, np.sign(diff))
        lengths = np.clip(lengths, 50, 500)
    return lengths


def _with_hydrogens(atoms: struc.AtomArray) -> struc.AtomArray:
    """One H per heavy atom but O, 1 Å away (named H + the heavy atom's name)."""
    heavy = atoms[atoms.element != "O"]
    h = heavy.copy()
    h.coord = heavy.coord + np.float32(1.0) * np.array([0.577, 0.577, 0.577], np.float32)
    h.atom_name = np.array([("H" + n)[:4] for n in heavy.atom_name])
    h.element[:] = "H"
    merged = atoms + h
    order = np.lexsort((np.arange(merged.array_length()), merged.res_id))
    return merged[order]


def _domain_pdb(length: int, chains: list[struc.AtomArray], seed: int) -> str:
    """A domain of ``length`` residues cut from ``chains``, as mdCATH writes its structures."""
    atoms = assemble_domain(length, chains, np.random.default_rng(seed))
    return charmm_pdb(to_pdb_text(_with_hydrogens(atoms)))


def _write_domain(task, out_dir: str) -> int:
    index, length, chains = task
    dom = f"{index:04d}A00"
    text = _domain_pdb(int(length), chains, seed=index)
    rng = np.random.default_rng(10_000 + index)
    profile = 0.06 + 0.5 * np.exp(-rng.gamma(2.0, 1.0, size=int(length)))
    codes = rng.choice(np.array(["H", "E", "-", "T"]), size=int(length))

    def rmsf(t: str, rep: int, n: int) -> np.ndarray:
        noise = np.exp(np.random.default_rng([index, int(t), rep]).normal(0, 0.1, n))
        return profile[:n] * (1 + 1.2 * (int(t) - 320) / 130) * noise

    def dssp(t: str, rep: int, frames: int, n: int) -> np.ndarray:
        return np.broadcast_to(codes[:n], (frames, n))

    write_mdcath_file(
        Path(out_dir) / f"mdcath_dataset_{dom}.h5", dom, text, rmsf=rmsf, dssp=dssp, frames=1
    )
    return int(length)


def generate(
    out: Path, n_domains: int, total: int, workers: int, structures: Path | None = None
) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    chains = source_chains(None if structures is None else [structures])
    lengths = _lengths(n_domains, total, np.random.default_rng(0))
    tasks = [(i, n, chains) for i, n in enumerate(lengths)]
    work = functools.partial(_write_domain, out_dir=str(out))
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        written = sum(pool.imap_unordered(work, tasks, chunksize=8))
    return {"domains": n_domains, "residues": written, "source_chains": len(chains)}


# ------------------------------------------------------------------ measurement


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def _pss_kib(root: int) -> int:
    """PSS of ``root`` and all its descendants, KiB."""
    kids, total, todo = _children(), 0, [root]
    while todo:
        pid = todo.pop()
        todo += kids.get(pid, [])
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            pass
    return total


class Sampler(threading.Thread):
    """Peak PSS of a process tree, sampled every ``interval`` seconds."""

    def __init__(self, pid: int, interval: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak, self.done = pid, interval, 0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, _pss_kib(self.pid))
            self.done.wait(self.interval)


def _tree(paths: list[Path]) -> tuple[int, int]:
    files = size = 0
    for p in paths:
        if p.is_file():
            files, size = files + 1, size + p.stat().st_size
        elif p.is_dir():
            for dirpath, _, names in os.walk(p):
                for n in names:
                    files += 1
                    size += os.path.getsize(os.path.join(dirpath, n))
    return files, size


def run_stage(
    name: str,
    cmd: list[str],
    outputs: list[Path],
    log_dir: Path,
    stop=None,
    one_thread: bool = False,
) -> dict:
    """Run ``cmd``; ``stop()`` (optional) is polled and may end it with SIGINT. ``one_thread``
    pins BLAS/OpenMP to one thread (a ``--workers 1`` stage then uses one core)."""
    log = open(log_dir / f"{name}.log", "w")  # noqa: SIM115 (the child writes to it)
    env = dict(os.environ)
    if one_thread:
        env |= {v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    sampler = Sampler(proc.pid)
    sampler.start()
    stopped_at = None
    while proc.poll() is None:
        if stop is not None and stopped_at is None and stop():
            stopped_at = time.perf_counter() - t0
            proc.send_signal(signal.SIGINT)
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    sampler.done.set()
    sampler.join()
    log.close()
    rc = proc.returncode
    ok = rc == 0 or (stop is not None and stopped_at is not None)
    if not ok:
        tail = (log_dir / f"{name}.log").read_text()[-3000:]
        raise SystemExit(f"stage {name} failed (exit {rc}):\n{tail}")
    files, size = _tree(outputs)
    return {
        "stage": name,
        "command": " ".join(map(str, cmd)),
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime, 1),
        "stopped_at_s": None if stopped_at is None else round(stopped_at, 1),
        "peak_pss_gb": round(sampler.peak / 2**20, 3),
        "files": files,
        "bytes": size,
    }


def _loader_epoch(work: Path) -> None:
    """Stage helper: one epoch of the shard source, train split, batch 1,024, one worker."""
    from voxelflex.index import read_index
    from voxelflex.sources import PlanConfig, open_source

    src = open_source(
        "shards", read_index(work / "index.parquet"), split="train", shards_dir=work / "shards"
    )
    cfg = PlanConfig(batch_size=1024, num_workers=1, seed=0)
    t0, samples, batches = time.perf_counter(), 0, 0
    for batch in src.loader(cfg, epoch=0):
        samples += int((batch.row_id >= 0).sum())
        batches += 1
    wall = time.perf_counter() - t0
    print(json.dumps({"samples": samples, "batches": batches, "seconds": wall}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench_out/full"))
    ap.add_argument("--domains", type=count(1), default=5398)
    ap.add_argument("--residues", type=count(1), default=740_813)
    ap.add_argument("--reuse", action="store_true", help="keep the generated domain files")
    ap.add_argument("--steps", type=count(1), default=200)
    ap.add_argument(
        "--structures",
        type=Path,
        help="folder of structure files to cut domains from (e.g. the real set of "
        "tools/real_set; default: the six chains shipped in voxelflex/demo/chains)",
    )
    ap.add_argument("--stage", help=argparse.SUPPRESS)
    args = ap.parse_args()
    out = args.out.resolve()
    work = out / "work"
    if args.stage == "loader":
        return _loader_epoch(work)
    gen = out / "mdcath"
    logs = out / "logs"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    logs.mkdir(parents=True, exist_ok=True)
    results: dict = {"stages": []}
    made = out / "generated.json"
    if not (args.reuse and made.is_file()):
        shutil.rmtree(gen, ignore_errors=True)
        t0 = time.perf_counter()
        info = generate(gen, args.domains, args.residues, workers=2, structures=args.structures)
        info["structures"] = str(args.structures or "voxelflex/demo/chains")
        info["seconds"] = round(time.perf_counter() - t0, 1)
        atomic_write_text(made, json.dumps(info) + "\n")
    results["generated"] = json.loads(made.read_text())
    files, size = _tree([gen])
    results["input"] = {"files": files, "bytes": size}
    vf = [sys.executable, "-m", "voxelflex"]
    ds = work / "dataset"
    index = work / "index.parquet"
    shards = work / "shards"
    stages = results["stages"]
    stages.append(run_stage(
        "import", [*vf, "import", "mdcath", gen, "-o", ds, "--workers", "1", "--no-progress"],
        [ds, work / "dataset.log"], logs, one_thread=True,
    ))  # fmt: skip
    report = json.loads((ds / "import_report.json").read_text())
    results["import_report"] = {
        k: report[k] for k in ("domains", "residues", "rows", "skipped", "seconds")
    }
    splits = [
        x for s in ("train", "val", "test") for x in (f"--{s}-split", ds / "splits" / f"{s}.txt")
    ]
    stages.append(run_stage(
        "index",
        [*vf, "index", "build", "--voxel-file", ds / "voxels.hdf5", "--rmsf-csv", ds / "rmsf.csv",
         "--rmsf-unit", "nm", "--features", ds / "voxels.features.parquet",
         *splits,
         "-o", index, "--no-progress"],
        [index, work / "index.log"], logs,
    ))  # fmt: skip
    stages.append(run_stage(
        "shards", [*vf, "shards", "build", "--index", index, "-o", shards, "--workers", "2",
                   "--no-progress"], [shards, work / "shards.log"], logs,
    ))  # fmt: skip
    stages.append(run_stage(
        "loader", [sys.executable, __file__, "--out", out, "--stage", "loader"], [], logs
    ))  # fmt: skip
    stages[-1]["loader"] = json.loads((logs / "loader.log").read_text().strip().splitlines()[-1])
    run_dir = work / "runs" / "full"
    latest = run_dir / "models" / "latest.pt"
    stages.append(run_stage(
        "train",
        [*vf, "train", "--index", index, "--source", "shards", "--shards-dir", shards,
         "--batch-size", "1024", "--preset", "small", "--device", "cpu",
         "--set", f"output_dir={work / 'runs'}", "--set", "run_name=full",
         "--set", "loader.num_workers=1", "--set", f"train.checkpoint_every_batches={args.steps}",
         "--set", "train.progress=false", "--set", "train.plot=false"],
        [run_dir], logs, stop=latest.is_file,
    ))  # fmt: skip
    stages[-1]["global_step"] = Checkpoint.load(latest).meta.global_step
    pred = work / "predictions_test.parquet"
    stages.append(run_stage(
        "predict",
        [*vf, "predict", "-c", latest, "-i", index, "--split", "test", "--source", "shards",
         "--shards-dir", shards, "--device", "cpu", "-o", pred, "--no-progress"],
        [pred, work / "predictions_test.log"], logs,
    ))  # fmt: skip
    _print(results)
    atomic_write_json(out / "full_scale.json", results, default=str)


def _print(results: dict) -> None:
    print(
        f"{'stage':8s} {'wall s':>8s} {'CPU s':>8s} {'peak PSS GB':>12s} {'files':>7s} "
        f"{'GB written':>11s}"
    )
    for s in results["stages"]:
        flag = "" if s["peak_pss_gb"] <= TARGET_GB else "  > 4 GB"
        print(
            f"{s['stage']:8s} {s['wall_s']:8.1f} {s['cpu_s']:8.1f} {s['peak_pss_gb']:12.3f} "
            f"{s['files']:7d} "
            f"{s['bytes'] / 1e9:11.3f}{flag}"
        )
    rep = results["import_report"]
    sec = rep["seconds"]
    print(f"import: {rep['residues'] / sec['wall']:.0f} residues/s over the whole import")
    for part in ("read", "rename", "parse", "frames", "compress", "features", "rows", "part",
                 "write_hdf5", "write_tables"):  # fmt: skip
        if sec.get(part):
            print(f"  {part:12s} {sec[part]:8.1f} s  {rep['residues'] / sec[part]:10.0f} res/s")


if __name__ == "__main__":
    main()
