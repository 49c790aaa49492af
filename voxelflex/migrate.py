"""Convert a configuration file of the earlier VoxelFlex (``input:``, ``training:``, ... sections)
into this one's format: every earlier key is mapped, or listed as dropped with the reason, and a
key the earlier file leaves out keeps the earlier default where voxelflex's differs (listed too).

``voxelflex config migrate OLD.yaml -o NEW.yaml`` calls :func:`migrate_file`; the result loads
with :func:`voxelflex.config.load_config` (checked before it is written), and starts with the
report as YAML comments. ``docs/migrating.md`` explains the differences behind each rule.
"""

from __future__ import annotations

import datetime
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from voxelflex.atomic import atomic_path
from voxelflex.config import EARLIER_SECTIONS, load_config, read_config_yaml
from voxelflex.errors import ConfigError
from voxelflex.paths import check_output, require_file
from voxelflex.quantities import check_rmsf_unit

__all__ = ["Migration", "is_earlier_config", "migrate_config", "migrate_file"]


@dataclass(frozen=True)
class Migration:
    """What :func:`migrate_config` made of an earlier configuration.

    Attributes
    ----------
    config : dict
        The new configuration (nested; only the keys the earlier file determines).
    mapped : list of (str, str, object)
        Earlier key, new key, new value.
    dropped : list of (str, object, str)
        Earlier key, its value, why it has no counterpart.
    defaults : list of (str, str, object, object)
        Earlier key the file leaves out, new key, the earlier default's new value (set in
        ``config``), voxelflex's default it replaces.
    notes : list of str
        What the user should check or set (e.g. the RMSF unit).
    """

    config: dict
    mapped: list[tuple[str, str, Any]] = field(default_factory=list)
    dropped: list[tuple[str, Any, str]] = field(default_factory=list)
    defaults: list[tuple[str, str, Any, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def report(self) -> str:
        """The mapping, the dropped keys, the earlier defaults kept and the notes as text, one
        line each."""
        lines = [f"mapped ({len(self.mapped)}):"]
        lines += [f"  {old} -> {new}: {_show(value)}" for old, new, value in self.mapped]
        lines.append(f"dropped ({len(self.dropped)}):")
        lines += [f"  {old} ({_show(value)}): {why}" for old, value, why in self.dropped]
        lines.append(
            f"earlier defaults kept ({len(self.defaults)}): not in the file, so the earlier "
            "VoxelFlex ran with its own default, which voxelflex's differs from"
        )
        lines += [
            f"  {old} -> {new}: {_show(value)} (voxelflex's default: {_show(ours)})"
            for old, new, value, ours in self.defaults
        ]
        if self.notes:
            lines.append("check:")
            lines += [f"  {note}" for note in self.notes]
        return "\n".join(lines)


def _show(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...")


def is_earlier_config(raw: Any) -> bool:
    """True when ``raw`` (a parsed YAML mapping) has a section only the earlier format has."""
    return isinstance(raw, Mapping) and any(k in raw for k in EARLIER_SECTIONS)


# ------------------------------------------------------------------------------- the rules

_ARCHITECTURES = {"multipath": "multipath", "densenet": "densenet3d", "dilated": "dilated_resnet3d"}
_SCHEDULERS = {
    "reduceonplateau": "plateau",
    "plateau": "plateau",
    "step": "step",
    "steplr": "step",
    "cosine": "cosine",
    "cosineannealing": "cosine",
    "cosineannealinglr": "cosine",
    "none": "none",
}
_MONITORS = ("val_loss", "val_pearson", "val_spearman", "val_rmse", "val_mae")
_LEVELS = {"DEBUG": "DEBUG", "INFO": "INFO", "WARNING": "WARNING", "ERROR": "ERROR"}
_LEVELS |= {"WARN": "WARNING", "CRITICAL": "ERROR", "FATAL": "ERROR"}
# Earlier architecture keys → this architecture's hyperparameter (model.hyperparameters.*).
_TRUNK_KEYS = {
    "densenet3d": {
        "model.densenet.growth_rate": "growth",
        "model.densenet.block_config": "blocks",
        "model.densenet.num_init_features": "init_features",
        "model.densenet.bn_size": "bottleneck",
    },
    "dilated_resnet3d": {
        "model.base_filters": "base_filters",
        "model.num_residual_blocks": "n_blocks",
        "model.channel_growth_rate": "growth",
    },
    "multipath": {"model.base_filters": "stem_channels"},
}
# Keys the earlier multipath read that voxelflex's multipath has no counterpart of.
_MULTIPATH_UNMAPPED = {
    "model.channel_growth_rate": "the earlier multipath's path width factor (base_filters × "
    "rate channels, 48 by default); voxelflex's paths are model.hyperparameters.path_channels "
    "wide (base preset 64): set it to keep a width",
    "model.num_residual_blocks": "the earlier multipath's blocks per path; voxelflex's paths "
    "have two convolutions each, not configurable",
}
# The earlier loader merged a user's file over its packaged default_config.yaml, so a key the
# file left out ran with these values (the keys that have a counterpart here; VoxelFlex_T 0.3.0).
# Paths are left out: the earlier defaults named folders relative to wherever it ran, and an
# unset input here is refused, not guessed. The size keys (model.densenet.*, base_filters, ...)
# are left out too: model.preset base has the earlier sizes.
_EARLIER_DEFAULTS: dict[str, Any] = {
    "output.run_name": "voxelflex_run_{timestamp}",
    "model.architecture": "multipath_rmsf_net",
    "model.dropout_rate": 0.3,
    "training.batch_size": 128,
    "training.num_epochs": 5,
    "training.learning_rate": 5e-4,
    "training.weight_decay": 1e-4,
    "training.seed": 42,
    "training.num_workers": 2,
    "training.checkpoint_interval": 5,
    "training.gradient_clipping.enabled": True,
    "training.gradient_clipping.max_norm": 1.0,
    "training.mixed_precision.enabled": True,
    "training.gradient_accumulation_steps": 1,
    "training.scheduler.type": "reduce_on_plateau",
    "training.scheduler.monitor_metric": "val_pearson",
    "training.scheduler.patience": 5,
    "training.scheduler.factor": 0.5,
    "training.scheduler.min_lr": 1e-7,
    "training.scheduler.threshold": 0.001,
    "training.early_stopping.enabled": True,
    "training.early_stopping.patience": 10,
    "training.early_stopping.min_delta": 0.001,
    "prediction.batch_size": 256,
    "evaluation.calculate_permutation_importance": True,
    "evaluation.sasa_bins": [0.0, 0.1, 0.4, 1.01],
    "evaluation.permutation_n_repeats": 5,
    "logging.level": "INFO",
    "logging.show_progress_bars": True,
    "visualization.plot_loss": True,
}
# The earlier training.scheduler.* settings each schedule read → voxelflex key, earlier default
# (filled in when absent: several differ from voxelflex's, e.g. patience 5 vs 3, gamma 0.1 vs 0.5).
_SCHEDULE_KEYS = {
    "plateau": {
        key: (new, _EARLIER_DEFAULTS[f"training.scheduler.{key}"])
        for key, new in (
            ("patience", "train.plateau_patience"),
            ("factor", "train.lr_factor"),
            ("min_lr", "train.min_lr"),
            ("threshold", "train.plateau_threshold"),
        )
    },
    "step": {"step_size": ("train.step_epochs", 10), "gamma": ("train.lr_factor", 0.1)},
    "cosine": {"eta_min": ("train.min_lr", 1e-7)},
}
_EARLIER_SCHEDULE = {"plateau": "reduce_on_plateau", "step": "step", "cosine": "cosine_annealing"}
_MODE = "implied by the metric: max for Pearson/Spearman, min for loss and errors"
_ALL_PLOTS = "`voxelflex plot` draws every plot its inputs allow"
_DROPPED = {
    "input.max_domains": "no counterpart: list fewer domains in the split files to train on fewer",
    "data.processed_dir": (
        "no preprocessed folder: `train` builds its index into <run>/index/index.parquet from "
        "data.voxel_file, data.rmsf_csv and the split files (or run `voxelflex index build -o "
        "FILE` and set data.index)"
    ),
    "data.master_samples_file": (
        "the earlier master_samples.parquet is not a voxelflex index; the index "
        "(`voxelflex index build`) takes its place"
    ),
    "data.temp_scaling_params_file": (
        "temperature scaling is part of the model (the training range is stored in the "
        "checkpoint); no separate file"
    ),
    "output.log_file": (
        "fixed: train logs to <run>/logs/voxelflex.log, other commands into their run folder "
        "or beside their output"
    ),
    "model.voxel_depth": "fixed by the voxel frame: 21³ grids",
    "model.voxel_height": "fixed by the voxel frame: 21³ grids",
    "model.voxel_width": "fixed by the voxel frame: 21³ grids",
    "model.input_channels": "fixed by the voxel frame: 5 channels (C, N, O, CA, CB)",
    "training.chunk_size": (
        "no chunks: a worker reads one domain at a time and residues are mixed across domains "
        "in a buffer (loader.mix_buffer_residues)"
    ),
    "training.pin_memory": "automatic: batches are pinned when training on CUDA",
    "training.prefetch_factor": (
        "no setting: each loader worker keeps a small ring of ready batches in shared memory"
    ),
    "training.resume_checkpoint": (
        "an earlier VoxelFlex checkpoint cannot be loaded (other model code and file format); "
        "continue a voxelflex run with --resume, start from a voxelflex run's weights with "
        "--init-from (train.init_from)"
    ),
    "training.save_best_mode": _MODE,
    "training.scheduler.mode": _MODE,
    "training.early_stopping.mode": _MODE,
    "evaluation.calculate_stratified_metrics": (
        "always computed (secondary structure, accessibility bins, residue type; pooled and "
        "per temperature)"
    ),
    "logging.console_level": "one level (log_level) for the console and the log file",
    "logging.file_level": "one level (log_level) for the console and the log file",
    "logging.log_timing": (
        "always: seconds, samples/s and data-wait fraction per epoch in the log and "
        "training_history.json"
    ),
    "logging.log_memory_usage": (
        "memory use is not logged (the train log gives time, samples/s and data-wait fraction "
        "per epoch)"
    ),
    "visualization.plot_correlation": f"{_ALL_PLOTS}: pred_vs_true, per_temperature_metrics",
    "visualization.plot_predictions": f"{_ALL_PLOTS}: pred_vs_true, rmsf_profile_<domain>",
    "visualization.plot_density_scatter": f"{_ALL_PLOTS}: pred_vs_true (a hexbin density)",
    "visualization.plot_error_distribution": f"{_ALL_PLOTS}: error_distribution",
    "visualization.plot_residue_type_analysis": f"{_ALL_PLOTS}: residue_type_errors",
    "visualization.plot_sasa_error_analysis": f"{_ALL_PLOTS}: accessibility_errors",
    "visualization.plot_ss_error_analysis": f"{_ALL_PLOTS}: secondary_structure_errors",
    "visualization.plot_amino_acid_performance": f"{_ALL_PLOTS}: residue_type_errors",
    "visualization.save_format": "an option of the command: `voxelflex plot --format png|svg|pdf`",
    "visualization.dpi": "PNG at 150 dpi; `voxelflex plot --format svg` or pdf for vector images",
    "visualization.max_scatter_points": (
        "no subsampling: pred_vs_true draws the density of every point"
    ),
    "visualization.save_plot_data": "always: every plot writes <name>_data.csv",
    "system_utilization.detect_cores": (
        "train.threads and loader.num_workers set CPU use (0 threads = torch's default)"
    ),
    "system_utilization.adjust_for_gpu": "train.device: auto picks CUDA when one is present",
}


class _Builder:
    """Collects the new keys, the mapping lines and the dropped keys while the rules run."""

    def __init__(self, old: dict[str, Any], paths: Callable[[str], str]) -> None:
        self.old = old
        self.paths = paths
        self.result = Migration(config={})
        self.used: set[str] = set()

    def has(self, key: str) -> bool:
        return key in self.old

    def get(self, key: str, default: Any = None) -> Any:
        return self.old.get(key, default)

    def set(self, old: str, new: str, value: Any) -> None:
        _put(self.result.config, new, value)
        self.result.mapped.append((old, new, value))
        self.used.add(old)

    def drop(self, old: str, why: str) -> None:
        self.result.dropped.append((old, self.old.get(old), why))
        self.used.add(old)

    def note(self, text: str) -> None:
        self.result.notes.append(text)


def _flatten(raw: Mapping, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _token(value: Any) -> str:
    return re.sub(r"[^a-z0-9]", "", str(value).lower())


def migrate_config(
    raw: Mapping,
    *,
    rmsf_unit: str | None = None,
    old_dir: str | Path = ".",
    new_dir: str | Path = ".",
    now: datetime.datetime | None = None,
) -> Migration:
    """Map an earlier VoxelFlex configuration (parsed YAML) to this one's keys.

    A key ``raw`` leaves out ran with the earlier packaged default (its loader merged the file
    over them): where that default maps to a value other than voxelflex's default, the new
    config sets it and :attr:`Migration.defaults` lists it.

    Parameters
    ----------
    raw : mapping
        The earlier file's content.
    rmsf_unit : {"nm", "angstrom"}, optional
        Unit of the RMSF CSV (the earlier format had no such key); without it
        ``data.rmsf_unit`` stays unset and a note says so.
    old_dir, new_dir : path
        Relative paths are read against ``old_dir`` (the earlier file's folder); they stay
        relative when the new file lives there too (``new_dir``), else become absolute, so
        they keep naming the same files.
    now : datetime, optional
        Replaces ``{timestamp}`` in the earlier run name (default: the current time).

    Raises
    ------
    ConfigError
        Not a mapping, or a value no rule can translate (an unknown architecture or schedule).
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(f"an earlier VoxelFlex config is a mapping of sections, got {raw!r}")
    old_dir, new_dir = Path(old_dir).absolute(), Path(new_dir).absolute()

    def rebase(value: str) -> str:
        path = Path(os.path.expanduser(value))
        if path.is_absolute() or old_dir == new_dir:
            return str(path)
        return str(old_dir / path)  # the new file lives elsewhere: name the same file

    now = now or datetime.datetime.now()
    flat = _flatten(raw)
    b = _apply_rules(flat, rebase, rmsf_unit, now)
    absent = {key: value for key, value in _EARLIER_DEFAULTS.items() if key not in flat}
    if absent:
        # The earlier run had these keys from its defaults: the same rules over the file merged
        # onto them give the new keys the earlier run's values (a default combines with the
        # file's keys as it did there, e.g. the plateau settings under the default schedule).
        _keep_earlier_defaults(b, _apply_rules(flat | absent, rebase, rmsf_unit, now), absent)
    b.note("model.preset is base, the earlier models' sizes (voxelflex's default preset is small)")
    b.note(
        "model.conditioning is film (temperature modulates the trunk's features); the earlier "
        "models concatenated it at the head: set model.conditioning: head for that"
    )
    b.note(
        "temperatures are no longer clamped to the training range: predictions outside it are "
        "made and flagged as extrapolated"
    )
    return b.result


def _apply_rules(
    flat: dict[str, Any],
    rebase: Callable[[str], str],
    rmsf_unit: str | None,
    now: datetime.datetime,
) -> _Builder:
    """Every rule over the flattened earlier keys ``flat``; what is left is dropped."""
    b = _Builder(flat, rebase)
    _inputs(b, rmsf_unit)
    _output(b, now)
    _model(b)
    _training(b)
    _evaluation_and_logging(b)
    for key in sorted(set(b.old) - b.used):
        if key in _DROPPED:
            b.drop(key, _DROPPED[key])
        else:
            b.drop(key, "not a key of the earlier VoxelFlex's config, nor of this one")
    order = {key: i for i, key in enumerate(b.old)}  # report in the earlier file's order
    b.result.mapped.sort(key=lambda line: order[line[0]])
    b.result.dropped.sort(key=lambda line: order[line[0]])
    return b


def _keep_earlier_defaults(b: _Builder, merged: _Builder, absent: Mapping[str, Any]) -> None:
    """Set in ``b`` the new keys that only the earlier defaults ``absent`` determine in
    ``merged`` (the rules over the file merged onto them), where voxelflex's default differs."""
    ours = load_config(None)
    for old, new, value in merged.result.mapped:
        if old not in absent or _has(b.result.config, new):
            continue
        default = ours.get(new)
        default = list(default) if isinstance(default, tuple) else default
        if value != default:  # set once: a later line of the same key is _has above
            _put(b.result.config, new, value)
            b.result.defaults.append((old, new, value, default))


def _has(config: dict, dotted: str) -> bool:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _put(config: dict, dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        config = config.setdefault(part, {})
    config[last] = value


def _inputs(b: _Builder, rmsf_unit: str | None) -> None:
    for old, new in (
        ("input.voxel_file", "data.voxel_file"),
        ("input.aggregated_rmsf_file", "data.rmsf_csv"),
        ("input.train_split_file", "data.train_split"),
        ("input.val_split_file", "data.val_split"),
        ("input.test_split_file", "data.test_split"),
    ):
        if b.has(old):
            value = b.get(old)
            b.set(old, new, None if value is None else b.paths(str(value)))
    if rmsf_unit is not None:
        b.result.config.setdefault("data", {})["rmsf_unit"] = check_rmsf_unit(rmsf_unit)
    elif b.has("input.aggregated_rmsf_file"):
        b.note(
            "data.rmsf_unit is not set: the earlier format had no unit (mdCATH RMSF is in nm); "
            "set it, or rerun with --rmsf-unit nm|angstrom"
        )


def _output(b: _Builder, now: datetime.datetime) -> None:
    for key in ("output.base_dir", "output.run_name"):
        if b.has(key) and b.get(key) is None:  # str(None) would name a folder "None"
            b.drop(key, "empty (null): the default applies")
    if b.has("output.base_dir") and b.get("output.base_dir") is not None:
        b.set("output.base_dir", "output_dir", b.paths(str(b.get("output.base_dir"))))
    if b.has("output.run_name") and b.get("output.run_name") is not None:
        name = str(b.get("output.run_name"))
        if "{timestamp}" in name:
            name = name.replace("{timestamp}", now.strftime("%Y%m%d_%H%M%S"))
            b.note(
                f"run_name is {name!r}: {{timestamp}} was filled in now, since --resume finds a "
                "run by its fixed folder name"
            )
        b.set("output.run_name", "run_name", name.replace("/", "_"))


def _model(b: _Builder) -> None:
    name = "multipath"  # the earlier default
    if b.has("model.architecture"):
        value = _token(b.get("model.architecture"))
        found = next((new for old, new in _ARCHITECTURES.items() if value.startswith(old)), None)
        if found is None:
            raise ConfigError(
                f"model.architecture: {b.get('model.architecture')!r} is not an earlier VoxelFlex "
                "architecture (multipath_rmsf_net, densenet3d_regression, dilated_resnet3d)"
            )
        name = found
        b.set("model.architecture", "model.name", name)
    # The earlier models' sizes are this preset's (the remaining keys say how they differ).
    b.result.config.setdefault("model", {})["preset"] = "base"
    trunk_keys = _TRUNK_KEYS[name]
    for old, new in trunk_keys.items():
        if b.has(old):
            value = b.get(old)
            value = list(value) if isinstance(value, list | tuple) else value
            b.set(old, f"model.hyperparameters.{new}", value)
    for keys in _TRUNK_KEYS.values():
        for old in keys:
            if b.has(old) and old not in b.used:
                if name == "multipath" and old in _MULTIPATH_UNMAPPED:
                    b.drop(old, _MULTIPATH_UNMAPPED[old])
                else:
                    b.drop(old, f"a setting of another architecture than the chosen {name}")
    if b.has("model.dropout_rate"):
        b.set("model.dropout_rate", "model.dropout", b.get("model.dropout_rate"))
    if b.has("model.input_channels") and b.get("model.input_channels") != 5:
        b.note(f"model.input_channels was {b.get('model.input_channels')}: the voxel frame has 5")


def _monitor(b: _Builder, key: str) -> str | None:
    value = b.get(key)
    return value if value in _MONITORS else None


def _training(b: _Builder) -> None:
    simple = {
        "training.batch_size": "loader.batch_size",
        "training.num_epochs": "train.epochs",
        "training.learning_rate": "train.lr",
        "training.weight_decay": "train.weight_decay",
        "training.seed": "loader.seed",
        "training.num_workers": "loader.num_workers",
        "training.checkpoint_interval": "train.checkpoint_every_epochs",
        "training.gradient_accumulation_steps": "train.grad_accumulation",
        "training.early_stopping.min_delta": "train.early_stopping_min_delta",
    }
    for old, new in simple.items():
        if b.has(old):
            b.set(old, new, b.get(old))
    # The earlier trainer compared training.scheduler.monitor_metric (default val_pearson) for
    # the schedule, best_model.pt and early stopping alike; save_best_metric only named it.
    monitor = "val_pearson"
    source = "training.scheduler.monitor_metric"
    if b.has(source):
        if _monitor(b, source) is None:
            b.drop(
                source,
                f"not a metric voxelflex monitors ({', '.join(_MONITORS)}); train.monitor keeps "
                "its default val_pearson",
            )
        else:
            monitor = _monitor(b, source)
            b.set(source, "train.monitor", monitor)
    # The earlier trainer took training.scheduler.mode as written (merged over its default,
    # max) and derived it from the metric only when it was neither min nor max; with val_loss
    # and no mode in the file it therefore kept the epoch of the highest loss.
    mode = b.get("training.scheduler.mode", "max")
    direction = "max" if monitor in ("val_pearson", "val_spearman") else "min"
    if mode in ("min", "max") and mode != direction:
        given = "training.scheduler.mode" if b.has("training.scheduler.mode") else "its default"
        favoured = "highest" if mode == "max" else "lowest"
        b.note(
            f"the earlier run compared {monitor} with mode {mode} ({given}): its schedule, "
            f"best_model.pt and early stopping favoured the {favoured} {monitor}; "
            f"voxelflex's train.monitor {monitor} takes the direction of the metric "
            f"({direction}), so the migrated run is not a repeat of that one"
        )
    for key in ("training.save_best_metric", "training.early_stopping.monitor_metric"):
        if not b.has(key):
            continue
        if b.get(key) == monitor:
            b.drop(
                key,
                "the same metric as train.monitor, which drives best.pt, plateau and early "
                "stopping alike",
            )
        else:
            b.drop(
                key,
                f"the earlier VoxelFlex ignored it: training.scheduler.monitor_metric ({monitor}) "
                "chose best_model.pt and drove early stopping; train.monitor is that metric",
            )
    clipping = ("training.gradient_clipping.enabled", "training.gradient_clipping.max_norm")
    if any(b.has(key) for key in clipping):
        enabled = b.get(clipping[0], True)
        norm = b.get(clipping[1], 1.0)
        for key in clipping:
            if b.has(key):
                b.set(key, "train.grad_clip", norm if enabled else 0.0)
    if b.has("training.mixed_precision.enabled"):
        precision = "auto" if b.get("training.mixed_precision.enabled") else "fp32"
        b.set("training.mixed_precision.enabled", "train.precision", precision)
    if b.has("training.scheduler.type"):
        value = b.get("training.scheduler.type")
        kind = _SCHEDULERS.get(_token(value)) if value is not None else "none"
        if kind is None:
            raise ConfigError(
                f"training.scheduler.type: {value!r} has no counterpart; voxelflex schedules: "
                "cosine, step, plateau, none (train.scheduler)"
            )
        b.set("training.scheduler.type", "train.scheduler", kind)
    _schedule_settings(b)
    if b.has("training.early_stopping.enabled") or b.has("training.early_stopping.patience"):
        enabled = b.get("training.early_stopping.enabled", True)
        patience = b.get("training.early_stopping.patience", 10)
        for key in ("training.early_stopping.enabled", "training.early_stopping.patience"):
            if b.has(key):
                b.set(key, "train.early_stopping_patience", patience if enabled else 0)
        if enabled and patience == 0:
            b.note(
                "training.early_stopping: enabled with patience 0 stopped the earlier run after "
                "its first epoch (0 epochs without a gain reach a patience of 0); voxelflex reads "
                "train.early_stopping_patience 0 as off, so this run trains every epoch: set "
                "train.epochs: 1 for the earlier run's length"
            )


def _schedule_settings(b: _Builder) -> None:
    """The earlier schedule's own settings, its defaults where absent; the others dropped."""
    present = [
        key
        for keys in _SCHEDULE_KEYS.values()
        for key in keys
        if b.has(f"training.scheduler.{key}")
    ]
    kind = b.result.config.get("train", {}).get("scheduler")
    source = "training.scheduler.type"
    plateau_keys = [key for key in present if key in _SCHEDULE_KEYS["plateau"]]
    if kind is None and plateau_keys:
        # the earlier default type: without it these settings would do nothing under cosine
        source = f"training.scheduler.{plateau_keys[0]}"
        kind = "plateau"
        b.set(source, "train.scheduler", kind)
        b.note(
            f"training.scheduler sets {', '.join(plateau_keys)} but no type: the earlier system "
            "then ran its default, reduce_on_plateau, so train.scheduler is plateau"
        )
    own = _SCHEDULE_KEYS.get(kind, {})
    for key, (new, default) in own.items():
        old = f"training.scheduler.{key}"
        if b.has(old):
            b.set(old, new, b.get(old))
        else:
            b.set(source, new, default)
    if kind == "cosine":
        b.set(source, "train.warmup_epochs", 0.0)  # CosineAnnealingLR had no warm-up
        b.note(
            "train.scheduler is cosine: it decays to 1 % of train.lr over train.epochs, the "
            "earlier cosine_annealing to eta_min over T_max (default num_epochs)"
        )
    ran = _EARLIER_SCHEDULE.get(kind, "none") if kind else "reduce_on_plateau (the default)"
    for key in present:
        if key not in own:
            b.drop(f"training.scheduler.{key}", f"not read by the earlier schedule, {ran}")
    if b.has("training.scheduler.T_max"):
        b.drop(
            "training.scheduler.T_max",
            "voxelflex's cosine spans train.epochs (the earlier T_max defaulted to num_epochs)"
            if kind == "cosine"
            else f"not read by the earlier schedule, {ran}",
        )


def _evaluation_and_logging(b: _Builder) -> None:
    if b.has("prediction.batch_size"):
        batch = b.get("prediction.batch_size")
        b.set("prediction.batch_size", "predict.residues_per_batch", batch)
        b.note(
            "predict.residues_per_batch counts residues, each with all its temperatures (the "
            "earlier prediction batch held one temperature per residue)"
        )
    for old, new in (
        ("evaluation.calculate_permutation_importance", "evaluate.importance"),
        ("evaluation.permutation_n_repeats", "evaluate.shuffles"),
        ("evaluation.sasa_bins", "evaluate.accessibility_bins"),
    ):
        if b.has(old):
            b.set(old, new, b.get(old))
    if b.has("logging.level"):
        level = _LEVELS.get(str(b.get("logging.level")).upper())
        if level is None:
            b.drop("logging.level", f"not a level ({', '.join(sorted(set(_LEVELS.values())))})")
        else:
            b.set("logging.level", "log_level", level)
    if b.has("logging.show_progress_bars"):
        shown = _switch(b, "logging.show_progress_bars")
        if shown is not None:
            b.set("logging.show_progress_bars", "train.progress", shown)
            b.set("logging.show_progress_bars", "predict.progress", shown)
    if b.has("visualization.plot_loss"):
        plotted = _switch(b, "visualization.plot_loss")
        if plotted is not None:
            b.set("visualization.plot_loss", "train.plot", plotted)


def _switch(b: _Builder, key: str) -> bool | None:
    """A true/false setting; anything else (a quoted "false" is truthy) is dropped, not guessed."""
    value = b.get(key)
    if isinstance(value, bool):
        return value
    b.drop(key, f"{value!r} is not true or false: the default applies")
    return None


# ------------------------------------------------------------------------------- files


def migrate_file(
    old_path: str | os.PathLike,
    out_path: str | os.PathLike | None = None,
    *,
    rmsf_unit: str | None = None,
    overwrite: bool = False,
) -> tuple[Migration, str]:
    """Convert the earlier config ``old_path``; write the new one to ``out_path`` if given.

    The new file starts with the report (:meth:`Migration.report`) as comments, and is checked
    with :func:`voxelflex.config.load_config` before it is written (atomically; the overwrite
    policy applies).

    Returns
    -------
    (Migration, str)
        The mapping and the new file's text.

    Raises
    ------
    ConfigError
        The file is not YAML, already in this format, or holds a value no rule translates.
    """
    old_path = require_file(old_path, what="earlier config", error=ConfigError)
    raw = read_config_yaml(old_path)
    if not is_earlier_config(raw):
        raise ConfigError(
            f"{old_path} has none of the earlier VoxelFlex's sections "
            f"({', '.join(EARLIER_SECTIONS)}): it is in this format already (check it with "
            f"`voxelflex config show --config {old_path}`)"
        )
    new_dir = Path(out_path).absolute().parent if out_path is not None else Path.cwd()
    migration = migrate_config(raw, rmsf_unit=rmsf_unit, old_dir=old_path.parent, new_dir=new_dir)
    header = [
        f"voxelflex configuration migrated from the earlier VoxelFlex's {old_path.name}",
        "by `voxelflex config migrate` (see docs/migrating.md); the earlier defaults of keys",
        "that file left out are kept where they differ; keys not set here keep voxelflex's",
        "defaults (`voxelflex config show --config THIS_FILE` lists them all).",
        "",
        *migration.report().splitlines(),
    ]
    text = "\n".join(f"# {line}".rstrip() for line in header) + "\n\n"
    text += yaml.safe_dump(migration.config, sort_keys=False)
    _check(text, old_path)
    if out_path is None:
        return migration, text
    out = check_output(
        out_path, inputs={"earlier config": old_path}, overwrite=overwrite, what="migrated config"
    )
    with atomic_path(out, suffix=".yaml") as tmp:
        Path(tmp).write_text(text)
    return migration, text


def _check(text: str, old_path: Path) -> None:
    """Load ``text`` as a config file, or say why it does not load."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "migrated.yaml"
        path.write_text(text)
        try:
            load_config(path)
        except ConfigError as exc:
            raise ConfigError(
                f"{old_path}: the migrated configuration does not load ({exc}); fix that value "
                "in the earlier file, or migrate and edit the result"
            ) from None
