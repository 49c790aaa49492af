"""`voxelflex config migrate`: a config in the earlier VoxelFlex's format, every key mapped or
listed as dropped with its reason, and the result accepted by `train` (issue 14)."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from voxelflex.cli.main import app
from voxelflex.config import load_config
from voxelflex.errors import ConfigError
from voxelflex.migrate import _flatten, is_earlier_config, migrate_config, migrate_file
from voxelflex.models import ModelSpec, trunk_arguments

EARLIER = Path(__file__).parent / "data" / "earlier_voxelflex_config.yaml"
runner = CliRunner()


def _earlier() -> dict:
    return yaml.safe_load(EARLIER.read_text())


def _invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_every_earlier_key_is_mapped_or_dropped_with_a_reason():
    raw = _earlier()
    migration = migrate_config(raw, rmsf_unit="nm", now=datetime.datetime(2024, 5, 1, 12))
    old_keys = set(_flatten(raw))
    assert len(old_keys) == 80  # the earlier packaged defaults, key by key
    mapped = {old for old, _, _ in migration.mapped}
    dropped = {old for old, _, _ in migration.dropped}
    assert mapped | dropped == old_keys and not mapped & dropped
    assert all(len(why) > 15 for _, _, why in migration.dropped)
    new = migration.config
    assert new["run_name"] == "voxelflex_run_20240501_120000"
    assert new["model"] == {
        "name": "multipath",
        "preset": "base",
        "hyperparameters": {"stem_channels": 32},
        "dropout": 0.3,
    }
    train = new["train"]
    assert (train["scheduler"], train["lr_factor"], train["min_lr"]) == ("plateau", 0.5, 1e-7)
    assert (train["early_stopping_patience"], train["early_stopping_min_delta"]) == (10, 0.001)
    assert (train["grad_clip"], train["precision"], train["monitor"]) == (
        1.0,
        "auto",
        "val_pearson",
    )
    assert new["evaluate"] == {
        "importance": True,
        "shuffles": 5,
        "accessibility_bins": [0.0, 0.1, 0.4, 1.01],
    }
    assert new["data"]["rmsf_unit"] == "nm"
    why = dict((old, reason) for old, _, reason in migration.dropped)
    assert "another architecture" in why["model.densenet.growth_rate"]
    # the earlier multipath read these two: not "another architecture's" settings
    assert "path_channels" in why["model.channel_growth_rate"]
    assert "two convolutions each" in why["model.num_residual_blocks"]
    assert "index" in why["data.master_samples_file"]


@pytest.mark.parametrize(
    ("architecture", "name", "expected"),
    [
        ("densenet3d_regression", "densenet3d",
         {"growth": 16, "blocks": [4, 4, 4], "init_features": 32, "bottleneck": 4}),
        ("dilated_resnet3d", "dilated_resnet3d",
         {"base_filters": 32, "n_blocks": 3, "growth": 1.5}),
        ("MultipathRMSFNet", "multipath", {"stem_channels": 32}),
    ],
)  # fmt: skip
def test_architecture_settings_become_hyperparameters_the_models_accept(
    architecture, name, expected
):
    raw = _earlier()
    raw["model"]["architecture"] = architecture
    model = migrate_config(raw).config["model"]
    assert model["name"] == name and model["hyperparameters"] == expected
    trunk_arguments(ModelSpec(name, model["preset"], "film", hyperparameters=expected))


def test_switches_off_and_other_values():
    raw = _earlier()
    training = raw["training"]
    training["gradient_clipping"]["enabled"] = False
    training["early_stopping"]["enabled"] = False
    training["mixed_precision"]["enabled"] = False
    training["scheduler"]["type"] = "StepLR"
    training["scheduler"]["monitor_metric"] = "val_loss"
    raw["logging"]["level"] = "critical"
    raw["made_up"] = {"key": 1}
    migration = migrate_config(raw)
    train = migration.config["train"]
    assert (train["grad_clip"], train["early_stopping_patience"]) == (0.0, 0)
    assert (train["precision"], train["scheduler"]) == ("fp32", "step")
    assert migration.config["log_level"] == "ERROR"
    why = dict((old, reason) for old, _, reason in migration.dropped)
    assert train["monitor"] == "val_loss"  # the scheduler's metric drove everything
    assert "ignored it" in why["training.save_best_metric"]
    assert "nor of this one" in why["made_up.key"]
    assert any("data.rmsf_unit is not set" in note for note in migration.notes)
    assert "not read by the earlier schedule, step" in why["training.scheduler.factor"]
    # patience and factor without a type: the earlier default (reduce_on_plateau) ran
    del raw["training"]["scheduler"]["type"]
    migration = migrate_config(raw)
    assert migration.config["train"]["scheduler"] == "plateau"
    assert migration.config["train"]["plateau_patience"] == training["scheduler"]["patience"]
    assert any("default, reduce_on_plateau" in n for n in migration.notes)
    raw["output"]["run_name"] = None
    raw["logging"]["show_progress_bars"] = "false"  # quoted: truthy as a Python string
    migration = migrate_config(raw)
    assert "run_name" not in migration.config and "progress" not in migration.config["train"]
    why = dict((old, reason) for old, _, reason in migration.dropped)
    assert "empty (null)" in why["output.run_name"]
    assert "'false' is not true or false" in why["logging.show_progress_bars"]
    raw["training"]["scheduler"]["type"] = "cyclic"
    with pytest.raises(ConfigError, match=r"'cyclic' has no counterpart.*cosine, step"):
        migrate_config(raw)


def test_the_scheduler_metric_picked_the_best_checkpoint_not_save_best_metric():
    # The earlier trainer compared training.scheduler.monitor_metric for best_model.pt, the
    # plateau schedule and early stopping; save_best_metric only named that metric in its log.
    migration = migrate_config({"training": {"save_best_metric": "val_loss"}})
    assert migration.config.get("train", {}).get("monitor", "val_pearson") == "val_pearson"
    why = dict((old, reason) for old, _, reason in migration.dropped)
    assert "scheduler.monitor_metric (val_pearson)" in why["training.save_best_metric"]
    raw = {
        "training": {
            "save_best_metric": "val_pearson",
            "scheduler": {"monitor_metric": "val_loss"},
            "early_stopping": {"monitor_metric": "val_pearson"},
        }
    }
    migration = migrate_config(raw)
    assert migration.config["train"]["monitor"] == "val_loss"
    dropped = {old for old, _, _ in migration.dropped}
    assert {"training.save_best_metric", "training.early_stopping.monitor_metric"} <= dropped


@pytest.mark.parametrize(
    ("scheduler", "expected", "dropped"),
    [
        ({"type": "reduce_on_plateau"},
         {"scheduler": "plateau", "plateau_patience": 5, "lr_factor": 0.5, "min_lr": 1e-7,
          "plateau_threshold": 0.001}, set()),
        ({"type": "step", "factor": 0.5, "patience": 5},
         {"scheduler": "step", "step_epochs": 10, "lr_factor": 0.1}, {"factor", "patience"}),
        ({"type": "step", "step_size": 3, "gamma": 0.2},
         {"scheduler": "step", "step_epochs": 3, "lr_factor": 0.2}, set()),
        ({"type": "cosine_annealing", "eta_min": 1e-5, "T_max": 7, "min_lr": 1e-7},
         {"scheduler": "cosine", "min_lr": 1e-5, "warmup_epochs": 0.0}, {"T_max", "min_lr"}),
    ],
)  # fmt: skip
def test_a_schedule_keeps_the_settings_and_defaults_the_earlier_one_ran_with(
    scheduler, expected, dropped
):
    # The earlier ReduceLROnPlateau defaulted to patience 5, threshold 1e-3, min_lr 1e-7; its
    # StepLR read step_size (10) and gamma (0.1), not factor; its CosineAnnealingLR had no warm-up.
    migration = migrate_config({"training": {"scheduler": scheduler}})
    schedule = {"scheduler", "warmup_epochs", "step_epochs", "plateau_patience"}
    schedule |= {"plateau_threshold", "lr_factor", "min_lr"}
    train = migration.config["train"]  # also the earlier lr, epochs, ... (the file has none)
    assert {key: value for key, value in train.items() if key in schedule} == expected
    assert {old.removeprefix("training.scheduler.") for old, _, _ in migration.dropped} == dropped
    load_config(None, [f"train.{key}={value}" for key, value in expected.items()])


def test_files_follow_the_overwrite_policy_and_refuse_a_file_in_this_format(tmp_path):
    old = tmp_path / "old.yaml"
    old.write_text(EARLIER.read_text())
    result = _invoke("config", "migrate", old, "-o", old)
    assert result.exit_code == 2 and "this command reads" in result.output
    out = tmp_path / "new.yaml"
    assert _invoke("config", "migrate", old, "-o", out).exit_code == 0
    result = _invoke("config", "migrate", old, "-o", out)
    assert result.exit_code == 2 and "already exists" in result.output
    assert _invoke("config", "migrate", old, "-o", out, "--overwrite").exit_code == 0
    assert out.read_text().startswith("# voxelflex configuration migrated from")
    assert not is_earlier_config(yaml.safe_load(out.read_text()))
    result = _invoke("config", "migrate", out)
    assert result.exit_code == 2 and "in this format already" in result.output
    # without -o: the new config on stdout (loadable), the report in the output too
    result = _invoke("config", "migrate", old, "--rmsf-unit", "angstrom")
    assert result.exit_code == 0 and "rmsf_unit: angstrom" in result.output
    # relative paths keep naming the same files when the new file lives elsewhere
    elsewhere = tmp_path / "configs" / "run.yaml"
    elsewhere.parent.mkdir()
    migrate_file(old, elsewhere)
    config = load_config(elsewhere)
    assert config.data.voxel_file == tmp_path / "input_data" / "voxel" / "mdcath_voxelized.hdf5"


def test_a_migrated_earlier_config_is_accepted_by_train(demo_data, tmp_path):
    raw = _earlier()
    raw["input"].update(
        voxel_file=str(demo_data.voxel_file),
        aggregated_rmsf_file=str(demo_data.rmsf_csv),
        train_split_file=str(demo_data.train_split),
        val_split_file=str(demo_data.val_split),
        test_split_file=str(demo_data.test_split),
    )
    raw["output"].update(base_dir=str(tmp_path / "outputs"), run_name="migrated")
    raw["model"].update(architecture="densenet3d")
    raw["model"]["densenet"].update(
        growth_rate=4, block_config=[1, 1], num_init_features=8, bn_size=2
    )
    raw["training"].update(num_epochs=1, batch_size=64, num_workers=0)
    raw["logging"]["show_progress_bars"] = False
    old = tmp_path / "voxelflex_config.yaml"
    old.write_text(yaml.safe_dump(raw))
    new = tmp_path / "run.yaml"
    result = _invoke("config", "migrate", old, "-o", new, "--rmsf-unit", "nm")
    assert result.exit_code == 0, result.output
    result = _invoke("train", "--config", new, "--no-plot")
    assert result.exit_code == 0, result.output
    run = tmp_path / "outputs" / "migrated"
    assert (run / "models" / "best.pt").is_file()
    history = json.loads((run / "training_history.json").read_text())
    assert len(history) == 1 and history[0]["monitor"] == "val_pearson"
    saved = load_config(run / "config.yaml")
    assert saved.model.name == "densenet3d" and saved.train.scheduler == "plateau"
    assert saved.model.hyperparameters == {
        "growth": 4,
        "blocks": [1, 1],
        "init_features": 8,
        "bottleneck": 2,
    }


# Independent of migrate.py: each key of the earlier packaged defaults (VoxelFlex_T's
# default_config.yaml, here tests/data/earlier_voxelflex_config.yaml) with the voxelflex key(s)
# and value it must become, or DROP. Read off the earlier code:
# AdamW(lr, weight_decay), ReduceLROnPlateau(mode, factor, patience, threshold, min_lr) stepped per
# epoch on scheduler.monitor_metric, early stopping after `patience` epochs without a gain of
# min_delta, mixed precision on CUDA only.
DROP = None
EARLIER_TO_NEW = {
    "input.voxel_file": [("data.voxel_file", "input_data/voxel/mdcath_voxelized.hdf5")],
    "input.aggregated_rmsf_file": [
        ("data.rmsf_csv", "input_data/rmsf/aggregated_rmsf_all_temps.csv")
    ],
    "input.train_split_file": [("data.train_split", "input_data/train_domains.txt")],
    "input.val_split_file": [("data.val_split", "input_data/val_domains.txt")],
    "input.test_split_file": [("data.test_split", "input_data/test_domains.txt")],
    "input.max_domains": DROP,
    "data.processed_dir": DROP,
    "data.master_samples_file": DROP,
    "data.temp_scaling_params_file": DROP,
    "output.base_dir": [("output_dir", "outputs")],
    "output.run_name": [("run_name", "voxelflex_run_20240501_120000")],
    "output.log_file": DROP,
    "model.architecture": [("model.name", "multipath")],
    "model.input_channels": DROP,
    "model.voxel_depth": DROP,
    "model.voxel_height": DROP,
    "model.voxel_width": DROP,
    "model.densenet.growth_rate": DROP,  # settings of densenet3d, not of the chosen multipath
    "model.densenet.block_config": DROP,
    "model.densenet.num_init_features": DROP,
    "model.densenet.bn_size": DROP,
    "model.channel_growth_rate": DROP,
    "model.num_residual_blocks": DROP,
    "model.base_filters": [("model.hyperparameters.stem_channels", 32)],
    "model.dropout_rate": [("model.dropout", 0.3)],
    "training.chunk_size": DROP,
    "training.batch_size": [("loader.batch_size", 128)],
    "training.num_epochs": [("train.epochs", 5)],
    "training.learning_rate": [("train.lr", 0.0005)],
    "training.weight_decay": [("train.weight_decay", 0.0001)],
    "training.seed": [("loader.seed", 42)],
    "training.num_workers": [("loader.num_workers", 2)],
    "training.pin_memory": DROP,
    "training.prefetch_factor": DROP,
    "training.resume_checkpoint": DROP,
    "training.save_best_metric": DROP,
    "training.save_best_mode": DROP,
    "training.checkpoint_interval": [("train.checkpoint_every_epochs", 5)],
    "training.gradient_clipping.enabled": [("train.grad_clip", 1.0)],
    "training.gradient_clipping.max_norm": [("train.grad_clip", 1.0)],
    "training.mixed_precision.enabled": [("train.precision", "auto")],
    "training.gradient_accumulation_steps": [("train.grad_accumulation", 1)],
    "training.scheduler.type": [("train.scheduler", "plateau")],
    "training.scheduler.monitor_metric": [("train.monitor", "val_pearson")],
    "training.scheduler.mode": DROP,
    "training.scheduler.patience": [("train.plateau_patience", 5)],
    "training.scheduler.factor": [("train.lr_factor", 0.5)],
    "training.scheduler.min_lr": [("train.min_lr", 1e-7)],
    "training.scheduler.threshold": [("train.plateau_threshold", 0.001)],
    "training.early_stopping.enabled": [("train.early_stopping_patience", 10)],
    "training.early_stopping.patience": [("train.early_stopping_patience", 10)],
    "training.early_stopping.monitor_metric": DROP,
    "training.early_stopping.mode": DROP,
    "training.early_stopping.min_delta": [("train.early_stopping_min_delta", 0.001)],
    "prediction.batch_size": [("predict.residues_per_batch", 256)],
    "evaluation.calculate_stratified_metrics": DROP,
    "evaluation.calculate_permutation_importance": [("evaluate.importance", True)],
    "evaluation.sasa_bins": [("evaluate.accessibility_bins", [0.0, 0.1, 0.4, 1.01])],
    "evaluation.permutation_n_repeats": [("evaluate.shuffles", 5)],
    "logging.level": [("log_level", "INFO")],
    "logging.console_level": DROP,
    "logging.file_level": DROP,
    "logging.show_progress_bars": [("train.progress", True), ("predict.progress", True)],
    "logging.log_timing": DROP,
    "logging.log_memory_usage": DROP,
    "visualization.plot_loss": [("train.plot", True)],
    **{
        f"visualization.{key}": DROP
        for key in (
            "plot_correlation",
            "plot_predictions",
            "plot_density_scatter",
            "plot_error_distribution",
            "plot_residue_type_analysis",
            "plot_sasa_error_analysis",
            "plot_ss_error_analysis",
            "plot_amino_acid_performance",
            "save_format",
            "dpi",
            "max_scatter_points",
            "save_plot_data",
        )
    },
    "system_utilization.detect_cores": DROP,
    "system_utilization.adjust_for_gpu": DROP,
}


def test_each_earlier_key_becomes_the_key_and_value_of_an_independent_table(tmp_path):
    raw = _earlier()
    assert set(_flatten(raw)) == set(EARLIER_TO_NEW)  # all 80 keys of the earlier defaults
    migration = migrate_config(raw, rmsf_unit="nm", now=datetime.datetime(2024, 5, 1, 12))
    dropped = {old for old, _, _ in migration.dropped}
    for old, expected in EARLIER_TO_NEW.items():
        got = [(new, value) for key, new, value in migration.mapped if key == old]
        if expected is DROP:
            assert old in dropped and not got, old
        else:
            assert got == expected, old
    assert migration.defaults == []  # the file sets every key: no earlier default to keep
    # and the loaded result holds the same values (through voxelflex's own loader)
    new = tmp_path / "new.yaml"
    old = tmp_path / "old.yaml"
    old.write_text(EARLIER.read_text())
    migrate_file(old, new, rmsf_unit="nm")
    config = load_config(new)
    for expected in EARLIER_TO_NEW.values():
        for key, value in expected or ():
            if key.startswith(("data.", "output_dir", "run_name", "model.hyperparameters")):
                continue  # paths resolve against the file; run_name holds the time of migration
            got = config.get(key)
            assert (list(got) if isinstance(got, tuple) else got) == value, key


def test_keys_the_file_leaves_out_keep_the_earlier_defaults_and_the_report_names_them(tmp_path):
    # The earlier loader merged the user's file over its default_config.yaml: a file that set
    # only its inputs and epochs trained with lr 5e-4, batch 128, reduce_on_plateau (patience 5,
    # threshold 1e-3, min_lr 1e-7), seed 42, min_delta 1e-3; voxelflex's defaults differ.
    old = tmp_path / "old.yaml"
    old.write_text(
        "input:\n  voxel_file: v.hdf5\n  aggregated_rmsf_file: r.csv\n"
        "training:\n  num_epochs: 7\n  weight_decay: 1e-3\n"  # PyYAML reads 1e-3 as a string
    )
    new = tmp_path / "new.yaml"
    migration, text = migrate_file(old, new, rmsf_unit="nm")
    config = load_config(new)
    train, loader = config.train, config.loader
    assert (train.epochs, train.weight_decay) == (7, 1e-3)  # the file's own values win
    assert (train.lr, loader.batch_size, loader.seed) == (5e-4, 128, 42)
    assert (train.scheduler, train.plateau_patience, train.lr_factor) == ("plateau", 5, 0.5)
    assert (train.min_lr, train.plateau_threshold) == (1e-7, 1e-3)
    assert (train.early_stopping_patience, train.early_stopping_min_delta) == (10, 1e-3)
    assert (train.checkpoint_every_epochs, config.evaluate.shuffles) == (5, 5)
    assert config.run_name.startswith("voxelflex_run_") and config.model.preset == "base"
    kept = {old: (new, value) for old, new, value, _ in migration.defaults}
    assert kept["training.learning_rate"] == ("train.lr", 5e-4)
    assert kept["training.scheduler.type"] == ("train.scheduler", "plateau")
    assert "training.num_epochs" not in kept and "training.weight_decay" not in kept
    # the same as voxelflex's default: nothing to keep (num_workers 2, dropout 0.3, ...)
    assert "training.num_workers" not in kept and "model.dropout_rate" not in kept
    assert "#   training.learning_rate -> train.lr: 0.0005 (voxelflex's default: 0.001)" in text
    assert "# earlier defaults kept (11)" in text
    # a schedule the file names reads only its own earlier defaults
    migration = migrate_config({"training": {"scheduler": {"type": "step"}}})
    train = migration.config["train"]
    assert (train["scheduler"], train["step_epochs"], train["lr_factor"]) == ("step", 10, 0.1)
    assert "plateau_patience" not in train and "plateau_threshold" not in train


def test_a_loss_monitored_with_the_earlier_default_mode_max_is_reported():
    # The earlier trainer used training.scheduler.mode as merged over its default (max): with
    # val_loss and no mode its schedule, best_model.pt and early stopping chased the highest loss.
    migration = migrate_config({"training": {"scheduler": {"monitor_metric": "val_loss"}}})
    assert migration.config["train"]["monitor"] == "val_loss"
    assert any("val_loss with mode max (its default)" in note for note in migration.notes)
    raw = {"training": {"scheduler": {"monitor_metric": "val_loss", "mode": "min"}}}
    assert not any("with mode" in note for note in migrate_config(raw).notes)
    assert not any("with mode" in note for note in migrate_config(_earlier()).notes)


@pytest.mark.parametrize(
    ("name", "earlier"),
    [
        ("densenet3d", {"growth": 16, "blocks": (4, 4, 4), "init_features": 32, "bottleneck": 4}),
        ("dilated_resnet3d", {"base_filters": 32, "n_blocks": 3, "growth": 1.5}),
        ("multipath", {"stem_channels": 32}),
    ],
)
def test_the_base_preset_has_the_earlier_default_sizes(name, earlier):
    # migrate leaves the earlier size keys a file omits to model.preset base: it must hold the
    # earlier defaults (growth_rate 16, block_config [4, 4, 4], ..., base_filters 32)
    args = trunk_arguments(ModelSpec(name, "base", "film"))
    assert {key: args[key] for key in earlier} == earlier


def test_early_stopping_with_patience_0_is_named_in_the_notes():
    # the earlier run stopped after its first epoch; voxelflex's 0 is "off": said, not silent
    raw = _earlier()
    raw["training"]["early_stopping"].update(enabled=True, patience=0)
    migration = migrate_config(raw)
    assert migration.config["train"]["early_stopping_patience"] == 0
    assert any("patience 0 stopped the earlier run" in n for n in migration.notes)
    assert not any("patience 0 stopped" in n for n in migrate_config(_earlier()).notes)
