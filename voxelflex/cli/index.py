"""`voxelflex index build | query | stats`: parse options, call :mod:`voxelflex.index`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from voxelflex.cli.group import command_group
from voxelflex.cli.options import (
    OverwriteOption,
    RmsfUnit,
    SetOption,
    build_config,
    console_logging,
    input_option,
    output_option,
)
from voxelflex.errors import ConfigError
from voxelflex.formats import QueryFormat
from voxelflex.paths import refuse_url

__all__ = ["app", "build", "query", "stats"]

app = command_group("Build the sample index and query it with SQL (DuckDB).")


@app.command("build")
def build(
    voxel_file: Annotated[
        Path | None, input_option("--voxel-file", help="aposteriori HDF5 (data.voxel_file).")
    ] = None,
    output: Annotated[
        Path | None,
        output_option("--output", "-o", help="Index Parquet to write (data.index)."),
    ] = None,
    rmsf_csv: Annotated[
        Path | None, input_option("--rmsf-csv", help="Aggregated RMSF CSV (data.rmsf_csv).")
    ] = None,
    rmsf_unit: Annotated[
        RmsfUnit | None,
        typer.Option(
            "--rmsf-unit",
            help="Unit of target_rmsf; required with an RMSF CSV (data.rmsf_unit).",
        ),
    ] = None,
    train: Annotated[
        Path | None,
        input_option(
            "--train-split", "--train", help="Train split file (data.train_split; alias --train)."
        ),
    ] = None,
    val: Annotated[
        Path | None,
        input_option(
            "--val-split", "--val", help="Validation split file (data.val_split; alias --val)."
        ),
    ] = None,
    test: Annotated[
        Path | None,
        input_option(
            "--test-split", "--test", help="Test split file (data.test_split; alias --test)."
        ),
    ] = None,
    features: Annotated[
        Path | None,
        input_option(
            "--features",
            help="Structure-feature sidecar to join, from `voxelflex features` (data.features).",
        ),
    ] = None,
    deep: Annotated[
        bool,
        typer.Option("--deep", help="Check and read every voxel dataset, not a sample per chain."),
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    overwrite: OverwriteOption = False,
    config: Annotated[
        Path | None, input_option("--config", "-c", help="YAML config; flags override it.")
    ] = None,
    overrides: SetOption = None,
) -> None:
    """Join voxel keys, RMSF rows and splits into the sample index (Parquet).

    Without --rmsf-csv every voxelized residue becomes a `predict` row.

    Also writes NAME.skipped.csv (one reason per skipped item), NAME.temperature_range.json
    and the log NAME.log.

    \b
    Example:
      voxelflex index build --voxel-file voxels.hdf5 --rmsf-csv rmsf.csv \\
          --rmsf-unit nm --train-split train.txt --val-split val.txt \\
          --test-split test.txt -o work/index.parquet
    """
    from voxelflex.index import build_index

    flags = {
        "data.voxel_file": voxel_file,
        "data.index": output,
        "data.rmsf_csv": rmsf_csv,
        "data.rmsf_unit": rmsf_unit,
        "data.train_split": train,
        "data.val_split": val,
        "data.test_split": test,
        "data.features": features,
    }
    full = build_config(config, overrides, flags)
    console_logging(full.log_level)
    cfg = full.data
    if cfg.voxel_file is None or cfg.index is None:
        raise ConfigError(
            "index build needs a voxel file and an output path: pass --voxel-file and --output "
            "(or set data.voxel_file and data.index in the config)"
        )
    # data.index takes a URL (train and predict read one); index build writes a local file
    refuse_url(cfg.index, "index build's output (--output, data.index)", ConfigError)
    report = build_index(
        cfg.voxel_file,
        cfg.index,
        rmsf_csv=cfg.rmsf_csv,
        rmsf_unit=cfg.rmsf_unit,
        train=cfg.train_split,
        val=cfg.val_split,
        test=cfg.test_split,
        deep=deep,
        progress=progress,
        overwrite=overwrite,
        features=cfg.features,
    )
    typer.echo(report.summary())


@app.command("query")
def query(
    sql: Annotated[str, typer.Argument(help="One SELECT statement over the view `samples`.")],
    index: Annotated[str, typer.Option("--index", "-i", help="Index Parquet (path or URL).")],
    fmt: Annotated[QueryFormat, typer.Option("--format", "-f", help="Output format.")] = (
        QueryFormat.table
    ),
    output: Annotated[
        Path | None,
        output_option("--output", "-o", help="Write here instead of stdout."),
    ] = None,
    overwrite: OverwriteOption = False,
) -> None:
    """Run read-only SQL over the index (view `samples`); print or write the result.

    With -o the result goes to a file (refused if it exists, unless --overwrite) and the query
    is logged beside it; without -o nothing is written.

    \b
    Examples:
      voxelflex index query "SELECT split, count(*) FROM samples GROUP BY 1" \\
          -i index.parquet
      voxelflex index query "SELECT * FROM samples WHERE domain = '1a00A00'" \\
          -i index.parquet -f csv -o 1a00A00.csv
    """
    from voxelflex.index.query import query_to_file, run_query, write_result

    if output is not None:
        console_logging()
        typer.echo(f"wrote {query_to_file(index, sql, fmt, output, overwrite=overwrite)}", err=True)
    else:  # read-only: prints the result, writes nothing (no log either)
        typer.echo(write_result(run_query(index, sql), fmt, None), nl=False)


@app.command("stats")
def stats(
    index: Annotated[str, typer.Option("--index", "-i", help="Index Parquet (path or URL).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Rows per split and temperature, domains, residues and the target distribution.

    \b
    Example:
      voxelflex index stats -i work/index.parquet --json
    """
    from voxelflex.index.query import format_stats, index_stats

    result = index_stats(index)
    typer.echo(json.dumps(result, indent=2) if as_json else format_stats(result))
