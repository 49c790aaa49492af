"""Training options users of the earlier VoxelFlex expect: gradient accumulation, a step LR
schedule, plateau factor and min_lr, early stopping min_delta, fine-tuning with --init-from, and
architecture hyperparameters beyond the presets (issue 14)."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from voxelflex.cli.main import app
from voxelflex.config import load_config
from voxelflex.demo.generate import build_demo_index, generate_demo
from voxelflex.engine import train
from voxelflex.engine.checkpoint import Checkpoint
from voxelflex.engine.schedule import LRSchedule
from voxelflex.engine.tracker import BestTracker
from voxelflex.errors import CheckpointError, ConfigError
from voxelflex.index import build_index, read_index
from voxelflex.models import STATISTICS_BUFFERS, ModelSpec, build_model, parameter_counts
from voxelflex.models.model import STATISTICS_BUFFERS as MODEL_STATISTICS

BASE = [
    "model.preset=tiny",
    "loader.batch_size=64",
    "loader.num_workers=0",
    "train.epochs=1",
    "train.progress=false",
    "train.checkpoint_every_batches=0",
]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("options")
    paths = generate_demo(root / "demo", n_domains=6, seed=5)
    index = root / "index.parquet"
    build_demo_index(paths, index)
    return paths, index


def _config(index, out, name, *extra):
    return load_config(
        overrides=[f"data.index={index}", f"output_dir={out}", f"run_name={name}", *BASE, *extra]
    )


def _opt(lr=1.0):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def test_step_schedule_multiplies_by_lr_factor_every_step_epochs_down_to_min_lr():
    o = _opt()
    step = LRSchedule(
        o, "step", total_steps=10, warmup_steps=0, mode="max", patience=0,
        factor=0.1, step_epochs=2, min_lr=0.005,
    )  # fmt: skip
    lrs = []
    for _ in range(6):
        lrs.append(o.param_groups[0]["lr"])
        o.step()
        step.after_step()  # ignored by step: it counts epochs
        step.after_epoch(0.0)
    assert lrs == pytest.approx([1.0, 1.0, 0.1, 0.1, 0.01, 0.01])
    assert o.param_groups[0]["lr"] == pytest.approx(0.005)  # 0.001 floored at min_lr


def test_plateau_factor_threshold_and_min_lr():
    o = _opt()
    plateau = LRSchedule(
        o, "plateau", total_steps=10, warmup_steps=0, mode="max", patience=0,
        factor=0.2, threshold=0.1, min_lr=0.03,
    )  # fmt: skip
    plateau.after_epoch(0.5)
    plateau.after_epoch(0.52)  # +4 %: below the 10 % threshold, counts as no improvement
    assert o.param_groups[0]["lr"] == pytest.approx(0.2)
    plateau.after_epoch(0.52)
    plateau.after_epoch(0.52)
    assert o.param_groups[0]["lr"] == pytest.approx(0.03)  # 0.04, then 0.008 -> min_lr


def test_cosine_respects_min_lr():
    o = _opt()
    cosine = LRSchedule(o, "cosine", total_steps=10, warmup_steps=0, mode="max", patience=0,
                        min_lr=0.3)  # fmt: skip
    for _ in range(10):
        o.step()
        cosine.after_step()
    assert o.param_groups[0]["lr"] == pytest.approx(0.3)


def test_early_stopping_min_delta_ignores_small_improvements_but_best_still_moves():
    tracker = BestTracker("val_pearson", patience=2, min_delta=0.01)
    assert tracker.update({"pearson": 0.50})
    assert tracker.update({"pearson": 0.505})  # a new best (best.pt) ...
    assert tracker.bad_epochs == 1  # ... but too small to reset early stopping
    assert not tracker.should_stop
    assert not tracker.update({"pearson": 0.504})
    assert tracker.should_stop and tracker.best == 0.505
    # min_delta 0 behaves as before: every improvement resets the count
    plain = BestTracker("val_loss", patience=1)
    assert plain.update({"loss": 1.0}) and plain.update({"loss": 0.999})
    assert plain.bad_epochs == 0
    # a checkpoint from before min_delta (no anchor) resumes with the best value as anchor
    plain.load_state_dict({"best": 0.5, "bad_epochs": 0})
    assert plain.anchor == 0.5


def test_gradient_accumulation_steps_every_n_batches(small, tmp_path):
    _, index = small
    plain = train(_config(index, tmp_path, "k1", "loader.batch_size=32"))
    n_batches = plain.global_step
    result = train(
        _config(index, tmp_path, "k3", "loader.batch_size=32", "train.grad_accumulation=3")
    )
    assert result.global_step == math.ceil(n_batches / 3)
    assert result.history[0]["global_step"] == result.global_step
    assert math.isfinite(result.history[0]["train"]["loss"])
    ck = Checkpoint.load(result.latest_checkpoint)
    assert ck.plan["grad_accumulation"] == 3


def test_gradient_accumulation_mid_epoch_checkpoints_land_on_step_boundaries(small, tmp_path):
    _, index = small
    saved = []
    save = Checkpoint.save

    def record(self, path):
        saved.append(self.meta.batch)
        save(self, path)

    Checkpoint.save = record
    try:
        train(
            _config(
                index,
                tmp_path,
                "mid",
                "loader.batch_size=16",
                "train.grad_accumulation=2",
                "train.checkpoint_every_batches=2",  # every 2 optimizer steps = 4 batches
            )
        )
    finally:
        Checkpoint.save = save
    mid = [b for b in saved if b]
    assert mid and all(b % 4 == 0 for b in mid)


def test_hyperparameters_beyond_the_preset(small, tmp_path):
    _, index = small
    result = train(
        _config(
            index,
            tmp_path,
            "dense",
            "model.name=densenet3d",
            "model.hyperparameters.growth=4",
            "model.hyperparameters.blocks=[1, 1]",
        )
    )
    ck = Checkpoint.load(result.best_checkpoint)
    assert ck.model_spec.hyperparameters == {"growth": 4, "blocks": [1, 1]}
    preset = build_model(ModelSpec("densenet3d", "tiny", "film"), temperature_range=(1, 2))
    assert parameter_counts(ck.build_model())["trunk"] < parameter_counts(preset)["trunk"]
    # the log's model line names the overrides its parameter count comes from
    logged = (tmp_path / "dense" / "logs" / "voxelflex.log").read_text()
    assert "model densenet3d/tiny (blocks=[1, 1], growth=4), conditioning film" in logged
    # an unknown name fails before any data work, listing the architecture's own names
    with pytest.raises(ConfigError, match=r"no hyperparameter 'growth_rate'.*growth, blocks"):
        train(_config(index, tmp_path, "bad", "model.name=densenet3d",
                      "model.hyperparameters.growth_rate=16"))  # fmt: skip
    assert not (tmp_path / "bad" / "models").exists()


def test_hyperparameters_merge_across_config_file_and_set(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model:\n  name: dilated_resnet3d\n  hyperparameters:\n    growth: 2.0\n")
    config = load_config(path, ["model.hyperparameters.dilations=[1, 3]"])
    assert config.model.hyperparameters == {"growth": 2.0, "dilations": [1, 3]}
    with pytest.raises(ConfigError, match=r"model\.hyperparameters"):
        load_config(overrides=["model.hyperparameters={growth: [[1]]}"])


@pytest.fixture(scope="module")
def source_run(small, tmp_path_factory):
    _, index = small
    out = tmp_path_factory.mktemp("source")
    return train(_config(index, out, "source", "model.name=dilated_resnet3d"))


def _rmsf_subset(paths, out, keep):
    """The demo RMSF CSV with only the rows whose temperature ``keep`` accepts."""
    lines = paths.rmsf_csv.read_text().splitlines()
    rows = [lines[0]] + [ln for ln in lines[1:] if keep(float(ln.split(",")[3]))]
    out.write_text("\n".join(rows) + "\n")
    return out


def test_init_from_takes_weights_model_and_statistics(small, source_run, tmp_path, caplog):
    paths, _ = small
    # new data: only the three coldest temperatures, so the temperature range differs
    csv = _rmsf_subset(paths, tmp_path / "cold.csv", lambda t: t <= 379)
    cold = tmp_path / "cold.parquet"
    build_index(paths.voxel_file, cold, rmsf_csv=csv, rmsf_unit="nm",
                train=paths.train_split, val=paths.val_split, progress=False)  # fmt: skip
    source = Checkpoint.load(source_run.best_checkpoint)
    caplog.set_level("INFO", logger="voxelflex")
    config = _config(
        cold, tmp_path, "tuned",
        f"train.init_from={source_run.best_checkpoint}",
        "train.lr=1e-12", "train.scheduler=none", "model.dropout=0.0",
    )  # fmt: skip
    result = train(config)
    tuned = Checkpoint.load(result.latest_checkpoint)
    # the model (architecture, preset) comes from the checkpoint; the config's is not used
    assert tuned.model_spec.name == "dilated_resnet3d" and tuned.meta.init_from
    assert "the config's model section" in caplog.text
    for name, tensor in source.model.items():
        assert torch.allclose(tensor, tuned.model[name], atol=1e-6), name  # lr ~ 0: unchanged
    # ... and so do its statistics: temperature scaling and target standardisation
    for name in STATISTICS_BUFFERS:
        assert torch.equal(source.model[name], tuned.model[name]), name
    assert tuned.model["temperature_range"].tolist() == [320.0, 450.0]
    # extrapolation: outside the checkpoint's range and this run's together
    assert tuned.meta.temperature_range == (320.0, 450.0)
    assert "weights and statistics kept: temperature scaling 320-450 K" in caplog.text
    assert "no features; this run's data: 320-379 K" in caplog.text
    history = json.loads((tmp_path / "tuned" / "training_history.json").read_text())
    assert len(history) == 1  # a new run: the source's epochs are not continued


def test_a_fine_tuning_run_records_the_model_it_trained(featured, tmp_path):
    # config.yaml (and the checkpoints' config) hold the checkpoint's model, features expanded,
    # not the config's model section that the run did not use
    from voxelflex.engine.finetune import config_model_spec

    _, hot, source_run = featured
    init = f"train.init_from={source_run.best_checkpoint}"
    config = _config(hot, tmp_path, "tuned", init, "train.log_target=true", "model.dropout=0.1")
    result = train(config)
    spec = Checkpoint.load(source_run.best_checkpoint).model_spec
    saved = load_config(tmp_path / "tuned" / "config.yaml")
    assert config_model_spec(saved) == spec
    assert saved.train.init_from == source_run.best_checkpoint
    assert saved.model.name == "dilated_resnet3d" and not saved.train.log_target
    assert saved.model.dropout == spec.dropout != 0.1
    assert Checkpoint.load(result.latest_checkpoint).config["model"] == saved.to_dict()["model"]


@pytest.fixture(scope="module")
def featured(small, tmp_path_factory):
    """The demo data with a feature sidecar: an index of 320-413 K for a source model that
    takes features, and a fine-tuning index of 450 K only whose train split is two domains
    (so its temperature range, targets and feature statistics all differ)."""
    from tests.test_index_features import _sidecar

    paths, index = small
    root = tmp_path_factory.mktemp("featured")
    sidecar = _sidecar(index, root / "features.parquet")
    splits = {"val": paths.val_split, "test": paths.test_split}
    warm = root / "warm.parquet"
    build_index(paths.voxel_file, warm, features=sidecar, rmsf_unit="nm", progress=False,
                rmsf_csv=_rmsf_subset(paths, root / "warm.csv", lambda t: t <= 413),
                train=paths.train_split, **splits)  # fmt: skip
    two = root / "two_domains.txt"
    ids = [ln for ln in paths.train_split.read_text().splitlines() if not ln.startswith("#")]
    two.write_text("\n".join(ids[:2]) + "\n")
    hot = root / "hot.parquet"
    build_index(paths.voxel_file, hot, features=sidecar, rmsf_unit="nm", progress=False,
                rmsf_csv=_rmsf_subset(paths, root / "hot.csv", lambda t: t == 450),
                train=two, **splits)  # fmt: skip
    source = train(
        _config(warm, root, "source", "model.name=dilated_resnet3d", "model.features=[gnm,contact]")
    )
    return warm, hot, source


def test_init_from_predicts_what_the_checkpoint_predicts_before_any_step(featured, tmp_path):
    # Fine-tuning must start from the checkpoint's function. With a learning rate of ~0 the
    # tuned model has to predict exactly what its source predicts, at every temperature,
    # although the new data has another temperature range (one temperature), other targets
    # and other feature statistics.
    from voxelflex.analysis.predict import predict
    from voxelflex.analysis.predictions import read_predictions

    warm, hot, source_run = featured
    config = _config(
        hot, tmp_path, "tuned",
        f"train.init_from={source_run.best_checkpoint}",
        "train.lr=1e-30", "train.scheduler=none",
    )  # fmt: skip
    tuned_path = train(config).latest_checkpoint
    # (the run's log: caplog misses the records of a logger that train() stops propagating)
    logged = (tmp_path / "tuned" / "logs" / "voxelflex.log").read_text()
    source, tuned = Checkpoint.load(source_run.best_checkpoint), Checkpoint.load(tuned_path)
    assert tuned.model_spec.features == source.model_spec.features and source.model_spec.features
    predict_config = load_config(
        overrides=["loader.num_workers=0", "predict.progress=false", "train.device=cpu"]
    )
    temperatures = [300.0, 320.0, 379.0, 450.0, 500.0]
    tables = {}
    for name, checkpoint in (("source", source_run.best_checkpoint), ("tuned", tuned_path)):
        out = tmp_path / f"{name}.parquet"
        predict(checkpoint, warm, split="test", temperatures=temperatures, out_path=out,
                config=predict_config)  # fmt: skip
        tables[name] = read_predictions(out)
    (a, a_meta), (b, b_meta) = tables["source"], tables["tuned"]
    assert a["temperature"].to_pylist() == b["temperature"].to_pylist()
    assert a["domain"].to_pylist() == b["domain"].to_pylist()
    diff = np.abs(a["predicted_rmsf"].to_numpy() - b["predicted_rmsf"].to_numpy())
    assert diff.max() <= 1e-6
    for name in STATISTICS_BUFFERS:  # the checkpoint's scalings, not refitted to the new data
        assert torch.equal(source.model[name], tuned.model[name]), name
    # extrapolation: the union of the checkpoint's range (320-413 K) and this run's (450 K)
    assert a_meta.training_temperature_range == [320.0, 413.0]
    assert b_meta.training_temperature_range == [320.0, 450.0]
    t = b["temperature"].to_numpy()
    assert b["extrapolated"].to_numpy().tolist() == ((t < 320) | (t > 450)).tolist()
    # one line says what was kept; the one-temperature warning names the kept trend
    assert "weights and statistics kept: temperature scaling 320-413 K" in logged
    assert "feature standardisation (6 features)" in logged
    assert "predictions outside 320-450 K count as extrapolation" in logged
    assert "keeps the checkpoint's temperature scaling and trend" in logged
    assert "are meaningless" not in logged
    # resumed, the run keeps both: its scalings (from latest.pt) and the union range
    resumed = train(dataclasses.replace(
        config, train=dataclasses.replace(config.train, epochs=2, resume=True)
    ))  # fmt: skip
    again = Checkpoint.load(resumed.latest_checkpoint)
    assert again.meta.global_step > tuned.meta.global_step
    assert again.meta.temperature_range == (320.0, 450.0)
    for name in STATISTICS_BUFFERS:
        assert torch.equal(source.model[name], again.model[name]), name


def test_init_from_refuses_another_rmsf_unit_or_a_missing_file(small, source_run, tmp_path):
    paths, _ = small
    angstrom = tmp_path / "a.parquet"
    build_index(paths.voxel_file, angstrom, rmsf_csv=paths.rmsf_csv, rmsf_unit="angstrom",
                train=paths.train_split, val=paths.val_split, progress=False)  # fmt: skip
    init = f"train.init_from={source_run.best_checkpoint}"
    with pytest.raises(CheckpointError, match=r"RMSF in angstrom, but checkpoint .* in nm"):
        train(_config(angstrom, tmp_path, "a", init))
    missing = f"train.init_from={source_run.run_dir / 'models' / 'nope.pt'}"
    with pytest.raises(CheckpointError, match=r"does not exist; .*models holds: best.pt"):
        train(_config(angstrom, tmp_path, "b", missing))


def test_init_from_run_resumes_with_its_own_model(small, source_run, tmp_path):
    _, index = small
    init = f"train.init_from={source_run.best_checkpoint}"
    train(_config(index, tmp_path, "ft", init))
    # resuming needs no model flags: the run's own latest.pt says which model it is
    result = train(_config(index, tmp_path, "ft", init, "train.epochs=2", "train.resume=true"))
    assert len(result.history) == 2


def test_overwrite_never_deletes_the_checkpoint_it_starts_from(small, source_run, tmp_path):
    """``--init-from RUN/models/best.pt --run-name RUN --overwrite`` deleted best.pt (the
    earlier run's checkpoints go first), then failed to load it: the model was lost."""
    _, index = small
    shutil.copytree(source_run.run_dir, tmp_path / "src")
    best = tmp_path / "src" / "models" / "best.pt"
    before = best.read_bytes()
    config = _config(index, tmp_path, "src", f"train.init_from={best}", "train.overwrite=true")
    with pytest.raises(ConfigError, match=r"train.init_from .*best.pt .*--overwrite deletes"):
        train(config)
    assert best.read_bytes() == before
    assert (tmp_path / "src" / "training_history.json").is_file()


def test_statistics_buffers_are_one_list():
    assert STATISTICS_BUFFERS is MODEL_STATISTICS
    model = build_model(ModelSpec("multipath", "tiny", "film"), temperature_range=(1, 2))
    buffers = {name for name, _ in model.named_buffers()}
    assert set(STATISTICS_BUFFERS) <= buffers


def test_cli_init_from_flag(small, source_run, tmp_path):
    _, index = small
    args = ["train", "--index", str(index), "--output-dir", str(tmp_path), "--run-name", "cli",
            "--init-from", str(source_run.best_checkpoint), "--no-plot"]  # fmt: skip
    for item in BASE:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    ck = Checkpoint.load(tmp_path / "cli" / "models" / "latest.pt")
    assert ck.meta.init_from == str(source_run.best_checkpoint)
    assert read_index(index).meta.rmsf_unit == ck.meta.rmsf_unit


def test_cli_train_draws_its_plots_at_the_end_unless_told_not_to(small, tmp_path):
    _, index = small
    args = ["train", "--index", str(index), "--output-dir", str(tmp_path)]
    sets = [a for item in BASE for a in ("--set", item)]
    result = CliRunner().invoke(app, [*args, *sets, "--run-name", "drawn"])
    assert result.exit_code == 0, result.output
    run = tmp_path / "drawn"
    assert (run / "visualizations" / "training_curves.png").is_file()
    assert f"plots in {run / 'visualizations'}" in result.output
    # `voxelflex plot` of the run redraws those curves from the same history, no --overwrite
    result = CliRunner().invoke(app, ["plot", "--run-dir", str(run)])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, [*args, *sets, "--run-name", "quiet", "--no-plot"])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "quiet" / "visualizations").exists()


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
@pytest.mark.parametrize("accumulation", [1, 2])
def test_padding_batches_take_no_optimizer_step(small, tmp_path, monkeypatch, accumulation):
    # With 3 worker streams the plan pads the shorter ones with weight-0 batches; those carry
    # no data and must not move the weights (AdamW momentum and weight decay) or the schedule.
    import voxelflex.engine.trainer as trainer

    has_data: list[bool] = []
    step = trainer._Trainer._step

    def spy(self, batch, host, acc, n_batches):
        has_data.append(bool((host.weight > 0).any()))
        step(self, batch, host, acc, n_batches)

    monkeypatch.setattr(trainer._Trainer, "_step", spy)
    _, index = small
    config = _config(
        index, tmp_path, "pad", "loader.num_workers=3", f"train.grad_accumulation={accumulation}"
    )
    result = train(config)
    assert not all(has_data)  # the plan did pad
    groups = [has_data[i : i + accumulation] for i in range(0, len(has_data), accumulation)]
    assert result.global_step == sum(any(g) for g in groups)


def test_the_loss_label_follows_the_model_not_the_config():
    from voxelflex.engine.trainer import loss_description

    config = load_config(overrides=["train.log_target=false"])
    fine_tuned = ModelSpec("multipath", "tiny", "film", log_target=True)  # --init-from's spec
    assert loss_description(config, fine_tuned) == "MSE of standardised log RMSF (dimensionless)"
    crystal = ModelSpec("multipath", "tiny", "film", target_norm="domain")
    assert "per-domain z-scored RMSF" in loss_description(config, crystal)
