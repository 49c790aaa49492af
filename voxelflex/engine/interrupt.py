"""Ctrl-C or SIGTERM between steps: the trainer finishes the current step, saves, then stops."""

from __future__ import annotations

import signal
import threading

__all__ = ["GracefulInterrupt"]

# SIGTERM is what SLURM (preemption, ``scancel``, the time limit) and Kubernetes (pod deletion)
# send before SIGKILL: handled like Ctrl-C, so the steps since the last periodic save survive.
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class GracefulInterrupt:
    """Context manager: while active, the first Ctrl-C or SIGTERM only sets :attr:`requested`.

    A second one acts at once (Ctrl-C raises :class:`KeyboardInterrupt`, SIGTERM ends the
    process). Inactive (the default behaviour stays) under torchrun, where ranks would stop at
    different steps, and outside the main thread.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.requested = False
        self._previous: dict[int, object] = {}

    def _handler(self, signum, frame) -> None:
        self.requested = True
        # DataLoader workers forked while this is active inherit this handler, so a signal sent
        # to the whole process group (a terminal's Ctrl-C, SLURM) lets them serve the step out.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    def __enter__(self) -> GracefulInterrupt:
        if self.enabled:
            self._previous = {s: signal.signal(s, self._handler) for s in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, previous in self._previous.items():
            signal.signal(s, previous)
