"""One pass over a voxel HDF5: the full key listing plus checks on a sample of datasets.

The listing uses each chain group's ``keys()`` (no dataset is opened), which lists ≈1 M keys
a second. Opening a dataset costs ≈50 µs, so only a few per chain are checked unless
``deep`` asks for all of them; the sample sources validate every grid they read anyway.
"""

from __future__ import annotations

import functools
import hashlib
import operator
import os
from dataclasses import dataclass

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from voxelflex.columns import repeated_keys
from voxelflex.errors import InputError
from voxelflex.inputs.voxel_hdf5 import (
    check_frame,
    open_voxel_file,
    parse_residue_keys,
    read_label,
    validate_grid,
)

__all__ = ["VoxelScan", "read_labels", "scan_voxel_file"]

CHECKS_PER_CHAIN = 3  # datasets whose dtype/shape are checked per chain (first, middle, last)
LABELS_PER_CHAIN = 8  # residue names read per chain, for the resid-offset check
_LABELS_SCHEMA = pa.schema([(n, pa.string()) for n in ("domain", "chain", "resid_str", "label")])
_BAD_SCHEMA = pa.schema([(n, pa.string()) for n in ("domain", "chain", "resid_str", "detail")])


@dataclass(frozen=True)
class VoxelScan:
    """What the index builder needs from the voxel file.

    Attributes
    ----------
    path : str
        Absolute path of the file.
    perm : numpy.ndarray of int64, shape (5,)
        Channel permutation to canonical order.
    keys : pyarrow.Table
        One row per residue dataset: ``domain, chain, resid_str`` (str), ``resnum`` (int32),
        ``icode`` (str); in file order.
    labels : pyarrow.Table
        ``domain, chain, resid_str, label`` for the residues whose ``label`` was read.
    bad : pyarrow.Table
        ``domain, chain, resid_str, detail`` for datasets that failed the dtype/shape check.
    no_label : pyarrow.Table
        ``domain, chain, resid_str`` of datasets without a ``label`` attribute. The quick scan
        reads a sample of labels per chain and, when one is missing, every label of that
        chain, so quick and deep scans skip the same residues for the same rule.
    empty_domains : list of str
        Domains without any residue dataset.
    key_hash : str
        SHA-256 of the key listing (a fingerprint, not a content hash).
    n_checked : int
        Number of datasets whose dtype and shape were checked.
    """

    path: str
    perm: np.ndarray
    keys: pa.Table
    labels: pa.Table
    bad: pa.Table
    no_label: pa.Table
    empty_domains: list[str]
    key_hash: str
    n_checked: int


def _spread(n: int, k: int) -> np.ndarray:
    """Up to ``k`` indices spread evenly over ``range(n)``, first and last included."""
    if n == 0:
        return np.empty(0, dtype=np.int64)
    return np.unique(np.linspace(0, n - 1, min(k, n)).round().astype(np.int64))


def _check_dataset(
    group: h5py.Group, filename: str, domain: str, chain: str, resid: str, *, read: bool
) -> None:
    """dtype and shape of one dataset; with ``read`` (a deep scan) its data is read too, so a
    damaged compressed chunk is found here and not in the middle of training."""
    obj = group.get(resid)
    where = {"filename": filename, "domain": domain, "chain": chain, "resid": resid}
    validate_grid(obj, **where)
    if obj.dtype == np.uint8 or read:
        try:
            data = obj[()]
        except OSError as exc:  # h5py's error for a chunk that does not decompress
            raise InputError(
                f"{filename}: domain {domain}, chain {chain}, residue {resid}: the voxel data "
                f"cannot be read ({exc}); the file may be damaged: copy or voxelize it again"
            ) from exc
        if obj.dtype == np.uint8:
            validate_grid(data, **where)


def _check_chain(
    group: h5py.Group, path: str, domain: str, chain: str, keys: list[str], deep: bool
) -> tuple[int, list[tuple[str, str]], list[tuple[str, str]], list[str]]:
    """Check dtype/shape and read ``label`` of a sample of one chain's datasets (all if deep).

    Returns the number of datasets checked, ``(resid, problem)`` of failed checks,
    ``(resid, label)`` of labels read and the residues without a label. A missing label in the
    sample makes every label of the chain be read (the same outcome as a deep scan).
    """
    n = len(keys)
    check_at = np.arange(n) if deep else _spread(n, CHECKS_PER_CHAIN)
    label_at = np.arange(n) if deep else _spread(n, LABELS_PER_CHAIN)
    bad = []
    failed = set()
    for i in check_at.tolist():
        try:
            _check_dataset(group, path, domain, chain, keys[i], read=deep)
        except InputError as exc:
            failed.add(i)
            bad.append((keys[i], str(exc)))
    labels = {i: read_label(group, keys[i]) for i in label_at.tolist() if i not in failed}
    if None in labels.values() and len(labels) < n:
        labels = {i: read_label(group, keys[i]) for i in range(n) if i not in failed}
    found = [(keys[i], v) for i, v in labels.items() if v is not None]
    missing = [keys[i] for i, v in labels.items() if v is None]
    return len(check_at), bad, found, missing


def _refuse_keys_of_one_number(keys: pa.Table, path: str) -> None:
    """Refuse two residue keys of one chain that read as one residue (``"2"`` and ``"02"``).

    The CSV joins on the residue number, so its row for that number would become a target on
    both frames.

    Raises
    ------
    InputError
        Naming the first such keys and how many residues have several keys.
    """
    fields = ["domain", "chain", "resnum", "icode"]
    found = repeated_keys(keys, fields)
    if found is None:
        return
    n, first = found
    same = keys.filter(functools.reduce(operator.and_, (pc.field(f) == first[f] for f in fields)))
    names = " and ".join(repr(k) for k in sorted(same["resid_str"].to_pylist()))
    raise InputError(
        f"{path}: {n} residues have several keys in one chain, e.g. {first['domain']}/"
        f"{first['chain']}: residue keys {names} all read as residue number "
        f"{first['resnum']}{first['icode']}; keep one key a residue (its number as written by "
        "str(), optionally followed by an insertion-code letter) and voxelize the file again"
    )


def scan_voxel_file(
    path: str | os.PathLike, *, deep: bool = False, progress: bool = True
) -> VoxelScan:
    """List every residue key of a voxel HDF5 and check a sample of its datasets.

    Parameters
    ----------
    path : path
        aposteriori HDF5 (``f[domain][chain][resid]``).
    deep : bool
        Check dtype, shape and ``label`` of every dataset instead of a sample.
    progress : bool
        Show a progress bar over domains.

    Raises
    ------
    InputError
        Layout problems (a domain or chain that is not a group, unparsable residue keys, two
        keys of one chain for one residue such as ``"2"`` and ``"02"``), or
        every checked dataset failing (a file-wide problem such as the wrong frame size).
    FrameError
        The ``atom_encoder`` or frame size does not match voxelflex's frame.
    """
    path = os.path.abspath(os.fspath(path))
    digest = hashlib.sha256()
    chain_domain: list[str] = []
    chain_name: list[str] = []
    chain_len: list[int] = []
    all_keys: list[str] = []
    lab_rows: tuple[list, list, list, list] = ([], [], [], [])
    bad_rows: tuple[list, list, list, list] = ([], [], [], [])
    unlabelled: tuple[list, list, list] = ([], [], [])
    empty: list[str] = []
    n_checked = 0
    with open_voxel_file(path) as f:
        perm = check_frame(f)
        domains = list(f.keys())
        for domain in tqdm(domains, desc="scan HDF5", unit="domain", disable=not progress):
            dgroup = f[domain]
            if not isinstance(dgroup, h5py.Group):
                raise InputError(
                    f"{path}: root entry {domain!r} is a dataset, expected a domain group "
                    "(aposteriori layout f[domain][chain][resid])"
                )
            n_domain = 0
            for chain in sorted(dgroup.keys()):
                cgroup = dgroup[chain]
                if not isinstance(cgroup, h5py.Group):
                    raise InputError(
                        f"{path}: {domain}/{chain} is a dataset, expected a chain group "
                        "(aposteriori layout f[domain][chain][resid])"
                    )
                keys = list(cgroup.keys())
                digest.update(f"{domain}/{chain}:{chr(31).join(keys)}\n".encode())
                chain_domain.append(domain)
                chain_name.append(chain)
                chain_len.append(len(keys))
                all_keys.extend(keys)
                n_domain += len(keys)
                checked, bad, found, missing = _check_chain(cgroup, path, domain, chain, keys, deep)
                n_checked += checked
                for target, items in ((bad_rows, bad), (lab_rows, found)):
                    for resid, value in items:
                        for col, v in zip(target, (domain, chain, resid, value), strict=True):
                            col.append(v)
                for resid in missing:
                    for col, v in zip(unlabelled, (domain, chain, resid), strict=True):
                        col.append(v)
            if n_domain == 0:
                empty.append(domain)
    if n_checked and len(bad_rows[0]) >= n_checked:
        raise InputError(
            f"{path}: every checked dataset failed ({n_checked} checked), so the file as a "
            f"whole does not fit voxelflex; first problem: {bad_rows[3][0]}"
        )
    lens = np.asarray(chain_len, dtype=np.int64)
    chain_domain_arr = np.asarray(chain_domain, dtype=object)
    chain_name_arr = np.asarray(chain_name, dtype=object)
    resnum, icode = parse_residue_keys(all_keys, where=path)
    keys_table = pa.table(
        {
            "domain": pa.array(np.repeat(chain_domain_arr, lens), pa.string()),
            "chain": pa.array(np.repeat(chain_name_arr, lens), pa.string()),
            "resid_str": pa.array(all_keys, pa.string()),
            "resnum": resnum,
            "icode": icode,
        }
    )
    _refuse_keys_of_one_number(keys_table, path)
    names = ["domain", "chain", "resid_str"]
    return VoxelScan(
        path=path,
        perm=perm,
        keys=keys_table,
        labels=pa.table(dict(zip([*names, "label"], lab_rows, strict=True)), schema=_LABELS_SCHEMA),
        bad=pa.table(dict(zip([*names, "detail"], bad_rows, strict=True)), schema=_BAD_SCHEMA),
        no_label=pa.table(
            dict(zip(names, unlabelled, strict=True)), schema=pa.schema(list(_BAD_SCHEMA)[:3])
        ),
        empty_domains=empty,
        key_hash=digest.hexdigest(),
        n_checked=n_checked,
    )


def read_labels(path: str | os.PathLike, residues: pa.Table, *, progress: bool = True) -> pa.Array:
    """Read the ``label`` attribute of each residue in ``residues`` (domain, chain, resid_str).

    Rows are expected grouped by domain and chain (as in the index). Returns a string array
    aligned with ``residues``; null where a dataset has no ``label``.
    """
    domains = residues.column("domain").to_pylist()
    chains = residues.column("chain").to_pylist()
    resids = residues.column("resid_str").to_pylist()
    out: list[str | None] = []
    with open_voxel_file(path) as f:
        group = None
        current = None
        for domain, chain, resid in tqdm(
            zip(domains, chains, resids, strict=True),
            total=len(resids),
            desc="read labels",
            unit="residue",
            disable=not progress or len(resids) < 10_000,
        ):
            if (domain, chain) != current:
                current = (domain, chain)
                group = f[domain][chain]
            out.append(read_label(group, resid))
    return pa.array(out, pa.string())
