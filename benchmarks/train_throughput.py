"""Training throughput: model speed per architecture × preset, and how long training waits for data.

Sections (each prints a table; everything goes to one JSON file):

1. ``models``: samples/s of forward + backward + AdamW step for every architecture × preset on
   synthetic residue-grouped batches (R residues × 5 temperatures), on the CPU.
2. ``data_wait``: one real training epoch (``voxelflex.engine.train``, ``tiny`` preset) on a
   generated demo dataset with each source and 0/1 loader workers: samples/s and the fraction
   of the epoch spent waiting for the next batch.
3. ``cuda`` (only when a GPU is present; runs unchanged there): sections 1 and 2 on the GPU with
   mixed precision, channels-last 3D on and off, and the answer to "does one loader worker keep
   the GPU busy?" (target: data wait < 5 % of the epoch).

Usage::

    python benchmarks/train_throughput.py                 # CPU: all sections that apply
    python benchmarks/train_throughput.py --quick         # fewer iterations, tiny+small only
    python benchmarks/train_throughput.py --skip-models --cuda-domains 400
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path

import torch
from _args import count  # benchmarks/ (scripts run from there)

from voxelflex.atomic import atomic_write_json, atomic_write_text
from voxelflex.models import ModelSpec, build_model, parameter_counts
from voxelflex.registry import ARCHITECTURES, PRESETS

T_RANGE = (320.0, 450.0)
TEMPERATURES = torch.tensor([320.0, 348.0, 379.0, 413.0, 450.0])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def model_throughput(
    name: str,
    preset: str,
    *,
    device: torch.device,
    residues: int,
    iters: int,
    amp: torch.dtype | None = None,
    channels_last: bool = True,
    conditioning: str = "film",
) -> dict:
    """Samples/s of forward + backward + optimizer step on a synthetic batch."""
    torch.manual_seed(0)
    model = build_model(ModelSpec(name, preset, conditioning), temperature_range=T_RANGE)
    if not channels_last:
        model = model.to(memory_format=torch.contiguous_format)
        model.channels_last = False
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    voxels = (torch.rand((residues, 5, 21, 21, 21), device=device) < 0.01).float()
    residue_index = torch.arange(residues, device=device).repeat_interleave(len(TEMPERATURES))
    temperature = TEMPERATURES.to(device).repeat(residues)
    target = torch.randn(len(residue_index), device=device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)

    def step() -> None:
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            out = model(voxels.to(amp) if amp else voxels, residue_index, temperature, raw=True)
        loss = torch.nn.functional.mse_loss(out.float(), target)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    step()  # warm-up: kernel selection, allocator
    _sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(iters):
        step()
    _sync(device)
    dt = (time.perf_counter() - t0) / iters
    cpu = (time.process_time() - c0) / iters  # robust to other jobs sharing the cores
    return {
        "model": name,
        "preset": preset,
        "conditioning": conditioning,
        "device": str(device),
        "amp": str(amp).removeprefix("torch.") if amp else "fp32",
        "channels_last": channels_last,
        "parameters": parameter_counts(model)["total"],
        "residues_per_batch": residues,
        "samples_per_s": len(residue_index) / dt,
        "residues_per_s": residues / dt,
        "step_ms": 1000 * dt,
        "samples_per_cpu_s": len(residue_index) / cpu,
    }


def make_dataset(root: Path, n_domains: int, *, min_residues: int, max_residues: int) -> dict:
    """Generate demo inputs, the index and shards under ``root`` (reused when made with the
    same settings; ``made.json`` records them)."""
    from voxelflex.demo.generate import build_demo_index, generate_demo
    from voxelflex.sources import build_shards

    index_path = root / "index.parquet"
    shards_dir = root / "shards"
    made = root / "made.json"
    wanted = {"n_domains": n_domains, "min_residues": min_residues, "max_residues": max_residues}
    if not (made.is_file() and json.loads(made.read_text()) == wanted):
        if root.exists():
            shutil.rmtree(root)  # another size asked for: never measure a stale dataset
        paths = generate_demo(
            root / "inputs",
            n_domains=n_domains,
            min_residues=min_residues,
            max_residues=max_residues,
            seed=0,
        )
        build_demo_index(paths, index_path)
        build_shards(index_path, shards_dir, progress=False)
        atomic_write_text(made, json.dumps(wanted))
    return {"index": index_path, "shards_dir": shards_dir, **wanted}


def data_wait(
    data: dict,
    out_dir: Path,
    *,
    source: str,
    workers: int,
    device: str,
    preset: str,
    batch_size: int,
) -> dict:
    """One training epoch through the real engine; its timing entry."""
    from voxelflex.config import load_config
    from voxelflex.engine import train

    run_name = f"{source}_w{workers}_{device}_{preset}"
    config = load_config(
        overrides={
            "data.index": str(data["index"]),
            "data.shards_dir": str(data["shards_dir"]),
            "loader.source": source,
            "loader.num_workers": workers,
            "loader.batch_size": batch_size,
            "model.preset": preset,
            "train.epochs": 1,
            "train.device": device,
            "train.progress": False,
            "train.checkpoint_every_batches": 0,
            "train.threads": torch.get_num_threads(),
            "train.overwrite": True,  # a rerun with the same --out measures again
            "output_dir": str(out_dir),
            "run_name": run_name,
            "log_level": "WARNING",
        }
    )
    timing = train(config).history[0]["timing"]
    return {
        "source": source,
        "workers": workers,
        "device": device,
        "preset": preset,
        "batch_size": batch_size,
        **timing,
    }


def _table(rows: list[dict], cols: list[str]) -> str:
    def fmt(v) -> str:
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 10 else f"{v:,.0f}"
        return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)

    cells = [[fmt(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


MODEL_COLS = [
    "model",
    "preset",
    "amp",
    "channels_last",
    "parameters",
    "samples_per_s",
    "samples_per_cpu_s",
    "step_ms",
]
WAIT_COLS = ["source", "workers", "device", "preset", "samples_per_s", "data_wait_fraction"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("bench_out/train_throughput"))
    p.add_argument("--quick", action="store_true", help="tiny+small presets, fewer iterations")
    p.add_argument("--iters", type=count(1), default=3, help="timed steps per model")
    p.add_argument(
        "--residues", type=count(1), default=32, help="residues per CPU batch (x5 samples)"
    )
    p.add_argument(
        "--threads",
        type=count(0),
        default=1,
        help="torch CPU threads (default 1: per-core figures; OpenMP teams collapse when other "
        "jobs share the cores; 0: torch's default)",
    )
    p.add_argument("--skip-models", action="store_true")
    p.add_argument("--skip-data", action="store_true")
    p.add_argument("--demo-domains", type=count(1), default=24, help="CPU data-wait dataset size")
    p.add_argument("--cuda-domains", type=count(1), default=300, help="CUDA data-wait dataset size")
    p.add_argument("--cuda-residues", type=count(1), default=256, help="residues per GPU batch")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    presets = ("tiny", "small") if args.quick else PRESETS
    iters = 1 if args.quick else args.iters
    report: dict = {
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    cpu = torch.device("cpu")
    if not args.skip_models:
        rows = [
            model_throughput(n, pr, device=cpu, residues=args.residues, iters=iters)
            for n in ARCHITECTURES
            for pr in presets
        ]
        report["models_cpu"] = rows
        print("\n## CPU: forward + backward + AdamW step (film conditioning)\n")
        print(_table(rows, MODEL_COLS))
    if not args.skip_data:
        data = make_dataset(args.out / "demo", args.demo_domains, min_residues=30, max_residues=60)
        rows = [
            data_wait(data, args.out / "runs", source=s, workers=w, device="cpu",
                      preset="tiny", batch_size=256)
            for s in ("hdf5", "shards")
            for w in (0, 1)
        ]  # fmt: skip
        report["data_wait_cpu"] = rows
        report["data_wait_cpu_dataset"] = {
            k: data[k] for k in ("n_domains", "min_residues", "max_residues")
        }
        print("\n## CPU: one training epoch (tiny), time waiting for data\n")
        print(_table(rows, WAIT_COLS))
    if torch.cuda.is_available():
        report["cuda_section"] = cuda_section(args)
    else:
        print("\n(no CUDA device: CUDA section skipped)")
    path = args.out / "train_throughput.json"
    atomic_write_json(path, report, indent=1)
    print(f"\nwrote {path}")


def cuda_section(args) -> dict:
    """GPU: AMP model speed with/without channels-last; data wait with one loader worker."""
    gpu = torch.device("cuda")
    amp = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    out: dict = {}
    if not args.skip_models:
        rows = [
            model_throughput(
                n, pr, device=gpu, residues=args.cuda_residues, iters=max(5, args.iters),
                amp=amp, channels_last=cl,
            )
            for n in ARCHITECTURES
            for pr in ("small", "base")
            for cl in (False, True)
        ]  # fmt: skip
        out["models"] = rows
        print(f"\n## CUDA ({torch.cuda.get_device_name(0)}): forward + backward, {amp}\n")
        print(_table(rows, MODEL_COLS))
    if not args.skip_data:
        data = make_dataset(
            args.out / "cuda_data", args.cuda_domains, min_residues=80, max_residues=200
        )
        rows = [
            data_wait(data, args.out / "runs", source=s, workers=1, device="cuda",
                      preset=pr, batch_size=1024)
            for s in ("shards", "hdf5")
            for pr in ("small", "base")
        ]  # fmt: skip
        for r in rows:
            r["gpu_kept_busy"] = r["data_wait_fraction"] < 0.05
        out["data_wait"] = rows
        print("\n## CUDA: one epoch with ONE loader worker (target: data wait < 5 %)\n")
        print(_table(rows, [*WAIT_COLS, "gpu_kept_busy"]))
    return out


if __name__ == "__main__":
    main()
