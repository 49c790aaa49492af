"""The demo's settings (a light module: the CLI shows its defaults without importing torch)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DemoSettings"]


@dataclass(frozen=True)
class DemoSettings:
    """Size of the demo run; the defaults finish in a few minutes on 2 CPU cores.

    Attributes
    ----------
    n_domains : int
        Generated single-chain domains (30-70 residues each, 5 temperatures).
    epochs : int
        Training epochs of the ``tiny`` preset.
    seed : int
        Seeds the data generator and the run.
    source : str
        ``shards`` (default, built by the demo) or ``hdf5``.
    device : str
        ``auto``, ``cpu`` or ``cuda``.
    structures : bool
        Make the inputs from atoms (structure files, features, physics baselines, B-factor
        copies; :mod:`voxelflex.demo.structures`) instead of generating voxels directly.
    """

    n_domains: int = 60
    epochs: int = 8
    seed: int = 0
    source: str = "shards"
    device: str = "auto"
    structures: bool = False
