"""``voxelflex train``: parse options into a :class:`~voxelflex.config.Config`, call the engine.

Precedence, lowest first: packaged defaults, ``--config`` file, ``--set key.sub=value``, then
the plain flags. Under ``torchrun --nproc_per_node=N -m voxelflex train ...`` the same command
trains with DistributedDataParallel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from voxelflex.cli.options import (
    Architecture,
    Conditioning,
    DeviceOption,
    Preset,
    RmsfUnit,
    Scheduler,
    SetOption,
    ShardsDirOption,
    SourceOption,
    WorkersOption,
    build_config,
    input_option,
    output_option,
    reports_here,
    with_default,
)

__all__ = ["train"]


def train(
    config: Annotated[Path | None, input_option("--config", "-c", help="YAML config.")] = None,
    set_: SetOption = None,
    index: Annotated[
        str | None,
        typer.Option(
            "--index",
            "-i",
            help="Sample index from `voxelflex index build`, a path or URL (data.index).",
        ),
    ] = None,
    voxel_file: Annotated[
        Path | None,
        input_option(
            help="Voxel HDF5, to build an index when --index is absent (data.voxel_file)."
        ),
    ] = None,
    rmsf_csv: Annotated[
        Path | None, input_option(help="RMSF CSV, with --voxel-file (data.rmsf_csv).")
    ] = None,
    rmsf_unit: Annotated[
        RmsfUnit | None, typer.Option(help="Unit of the RMSF CSV (data.rmsf_unit).")
    ] = None,
    train_split: Annotated[
        Path | None, input_option(help="Train domain ids file (data.train_split).")
    ] = None,
    val_split: Annotated[
        Path | None, input_option(help="Validation domain ids file (data.val_split).")
    ] = None,
    test_split: Annotated[
        Path | None, input_option(help="Test domain ids file (data.test_split).")
    ] = None,
    source: SourceOption = None,
    shards_dir: ShardsDirOption = None,
    model: Annotated[
        Architecture | None,
        typer.Option(
            help=with_default("Architecture (model.name).", "model.name"),
        ),
    ] = None,
    preset: Annotated[
        Preset | None,
        typer.Option(
            help=with_default(
                "Model size (model.preset); model.hyperparameters override parts of it.",
                "model.preset",
            ),
        ),
    ] = None,
    conditioning: Annotated[
        Conditioning | None,
        typer.Option(
            help=with_default(
                "How temperature enters after the trunk (model.conditioning).", "model.conditioning"
            ),
        ),
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(
            help=with_default("Epochs (train.epochs).", "train.epochs"),
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            help=with_default(
                "Max samples (residue x temperature rows) per batch (loader.batch_size).",
                "loader.batch_size",
            ),
        ),
    ] = None,
    grad_accumulation: Annotated[
        int | None,
        typer.Option(
            help=with_default(
                "Optimizer step every N batches (train.grad_accumulation).",
                "train.grad_accumulation",
            ),
        ),
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option(
            help=with_default("Peak learning rate (train.lr).", "train.lr"),
        ),
    ] = None,
    scheduler: Annotated[
        Scheduler | None,
        typer.Option(
            help=with_default("Learning-rate schedule (train.scheduler).", "train.scheduler"),
        ),
    ] = None,
    device: DeviceOption = None,
    output_dir: Annotated[
        Path | None,
        output_option(
            help=with_default("Folder of runs (output_dir).", "output_dir"),
        ),
    ] = None,
    run_name: Annotated[
        str | None,
        typer.Option(
            help=with_default("Run folder name (run_name).", "run_name"),
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from <run>/models/latest.pt (train.resume).")
    ] = False,
    init_from: Annotated[
        Path | None,
        input_option(
            help="Start a new run from this checkpoint (fine-tuning; train.init_from): its "
            "model, weights, temperature scaling and target and feature standardisation, so "
            "it starts predicting what the checkpoint predicts; extrapolation is counted "
            "outside the union of its and the new data's temperature range."
        ),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Start over in a run folder that holds a run, deleting it (train.overwrite).",
        ),
    ] = False,
    workers: WorkersOption = None,
    seed: Annotated[
        int | None,
        typer.Option(
            help=with_default("Seed of the plan, init and dropout (loader.seed).", "loader.seed"),
        ),
    ] = None,
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress",
            help=with_default(
                "Progress bars of training and validation (train.progress).", "train.progress"
            ),
        ),
    ] = None,
    plot: Annotated[
        bool | None,
        typer.Option(
            "--plot/--no-plot",
            help=with_default(
                "Draw the training curves into <run>/visualizations at the end (train.plot).",
                "train.plot",
            ),
        ),
    ] = None,
) -> None:
    """Train a temperature-aware RMSF model into a run folder.

    Outputs go to <output-dir>/<run-name>/ (checkpoints in models/, training_history.json,
    logs/voxelflex.log, config.yaml, visualizations/). Settings, lowest first: packaged
    defaults (`voxelflex config show`), --config, --set, then these flags. Under
    `torchrun --nproc_per_node=N -m voxelflex train ...` it trains with
    DistributedDataParallel.

    \b
    Examples:
      voxelflex train --index work/index.parquet --preset small --run-name mdcath
      voxelflex train --config run.yaml --set train.scheduler=step
      voxelflex train --index new/index.parquet --run-name tuned --lr 1e-4 \\
          --init-from outputs/mdcath/models/best.pt
    """
    from voxelflex.analysis.plots import plot_training_run
    from voxelflex.engine import train as run_train
    from voxelflex.engine.report import error_unit, format_metric

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
            "train.scheduler": scheduler,
            "train.grad_accumulation": grad_accumulation,
            "train.device": device,
            "train.progress": progress,
            "train.plot": plot,
            "train.init_from": init_from,
            "output_dir": output_dir,
            "run_name": run_name,
            "train.resume": True if resume else None,
            "train.overwrite": True if overwrite else None,
        },
    )
    result = run_train(cfg)
    if not reports_here():
        return  # rank 0 also draws
    if cfg.train.plot and result.history:
        plot_training_run(result.run_dir)
    if result.history:
        last = result.history[-1]
        val = last["val"]
        typer.echo(
            f"done ({result.stop_reason}, {result.global_step} optimizer steps): last val "
            f"pearson {format_metric(val['pearson'], '.3f')}, rmse "
            f"{format_metric(val['rmse'], '.4f')} {error_unit(last)}; best model "
            f"{result.best_checkpoint}"
            + (f"; plots in {result.run_dir / 'visualizations'}" if cfg.train.plot else "")
        )
