"""What one worker does with its stream of the plan: read mixing windows, gather batches.

A :class:`StreamServer` reads a stream's domains a mixing window at a time through the source's
reader and gathers each batch's packed rows; :class:`StreamSamples` builds a batch's per-sample
arrays from the plan alone (the main process does that from its own copy of the plan).
"""

from __future__ import annotations

import logging
import math
import mmap
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from voxelflex.errors import InputError, ResidueReadError, SourceError
from voxelflex.frame import PACKED_BYTES
from voxelflex.sources.plan import StreamPlan
from voxelflex.sources.table import concat_ranges

if TYPE_CHECKING:  # annotations only: base imports transport, which imports this module
    from voxelflex.sources.base import DomainReader

__all__ = ["HEADROOM", "StreamSamples", "StreamServer", "WindowBuffers", "batch_features"]

log = logging.getLogger(__name__)

OnError = str  # "raise" or "skip": voxelflex.sources.base.ON_ERROR

# Buffers kept across epochs hold this many times the rows the first epoch needs: later epochs
# are cut from other domains and residues, so their windows and batches differ a little.
HEADROOM = 1.25


class StreamSamples:
    """The per-sample arrays of a stream's batches (the :class:`Batch` fields after ``packed``),
    from the plan alone.

    Worked out :data:`CHUNK` batches at a time: one vectorised pass instead of a dozen NumPy
    calls a batch (≈40 µs each, ≈10 ms of an epoch at batch size 1024), one chunk held at a
    time. Batches past the stream's data are padding: one sample of weight 0, ``row_id`` -1, a
    finite temperature (``pad_temperature``, K) and target.
    """

    CHUNK = 64

    def __init__(self, stream: StreamPlan, pad_temperature: float) -> None:
        self.stream = stream
        self.pad_temperature = pad_temperature
        self._first: int | None = None  # the chunk's first batch
        self._chunk: tuple[np.ndarray, ...] = ()

    def batch(self, b: int, skipped: np.ndarray | None) -> tuple[np.ndarray, ...]:
        """residue_index (int64), temperature, target, weight (float32), row_id (int64) of
        batch ``b``, each ``(B,)``; ``skipped`` (bool per residue of the batch, or None) zeroes
        the weight of unreadable residues."""
        if b >= self.stream.n_batches:
            return (
                np.zeros(1, dtype=np.int64),
                np.full(1, self.pad_temperature, dtype=np.float32),
                np.zeros(1, dtype=np.float32),
                np.zeros(1, dtype=np.float32),
                np.full(1, -1, dtype=np.int64),
            )
        if self._first is None or not self._first <= b < self._first + self.CHUNK:
            self._load(b)
        offsets, *chunk = self._chunk
        lo, hi = offsets[b - self._first], offsets[b - self._first + 1]
        # copies: a batch is the consumer's to change, and the chunk serves the loader again
        residue_index, temperature, target, row_id = (a[lo:hi].copy() for a in chunk)
        if skipped is None:
            weight = np.ones(hi - lo, dtype=np.float32)
        else:
            weight = np.where(skipped, 0.0, 1.0).astype(np.float32)[residue_index]
        return residue_index, temperature, target, weight, row_id

    def _load(self, first: int) -> None:
        s, t = self.stream, self.stream.table
        bounds = s.batch_offsets[first : min(first + self.CHUNK, s.n_batches) + 1]
        pos = s.order[bounds[0] : bounds[-1]]
        starts = t.res_row_offsets[pos]
        counts = t.res_row_offsets[pos + 1] - starts
        rows = concat_ranges(starts, counts)
        local = bounds - bounds[0]
        in_batch = np.arange(len(pos), dtype=np.int64) - np.repeat(local[:-1], np.diff(local))
        offsets = np.concatenate([[0], np.cumsum(counts)])[local].tolist()
        self._first = first
        self._chunk = (
            offsets,
            np.repeat(in_batch, counts),
            t.temperature[rows],
            t.target[rows],
            t.row_id[rows],
        )


def batch_features(stream: StreamPlan, b: int, n_residues: int) -> np.ndarray | None:
    """float32 ``(R, F)`` features of batch ``b``'s residues (zeros for a padding batch); None
    when the stream serves no features."""
    t = stream.table
    if not t.features.shape[1]:
        return None
    if b >= stream.n_batches:
        return np.zeros((n_residues, t.features.shape[1]), dtype=np.float32)
    return t.features[stream.order[stream.batch_offsets[b] : stream.batch_offsets[b + 1]]]


class WindowBuffers:
    """Mixing-window buffers one process keeps from epoch to epoch (a source's, or a worker's).

    Reuse spares the page faults of a fresh 10 MB buffer per window; batches are copied out of
    a window (gathered), so nothing refers to a buffer once its window is given back. Buffers
    are fresh anonymous mappings, not NumPy heap arrays: a worker forked from the main process
    shares the heap with it copy-on-write (in huge pages: NumPy advises them for large
    arrays), and filling its first 12 MB window there took ≈60 ms, against ≈6 ms for a fresh
    mapping.
    """

    def __init__(self) -> None:
        self._free: list[np.ndarray] = []

    def __getstate__(self) -> dict:
        return {"_free": []}  # mappings do not pickle, and belong to the process that made them

    def take(self, rows: int, cap: int) -> np.ndarray:
        """A uint8 ``(≥ rows, 5789)`` buffer; a new one holds :data:`HEADROOM` ×
        ``max(rows, cap)`` rows."""
        for i, buf in enumerate(self._free):
            if len(buf) >= rows:
                return self._free.pop(i)
        self._free.clear()  # too small for this plan's windows
        n = math.ceil(max(rows, cap) * HEADROOM)
        pages = mmap.mmap(-1, n * PACKED_BYTES, flags=mmap.MAP_PRIVATE)
        return np.ndarray((n, PACKED_BYTES), np.uint8, buffer=pages)

    def give(self, buf: np.ndarray) -> None:
        """Return a buffer from :meth:`take` for reuse."""
        self._free.append(buf)


class StreamServer:
    """Reads a stream's mixing windows lazily and gathers their rows into batches."""

    def __init__(
        self,
        stream: StreamPlan,
        reader: DomainReader,
        on_error: OnError,
        buffers: WindowBuffers,
    ) -> None:
        self.stream = stream
        self.table = stream.table
        self.reader = reader
        self.on_error = on_error
        self.buffers = buffers
        self.win_res = stream.window_res_offsets
        self.max_window = int(np.diff(self.win_res).max(initial=0))  # residues
        self.skipped: dict[int, str] = {}  # residue position in the stream table -> reason
        self.n_skipped_domains = 0

    def rows(
        self, first: int, total: int, slots: Sequence[np.ndarray] | None = None
    ) -> Iterator[tuple[int, np.ndarray, dict[int, str] | None]]:
        """Packed rows of batches ``first..total-1`` (data, then padding).

        Yields ``(b, packed uint8 (R, 5789), skipped)``, ``skipped`` mapping the batch positions
        of unreadable residues to their reason (None when there are none). With ``slots``
        (``slots[i]``: a uint8 ``(cap, 5789)`` buffer for the ``i``-th batch yielded), rows are
        gathered into it and ``packed`` is a view of it.
        """
        s = self.stream
        if first < s.n_batches:
            first_res = s.order[s.batch_offsets[first]]
            first_window = int(np.searchsorted(self.win_res, first_res, side="right") - 1)
            d0 = int(s.window_offsets[first_window])
            self.reader.prepare(self.table.domains[d0:].tolist())
        loaded: dict[int, np.ndarray] = {}
        for i, b in enumerate(range(first, total)):
            out = None if slots is None else slots[i]
            if b >= s.n_batches:
                packed = np.zeros((1, PACKED_BYTES), np.uint8) if out is None else out[:1]
                packed[:] = 0
                yield b, packed, None
                continue
            pos = s.order[s.batch_offsets[b] : s.batch_offsets[b + 1]]
            packed = self._gather(pos, loaded, out)
            reasons = None
            if self.skipped:
                reasons = {
                    i: self.skipped[p] for i, p in enumerate(pos.tolist()) if p in self.skipped
                }
            yield b, packed, reasons or None

    def _window(self, w: int) -> np.ndarray:
        """A buffer whose first rows are window ``w``'s packed rows, uint8 ``(≥ n_res_window,
        5789)`` in table order."""
        t = self.table
        lo = int(self.win_res[w])
        out = self.buffers.take(int(self.win_res[w + 1]) - lo, self.max_window)
        for d in range(int(self.stream.window_offsets[w]), int(self.stream.window_offsets[w + 1])):
            r0, r1 = int(t.domain_res_offsets[d]), int(t.domain_res_offsets[d + 1])
            domain = str(t.domains[d])
            try:
                rows = self.reader.read_domain(domain, t.chains[r0:r1], t.resids[r0:r1])
                if rows.dtype != np.uint8 or rows.shape != (r1 - r0, PACKED_BYTES):
                    raise SourceError(
                        f"{type(self.reader).__name__} returned {rows.dtype} {rows.shape} for "
                        f"domain {domain}, expected uint8 ({r1 - r0}, {PACKED_BYTES})"
                    )
            except ResidueReadError as exc:
                if self.on_error != "skip":
                    raise exc.first from None
                for i, error in exc.bad.items():
                    self.skipped[r0 + i] = str(error)
                log.warning(
                    "skipped %d of %d residues of domain %s: %s",
                    len(exc.bad),
                    r1 - r0,
                    domain,
                    exc,
                )
                rows = exc.rows
            except (SourceError, InputError) as exc:  # InputError: a bad grid in the file
                if self.on_error != "skip":
                    raise
                self.n_skipped_domains += 1
                log.warning(
                    "skipped domain %s (%d residues): %s [%d domains skipped by this worker]",
                    domain,
                    r1 - r0,
                    exc,
                    self.n_skipped_domains,
                )
                self.skipped.update(dict.fromkeys(range(r0, r1), str(exc)))
                rows = 0
            # A copy per residue: decoding straight into the window (zstd readinto) measured no
            # faster over whole epochs (docs/performance.md), so readers return their rows.
            out[r0 - lo : r1 - lo] = rows
        return out

    def _gather(
        self, pos: np.ndarray, loaded: dict[int, np.ndarray], out: np.ndarray | None
    ) -> np.ndarray:
        """Packed rows of residues ``pos`` (loading their windows), into ``out`` if given."""
        # order is window-monotone: the first and last residue bound the windows needed
        w_lo, w_hi = (np.searchsorted(self.win_res, pos[[0, -1]], side="right") - 1).tolist()
        for w in [w for w in loaded if w < w_lo]:
            self.buffers.give(loaded.pop(w))
        for w in range(w_lo, w_hi + 1):
            if w not in loaded:
                loaded[w] = self._window(w)
        dest = np.empty((len(pos), PACKED_BYTES), np.uint8) if out is None else out[: len(pos)]
        cuts = [0, len(pos)]
        if w_hi > w_lo:  # each window's residues are one run of the batch
            wins = np.searchsorted(self.win_res, pos, side="right") - 1
            cuts[1:1] = np.searchsorted(wins, np.arange(w_lo + 1, w_hi + 1)).tolist()
        for w, k0, k1 in zip(range(w_lo, w_hi + 1), cuts[:-1], cuts[1:], strict=True):
            if k0 == k1:
                continue
            rows = pos[k0:k1] - self.win_res[w]
            if rows.min() < 0 or rows.max() >= self.win_res[w + 1] - self.win_res[w]:
                raise SourceError(  # the plan's invariant; a window buffer holds stale rows beyond
                    f"batch residues {pos.min()}..{pos.max()} outside their window {w}"
                )
            # mode="clip": with the default "raise", take buffers ``out`` (2.6× slower into a
            # ring slot); the check above stands in for it
            np.take(loaded[w], rows, axis=0, out=dest[k0:k1], mode="clip")
        return dest
