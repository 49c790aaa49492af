"""Which checkpoint files a run writes, when, and the run folder they live in.

``models/latest.pt`` at every epoch end and every ``every_batches`` optimizer steps (what
``--resume`` continues from), ``models/best.pt`` when the monitored metric improved,
``models/epoch_NNN.pt`` every ``every_epochs`` epochs.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from voxelflex.atomic import temporary_names
from voxelflex.errors import ConfigError
from voxelflex.paths import is_url, same_file, within

__all__ = ["HISTORY_FILE", "CheckpointPolicy"]

log = logging.getLogger(__name__)

HISTORY_FILE = "training_history.json"
# Files in <run>/metrics (or <run>) made from the run's model: predict's predictions (their CSV
# metadata, predictions_*.csv.json, and _missing.csv reports included) and evaluate's metrics.
DERIVED_PATTERNS = ("predictions_*", "evaluation_metrics_*", "*_missing.csv")
# voxelflex.atomic's temporary files of what train writes: checkpoints in models/, the history
# and config.yaml in the run folder
_CHECKPOINT_TEMP = temporary_names(r"(latest|best|epoch_\d+)\.pt")
_RUN_TEMP = temporary_names(rf"{re.escape(HISTORY_FILE)}|config\.yaml")


@dataclass(frozen=True)
class CheckpointPolicy:
    """The checkpoint files of one run.

    Attributes
    ----------
    run_dir : Path
        ``<output_dir>/<run_name>``.
    every_epochs : int
        Keep ``epoch_NNN.pt`` every this many epochs (0: never).
    every_batches : int
        Refresh ``latest.pt`` every this many optimizer steps within an epoch (0: never).
    """

    run_dir: Path
    every_epochs: int = 0
    every_batches: int = 0

    @property
    def models_dir(self) -> Path:
        return self.run_dir / "models"

    @property
    def latest(self) -> Path:
        return self.models_dir / "latest.pt"

    @property
    def best(self) -> Path:
        return self.models_dir / "best.pt"

    @property
    def history(self) -> Path:
        return self.run_dir / HISTORY_FILE

    def at_epoch_end(self, epoch: int, improved: bool) -> list[Path]:
        """Files to write after finished epoch ``epoch`` (1-based), ``latest.pt`` last: it is
        what ``--resume`` trusts, so a kill before it repeats the epoch, and one after it
        finds ``best.pt`` and ``epoch_NNN.pt`` already written."""
        paths = [self.best] if improved else []
        if self.every_epochs and epoch % self.every_epochs == 0:
            paths.append(self.models_dir / f"epoch_{epoch:03d}.pt")
        return [*paths, self.latest]

    def due_mid_epoch(self, batch: int, n_batches: int) -> bool:
        """Whether to refresh ``latest.pt`` after ``batch`` (1-based) of ``n_batches``."""
        return bool(self.every_batches) and batch % self.every_batches == 0 and batch < n_batches

    def remove_temporaries(self) -> list[Path]:
        """Delete the temporary files that a write of this run's checkpoints, history or
        ``config.yaml`` left when the run was killed during it; other files stay.

        Returns
        -------
        list of Path
            The files deleted.
        """
        found = [
            p
            for folder, pattern in ((self.models_dir, _CHECKPOINT_TEMP), (self.run_dir, _RUN_TEMP))
            if folder.is_dir()
            for p in sorted(folder.iterdir())
            if pattern.match(p.name) and p.is_file()
        ]
        for path in found:
            path.unlink()
        if found:
            log.warning(
                "removed %d temporary files that an interrupted write left in %s: %s",
                len(found),
                self.run_dir,
                [str(p) for p in found],
            )
        return found

    def derived_outputs(self) -> list[Path]:
        """What commands wrote from this run's model: predictions (with their CSV metadata and
        ``_missing.csv`` reports) and evaluation metrics in ``metrics/`` or the run folder, and
        the ``visualizations/`` folder. They describe the model they came from."""
        found = {
            p
            for folder in (self.run_dir / "metrics", self.run_dir)
            for pattern in DERIVED_PATTERNS
            for p in folder.glob(pattern)
            if p.is_file()
        }
        plots = self.run_dir / "visualizations"
        return [*sorted(found), *([plots] if plots.is_dir() else [])]

    def claim(
        self,
        *,
        overwrite: bool,
        inputs: Mapping[str, str | os.PathLike | None] | None = None,
    ) -> None:
        """Refuse a run folder that already holds a run, or clear it when ``overwrite``.

        A run is its checkpoints and history, and also what was made from its model
        (:meth:`derived_outputs`): with ``overwrite`` those are deleted too, so no later command
        shows an earlier model's predictions, metrics or plots as the new model's.

        Parameters
        ----------
        overwrite : bool
            Delete the earlier run's files.
        inputs : mapping of config key -> path, optional
            The run's inputs (``train.init_from``, ``data.index``, ...); None values are
            ignored. One among the files ``overwrite`` deletes is refused, nothing deleted.

        Raises
        ------
        ConfigError
            Naming the folder and the ways on (``--resume``, another ``--run-name``,
            ``--overwrite``), or the input that ``overwrite`` would delete.
        """
        # latest.pt, what --resume trusts, first: a crash while deleting never leaves a run
        # that resumes without its best.pt
        outputs = sorted(self.models_dir.glob("*.pt"), key=lambda p: (p != self.latest, p))
        if self.history.is_file():
            outputs.append(self.history)
        outputs += self.derived_outputs()
        if not outputs:
            return
        if not overwrite:
            # killed in epoch 1 between best.pt and latest.pt: --resume has nothing to go on
            resume = (
                "pass --resume to continue it"
                if self.latest.is_file()
                else f"it has no models/{self.latest.name} to continue from (it stopped before "
                "its first epoch was saved), so"
            )
            raise ConfigError(
                f"run folder {self.run_dir} already holds a run ({outputs[0].name}, "
                f"{len(outputs)} files); {resume} choose another --run-name, or pass "
                "--overwrite to start over (its checkpoints, history, and the predictions, "
                "metrics and plots made from its model are deleted)"
            )
        # --init-from RUN/models/best.pt into the same RUN: deleted before it was loaded
        for key, source in (inputs or {}).items():
            if source is None or is_url(source):
                continue
            for path in outputs:
                if within(source, path):
                    inside = "" if same_file(source, path) else "in "
                    raise ConfigError(
                        f"{key} {source} is {inside}{path}, which --overwrite deletes with the "
                        f"earlier run in {self.run_dir}: copy it out of that folder and give the "
                        "copy, or choose another --run-name"
                    )
        log.warning(
            "--overwrite: deleting the earlier run's checkpoints, history, predictions, metrics "
            "and plots: %s",
            [str(p) for p in outputs],
        )
        for path in outputs:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
