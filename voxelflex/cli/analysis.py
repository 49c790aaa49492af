"""``voxelflex predict``, ``voxelflex evaluate`` and ``voxelflex plot`` (alias ``visualize``).

Each command parses its options and calls one function of :mod:`voxelflex.analysis`. Predict
and evaluate read the same configuration as training (``--config``, ``--set``; a run's
``config.yaml`` applies as is), with flags for the keys they use most.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from voxelflex.cli.options import (
    ConfigOption,
    DeviceOption,
    OverwriteOption,
    ProgressOption,
    SetOption,
    ShardsDirOption,
    SourceOption,
    WorkersOption,
    build_config,
    console_logging,
    input_option,
    output_option,
    reports_here,
    with_default,
)
from voxelflex.cli.structure import Altloc, AltlocOption, Keys, KeysOption
from voxelflex.errors import InputError
from voxelflex.formats import BFACTOR_MODES, ImageFormat, TableFormat
from voxelflex.wording import counted

__all__ = ["evaluate", "plot", "predict"]

BfactorAs = StrEnum("BfactorAs", [(m, m) for m in BFACTOR_MODES])

ResiduesOption = Annotated[
    int | None,
    typer.Option(
        "--residues-per-batch",
        "--batch-size",
        help=with_default(
            "Residues a batch holds, each with all its temperatures (predict.residues_per_batch;"
            " --batch-size is the earlier spelling, kept as an alias).",
            "predict.residues_per_batch",
        ),
    ),
]


def predict(
    checkpoint: Annotated[
        Path, input_option("--checkpoint", "-c", help="Trained model (best.pt).")
    ],
    index: Annotated[
        str | None,
        typer.Option(
            "--index", "-i", help="Sample index (index.parquet; path or URL); or --structure."
        ),
    ] = None,
    structure: Annotated[
        list[Path] | None,
        input_option(
            "--structure",
            help="PDB/mmCIF file or folder to predict on directly (repeatable; voxelized in "
            "memory, no HDF5 written).",
        ),
    ] = None,
    bfactor_temperature: Annotated[
        float | None,
        typer.Option(
            help="--structure: temperature (K) written into the structure copies' B-factor "
            "column (default: the first requested)."
        ),
    ] = None,
    bfactor_as: Annotated[
        BfactorAs,
        typer.Option(
            help="--structure: write RMSF in Å, or the B-factor 8π²/3·RMSF² in Å² (a checkpoint "
            "trained with train.target_norm=domain writes its relative score 50 + 10 z)."
        ),
    ] = BfactorAs.rmsf,
    bfactor_dir: Annotated[
        Path | None,
        output_option(
            help="--structure: folder of the structure copies (default <output stem>_structures).",
        ),
    ] = None,
    keys: KeysOption = Keys.aposteriori,
    altloc: AltlocOption = Altloc.first,
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
        Path | None, input_option(help="File of domain ids, one a line ('#' comments).")
    ] = None,
    temperature: Annotated[
        list[str] | None,
        typer.Option("--temperature", "-t", metavar="K", help="Temperature in K (repeatable)."),
    ] = None,
    temperatures: Annotated[
        str | None,
        typer.Option(help="Sweep START:STOP:STEP in K, stop included, e.g. 300:450:10."),
    ] = None,
    source: SourceOption = None,
    shards_dir: ShardsDirOption = None,
    output: Annotated[
        Path | None,
        output_option(
            "--output",
            "-o",
            help="Output .parquet or .csv; default <run>/metrics/predictions_<split>.<format>, "
            "with --structure <first file or folder name>_predictions.<format> here.",
        ),
    ] = None,
    fmt: Annotated[
        TableFormat | None,
        typer.Option(
            "--format",
            help="Format when --output is not given (default parquet); with --output, its "
            "suffix decides.",
        ),
    ] = None,
    residues_per_batch: ResiduesOption = None,
    workers: WorkersOption = None,
    device: DeviceOption = None,
    progress: ProgressOption = None,
    overwrite: OverwriteOption = False,
    config: ConfigOption = None,
    set_: SetOption = None,
) -> None:
    """Predict RMSF with a checkpoint at one or more temperatures; write CSV or Parquet.

    On an index (--index), or straight on structure files (--structure), which also writes a
    copy of each structure with the predicted RMSF (Å) as its B-factors. A CSV is plain (header
    line, then rows) with its metadata in NAME.csv.json beside it; Parquet keeps the metadata in
    the file.

    \b
    Examples:
      voxelflex predict -c outputs/run/models/best.pt -i work/index.parquet
      voxelflex predict -c best.pt -i pred_index.parquet --split predict \\
          --temperatures 300:450:10 -o sweep.csv
      voxelflex predict -c best.pt --structure my.pdb -t 300 -o my_rmsf.csv
    """
    from voxelflex.analysis.predict import predict as run_predict
    from voxelflex.analysis.structures import predict_structures
    from voxelflex.analysis.temperatures import parse_temperature, resolve_temperatures
    from voxelflex.errors import ConfigError
    from voxelflex.inputs.splits import read_split_file

    _refuse_config_as_checkpoint(checkpoint)
    cfg = build_config(
        config,
        set_,
        {
            "loader.source": source,
            "data.shards_dir": shards_dir,
            "predict.residues_per_batch": residues_per_batch,
            "predict.progress": progress,
            "loader.num_workers": workers,
            "train.device": device,
        },
    )
    console_logging(cfg.log_level)
    singles = [parse_temperature(t, option="--temperature") for t in temperature or ()]
    temps = resolve_temperatures(singles, temperatures)
    if (index is None) == (not structure):
        raise ConfigError("predict needs either --index INDEX or --structure FILE|DIR (one)")
    _refuse_unused(
        "--index" if structure else "--structure",
        {  # the options of the other input, as given (a flag's default counts as not given)
            "--bfactor-temperature": bfactor_temperature is not None,
            "--bfactor-as": bfactor_as != BfactorAs.rmsf,
            "--bfactor-dir": bfactor_dir is not None,
            "--keys": keys != Keys.aposteriori,
            "--altloc": altloc != Altloc.first,
        }
        if index is not None
        else {
            "--split": split is not None,
            "--domain": bool(domain),
            "--domains-file": domains_file is not None,
            "--source": source is not None,
            "--shards-dir": shards_dir is not None,
        },
    )
    if fmt is not None and output is not None and output.suffix.lower() != f".{fmt.value}":
        # -o x.parquet --format csv wrote Parquet: the flag was silently overruled
        raise typer.BadParameter(
            f"--format {fmt.value}, but --output {output} names another format: the output's "
            f"suffix decides; drop --format or name the output .{fmt.value}",
            param_hint="--format",
        )
    fmt = fmt or TableFormat.parquet
    if structure:
        name = structure[0].resolve().name.split(".")[0]  # resolved: `.` has no name
        report = predict_structures(
            checkpoint,
            structure,
            # the -t values first, in the order given: the copies' default is the first of them
            temperatures=() if temps is None else [*singles, *temps],
            out_path=output or Path(f"{name}_predictions.{fmt}"),
            bfactor_dir=bfactor_dir,
            bfactor_temperature=bfactor_temperature,
            bfactor_as=bfactor_as.value,
            keys=keys.value,
            altloc=altloc.value,
            overwrite=overwrite,
            config=cfg,
        )
        typer.echo(
            f"predictions: {report.path} ({counted(report.n_residues, 'residue')} of "
            f"{counted(report.files, 'structure file')}, {counted(report.n_rows, 'row')}); "
            "structure copies with the predicted "
            f"{report.bfactor_content} at {report.bfactor_temperature:g} K in the B-factor "
            f"column: {report.bfactor_dir}"
        )
        if report.missing_path is not None:
            typer.echo(f"not predicted: {report.n_missing} items, reasons in {report.missing_path}")
        return
    domains = list(domain or [])
    if domains_file is not None:
        listed = read_split_file(domains_file, what="domain list", option="--domains-file")
        if not listed:  # an empty list is no filter below: it would predict the whole split
            raise InputError(
                f"{domains_file} lists no domain id (blank lines and # comments are skipped); "
                "write one domain id a line"
            )
        domains += listed
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
    if not reports_here():
        return
    typer.echo(
        f"predictions: {report.path} ({counted(report.n_residues, 'residue')} × "
        f"{counted(len(report.temperatures), 'temperature')} = {counted(report.n_rows, 'row')})"
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


def _refuse_config_as_checkpoint(checkpoint: Path | None) -> None:
    """Refuse a config file given as ``-c``: ``train -c`` takes the config, ``predict -c`` and
    ``evaluate -c`` the checkpoint, and torch's error on a YAML file named neither."""
    from voxelflex.errors import ConfigError

    if checkpoint is not None and checkpoint.suffix.lower() in (".yaml", ".yml"):
        raise ConfigError(
            f"--checkpoint/-c {checkpoint} is a config file; -c here takes the trained model "
            "(<run>/models/best.pt): pass a config with --config"
        )


def _refuse_unused(owner: str, given: dict[str, bool]) -> None:
    """Refuse options that only ``owner`` (``--index`` or ``--structure``) uses: silently
    ignored, they would look applied."""
    from voxelflex.errors import ConfigError

    used = [name for name, on in given.items() if on]
    if used:
        other = "--structure" if owner == "--index" else "--index"
        raise ConfigError(
            f"{', '.join(used)} only appl{'ies' if len(used) == 1 else 'y'} to predict {owner}, "
            f"not to {other}; leave {'it' if len(used) == 1 else 'them'} out"
        )


def evaluate(
    predictions: Annotated[
        Path, input_option("--predictions", "-p", help="Output of `voxelflex predict`.")
    ],
    index: Annotated[
        str | None,
        typer.Option("--index", "-i", help="Index, path or URL (default: the predictions')."),
    ] = None,
    checkpoint: Annotated[
        Path | None, input_option("--checkpoint", "-c", help="Model (default: the predictions').")
    ] = None,
    output: Annotated[
        Path | None,
        output_option(
            "--output",
            "-o",
            help="Metrics JSON; default evaluation_metrics_<split>.json beside the predictions.",
        ),
    ] = None,
    importance: Annotated[
        bool | None,
        typer.Option(
            "--importance/--no-importance",
            help=with_default(
                "Permutation importance of temperature and each channel (evaluate.importance).",
                "evaluate.importance",
            ),
        ),
    ] = None,
    shuffles: Annotated[
        int | None,
        typer.Option(
            help=with_default(
                "Shuffles per input for importance (evaluate.shuffles).", "evaluate.shuffles"
            ),
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            help=with_default("Seed of the shuffles (evaluate.seed).", "evaluate.seed"),
        ),
    ] = None,
    source: SourceOption = None,
    shards_dir: ShardsDirOption = None,
    residues_per_batch: ResiduesOption = None,
    device: DeviceOption = None,
    progress: ProgressOption = None,
    overwrite: OverwriteOption = False,
    config: ConfigOption = None,
    set_: SetOption = None,
) -> None:
    """Metrics JSON: overall, per temperature, per domain, stratified, baselines, importance.

    Accessibility bins: --set 'evaluate.accessibility_bins=[0, 0.1, 0.4, 1.01]' (the default).

    \b
    Examples:
      voxelflex evaluate -p outputs/run/metrics/predictions_test.parquet
      voxelflex evaluate -p preds.csv --no-importance -o metrics.json
    """
    from voxelflex.analysis.evaluate import evaluate as run_evaluate
    from voxelflex.analysis.evaluate import format_summary

    _refuse_config_as_checkpoint(checkpoint)
    cfg = build_config(
        config,
        set_,
        {
            "loader.source": source,
            "data.shards_dir": shards_dir,
            "predict.residues_per_batch": residues_per_batch,
            "predict.progress": progress,
            "train.device": device,
            "evaluate.importance": importance,
            "evaluate.shuffles": shuffles,
            "evaluate.seed": seed,
        },
    )
    console_logging(cfg.log_level)
    report = run_evaluate(
        predictions,
        index_path=index,
        checkpoint=checkpoint,
        out_path=output,
        overwrite=overwrite,
        config=cfg,
    )
    typer.echo(format_summary(report.metrics))
    typer.echo(f"metrics: {report.path}")


def plot(
    run_dir: Annotated[
        Path | None,
        input_option(
            "--run-dir",
            "-r",
            help="Training run folder: finds training_history.json, metrics/predictions_<split> "
            "(an evaluated split with targets first; the log says which) and the "
            "evaluation_metrics_<split>.json of the same split.",
        ),
    ] = None,
    predictions: Annotated[
        Path | None, input_option("--predictions", "-p", help="Output of `voxelflex predict`.")
    ] = None,
    history: Annotated[Path | None, input_option(help="training_history.json")] = None,
    metrics: Annotated[
        Path | None,
        input_option(
            help="evaluation_metrics_<split>.json of the predictions' split (adds baselines; "
            "another split's or RMSF unit's is refused)."
        ),
    ] = None,
    output_dir: Annotated[
        Path | None,
        output_option(
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
    """Plots (PNG/SVG/PDF) and the CSV of the data behind each.

    \b
    Examples:
      voxelflex plot --run-dir outputs/run
      voxelflex plot -p preds.parquet --history run/training_history.json -o figs
    """
    from voxelflex.analysis.plots import default_plot_dir
    from voxelflex.analysis.plots import plot as run_plot

    console_logging()

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
