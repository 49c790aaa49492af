"""The pieces around the training loop, each on its own: loss watch, best-value tracker,
learning-rate schedule, checkpoint policy, Ctrl-C handling."""

from __future__ import annotations

import math
import shutil
import signal
from pathlib import Path

import pytest
import torch

from tests._index_data import csv_rows, residues, write_csv, write_voxels
from voxelflex.config import load_config
from voxelflex.engine import train
from voxelflex.engine.checkpointing import CheckpointPolicy
from voxelflex.engine.data import open_training_data
from voxelflex.engine.distributed import DistContext
from voxelflex.engine.interrupt import GracefulInterrupt, StopVote
from voxelflex.engine.loss_watch import LossWatch
from voxelflex.engine.schedule import LRSchedule
from voxelflex.engine.tracker import BestTracker
from voxelflex.errors import CheckpointError, ConfigError, TrainingError
from voxelflex.index import build_index
from voxelflex.inputs.splits import read_split_file
from voxelflex.models import ModelSpec

CPU = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
SPEC = ModelSpec("multipath", "tiny", "film")


def test_loss_watch_keeps_the_first_non_finite_loss(tmp_path):
    watch = LossWatch(torch.device("cpu"))
    assert watch.every == 1  # reading is free on the CPU
    watch.record(torch.tensor(1.0), 1)
    watch.check(CPU, epoch=0, latest=tmp_path / "latest.pt")  # all finite: no error
    for batch, value in enumerate([float("inf"), float("nan"), 2.0], start=2):
        watch.record(torch.tensor(value), batch)
    assert int(watch.batch) == 2 and float(watch.value) == float("inf")
    with pytest.raises(TrainingError, match=r"\(inf\) at epoch 3, batch 2.*no checkpoint had"):
        watch.check(CPU, epoch=2, latest=tmp_path / "latest.pt")
    # on an accelerator the watch lives there and is read only every few dozen steps
    assert LossWatch(torch.device("meta")).every > 1


def test_tracker_improvement_nan_and_patience():
    t = BestTracker("val_pearson", patience=2)
    assert t.mode == "max" and BestTracker("val_rmse", 0).mode == "min"
    assert t.update({"pearson": math.nan})  # no best yet: counts as improved, best stays None
    assert t.best is None
    assert t.update({"pearson": 0.5}) and t.best == 0.5
    assert not t.update({"pearson": math.nan}) and t.bad_epochs == 1
    assert not t.update({"pearson": 0.4}) and t.should_stop
    restored = BestTracker("val_pearson", patience=2)
    restored.load_state_dict(t.state_dict())
    assert (restored.best, restored.bad_epochs) == (0.5, 2)
    assert not BestTracker("val_loss", patience=0).should_stop  # 0: never stops
    stuck = BestTracker("val_chain_pearson", patience=2)  # e.g. constant predictions
    assert stuck.update({"chain_pearson": math.nan}) and not stuck.should_stop
    assert stuck.update({"chain_pearson": math.nan}) and stuck.should_stop


def test_schedules_warm_up_decay_halve_or_do_nothing():
    def opt():
        return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)

    o = opt()
    cosine = LRSchedule(o, "cosine", total_steps=10, warmup_steps=2, mode="max", patience=1)
    lrs = []
    for _ in range(10):
        lrs.append(o.param_groups[0]["lr"])
        o.step()
        cosine.after_step()
        cosine.after_epoch(0.0)  # ignored by cosine
    assert lrs[0] == pytest.approx(0.5) and lrs[1] == pytest.approx(1.0)
    assert lrs[2:] == sorted(lrs[2:], reverse=True) and lrs[-1] > 0.01
    o = opt()
    plateau = LRSchedule(o, "plateau", total_steps=10, warmup_steps=0, mode="max", patience=0)
    o.step()
    plateau.after_step()  # ignored by plateau
    plateau.after_epoch(0.5)
    plateau.after_epoch(0.4)
    assert o.param_groups[0]["lr"] == pytest.approx(0.5)
    o = opt()
    none = LRSchedule(o, "none", total_steps=10, warmup_steps=0, mode="max", patience=0)
    none.after_step()
    none.after_epoch(0.0)
    assert o.param_groups[0]["lr"] == 1.0 and none.state_dict() is None
    with pytest.raises(ConfigError, match="valid: cosine, step, plateau, none"):
        LRSchedule(o, "exponential", total_steps=1, warmup_steps=0, mode="max", patience=0)


def test_checkpoint_policy_files_and_run_folder(tmp_path):
    policy = CheckpointPolicy(tmp_path / "run", every_epochs=2, every_batches=3)
    assert policy.at_epoch_end(1, improved=False) == [policy.latest]
    assert policy.at_epoch_end(2, improved=True) == [  # latest.pt, which resume trusts, last
        policy.best,
        policy.models_dir / "epoch_002.pt",
        policy.latest,
    ]
    assert [b for b in range(1, 10) if policy.due_mid_epoch(b, 9)] == [3, 6]  # not the last
    policy.claim(overwrite=False)  # an empty folder is free
    policy.models_dir.mkdir(parents=True)
    policy.latest.write_bytes(b"x")
    with pytest.raises(ConfigError, match=r"already holds a run .*--resume.*--overwrite"):
        policy.claim(overwrite=False)
    policy.claim(overwrite=True)
    assert not policy.latest.exists()


def test_overwrite_deletes_what_was_made_from_the_earlier_model(tmp_path, caplog):
    policy = CheckpointPolicy(tmp_path / "run")
    policy.models_dir.mkdir(parents=True)
    policy.best.write_bytes(b"old model")
    metrics = policy.run_dir / "metrics"
    metrics.mkdir()
    made = [
        metrics / "predictions_test.parquet",
        metrics / "predictions_val.csv",
        metrics / "predictions_val.csv.json",
        metrics / "predictions_test_missing.csv",
        metrics / "evaluation_metrics_test.json",
        policy.run_dir / "predictions_val.parquet",
        policy.run_dir / "visualizations" / "pred_vs_true.png",
    ]
    for path in made:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("from the old model")
    (metrics / "notes.txt").write_text("mine")  # not a command's output: kept
    with caplog.at_level("WARNING", logger="voxelflex"):
        policy.claim(overwrite=True)
    assert not policy.best.exists() and not (policy.run_dir / "visualizations").exists()
    assert not any(p.exists() for p in made)
    assert (metrics / "notes.txt").read_text() == "mine"
    assert "predictions_test.parquet" in caplog.text and "visualizations" in caplog.text
    # an input among the files --overwrite deletes is refused, nothing deleted
    kept = policy.run_dir / "visualizations" / "pred_vs_true_data.csv"
    kept.parent.mkdir()
    kept.write_text("x")
    with pytest.raises(ConfigError, match=r"data.rmsf_csv .* is in .*visualizations"):
        policy.claim(overwrite=True, inputs={"data.rmsf_csv": kept, "data.index": None})
    assert kept.exists()
    shutil.rmtree(kept.parent)
    # predictions alone (no checkpoint) are an earlier run's outputs too: refused
    (metrics / "predictions_test.parquet").write_text("x")
    with pytest.raises(ConfigError, match="already holds a run"):
        policy.claim(overwrite=False)


def test_a_run_killed_before_its_first_latest_pt_is_not_sent_to_resume(demo_index, tmp_path):
    """Killed between best.pt and latest.pt of epoch 1: the run said "pass --resume", and
    --resume said "start without --resume", each sending the user to the other."""
    policy = CheckpointPolicy(tmp_path / "run")
    policy.models_dir.mkdir(parents=True)
    policy.best.write_bytes(b"epoch 1")
    with pytest.raises(ConfigError, match=r"no models/latest.pt to continue.*--overwrite") as err:
        policy.claim(overwrite=False)
    assert "pass --resume" not in str(err.value)
    overrides = [f"data.index={demo_index}", f"output_dir={tmp_path}", "run_name=run"]
    overrides += ["train.resume=true", "model.preset=tiny", "loader.num_workers=0"]
    with pytest.raises(CheckpointError, match=r"latest.pt does not exist.*best.pt.*--overwrite"):
        train(load_config(None, overrides))
    assert policy.best.read_bytes() == b"epoch 1"


def test_a_crash_while_overwrite_clears_a_run_never_leaves_it_resumable(tmp_path, monkeypatch):
    """--overwrite deleted best.pt before latest.pt: a kill in between left a run --resume
    continued without its best model."""
    policy = CheckpointPolicy(tmp_path / "run")
    policy.models_dir.mkdir(parents=True)
    for path in (policy.best, policy.models_dir / "epoch_001.pt", policy.latest):
        path.write_bytes(b"x")
    real, seen = Path.unlink, []

    def killed_at_the_second(path, missing_ok=False):
        seen.append(path)
        if len(seen) == 2:
            raise KeyboardInterrupt
        real(path, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", killed_at_the_second)
    with pytest.raises(KeyboardInterrupt):
        policy.claim(overwrite=True)
    assert not policy.latest.exists()


def test_a_run_removes_only_its_own_temporary_files(tmp_path, caplog):
    """A kill during a checkpoint write left .latest.pt.XXXX.pt.tmp (tens of MB each) in
    models/, and no later train or --resume of the run removed it."""
    policy = CheckpointPolicy(tmp_path / "run")
    own = [
        policy.models_dir / ".latest.pt.k2_x9abc.pt.tmp",
        policy.models_dir / ".best.pt.0aq1w2e3.pt.tmp",
        policy.models_dir / ".epoch_012.pt.zz11yy22.pt.tmp",
        policy.run_dir / ".training_history.json.ab12cd34.tmp",
        policy.run_dir / ".config.yaml.ab12cd34.tmp",
    ]
    others = [
        policy.models_dir / "latest.pt",
        policy.models_dir / ".mine.pt.ab12cd34.pt.tmp",  # not a name train writes
        policy.models_dir / "keep.tmp",
        policy.run_dir / ".predictions_val.parquet.ab12cd34.parquet.tmp",  # predict's
        policy.run_dir / "metrics" / ".config.yaml.ab12cd34.tmp",  # not the run's config
        tmp_path / ".latest.pt.ab12cd34.pt.tmp",  # outside the run folder
    ]
    for path in [*own, *others]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    with caplog.at_level("WARNING"):
        assert sorted(policy.remove_temporaries()) == sorted(own)
    assert not any(p.exists() for p in own) and all(p.exists() for p in others)
    assert "removed 5 temporary files" in caplog.text
    assert policy.remove_temporaries() == []


def test_graceful_interrupt_defers_the_first_ctrl_c_and_restores_the_handler():
    # Python's Ctrl-C handler, whatever the test process inherited (SIG_IGN in the background)
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with GracefulInterrupt(distributed=False) as interrupt:
            signal.raise_signal(signal.SIGINT)
            assert interrupt.requested
            with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C: at once
                signal.raise_signal(signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        # A process started ignoring SIGINT (a script's `cmd &`) keeps ignoring it.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with GracefulInterrupt(distributed=False) as interrupt:
            signal.raise_signal(signal.SIGINT)
            assert not interrupt.requested
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, inherited)


def test_graceful_interrupt_defers_the_first_sigterm_and_restores_the_handler():
    """SLURM and Kubernetes send SIGTERM before SIGKILL: handled like Ctrl-C."""
    before = signal.getsignal(signal.SIGTERM)
    with GracefulInterrupt(distributed=False) as interrupt:
        signal.raise_signal(signal.SIGTERM)  # before the fix: the test process ends here
        assert interrupt.requested
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # a second one: at once
    assert signal.getsignal(signal.SIGTERM) is before


def test_graceful_interrupt_under_torchrun_survives_the_second_sigterm():
    """Under SLURM a torchrun worker gets SIGTERM twice (from SLURM, and passed on by the
    agent): a second one that acted at once ended the rank before its save."""
    before = signal.getsignal(signal.SIGTERM)
    with GracefulInterrupt(distributed=True) as interrupt:
        signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGINT)
        assert interrupt.requested
    assert signal.getsignal(signal.SIGTERM) is before


class _OneOfTwoRanks:
    """A rank of 2 whose all-reduce adds ``others`` (the other rank's vote)."""

    enabled, device = True, torch.device("cpu")

    def __init__(self) -> None:
        self.others = 0

    def all_reduce(self, value: torch.Tensor) -> torch.Tensor:
        return value + self.others


def test_stop_vote_answers_with_the_previous_vote_of_any_rank():
    dist = _OneOfTwoRanks()
    vote = StopVote(dist)
    assert not vote(False) and not vote(False)
    dist.others = 1  # the other rank was signalled before this step's vote
    assert not vote(False)  # cast, read at the next step (no host-device sync on CUDA)
    dist.others = 0
    assert vote(False)
    assert not vote(False) and not vote(False)
    assert vote(True, now=True)  # at an epoch boundary, this call's vote counts too
    single = StopVote(CPU)
    assert single(True) and not single(False)  # one process: its own request, at once


def test_an_index_run_refuses_another_unit_and_inputs_other_than_it_was_built_from(
    demo_data, demo_index, tmp_path
):
    base = [f"data.index={demo_index}", "loader.num_workers=0"]
    with pytest.raises(ConfigError, match=r"data.rmsf_unit is angstrom but the index .* in nm"):
        open_training_data(load_config(None, [*base, "data.rmsf_unit=angstrom"]), CPU, SPEC)
    # the inputs it was built from, a copy keeping size and mtime, and a split file listing the
    # same ids under another name are the same inputs
    shutil.copy2(demo_data.rmsf_csv, tmp_path / "copy.csv")
    val_ids = read_split_file(demo_data.val_split)
    (tmp_path / "val.txt").write_text("# same ids, another order\n" + "\n".join(val_ids[::-1]))
    same = [
        f"data.voxel_file={demo_data.voxel_file}",
        f"data.rmsf_csv={tmp_path / 'copy.csv'}",
        f"data.val_split={tmp_path / 'val.txt'}",
        "data.rmsf_unit=nm",
    ]
    open_training_data(load_config(None, [*base, *same]), CPU, SPEC)
    # another validation list would be ignored: refused, naming the difference
    (tmp_path / "val.txt").write_text("\n".join(val_ids[1:]))
    with pytest.raises(ConfigError, match=rf"data.val_split .* 1 differ, e.g. \['{val_ids[0]}'\]"):
        open_training_data(
            load_config(None, [*base, f"data.val_split={tmp_path / 'val.txt'}"]), CPU, SPEC
        )
    (tmp_path / "x.csv").write_text("domain_id\n")
    with pytest.raises(ConfigError, match=r"data.rmsf_csv is .*x.csv, the index was built from"):
        open_training_data(
            load_config(None, [*base, f"data.rmsf_csv={tmp_path / 'x.csv'}"]), CPU, SPEC
        )


def _train_val_index(tmp_path, rows, splits=(("train", "t1"), ("val", "v1"))):
    """An index of domains t1 and v1, three residues each, targets from ``rows``; ``splits``:
    each split file's ids (t1 in train, v1 in val by default)."""
    layout = {d: {"A": residues("ALA GLY SER")} for d in ("t1", "v1")}
    for split, ids in splits:
        (tmp_path / f"{split}.txt").write_text("".join(f"{d}\n" for d in ids.split()))
    index = build_index(
        write_voxels(tmp_path / "v.h5", layout),
        tmp_path / "i.parquet",
        rmsf_csv=write_csv(tmp_path / "r.csv", rows),
        rmsf_unit="nm",
        train=tmp_path / "train.txt",
        val=tmp_path / "val.txt",
        progress=False,
    ).index_path
    return index


def test_one_train_temperature_and_val_outside_the_range_are_warned_about(tmp_path, caplog):
    rows = csv_rows("t1", "ALA GLY SER", temps=(320.0,))
    rows += csv_rows("v1", "ALA GLY SER", temps=(320.0, 450.0))
    index = _train_val_index(tmp_path, rows)
    caplog.set_level("WARNING", logger="voxelflex.engine.data")
    open_training_data(load_config(None, [f"data.index={index}"]), CPU, SPEC)
    assert "has one temperature (320 K)" in caplog.text
    assert "3 of 6 val rows" in caplog.text and "outside the train temperature range" in caplog.text


def test_an_empty_val_split_names_the_fix_for_split_files_and_for_an_mdcath_import(tmp_path):
    rows = csv_rows("t1", "ALA GLY SER") + csv_rows("v1", "ALA GLY SER")
    # an empty val.txt, e.g. an import's splits/val.txt
    index = _train_val_index(tmp_path, rows, splits=(("train", "t1 v1"), ("val", "")))
    with pytest.raises(TrainingError) as err:
        open_training_data(load_config(None, [f"data.index={index}"]), CPU, SPEC)
    message = str(err.value)
    assert "has 12 train and 0 val rows" in message and "(the val split is empty)" in message
    assert "rebuild it with --train-split and --val-split files" in message
    assert "`voxelflex import mdcath`" in message and "other --fractions" in message
    assert "give train --train-split and --val-split files" in message


def test_log_target_refuses_a_zero_rmsf_in_val_as_in_train(tmp_path):
    rows = csv_rows("t1", "ALA GLY SER") + csv_rows("v1", "ALA GLY SER")
    rows[-1] = (*rows[-1][:4], 0.0)  # a val residue whose RMSF is 0 (a B-factor of 0.00)
    index = _train_val_index(tmp_path, rows)
    overrides = [f"data.index={index}", f"output_dir={tmp_path}", "train.log_target=true"]
    overrides += ["model.preset=tiny", "loader.num_workers=0", "train.progress=false"]
    with pytest.raises(TrainingError, match=r"1 val rows are <= 0"):
        train(load_config(None, overrides))


def test_log_target_with_per_domain_targets_is_a_config_error(tmp_path):
    # not "N train rows are <= 0 ... drop those rows from the RMSF CSV": the z-scores are < 0
    rows = csv_rows("t1", "ALA GLY SER") + csv_rows("v1", "ALA GLY SER")
    index = _train_val_index(tmp_path, rows)
    overrides = [f"data.index={index}", f"output_dir={tmp_path}", "train.log_target=true"]
    overrides += ["train.target_norm=domain", "model.preset=tiny", "loader.num_workers=0"]
    with pytest.raises(ConfigError, match=r"cannot be combined with train\.target_norm=domain"):
        train(load_config(None, [*overrides, "train.progress=false"]))
