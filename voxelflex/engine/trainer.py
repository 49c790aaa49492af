"""The training loop: one engine for every source, architecture, device and world size.

Outputs under ``<output_dir>/<run_name>/``: the checkpoints of
:class:`~voxelflex.engine.checkpointing.CheckpointPolicy`, ``training_history.json``,
``logs/voxelflex.log`` and ``config.yaml`` (the resolved configuration). Only rank 0 writes.

Reproducibility: weights are initialised from ``loader.seed``, the data order comes from the
sources' epoch plan, and the RNG is re-seeded from (seed, epoch, batch, rank) before every step,
so dropout masks do not depend on how the run was interrupted: a resumed run on the CPU ends
with the same weights as an uninterrupted one.

The pieces around the loop have modules of their own: checkpoint contents
(:mod:`~voxelflex.engine.checkpoint`), which files when (:mod:`~voxelflex.engine.checkpointing`),
best value and early stopping (:mod:`~voxelflex.engine.tracker`), the learning-rate schedule
(:mod:`~voxelflex.engine.schedule`), the model and ``--init-from``
(:mod:`~voxelflex.engine.finetune`), Ctrl-C (:mod:`~voxelflex.engine.interrupt`) and the
non-finite-loss watch (:mod:`~voxelflex.engine.loss_watch`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from voxelflex.atomic import atomic_write_json, atomic_write_text, json_safe
from voxelflex.config import Config, config_to_yaml, path_keys
from voxelflex.engine.checkpoint import Checkpoint, CheckpointMeta
from voxelflex.engine.checkpointing import HISTORY_FILE, CheckpointPolicy
from voxelflex.engine.data import (
    TrainingData,
    index_digest,
    open_training_data,
    settings_digest,
)
from voxelflex.engine.distributed import DistContext
from voxelflex.engine.epoch_metrics import EpochAccumulator, reduce_metrics
from voxelflex.engine.finetune import (
    config_model_spec,
    config_with_model,
    init_from,
    log_init,
    run_model_spec,
    training_range,
)
from voxelflex.engine.interrupt import GracefulInterrupt, StopVote
from voxelflex.engine.loss_watch import LossWatch
from voxelflex.engine.report import DOMAIN_Z, log_epoch, log_model
from voxelflex.engine.schedule import LRSchedule
from voxelflex.engine.step import autocast_dtype, forward_batch, weighted_loss
from voxelflex.engine.tracker import BestTracker
from voxelflex.errors import CheckpointError, TrainingError
from voxelflex.logs import setup_logging
from voxelflex.models import ModelSpec, RMSFModel, build_model, trunk_arguments
from voxelflex.paths import is_url, redact_url
from voxelflex.sources.batch import Batch

__all__ = ["HISTORY_FILE", "TrainResult", "loss_description", "read_history", "train"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` produced.

    Attributes
    ----------
    run_dir : Path
    best_checkpoint, latest_checkpoint : Path
    history : list of dict
        One entry per epoch: ``train`` and ``val`` metrics (``rmse``, ``mae`` in
        ``rmsf_unit``; a metric that is undefined, e.g. the Pearson r of constant predictions,
        is None), ``lr``, ``timing``; as ``training_history.json`` holds it.
    global_step : int
        Optimizer steps taken in total (including before a resume).
    stop_reason : str
        ``completed`` or ``early_stopping``.
    """

    run_dir: Path
    best_checkpoint: Path
    latest_checkpoint: Path
    history: list[dict[str, Any]]
    global_step: int
    stop_reason: str


def train(config: Config) -> TrainResult:
    """Train (or, with ``train.resume``, continue training) the model described by ``config``.

    Works unchanged under ``torchrun`` (DistributedDataParallel: gloo on CPU, nccl on CUDA).

    Raises
    ------
    ConfigError, CheckpointError, TrainingError
        Bad settings, a run folder that holds a run (without ``resume``/``overwrite``), an
        incompatible ``latest.pt`` on resume, or a non-finite loss (the last good checkpoint is
        kept).
    """
    dist = DistContext.setup(config.train.device)
    try:
        return _Trainer(config, dist).run()
    finally:
        dist.close()


# The config keys that take a URL (config.PathOrUrl): data.index, data.shards_dir
_URL_KEYS = path_keys("data", urls_only=True)


def _without_credentials(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` (:meth:`Config.to_dict`) with its URLs' credentials shown as ``***``.

    A checkpoint's config only describes the run (resume takes the data from the command line
    or config.yaml), and checkpoints are shared with their results.
    """
    data = dict(config["data"])
    for key in _URL_KEYS:
        name = key.removeprefix("data.")
        if is_url(data[name]):
            data[name] = redact_url(data[name])
    return {**config, "data": data}


def _step_seed(seed: int, epoch: int, batch: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, batch, rank]).generate_state(1)[0])


def loss_description(config: Config, spec: ModelSpec) -> str:
    """What the training loss measures, for the history and the loss plot's axis (the target
    transform is the model's: ``--init-from`` keeps the checkpoint's)."""
    tc = config.train
    kind = "MSE" if tc.loss == "mse" else f"Huber (delta {tc.huber_delta:g})"
    target = "log RMSF" if spec.log_target else "RMSF"
    scale = DOMAIN_Z if spec.target_norm == "domain" else "standardised"
    return f"{kind} of {scale} {target} (dimensionless)"


class _Trainer:
    """One run: set-up in ``__init__``, the epochs in :meth:`run`."""

    def __init__(self, config: Config, dist: DistContext) -> None:
        self.config = config
        self.dist = dist
        tc = config.train
        if tc.threads:
            torch.set_num_threads(tc.threads)
        self.run_dir = config.run_dir
        self.files = CheckpointPolicy(
            self.run_dir, tc.checkpoint_every_epochs, tc.checkpoint_every_batches
        )
        # Rank 0 logs everything (and writes the log file); other ranks only warnings and
        # errors (e.g. skipped domains of their part of the plan), tagged with their rank.
        setup_logging(
            self.run_dir if dist.is_main else None,
            config.log_level if dist.is_main or config.log_level == "ERROR" else "WARNING",
            rank=dist.rank if dist.enabled else None,
        )
        trunk_arguments(config_model_spec(config))  # a bad one fails before any data work
        if not tc.resume:
            inputs = {"train.init_from": tc.init_from}
            inputs.update((key, config.get(key)) for key in path_keys("data"))
            dist.on_main(lambda: self.files.claim(overwrite=tc.overwrite, inputs=inputs))
        self.device = dist.device
        self.pin = self.device.type == "cuda"  # pinned host batches: asynchronous copies
        self.autocast = autocast_dtype(tc.precision, self.device)
        self._latest = self._load_latest() if tc.resume else None
        # --init-from starts a new run; a resumed one continues from its own latest.pt.
        init = Checkpoint.load(tc.init_from) if tc.init_from and not tc.resume else None
        self.spec = run_model_spec(config, init=init, latest=self._latest)
        # The configuration this run trains with, as config.yaml and checkpoints record it: a
        # fine-tuning run's model is the checkpoint's, not the config's model section.
        self.run_config = config_with_model(config, self.spec) if tc.init_from else config
        # A fine-tuning run's model has also been trained at the checkpoint's temperatures
        # (latest.pt of a resumed one records that union already).
        earlier = None
        if init is not None:
            earlier = init.meta.temperature_range
        elif self._latest is not None and self._latest.meta.init_from:
            earlier = self._latest.meta.temperature_range
        self.data: TrainingData = open_training_data(config, dist, self.spec, earlier=earlier)
        # the exactly-once row check cannot see a node whose index copy has other targets, nor
        # a rank started with another learning rate: compare digests with rank 0
        dist.require_same(
            "index",
            lambda: index_digest(self.data.index),
            "give every node a copy of the same index (and shards)",
        )
        dist.require_same(
            "training settings",
            lambda: settings_digest(config),
            "start every rank with the same config file, --set values and flags",
        )
        torch.manual_seed(config.loader.seed)  # identical initial weights on every rank
        index = self.data.index
        # what counts as extrapolation (meta.temperature_range of this run's checkpoints)
        self.training_range = training_range(index.meta.temperature_range, earlier)
        self.model: RMSFModel = build_model(
            self.spec, temperature_range=index.meta.temperature_range
        )
        y = self._model_targets()
        if init is not None:
            # the checkpoint's weights and statistics: the run starts from its exact function
            init_from(self.model, init, index, where=str(tc.init_from))
            log_init(
                self.model,
                init,
                index,
                y,
                extrapolation=self.training_range,
                where=str(tc.init_from),
            )
        else:
            self._set_statistics(y)
        self.model.to(self.device)
        self.net: torch.nn.Module = (
            DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
            if dist.enabled
            else self.model
        )
        # steps, not batches: a group of padding batches only takes none (the schedule then
        # ended above its floor: 7.6e-5 for 1e-5 after 3 epochs of 6 logged, 5 taken, steps)
        plan = self.data.train.plan(self.data.train_plan_config, 0)
        self.steps_per_epoch = plan.optimizer_steps(tc.grad_accumulation)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay
        )
        self.tracker = BestTracker(
            tc.monitor, tc.early_stopping_patience, min_delta=tc.early_stopping_min_delta
        )
        self.schedule = LRSchedule(
            self.optimizer,
            tc.scheduler,
            total_steps=tc.epochs * self.steps_per_epoch,
            warmup_steps=round(tc.warmup_epochs * self.steps_per_epoch),
            mode=self.tracker.mode,
            patience=tc.plateau_patience,
            factor=tc.lr_factor,
            step_epochs=tc.step_epochs,
            threshold=tc.plateau_threshold,
            min_lr=tc.min_lr,
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast == torch.float16)
        self.epoch = 0
        self.batch = 0
        self.global_step = 0
        # batches with data in the open optimizer step: on this rank, and on any rank (DDP)
        self._local_real = 0
        self._real_batches: float | torch.Tensor = 0.0
        self.history: list[dict[str, Any]] = []
        self.partial = EpochAccumulator()
        self.loss_watch = LossWatch(self.device)
        self.stop_vote = StopVote(dist)
        if tc.resume:
            self._resume()
        if dist.is_main:
            # before this run's first write: what a kill during an earlier one's writes left
            self.files.remove_temporaries()
            # overwrite and resume were this command's actions: a config.yaml reused with
            # --config must not delete (or resume) the run it came from
            once = dataclasses.replace(self.run_config.train, overwrite=False, resume=False)
            saved = dataclasses.replace(self.run_config, train=once)
            atomic_write_text(self.run_dir / "config.yaml", config_to_yaml(saved))
            # config.yaml keeps URLs as given: `-c config.yaml --resume` reads the data from it
            given = {k: saved.get(k) for k in _URL_KEYS}
            if keys := [k for k, v in given.items() if is_url(v) and redact_url(v) != v]:
                log.warning(
                    "%s holds %s as given, with the credentials in the URL: keep the file "
                    "private, or give credentials through the environment (AWS_* variables, "
                    "~/.config/fsspec/) instead of in the URL",
                    self.run_dir / "config.yaml",
                    " and ".join(keys),
                )
            log_model(
                self.model,
                device=self.device,
                autocast=self.autocast,
                world_size=dist.world_size,
                train_rows=self.data.train.sample_count,
                steps_per_epoch=self.steps_per_epoch,
            )

    # ------------------------------------------------------------------ set-up

    def _model_targets(self) -> np.ndarray:
        """The train targets as the model standardises them (log RMSF with ``log_target``).

        Raises
        ------
        TrainingError
            ``log_target`` with RMSF <= 0 in the train or val split.
        """
        y = self.data.target.astype(np.float64)
        if self.spec.log_target:
            # val too: one RMSF of 0 there made every val loss inf, and best.pt, the plateau
            # schedule and early stopping on val_loss followed it
            bad = {
                split: int((np.asarray(table.target) <= 0).sum())
                for split, table in (("train", self.data.train.table), ("val", self.data.val.table))
            }
            if any(bad.values()):
                raise TrainingError(
                    "train.log_target needs positive RMSF, but "
                    + ", ".join(f"{n} {split} rows" for split, n in bad.items() if n)
                    + " are <= 0 (the log of 0 is -inf); set train.log_target=false, or drop "
                    "those rows from the RMSF CSV"
                )
            y = np.log(y)
        return y

    def _set_statistics(self, y: np.ndarray) -> None:
        """Target standardisation from ``y`` (:meth:`_model_targets`), feature standardisation
        from the train split's residues (a run from scratch; fine-tuning keeps the
        checkpoint's)."""
        std = self.data.feature_std
        self.model.set_statistics(
            float(y.mean()),
            float(max(y.std(), 1e-6)),
            torch.as_tensor(self.data.feature_mean, dtype=torch.float32),
            torch.as_tensor(np.where(std > 0, std, 1.0), dtype=torch.float32),
        )

    def _plan_key(self) -> dict[str, int]:
        p = self.data.train_plan_config
        return {
            "batch_size": p.batch_size,
            "seed": p.seed,
            "num_workers": p.num_workers,
            "world_size": p.world_size,
            "mix_buffer_residues": p.mix_buffer_residues,
            "grad_accumulation": self.config.train.grad_accumulation,
        }

    def _load_latest(self) -> Checkpoint:
        path = self.files.latest
        if not path.is_file():
            others = sorted(p.name for p in self.files.models_dir.glob("*.pt"))
            if others:  # killed in epoch 1 between best.pt and latest.pt: nothing to resume
                raise CheckpointError(
                    f"--resume: {path} does not exist (the run stopped before its first epoch "
                    f"was saved; models holds {', '.join(others)}): start it over with "
                    "--overwrite instead of --resume, or choose another --run-name"
                )
            raise CheckpointError(
                f"--resume: {path} does not exist; start without --resume or pick the run with "
                "--output-dir/--run-name"
            )
        return Checkpoint.load(path)

    def _resume(self) -> None:
        path = self.files.latest
        ck, self._latest = self._latest, None  # the model state is copied out below
        ck.require_resumable(
            spec=self.spec, index=self.data.index, plan=self._plan_key(), where=str(path)
        )
        # The best value, the patience count and a plateau schedule belong to one metric.
        monitored = (ck.trainer or {}).get("monitor") or (ck.config or {}).get("train", {}).get(
            "monitor"
        )
        if monitored and monitored != self.tracker.monitor:
            raise CheckpointError(
                f"--resume: {path} monitored {monitored}, this run's train.monitor is "
                f"{self.tracker.monitor}; its best value, early-stopping count and plateau "
                f"schedule are {monitored}'s: resume with train.monitor={monitored}, or start a "
                "new run (another --run-name, --init-from to keep the weights)"
            )
        self.model.load_state_dict(ck.model)
        self.optimizer.load_state_dict(ck.optimizer)
        self.schedule.load_state_dict(ck.scheduler)
        # A run may resume on other hardware: a CPU/bf16 checkpoint has no fp16 scaler state,
        # and CUDA RNG states only fit the same GPU count (steps re-seed the RNG anyway).
        if ck.scaler:
            self.scaler.load_state_dict(ck.scaler)
        torch.set_rng_state(ck.rng["torch"])
        if torch.cuda.is_available() and len(ck.rng["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(ck.rng["cuda"])
        self.epoch, self.batch = ck.meta.epoch, ck.meta.batch
        self.global_step = ck.meta.global_step
        # Runs written before: NaN in the history, no rmsf_unit (the checkpoint's, checked
        # against this index's by require_resumable)
        self.history = [{"rmsf_unit": ck.meta.rmsf_unit, **e} for e in json_safe(ck.history)]
        self._write_history()  # a kill after latest.pt, before the history file, left it short
        self.tracker.load_state_dict(ck.trainer)
        if self.dist.is_main and ck.meta.batch > 0:
            self.partial = EpochAccumulator.merged([ck.partial])
        log.info(
            "resumed from %s at epoch %d, batch %d (%d optimizer steps so far)",
            path,
            self.epoch + 1,
            self.batch,
            self.global_step,
        )

    # ------------------------------------------------------------------ checkpoints

    def _checkpoint(self, partial: dict[str, Any] | None) -> Checkpoint:
        meta = self.data.index.meta
        tc_init = self.config.train.init_from
        return Checkpoint(
            model_spec=self.spec,
            meta=CheckpointMeta(
                temperature_range=self.training_range,
                frame=meta.frame,
                rmsf_unit=meta.rmsf_unit,
                index_fingerprint=meta.fingerprint(),
                epoch=self.epoch,
                batch=self.batch,
                global_step=self.global_step,
                init_from=None if tc_init is None else str(tc_init),
                feature_provenance=meta.feature_provenance if self.spec.features else None,
            ),
            model=self.model.state_dict(),
            optimizer=self.optimizer.state_dict(),
            scheduler=self.schedule.state_dict(),
            scaler=self.scaler.state_dict(),
            rng={
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            },
            plan=self._plan_key(),
            history=self.history,
            trainer=self.tracker.state_dict(),
            partial=partial,
            config=_without_credentials(self.run_config.to_dict()),
        )

    def _save(self, paths: list[Path], acc: EpochAccumulator | None = None) -> None:
        """Write a checkpoint of the current state to ``paths`` (collective)."""
        self.loss_watch.check(self.dist, epoch=self.epoch, latest=self.files.latest)
        partial = None
        if acc is not None:  # mid-epoch: rank 0 keeps every rank's rows served so far
            parts = self.dist.gather_to_main(acc.state_dict())
            partial = EpochAccumulator.merged(parts).state_dict() if parts else None
        if not self.dist.is_main:
            return
        checkpoint = self._checkpoint(partial)
        for path in paths:
            checkpoint.save(path)

    # ------------------------------------------------------------------ loop

    def run(self) -> TrainResult:
        with contextlib.ExitStack() as stack:  # end the workers the sources keep between epochs
            stack.callback(self.data.val.close)
            stack.callback(self.data.train.close)
            return self._epochs()

    def _epochs(self) -> TrainResult:
        tc = self.config.train
        stop_reason = "completed"
        with GracefulInterrupt(distributed=self.dist.enabled) as self.interrupt:
            while self.epoch < tc.epochs:
                # a resumed run that had stopped early stays stopped (a larger patience goes on)
                if self.batch == 0 and self.tracker.should_stop:
                    stop_reason = self._early_stop()
                    break
                self._stop_if_interrupted(now=True)  # Ctrl-C during validation: stop here
                entry = self._train_epoch()
                entry["val"] = self._evaluate()
                improved = self.tracker.update(entry["val"])
                entry["is_best"] = improved  # best.pt holds this epoch's weights
                self.schedule.after_epoch(self.tracker.value(entry["val"]))
                # NaN as null from here on: the history file is strict JSON (a bare NaN token
                # made jq and JavaScript refuse it), and the checkpoints and TrainResult agree
                self.history.append(json_safe(entry))
                self.epoch += 1
                self.batch = 0
                self.partial = EpochAccumulator()
                self._save(self.files.at_epoch_end(self.epoch, improved))
                self._log_epoch(self.history[-1])
                if self.tracker.should_stop:
                    stop_reason = self._early_stop()
                    break
        return TrainResult(
            run_dir=self.run_dir,
            best_checkpoint=self.files.best,
            latest_checkpoint=self.files.latest,
            history=self.history,
            global_step=self.global_step,
            stop_reason=stop_reason,
        )

    def _early_stop(self) -> str:
        """Log why the run stops early; the stop reason."""
        log.info(
            "early stopping: %s did not improve for %d epochs",
            self.config.train.monitor,
            self.tracker.bad_epochs,
        )
        return "early_stopping"

    def _stop_if_interrupted(self, *, now: bool = False) -> None:
        """Save ``latest.pt`` and raise :class:`KeyboardInterrupt` if any rank was signalled
        (collective: every rank calls it at the same steps; ``now`` as for :class:`StopVote`)."""
        if not self.stop_vote(self.interrupt.requested, now=now):
            return
        self._save([self.files.latest], self.partial if self.batch else None)
        if self.dist.is_main:
            log.warning(
                "interrupted: saved %s at epoch %d, batch %d; continue with --resume",
                self.files.latest,
                self.epoch + 1,
                self.batch,
            )
        raise KeyboardInterrupt

    def _train_epoch(self) -> dict[str, Any]:
        tc = self.config.train
        data = self.data
        n_batches = data.train.num_batches(data.train_plan_config, self.epoch)
        loader = data.train.loader(
            data.train_plan_config, self.epoch, self.batch, pin_memory=self.pin
        )
        self.net.train()
        acc = self.partial  # rows served before a resume point, then this run's
        t_start = time.perf_counter()
        wait = 0.0
        samples = 0
        bar = tqdm(
            total=n_batches,
            initial=self.batch,
            desc=f"epoch {self.epoch + 1}/{tc.epochs}",
            disable=not (tc.progress and self.dist.is_main),
            unit="batch",
            leave=False,
        )
        k = tc.grad_accumulation
        it = iter(loader)
        while True:
            t0 = time.perf_counter()
            host = next(it, None)
            if host is None:
                break
            wait += time.perf_counter() - t0
            self._step(host.to(self.device, non_blocking=True), host, acc, n_batches)
            self.batch += 1
            samples += int((host.row_id >= 0).sum())
            if self.batch % self.loss_watch.every == 0:
                self.loss_watch.check(self.dist, epoch=self.epoch, latest=self.files.latest)
            elapsed = time.perf_counter() - t_start
            bar.update(1)
            bar.set_postfix(
                samples_s=f"{samples / max(elapsed, 1e-9):.0f}",
                wait=f"{100 * wait / max(elapsed, 1e-9):.0f}%",
            )
            # Gradients accumulated over part of a step are not saved: checkpoints and Ctrl-C
            # wait for the step's last batch.
            if self.batch % k == 0:
                if self.files.due_mid_epoch(self.batch // k, -(-n_batches // k)):
                    self._save([self.files.latest], acc)
                self._stop_if_interrupted()
        bar.close()
        self.loss_watch.check(self.dist, epoch=self.epoch, latest=self.files.latest)
        elapsed = time.perf_counter() - t_start
        # ranks serve unequal row counts (whole domains each): the sum, not rank 0's x ranks
        served = int(self.dist.all_reduce(torch.tensor([samples], device=self.device)).item())
        return {
            "epoch": self.epoch + 1,
            "lr": self.optimizer.param_groups[0]["lr"],
            "global_step": self.global_step,
            "monitor": tc.monitor,
            "loss_function": loss_description(self.config, self.spec),
            "rmsf_unit": self.data.index.meta.rmsf_unit,  # of rmse, mae (mse: squared)
            "train": self._epoch_metrics(acc, "train", data.train.sample_count),
            "timing": {
                "seconds": elapsed,
                "samples_per_s": served / max(elapsed, 1e-9),
                "data_wait_fraction": wait / max(elapsed, 1e-9),
            },
        }

    def _step(self, batch: Batch, host: Batch, acc: EpochAccumulator, n_batches: int) -> None:
        """Forward and backward of ``batch`` (on the device; ``host`` is its CPU copy), and the
        optimizer step when it is the last batch of its accumulation group."""
        tc = self.config.train
        # Batches [start, end) of this epoch share one optimizer step (train.grad_accumulation).
        start = self.batch - self.batch % tc.grad_accumulation
        end = min(start + tc.grad_accumulation, n_batches)
        last = self.batch + 1 == end
        torch.manual_seed(
            _step_seed(self.config.loader.seed, self.epoch, self.batch, self.dist.rank)
        )
        # Under DDP, gradients are averaged over ranks once per step, at its last batch.
        sync = self.net.no_sync() if self.dist.enabled and not last else contextlib.nullcontext()
        with sync:
            raw = forward_batch(self.net, batch, autocast_dtype=self.autocast, raw=True)
            target = self.model.encode_target(batch.target)
            weight_sum = batch.weight.sum()
            normalizer = None
            if self.dist.enabled:  # global weighted mean after DDP averages gradients over ranks
                normalizer = self.dist.all_reduce(weight_sum) / self.dist.world_size
            loss = weighted_loss(
                raw,
                target,
                batch.weight,
                kind=tc.loss,
                huber_delta=tc.huber_delta,
                normalizer=normalizer,
            )
            self.loss_watch.record(loss, self.batch + 1)
            if self.batch == start:
                self.optimizer.zero_grad(set_to_none=True)
                self._real_batches, self._local_real = 0.0, 0
            # Padding batches (weight 0: the plan evens out streams and ranks) carry no data.
            # Counted here on the host; under DDP also over all ranks (a device tensor, read
            # only when this rank saw padding: a batch with data here has data globally).
            self._local_real += int(host.weight.sum() > 0)
            if normalizer is not None:
                self._real_batches = self._real_batches + (normalizer > 0).float()
            # Each batch's mean loss counts equally in the step (a short last group included).
            scaled = loss / (end - start) if end - start > 1 else loss
            self.scaler.scale(scaled).backward()
        if last:
            self._optimizer_step(end - start)
        denom = normalizer if normalizer is not None else weight_sum
        acc.add(
            host,
            self.model.decode_output(raw.detach()),
            loss.detach() * denom,
            float(host.weight.sum()),
        )

    def _optimizer_step(self, group: int) -> None:
        """Step on the accumulated gradients of ``group`` batches: their mean over the batches
        with data. A group of padding batches only is no step at all (no AdamW momentum or
        weight decay, no schedule step)."""
        real = self._local_real
        if real < group and self.dist.enabled:
            real = float(self._real_batches)  # the only host sync, and only with padding
        if real == 0:
            return
        if real < group:  # the losses were divided by the group size, padding included
            for p in self.model.parameters():
                if p.grad is not None:
                    p.grad.mul_(group / real)
        tc = self.config.train
        if tc.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), tc.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.schedule.after_step()
        self.global_step += 1

    @torch.no_grad()
    def _evaluate(self) -> dict[str, Any]:
        tc = self.config.train
        data = self.data
        self.model.eval()
        acc = EpochAccumulator()
        bar = tqdm(
            data.val.loader(data.val_plan_config, 0, pin_memory=self.pin),
            total=data.val.num_batches(data.val_plan_config, 0),
            desc=f"validate {self.epoch + 1}/{tc.epochs}",
            disable=not (tc.progress and self.dist.is_main),
            unit="batch",
            leave=False,
        )
        for host in bar:
            batch = host.to(self.device, non_blocking=True)
            raw = forward_batch(self.model, batch, autocast_dtype=self.autocast, raw=True)
            target = self.model.encode_target(batch.target)
            loss = weighted_loss(
                raw, target, batch.weight, kind=tc.loss, huber_delta=tc.huber_delta
            )
            acc.add(
                host,
                self.model.decode_output(raw),
                loss * batch.weight.sum(),
                float(host.weight.sum()),
            )
        return self._epoch_metrics(acc, "val", data.val.sample_count)

    def _epoch_metrics(
        self, acc: EpochAccumulator, split: str, expected_rows: int
    ) -> dict[str, Any]:
        """Every rank's rows reduced on rank 0, the metrics (or its error) on every rank."""
        parts = self.dist.gather_to_main(acc.arrays())
        return self.dist.on_main(
            lambda: reduce_metrics(
                parts,
                expected_rows=expected_rows,
                split=split,
                epoch=self.epoch + 1,
                chain_of_row=self.data.chain_of_row,
            )
        )

    def _write_history(self) -> None:
        if self.dist.is_main:
            atomic_write_json(self.files.history, self.history, indent=1)

    def _log_epoch(self, entry: dict[str, Any]) -> None:
        self._write_history()
        if self.dist.is_main:
            log_epoch(entry, self.config.train.epochs)


def read_history(run_dir: str | Path) -> list[dict[str, Any]]:
    """The ``training_history.json`` of a run: one dict per epoch, as in
    :attr:`TrainResult.history` (undefined metrics are None; files written before this
    version may hold NaN, and no ``rmsf_unit``)."""
    return json.loads((Path(run_dir) / HISTORY_FILE).read_text())
