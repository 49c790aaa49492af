"""Columnar metadata of one split: the only per-row data a sample source carries.

A :class:`SplitTable` holds a split's domains, their residues and their sample rows as flat NumPy
arrays with offset vectors (CSR style), so any subset of domains is gathered with a few fancy
indexing calls and handed to a DataLoader worker without per-row Python objects.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from voxelflex.columns import codes, strings
from voxelflex.errors import IndexFormatError, SourceError
from voxelflex.index.schema import SPLITS

__all__ = ["SplitTable", "concat_ranges", "zscore_segments"]


def concat_ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenate ``arange(s, s + c)`` for each pair, vectorised.

    Parameters
    ----------
    starts, counts : numpy.ndarray of int64, shape (n,)

    Returns
    -------
    numpy.ndarray of int64, shape (counts.sum(),)
    """
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    shift = np.asarray(starts, dtype=np.int64) - (np.cumsum(counts) - counts)
    return np.repeat(shift, counts) + np.arange(total, dtype=np.int64)


def segment_mean_std(values: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-segment mean and population standard deviation of the columns of ``values``.

    Parameters
    ----------
    values : numpy.ndarray, shape (N, F)
    offsets : numpy.ndarray of int64, shape (S + 1,)
        Segment ``s`` is ``values[offsets[s]:offsets[s + 1]]``.

    Returns
    -------
    mean, std : numpy.ndarray of float64, shape (S, F)
        ``std`` is ``inf`` where a column is constant in a segment (dividing by it gives 0).
    """
    x = np.asarray(values, dtype=np.float64)
    counts = np.diff(offsets)
    segment = np.repeat(np.arange(len(counts)), counts)
    n = np.maximum(counts, 1)[:, None]

    def sums(a: np.ndarray) -> np.ndarray:  # per-segment column sums, empty segments included
        c = np.concatenate([np.zeros((1, a.shape[1])), np.cumsum(a, axis=0)])
        return c[offsets[1:]] - c[offsets[:-1]]

    mean = sums(x) / n
    std = np.sqrt(sums((x - mean[segment]) ** 2) / n)
    # cumsum differences leave rounding noise (~1e-16 relative) where a column is constant
    return mean, np.where(std > 1e-9 * (1.0 + np.abs(mean)), std, np.inf)


def zscore_segments(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """``values`` standardised within consecutive segments (mean 0, population std 1).

    Parameters
    ----------
    values : numpy.ndarray, shape (N,) or (N, F)
    offsets : numpy.ndarray of int64, shape (S + 1,)
        Segment ``s`` is ``values[offsets[s]:offsets[s + 1]]``.

    Returns
    -------
    numpy.ndarray of float32, the shape of ``values``
        A column that is constant within a segment (or a one-row segment) gives zeros there.
    """
    x = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    mean, std = segment_mean_std(x, offsets)
    segment = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    z = (x - mean[segment]) / std[segment]
    return z.astype(np.float32).reshape(np.shape(values))


def _offsets(boundaries: np.ndarray, n: int) -> np.ndarray:
    """Offsets ``(k+1,)`` from a boolean "a new group starts here" mask of length ``n``."""
    return np.append(np.flatnonzero(boundaries), n).astype(np.int64)


@dataclass(frozen=True)
class SplitTable:
    """Domains, residues and samples of one split, as offset-linked arrays.

    Attributes
    ----------
    split : str
    domains : numpy.ndarray of str, shape (D,)
        HDF5 domain keys.
    domain_res_offsets : numpy.ndarray of int64, shape (D + 1,)
        Residues of domain ``d`` are ``domain_res_offsets[d]:domain_res_offsets[d + 1]``.
    chains, resids : numpy.ndarray of str, shape (R,)
        Residue keys (chain id, HDF5 residue key) in index order within each domain.
    res_row_offsets : numpy.ndarray of int64, shape (R + 1,)
        Sample rows of residue ``r`` are ``res_row_offsets[r]:res_row_offsets[r + 1]``.
    row_id : numpy.ndarray of int64, shape (N,)
        Index row of each sample (for prediction: the residue's row).
    temperature : numpy.ndarray of float32, shape (N,)
        Kelvin.
    target : numpy.ndarray of float32, shape (N,)
        RMSF in the index's unit; NaN where unknown.
    features : numpy.ndarray of float32, shape (R, F)
        Per-residue feature columns of the index (F = 0 unless asked for).
    """

    split: str
    domains: np.ndarray
    domain_res_offsets: np.ndarray
    chains: np.ndarray
    resids: np.ndarray
    res_row_offsets: np.ndarray
    row_id: np.ndarray
    temperature: np.ndarray
    target: np.ndarray
    features: np.ndarray

    @property
    def n_domains(self) -> int:
        return len(self.domains)

    @property
    def n_residues(self) -> int:
        return len(self.chains)

    @property
    def n_samples(self) -> int:
        return len(self.row_id)

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays (what a worker's metadata costs)."""
        return sum(
            getattr(self, name).nbytes
            for name in (
                "domains",
                "domain_res_offsets",
                "chains",
                "resids",
                "res_row_offsets",
                "row_id",
                "temperature",
                "target",
                "features",
            )
        )

    def residue_samples(self) -> np.ndarray:
        """Samples per residue, int64 ``(R,)``."""
        return np.diff(self.res_row_offsets)

    def domain_samples(self) -> np.ndarray:
        """Samples per domain, int64 ``(D,)``."""
        return np.diff(self.res_row_offsets[self.domain_res_offsets])

    def with_domain_zscored_targets(self) -> SplitTable:
        """The table with each domain's targets z-scored (``train.target_norm = domain``).

        For sets whose absolute scale varies between structures (crystal B-factors): the model
        then learns which residues of a structure move more, not each structure's scale.
        """
        offsets = self.res_row_offsets[self.domain_res_offsets]
        return dataclasses.replace(self, target=zscore_segments(self.target, offsets))

    def with_domain_zscored_features(self, index: pa.Table, names: Sequence[str]) -> SplitTable:
        """The table with each feature column z-scored within each domain
        (``model.feature_norm = domain``): a feature then says where a residue stands within
        its own structure, whatever that structure's size or packing.

        The mean and (population) standard deviation are those of every residue of the domain
        in ``index``, whatever its split, so a domain is scaled alike in training, evaluation
        and prediction, and alike from the index and from its structure file (whose residues
        are the index's). A column constant within a domain gives zeros there.

        Parameters
        ----------
        index : pyarrow.Table
            The index rows (every split) with ``domain, chain, resid_str`` and the columns
            ``names``.
        names : sequence of str
            The feature columns of ``self.features``, in order.
        """
        if self.features.shape[1] == 0:
            return self
        keys = ["domain", "chain", "resid_str"]
        rows = index.filter(pc.is_in(index["domain"], pa.array(self.domains.astype(str))))
        residues = (
            rows.select([*keys, *names])
            .group_by(keys, use_threads=False)
            .aggregate([(n, "first") for n in names])
        )
        uniq, inverse = np.unique(
            residues["domain"].to_numpy(zero_copy_only=False).astype(str), return_inverse=True
        )
        values = np.stack(
            [residues[f"{n}_first"].to_numpy(zero_copy_only=False) for n in names], axis=1
        ).astype(np.float64)
        order = np.argsort(inverse, kind="stable")
        offsets = np.concatenate([[0], np.cumsum(np.bincount(inverse, minlength=len(uniq)))])
        mean, std = segment_mean_std(values[order], offsets)
        pos = np.searchsorted(uniq, self.domains.astype(str))  # every domain is in the index
        mean, std = mean[pos], std[pos]
        dom_of_res = np.repeat(np.arange(self.n_domains), np.diff(self.domain_res_offsets))
        z = (self.features - mean[dom_of_res]) / std[dom_of_res]
        return dataclasses.replace(self, features=z.astype(np.float32))

    def subset(self, domain_indices: np.ndarray) -> SplitTable:
        """A table of the given domains, in the given order (a worker's metadata)."""
        domain_indices = np.asarray(domain_indices, dtype=np.int64)
        dro = self.domain_res_offsets
        n_res = dro[domain_indices + 1] - dro[domain_indices]
        res = concat_ranges(dro[domain_indices], n_res)
        rro = self.res_row_offsets
        n_rows = rro[res + 1] - rro[res]
        rows = concat_ranges(rro[res], n_rows)
        return SplitTable(
            split=self.split,
            domains=self.domains[domain_indices],
            domain_res_offsets=np.concatenate([[0], np.cumsum(n_res)]).astype(np.int64),
            chains=self.chains[res],
            resids=self.resids[res],
            res_row_offsets=np.concatenate([[0], np.cumsum(n_rows)]).astype(np.int64),
            row_id=self.row_id[rows],
            temperature=self.temperature[rows],
            target=self.target[rows],
            features=self.features[res],
        )

    @classmethod
    def from_arrow(
        cls,
        table: pa.Table,
        split: str,
        *,
        temperatures: Sequence[float] | None = None,
        features: Sequence[str] = (),
        where: str = "the index",
    ) -> SplitTable:
        """Extract one split from an index table (see :mod:`voxelflex.index.schema`).

        Parameters
        ----------
        table : pyarrow.Table
            Index rows, sorted as the schema prescribes.
        split : str
            One of :data:`~voxelflex.index.schema.SPLITS`.
        temperatures : sequence of float, optional
            Prediction mode: each residue once × these temperatures (K), target NaN,
            ``row_id`` the residue's first index row.
        features : sequence of str
            Per-residue feature columns to carry (their values on each residue's first row).
        where : str
            Path of the index, for error messages.

        Raises
        ------
        SourceError
            Unknown split, no rows, feature columns the index lacks or holds non-finite
            values in (naming them), prediction temperatures not finite and > 0 K.
        """
        if split not in SPLITS:
            raise SourceError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
        rows = table.filter(pc.equal(table["split"], split))
        if rows.num_rows == 0:
            raise SourceError(
                f"{where} has no rows in split {split!r} (rows per split: "
                f"{_split_counts(table)}); choose another split or rebuild the index"
            )
        n = rows.num_rows
        dom = codes(rows["domain"])
        chain = codes(rows["chain"])
        icode = codes(rows["icode"])
        resnum = rows["resnum"].to_numpy(zero_copy_only=False).astype(np.int64)
        new_dom = np.ones(n, dtype=bool)
        new_dom[1:] = dom[1:] != dom[:-1]
        new_res = new_dom.copy()
        new_res[1:] |= (chain[1:] != chain[:-1]) | (resnum[1:] != resnum[:-1])
        new_res[1:] |= icode[1:] != icode[:-1]
        dom_starts = np.flatnonzero(new_dom)
        if len(np.unique(dom[dom_starts])) != len(dom_starts):
            raise IndexFormatError(
                f"{where}: rows of split {split!r} are not grouped by domain; the index must be "
                "sorted by split, domain, chain, resnum, icode, temperature: rebuild it with "
                "`voxelflex index build`"
            )
        res_starts = np.flatnonzero(new_res)
        # A residue's rows in two runs (rows reordered within a domain) would make it two
        # residues: predicted, and written, twice.
        keys = np.stack([dom, chain, resnum, icode])[:, res_starts]
        order = np.lexsort(keys)
        twice = np.flatnonzero((np.diff(keys[:, order], axis=1) == 0).all(axis=0))
        if len(twice):
            row = int(res_starts[order[twice[0]]])
            residue = " ".join(str(rows[c][row].as_py()) for c in ("domain", "chain", "resid_str"))
            raise IndexFormatError(
                f"{where}: the rows of residue {residue} (split {split!r}) are not together: "
                "the index is not sorted by split, domain, chain, resnum, icode, temperature; "
                "rebuild it with `voxelflex index build`"
            )
        res_row_offsets = _offsets(new_res, n)
        # residue r belongs to the domain whose first row is at or before its first row
        domain_res_offsets = np.searchsorted(res_starts, np.append(dom_starts, n)).astype(np.int64)
        first = pa.array(res_starts)
        feature_values = _features(rows, features, first, split=split, where=where)
        domains = strings(rows["domain"].take(pa.array(dom_starts)))
        chains = strings(rows["chain"].take(first))
        resids = strings(rows["resid_str"].take(first))
        row_id = rows["row_id"].to_numpy(zero_copy_only=False).astype(np.int64)
        if temperatures is None:
            temperature = rows["temperature"].to_numpy(zero_copy_only=False).astype(np.float32)
            if not np.isfinite(temperature).all():
                raise SourceError(
                    f"{where}: split {split!r} has rows without a temperature (a prediction "
                    "index); pass the temperatures to predict at (`temperatures=` / "
                    "`voxelflex predict --temperature K`)"
                )
            target = rows["target_rmsf"].to_numpy(zero_copy_only=False).astype(np.float32)
        else:
            temps = np.asarray([float(t) for t in temperatures], dtype=np.float32)
            # every way to predict (predict, predict --structure, importance) passes here;
            # 0 K or below is no temperature, and only the CLI's parser refused it
            if temps.size == 0 or not np.all(np.isfinite(temps) & (temps > 0)):
                raise SourceError(
                    "prediction temperatures must be a non-empty list of finite kelvin values "
                    f"> 0 K, got {list(temperatures)}; pass kelvin (e.g. 298.15 for 25 °C)"
                )
            # each residue once × the requested temperatures, traced to its first index row
            n_res = len(res_starts)
            res_row_offsets = np.arange(n_res + 1, dtype=np.int64) * len(temps)
            row_id = np.repeat(row_id[res_starts], len(temps))
            temperature = np.tile(temps, n_res)
            target = np.full(n_res * len(temps), np.nan, dtype=np.float32)
        return cls(
            split=split,
            domains=domains,
            domain_res_offsets=domain_res_offsets,
            chains=chains,
            resids=resids,
            res_row_offsets=res_row_offsets,
            row_id=row_id,
            temperature=temperature,
            target=target,
            features=feature_values,
        )


def _features(
    rows: pa.Table, names: Sequence[str], first: pa.Array, *, split: str, where: str
) -> np.ndarray:
    """float32 ``(R, F)``: the named columns on each residue's first row, checked finite."""
    missing = [n for n in names if n not in rows.column_names]
    if missing:
        raise SourceError(
            f"{where} has no feature columns {missing} (the model needs {list(names)}); build "
            "the index with --features SIDECAR.parquet from `voxelflex features`"
        )
    out = np.zeros((len(first), len(names)), dtype=np.float32)
    for i, name in enumerate(names):
        column = pc.fill_null(rows[name].take(first), np.nan)
        out[:, i] = column.to_numpy(zero_copy_only=False)
    bad = ~np.isfinite(out)
    if bad.any():
        names_bad = sorted({names[j] for j in np.flatnonzero(bad.any(axis=0))})
        raise SourceError(
            f"{where}: {int(bad.any(axis=1).sum())} residues of split {split!r} have no finite "
            f"value of features {names_bad}; recompute the feature sidecar and rebuild the index"
        )
    return out


def _split_counts(table: pa.Table) -> dict:
    counts = pc.value_counts(table["split"]).to_pylist()
    return {c["values"]: c["counts"] for c in counts}
