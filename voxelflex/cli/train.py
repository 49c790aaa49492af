"""``voxelflex train``: parse options into a :class:`~voxelflex.config.Config`, call the engine.

Precedence, lowest first: packaged defaults, ``--config`` file, ``--set key.sub=value``, then
the plain flags. Under ``torchrun --nproc_per_node=N -m voxelflex train ...`` the same command
trains with DistributedDataParallel.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from voxelflex.cli.options import (
    Architecture,
    Conditioning,
    DeviceOption,
    Preset,
    RmsfUnit,
    SetOption,
    ShardsDirOption,
    SourceOption,
    WorkersOption,
    build_config,
)

__all__ = ["train"]


def train(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML config.")] = None,
    set_: SetOption = None,
    index: Annotated[
        str | None, typer.Option(help="Sample index from `voxelflex index build` (path or URL).")
    ] = None,
    voxel_file: Annotated[
        Path | None, typer.Option(help="Voxel HDF5, to build an index when --index is absent.")
    ] = None,
    rmsf_csv: Annotated[Path | None, typer.Option(help="RMSF CSV (with --voxel-file).")] = None,
    rmsf_unit: Annotated[RmsfUnit | None, typer.Option(help="Unit of the RMSF CSV.")] = None,
    train_split: Annotated[Path | None, typer.Option(help="Train domain ids file.")] = None,
    val_split: Annotated[Path | None, typer.Option(help="Validation domain ids file.")] = None,
    test_split: Annotated[Path | None, typer.Option(help="Test domain ids file.")] = None,
    source: SourceOption = None,
    shards_dir: ShardsDirOption = None,
    model: Annotated[Architecture | None, typer.Option(help="Architecture.")] = None,
    preset: Annotated[Preset | None, typer.Option(help="Model size.")] = None,
    conditioning: Annotated[
        Conditioning | None, typer.Option(help="How temperature enters after the trunk.")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs.")] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Max samples (residue x temperature rows) per batch.")
    ] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate.")] = None,
    device: DeviceOption = None,
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
    workers: WorkersOption = None,
    seed: Annotated[int | None, typer.Option(help="Seed (plan, init, dropout).")] = None,
) -> None:
    """Train a temperature-aware RMSF model; outputs go to <output-dir>/<run-name>/."""
    from voxelflex.engine import train as run_train

    cfg = build_config(
        config,
        set_,
        {
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
        },
    )
    result = run_train(cfg)
    if result.history and os.environ.get("RANK", "0") == "0":
        val = result.history[-1]["val"]
        typer.echo(
            f"done ({result.stop_reason}, {result.global_step} optimizer steps): last val "
            f"pearson {val['pearson']:.3f}, rmse {val['rmse']:.4f}; best model "
            f"{result.best_checkpoint}"
        )
