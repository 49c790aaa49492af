"""Options several commands share, and how flags become a run configuration.

Choices come from the registries and constants through :func:`voxelflex.config.choices`, so the
CLI never restates a list of names. This module (like every ``voxelflex.cli`` module) imports
only light modules at the top: the library is imported inside each command, so that
``voxelflex --help`` does not pay for torch, h5py and duckdb.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from voxelflex.config import Config, choices, load_config

__all__ = [
    "Architecture",
    "Conditioning",
    "ConfigOption",
    "Device",
    "DeviceOption",
    "OverwriteOption",
    "Preset",
    "RmsfUnit",
    "SetOption",
    "ShardsDirOption",
    "Source",
    "SourceOption",
    "WorkersOption",
    "build_config",
]


def _choice(name: str, key: str) -> type[StrEnum]:
    """A Typer choice type listing the values the config declares for ``key``."""
    return StrEnum(name, [(value, value) for value in choices(key)])


Source = _choice("Source", "loader.source")
Architecture = _choice("Architecture", "model.name")
Preset = _choice("Preset", "model.preset")
Conditioning = _choice("Conditioning", "model.conditioning")
Device = _choice("Device", "train.device")
RmsfUnit = _choice("RmsfUnit", "data.rmsf_unit")

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="YAML config (e.g. a run's config.yaml).")
]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a config key: key.sub=value (repeatable)."),
]
OverwriteOption = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")]
SourceOption = Annotated[
    Source | None, typer.Option(help="Where voxels are read from (loader.source).")
]
ShardsDirOption = Annotated[
    str | None,
    typer.Option(
        help="Shard folder or its URL (https://, s3://, gs://) for --source shards "
        "(data.shards_dir)."
    ),
]
DeviceOption = Annotated[Device | None, typer.Option(help="Torch device (train.device).")]
WorkersOption = Annotated[
    int | None, typer.Option(help="DataLoader workers reading voxels (loader.num_workers).")
]


def build_config(config: Path | None, sets: list[str] | None, flags: dict[str, Any]) -> Config:
    """The run configuration: defaults, then ``--config``, then ``--set``, then the flags.

    Parameters
    ----------
    config : path or None
    sets : list of str or None
        ``key.sub=value`` overrides.
    flags : dict
        Dotted config key → flag value; None (flag not given) leaves the key alone.
    """
    overrides = list(sets or [])
    overrides += [
        f"{k}={v.value if isinstance(v, StrEnum) else v}" for k, v in flags.items() if v is not None
    ]
    return load_config(config, overrides)
