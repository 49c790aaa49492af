"""``voxelflex config show`` and ``voxelflex config migrate``: the effective configuration, and
files of the earlier VoxelFlex converted to this format."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from voxelflex.cli.group import command_group
from voxelflex.cli.options import (
    OverwriteOption,
    RmsfUnit,
    SetOption,
    build_config,
    input_argument,
    input_option,
    output_option,
)

__all__ = ["app", "migrate", "show"]

app = command_group("Show the effective configuration; migrate the earlier VoxelFlex's files.")


@app.command("show")
def show(
    config: Annotated[
        Path | None, input_option("--config", "-c", help="YAML config over the defaults.")
    ] = None,
    set_: SetOption = None,
) -> None:
    """Print the configuration a command would run with: defaults, then --config, then --set.

    Paths are shown resolved (absolute). Writes nothing.

    \b
    Examples:
      voxelflex config show
      voxelflex config show --config outputs/run/config.yaml --set train.lr=5e-4
    """
    from voxelflex.config import config_to_yaml

    typer.echo(config_to_yaml(build_config(config, set_, {})), nl=False)


@app.command("migrate")
def migrate(
    old: Annotated[Path, input_argument(help="Config file of the earlier VoxelFlex.")],
    output: Annotated[
        Path | None,
        output_option(
            "--output",
            "-o",
            help="New config file to write (default: print it).",
        ),
    ] = None,
    rmsf_unit: Annotated[
        RmsfUnit | None,
        typer.Option(
            "--rmsf-unit",
            help="Unit of the RMSF CSV (the earlier format had none; mdCATH: nm).",
        ),
    ] = None,
    overwrite: OverwriteOption = False,
) -> None:
    """Convert an earlier VoxelFlex config: every key mapped, or listed as dropped with why.

    The report goes to stderr and, as comments, to the top of the new file; the new file is
    checked to load before it is written. Relative paths keep naming the same files. A key the
    earlier file leaves out keeps the earlier default where voxelflex's differs (listed).

    \b
    Examples:
      voxelflex config migrate old/config.yaml -o run.yaml --rmsf-unit nm
      voxelflex train --config run.yaml
    """
    from voxelflex.migrate import migrate_file

    migration, text = migrate_file(
        old,
        output,
        rmsf_unit=None if rmsf_unit is None else rmsf_unit.value,
        overwrite=overwrite,
    )
    typer.echo(migration.report(), err=True)
    if output is None:
        typer.echo(text, nl=False)
    else:
        typer.echo(f"wrote {output}; train with: voxelflex train --config {output}", err=True)
