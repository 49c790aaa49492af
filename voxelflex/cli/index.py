"""`voxelflex index build | query | stats`: parse options, call :mod:`voxelflex.index`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from voxelflex.cli.options import OverwriteOption, RmsfUnit, SetOption, build_config
from voxelflex.errors import ConfigError
from voxelflex.formats import QueryFormat

__all__ = ["app", "build", "query", "stats"]

app = typer.Typer(
    no_args_is_help=True, help="Build the sample index and query it with SQL (DuckDB)."
)


@app.command("build")
def build(
    voxel_file: Annotated[
        Path | None, typer.Option("--voxel-file", help="aposteriori HDF5 (data.voxel_file).")
    ] = None,
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="Index Parquet to write (data.index).")
    ] = None,
    rmsf_csv: Annotated[
        Path | None, typer.Option("--rmsf-csv", help="Aggregated RMSF CSV (data.rmsf_csv).")
    ] = None,
    rmsf_unit: Annotated[
        RmsfUnit | None,
        typer.Option("--rmsf-unit", help="Unit of target_rmsf; required with an RMSF CSV."),
    ] = None,
    train: Annotated[
        Path | None,
        typer.Option(
            "--train-split", "--train", help="Train split file (data.train_split; alias --train)."
        ),
    ] = None,
    val: Annotated[
        Path | None,
        typer.Option(
            "--val-split", "--val", help="Validation split file (data.val_split; alias --val)."
        ),
    ] = None,
    test: Annotated[
        Path | None,
        typer.Option(
            "--test-split", "--test", help="Test split file (data.test_split; alias --test)."
        ),
    ] = None,
    deep: Annotated[
        bool, typer.Option("--deep", help="Check every voxel dataset, not a sample per chain.")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    overwrite: OverwriteOption = False,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML config; flags override it.")
    ] = None,
    overrides: SetOption = None,
) -> None:
    """Join voxel keys, RMSF rows and splits into the sample index (Parquet).

    Without --rmsf-csv every voxelized residue becomes a `predict` row.

    Also writes NAME.skipped.csv (one reason per skipped item) and NAME.temperature_range.json.
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
    }
    cfg = build_config(config, overrides, flags).data
    if cfg.voxel_file is None or cfg.index is None:
        raise ConfigError(
            "index build needs a voxel file and an output path: pass --voxel-file and --output "
            "(or set data.voxel_file and data.index in the config)"
        )
    if isinstance(cfg.index, str):  # a URL (paths are Path objects): indexes are written locally
        raise ConfigError(
            f"index build writes a local file, not {cfg.index}: build it here with --output "
            "FILE, then upload it (train and predict read an index from a URL)"
        )
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
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    overwrite: OverwriteOption = False,
) -> None:
    """Run read-only SQL over the index, e.g. "SELECT split, count(*) FROM samples GROUP BY 1"."""
    from voxelflex.index.query import run_query, write_result
    from voxelflex.paths import check_output

    if output is not None:
        check_output(output, inputs={"index": index}, overwrite=overwrite, what="query result")
    text = write_result(run_query(index, sql), fmt, output)
    if text is not None:
        typer.echo(text, nl=False)
    else:
        typer.echo(f"wrote {output}", err=True)


@app.command("stats")
def stats(
    index: Annotated[str, typer.Option("--index", "-i", help="Index Parquet (path or URL).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Rows per split and temperature, domains, residues and the target distribution."""
    from voxelflex.index.query import format_stats, index_stats

    result = index_stats(index)
    typer.echo(json.dumps(result, indent=2) if as_json else format_stats(result))
