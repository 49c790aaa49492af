"""End-to-end training on a small demo dataset: outputs, reproducibility, sources, resume, DDP.

One module-scoped dataset (8 domains) and one reference run keep the whole file to well under a
minute on 2 cores; the SIGKILL and torchrun tests use subprocesses as a user would.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap

import pytest
import torch
from typer.testing import CliRunner

from tests._ranks import compare
from voxelflex.cli.main import app
from voxelflex.config import load_config
from voxelflex.demo.generate import build_demo_index, generate_demo
from voxelflex.engine import load_for_inference, train
from voxelflex.engine.checkpoint import Checkpoint
from voxelflex.engine.data import settings_digest
from voxelflex.engine.epoch_metrics import reduce_metrics
from voxelflex.errors import CheckpointError, ConfigError, SourceError, TrainingError
from voxelflex.index import build_index, read_index

EPOCHS = 2
BASE = [
    "model.preset=tiny",
    "model.name=multipath",
    "loader.batch_size=64",
    "loader.num_workers=0",
    f"train.epochs={EPOCHS}",
    "train.progress=false",
    "train.checkpoint_every_batches=4",
    "train.checkpoint_every_epochs=1",
]


@pytest.fixture(scope="module")
def small_index(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_demo")
    paths = generate_demo(root / "demo", n_domains=8, seed=3)
    out = root / "index.parquet"
    build_demo_index(paths, out)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _overrides(index, out_dir, run_name, *extra):
    return [f"data.index={index}", f"output_dir={out_dir}", f"run_name={run_name}", *BASE, *extra]


def _rows(index, split):
    return read_index(index).table.column("split").to_pylist().count(split)


def _strip_timing(history):
    return [{k: v for k, v in entry.items() if k != "timing"} for entry in history]


@pytest.fixture(scope="module")
def reference(small_index, tmp_path_factory):
    """An uninterrupted run through the CLI."""
    out = tmp_path_factory.mktemp("runs")
    args = ["train", "--index", str(small_index), "--output-dir", str(out), "--run-name", "ref"]
    for item in BASE:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "best model" in result.output
    return out / "ref"


def test_outputs_and_history(reference, small_index):
    models = reference / "models"
    for name in ("best.pt", "latest.pt", "epoch_001.pt", "epoch_002.pt"):
        assert (models / name).is_file(), name
    assert "epoch 2/2" in (reference / "logs" / "voxelflex.log").read_text()
    assert load_config(reference / "config.yaml").model.preset == "tiny"
    history = json.loads((reference / "training_history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    n_train, n_val = _rows(small_index, "train"), _rows(small_index, "val")
    for h in history:
        assert h["train"]["n"] == n_train and h["val"]["n"] == n_val  # every row, once
        for key in ("loss", "pearson", "spearman", "rmse", "mae"):
            assert key in h["train"] and key in h["val"]
        assert set(h["val"]["pearson_per_temperature"]) == {
            f"{t:.1f}" for t in (320, 348, 379, 413, 450)
        }
        assert 0 <= h["timing"]["data_wait_fraction"] <= 1
    assert history[1]["train"]["loss"] < history[0]["train"]["loss"]
    assert history[-1]["val"]["pearson"] > 0.5  # learning, even after two tiny epochs
    _model, ck = load_for_inference(models / "best.pt", "cpu")
    assert ck.meta.temperature_range == (320.0, 450.0) and ck.meta.rmsf_unit == "nm"
    spec = ck.model_spec
    assert (spec.name, spec.preset, spec.conditioning) == ("multipath", "tiny", "film")
    latest = Checkpoint.load(models / "latest.pt")
    assert (latest.meta.epoch, latest.meta.batch) == (EPOCHS, 0)
    assert latest.meta.global_step == history[-1]["global_step"]


def test_same_seed_same_history(reference, small_index, tmp_path):
    result = train(load_config(overrides=_overrides(small_index, tmp_path, "again")))
    expected = json.loads((reference / "training_history.json").read_text())
    assert _strip_timing(result.history) == _strip_timing(expected)


def test_hdf5_and_shards_give_the_same_first_epoch_loss(reference, small_index, tmp_path):
    from voxelflex.sources import build_shards

    build_shards(read_index(small_index), tmp_path / "shards", domains_per_shard=3, progress=False)
    config = load_config(
        overrides=_overrides(
            small_index,
            tmp_path,
            "shards",
            "train.epochs=1",
            "loader.source=shards",
            f"data.shards_dir={tmp_path / 'shards'}",
        )
    )
    first = train(config).history[0]
    expected = json.loads((reference / "training_history.json").read_text())[0]
    assert first["train"]["loss"] == pytest.approx(expected["train"]["loss"], rel=1e-6)


_KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from voxelflex.config import load_config
    from voxelflex.engine import train
    from voxelflex.engine.checkpoint import Checkpoint

    save = Checkpoint.save
    def save_then_die(self, path):
        save(self, path)
        if (self.meta.epoch, self.meta.batch) == (1, 4):
            os.kill(os.getpid(), signal.SIGKILL)  # mid-epoch 2, right after latest.pt
    Checkpoint.save = save_then_die
    train(load_config(overrides=sys.argv[1:]))
    """
)


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(reference, small_index, tmp_path):
    overrides = _overrides(small_index, tmp_path, "killed")
    proc = subprocess.run(
        [sys.executable, "-c", _KILLER, *overrides], capture_output=True, timeout=300, text=True
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    killed = Checkpoint.load(tmp_path / "killed" / "models" / "latest.pt")
    assert (killed.meta.epoch, killed.meta.batch) == (1, 4)
    # what a kill during the next write of latest.pt leaves: --resume removes it
    leftover = tmp_path / "killed" / "models" / ".latest.pt.ab12cd34.pt.tmp"
    leftover.write_bytes(b"half a checkpoint")
    result = train(load_config(overrides=[*overrides, "train.resume=true"]))
    assert not leftover.exists()
    ref_latest = Checkpoint.load(reference / "models" / "latest.pt")
    assert result.global_step == ref_latest.meta.global_step
    resumed = Checkpoint.load(tmp_path / "killed" / "models" / "latest.pt")
    for name, tensor in ref_latest.model.items():
        assert torch.equal(tensor, resumed.model[name]), name
    expected = json.loads((reference / "training_history.json").read_text())
    assert _strip_timing(result.history) == _strip_timing(expected)


_TERMINATOR = textwrap.dedent(
    """
    import os, subprocess, sys
    from voxelflex.cli.main import main
    from voxelflex.engine.checkpoint import Checkpoint

    save = Checkpoint.save
    def save_then_sigterm(self, path):
        save(self, path)
        if (self.meta.epoch, self.meta.batch) == (0, 4):
            # SLURM preemption, right after latest.pt: to every process of the job step, from
            # another process (torch's workers end quietly on one from the main process)
            subprocess.run(["kill", "-s", "TERM", "--", f"-{os.getpgid(0)}"])
            Checkpoint.save = save
    Checkpoint.save = save_then_sigterm
    sys.argv = ["voxelflex", *sys.argv[1:]]
    main()
    """
)


@pytest.mark.parametrize("workers", [0, 2])
def test_sigterm_saves_latest_exits_130_then_resume_matches_uninterrupted(
    reference, small_index, tmp_path, workers
):
    """SIGTERM (SLURM preemption, Kubernetes pod deletion) used to end the run at once, losing
    every step since the last periodic save; it now stops at the step boundary as Ctrl-C does.
    Sent to the whole process group, as SLURM does, it ended the DataLoader workers, and the
    run failed on its next batch without a save."""
    args = ["train", "--index", str(small_index), "--output-dir", str(tmp_path)]
    args += ["--run-name", "term", "--set", "train.checkpoint_every_batches=4"]
    for item in [*BASE, f"loader.num_workers={workers}"]:
        args += ["--set", item]
    proc = subprocess.run(
        [sys.executable, "-c", _TERMINATOR, *args],
        capture_output=True,
        timeout=300,
        text=True,
        start_new_session=True,  # its own process group, which the script signals
    )
    assert proc.returncode == 130, proc.stderr[-2000:]
    assert "interrupted: saved" in (tmp_path / "term" / "logs" / "voxelflex.log").read_text()
    saved = Checkpoint.load(tmp_path / "term" / "models" / "latest.pt")
    assert (saved.meta.epoch, saved.meta.batch) == (0, 4)
    if workers:  # the plan depends on the worker count: the reference has none
        return
    overrides = _overrides(small_index, tmp_path, "term", "train.resume=true")
    result = train(load_config(overrides=overrides))
    expected = json.loads((reference / "training_history.json").read_text())
    assert _strip_timing(result.history) == _strip_timing(expected)


def test_resume_refuses_other_model_or_index(reference, small_index, demo_index, tmp_path):
    runner = CliRunner()
    common = ["train", "--output-dir", str(reference.parent), "--run-name", "ref", "--resume"]
    sets = [a for item in BASE for a in ("--set", item)]
    result = runner.invoke(app, [*common, *sets, "--index", str(small_index), "--preset", "small"])
    assert result.exit_code == 2
    assert "holds model" in result.output and "'preset': 'tiny'" in result.output
    result = runner.invoke(app, [*common, *sets, "--index", str(demo_index)])
    assert result.exit_code == 2 and "index fingerprint" in result.output
    # another metric: the saved best value and patience count belong to the first one
    other = ["--set", "train.monitor=val_rmse"]
    result = runner.invoke(app, [*common, *sets, *other, "--index", str(small_index)])
    assert result.exit_code == 2
    assert "monitored val_pearson, this run's train.monitor is val_rmse" in result.output
    # the same inputs declared in another unit: the message names both units, not a fingerprint
    demo = small_index.parent / "demo"
    angstrom = tmp_path / "angstrom.parquet"
    build_index(
        demo / "voxels.hdf5",
        angstrom,
        rmsf_csv=demo / "rmsf.csv",
        rmsf_unit="angstrom",
        train=demo / "train_domains.txt",
        val=demo / "val_domains.txt",
        progress=False,
    )
    result = runner.invoke(app, [*common, *sets, "--index", str(angstrom)])
    assert result.exit_code == 2
    assert "RMSF in angstrom" in result.output and "predicts RMSF in nm" in result.output
    with pytest.raises(CheckpointError, match="does not exist"):
        fresh = _overrides(small_index, tmp_path, "new")
        train(load_config(overrides=[*fresh, "train.resume=true"]))


def test_resume_keeps_the_runs_own_index_when_an_input_changed(small_index, tmp_path):
    """Reproduction: `touch rmsf.csv` (or a checkout, a copy without -p) before --resume of a run
    that built its index from data.* rebuilt <run>/index/index.parquet, then refused to resume
    (another index fingerprint): the index the run was trained on was gone for good."""
    demo = tmp_path / "inputs"
    shutil.copytree(small_index.parent / "demo", demo)
    inputs = [
        f"data.voxel_file={demo / 'voxels.hdf5'}",
        f"data.rmsf_csv={demo / 'rmsf.csv'}",
        "data.rmsf_unit=nm",
        f"data.train_split={demo / 'train_domains.txt'}",
        f"data.val_split={demo / 'val_domains.txt'}",
    ]
    overrides = [f"output_dir={tmp_path}", "run_name=built", *BASE, "train.epochs=1", *inputs]
    train(load_config(overrides=overrides))
    index = tmp_path / "built" / "index" / "index.parquet"
    before = index.read_bytes()
    st = os.stat(demo / "rmsf.csv")
    os.utime(demo / "rmsf.csv", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    resume = [*overrides, "train.epochs=2", "train.resume=true"]
    with pytest.raises(ConfigError, match=r"the run's index .* is not current \(rmsf csv"):
        train(load_config(overrides=resume))
    assert index.read_bytes() == before
    os.utime(demo / "rmsf.csv", ns=(st.st_atime_ns, st.st_mtime_ns))  # restored: resumes
    assert [h["epoch"] for h in train(load_config(overrides=resume)).history] == [1, 2]


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(small_index, tmp_path, monkeypatch):
    from voxelflex.engine import trainer

    calls = {"n": 0}
    real = trainer.weighted_loss

    def poisoned(pred, *args, **kwargs):
        calls["n"] += 1
        loss = real(pred, *args, **kwargs)
        return loss * float("nan") if calls["n"] == 7 else loss

    monkeypatch.setattr(trainer, "weighted_loss", poisoned)
    with pytest.raises(
        TrainingError, match=r"non-finite training loss \(nan\) at epoch 1, batch 7"
    ):
        train(load_config(overrides=_overrides(small_index, tmp_path, "nan")))
    kept = Checkpoint.load(tmp_path / "nan" / "models" / "latest.pt")
    assert (kept.meta.epoch, kept.meta.batch) == (0, 4)
    assert all(torch.isfinite(t).all() for t in kept.model.values())
    # that mid-epoch checkpoint cannot continue with another epoch plan
    monkeypatch.setattr(trainer, "weighted_loss", real)
    other_plan = [*_overrides(small_index, tmp_path, "nan"), "train.resume=true"]
    with pytest.raises(CheckpointError, match=r"stopped mid-epoch.*'batch_size': 64"):
        train(load_config(overrides=[*other_plan, "loader.batch_size=32"]))


def test_features_must_be_structure_features_of_the_index(small_index, tmp_path):
    """The CSV's relative_accessibility comes from the target's own simulation: never an input."""
    base = _overrides(small_index, tmp_path, "feat")
    with pytest.raises(SourceError, match=r"\['relative_accessibility'\] are not structure feat"):
        train(load_config(overrides=[*base, "model.features=relative_accessibility"]))
    assert not (tmp_path / "feat" / "models").exists()


def test_on_main_gives_rank_0_result_or_error():
    from voxelflex.engine.distributed import DistContext

    ctx = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    assert ctx.on_main(lambda: 3) == 3

    def fail():
        raise TrainingError("rank 0 failed")

    with pytest.raises(TrainingError, match="rank 0 failed"):
        ctx.on_main(fail)


@pytest.mark.parametrize("values", [["a1", "a1"], ["a1", "b2"]])
def test_ranks_refuse_together_when_one_holds_another_index(tmp_path, values):
    port = _free_port()
    torch.multiprocessing.spawn(compare, args=(port, values, str(tmp_path)), nprocs=2)
    results = [(tmp_path / f"rank{r}.txt").read_text() for r in (0, 1)]
    if values[0] == values[1]:
        assert results == ["same", "same"]
    else:  # every rank raises, so none waits in a later collective
        assert all(r.startswith("1 of 2 ranks have another index than rank 0") for r in results)
        assert "rank 0: a1" in results[1] and "give every node the same index" in results[0]


@pytest.mark.parametrize("setting", ["loader.num_workers=0", "loader.mix_buffer_residues=7"])
def test_the_settings_ranks_compare_cover_the_epoch_plan(setting):
    """Reproduction: one node started with another loader.num_workers dealt the domains to
    another number of streams (two domains served twice, two never, 18 batches on one rank and
    13 on the other) and passed the settings check; another mixing window can change the batch
    count (residues with unequal temperature rows are packed greedily in the mixed order)."""
    base = load_config(overrides=["loader.num_workers=2", "loader.mix_buffer_residues=2048"])
    assert settings_digest(load_config(overrides=[setting])) != settings_digest(base)
    local = ["loader.num_workers=2", "train.progress=false", "train.device=cpu", "output_dir=/x"]
    assert settings_digest(load_config(overrides=local)) == settings_digest(base)


def test_served_rows_are_checked_exactly_once():
    part = {"row_id": [0, 1, 1], "pred": [0.1] * 3, "target": [0.2] * 3}
    part |= {"temperature": [320.0] * 3, "loss_sum": 1.0, "weight_sum": 3.0}
    with pytest.raises(TrainingError, match="1 duplicates"):
        reduce_metrics([part], expected_rows=3, split="train", epoch=1)


def test_torchrun_two_cpu_ranks_see_every_row_once(small_index, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "voxelflex", "train", "--index", str(small_index), "--output-dir", str(tmp_path),
        "--run-name", "ddp", "--epochs", "2", "--workers", "0", "--set", "train.threads=1",
        *[a for item in BASE[:3] for a in ("--set", item)], "--set", "train.progress=false",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Grad strides do not match" not in proc.stderr  # DDP copies no gradient a step
    history = json.loads((tmp_path / "ddp" / "training_history.json").read_text())
    assert [h["train"]["n"] for h in history] == [_rows(small_index, "train")] * 2
    assert [h["val"]["n"] for h in history] == [_rows(small_index, "val")] * 2
    for h in history:  # the rate counts the rows every rank served, once
        rows = h["timing"]["samples_per_s"] * h["timing"]["seconds"]
        assert rows == pytest.approx(_rows(small_index, "train"), rel=1e-6)
    assert "2 rank(s)" in (tmp_path / "ddp" / "logs" / "voxelflex.log").read_text()


def test_ctrl_c_saves_latest_then_resume_finishes_the_run(reference, small_index, tmp_path):
    save = Checkpoint.save
    pressed = []

    def save_then_interrupt(self, path):
        save(self, path)
        if (self.meta.epoch, self.meta.batch) == (0, 4) and not pressed:
            pressed.append(True)
            signal.raise_signal(signal.SIGINT)  # as if the user pressed Ctrl-C here

    overrides = _overrides(small_index, tmp_path, "ctrl_c")
    Checkpoint.save = save_then_interrupt
    # Python's own Ctrl-C handling, whatever this test process inherited (a background job of a
    # script starts with SIGINT ignored, and then training leaves it ignored: the test below).
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            train(load_config(overrides=overrides))
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    finally:
        Checkpoint.save = save
        signal.signal(signal.SIGINT, inherited)
    saved = Checkpoint.load(tmp_path / "ctrl_c" / "models" / "latest.pt")
    assert (saved.meta.epoch, saved.meta.batch) == (0, 4)
    assert "interrupted: saved" in (tmp_path / "ctrl_c" / "logs" / "voxelflex.log").read_text()
    result = train(load_config(overrides=[*overrides, "train.resume=true"]))
    expected = json.loads((reference / "training_history.json").read_text())
    assert _strip_timing(result.history) == _strip_timing(expected)


def test_a_run_started_ignoring_sigint_keeps_ignoring_it(reference, small_index, tmp_path):
    # `voxelflex train ... &` in a script starts with SIGINT ignored, so that Ctrl-C on the
    # script leaves it running: training must not turn Ctrl-C back on.
    save = Checkpoint.save

    def save_then_interrupt(self, path):
        save(self, path)
        if (self.meta.epoch, self.meta.batch) == (0, 4):
            signal.raise_signal(signal.SIGINT)

    inherited = signal.signal(signal.SIGINT, signal.SIG_IGN)
    Checkpoint.save = save_then_interrupt
    try:
        result = train(load_config(overrides=_overrides(small_index, tmp_path, "ignored")))
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        Checkpoint.save = save
        signal.signal(signal.SIGINT, inherited)
    expected = json.loads((reference / "training_history.json").read_text())
    assert _strip_timing(result.history) == _strip_timing(expected)  # ran to its end
    assert "interrupted" not in (tmp_path / "ignored" / "logs" / "voxelflex.log").read_text()


def test_a_kill_right_after_the_last_latest_pt_leaves_best_and_history_whole(
    reference, small_index, tmp_path
):
    save = Checkpoint.save

    def save_then_die(self, path):
        save(self, path)
        if path.name == "latest.pt" and (self.meta.epoch, self.meta.batch) == (EPOCHS, 0):
            raise RuntimeError("killed")  # before the history file of the last epoch

    overrides = _overrides(small_index, tmp_path, "end")
    Checkpoint.save = save_then_die
    try:
        with pytest.raises(RuntimeError, match="killed"):
            train(load_config(overrides=overrides))
    finally:
        Checkpoint.save = save
    run = tmp_path / "end"
    assert len(json.loads((run / "training_history.json").read_text())) == EPOCHS - 1
    result = train(load_config(overrides=[*overrides, "train.resume=true"]))  # nothing left to do
    history = json.loads((run / "training_history.json").read_text())
    assert _strip_timing(history) == _strip_timing(result.history)
    assert len(history) == EPOCHS
    best_epoch = max(h["epoch"] for h in history if h["is_best"])
    assert Checkpoint.load(run / "models" / "best.pt").meta.epoch == best_epoch


def _stalling(small_index, tmp_path, name: str) -> list[str]:
    """A run whose val loss cannot improve meaningfully (lr 1e-12): it stops after 1 + patience
    (1) epochs of 5."""
    return [
        *_overrides(small_index, tmp_path, name),
        "train.epochs=5",
        "train.lr=1e-12",
        "train.scheduler=none",
        "train.monitor=val_loss",
        "train.early_stopping_patience=1",
        "model.dropout=0.0",
    ]


def test_early_stopping_after_patience(small_index, tmp_path):
    result = train(load_config(overrides=_stalling(small_index, tmp_path, "early")))
    assert result.stop_reason == "early_stopping"
    assert len(result.history) < 5


def test_resuming_an_early_stopped_run_trains_no_further_epoch(small_index, tmp_path):
    # e.g. a requeued job that resumes whenever latest.pt exists: the run had ended
    overrides = _stalling(small_index, tmp_path, "stopped")
    first = train(load_config(overrides=overrides))
    assert first.stop_reason == "early_stopping"
    latest = tmp_path / "stopped" / "models" / "latest.pt"
    saved = latest.read_bytes()
    again = train(load_config(overrides=[*overrides, "train.resume=true"]))
    assert again.stop_reason == "early_stopping"
    assert _strip_timing(again.history) == _strip_timing(first.history)
    assert latest.read_bytes() == saved  # no epoch trained, no checkpoint written


def test_cli_builds_an_index_from_inputs_or_says_what_is_missing(demo_data, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["train", "--output-dir", str(tmp_path), "--epochs", "1"])
    assert result.exit_code == 2 and "'data.index' is not set" in result.output
    args = [
        "train", "--voxel-file", str(demo_data.voxel_file), "--rmsf-csv", str(demo_data.rmsf_csv),
        "--rmsf-unit", "nm", "--train-split", str(demo_data.train_split),
        "--val-split", str(demo_data.val_split), "--output-dir", str(tmp_path),
        "--run-name", "built", "--epochs", "1", "--preset", "tiny", "--workers", "0",
        "--set", "train.progress=false",
    ]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    built = tmp_path / "built" / "index" / "index.parquet"
    assert built.is_file()
    assert (tmp_path / "built" / "models" / "best.pt").is_file()
    # resuming with the same, unchanged inputs reuses that index instead of rebuilding it
    mtime = built.stat().st_mtime_ns
    result = runner.invoke(app, [*args, "--epochs", "2", "--resume"])
    assert result.exit_code == 0, result.output
    assert built.stat().st_mtime_ns == mtime


def test_huber_log_target_plateau_head_densenet(small_index, tmp_path):
    from voxelflex.engine import predict_batch
    from voxelflex.sources import PlanConfig, open_source

    overrides = [
        *_overrides(small_index, tmp_path, "variant"),
        "train.epochs=1",
        "train.loss=huber",
        "train.log_target=true",
        "train.scheduler=plateau",
        "model.name=densenet3d",
        "model.conditioning=head",
    ]
    result = train(load_config(overrides=overrides))
    val = result.history[0]["val"]
    assert all(val[k] == val[k] for k in ("loss", "pearson", "rmse"))  # finite, not NaN
    model, ck = load_for_inference(result.best_checkpoint, "cpu")
    assert ck.model_spec.log_target and ck.model_spec.conditioning == "head"
    source = open_source("hdf5", read_index(small_index), split="val", temperatures=[300, 500])
    batch = next(iter(source.loader(PlanConfig(batch_size=64, shuffle=False), 0)))
    pred = predict_batch(model, batch, "cpu")
    assert (pred[batch.row_id >= 0] > 0).all()  # exp of the log-space output: positive RMSF


def _constant_val_predictions(monkeypatch):
    """Validation predicts one value for every row (as an untrained model may): its Pearson r
    and Spearman rho are undefined (NaN)."""
    import voxelflex.engine.trainer as trainer

    real = trainer.forward_batch

    def forward(*args, **kwargs):
        raw = real(*args, **kwargs)
        return raw if torch.is_grad_enabled() else raw * 0  # no grad: validation

    monkeypatch.setattr(trainer, "forward_batch", forward)


def test_history_is_strict_json_when_a_val_metric_is_undefined(small_index, tmp_path, monkeypatch):
    _constant_val_predictions(monkeypatch)
    overrides = [*_overrides(small_index, tmp_path, "const"), "train.epochs=1"]
    args = ["train"] + [arg for item in overrides for arg in ("--set", item)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    text = (tmp_path / "const" / "training_history.json").read_text()

    def refuse(token):
        raise ValueError(f"not JSON: {token}")

    history = json.loads(text, parse_constant=refuse)  # NaN/Infinity are not JSON
    val = history[0]["val"]
    assert val["pearson"] is None and val["spearman"] is None
    assert set(val["pearson_per_temperature"].values()) == {None}
    assert val["rmse"] > 0 and history[0]["train"]["pearson"] is not None
    assert history[0]["rmsf_unit"] == "nm"  # of rmse and mae
    assert f"last val pearson n/a, rmse {val['rmse']:.4f} nm;" in result.output
    log = (tmp_path / "const" / "logs" / "voxelflex.log").read_text()
    assert f"val loss {val['loss']:.4f} r n/a rmse {val['rmse']:.4f} nm |" in log
    assert "320.0:n/a" in log
    assert (tmp_path / "const" / "visualizations" / "training_curves.png").is_file()


def test_log_lines_label_per_domain_z_errors_as_such(small_index, tmp_path):
    """train.target_norm=domain: the history's rmse is in per-domain z units (its
    loss_function says so); the epoch log line and the final line printed it as nm."""
    overrides = [*_overrides(small_index, tmp_path, "z"), "train.epochs=1"]
    overrides.append("train.target_norm=domain")
    args = ["train"] + [arg for item in overrides for arg in ("--set", item)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    entry = json.loads((tmp_path / "z" / "training_history.json").read_text())[0]
    assert "per-domain z-scored" in entry["loss_function"] and entry["rmsf_unit"] == "nm"
    rmse = entry["val"]["rmse"]
    assert f", rmse {rmse:.4f} per-domain z;" in result.output
    log = (tmp_path / "z" / "logs" / "voxelflex.log").read_text()
    assert f" rmse {rmse:.4f} per-domain z |" in log
    assert " nm" not in log.split("epoch 1/1", 1)[1].split("\n", 1)[0]


def test_resume_of_a_run_whose_history_has_nan_and_no_unit(small_index, tmp_path):
    # latest.pt as an earlier version wrote it: NaN metrics, no rmsf_unit in the history
    overrides = [*_overrides(small_index, tmp_path, "old"), "train.epochs=1"]
    train(load_config(overrides=overrides))
    latest = tmp_path / "old" / "models" / "latest.pt"
    ck = Checkpoint.load(latest)
    old = [{k: v for k, v in e.items() if k != "rmsf_unit"} for e in ck.history]
    old[0]["val"]["pearson"] = float("nan")
    dataclasses.replace(ck, history=old).save(latest)
    result = train(load_config(overrides=[*overrides, "train.epochs=2", "train.resume=true"]))
    text = (tmp_path / "old" / "training_history.json").read_text()
    assert "NaN" not in text
    history = json.loads(text)
    assert history[0]["val"]["pearson"] is None and history[1]["val"]["pearson"] is not None
    assert [e["rmsf_unit"] for e in history] == ["nm", "nm"]  # the checkpoint's unit
    assert _strip_timing(result.history) == _strip_timing(history)


def test_the_schedule_counts_the_steps_taken_not_the_padding_batches(small_index, tmp_path):
    """With loader workers, streams are padded to one length with weight-0 batches; a group of
    padding only takes no optimizer step. The schedule was sized by all batches: it logged more
    steps than were taken and the cosine ended above its floor."""
    extra = ["loader.num_workers=2", "loader.batch_size=16", "train.epochs=1"]
    extra += ["train.warmup_epochs=0", "train.scheduler=cosine", "train.lr=0.001"]
    result = train(load_config(overrides=_overrides(small_index, tmp_path, "pad", *extra)))
    log = (tmp_path / "pad" / "logs" / "voxelflex.log").read_text()
    logged = re.search(r"(\d+) optimizer steps/epoch per rank", log)
    assert logged and int(logged[1]) == result.history[0]["global_step"]
    assert result.history[0]["lr"] == pytest.approx(1e-5)  # the floor: 1 % of the peak
