"""Ctrl-C or SIGTERM between steps: the trainer finishes the current step, saves, then stops.

Under torchrun every rank must stop at the same optimizer step (the save is a collective, and a
rank that stopped alone would leave the others waiting in the next gradient all-reduce), so the
ranks vote (:class:`StopVote`): one signalled rank stops them all.
"""

from __future__ import annotations

import signal
import threading

import torch

from voxelflex.engine.distributed import DistContext

__all__ = ["GracefulInterrupt", "StopVote"]

# SIGTERM is what SLURM (preemption, ``scancel``, the time limit) and Kubernetes (pod deletion)
# send before SIGKILL: handled like Ctrl-C, so the steps since the last periodic save survive.
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class GracefulInterrupt:
    """Context manager: while active, the first Ctrl-C or SIGTERM only sets :attr:`requested`.

    In a single process a second one acts at once (Ctrl-C raises :class:`KeyboardInterrupt`,
    SIGTERM ends the process). Under torchrun (``distributed``) later ones are ignored too:
    SLURM signals every process of the job step and torchrun's agent passes its own SIGTERM on
    to its workers, so each rank gets two at once, and the agent's SIGKILL after its shutdown
    timeout (30 s) is the hard stop. Inactive outside the main thread, and for a signal the
    process was started ignoring (``cmd &`` in a script ignores SIGINT, so that Ctrl-C on the
    script leaves its background jobs running): that one stays ignored.
    """

    def __init__(self, *, distributed: bool) -> None:
        self.enabled = threading.current_thread() is threading.main_thread()
        self.distributed = distributed
        self.requested = False
        self._previous: dict[int, object] = {}

    def _handler(self, signum, frame) -> None:
        self.requested = True
        if self.distributed:
            return
        # DataLoader workers forked while this is active inherit this handler, so a signal sent
        # to the whole process group (a terminal's Ctrl-C, SLURM) lets them serve the step out.
        for s, second in (
            (signal.SIGINT, signal.default_int_handler),
            (signal.SIGTERM, signal.SIG_DFL),
        ):
            if s in self._previous:
                signal.signal(s, second)

    def __enter__(self) -> GracefulInterrupt:
        if self.enabled:
            self._previous = {
                s: signal.signal(s, self._handler)
                for s in SIGNALS
                if signal.getsignal(s) is not signal.SIG_IGN
            }
        return self

    def __exit__(self, *exc) -> None:
        for s, previous in self._previous.items():
            signal.signal(s, previous)


class StopVote:
    """Whether any rank asked to stop, answered alike on every rank (a collective).

    Every call all-reduces this rank's request. The answer is the previous call's vote (or, with
    ``now``, also this call's): reading this call's vote at once would be a host-device sync at
    every optimizer step on CUDA, where the trainer otherwise syncs only every 50 steps; the
    previous vote was copied to pinned host memory asynchronously and is ready by then. So a
    signal stops every rank one or two optimizer steps later (well inside the 30 s that SLURM
    and torchrun give before SIGKILL), at the same step on each, as the save needs. A single
    process answers its own request at once.
    """

    def __init__(self, dist: DistContext) -> None:
        self.dist = dist
        cuda = dist.device.type == "cuda"
        self._flag = torch.zeros(1, dtype=torch.int32, device=dist.device)
        self._host = torch.zeros(1, dtype=torch.int32, pin_memory=cuda and dist.enabled)
        self._copied = torch.cuda.Event() if cuda and dist.enabled else None
        self._pending = False  # a vote cast, not read yet

    def __call__(self, requested: bool, *, now: bool = False) -> bool:
        """Whether to stop here (every rank calls this at the same steps).

        Parameters
        ----------
        requested : bool
            Whether this rank was signalled.
        now : bool
            Also count this call's vote (a host-device sync: at epoch boundaries).
        """
        if not self.dist.enabled:
            return requested
        stop = self._pending and self._read()
        self._flag.fill_(int(requested))  # a kernel, not a host-to-device copy that would sync
        self._host.copy_(self.dist.all_reduce(self._flag), non_blocking=True)
        if self._copied is not None:
            self._copied.record()
        self._pending = True
        return stop or (now and self._read())

    def _read(self) -> bool:
        if self._copied is not None:
            self._copied.synchronize()
        self._pending = False
        return bool(self._host.item())
