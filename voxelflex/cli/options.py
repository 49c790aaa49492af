"""Options several commands share, and how flags become a run configuration.

Choices come from the registries and constants through :func:`voxelflex.config.choices`, so the
CLI never restates a list of names. This module (like every ``voxelflex.cli`` module) imports
only light modules at the top: the library is imported inside each command, so that
``voxelflex --help`` does not pay for torch, h5py and duckdb.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from voxelflex.config import Config, choices, default_value, load_config
from voxelflex.logs import setup_logging
from voxelflex.paths import refuse_url

__all__ = [
    "Architecture",
    "Conditioning",
    "ConfigOption",
    "Device",
    "DeviceOption",
    "OverwriteOption",
    "Preset",
    "ProgressOption",
    "RmsfUnit",
    "Scheduler",
    "SetOption",
    "ShardsDirOption",
    "Source",
    "SourceOption",
    "WorkersOption",
    "build_config",
    "console_logging",
    "input_argument",
    "input_option",
    "output_option",
    "reports_here",
    "with_default",
]


def with_default(text: str, key: str) -> str:
    """Help text of a flag that sets config key ``key``, ending with its packaged default
    (``"Epochs (train.epochs).  [default: 20]"``); the flag itself defaults to "not given", so
    that a config file's value is not overridden."""
    value = default_value(key)
    if value is None:
        return text
    shown = str(value).lower() if isinstance(value, bool) else value
    return f"{text}  [default: {shown}]"


def _choice(name: str, key: str) -> type[StrEnum]:
    """A Typer choice type listing the values the config declares for ``key``."""
    return StrEnum(name, [(value, value) for value in choices(key)])


def _local_path(value: str) -> Path:
    """A local path; a URL is refused (exit status 2, naming the option and the value): a Path
    would fold ``http://host/x`` into a local folder ``http:/host/x``."""
    refuse_url(value, "this option", typer.BadParameter)
    return Path(value)


def input_option(*names: str, **kwargs: Any) -> Any:
    """``typer.Option`` for an option naming a local input file or folder (inputs that may be
    URLs, like ``--index``, are ``str`` options): a URL is refused naming the option, where it
    was folded into a missing local path ``https:/host/x``."""
    return typer.Option(*names, parser=_local_path, metavar="<path>", **kwargs)


def output_option(*names: str, **kwargs: Any) -> Any:
    """``typer.Option`` for an option naming an output: every one takes a local path only,
    as :func:`input_option`."""
    return input_option(*names, **kwargs)


def input_argument(*default: Any, **kwargs: Any) -> Any:
    """``typer.Argument`` counterpart of :func:`input_option`."""
    return typer.Argument(*default, parser=_local_path, **kwargs)


Source = _choice("Source", "loader.source")
Architecture = _choice("Architecture", "model.name")
Preset = _choice("Preset", "model.preset")
Conditioning = _choice("Conditioning", "model.conditioning")
Device = _choice("Device", "train.device")
RmsfUnit = _choice("RmsfUnit", "data.rmsf_unit")
Scheduler = _choice("Scheduler", "train.scheduler")

ConfigOption = Annotated[
    Path | None, input_option("--config", help="YAML config (e.g. a run's config.yaml).")
]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a config key: key.sub=value (repeatable)."),
]
OverwriteOption = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")]
SourceOption = Annotated[
    Source | None,
    typer.Option(
        help=with_default("Where voxels are read from (loader.source).", "loader.source"),
    ),
]
ShardsDirOption = Annotated[
    str | None,
    typer.Option(
        help="Shard folder or its URL (https://, s3://, gs://) for --source shards "
        "(data.shards_dir)."
    ),
]
DeviceOption = Annotated[
    Device | None,
    typer.Option(
        help=with_default("Torch device (train.device).", "train.device"),
    ),
]
WorkersOption = Annotated[
    int | None,
    typer.Option(
        help=with_default(
            "DataLoader workers reading voxels (loader.num_workers).", "loader.num_workers"
        ),
    ),
]
ProgressOption = Annotated[
    bool | None,
    typer.Option(
        "--progress/--no-progress",
        help=with_default("Progress bars (predict.progress).", "predict.progress"),
    ),
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
    # flags pass typed values, not "key=value" text: YAML would read --run-name null as None
    flagged = [
        (k, v.value if isinstance(v, StrEnum) else v) for k, v in flags.items() if v is not None
    ]
    return load_config(config, [*(sets or []), *flagged])


def console_logging(level: str = "INFO") -> None:
    """Show the library's log lines on stderr (a command that writes results also logs them to
    a file: :func:`voxelflex.logs.command_log`)."""
    setup_logging(None, level)


def reports_here() -> bool:
    """Whether this process prints the command's summary: under torchrun every rank runs the
    command and rank 0 alone reports (a plain run has no ``RANK``)."""
    return os.environ.get("RANK", "0") == "0"
