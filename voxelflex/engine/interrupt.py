"""Ctrl-C between steps: the trainer finishes the current step, saves, then stops."""

from __future__ import annotations

import signal
import threading

__all__ = ["GracefulInterrupt"]


class GracefulInterrupt:
    """Context manager: while active, the first Ctrl-C only sets :attr:`requested`.

    A second Ctrl-C raises at once. Inactive (the default SIGINT behaviour stays) under
    torchrun, where ranks would stop at different steps, and outside the main thread.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.requested = False
        self._previous = None

    def _handler(self, signum, frame) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def __enter__(self) -> GracefulInterrupt:
        if self.enabled:
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
