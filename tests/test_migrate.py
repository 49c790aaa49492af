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
    assert migration.config["train"] == expected
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
