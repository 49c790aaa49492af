"""One shard record: its checks against the manifest, its decoding, and residue key matching.

A record is a domain's two tar members, read at the byte offsets the manifest lists. Before its
voxels are used it must have the manifest's CRC-32s (a wrong offset fails them), name the
domain the manifest lists it under, and hold well-formed residue keys; the zstd frame then checks
its own size and xxhash.
"""

from __future__ import annotations

import json
import zlib

import numpy as np
import zstandard

from voxelflex.errors import ShardError
from voxelflex.frame import PACKED_BYTES
from voxelflex.sources.shards.manifest import KEYS_MEMBER, VOX_MEMBER, DomainRecord
from voxelflex.sources.shards.store import REBUILD

__all__ = ["FIX", "check_record", "decode_record", "pick_rows", "residue_keys"]

FIX = REBUILD
# One decompression context per process: the frames carry their content size, so decompress()
# allocates the output once; reusing the context saves its set-up per record.
_DECOMPRESSOR = zstandard.ZstdDecompressor()


def check_record(
    shard: str, record: DomainRecord, span: bytes | memoryview
) -> tuple[memoryview, dict]:
    """Check one domain record's bytes against the manifest, short of decoding its voxels.

    Parameters
    ----------
    shard : str
        Shard path or URL, for messages.
    record : DomainRecord
        The record's manifest entry.
    span : bytes-like
        The shard's bytes ``[record.start, record.end)``; shorter when the file ended early.

    Returns
    -------
    vox : memoryview
        The compressed voxel member (its CRC-32 checked).
    keys : dict
        ``{"domain", "chains", "resids"}`` in row order (``chains`` and ``resids`` lists of
        ``n_residues`` strings).

    Raises
    ------
    ShardError
        The record reaches past the end of the file, a member's CRC-32 differs from the
        manifest (a wrong offset included), the record holds another domain, or its residue keys
        are malformed; naming the shard and the domain.
    """
    where = f"shard {shard}, domain {record.domain}"
    if len(span) != record.end - record.start:
        raise ShardError(
            f"{where}: the shard ends {record.end - record.start - len(span)} bytes before the "
            f"end of this record (bytes {record.start}-{record.end - 1}); the file is truncated or "
            f"is not the one the manifest describes; {FIX}"
        )
    view = memoryview(span)

    def member(name: str, offset: int, size: int, expected: int) -> memoryview:
        data = view[offset - record.start :][:size]
        crc = zlib.crc32(data)
        if crc != expected:
            raise ShardError(
                f"{where}: checksum mismatch of {record.key}.{name} ({size} bytes at offset "
                f"{offset}: crc32 {crc:#010x}, manifest {expected:#010x}); {FIX}"
            )
        return data

    vox = member(VOX_MEMBER, record.vox_offset, record.vox_bytes, record.crc32)
    raw_keys = member(KEYS_MEMBER, record.keys_offset, record.keys_bytes, record.keys_crc32)
    try:
        keys = json.loads(bytes(raw_keys))
        named = keys.get("domain") if isinstance(keys, dict) else None
    except ValueError as exc:
        raise ShardError(f"{where}: malformed {record.key}.{KEYS_MEMBER} ({exc}); {FIX}") from exc
    if named != record.domain:
        # Edited offsets or names (or swapped records) would otherwise serve another domain.
        raise ShardError(
            f"{where}: record {record.key} holds domain {named!r}, but the manifest lists it as "
            f"{record.domain!r}; the manifest does not describe these shards: rebuild them with "
            "`voxelflex shards build`"
        )
    try:
        chains, resids = keys["chains"], keys["resids"]
        if type(chains) is not list or type(resids) is not list:
            raise TypeError("chains and resids must be lists")
        if len(chains) != record.n_residues or len(resids) != record.n_residues:
            raise ValueError("residue key count differs from the row count")
        "".join(chains) + "".join(resids)  # TypeError unless every key is a str (at C speed)
    except (ValueError, KeyError, TypeError) as exc:
        raise ShardError(f"{where}: malformed {record.key}.{KEYS_MEMBER} ({exc}); {FIX}") from exc
    return vox, keys


def decode_record(
    shard: str, record: DomainRecord, span: bytes | memoryview
) -> tuple[np.ndarray, dict]:
    """Check (:func:`check_record`) and decode one domain record.

    Returns
    -------
    rows : numpy.ndarray of uint8, shape (n_residues, 5789), read-only
    keys : dict
        ``{"domain", "chains", "resids"}`` in row order.
    """
    vox, keys = check_record(shard, record, span)
    try:
        raw = _DECOMPRESSOR.decompress(vox)  # checks the frame's own xxhash
    except zstandard.ZstdError as exc:
        raise ShardError(
            f"shard {shard}, domain {record.domain}: bad zstd frame in {record.key}.{VOX_MEMBER} "
            f"({exc}); {FIX}"
        ) from exc
    if len(raw) != record.n_residues * PACKED_BYTES:
        raise ShardError(
            f"shard {shard}, domain {record.domain}: {len(raw)} voxel bytes, expected "
            f"{record.n_residues} rows of {PACKED_BYTES}; {FIX}"
        )
    return np.frombuffer(raw, dtype=np.uint8).reshape(record.n_residues, PACKED_BYTES), keys


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
