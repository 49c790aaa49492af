"""The epoch plan: which worker serves which residues, in which batches, in which order.

Computed from a :class:`~voxelflex.sources.table.SplitTable` alone, so every source (HDF5,
shards) serves bit-identical batches for the same index, seed and epoch: the main process plans
the rank's streams (:func:`make_plan`), and each worker, which lives across epochs, plans its own
stream the same way (:func:`stream_plan`).

* The split's domains are permuted with ``(seed, epoch)`` (index order when ``shuffle`` is off)
  and dealt to ``world_size × max(1, num_workers)`` streams, each to the stream with the fewest
  samples so far. Stream ``rank · W + w`` is served by DataLoader worker ``w`` of rank ``rank``.
* A stream's domains are grouped into mixing windows of at least ``mix_buffer_residues``
  residues (whole domains, so each domain is read once per epoch); residues are shuffled within
  each window with a generator seeded by ``(seed, epoch, stream)``. A worker holds only the
  windows its current batch spans, so windows are cut the same way when ``shuffle`` is off.
* Batches take whole residues (all their temperature rows) in that order, up to ``batch_size``
  samples. Every stream is padded with one-row, weight-0 batches to the longest stream's count,
  so all ranks run the same number of steps and no row is dropped.
* A DataLoader with ``batch_size=None`` takes batches from its workers round-robin, so batch
  ``i`` of a rank is batch ``i // W`` of stream ``i % W``. Resuming at batch ``k`` rotates the
  streams by ``k % W`` across workers and starts each at its first unserved batch.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from voxelflex.errors import ConfigError, SourceError
from voxelflex.sources.table import SplitTable, concat_ranges

__all__ = ["EpochPlan", "PlanConfig", "StreamPlan", "make_plan", "stream_plan", "worker_stream"]


@dataclass(frozen=True)
class PlanConfig:
    """How an epoch is cut into batches.

    Attributes
    ----------
    batch_size : int
        Maximum samples (residue × temperature rows) per batch.
    seed : int
        Base seed; the epoch number is mixed in.
    num_workers : int
        DataLoader worker processes per rank (0: read in the main process).
    world_size, rank : int
        Data-parallel ranks and this process's rank.
    shuffle : bool
        Permute domains and mix residues (training); off: index order.
    mix_buffer_residues : int
        Minimum residues per mixing window.
    """

    batch_size: int = 256
    seed: int = 0
    num_workers: int = 0
    world_size: int = 1
    rank: int = 0
    shuffle: bool = True
    mix_buffer_residues: int = 2048

    def __post_init__(self) -> None:
        for name, low in (
            ("batch_size", 1),
            ("seed", 0),
            ("num_workers", 0),
            ("world_size", 1),
            ("mix_buffer_residues", 1),
        ):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value < low:
                raise ConfigError(f"PlanConfig.{name} must be an integer ≥ {low}, got {value!r}")
        if not 0 <= self.rank < self.world_size:
            raise ConfigError(
                f"PlanConfig.rank must be in [0, world_size={self.world_size}), got {self.rank}"
            )

    @property
    def streams_per_rank(self) -> int:
        """Streams one rank serves: one per worker, or one in the main process."""
        return max(1, self.num_workers)

    @property
    def n_streams(self) -> int:
        return self.world_size * self.streams_per_rank


@dataclass(frozen=True)
class StreamPlan:
    """What one worker serves in one epoch.

    Attributes
    ----------
    table : SplitTable
        This stream's domains, in reading order (its only metadata).
    order : numpy.ndarray of int64, shape (R,)
        Residue positions in ``table``, in serving order.
    window_offsets : numpy.ndarray of int64, shape (n_windows + 1,)
        Mixing window ``w`` holds domains ``window_offsets[w]:window_offsets[w + 1]``.
    batch_offsets : numpy.ndarray of int64, shape (n_batches + 1,)
        Batch ``b`` serves residues ``order[batch_offsets[b]:batch_offsets[b + 1]]``.
    """

    table: SplitTable
    order: np.ndarray
    window_offsets: np.ndarray
    batch_offsets: np.ndarray

    @property
    def n_batches(self) -> int:
        """Batches with data (padding comes on top)."""
        return len(self.batch_offsets) - 1

    @property
    def window_res_offsets(self) -> np.ndarray:
        """Residue offsets of the mixing windows, int64 ``(n_windows + 1,)``."""
        return self.table.domain_res_offsets[self.window_offsets]


@dataclass(frozen=True)
class EpochPlan:
    """One rank's epoch: its streams and the padded batch count shared by all ranks.

    Attributes
    ----------
    config : PlanConfig
    epoch : int
    streams : tuple of StreamPlan
        This rank's streams; stream ``w`` is served by worker ``w`` when not resuming.
    batches_per_stream : int
        Batches every stream of every rank yields, padding included.
    data_batches : tuple of int
        Batches with data of every stream of every rank (stream ``rank · W + w``), padding
        excluded: the steps every rank takes (:meth:`optimizer_steps`).
    """

    config: PlanConfig
    epoch: int
    streams: tuple[StreamPlan, ...]
    batches_per_stream: int
    data_batches: tuple[int, ...]

    @property
    def num_batches(self) -> int:
        """Batches this rank yields in the epoch (identical on every rank)."""
        return self.batches_per_stream * len(self.streams)

    def optimizer_steps(self, grad_accumulation: int = 1) -> int:
        """Optimizer steps of the epoch: groups of ``grad_accumulation`` consecutive batches
        that hold data on some rank (a group of padding only takes no step; the trainer's
        rule). The same on every rank.

        Parameters
        ----------
        grad_accumulation : int
            Batches per optimizer step.
        """
        n = self.num_batches
        if n == 0:
            return 0
        per_rank = self.config.streams_per_rank
        i = np.arange(n)
        # batch i of a rank is batch i // W of its stream i % W (round-robin over workers)
        held = np.asarray(self.data_batches).reshape(self.config.world_size, per_rank)
        data = ((i // per_rank)[None, :] < held[:, i % per_rank]).any(axis=0)
        return int((np.add.reduceat(data, np.arange(0, n, grad_accumulation)) > 0).sum())

    def worker_streams(self, start_batch: int = 0) -> list[tuple[int, int]]:
        """For each worker, ``(stream, first local batch)`` when resuming at ``start_batch``
        (:func:`worker_stream`)."""
        if not 0 <= start_batch <= self.num_batches:
            raise SourceError(
                f"start_batch {start_batch} is outside this epoch's 0..{self.num_batches} batches"
            )
        return [worker_stream(j, len(self.streams), start_batch) for j in range(len(self.streams))]

    @property
    def max_batch_residues(self) -> int:
        """The most residues (packed rows) in one batch of any stream (1 for padding only)."""
        return max(int(np.diff(s.batch_offsets).max(initial=1)) for s in self.streams)


def worker_stream(worker: int, n_streams: int, start_batch: int) -> tuple[int, int]:
    """``(stream, first local batch)`` of ``worker`` when the rank resumes at ``start_batch``.

    Worker ``j`` serves stream ``(j + start_batch) % W`` so that the loader's round-robin,
    which starts at worker 0, yields rank batches ``start_batch, start_batch + 1, ...``.
    """
    s = (worker + start_batch) % n_streams
    return s, (start_batch - s + n_streams - 1) // n_streams


def _pack_batches(counts: np.ndarray, batch_size: int) -> np.ndarray:
    """Greedy residue packing: offsets ``(n_batches + 1,)`` into ``counts``."""
    n = len(counts)
    if n == 0:
        return np.zeros(1, dtype=np.int64)
    if counts.max() > batch_size:
        raise ConfigError(
            f"batch_size {batch_size} is smaller than a residue's {int(counts.max())} "
            "temperature rows; a residue is never split across batches: raise the batch size "
            "(`loader.batch_size`, `--batch-size`)"
        )
    if counts.min() == counts.max():
        per = batch_size // int(counts[0])
        return np.append(np.arange(0, n, per), n).astype(np.int64)
    offsets = [0]
    filled = 0
    for i, c in enumerate(counts.tolist()):
        if filled + c > batch_size:
            offsets.append(i)
            filled = 0
        filled += c
    offsets.append(n)
    return np.asarray(offsets, dtype=np.int64)


def _deal_domains(samples: np.ndarray, order: np.ndarray, n_streams: int) -> list[list[int]]:
    """Give each domain (in ``order``) to the stream with the fewest samples so far."""
    heap = [(0, s) for s in range(n_streams)]
    out: list[list[int]] = [[] for _ in range(n_streams)]
    for d in order.tolist():
        load, s = heapq.heappop(heap)
        out[s].append(d)
        heapq.heappush(heap, (load + int(samples[d]), s))
    return out


def _windows(dom_residues: np.ndarray, min_residues: int) -> np.ndarray:
    """Group consecutive domains into windows of at least ``min_residues`` residues."""
    offsets = [0]
    filled = 0
    for i, r in enumerate(dom_residues.tolist()):
        filled += r
        if filled >= min_residues:
            offsets.append(i + 1)
            filled = 0
    if offsets[-1] != len(dom_residues):
        offsets.append(len(dom_residues))
    return np.asarray(offsets, dtype=np.int64)


def _stream_layout(
    table: SplitTable, domains: list[int], cfg: PlanConfig, epoch: int, stream: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Windows, residue order and batch offsets of one stream (domains in reading order)."""
    dom = np.asarray(domains, dtype=np.int64)
    dro = table.domain_res_offsets
    dom_res = dro[dom + 1] - dro[dom]
    residues = concat_ranges(dro[dom], dom_res)
    n_res = len(residues)
    # Windows also bound a worker's memory (it holds one or two windows of packed rows), so
    # they are cut the same way without shuffling: a whole stream is never one window.
    windows = _windows(dom_res, cfg.mix_buffer_residues)
    if cfg.shuffle and n_res:
        res_offsets = np.concatenate([[0], np.cumsum(dom_res)])[windows]
        window_of = np.repeat(np.arange(len(windows) - 1), np.diff(res_offsets))
        rng = np.random.default_rng([cfg.seed, epoch, stream])
        order = np.lexsort((rng.random(n_res), window_of)).astype(np.int64)
    else:
        order = np.arange(n_res, dtype=np.int64)
    counts = table.residue_samples()[residues][order]
    return dom, windows, order, _pack_batches(counts, cfg.batch_size)


def _dealt(table: SplitTable, cfg: PlanConfig, epoch: int) -> list[list[int]]:
    """The domains of every stream of every rank, in reading order."""
    if epoch < 0:
        raise ConfigError(f"epoch must be ≥ 0, got {epoch}")
    if cfg.shuffle:
        dom_order = np.random.default_rng([cfg.seed, epoch]).permutation(table.n_domains)
    else:
        dom_order = np.arange(table.n_domains)
    return _deal_domains(table.domain_samples(), dom_order, cfg.n_streams)


def make_plan(table: SplitTable, cfg: PlanConfig, epoch: int) -> EpochPlan:
    """Plan one epoch for rank ``cfg.rank`` (see the module docstring).

    Parameters
    ----------
    table : SplitTable
        The split's metadata (main process).
    cfg : PlanConfig
    epoch : int
        Epoch number (≥ 0), mixed into the seed.
    """
    dealt = _dealt(table, cfg, epoch)
    layouts = [_stream_layout(table, dealt[s], cfg, epoch, s) for s in range(cfg.n_streams)]
    data_batches = tuple(len(batches) - 1 for *_, batches in layouts)
    first = cfg.rank * cfg.streams_per_rank
    streams = tuple(
        StreamPlan(table.subset(dom), order, windows, batches)
        for dom, windows, order, batches in layouts[first : first + cfg.streams_per_rank]
    )
    return EpochPlan(
        config=cfg,
        epoch=epoch,
        streams=streams,
        batches_per_stream=max(data_batches),
        data_batches=data_batches,
    )


def stream_plan(table: SplitTable, cfg: PlanConfig, epoch: int, stream: int) -> StreamPlan:
    """Stream ``stream`` of this rank's :func:`make_plan` alone: what a worker that lives across
    epochs works out for itself (it skips the other streams' layouts).

    Parameters
    ----------
    stream : int
        The stream's number on this rank (``0..cfg.streams_per_rank - 1``).
    """
    s = cfg.rank * cfg.streams_per_rank + stream
    dom, windows, order, batches = _stream_layout(
        table, _dealt(table, cfg, epoch)[s], cfg, epoch, s
    )
    return StreamPlan(table.subset(dom), order, windows, batches)
