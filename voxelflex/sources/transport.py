"""How batches travel: DataLoader workers serve the epoch plan, the main process gets Batches.

A rank's workers (:class:`WorkerPool`) live from epoch to epoch: the source keeps them, and each
epoch the main process publishes the epoch number and start batch in shared memory; each worker
works out its own stream of the :class:`~voxelflex.sources.plan.EpochPlan`
(:func:`~voxelflex.sources.plan.stream_plan`) and serves it
(:class:`~voxelflex.sources.windows.StreamServer`): it gathers each batch's packed rows into a
slot of a shared-memory ring and sends the main process, for every :data:`GROUP` batches, one
message of a few numbers (slot, batch, row count, unreadable residues); the main process copies
the rows out, builds the per-sample arrays from its own copy of the plan, and puts the batches
back in the rank's order (streams round-robin). Rows out of a slot are counted in shared memory,
and a worker never writes a slot before its rows were copied out. With 0 workers the stream is
served in this process, without a DataLoader. Nothing here depends on where the voxels come from
(see :mod:`voxelflex.sources.base`).
"""

from __future__ import annotations

import itertools
import logging
import math
import mmap
import multiprocessing
import pickle
import signal
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from voxelflex.errors import SourceError, VoxelflexError
from voxelflex.frame import PACKED_BYTES
from voxelflex.sources.batch import Batch
from voxelflex.sources.plan import EpochPlan, PlanConfig, stream_plan, worker_stream
from voxelflex.sources.table import SplitTable
from voxelflex.sources.windows import (
    HEADROOM,
    StreamSamples,
    StreamServer,
    WindowBuffers,
    batch_features,
)

if TYPE_CHECKING:  # annotations only: base imports this module
    from voxelflex.sources.base import DomainReader

__all__ = ["GROUP", "BatchLoader", "OnError", "SharedState", "WorkerPool"]

log = logging.getLogger(__name__)

OnError = str  # "raise" or "skip": voxelflex.sources.base.ON_ERROR

# Batches per worker message. A DataLoader message costs ≈0.3 ms on each side (queue, pipe,
# feeder thread) on 2 busy cores: a fixed cost per batch that grouping divides by GROUP.
GROUP = 4
_PREFETCH = 2  # messages each worker may run ahead (DataLoader prefetch_factor)
# Ring slots per worker: one message being read out, one being written. At least _PREFETCH
# messages' worth: a worker that starts late may serve an epoch's leftover requests after the
# next epoch was published, and must do so without waiting for a slot (the main process is not
# reading them), or the DataLoader would wait for it forever.
_SLOTS = _PREFETCH * GROUP
_WAIT_S = 0.0002  # a worker polls this often for a free slot
# The shared control words: the epoch's generation (bumped when an epoch is published, ends or
# is abandoned), its number, its start batch and the batches every stream yields.
_GEN, _EPOCH, _START, _PER_STREAM = range(4)


class WorkerPool:
    """A rank's DataLoader workers and their shared memory, kept from epoch to epoch.

    Starting a worker (fork, DataLoader set-up, a new process touching its memory for the first
    time) and making the ring cost ≈0.05-0.1 s on 2 cores, paid once instead of every epoch.

    Parameters
    ----------
    table : SplitTable
        The source's split table (workers inherit it and plan their own streams from it).
    config : PlanConfig
        The plan settings every epoch of this pool uses (``num_workers`` ≥ 1).
    reader : DomainReader
        Copied into each worker; its open files stay open across epochs.
    on_error : {"raise", "skip"}
    rows : int
        The most packed rows a batch of the first epoch holds.
    """

    def __init__(
        self,
        table: SplitTable,
        config: PlanConfig,
        reader: DomainReader,
        on_error: OnError,
        rows: int,
    ) -> None:
        if "fork" not in multiprocessing.get_all_start_methods():
            raise SourceError(
                "DataLoader workers need the 'fork' start method (Linux, macOS), which this "
                "platform lacks: set loader.num_workers to 0 (--num-workers 0)"
            )
        self.table = table
        self.config = config
        self.cap = math.ceil(rows * HEADROOM)  # a batch that does not fit: a new pool
        self.shared = SharedState(config.num_workers, self.cap)
        self.dataset = _PlanDataset(table, config, reader, on_error, self.shared)
        self.dataloader = DataLoader(
            self.dataset,
            batch_size=None,
            num_workers=config.num_workers,
            collate_fn=_as_is,
            prefetch_factor=_PREFETCH,
            persistent_workers=True,
            # forked workers inherit the shared mapping, the split table and the first plan;
            # pinned because Python 3.14 made forkserver Linux's default
            multiprocessing_context="fork",
            worker_init_fn=_keep_sigterm_handler,
        )
        self.closed = False

    def fits(self, table: SplitTable, config: PlanConfig, rows: int) -> bool:
        """Whether this open pool serves epochs of ``table`` and ``config`` whose batches hold
        ``rows`` rows."""
        return (
            not self.closed and table is self.table and config == self.config and rows <= self.cap
        )

    def publish(self, plan: EpochPlan, start_batch: int) -> int:
        """Tells the workers the next epoch to serve; returns its generation."""
        c = self.shared.control
        c[_EPOCH], c[_START], c[_PER_STREAM] = plan.epoch, start_batch, plan.batches_per_stream
        self.shared.consumed[:] = 0
        c[_GEN] += 1  # last: a worker still waiting for a slot of the old epoch gives up
        return int(c[_GEN])

    def messages(self) -> Iterator[bytes]:
        """The workers' messages for the published epoch (the workers start on the first call).

        Raises
        ------
        SourceError
            The pool was closed: its source ended its workers or replaced it.
        """
        if self.closed:
            raise SourceError(
                "this loader's workers were ended (the source was closed, an epoch failed, or a "
                "loader with other settings replaced them): make a new loader"
            )
        return iter(self.dataloader)

    def start(self, plan: EpochPlan) -> Iterator[bytes]:
        """:meth:`messages` of the published epoch ``plan``; workers started by this call (the
        pool's first epoch) are forked holding ``plan`` and skip planning their streams."""
        self.dataset.inherited = plan
        try:
            return self.messages()
        finally:
            self.dataset.inherited = None  # the main process's reference; workers keep theirs

    def is_current(self, generation: int) -> bool:
        return int(self.shared.control[_GEN]) == generation

    def release(self, generation: int) -> None:
        """Epoch ``generation`` is over or abandoned: a worker waiting for a slot of it stops."""
        if self.is_current(generation):
            self.shared.control[_GEN] += 1

    def close(self) -> None:
        """Ends the workers now (otherwise they end when the pool is garbage collected); a
        closed pool serves no more epochs."""
        self.closed = True
        self.shared.control[_GEN] += 1
        iterator = self.dataloader._iterator  # the persistent workers' iterator, if started
        if iterator is not None:
            iterator._shutdown_workers()  # what its __del__ would do, without waiting for GC
            self.dataloader._iterator = None


class SharedState:
    """What a pool's processes share: one anonymous shared mapping, inherited by forked workers.

    ``MAP_SHARED | MAP_ANONYMOUS`` is made in microseconds (a shared-memory tensor of the ring's
    12 MB took 10-12 ms, a copy included, before the workers could start), its pages appear as
    they are first written, it is not counted against ``/dev/shm`` (64 MB in a default
    container, where a ring used to fall back to the pipe) and it is gone with the last process
    that maps it.

    Parameters
    ----------
    num_workers : int
    cap : int
        Rows a ring slot holds.

    Attributes
    ----------
    control : numpy.ndarray of int64, shape (4,)
        The control words (generation, epoch, start batch, batches per stream).
    consumed : numpy.ndarray of int64, shape (W,)
        Batches the main process has copied out of each worker's slots this epoch.
    ring : numpy.ndarray of uint8, shape (W, slots, cap, 5789)
        The workers' batch slots (packed rows).
    """

    def __init__(self, num_workers: int, cap: int) -> None:
        head = -(-8 * (4 + num_workers) // mmap.PAGESIZE) * mmap.PAGESIZE  # the ring page-aligned
        shape = (num_workers, _SLOTS, cap, PACKED_BYTES)
        try:
            self._map = mmap.mmap(-1, head + math.prod(shape), flags=mmap.MAP_SHARED)
        except OSError as exc:
            raise SourceError(
                f"no memory for the workers' batch ring ({math.prod(shape) / 1e6:.0f} MB: "
                f"{num_workers} workers × {_SLOTS} slots × {cap} rows): {exc}; use fewer "
                "workers or a smaller batch size"
            ) from exc
        self.control = np.frombuffer(self._map, np.int64, 4)
        self.consumed = np.frombuffer(self._map, np.int64, num_workers, offset=32)
        self.ring = np.frombuffer(self._map, np.uint8, math.prod(shape), head).reshape(shape)


def _keep_sigterm_handler(_worker_id: int) -> None:
    """Put back the SIGTERM handler a worker inherited from the main process, if Python's.

    torch's worker setup replaces it with one that ends the worker on a SIGTERM from any other
    process than the main one. SLURM signals every process of a job step, so during training
    (:class:`~voxelflex.engine.interrupt.GracefulInterrupt`) the workers died and the main
    process failed on its next batch instead of finishing the step and saving ``latest.pt``.
    """
    handler = signal.getsignal(signal.SIGTERM)
    if callable(handler):
        signal.signal(signal.SIGTERM, handler)


def _as_is(arrays: tuple) -> tuple:
    """Collate function that leaves the workers' messages alone."""
    return arrays


class BatchLoader:
    """Yields the rank's :class:`Batch` objects of one epoch in plan order.

    With workers, they send one message per :data:`GROUP` of their batches, rows staying in
    their ring slots; the DataLoader takes messages from the workers round-robin, so a message
    from every worker still serving makes a round, whose batches are put back in the rank's
    order (stream after stream, batch after batch). On 2 cores a ring moved ≈5 k batches/s
    against ≈1.5 k/s for rows pickled through the pipe and ≈0.3 k/s for torch tensors (one
    shared-memory segment and file-descriptor handshake per tensor). A pool serves one epoch at
    a time: starting another epoch of the same source ends this one's iteration with an error.

    Parameters
    ----------
    plan : EpochPlan
    reader : DomainReader or None
        Reads the stream with 0 workers (None with a pool: its workers have their own).
    start_batch : int
        Resume point within the epoch.
    on_error : {"raise", "skip"}
    pad_temperature : float
        A finite temperature (K) for the weight-0 padding rows.
    pool : WorkerPool or None
        The rank's workers; None: served in this process.
    buffers : WindowBuffers
        Mixing-window buffers of this process (0 workers), kept by the source across epochs.
    pin_memory : bool
        Pin each batch (asynchronous host-to-device copies).

    Attributes
    ----------
    skipped : dict of int -> str
        Under ``on_error="skip"``: each residue served with weight 0 because it could not be
        read, keyed by the ``row_id`` of its first sample, with the reason.
    """

    def __init__(
        self,
        plan: EpochPlan,
        reader: DomainReader | None,
        *,
        start_batch: int,
        on_error: OnError,
        pad_temperature: float,
        pool: WorkerPool | None,
        buffers: WindowBuffers,
        pin_memory: bool = False,
    ) -> None:
        self.assignment = plan.worker_streams(start_batch)
        self.plan = plan
        self.reader = reader
        self.start_batch = start_batch
        self.on_error = on_error
        self.pool = pool
        self.buffers = buffers
        self.pin_memory = pin_memory
        self.samples = [StreamSamples(s, pad_temperature) for s in plan.streams]
        self.skipped: dict[int, str] = {}
        empty = sum(s.table.n_domains == 0 for s in plan.streams)
        if empty:
            log.warning(
                "%d of %d streams on rank %d have no domains (%d streams in all: ranks × workers); "
                "they yield weight-0 padding batches only",
                empty,
                len(plan.streams),
                plan.config.rank,
                plan.config.n_streams,
            )

    def __len__(self) -> int:
        return self.plan.num_batches - self.start_batch

    def __iter__(self) -> Iterator[Batch]:
        try:
            batches = self._in_process() if self.pool is None else self._from_workers(self.pool)
            for batch in batches:
                yield batch.pin_memory() if self.pin_memory else batch
        except VoxelflexError as exc:
            raise _without_worker_traceback(exc) from None

    def _in_process(self) -> Iterator[Batch]:
        ((stream, first),) = self.assignment
        server = StreamServer(self.plan.streams[stream], self.reader, self.on_error, self.buffers)
        for b, packed, reasons in server.rows(first, self.plan.batches_per_stream):
            yield self.to_batch((stream, b, packed, reasons))

    def _from_workers(self, pool: WorkerPool) -> Iterator[Batch]:
        generation = pool.publish(self.plan, self.start_batch)
        try:
            yield from self.from_messages(pool.start(self.plan), generation)
        except (Exception, KeyboardInterrupt):
            if pool.is_current(generation):  # not when a newer epoch superseded this one
                pool.close()  # a worker failed or was interrupted: the next epoch starts new ones
            raise
        finally:
            pool.release(generation)

    def message_counts(self) -> list[int]:
        """Messages each worker sends (:data:`GROUP` batches each, the last one fewer)."""
        total = self.plan.batches_per_stream
        return [-(-(total - first) // GROUP) for _, first in self.assignment]

    def from_messages(self, messages: Iterable[bytes], generation: int) -> Iterator[Batch]:
        """Workers' messages of epoch ``generation``, taken round-robin as a DataLoader does,
        → batches in plan order."""
        it = iter(messages)
        counts = self.message_counts()
        for rnd in itertools.count():
            workers = [j for j, n in enumerate(counts) if n > rnd]
            if not workers:
                return
            self._check_current(generation)
            group = []
            for j in workers:
                gen, worker, stream, items = pickle.loads(next(it))
                if (gen, worker) != (generation, j):
                    raise SourceError(
                        f"worker {worker} sent round {rnd} of epoch generation {gen} where "
                        f"worker {j}'s of generation {generation} was due"
                    )
                group.append((worker, stream, items))
            for i in range(GROUP):
                for worker, stream, items in group:
                    if i < len(items):
                        self._check_current(generation)
                        yield self.to_batch((stream, *items[i]), worker)

    def _check_current(self, generation: int) -> None:
        """Raise unless the pool still serves epoch ``generation`` (its slots would be
        another epoch's rows)."""
        if not self.pool.is_current(generation):
            raise SourceError(
                "another epoch of this source started while this one was read: a source serves "
                "one epoch at a time (finish or drop one loader's iteration before the next)"
            )

    def to_batch(self, item: tuple, worker: int = 0) -> Batch:
        """``(stream, b, rows, reasons)`` → :class:`Batch` (in the main process).

        ``rows`` is the packed rows, or ``(slot, n)`` of ``worker``'s ring: those rows are
        copied out at once and counted as read, so the worker may reuse the slot. The
        per-sample arrays come from this process's copy of the plan; residues the worker could
        not read are added to :attr:`skipped` (first row_id → reason).
        """
        stream, b, rows, reasons = item
        if isinstance(rows, tuple):
            slot, n = rows
            rows = self.pool.shared.ring[worker, slot, :n].copy()
            self.pool.shared.consumed[worker] += 1
        mask = None
        if reasons:
            mask = np.zeros(len(rows), dtype=bool)
            mask[list(reasons)] = True
        plan = self.plan.streams[stream]
        samples = self.samples[stream].batch(b, mask)
        if reasons:
            residue_index, row_id = samples[0], samples[4]
            first = np.flatnonzero(np.r_[True, residue_index[1:] != residue_index[:-1]])
            for i, reason in reasons.items():
                self.skipped[int(row_id[first[i]])] = reason
        features = batch_features(plan, b, len(rows))
        return Batch(
            torch.from_numpy(rows),
            *(torch.from_numpy(a) for a in samples),
            features=None if features is None else torch.from_numpy(features),
        )


def _without_worker_traceback(exc: VoxelflexError) -> VoxelflexError:
    """The error a DataLoader worker raised, without the worker traceback torch puts in its text.

    torch re-raises a worker's exception as ``type(exc)("Caught ... Original Traceback ...")``;
    users should see the one-line message that names the file, domain and fix.
    """
    text = str(exc)
    if "Original Traceback" not in text:
        return exc
    last = text.rstrip().splitlines()[-1]
    prefix = f"{type(exc).__module__}.{type(exc).__qualname__}: "
    return type(exc)(last.removeprefix(prefix))


class _PlanDataset(IterableDataset):
    """What each worker runs: its stream of the epoch the main process last published."""

    def __init__(
        self,
        table: SplitTable,
        config: PlanConfig,
        reader: DomainReader,
        on_error: OnError,
        shared: SharedState,
    ) -> None:
        self.table = table
        self.config = config
        self.reader = reader
        self.on_error = on_error
        self.shared = shared
        self.buffers = WindowBuffers()  # the worker's, kept across epochs
        # The plan of the epoch the workers start with (set while they are forked): a worker
        # uses its stream instead of planning it again (≈12-20 ms before its first batch).
        self.inherited: EpochPlan | None = None

    def __iter__(self) -> Iterator[bytes]:
        # The epoch is read here, not on the first next(): torch makes a worker's iterator when
        # an epoch's resume reaches the worker, so it belongs to that epoch even when requests
        # left over from the epoch before are served first (by the old iterator).
        worker = get_worker_info().id
        generation, epoch, start, total = self.shared.control.tolist()
        stream, first = worker_stream(worker, self.config.streams_per_rank, start)
        inherited, self.inherited = self.inherited, None  # valid for the first epoch only
        if inherited is not None and inherited.epoch != epoch:
            inherited = None
        items = self._items(worker, generation, epoch, stream, first, total, inherited)
        return _messages(items, (generation, worker, stream))

    def _items(
        self,
        worker: int,
        generation: int,
        epoch: int,
        stream: int,
        first: int,
        total: int,
        inherited: EpochPlan | None,
    ) -> Iterator[tuple]:
        """The worker's batches as ``(b, (slot, rows), skipped)``. Planning happens on the first
        ``next()``: an error raised in ``__iter__`` would kill a kept worker (torch makes its
        iterator outside the code that sends errors to the main process)."""
        if inherited is not None:
            plan = inherited.streams[stream]
        else:
            plan = stream_plan(self.table, self.config, epoch, stream)
        server = StreamServer(plan, self.reader, self.on_error, self.buffers)
        slots = _WaitingSlots(self.shared, worker, generation)
        for i, (b, packed, skipped) in enumerate(server.rows(first, total, slots)):
            yield b, (i % _SLOTS, len(packed)), skipped


def _messages(items: Iterator[tuple], head: tuple[int, int, int]) -> Iterator[bytes]:
    """A worker's messages: ``head`` (generation, worker, stream) and :data:`GROUP` items."""
    try:
        while group := list(itertools.islice(items, GROUP)):
            # Pickled here, in the worker's own thread: the queue then moves one small bytes.
            yield pickle.dumps((*head, group), protocol=pickle.HIGHEST_PROTOCOL)
    except _Superseded:
        return  # the main process moved on; the DataLoader drops what is left


class _Superseded(Exception):
    """The epoch a worker waits to write a slot for is over or was abandoned."""


class _WaitingSlots:
    """A worker's ring slots, handed out in turn; slot ``i % len`` for its ``i``-th batch only
    once the main process has copied out the batch that used it before."""

    def __init__(self, shared: SharedState, worker: int, generation: int) -> None:
        self.slots = shared.ring[worker]
        self.consumed = shared.consumed
        self.control = shared.control
        self.worker = worker
        self.generation = generation

    def __len__(self) -> int:
        return len(self.slots)

    def __getitem__(self, i: int) -> np.ndarray:
        while self.consumed[self.worker] <= i - len(self.slots):
            if self.control[_GEN] != self.generation:
                raise _Superseded
            time.sleep(_WAIT_S)
        return self.slots[i % len(self.slots)]
