"""Shard source: serves packed rows from the zstd WebDataset shards of ``voxelflex shards build``.

A worker scans (with webdataset's tar iterators) only the shards that hold its domains, keeps
its domains' compressed records in memory (all of mdCATH is ≈100 MB) and decodes each domain
once, in plan order, when its mixing window comes up. Every record is checked against the
manifest: a missing record or member, a truncated tar, a CRC-32 mismatch or a bad zstd frame
raises :class:`~voxelflex.errors.ShardError` naming the shard and the domain.
"""

from __future__ import annotations

import json
import logging
import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zstandard
from webdataset.tariterators import group_by_keys, tar_file_expander

from voxelflex.errors import ShardError, SourceError
from voxelflex.frame import PACKED_BYTES
from voxelflex.index import LoadedIndex
from voxelflex.sources.base import DomainReader, SampleSource, SourceOption
from voxelflex.sources.shards.manifest import (
    KEYS_MEMBER,
    VOX_MEMBER,
    DomainRecord,
    ShardManifest,
)

__all__ = [
    "ShardReader",
    "ShardSource",
    "decode_record",
    "pick_rows",
    "residue_keys",
    "scan_shard",
]

log = logging.getLogger(__name__)

FIX = "rebuild it with `voxelflex shards build` (check all shards with `voxelflex shards verify`)"


def scan_shard(
    path: Path, keys: Sequence[str] | None, expected_bytes: int
) -> tuple[dict[str, dict], str | None]:
    """Read the records ``keys`` (all when None) of one shard with webdataset's tar iterators.

    Parameters
    ----------
    path : Path
        Shard file.
    keys : sequence of str or None
        Record keys to keep; other records are skipped without being stored.
    expected_bytes : int
        Size from the manifest (a difference is reported with any error).

    Returns
    -------
    found : dict
        Record key → members (suffix → bytes), as grouped by ``webdataset``.
    error : str or None
        Why reading stopped early (truncated or damaged tar), or None.
    """
    wanted = None if keys is None else set(keys)

    def select(fname: str) -> bool:
        return wanted is None or fname.split(".", 1)[0] in wanted

    found: dict[str, dict] = {}
    if not path.is_file():
        return found, f"shard file {path} is missing"
    size = path.stat().st_size
    note = (
        "" if size == expected_bytes else f" (file is {size} bytes, manifest says {expected_bytes})"
    )
    try:
        with open(path, "rb") as fh:
            files = tar_file_expander([{"url": str(path), "stream": fh}], select_files=select)
            for sample in group_by_keys(files):
                found[sample["__key__"]] = sample
    except Exception as exc:  # tarfile raises several types on damaged archives
        return found, f"{path} is unreadable after {len(found)} records{note}: {exc.args[0]!r}"
    if note:
        return found, f"{path} is damaged or truncated{note}"
    return found, None


def decode_record(shard: str, record: DomainRecord, members: dict) -> tuple[np.ndarray, dict]:
    """Check and decode one domain record.

    Parameters
    ----------
    shard : str
        Shard path, for messages.
    record : DomainRecord
        The record's manifest entry.
    members : dict
        Member suffix → bytes, as grouped by webdataset.

    Returns
    -------
    rows : numpy.ndarray of uint8, shape (n_residues, 5789), read-only
    keys : dict
        ``{"domain", "chains", "resids"}`` in row order.
    """
    where = f"shard {shard}, domain {record.domain}"
    for member in (VOX_MEMBER, KEYS_MEMBER):
        if member not in members:
            raise ShardError(f"{where}: member {record.key}.{member} is missing; {FIX}")
    vox = members[VOX_MEMBER]
    crc = zlib.crc32(vox)
    if len(vox) != record.vox_bytes or crc != record.crc32:
        raise ShardError(
            f"{where}: checksum mismatch of {record.key}.{VOX_MEMBER} ({len(vox)} bytes, crc32 "
            f"{crc:#010x}; manifest: {record.vox_bytes} bytes, {record.crc32:#010x}); {FIX}"
        )
    try:
        raw = zstandard.ZstdDecompressor().decompress(vox)
    except zstandard.ZstdError as exc:
        raise ShardError(
            f"{where}: bad zstd frame in {record.key}.{VOX_MEMBER} ({exc}); {FIX}"
        ) from exc
    if len(raw) != record.n_residues * PACKED_BYTES:
        raise ShardError(
            f"{where}: {len(raw)} voxel bytes, expected {record.n_residues} rows of "
            f"{PACKED_BYTES}; {FIX}"
        )
    raw_keys = members[KEYS_MEMBER]
    crc = zlib.crc32(raw_keys)
    if len(raw_keys) != record.keys_bytes or crc != record.keys_crc32:
        raise ShardError(
            f"{where}: checksum mismatch of {record.key}.{KEYS_MEMBER} ({len(raw_keys)} bytes, "
            f"crc32 {crc:#010x}; manifest: {record.keys_bytes} bytes, {record.keys_crc32:#010x})"
            f"; {FIX}"
        )
    try:
        keys = json.loads(raw_keys)
        if len(keys["chains"]) != record.n_residues or len(keys["resids"]) != record.n_residues:
            raise ValueError("residue key count differs from the row count")
        if not all(isinstance(k, str) for k in [*keys["chains"], *keys["resids"]]):
            raise ValueError("residue keys are not strings")
    except (ValueError, KeyError, TypeError) as exc:
        raise ShardError(f"{where}: malformed {record.key}.{KEYS_MEMBER} ({exc}); {FIX}") from exc
    if keys.get("domain") != record.domain:
        # A manifest edited (or records swapped) would otherwise serve another domain's voxels.
        raise ShardError(
            f"{where}: record {record.key} holds domain {keys.get('domain')!r}, but the manifest "
            f"lists it as {record.domain!r}; the manifest does not describe these shards: "
            "rebuild them with `voxelflex shards build`"
        )
    return np.frombuffer(raw, dtype=np.uint8).reshape(record.n_residues, PACKED_BYTES), keys


class ShardReader(DomainReader):
    """Reads domains from shards inside one worker.

    Parameters
    ----------
    folder : path
        Shard folder.
    records : dict
        Domain → (shard file name, shard bytes, :class:`DomainRecord`) for the domains served.
    """

    def __init__(
        self, folder: str | os.PathLike, records: dict[str, tuple[str, int, DomainRecord]]
    ):
        self.folder = Path(folder)
        self.records = records
        self._data: dict[str, dict] = {}
        self._errors: dict[str, str] = {}

    def prepare(self, domains: Sequence[str]) -> None:
        """Scan the shards holding ``domains`` and keep those domains' compressed records."""
        by_shard: dict[str, list[str]] = {}
        for d in domains:
            by_shard.setdefault(self.records[d][0], []).append(d)
        for shard in sorted(by_shard):
            doms = by_shard[shard]
            path = self.folder / shard
            keys = {self.records[d][2].key: d for d in doms}
            found, error = scan_shard(path, list(keys), self.records[doms[0]][1])
            for key, d in keys.items():
                if key in found:
                    self._data[d] = found[key]
                else:
                    why = error or "the record is not in the shard"
                    self._errors[d] = f"shard {path}, domain {d}: {why}; {FIX}"

    def read_domain(self, domain: str, chains: np.ndarray, resids: np.ndarray) -> np.ndarray:
        if domain not in self.records:
            raise SourceError(f"domain {domain} is not among this reader's shards")
        if domain not in self._data and domain not in self._errors:
            self.prepare([domain])
        if domain in self._errors:
            raise ShardError(self._errors.pop(domain))
        shard, _, record = self.records[domain]
        where = f"shard {self.folder / shard}, domain {domain}"
        rows, keys = decode_record(str(self.folder / shard), record, self._data.pop(domain))
        take = pick_rows(keys["chains"], keys["resids"], chains, resids, where=where)
        return rows if take is None else rows[take]


def residue_keys(chains: np.ndarray, resids: np.ndarray) -> np.ndarray:
    """One comparable, collision-free string per residue: ``len(chain) ":" chain resid``.

    The length prefix makes the split between chain and residue unambiguous for any strings
    (chain "A" + residue "12" and chain "A1" + residue "2" differ). A NUL separator did not:
    NumPy strips trailing NULs, so both became "A12".
    """
    chains = np.asarray(chains, dtype=str)
    resids = np.asarray(resids, dtype=str)
    prefix = np.char.add(np.char.str_len(chains).astype(str), ":")
    return np.char.add(np.char.add(prefix, chains), resids)


def pick_rows(
    stored_chains, stored_resids, chains: np.ndarray, resids: np.ndarray, *, where: str
) -> np.ndarray | None:
    """Positions in a record (stored keys) of the wanted residues; None when they are equal.

    Shards hold whole domains of the index they were built from; a split may hold only part
    of a domain (residues without RMSF are ``predict`` rows), so its residues are picked by key.

    Parameters
    ----------
    stored_chains, stored_resids : sequence of str, shape (S,)
        The record's residue keys in row order.
    chains, resids : numpy.ndarray of str, shape (R,)
        The residues wanted, in the order the rows must come back.
    where : str
        Shard and domain, for the error.

    Returns
    -------
    numpy.ndarray of int64, shape (R,), or None

    Raises
    ------
    ShardError
        A wanted residue is not in the record.
    """
    stored = residue_keys(stored_chains, stored_resids)
    wanted = residue_keys(chains, resids)
    if stored.shape == wanted.shape and (stored == wanted).all():
        return None
    order = np.argsort(stored, kind="stable")
    pos = np.minimum(np.searchsorted(stored, wanted, sorter=order), len(stored) - 1)
    take = order[pos]
    missing = np.flatnonzero(stored[take] != wanted)
    if len(missing):
        i = int(missing[0])
        raise ShardError(
            f"{where}: residue {(str(chains[i]), str(resids[i]))} of the index is not in the "
            "shard; the shards were built from another index: rebuild them"
        )
    return take.astype(np.int64)


class ShardSource(SampleSource):
    """Serves a split from a shard folder built from the same index.

    Parameters
    ----------
    shards_dir : path
        Folder with ``manifest.json`` (see :func:`voxelflex.sources.shards.writer.build_shards`).
    **common
        ``split``, ``temperatures``, ``on_error``, ``features``: as
        :class:`~voxelflex.sources.base.SampleSource`.
    """

    name = "shards"
    OPTIONS = (
        SourceOption(
            "shards_dir",
            "data.shards_dir",
            required=True,
            help="a shard folder (create one with `voxelflex shards build --index INDEX "
            "--output DIR`)",
        ),
    )

    def __init__(self, index: LoadedIndex, *, shards_dir: str | os.PathLike, **common: Any) -> None:
        super().__init__(index, **common)
        self.shards_dir = Path(shards_dir)
        self.manifest = ShardManifest.load(self.shards_dir)
        index.meta.frame.require_same(
            self.manifest.frame, what="the shards", where=str(self.shards_dir)
        )
        self.manifest.check_index(
            index.meta, index_path=str(index.path), where=str(self.shards_dir)
        )
        dmap = self.manifest.domain_map()
        n_res = np.diff(self.table.domain_res_offsets).tolist()
        missing = [d for d in self.table.domains.tolist() if d not in dmap]
        short = [
            d
            for d, n in zip(self.table.domains.tolist(), n_res, strict=True)
            if d in dmap and dmap[d][1].n_residues < n
        ]
        if missing or short:
            raise ShardError(
                f"{self.shards_dir}: the shards lack {len(missing)} domains and hold too few "
                f"residues for {len(short)} domains of split {self.split!r} (e.g. "
                f"{(missing + short)[:5]}); they were built from another index: rebuild them "
                f"with `voxelflex shards build --index {index.path}`"
            )
        self.records = {
            d: (
                self.manifest.shards[dmap[d][0]].name,
                self.manifest.shards[dmap[d][0]].bytes,
                dmap[d][1],
            )
            for d in self.table.domains.tolist()
        }
        self.n_shards = len({v[0] for v in self.records.values()})

    def make_reader(self) -> ShardReader:
        return ShardReader(self.shards_dir, self.records)

    def loader(self, cfg, epoch, start_batch=0, *, pin_memory=False):
        if self.n_shards < cfg.n_streams:
            log.info(
                "%d shards hold split %r for %d ranks × workers: the plan deals domains, not "
                "shards, so workers share shards and none idles",
                self.n_shards,
                self.split,
                cfg.n_streams,
            )
        return super().loader(cfg, epoch, start_batch, pin_memory=pin_memory)
