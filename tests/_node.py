"""``voxelflex`` as a torchrun worker for tests/test_cluster.py, with checkpoint saves recorded.

Every :meth:`Checkpoint.save` appends ``epoch batch path`` to
``$VOXELFLEX_TEST_SAVES/rank<RANK>-pid<PID>.txt``, so the test can tell which ranks wrote
checkpoints. With ``VOXELFLEX_TEST_STOP_AT=EPOCH,BATCH`` the process writes
``$VOXELFLEX_TEST_SAVES/stopped`` after that save and waits to be killed (its peers block in the
next collective), so that the test can kill both nodes mid-epoch. With
``VOXELFLEX_TEST_TERM_AT=EPOCH,BATCH`` rank 1 sends itself SIGTERM twice (SLURM's, and the one
torchrun's agent passes on) at that step boundary, before the ranks vote on stopping.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from voxelflex.cli.main import main
from voxelflex.engine.checkpoint import Checkpoint
from voxelflex.engine.trainer import _Trainer

_save = Checkpoint.save
_stop_if_interrupted = _Trainer._stop_if_interrupted
_FOLDER = Path(os.environ["VOXELFLEX_TEST_SAVES"])
_STOP_AT = os.environ.get("VOXELFLEX_TEST_STOP_AT")
_TERM_AT = os.environ.get("VOXELFLEX_TEST_TERM_AT")


def _recorded_save(self: Checkpoint, path) -> None:
    _save(self, path)
    name = f"rank{os.environ.get('RANK', '0')}-pid{os.getpid()}.txt"
    with open(_FOLDER / name, "a") as fh:
        fh.write(f"{self.meta.epoch} {self.meta.batch} {path}\n")
    if f"{self.meta.epoch},{self.meta.batch}" == _STOP_AT:
        (_FOLDER / "stopped").touch()
        time.sleep(600)  # killed by the test


def _terminated(self: _Trainer, **kwargs) -> None:
    if self.dist.rank == 1 and f"{self.epoch},{self.batch}" == _TERM_AT:
        for _ in range(2):
            signal.raise_signal(signal.SIGTERM)
    _stop_if_interrupted(self, **kwargs)


Checkpoint.save = _recorded_save
_Trainer._stop_if_interrupted = _terminated
sys.argv = ["voxelflex", *sys.argv[1:]]
main()
