"""Read what voxelflex needs of one ``mdcath_dataset_{domain}.h5`` file, and nothing more.

The layout is in :mod:`voxelflex.demo.mdcath` (which writes test files in it). Read here: the
domain group's ``numResidues``, ``pdbProteinAtoms`` and per-atom ``resid``, and per temperature
and replica ``rmsf`` and ``dssp``. Never ``coords`` (most of a file's bytes), ``rmsd``,
``gyrationRadius`` or ``box``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import h5py
import numpy as np

from voxelflex.errors import DomainRefused

__all__ = [
    "MDCATH_REPLICAS",
    "MDCATH_TEMPERATURES",
    "MdcathDomain",
    "TemperatureStats",
    "majority_dssp",
    "read_mdcath_domain",
]

MDCATH_TEMPERATURES: tuple[int, ...] = (320, 348, 379, 413, 450)
MDCATH_REPLICAS: tuple[int, ...] = (0, 1, 2, 3, 4)
COIL = "-"
# Ties between DSSP codes go to the first here (helices, then strands, then the rest).
_DSSP_PRIORITY = b"HGIEBTS-"
# First byte of a DSSP entry that means "no structure": blank, "-", "NA" (mdtraj), empty.
_COIL_BYTES = (ord(" "), ord("-"), ord("N"), 0)


@dataclass(frozen=True)
class TemperatureStats:
    """The replicas of one temperature, aggregated per residue.

    Attributes
    ----------
    temperature : int
        Kelvin.
    mean : numpy.ndarray of float64, shape (R,)
        Mean RMSF over the finite replica values, nm; NaN where no replica is finite.
    std : numpy.ndarray of float64, shape (R,)
        Sample standard deviation (ddof 1) over the same values, nm; NaN with fewer than two.
    n : numpy.ndarray of int8, shape (R,)
        Replicas that contributed to each residue.
    dssp : numpy.ndarray of str, shape (R,)
        Majority DSSP code over the frames of the replicas read that have one (``"-"``: no
        structure; ``""`` when none has one).
    used, missing, with_nan, no_dssp : tuple of int
        Replicas read; asked for but absent from the file; read but holding NaN, infinite or
        negative values (those values are dropped, the replica's other residues kept); read but
        without a ``dssp`` dataset (left out of the majority code).
    """

    temperature: int
    mean: np.ndarray
    std: np.ndarray
    n: np.ndarray
    dssp: np.ndarray
    used: tuple[int, ...]
    missing: tuple[int, ...]
    with_nan: tuple[int, ...]
    no_dssp: tuple[int, ...]


@dataclass(frozen=True)
class MdcathDomain:
    """One domain file's structure and per-temperature RMSF.

    Attributes
    ----------
    domain : str
        The file's domain group name (e.g. ``"1a0aA00"``).
    pdb_text : str
        ``pdbProteinAtoms`` (CHARMM names).
    n_residues : int
        ``numResidues``: entries of every ``rmsf`` array, one per residue in file order.
    atom_resid : numpy.ndarray of int64, shape (numProteinAtoms,)
        mdCATH's per-atom residue numbers (to check the PDB numbering against).
    temperatures : tuple of TemperatureStats
        Temperatures asked for that have at least one replica, ascending.
    missing_temperatures : tuple of int
        Temperatures asked for without any replica in the file.
    """

    domain: str
    pdb_text: str
    n_residues: int
    atom_resid: np.ndarray
    temperatures: tuple[TemperatureStats, ...]
    missing_temperatures: tuple[int, ...]


def majority_dssp(codes: np.ndarray) -> np.ndarray:
    """The most frequent DSSP code of each column.

    Parameters
    ----------
    codes : numpy.ndarray of bytes (``S`` dtype), shape (F, R)
        One DSSP code per frame and residue (only the first byte is read: 8-class DSSP codes
        are one letter; ``" "``, ``"-"`` and mdtraj's ``"NA"`` mean no structure).

    Returns
    -------
    numpy.ndarray of str, shape (R,)
        ``H G I E B T S`` or ``"-"``; ties go to the first in that order. ``"-"`` for a
        column without frames.
    """
    codes = np.ascontiguousarray(codes)
    if codes.dtype.kind == "O":  # h5py returns variable-length strings as objects
        codes = codes.astype("S")
    if codes.dtype.kind != "S":
        raise TypeError(f"DSSP codes must be bytes, got {codes.dtype}")
    n_frames, n_res = codes.shape
    if n_frames == 0:
        return np.full(n_res, COIL)
    first = codes.view(np.uint8).reshape(n_frames, n_res, codes.dtype.itemsize)[:, :, 0]
    first = np.where(np.isin(first, _COIL_BYTES), ord(COIL), first)
    counts = np.bincount(
        (first.astype(np.int64) * n_res + np.arange(n_res)).ravel(), minlength=256 * n_res
    ).reshape(256, n_res)
    order = list(_DSSP_PRIORITY) + [b for b in range(256) if b not in _DSSP_PRIORITY]
    best = np.asarray(order)[np.argmax(counts[order], axis=0)]
    return best.astype(np.uint8).view("S1").astype(str)


def _domain_group(f: h5py.File, path: str) -> h5py.Group:
    groups = [k for k, v in f.items() if isinstance(v, h5py.Group)]
    if len(groups) != 1:
        raise DomainRefused(
            "not_mdcath",
            f"{path}: expected one domain group at the root (mdCATH's layout), found "
            f"{len(groups)}: {groups[:5]}; pass mdcath_dataset_*.h5 files only",
        )
    return f[groups[0]]


def _read(group: h5py.Group, path: str) -> np.ndarray | None:
    """The dataset at ``path`` under ``group``, or None when absent (low-level h5py: opening
    by path through the high-level API costs ≈100 µs, ≈5x this, and a file has 50 to read)."""
    try:
        ds = h5py.h5d.open(group.id, path.encode())
    except KeyError:
        return None
    if ds.dtype.kind == "O":  # variable-length strings: let h5py convert them
        return h5py.Dataset(ds)[()]
    out = np.empty(ds.shape, ds.dtype)
    ds.read(h5py.h5s.ALL, h5py.h5s.ALL, out)
    return out


def _unit(group: h5py.Group, path: str) -> str:
    """The ``unit`` attribute of the dataset at ``path`` under ``group`` (``"nm"`` when it has
    none); low-level h5py as in :func:`_read`, half the high-level path's time."""
    ds = h5py.h5d.open(group.id, path.encode())
    if not h5py.h5a.exists(ds, b"unit"):
        return "nm"
    unit = h5py.Dataset(ds).attrs["unit"]
    return unit.decode() if isinstance(unit, bytes) else str(unit)


def _temperature(
    group: h5py.Group, temperature: int, replicas: Sequence[int], n_res: int, path: str
) -> TemperatureStats | None:
    rmsf, dssp, used, missing, with_nan, no_dssp = [], [], [], [], [], []
    for rep in replicas:
        where = f"{temperature}/{rep}"
        values = _read(group, f"{where}/rmsf")
        if values is None:
            missing.append(rep)
            continue
        # mdCATH's builder labels every rmsf dataset "nm"; the values are taken as nm (the CSV's
        # declared unit), so a file labelled otherwise would be imported 10x off, exit 0.
        unit = _unit(group, f"{where}/rmsf")
        if unit.strip() != "nm":
            raise DomainRefused(
                "not_mdcath",
                f"{path}: {group.name}/{where}/rmsf has unit {unit!r}, but mdCATH stores RMSF "
                "in nm and the import reads it as nm; convert the file's rmsf to nm",
            )
        values = values.astype(np.float64).reshape(-1)
        if len(values) != n_res:
            raise DomainRefused(
                "residue_count_mismatch",
                f"{path}: {group.name}/{where}/rmsf has {len(values)} values but numResidues "
                f"is {n_res}; the file is inconsistent (re-download it)",
            )
        # an RMSF is a root mean square: a negative value is a damaged file, as NaN is
        valid = np.isfinite(values) & (values >= 0)
        if not valid.all():
            with_nan.append(rep)
        rmsf.append(np.where(valid, values, np.nan))
        codes = _read(group, f"{where}/dssp")
        if codes is None:
            no_dssp.append(rep)
        else:
            if codes.ndim != 2 or codes.shape[1] != n_res:
                raise DomainRefused(
                    "residue_count_mismatch",
                    f"{path}: {group.name}/{where}/dssp has shape {codes.shape}, expected "
                    f"(frames, {n_res}); the file is inconsistent (re-download it)",
                )
            dssp.append(codes)
        used.append(rep)
    if not used:
        return None
    stack = np.stack(rmsf)
    n = np.isfinite(stack).sum(axis=0)
    total = np.nansum(stack, axis=0)
    mean = np.where(n > 0, total / np.maximum(n, 1), np.nan)
    dev = np.nansum((stack - mean) ** 2, axis=0)
    std = np.where(n > 1, np.sqrt(dev / np.maximum(n - 1, 1)), np.nan)
    codes = majority_dssp(np.concatenate(dssp)) if dssp else np.full(n_res, "")
    return TemperatureStats(
        temperature,
        mean,
        std,
        n.astype(np.int8),
        codes,
        tuple(used),
        tuple(missing),
        tuple(with_nan),
        tuple(no_dssp),
    )


def read_mdcath_domain(
    path: str | os.PathLike,
    *,
    temperatures: Sequence[int] = MDCATH_TEMPERATURES,
    replicas: Sequence[int] = MDCATH_REPLICAS,
) -> MdcathDomain:
    """Read one mdCATH domain file (module docstring: what is read).

    Parameters
    ----------
    path : path
        ``mdcath_dataset_{domain}.h5``.
    temperatures : sequence of int
        Kelvin; groups ``"320"`` etc.
    replicas : sequence of int
        Replica groups to average.

    Raises
    ------
    DomainRefused
        Unreadable file, not one domain group, no ``pdbProteinAtoms``, an ``rmsf`` whose
        ``unit`` attribute is not ``"nm"``, or RMSF/DSSP arrays whose length is not
        ``numResidues``.
    """
    path = os.fspath(path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DomainRefused(
            "unreadable_file", f"{path}: not a readable HDF5 file ({exc}); re-download it"
        ) from exc
    with f:
        group = _domain_group(f, path)
        if "pdbProteinAtoms" not in group or "numResidues" not in group.attrs:
            raise DomainRefused(
                "not_mdcath",
                f"{path}: {group.name} lacks pdbProteinAtoms or the numResidues attribute; "
                "is this an mdCATH dataset file?",
            )
        text = group["pdbProteinAtoms"][()]
        text = text.decode("utf-8") if isinstance(text, bytes) else str(text)
        n_res = int(group.attrs["numResidues"])
        resid = np.asarray(group["resid"][()], np.int64) if "resid" in group else np.zeros(0)
        stats, missing = [], []
        for t in sorted(temperatures):
            s = _temperature(group, t, replicas, n_res, path)
            if s is None:
                missing.append(t)
            else:
                stats.append(s)
        return MdcathDomain(group.name.strip("/"), text, n_res, resid, tuple(stats), tuple(missing))
