"""``voxelflex demo``: generate the demo dataset and run every pipeline step on it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from voxelflex.cli.options import Device, Source, output_option
from voxelflex.demo.settings import DemoSettings

__all__ = ["demo"]

_DEFAULT = DemoSettings()


def demo(
    output: Annotated[Path, output_option("--output", "-o", help="Folder for everything.")] = Path(
        "demo_out"
    ),
    domains: Annotated[
        int,
        typer.Option(
            min=6, help="Generated domains (30-70 residues; at least 6: train, val and test)."
        ),
    ] = _DEFAULT.n_domains,
    epochs: Annotated[
        int, typer.Option(min=1, help="Training epochs (tiny preset).")
    ] = _DEFAULT.epochs,
    seed: Annotated[int, typer.Option(help="Seed of the data and the run.")] = _DEFAULT.seed,
    source: Annotated[Source, typer.Option(help="Sample source for training.")] = Source(
        _DEFAULT.source
    ),
    device: Annotated[Device, typer.Option(help="Training device.")] = Device(_DEFAULT.device),
    structures: Annotated[
        bool,
        typer.Option(
            "--structures",
            help="Make the data from atoms: structure files, structure features as model "
            "inputs, physics baselines, predictions from structure files with B-factor copies.",
        ),
    ] = _DEFAULT.structures,
) -> None:
    """Generate demo data, then index, shard, train (tiny), predict, evaluate and plot.

    \b
    Examples:
      voxelflex demo
      voxelflex demo -o demo_cpu --device cpu --epochs 3
      voxelflex demo -o demo_structures --structures
    """
    from voxelflex.demo.run import run_demo
    from voxelflex.logs import setup_logging

    setup_logging(None, "INFO")
    settings = DemoSettings(
        n_domains=domains,
        epochs=epochs,
        seed=seed,
        source=source.value,
        device=device.value,
        structures=structures,
    )
    result = run_demo(output, settings)
    typer.echo("\nvoxelflex demo finished. Outputs:")
    for name, path in result.outputs.items():
        typer.echo(f"  {name:<16} {path}")
    typer.echo("\nTime per step:")
    for name, sec in result.seconds.items():
        typer.echo(f"  {name:<16} {sec:7.1f} s")
    typer.echo(f"  {'total':<16} {sum(result.seconds.values()):7.1f} s")
    typer.echo("\nTest-split metrics (model beside baselines):")
    typer.echo(result.summary)
