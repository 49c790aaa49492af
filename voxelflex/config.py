"""Run configuration: packaged YAML defaults, a user YAML over them, ``--set`` overrides over both.

Every key is declared by a frozen dataclass below and listed in ``default_config.yaml``; unknown
keys and bad values raise :class:`~voxelflex.errors.ConfigError` naming the dotted key. Relative
paths in a user config resolve against that file's folder; paths given as overrides (``--set``,
command-line flags) resolve against the working directory.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import itertools
import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml

from voxelflex.errors import ConfigError
from voxelflex.paths import decode_utf8, is_url, refuse_url
from voxelflex.quantities import RMSF_UNITS
from voxelflex.registry import ARCHITECTURES, CONDITIONINGS, PRESETS, SOURCES, Registry

__all__ = [
    "EARLIER_SECTIONS",
    "Choice",
    "Config",
    "DataConfig",
    "EvaluateConfig",
    "LoaderConfig",
    "ModelConfig",
    "PathOrUrl",
    "PredictConfig",
    "TrainConfig",
    "UrlOk",
    "choices",
    "config_to_yaml",
    "default_value",
    "load_config",
    "parse_config_yaml",
    "path_keys",
    "read_config_yaml",
]


# Top-level sections of the earlier VoxelFlex's config that this one lacks (`data` and `model`
# exist in both): an unknown key among them points to `voxelflex config migrate`.
EARLIER_SECTIONS = (
    "input",
    "output",
    "training",
    "prediction",
    "evaluation",
    "logging",
    "visualization",
    "system_utilization",
)


def _require(ok: bool, key: str, value: object, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"config key '{key}': got {value!r}, expected {allowed}")


# torch seeds its generators with an unsigned 64-bit integer (numpy's plan takes any integer
# >= 0): a seed outside this range failed only once training or importance started.
_SEED_RANGE = "an integer >= 0 and < 2**64"


def _require_seed(seed: int, key: str) -> None:
    _require(0 <= seed < 2**64, key, seed, _SEED_RANGE)


@dataclass(frozen=True)
class Choice:
    """Marks a ``str`` key whose allowed values are a registry's names or a constant tuple.

    The values are read when a config is loaded, so a source or architecture registered at run
    time (:meth:`voxelflex.registry.Registry.register`) is accepted.
    """

    values: Registry | tuple[str, ...]

    def names(self) -> tuple[str, ...]:
        return self.values.names() if isinstance(self.values, Registry) else self.values


@dataclass(frozen=True)
class UrlOk:
    """Marks a path key that also takes a URL (``https://``, ``s3://``, ...).

    A URL is kept as the ``str`` it was given (no path resolution); anything else becomes an
    absolute :class:`~pathlib.Path` like any path key.
    """


PathOrUrl = Annotated[Path | str, UrlOk()]


@dataclass(frozen=True)
class DataConfig:
    """Input files (absolute paths, or URLs where allowed, after loading). See
    ``default_config.yaml`` for each key."""

    index: PathOrUrl | None
    voxel_file: Path | None
    rmsf_csv: Path | None
    rmsf_unit: Annotated[str, Choice(RMSF_UNITS)] | None
    train_split: Path | None
    val_split: Path | None
    test_split: Path | None
    shards_dir: PathOrUrl | None
    features: Path | None


@dataclass(frozen=True)
class LoaderConfig:
    """Sample source and epoch-plan settings."""

    source: Annotated[str, Choice(SOURCES)]
    batch_size: int
    num_workers: int
    mix_buffer_residues: int
    seed: int
    shard_cache_dir: Path | None
    shard_cache_limit_gb: float
    shard_cache_eviction: Literal["lru", "none"]
    fetch_retries: int

    def __post_init__(self) -> None:
        _require(self.batch_size >= 1, "loader.batch_size", self.batch_size, "an integer >= 1")
        _require(self.num_workers >= 0, "loader.num_workers", self.num_workers, "an integer >= 0")
        _require(
            self.shard_cache_limit_gb >= 0,
            "loader.shard_cache_limit_gb",
            self.shard_cache_limit_gb,
            "a number >= 0 (0: no limit)",
        )
        _require(
            self.fetch_retries >= 0, "loader.fetch_retries", self.fetch_retries, "an integer >= 0"
        )
        _require(
            self.mix_buffer_residues >= 1,
            "loader.mix_buffer_residues",
            self.mix_buffer_residues,
            "an integer >= 1",
        )
        _require_seed(self.seed, "loader.seed")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture, size preset and how temperature enters."""

    name: Annotated[str, Choice(ARCHITECTURES)]
    preset: Annotated[str, Choice(PRESETS)]
    conditioning: Annotated[str, Choice(CONDITIONINGS)]
    dropout: float
    features: tuple[str, ...]
    feature_norm: Literal["global", "domain"]
    # Architecture keyword arguments over the preset's (names checked by voxelflex.models,
    # which knows each architecture's; this module must not import torch).
    hyperparameters: dict[str, Any]

    def __post_init__(self) -> None:
        _require(0.0 <= self.dropout < 1.0, "model.dropout", self.dropout, "a number in [0, 1)")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, checkpointing and device settings."""

    epochs: int
    lr: float
    weight_decay: float
    scheduler: Literal["cosine", "step", "plateau", "none"]
    warmup_epochs: float
    step_epochs: int
    plateau_patience: int
    plateau_threshold: float
    lr_factor: float
    min_lr: float
    grad_clip: float
    grad_accumulation: int
    loss: Literal["mse", "huber"]
    huber_delta: float
    log_target: bool
    precision: Literal["auto", "fp32", "bf16", "fp16"]
    device: Literal["auto", "cpu", "cuda"]
    threads: int
    monitor: Literal[
        "val_loss", "val_pearson", "val_spearman", "val_rmse", "val_mae", "val_chain_pearson"
    ]
    target_norm: Literal["global", "domain"]
    early_stopping_patience: int
    early_stopping_min_delta: float
    checkpoint_every_epochs: int
    checkpoint_every_batches: int
    progress: bool
    plot: bool
    init_from: Path | None
    resume: bool
    overwrite: bool

    def __post_init__(self) -> None:
        _require(self.epochs >= 1, "train.epochs", self.epochs, "an integer >= 1")
        _require(self.lr > 0, "train.lr", self.lr, "a number > 0")
        _require(self.weight_decay >= 0, "train.weight_decay", self.weight_decay, "a number >= 0")
        _require(
            self.warmup_epochs >= 0, "train.warmup_epochs", self.warmup_epochs, "a number >= 0"
        )
        for key in ("plateau_threshold", "min_lr", "early_stopping_min_delta"):
            value = getattr(self, key)
            _require(value >= 0, f"train.{key}", value, "a number >= 0")
        for key in (
            "plateau_patience",
            "threads",
            "early_stopping_patience",
            "checkpoint_every_epochs",
            "checkpoint_every_batches",
        ):
            value = getattr(self, key)
            _require(value >= 0, f"train.{key}", value, "an integer >= 0")
        _require(self.step_epochs >= 1, "train.step_epochs", self.step_epochs, "an integer >= 1")
        _require(
            0.0 < self.lr_factor < 1.0, "train.lr_factor", self.lr_factor, "a number in (0, 1)"
        )
        _require(
            self.grad_accumulation >= 1,
            "train.grad_accumulation",
            self.grad_accumulation,
            "an integer >= 1",
        )
        _require(self.grad_clip >= 0, "train.grad_clip", self.grad_clip, "a number >= 0")
        _require(self.huber_delta > 0, "train.huber_delta", self.huber_delta, "a number > 0")
        _require(
            not (self.resume and self.overwrite),
            "train.overwrite",
            self.overwrite,
            "false with train.resume (continue the run, or start it over: not both)",
        )
        _require(
            not (self.log_target and self.target_norm == "domain"),
            "train.log_target",
            self.log_target,
            "false: it cannot be combined with train.target_norm=domain (the log would be "
            "taken of per-domain z-scores, about half of them < 0)",
        )


@dataclass(frozen=True)
class PredictConfig:
    """Prediction and evaluation settings (they also read ``loader``, ``data`` and
    ``train.device``)."""

    residues_per_batch: int
    progress: bool

    def __post_init__(self) -> None:
        _require(
            self.residues_per_batch >= 1,
            "predict.residues_per_batch",
            self.residues_per_batch,
            "an integer >= 1",
        )


@dataclass(frozen=True)
class EvaluateConfig:
    """What ``voxelflex evaluate`` computes besides the pooled and per-temperature metrics."""

    importance: bool
    shuffles: int
    seed: int
    accessibility_bins: tuple[float, ...]

    def __post_init__(self) -> None:
        _require(self.shuffles >= 1, "evaluate.shuffles", self.shuffles, "an integer >= 1")
        _require_seed(self.seed, "evaluate.seed")
        bins = self.accessibility_bins
        _require(
            len(bins) >= 2 and all(a < b for a, b in itertools.pairwise(bins)),
            "evaluate.accessibility_bins",
            list(bins),
            "at least two increasing bin edges, e.g. [0.0, 0.1, 0.4, 1.01]",
        )


@dataclass(frozen=True)
class Config:
    """A whole resolved run configuration."""

    output_dir: Path
    run_name: str
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"]
    data: DataConfig
    loader: LoaderConfig
    model: ModelConfig
    train: TrainConfig
    predict: PredictConfig
    evaluate: EvaluateConfig

    def __post_init__(self) -> None:
        _require(
            bool(self.run_name) and "/" not in self.run_name and self.run_name not in (".", ".."),
            "run_name",
            self.run_name,
            "a non-empty folder name without '/'",
        )

    @property
    def run_dir(self) -> Path:
        """``<output_dir>/<run_name>``: every output of a run lives here."""
        return self.output_dir / self.run_name

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (str paths, lists) for YAML copies and checkpoints."""
        return _plain(self)

    def get(self, dotted: str) -> Any:
        """The value of a dotted key, e.g. ``config.get("data.shards_dir")``."""
        node: Any = self
        for part in dotted.split("."):
            if not dataclasses.is_dataclass(node) or part not in {
                f.name for f in dataclasses.fields(node)
            }:
                raise ConfigError(f"unknown config key '{dotted}'")
            node = getattr(node, part)
        return node


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, tuple | list):
        return [_plain(x) for x in obj]
    return obj


def config_to_yaml(config: Config) -> str:
    """The resolved config as YAML (loadable again with :func:`load_config`)."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


# ---------------------------------------------------------------------------- building


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


def _choice(tp: Any) -> Choice | None:
    """The :class:`Choice` of an ``Annotated[str, Choice(...)]`` type, else None."""
    if typing.get_origin(tp) is Annotated:
        return next((m for m in typing.get_args(tp)[1:] if isinstance(m, Choice)), None)
    return None


def _is_section(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _split_optional(tp: Any) -> tuple[Any, bool]:
    """``X | None`` -> (X, True); anything else -> (tp, False)."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _url_ok(tp: Any) -> bool:
    """True for a :data:`PathOrUrl` type."""
    return typing.get_origin(tp) is Annotated and any(
        isinstance(m, UrlOk) for m in typing.get_args(tp)[1:]
    )


def _is_path(tp: Any) -> bool:
    inner = _split_optional(tp)[0]
    return inner is Path or _url_ok(inner)


def _coerce(key: str, tp: Any, value: Any) -> Any:
    """Check/convert one leaf value against its declared type; raise naming ``key``."""
    inner, optional = _split_optional(tp)
    if value is None:
        _require(optional, key, value, f"a value of type {_describe(inner)}")
        return None
    if isinstance(value, bool) and inner not in (bool, int, float):
        # YAML 1.1 reads an unquoted no/off/yes/on as a boolean (`run_name: no`); the word
        # written is gone, so the message cannot quote it
        expected = {str: "a string", Path: "a path"}.get(inner) or _describe(inner)
        _require(
            False,
            key,
            value,
            f"{expected}; YAML reads an unquoted yes/no/on/off/true/false as a boolean: quote "
            "the word (e.g. 'no')",
        )
    if _url_ok(inner):
        _require(isinstance(value, str | Path), key, value, "a path or a URL")
        return value if is_url(value) else Path(value)
    choice = _choice(inner)
    if choice is not None:
        names = choice.names()
        _require(value in names, key, value, "one of " + ", ".join(names))
        return value
    origin = typing.get_origin(inner)
    if origin is Literal:
        choices = typing.get_args(inner)
        _require(value in choices, key, value, "one of " + ", ".join(map(str, choices)))
        return value
    if inner is bool:
        _require(isinstance(value, bool), key, value, "true or false")
        return value
    if inner is int:
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = int(value)
        _require(isinstance(value, int) and not isinstance(value, bool), key, value, "an integer")
        return value
    if inner is float:
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = float(value)
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        _require(ok and math.isfinite(value), key, value, "a finite number")
        return float(value)
    if inner is str:
        _require(isinstance(value, str), key, value, "a string")
        return value
    if inner is Path:
        _require(isinstance(value, str | Path), key, value, "a path")
        return Path(value)
    if origin is tuple:
        item = typing.get_args(inner)[0]
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if item is float:
            if isinstance(value, list | tuple):
                with contextlib.suppress(ValueError, TypeError):
                    value = [float(v) for v in value]
            ok = isinstance(value, list | tuple) and all(
                isinstance(v, float) and math.isfinite(v) for v in value
            )
            _require(ok, key, value, "a list of finite numbers")
            return tuple(value)
        ok = isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
        _require(ok, key, value, "a list of strings")
        return tuple(value)
    if origin is dict:
        ok = isinstance(value, Mapping) and all(
            isinstance(k, str) and _is_plain(v) for k, v in value.items()
        )
        _require(ok, key, value, "a mapping of names to numbers, strings or lists of them")
        return {k: list(v) if isinstance(v, tuple) else v for k, v in value.items()}
    raise TypeError(f"unsupported config type {tp} for {key}")  # a bug in this module


def _is_plain(value: Any) -> bool:
    """A YAML scalar (finite if a number) or a list of them: what a mapping key may hold."""
    if isinstance(value, list | tuple):
        return all(_is_plain(v) and not isinstance(v, list | tuple) for v in value)
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, bool | int | str)


def _is_mapping(tp: Any) -> bool:
    return typing.get_origin(tp) is dict


def _describe(tp: Any) -> str:
    if _url_ok(tp):
        return "a path or a URL"
    if _choice(tp) is not None:
        return "one of " + ", ".join(_choice(tp).names())
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(tp)))
    return getattr(tp, "__name__", str(tp))


def _build(cls: type, raw: Mapping[str, Any], prefix: str) -> Any:
    hints = _hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        if f.name not in raw:
            raise ConfigError(f"config key '{key}' is missing")
        tp = hints[f.name]
        value = raw[f.name]
        if _is_section(tp):
            if not isinstance(value, Mapping):
                raise ConfigError(
                    f"config key '{key}': expected a section (mapping), got {value!r}"
                )
            kwargs[f.name] = _build(tp, value, key + ".")
        else:
            kwargs[f.name] = _coerce(key, tp, value)
    return cls(**kwargs)


def _field_type(dotted: str, *, origin: str) -> Any:
    """Declared type of a dotted key; ConfigError listing the valid keys if there is none."""
    cls: Any = Config
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        hints = _hints(cls)
        if part not in hints:
            where = ".".join(parts[:i]) or "the top level"
            valid = ", ".join(sorted(hints))
            hint = ""
            if i == 0 and part in EARLIER_SECTIONS:
                hint = (
                    f". '{part}' is a section of the earlier VoxelFlex's config: convert the "
                    "file with `voxelflex config migrate OLD.yaml -o NEW.yaml` "
                    "(docs/migrating.md)"
                )
            raise ConfigError(
                f"unknown config key '{dotted}' in {origin}; valid keys in {where}: {valid}{hint}"
            )
        tp = hints[part]
        if _is_mapping(tp) and i == len(parts) - 2:
            return Any  # one entry of a mapping key, e.g. model.hyperparameters.growth
        if i < len(parts) - 1:
            if not _is_section(tp):
                raise ConfigError(
                    f"unknown config key '{dotted}' in {origin}: '{part}' is not a section"
                )
            cls = tp
    return tp


def _merge(
    base: dict,
    layer: Mapping,
    *,
    origin: str,
    base_dir: Path,
    origins: dict[str, str],
    prefix: str = "",
) -> None:
    """Merge ``layer`` into ``base`` in place, resolving relative paths against ``base_dir``.

    ``origins`` records, for each dotted key set, where its value came from (for messages).
    """
    if not isinstance(layer, Mapping):
        raise ConfigError(
            f"{origin}: expected a mapping of config keys, got {type(layer).__name__}"
        )
    for name, value in layer.items():
        key = f"{prefix}{name}"
        tp = _field_type(key, origin=origin)
        if _is_section(tp):
            if not isinstance(value, Mapping):
                raise ConfigError(
                    f"config key '{key}' in {origin}: expected a section (mapping), got {value!r}"
                )
            _merge(
                base[name],
                value,
                origin=origin,
                base_dir=base_dir,
                origins=origins,
                prefix=key + ".",
            )
        elif _is_mapping(tp) and isinstance(value, Mapping):
            # Mapping keys merge entry by entry, so --set model.hyperparameters.growth=16
            # keeps the entries a config file set; an explicit {} clears them.
            base[name] = {**(base.get(name) or {}), **value} if value else {}
            origins[key] = origin
        else:
            if _split_optional(tp)[0] is Path:
                refuse_url(value, f"config key '{key}' in {origin}", ConfigError)
            if _is_path(tp) and isinstance(value, str) and not value.strip():
                # it would resolve to base_dir itself, e.g. a split file that is a folder
                raise ConfigError(
                    f"config key '{key}' in {origin}: an empty path; write null to leave it "
                    "unset (or '.' for the folder itself)"
                )
            if _is_path(tp) and isinstance(value, str | Path) and not is_url(value):
                value = str((base_dir / Path(value).expanduser()).resolve())
            base[name] = value
            origins[key] = origin


def choices(dotted: str) -> tuple[str, ...]:
    """Allowed values of a choice key, e.g. ``choices("loader.source") == ("hdf5", "shards")``.

    Raises
    ------
    ConfigError
        ``dotted`` is not a config key, or not one with a fixed set of values.
    """
    inner, _ = _split_optional(_field_type(dotted, origin="choices()"))
    if _choice(inner) is not None:
        return _choice(inner).names()
    if typing.get_origin(inner) is not Literal:
        raise ConfigError(f"config key '{dotted}' is not a choice ({_describe(inner)})")
    return typing.get_args(inner)


def path_keys(section: str, *, urls_only: bool = False) -> tuple[str, ...]:
    """Dotted keys of a config section that name a path, in declaration order, e.g.
    ``path_keys("data", urls_only=True) == ("data.index", "data.shards_dir")``.

    Parameters
    ----------
    section : str
        A section, e.g. ``"data"``.
    urls_only : bool
        Only the keys that also take a URL (:data:`PathOrUrl`).

    Raises
    ------
    ConfigError
        ``section`` is not a config section.
    """
    cls = _field_type(section, origin="path_keys()")
    if not _is_section(cls):
        raise ConfigError(f"config key '{section}' is not a section")
    want = _url_ok if urls_only else _is_path
    return tuple(
        f"{section}.{name}" for name, tp in _hints(cls).items() if want(_split_optional(tp)[0])
    )


def default_value(dotted: str) -> Any:
    """The packaged default of a dotted key as written in ``default_config.yaml`` (paths
    unresolved), e.g. ``default_value("train.epochs") == 20``; for ``--help`` texts."""
    _field_type(dotted, origin="default_value()")
    node: Any = _packaged_defaults()
    for part in dotted.split("."):
        node = node[part]
    return node


def _packaged_defaults() -> dict:
    """A fresh copy of the parsed ``default_config.yaml`` (parsed once per process)."""
    return copy.deepcopy(_parse_packaged_defaults())


@functools.cache
def _parse_packaged_defaults() -> dict:
    text = resources.files("voxelflex").joinpath("default_config.yaml").read_text()
    return yaml.safe_load(text)


def _parse_override(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key.sub=value")
    key, _, text = item.partition("=")
    key = key.strip()
    tp = _field_type(key, origin=f"override {item!r}")
    inner, _ = _split_optional(tp)
    if text.strip() in ("null", "~", "None"):
        return key, None
    if inner in (str, Path) or _url_ok(inner):
        return key, text  # verbatim: YAML would mangle "a: b", "1e3" or "runs #3/index.parquet"
    if inner is int and re.fullmatch(r"\s*[-+]?\d+\s*", text):
        return key, int(text)  # decimal: YAML 1.1 reads 010 as octal 8
    try:
        return key, yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {item!r}: value is not valid YAML ({exc})") from exc


def _nest(dotted: str, value: Any) -> dict:
    out: dict = {}
    node = out
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


class _ConfigYamlError(Exception):
    """A config file's YAML that parses but would be misread; the message lacks the file."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses what YAML would silently misread in a config file: a key twice
    in one mapping (the last would win) and an integer with a leading zero (YAML 1.1 reads
    ``010`` as octal 8, while ``--set`` overrides read it as 10)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[tuple[str, str], int] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                    continue
                line = key_node.start_mark.line + 1
                first = seen.setdefault((key_node.tag, key_node.value), line)
                if first != line:
                    raise _ConfigYamlError(
                        f"config key {key_node.value!r} appears twice (lines {first} and "
                        f"{line}), and YAML would keep only the last; merge them into one"
                    )
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node):
        text = self.construct_scalar(node)
        if re.fullmatch(r"[-+]?0[0-9_]+", text):
            raise _ConfigYamlError(
                f"line {node.start_mark.line + 1}: the number {text} has a leading zero, which "
                f"YAML reads as octal ({super().construct_yaml_int(node)}); write "
                f"{int(text.replace('_', ''), 10)}, or quote it ('{text}') for text"
            )
        return super().construct_yaml_int(node)


_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml_int)


def parse_config_yaml(text: str, path: str | Path) -> Any:
    """Parse a config file's text (``{}`` when empty) with :class:`_StrictLoader`.

    Raises
    ------
    ConfigError
        Not valid YAML (line and column), a key twice in one mapping, or an integer with a
        leading zero; naming ``path``.
    """
    try:
        return yaml.load(text, Loader=_StrictLoader) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    except _ConfigYamlError as exc:
        raise ConfigError(f"config file {path}: {exc}") from exc


def read_config_yaml(path: Path) -> Any:
    """Read and parse a config file with :func:`parse_config_yaml`.

    Read as UTF-8 whatever the locale (:func:`voxelflex.paths.decode_utf8`).

    Raises
    ------
    ConfigError
        The file cannot be read, is not UTF-8 text (e.g. ``--config`` given a voxel file), or
        :func:`parse_config_yaml` refuses it; naming ``path``.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    text = decode_utf8(
        data,
        what=f"config file {path}",
        fix="give a YAML config file, e.g. a run's config.yaml",
        error=ConfigError,
    )
    return parse_config_yaml(text, path)


def load_config(
    path: str | Path | None = None,
    overrides: Sequence[str | tuple[str, Any]] | Mapping[str, Any] = (),
) -> Config:
    """Build the run configuration.

    Parameters
    ----------
    path : path, optional
        User YAML merged over the packaged defaults; its relative paths resolve against its folder.
    overrides : sequence of ``"key.sub=value"`` or ``(dotted key, value)``, or mapping
        of dotted key -> value
        Applied last, in order (``--set``, then command-line flags); relative paths resolve
        against the working directory. The values of strings are parsed as YAML (``true``,
        ``3``, ``[a, b]``, ``null``), except for path and text keys, which are taken verbatim;
        pairs and mapping values are taken as they are (a flag's ``--run-name null`` is a run
        named "null").

    Returns
    -------
    Config

    Raises
    ------
    ConfigError
        Unknown key, missing file, or a value of the wrong type or range; the message names the key.
    """
    defaults = _packaged_defaults()
    cwd = Path.cwd()
    # Defaults are merged into an empty skeleton so they go through the same key checks.
    merged = _skeleton(Config)
    origins: dict[str, str] = {}
    _merge(
        merged,
        defaults,
        origin="the packaged default_config.yaml",
        base_dir=cwd,
        origins=origins,
    )
    if path is not None:
        path = Path(path).expanduser().resolve()
        _merge(
            merged, read_config_yaml(path), origin=str(path), base_dir=path.parent, origins=origins
        )
    items = (
        overrides.items()
        if isinstance(overrides, Mapping)
        else (_parse_override(o) if isinstance(o, str) else o for o in overrides)
    )
    for key, value in items:
        _merge(merged, _nest(key, value), origin=f"override {key}", base_dir=cwd, origins=origins)
    try:
        return _build(Config, merged, "")
    except ConfigError as exc:
        # Values are checked once all layers are merged; say which layer set the bad one.
        match = re.match(r"config key '([^']+)'", str(exc))
        origin = origins.get(match[1]) if match else None
        if origin is None:
            raise
        raise ConfigError(f"{exc} (set in {origin})") from None


def _skeleton(cls: type) -> dict:
    hints = _hints(cls)
    return {name: _skeleton(tp) for name, tp in hints.items() if _is_section(tp)}
