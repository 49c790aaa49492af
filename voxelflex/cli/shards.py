"""`voxelflex shards build` / `voxelflex shards verify`: thin wrappers over voxelflex.sources."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from voxelflex.cli.group import command_group
from voxelflex.cli.options import console_logging, input_option, output_option
from voxelflex.formats import DEFAULT_DOMAINS_PER_SHARD
from voxelflex.wording import counted

__all__ = ["app"]

app = command_group("Bit-packed zstd WebDataset shards of the voxels (fast training input).")


@app.command("build")
def build(
    index: Annotated[Path, input_option("--index", "-i", help="Sample index (Parquet).")],
    output: Annotated[Path, output_option("--output", "-o", help="Shard folder to write.")],
    domains_per_shard: Annotated[
        int, typer.Option(help="Domains per tar file.", min=1)
    ] = DEFAULT_DOMAINS_PER_SHARD,
    workers: Annotated[int, typer.Option(help="Processes reading the HDF5.", min=1)] = 1,
    seed: Annotated[int, typer.Option(help="Seed of the domain order across shards.")] = 0,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Pack every domain of the index into shards; rerun to resume an interrupted build.

    The log goes beside the folder (DIR.log).

    \b
    Example:
      voxelflex shards build --index work/index.parquet -o work/shards --workers 2
      voxelflex train --index work/index.parquet --source shards \\
          --shards-dir work/shards
    """
    from voxelflex.sources.shards import build_shards

    console_logging()
    report = build_shards(
        index,
        output,
        domains_per_shard=domains_per_shard,
        workers=workers,
        seed=seed,
        progress=progress,
    )
    typer.echo(
        f"{counted(report.n_shards, 'shard')} ({report.built} built, {report.reused} reused), "
        f"{report.n_domains} domains, {report.n_residues} residues, "
        f"{report.total_bytes / 1e6:.1f} MB in {output} ({report.seconds:.1f} s); "
        f"manifest {report.manifest_path}"
    )


@app.command("verify")
def verify(
    folder: Annotated[str, typer.Argument(help="Shard folder (with manifest.json), or its URL.")],
    index: Annotated[
        str | None,
        typer.Option(
            "--index",
            "-i",
            help="Also check that the shards were built from this index's voxel file "
            "(path or URL).",
        ),
    ] = None,
) -> None:
    """Check every shard and record against the manifest; list all problems (a URL: each
    shard is fetched once).

    \b
    Example:
      voxelflex shards verify work/shards --index work/index.parquet
    """
    from voxelflex.errors import ShardError
    from voxelflex.index import read_index
    from voxelflex.sources.shards import verify_shards

    report = verify_shards(folder, index=None if index is None else read_index(index))
    intact = (
        f"{folder}: {counted(report.n_shards, 'shard')}, {counted(report.n_domains, 'domain')}, "
        "all intact"
    )
    if report.problems:
        if report.index_mismatch is not None:
            typer.echo(f"{folder}: {report.index_mismatch}")
        for problem in report.problems:
            typer.echo(problem)
        raise ShardError(
            f"{folder}: {counted(len(report.problems), 'problem')} in "
            f"{counted(report.n_shards, 'shard')} (listed above); rebuild with "
            "`voxelflex shards build` (intact shards are reused)"
        )
    if report.index_mismatch is not None:  # the shards are fine; one of the two is not theirs
        raise ShardError(f"{intact}, but {report.index_mismatch}")
    typer.echo(intact)
