"""The training loop: one engine for every source, architecture, device and world size.

Outputs under ``<output_dir>/<run_name>/``: ``models/best.pt`` (best ``train.monitor``),
``models/latest.pt`` (refreshed every ``train.checkpoint_every_batches`` steps and at each epoch
end: what ``--resume`` continues from), ``models/epoch_NNN.pt`` (every
``train.checkpoint_every_epochs``), ``training_history.json``, ``logs/voxelflex.log`` and
``config.yaml`` (the resolved configuration). Only rank 0 writes.

Reproducibility: weights are initialised from ``loader.seed``, the data order comes from the
sources' epoch plan, and the RNG is re-seeded from (seed, epoch, batch, rank) before every step,
so dropout masks do not depend on how the run was interrupted: a resumed run on the CPU ends
with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from voxelflex.atomic import atomic_write_text
from voxelflex.config import Config, config_to_yaml
from voxelflex.engine.checkpoint import (
    FORMAT_VERSION,
    CheckpointMeta,
    load_checkpoint,
    meta_from_dict,
    meta_to_dict,
    save_checkpoint,
)
from voxelflex.engine.data import TrainingData, open_training_data
from voxelflex.engine.distributed import DistContext
from voxelflex.engine.epoch_metrics import EpochAccumulator, reduce_metrics
from voxelflex.engine.schedule import make_scheduler
from voxelflex.engine.step import forward_batch, weighted_loss
from voxelflex.errors import CheckpointError, ConfigError, TrainingError
from voxelflex.logs import setup_logging
from voxelflex.models import ModelSpec, RMSFModel, build_model, parameter_counts
from voxelflex.sources.batch import Batch

__all__ = ["HISTORY_FILE", "TrainResult", "read_history", "train"]

log = logging.getLogger(__name__)

HISTORY_FILE = "training_history.json"


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` produced.

    Attributes
    ----------
    run_dir : Path
    best_checkpoint, latest_checkpoint : Path
    history : list of dict
        One entry per epoch: ``train`` and ``val`` metrics, ``lr``, ``timing``.
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
        Bad settings, an incompatible ``latest.pt`` on resume, or a non-finite loss (the last
        good checkpoint is kept).
    """
    dist = DistContext.setup(config.train.device)
    try:
        return _Trainer(config, dist).run()
    finally:
        dist.close()


def _precision(choice: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype: None = fp32. Mixed precision only on CUDA."""
    if device.type != "cuda":
        if choice in ("bf16", "fp16"):
            raise ConfigError(
                f"config key 'train.precision': got {choice!r}, but mixed precision needs CUDA "
                f"(device is {device}); use fp32 or auto"
            )
        return None
    if choice == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[choice]


def _step_seed(seed: int, epoch: int, batch: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, batch, rank]).generate_state(1)[0])


_NONE = torch.iinfo(torch.int64).max  # no non-finite loss seen
_CUDA_CHECK_EVERY = 50  # steps between reads of the loss watch on CUDA


class _LossWatch:
    """The first non-finite training loss, tracked on the device.

    Reading it is a host-device sync, so on CUDA the trainer reads it every
    ``_CUDA_CHECK_EVERY`` steps, before every checkpoint and at each epoch end (a bad step may
    be followed by a few more before the run stops; nothing after it is saved); on the CPU,
    where reading is free, after every step.
    """

    def __init__(self, device: torch.device) -> None:
        self.every = 1 if device.type == "cpu" else _CUDA_CHECK_EVERY
        self.batch = torch.full((), _NONE, dtype=torch.int64, device=device)
        self.value = torch.zeros((), dtype=torch.float32, device=device)

    def record(self, loss: torch.Tensor, batch_number: int) -> None:
        """Remember ``loss`` and its 1-based batch number if it is the first non-finite one."""
        loss = loss.detach().float()
        first = ~torch.isfinite(loss) & (self.batch == _NONE)
        self.batch = torch.where(first, batch_number, self.batch)
        self.value = torch.where(first, loss, self.value)


class _Trainer:
    def __init__(self, config: Config, dist: DistContext) -> None:
        self.config = config
        self.dist = dist
        tc = config.train
        if tc.threads:
            torch.set_num_threads(tc.threads)
        self.run_dir = config.run_dir
        self.models_dir = self.run_dir / "models"
        self.latest_path = self.models_dir / "latest.pt"
        self.best_path = self.models_dir / "best.pt"
        # Rank 0 logs everything (and writes the log file); other ranks only warnings and
        # errors (e.g. skipped domains of their part of the plan), tagged with their rank.
        setup_logging(
            self.run_dir if dist.is_main else None,
            config.log_level if dist.is_main or config.log_level == "ERROR" else "WARNING",
            rank=dist.rank if dist.enabled else None,
        )
        if not tc.resume:
            dist.on_main(self._claim_run_dir)
        self.device = dist.device
        self.pin = self.device.type == "cuda"  # pinned host batches: asynchronous copies
        self.autocast = _precision(tc.precision, self.device)
        self.data: TrainingData = open_training_data(config, dist)
        meta = self.data.index.meta
        self.spec = ModelSpec(
            name=config.model.name,
            preset=config.model.preset,
            conditioning=config.model.conditioning,
            features=config.model.features,
            dropout=config.model.dropout,
            log_target=tc.log_target,
        )
        torch.manual_seed(config.loader.seed)  # identical initial weights on every rank
        self.model: RMSFModel = build_model(self.spec, temperature_range=meta.temperature_range)
        self._set_statistics()
        self.model.to(self.device)
        self.net: torch.nn.Module = (
            DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
            if dist.enabled
            else self.model
        )
        self.steps_per_epoch = self.data.train.num_batches(self.data.plan, 0)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay
        )
        self.scheduler = make_scheduler(
            self.optimizer,
            tc.scheduler,
            total_steps=tc.epochs * self.steps_per_epoch,
            warmup_steps=round(tc.warmup_epochs * self.steps_per_epoch),
            mode=tc.monitor_mode,
            patience=tc.plateau_patience,
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast == torch.float16)
        self.epoch = 0
        self.batch = 0
        self.global_step = 0
        self.history: list[dict[str, Any]] = []
        self.best: float | None = None
        self.bad_epochs = 0
        self.partial = EpochAccumulator()
        self.interrupted = False
        self.loss_watch = _LossWatch(self.device)
        if tc.resume:
            self._resume()
        if dist.is_main:
            atomic_write_text(self.run_dir / "config.yaml", config_to_yaml(config))
            counts = parameter_counts(self.model)
            log.info(
                "model %s/%s, conditioning %s: %s parameters (trunk %s, head %s); device %s%s, "
                "%d rank(s); %d train rows, %d batches/epoch per rank",
                self.spec.name,
                self.spec.preset,
                self.spec.conditioning,
                f"{counts['total']:,}",
                f"{counts['trunk']:,}",
                f"{counts['head']:,}",
                self.device,
                f" ({self.autocast})" if self.autocast else " (fp32)",
                dist.world_size,
                self.data.train.sample_count,
                self.steps_per_epoch,
            )

    # ------------------------------------------------------------------ set-up helpers

    def _claim_run_dir(self) -> None:
        """Refuse a run folder that holds a run, or clear it with ``train.overwrite``."""
        outputs = [
            *sorted(self.models_dir.glob("*.pt")),
            *[p for p in (self.run_dir / HISTORY_FILE,) if p.is_file()],
        ]
        if not outputs:
            return
        if not self.config.train.overwrite:
            raise ConfigError(
                f"run folder {self.run_dir} already holds a run ({outputs[0].name}, "
                f"{len(outputs)} files); pass --resume to continue it, choose another "
                "--run-name, or pass --overwrite to start over (its checkpoints and history "
                "are deleted)"
            )
        log.warning("--overwrite: deleting the earlier run's %s", [str(p) for p in outputs])
        for path in outputs:
            path.unlink()

    def _set_statistics(self) -> None:
        y = self.data.target.astype(np.float64)
        if self.spec.log_target:
            if (y <= 0).any():
                raise TrainingError(
                    f"train.log_target needs positive RMSF, but {(y <= 0).sum()} training rows "
                    "are <= 0; set train.log_target=false"
                )
            y = np.log(y)
        f = self.data.features.astype(np.float64)
        f_mean = np.nanmean(f, axis=0) if f.shape[1] else np.zeros(0)
        f_std = np.nanstd(f, axis=0) if f.shape[1] else np.ones(0)
        self.model.set_statistics(
            float(y.mean()),
            float(max(y.std(), 1e-6)),
            torch.as_tensor(f_mean, dtype=torch.float32),
            torch.as_tensor(np.where(f_std > 0, f_std, 1.0), dtype=torch.float32),
        )

    def _meta(self) -> CheckpointMeta:
        meta = self.data.index.meta
        return CheckpointMeta(
            model_name=self.spec.name,
            preset=self.spec.preset,
            conditioning=self.spec.conditioning,
            temperature_range=tuple(float(x) for x in meta.temperature_range),
            frame=meta.frame,
            rmsf_unit=meta.rmsf_unit,
            features=list(self.spec.features),
            feature_mean=self.model.feature_mean.tolist(),
            feature_std=self.model.feature_std.tolist(),
            index_fingerprint=self.data.fingerprint,
            format_version=FORMAT_VERSION,
            epoch=self.epoch,
            batch=self.batch,
            global_step=self.global_step,
            log_target=self.spec.log_target,
        )

    def _plan_key(self) -> dict[str, int]:
        p = self.data.plan
        return {
            "batch_size": p.batch_size,
            "seed": p.seed,
            "num_workers": p.num_workers,
            "world_size": p.world_size,
            "mix_buffer_residues": p.mix_buffer_residues,
        }

    def _resume(self) -> None:
        path = self.latest_path
        if not path.is_file():
            raise CheckpointError(
                f"--resume: {path} does not exist; start without --resume or pick the run with "
                "--output-dir/--run-name"
            )
        payload = load_checkpoint(path)
        meta = meta_from_dict(payload["meta"])
        # Frame and unit first: another frame or unit also changes the fingerprint, and this
        # message says what differs.
        meta.check_data(self.data.index.meta, where=str(self.data.index.path), checkpoint=str(path))
        if meta.index_fingerprint != self.data.fingerprint:
            raise CheckpointError(
                f"--resume: {path} was trained on index fingerprint {meta.index_fingerprint}, "
                f"but {self.data.index.path} has {self.data.fingerprint}; resume with the same "
                "index or start a new run (another --run-name)"
            )
        spec = ModelSpec.from_dict(payload["model_spec"])
        if spec != self.spec:
            raise CheckpointError(
                f"--resume: {path} holds model {spec.to_dict()}, but the config asks for "
                f"{self.spec.to_dict()}; use the checkpoint's model settings or a new run"
            )
        if meta.batch > 0 and payload["plan"] != self._plan_key():
            raise CheckpointError(
                f"--resume: {path} stopped mid-epoch with plan {payload['plan']}, but this run "
                f"has {self._plan_key()}; the epoch cannot continue at batch {meta.batch} with "
                "another batch size, seed, worker or rank count: keep those settings"
            )
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        if self.scheduler is not None and payload["scheduler"] is not None:
            self.scheduler.load_state_dict(payload["scheduler"])
        # A run may resume on other hardware: a CPU/bf16 checkpoint has no fp16 scaler state,
        # and CUDA RNG states only fit the same GPU count (steps re-seed the RNG anyway).
        if payload["scaler"]:
            self.scaler.load_state_dict(payload["scaler"])
        torch.set_rng_state(payload["rng"]["torch"])
        cuda_rng = payload["rng"]["cuda"]
        if torch.cuda.is_available() and len(cuda_rng) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_rng)
        self.epoch, self.batch, self.global_step = meta.epoch, meta.batch, meta.global_step
        self.history = json.loads(payload["history"])
        state = payload["trainer"]
        self.best = state["best"]
        self.bad_epochs = state["bad_epochs"]
        if self.dist.is_main and meta.batch > 0:
            self.partial = EpochAccumulator.merged([payload["partial"]])
        log.info(
            "resumed from %s at epoch %d, batch %d (%d optimizer steps so far)",
            path,
            self.epoch + 1,
            self.batch,
            self.global_step,
        )

    # ------------------------------------------------------------------ checkpoints

    def _payload(self, partial: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "meta": meta_to_dict(self._meta()),
            "model_spec": self.spec.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict(),
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            },
            "plan": self._plan_key(),
            "history": json.dumps(self.history),
            "trainer": {"best": self.best, "bad_epochs": self.bad_epochs},
            "partial": partial,
            "config": self.config.to_dict(),
        }

    def _save(self, paths: list[Path], acc: EpochAccumulator | None = None) -> None:
        """Write a checkpoint of the current state to ``paths`` (collective)."""
        self._check_finite()  # never save weights a non-finite step has touched
        partial = None
        if acc is not None:  # mid-epoch: rank 0 keeps every rank's rows served so far
            parts = self.dist.gather_to_main(acc.state_dict())
            partial = EpochAccumulator.merged(parts).state_dict() if parts else None
        if not self.dist.is_main:
            return
        payload = self._payload(partial)
        for path in paths:
            save_checkpoint(path, payload)

    # ------------------------------------------------------------------ loop

    def run(self) -> TrainResult:
        tc = self.config.train
        stop_reason = "completed"
        previous_handler = None
        if not self.dist.enabled and threading.current_thread() is threading.main_thread():
            # Ctrl-C is honoured between steps so latest.pt is consistent; under torchrun the
            # default applies (ranks would stop at different steps) and the last periodic
            # latest.pt is what --resume uses.
            previous_handler = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            while self.epoch < tc.epochs:
                self._stop_if_interrupted()  # Ctrl-C during validation: stop at the boundary
                entry = self._train_epoch()
                val = self._evaluate()
                entry["val"] = val
                self.history.append(entry)
                improved = self._track(val)
                if self.scheduler is not None and tc.scheduler == "plateau":
                    self.scheduler.step(val[tc.monitor.removeprefix("val_")])
                self.epoch += 1
                self.batch = 0
                self.partial = EpochAccumulator()
                paths = [self.latest_path]
                if improved:
                    paths.append(self.best_path)
                if tc.checkpoint_every_epochs and self.epoch % tc.checkpoint_every_epochs == 0:
                    paths.append(self.models_dir / f"epoch_{self.epoch:03d}.pt")
                self._save(paths)
                self._log_epoch(entry)
                if tc.early_stopping_patience and self.bad_epochs >= tc.early_stopping_patience:
                    stop_reason = "early_stopping"
                    log.info(
                        "early stopping: %s did not improve for %d epochs",
                        tc.monitor,
                        self.bad_epochs,
                    )
                    break
        finally:
            if previous_handler is not None:
                signal.signal(signal.SIGINT, previous_handler)
        return TrainResult(
            run_dir=self.run_dir,
            best_checkpoint=self.best_path,
            latest_checkpoint=self.latest_path,
            history=self.history,
            global_step=self.global_step,
            stop_reason=stop_reason,
        )

    def _on_sigint(self, signum, frame) -> None:
        self.interrupted = True
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C: at once

    def _stop_if_interrupted(self) -> None:
        if not self.interrupted:
            return
        self._save([self.latest_path], self.partial if self.batch else None)
        log.warning(
            "interrupted: saved %s at epoch %d, batch %d; continue with --resume",
            self.latest_path,
            self.epoch + 1,
            self.batch,
        )
        raise KeyboardInterrupt

    def _train_epoch(self) -> dict[str, Any]:
        tc = self.config.train
        data = self.data
        n_batches = data.train.num_batches(data.plan, self.epoch)
        loader = data.train.loader(data.plan, self.epoch, self.batch, pin_memory=self.pin)
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
        it = iter(loader)
        while True:
            t0 = time.perf_counter()
            try:
                host = next(it)
            except StopIteration:
                break
            wait += time.perf_counter() - t0
            self._step(host.to(self.device, non_blocking=True), host, acc)
            self.batch += 1
            samples += int((host.row_id >= 0).sum())
            if self.batch % self.loss_watch.every == 0:
                self._check_finite()
            every = tc.checkpoint_every_batches
            if every and self.batch % every == 0 and self.batch < n_batches:
                self._save([self.latest_path], acc)
            elapsed = time.perf_counter() - t_start
            bar.update(1)
            bar.set_postfix(
                samples_s=f"{samples / max(elapsed, 1e-9):.0f}",
                wait=f"{100 * wait / max(elapsed, 1e-9):.0f}%",
            )
            self._stop_if_interrupted()
        bar.close()
        self._check_finite()
        elapsed = time.perf_counter() - t_start
        metrics = self._epoch_metrics(acc, "train", data.train.sample_count)
        return {
            "epoch": self.epoch + 1,
            "lr": self.optimizer.param_groups[0]["lr"],
            "global_step": self.global_step,
            "train": metrics,
            "timing": {
                "seconds": elapsed,
                "samples_per_s": samples * self.dist.world_size / max(elapsed, 1e-9),
                "data_wait_fraction": wait / max(elapsed, 1e-9),
            },
        }

    def _step(self, batch: Batch, host: Batch, acc: EpochAccumulator) -> None:
        """One optimizer step on ``batch`` (on the device; ``host`` is its CPU copy)."""
        tc = self.config.train
        torch.manual_seed(
            _step_seed(self.config.loader.seed, self.epoch, self.batch, self.dist.rank)
        )
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
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if tc.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), tc.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.scheduler is not None and tc.scheduler == "cosine":
            self.scheduler.step()
        self.global_step += 1
        denom = normalizer if normalizer is not None else weight_sum
        acc.add(
            host,
            self.model.decode_output(raw.detach()),
            loss.detach() * denom,
            float(host.weight.sum()),
        )

    def _check_finite(self) -> None:
        """Raise TrainingError if a step since the start had a non-finite loss (on any rank)."""
        first = int(self.dist.all_reduce(self.loss_watch.batch, "min"))
        if first == _NONE:
            return
        local = int(self.loss_watch.batch) == first
        value = f"{float(self.loss_watch.value)}" if local else "on another rank"
        kept = (
            f"the last good checkpoint {self.latest_path} is kept"
            if self.latest_path.is_file()
            else "no checkpoint had been written yet"
        )
        raise TrainingError(
            f"non-finite training loss ({value}) at epoch {self.epoch + 1}, batch "
            f"{first}: stopped; {kept}. Lower train.lr, check the data for extreme "
            "targets, or use train.precision=fp32"
        )

    @torch.no_grad()
    def _evaluate(self) -> dict[str, Any]:
        tc = self.config.train
        data = self.data
        self.model.eval()
        acc = EpochAccumulator()
        for host in data.val.loader(data.val_plan, 0, pin_memory=self.pin):
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
                parts, expected_rows=expected_rows, split=split, epoch=self.epoch + 1
            )
        )

    def _track(self, val: dict[str, Any]) -> bool:
        """Update best value and patience; True when ``monitor`` improved."""
        tc = self.config.train
        value = val[tc.monitor.removeprefix("val_")]
        if not math.isfinite(value):
            improved = self.best is None
        elif self.best is None:
            improved = True
        else:
            improved = value > self.best if tc.monitor_mode == "max" else value < self.best
        if improved and math.isfinite(value):
            self.best = value
        self.bad_epochs = 0 if improved else self.bad_epochs + 1
        return improved

    def _log_epoch(self, entry: dict[str, Any]) -> None:
        if not self.dist.is_main:
            return
        atomic_write_text(self.run_dir / HISTORY_FILE, json.dumps(self.history, indent=1))
        tr, va, tm = entry["train"], entry["val"], entry["timing"]
        per_t = " ".join(f"{k}:{v:.3f}" for k, v in va["pearson_per_temperature"].items())
        log.info(
            "epoch %d/%d  train loss %.4f r %.3f | val loss %.4f r %.3f rmse %.4f | "
            "val r per T %s | %.1fs, %.0f samples/s, data wait %.0f%%",
            entry["epoch"],
            self.config.train.epochs,
            tr["loss"],
            tr["pearson"],
            va["loss"],
            va["pearson"],
            va["rmse"],
            per_t,
            tm["seconds"],
            tm["samples_per_s"],
            100 * tm["data_wait_fraction"],
        )


def read_history(run_dir: str | Path) -> list[dict[str, Any]]:
    """The ``training_history.json`` of a run."""
    return json.loads((Path(run_dir) / HISTORY_FILE).read_text())
