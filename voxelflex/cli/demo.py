"""``voxelflex demo``: generate the demo dataset and run every pipeline step on it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from voxelflex.cli.train import Device, Source
from voxelflex.demo.run import DemoSettings, run_demo
from voxelflex.logs import setup_logging

__all__ = ["demo"]


def demo(
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for everything.")] = Path(
        "demo_out"
    ),
    domains: Annotated[int, typer.Option(help="Generated domains (30-70 residues).")] = 60,
    epochs: Annotated[int, typer.Option(help="Training epochs (tiny preset).")] = 8,
    seed: Annotated[int, typer.Option(help="Seed of the data and the run.")] = 0,
    source: Annotated[Source, typer.Option(help="Sample source for training.")] = Source.shards,
    device: Annotated[Device, typer.Option(help="Training device.")] = Device.auto,
) -> None:
    """Generate demo data, then index, shard, train (tiny), predict, evaluate and plot."""
    setup_logging(None, "INFO")
    settings = DemoSettings(
        n_domains=domains, epochs=epochs, seed=seed, source=source.value, device=device.value
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
