"""The sample-source interface: what a new source implements.

A source is a :class:`SampleSource` (main process: index, split table, epoch plan) plus a
:class:`DomainReader` (pickled into each DataLoader worker, opens its files lazily there). The
base class does all the planning and batching (:mod:`~voxelflex.sources.plan`,
:mod:`~voxelflex.sources.transport`); a reader only turns a domain's residue keys into packed
rows. That is the template: subclasses fill two hooks, :meth:`SampleSource.make_reader` and
:meth:`DomainReader.read_domain`, and declare the settings they read in ``OPTIONS``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal

import numpy as np

from voxelflex.errors import SourceError
from voxelflex.index import LoadedIndex
from voxelflex.sources.plan import EpochPlan, PlanConfig, make_plan
from voxelflex.sources.table import SplitTable
from voxelflex.sources.transport import BatchLoader, WorkerPool
from voxelflex.sources.windows import WindowBuffers
from voxelflex.structure.features import FEATURE_NAMES

__all__ = ["FEATURE_NORMS", "ON_ERROR", "DomainReader", "OnError", "SampleSource", "SourceOption"]

OnError = Literal["raise", "skip"]
ON_ERROR: tuple[str, ...] = ("raise", "skip")
# How a model takes its features: as computed, or z-scored within each domain.
FEATURE_NORMS: tuple[str, ...] = ("global", "domain")


@dataclass(frozen=True)
class SourceOption:
    """A setting a source reads from the run configuration.

    Attributes
    ----------
    name : str
        Keyword argument of the source's constructor.
    key : str
        Dotted config key it comes from, e.g. ``"data.shards_dir"``.
    required : bool
        The source cannot open without it.
    help : str
        What it is, for the error when it is missing.
    """

    name: str
    key: str
    required: bool = False
    help: str = ""


class DomainReader(ABC):
    """Reads whole domains as packed rows inside one worker process.

    Instances are created in the main process and copied into every DataLoader worker, so they
    hold only paths and small settings until :meth:`prepare` runs in the worker.
    """

    def prepare(self, domains: Sequence[str]) -> None:  # noqa: B027 - optional hook
        """Called once per worker and epoch with the domains it will read, in reading order.

        Errors raised here stop the epoch under every ``on_error`` policy: they are for problems
        of the whole input (a file of the wrong frame), not of one domain.
        """

    @abstractmethod
    def read_domain(self, domain: str, chains: np.ndarray, resids: np.ndarray) -> np.ndarray:
        """Packed rows of the given residues of ``domain``.

        Parameters
        ----------
        domain : str
            HDF5 domain key.
        chains, resids : numpy.ndarray of str, shape (R,)
            Residue keys, in the order the rows must come back.

        Returns
        -------
        numpy.ndarray of uint8, shape (R, 5789)

        Raises
        ------
        voxelflex.errors.ResidueReadError
            Some residues were unreadable (the rest were read), naming each.
        SourceError
            The whole domain could not be served, naming the file and domain.
        """


class SampleSource(ABC):
    """Serves one split of an index as residue-grouped :class:`Batch` objects.

    Parameters
    ----------
    index : LoadedIndex
        From :func:`voxelflex.index.read_index` (``.table``, ``.meta``, ``.path``).
    split : str
        Split to serve.
    temperatures : sequence of float, optional
        Prediction mode: each residue of ``split`` once × these temperatures (K), targets NaN,
        index order (``shuffle`` is ignored).
    on_error : {"raise", "skip"}
        ``skip`` serves an unreadable residue's (or domain's) rows with weight 0 and zero grids,
        logs a warning with a running count and records the reason in
        :attr:`BatchLoader.skipped`, instead of raising.
    features : sequence of str
        Index columns served per residue as ``Batch.features`` (float32 ``(R, F)``); the
        base class serves them from the index, so a source's reader never sees them.
    feature_norm : {"global", "domain"}
        ``domain``: each feature column z-scored over all of its domain's residues in the
        index, whatever their split (a model's ``feature_norm``,
        :meth:`SplitTable.with_domain_zscored_features`);
        ``global``: as the index has them.
    """

    name: ClassVar[str]
    OPTIONS: ClassVar[tuple[SourceOption, ...]] = ()  # settings read from the config

    def __init__(
        self,
        index: LoadedIndex,
        *,
        split: str,
        temperatures: Sequence[float] | None = None,
        on_error: OnError = "raise",
        features: Sequence[str] = (),
        feature_norm: str = "global",
    ) -> None:
        if on_error not in ON_ERROR:
            raise SourceError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        if feature_norm not in FEATURE_NORMS:
            raise SourceError(
                f"feature_norm must be one of {FEATURE_NORMS}, got {feature_norm!r} (a "
                "checkpoint from a newer voxelflex?)"
            )
        self.index = index
        self.split = split
        self.on_error = on_error
        self.temperatures = None if temperatures is None else tuple(float(t) for t in temperatures)
        self.features = tuple(features)
        not_features = [f for f in self.features if f not in index.meta.features]
        if not_features:
            # The CSV's columns (relative_accessibility, dssp) come from the target's own
            # simulation: evaluation may stratify by them, a model must never see them.
            newer = [f for f in not_features if f in FEATURE_NAMES]
            fix = (
                f"; {newer} are features this voxelflex computes and the index's sidecar lacks "
                "(written before they existed): recompute it with `voxelflex features` and "
                "rebuild the index"
                if newer and index.meta.features
                else ""
            )
            raise SourceError(
                f"{index.path}: {not_features} are not structure features of the index (it "
                f"has {sorted(index.meta.features) or 'none'}); build the index with --features "
                "SIDECAR.parquet from `voxelflex features`; the RMSF CSV's own columns stratify "
                f"evaluation only{fix}"
            )
        self.table = SplitTable.from_arrow(
            index.table,
            split,
            temperatures=temperatures,
            features=self.features,
            where=str(index.path),
        )
        if feature_norm == "domain":
            self.table = self.table.with_domain_zscored_features(index.table, self.features)
        self._plan: tuple[tuple, SplitTable, EpochPlan] | None = None  # the last plan made
        self._pool: WorkerPool | None = None
        self._buffers = WindowBuffers()  # mixing windows read in this process (0 workers)

    @property
    def prediction(self) -> bool:
        """True when serving requested temperatures instead of the index's rows."""
        return self.temperatures is not None

    @property
    def residue_count(self) -> int:
        return self.table.n_residues

    @property
    def sample_count(self) -> int:
        return self.table.n_samples

    @property
    def domain_count(self) -> int:
        return self.table.n_domains

    @abstractmethod
    def make_reader(self) -> DomainReader:
        """A fresh, unopened reader to copy into the workers."""

    def plan(self, cfg: PlanConfig, epoch: int) -> EpochPlan:
        """The epoch plan for ``cfg`` (cached: ``num_batches`` and ``loader`` share it)."""
        if self.prediction and cfg.shuffle:
            cfg = replace(cfg, shuffle=False)
        # keyed by the table too: a table replaced after planning (targets standardised) must
        # not leave the main process labelling rows from an old plan the workers do not share
        key = (cfg, epoch)
        if self._plan is None or self._plan[0] != key or self._plan[1] is not self.table:
            self._plan = (key, self.table, make_plan(self.table, cfg, epoch))
        return self._plan[2]

    def num_batches(self, cfg: PlanConfig, epoch: int) -> int:
        """Batches each rank yields in ``epoch`` (identical on every rank: padded)."""
        return self.plan(cfg, epoch).num_batches

    def loader(
        self, cfg: PlanConfig, epoch: int, start_batch: int = 0, *, pin_memory: bool = False
    ) -> BatchLoader:
        """Batches ``start_batch..`` of this rank's plan for ``epoch``.

        With ``cfg.num_workers`` ≥ 1 the batches come from DataLoader workers that the source
        keeps for the next epoch of the same ``cfg`` (:meth:`close` ends them); one epoch is
        read at a time. Yields :class:`~voxelflex.sources.batch.Batch`; ``len()`` is the number
        of batches it yields. ``pin_memory`` pins each batch (for asynchronous host-to-device
        copies).
        """
        plan = self.plan(cfg, epoch)
        pool = self._workers(plan) if plan.config.num_workers else None
        return BatchLoader(
            plan,
            self.make_reader() if pool is None else None,
            start_batch=start_batch,
            on_error=self.on_error,
            pad_temperature=float(self.table.temperature[0]),
            pool=pool,
            buffers=self._buffers,
            pin_memory=pin_memory,
        )

    def _workers(self, plan: EpochPlan) -> WorkerPool:
        """The pool that serves ``plan``: the one kept from an earlier epoch when it fits."""
        rows = plan.max_batch_residues
        if self._pool is None or not self._pool.fits(self.table, plan.config, rows):
            self.close()
            self._pool = WorkerPool(
                self.table, plan.config, self.make_reader(), self.on_error, rows
            )
        return self._pool

    def close(self) -> None:
        """Ends the worker processes and frees the window buffers kept for the next epoch (a
        later epoch starts and makes new ones)."""
        self._buffers = WindowBuffers()
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    @classmethod
    def take_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """The constructor keywords of :attr:`OPTIONS` from ``options`` (others are ignored).

        Raises
        ------
        SourceError
            A required option is missing or None, naming its config key.
        """
        out = {}
        for opt in cls.OPTIONS:
            value = options.get(opt.name)
            if value is None and opt.required:
                raise SourceError(
                    f"the {cls.name} source needs {opt.help} (config key '{opt.key}', "
                    f"--{opt.key.rpartition('.')[2].replace('_', '-')})"
                )
            out[opt.name] = value
        return out
