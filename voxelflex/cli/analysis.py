"""``voxelflex predict``, ``voxelflex evaluate`` and ``voxelflex plot`` (alias ``visualize``).

Each command parses its options and calls one function of :mod:`voxelflex.analysis`. Predict
and evaluate read the same configuration as training (``--config``, ``--set``; a run's
``config.yaml`` applies as is), with flags for the keys they use most.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from voxelflex.cli.options import (
    ConfigOption,
    DeviceOption,
    OverwriteOption,
    SetOption,
    ShardsDirOption,
    SourceOption,
    WorkersOption,
    build_config,
)
from voxelflex.formats import ImageFormat, TableFormat

__all__ = ["evaluate", "plot", "predict"]

ResiduesOption = Annotated[
    int | None,
    typer.Option(
        "--residues-per-batch",
        "--batch-size",
        help="Residues a batch holds, each with all its temperatures (predict.residues_per_batch;"
        " --batch-size is the earlier spelling, kept as an alias).",
    ),
]


def predict(
    checkpoint: Annotated[
        Path, typer.Option("--checkpoint", "-c", help="Trained model (best.pt).")
    ],
    index: Annotated[
        str, typer.Option("--index", "-i", help="Sample index (index.parquet; path or URL).")
    ],
    split: Annotated[
        str | None,
        typer.Option(
            help="Split to predict (train, val, test, predict); default test, else "
            "predict. With --domain: only look in this split."
        ),
    ] = None,
    domain: Annotated[
        list[str] | None,
        typer.Option("--domain", "-d", help="Domain key or CSV id to predict (repeatable)."),
    ] = None,
    domains_file: Annotated[
        Path | None, typer.Option(help="File of domain ids, one a line ('#' comments).")
    ] = None,
    temperature: Annotated[
        list[float] | None,
        typer.Option("--temperature", "-t", help="Temperature in K (repeatable)."),
    ] = None,
    temperatures: Annotated[
        str | None,
        typer.Option(help="Sweep START:STOP:STEP in K, stop included, e.g. 300:450:10."),
    ] = None,
    source: SourceOption = None,
    shards_dir: ShardsDirOption = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Output .parquet or .csv; default <run>/metrics/predictions_<split>.<format>.",
        ),
    ] = None,
    fmt: Annotated[
        TableFormat, typer.Option("--format", help="Format when --output is not given.")
    ] = TableFormat.parquet,
    residues_per_batch: ResiduesOption = None,
    workers: WorkersOption = None,
    device: DeviceOption = None,
    overwrite: OverwriteOption = False,
    config: ConfigOption = None,
    set_: SetOption = None,
) -> None:
    """Predict RMSF with a checkpoint at one or more temperatures; write CSV or Parquet."""
    from voxelflex.analysis.predict import predict as run_predict
    from voxelflex.analysis.temperatures import resolve_temperatures
    from voxelflex.inputs.splits import read_split_file

    cfg = build_config(
        config,
        set_,
        {
            "loader.source": source,
            "data.shards_dir": shards_dir,
            "predict.residues_per_batch": residues_per_batch,
            "loader.num_workers": workers,
            "train.device": device,
        },
    )
    domains = list(domain or [])
    if domains_file is not None:
        domains += read_split_file(domains_file, what="domain list", option="--domains-file")
    temps = resolve_temperatures(temperature or (), temperatures)
    report = run_predict(
        checkpoint,
        index,
        split=split,
        domains=domains or None,
        temperatures=temps,
        out_path=output,
        fmt=fmt.value,
        overwrite=overwrite,
        config=cfg,
    )
    typer.echo(
        f"predictions: {report.path} ({report.n_residues} residues × "
        f"{len(report.temperatures)} temperature{'s' if len(report.temperatures) > 1 else ''}"
        f" = {report.n_rows} rows)"
    )
    if report.extrapolated_temperatures:
        typer.echo(
            "extrapolated (outside the training range): "
            + ", ".join(f"{t:g} K" for t in report.extrapolated_temperatures)
        )
    if report.missing_path is not None:
        typer.echo(
            f"not predicted: {report.n_missing} domains/residues, reasons in {report.missing_path}"
        )


def evaluate(
    predictions: Annotated[
        Path, typer.Option("--predictions", "-p", help="Output of `voxelflex predict`.")
    ],
    index: Annotated[
        str | None,
        typer.Option("--index", "-i", help="Index, path or URL (default: the predictions')."),
    ] = None,
    checkpoint: Annotated[
        Path | None, typer.Option("--checkpoint", "-c", help="Model (default: the predictions').")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Metrics JSON; default evaluation_metrics_<split>.json beside the predictions.",
        ),
    ] = None,
    importance: Annotated[
        bool, typer.Option(help="Permutation importance of temperature and each channel.")
    ] = True,
    shuffles: Annotated[int, typer.Option(help="Shuffles per input for importance.")] = 3,
    seed: Annotated[int, typer.Option(help="Seed of the shuffles.")] = 0,
    source: SourceOption = None,
    shards_dir: ShardsDirOption = None,
    residues_per_batch: ResiduesOption = None,
    device: DeviceOption = None,
    overwrite: OverwriteOption = False,
    config: ConfigOption = None,
    set_: SetOption = None,
) -> None:
    """Metrics JSON: overall, per temperature, per domain, stratified, baselines, importance."""
    from voxelflex.analysis.evaluate import evaluate as run_evaluate
    from voxelflex.analysis.evaluate import format_summary

    cfg = build_config(
        config,
        set_,
        {
            "loader.source": source,
            "data.shards_dir": shards_dir,
            "predict.residues_per_batch": residues_per_batch,
            "train.device": device,
        },
    )
    report = run_evaluate(
        predictions,
        index_path=index,
        checkpoint=checkpoint,
        out_path=output,
        importance=importance,
        n_shuffles=shuffles,
        seed=seed,
        overwrite=overwrite,
        config=cfg,
    )
    typer.echo(format_summary(report.metrics))
    typer.echo(f"metrics: {report.path}")


def plot(
    run_dir: Annotated[
        Path | None,
        typer.Option(
            "--run-dir",
            "-r",
            help="Training run folder: finds training_history.json, "
            "metrics/predictions_* and evaluation_metrics_*.",
        ),
    ] = None,
    predictions: Annotated[Path | None, typer.Option("--predictions", "-p")] = None,
    history: Annotated[Path | None, typer.Option(help="training_history.json")] = None,
    metrics: Annotated[
        Path | None, typer.Option(help="evaluation_metrics_<split>.json (adds baselines).")
    ] = None,
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "--output-dir",
            "-o",
            help="Default <run-dir>/visualizations, else 'visualizations' beside the predictions.",
        ),
    ] = None,
    fmt: Annotated[ImageFormat, typer.Option("--format", help="Image format.")] = ImageFormat.png,
    domain: Annotated[
        str | None, typer.Option(help="Domain of the RMSF profile (default: median Pearson).")
    ] = None,
    residue: Annotated[
        list[str] | None,
        typer.Option(
            "--residue", help="DOMAIN:CHAIN:RESIDUE for the temperature response (repeatable)."
        ),
    ] = None,
    profile_temperature: Annotated[
        list[float] | None,
        typer.Option("--profile-temperature", help="Temperature (K) in the profile (repeatable)."),
    ] = None,
    overwrite: OverwriteOption = False,
) -> None:
    """Plots (PNG/SVG/PDF) and the CSV of the data behind each."""
    from voxelflex.analysis.plots import default_plot_dir
    from voxelflex.analysis.plots import plot as run_plot

    out = output_dir or default_plot_dir(run_dir=run_dir, predictions=predictions, history=history)
    paths = run_plot(
        out,
        run_dir=run_dir,
        predictions=predictions,
        history=history,
        metrics=metrics,
        fmt=fmt.value,
        domain=domain,
        residues=residue or None,
        profile_temperatures=profile_temperature or None,
        overwrite=overwrite,
    )
    images = [p for p in paths if p.suffix != ".csv"]
    typer.echo(f"{len(images)} plots (+ data CSVs) in {out}:")
    for p in images:
        typer.echo(f"  {p.name}")
