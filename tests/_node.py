"""``voxelflex`` as a torchrun worker for tests/test_cluster.py, with checkpoint saves recorded.

Every :meth:`Checkpoint.save` appends ``epoch batch path`` to
``$VOXELFLEX_TEST_SAVES/rank<RANK>-pid<PID>.txt``, so the test can tell which ranks wrote
checkpoints. With ``VOXELFLEX_TEST_STOP_AT=EPOCH,BATCH`` the process writes
``$VOXELFLEX_TEST_SAVES/stopped`` after that save and waits to be killed (its peers block in the
next collective), so that the test can kill both nodes mid-epoch.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from voxelflex.cli.main import main
from voxelflex.engine.checkpoint import Checkpoint

_save = Checkpoint.save
_FOLDER = Path(os.environ["VOXELFLEX_TEST_SAVES"])
_STOP_AT = os.environ.get("VOXELFLEX_TEST_STOP_AT")


def _recorded_save(self: Checkpoint, path) -> None:
    _save(self, path)
    name = f"rank{os.environ.get('RANK', '0')}-pid{os.getpid()}.txt"
    with open(_FOLDER / name, "a") as fh:
        fh.write(f"{self.meta.epoch} {self.meta.batch} {path}\n")
    if f"{self.meta.epoch},{self.meta.batch}" == _STOP_AT:
        (_FOLDER / "stopped").touch()
        time.sleep(600)  # killed by the test


Checkpoint.save = _recorded_save
sys.argv = ["voxelflex", *sys.argv[1:]]
main()
