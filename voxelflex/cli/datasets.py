"""`voxelflex import mdcath`: a thin wrapper over voxelflex.datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from voxelflex.cli.group import command_group
from voxelflex.cli.options import (
    OverwriteOption,
    RmsfUnit,
    console_logging,
    input_argument,
    input_option,
    output_option,
)

__all__ = ["app"]

app = command_group("Import published datasets into the inputs voxelflex reads.")


def _ints(text: str, option: str) -> tuple[int, ...]:
    from voxelflex.errors import ConfigError

    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"{option} {text!r}: give integers separated by commas") from None


@app.command("mdcath")
def mdcath(
    inputs: Annotated[
        list[Path],
        input_argument(
            metavar="DIR|FILE", help="mdcath_dataset_*.h5 files, or folders holding them."
        ),
    ],
    output: Annotated[Path, output_option("--output", "-o", help="Dataset folder to write.")],
    workers: Annotated[int, typer.Option(help="Processes importing domains.", min=1)] = 1,
    replicas: Annotated[
        str, typer.Option(help="Replicas averaged per temperature, comma-separated.")
    ] = "0,1,2,3,4",
    temperatures: Annotated[
        str, typer.Option(help="Temperatures (K) imported, comma-separated.")
    ] = "320,348,379,413,450",
    rmsf_unit: Annotated[
        RmsfUnit, typer.Option("--rmsf-unit", help="Unit of the CSV's RMSF (mdCATH: nm).")
    ] = RmsfUnit("nm"),
    fractions: Annotated[
        str, typer.Option(help="Random split: train,val,test shares of the domains.")
    ] = "0.8,0.1,0.1",
    seed: Annotated[int, typer.Option(help="Random split seed.")] = 0,
    superfamilies: Annotated[
        Path | None,
        input_option(
            help="CSV of domain_id,superfamily (two fields a line, the superfamily a CATH id "
            "like 3.40.50.300): the random split keeps each superfamily in one split "
            "(docs/mdcath.md)."
        ),
    ] = None,
    train_split: Annotated[
        Path | None, input_option(help="Your train split file (instead of a random split).")
    ] = None,
    val_split: Annotated[Path | None, input_option(help="Your val split file.")] = None,
    test_split: Annotated[Path | None, input_option(help="Your test split file.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    overwrite: OverwriteOption = False,
) -> None:
    """Turn mdCATH domain files into a dataset folder: voxels, RMSF CSV, features, splits.

    Reads pdbProteinAtoms, rmsf and dssp of each file (never the coordinates), renames CHARMM
    chains, residues and atoms, voxelizes and featurizes each structure, averages the replicas.
    Rerun the same command to resume an interrupted import. The folder's config.yaml trains on
    it; import_skipped.csv lists everything not used, with a reason.

    \b
    Examples:
      voxelflex import mdcath mdcath/data -o mdcath_set --workers 8
      voxelflex import mdcath mdcath/data -o mdcath_set --superfamilies sf.csv
      voxelflex train -c mdcath_set/config.yaml
    """
    from voxelflex.datasets import ImportSettings, import_mdcath
    from voxelflex.datasets.splits import parse_fractions

    console_logging()
    settings = ImportSettings(
        temperatures=_ints(temperatures, "--temperatures"),
        replicas=_ints(replicas, "--replicas"),
        rmsf_unit=rmsf_unit.value,
    )
    report = import_mdcath(
        inputs,
        output,
        settings=settings,
        workers=workers,
        fractions=parse_fractions(fractions),
        seed=seed,
        superfamilies=superfamilies,
        split_files={"train": train_split, "val": val_split, "test": test_split},
        progress=progress,
        overwrite=overwrite,
    )
    skipped = ", ".join(f"{k} {v}" for k, v in report.skipped.items()) or "none"
    typer.echo(
        f"{report.domains} domains, {report.residues} residues, {report.rows} RMSF rows "
        f"({report.residues_per_second:.0f} residues/s) -> {report.out_dir}\n"
        f"refused domains: {report.refused}; report lines: {skipped} "
        f"({report.paths['skipped']})\n"
        f"splits: {report.splits}\n"
        f"next: voxelflex train -c {report.paths['config']}"
    )
