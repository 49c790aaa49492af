"""``voxelflex train``: parse options into a :class:`~voxelflex.config.Config`, call the engine.

Precedence, lowest first: packaged defaults, ``--config`` file, ``--set key.sub=value``, then
the plain flags. Under ``torchrun --nproc_per_node=N -m voxelflex train ...`` the same command
trains with DistributedDataParallel.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from voxelflex.config import choices

__all__ = ["train"]


def _choice(name: str, key: str) -> type[StrEnum]:
    """A Typer choice type listing the values the config declares for ``key``."""
    return StrEnum(name, [(value, value) for value in choices(key)])


Source = _choice("Source", "loader.source")
Architecture = _choice("Architecture", "model.name")
Preset = _choice("Preset", "model.preset")
Conditioning = _choice("Conditioning", "model.conditioning")
Device = _choice("Device", "train.device")
RmsfUnit = _choice("RmsfUnit", "data.rmsf_unit")


def train(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML config.")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help="Override a config key: key.sub=value (repeatable)."),
    ] = None,
    index: Annotated[
        Path | None, typer.Option(help="Sample index from `voxelflex index build`.")
    ] = None,
    voxel_file: Annotated[
        Path | None, typer.Option(help="Voxel HDF5, to build an index when --index is absent.")
    ] = None,
    rmsf_csv: Annotated[Path | None, typer.Option(help="RMSF CSV (with --voxel-file).")] = None,
    rmsf_unit: Annotated[RmsfUnit | None, typer.Option(help="Unit of the RMSF CSV.")] = None,
    train_split: Annotated[Path | None, typer.Option(help="Train domain ids file.")] = None,
    val_split: Annotated[Path | None, typer.Option(help="Validation domain ids file.")] = None,
    test_split: Annotated[Path | None, typer.Option(help="Test domain ids file.")] = None,
    source: Annotated[Source | None, typer.Option(help="Sample source.")] = None,
    shards_dir: Annotated[
        Path | None, typer.Option(help="Shards folder (for --source shards).")
    ] = None,
    model: Annotated[Architecture | None, typer.Option(help="Architecture.")] = None,
    preset: Annotated[Preset | None, typer.Option(help="Model size.")] = None,
    conditioning: Annotated[
        Conditioning | None, typer.Option(help="How temperature enters after the trunk.")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs.")] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Max samples (residue x temperature) per batch.")
    ] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate.")] = None,
    device: Annotated[Device | None, typer.Option(help="Training device.")] = None,
    output_dir: Annotated[Path | None, typer.Option(help="Folder of runs.")] = None,
    run_name: Annotated[str | None, typer.Option(help="Run folder name.")] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from <run>/models/latest.pt.")
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite", help="Start over in a run folder that holds a run (deletes it)."
        ),
    ] = False,
    workers: Annotated[int | None, typer.Option(help="DataLoader workers per rank.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed (plan, init, dropout).")] = None,
) -> None:
    """Train a temperature-aware RMSF model; outputs go to <output-dir>/<run-name>/."""
    from voxelflex.config import load_config
    from voxelflex.engine import train as run_train

    flags: dict[str, Any] = {
        "data.index": index,
        "data.voxel_file": voxel_file,
        "data.rmsf_csv": rmsf_csv,
        "data.rmsf_unit": rmsf_unit,
        "data.train_split": train_split,
        "data.val_split": val_split,
        "data.test_split": test_split,
        "data.shards_dir": shards_dir,
        "loader.source": source,
        "loader.batch_size": batch_size,
        "loader.num_workers": workers,
        "loader.seed": seed,
        "model.name": model,
        "model.preset": preset,
        "model.conditioning": conditioning,
        "train.epochs": epochs,
        "train.lr": lr,
        "train.device": device,
        "output_dir": output_dir,
        "run_name": run_name,
        "train.resume": True if resume else None,
        "train.overwrite": True if overwrite else None,
    }
    overrides = [*(set_ or [])]
    overrides += [
        f"{k}={v.value if isinstance(v, StrEnum) else v}" for k, v in flags.items() if v is not None
    ]
    result = run_train(load_config(config, overrides))
    if result.history and os.environ.get("RANK", "0") == "0":
        val = result.history[-1]["val"]
        typer.echo(
            f"done ({result.stop_reason}, {result.global_step} optimizer steps): last val "
            f"pearson {val['pearson']:.3f}, rmse {val['rmse']:.4f}; best model "
            f"{result.best_checkpoint}"
        )
