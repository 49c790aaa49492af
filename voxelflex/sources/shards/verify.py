"""`voxelflex shards verify`: every shard and record checked against the manifest."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from voxelflex.errors import ShardError
from voxelflex.frame import FRAME
from voxelflex.index import LoadedIndex
from voxelflex.paths import Location
from voxelflex.remote import DEFAULT_RETRIES
from voxelflex.sources.shards.reader import decode_record
from voxelflex.sources.shards.store import ShardStore

__all__ = ["ShardVerifyReport", "verify_shards"]


@dataclass(frozen=True)
class ShardVerifyReport:
    """Outcome of :func:`verify_shards`: every problem found, one line each."""

    folder: Location
    n_shards: int
    n_domains: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_shards(
    folder: Location, *, index: LoadedIndex | None = None, retries: int = DEFAULT_RETRIES
) -> ShardVerifyReport:
    """Check every shard against the manifest: size, SHA-256, every record decoded.

    Does not stop at the first problem; the manifest itself must be readable.

    Parameters
    ----------
    folder : path or str
        Shard folder, or its URL (each shard is fetched whole once).
    index : LoadedIndex, optional
        Also check that the shards were built from this index's voxel file (stale shards).
    retries : int
        Retries of a failed fetch (URL only; a wrong checksum is reported, not retried).
    """
    store = ShardStore(folder, retries=retries)
    folder = store.location
    manifest = store.manifest()
    problems: list[str] = []
    if manifest.frame != FRAME:
        problems.append(
            f"{folder}: the manifest's frame {manifest.frame.to_dict()} is not voxelflex's "
            f"{FRAME.to_dict()}; rebuild with `voxelflex shards build`"
        )
    if index is not None:
        try:
            manifest.check_index(index.meta, index_path=str(index.path), where=str(folder))
        except ShardError as exc:
            problems.append(str(exc))
    for shard in manifest.shards:
        path = store.where(shard.name)
        try:
            data = store.read_shard(shard)
        except ShardError as exc:
            found, error = {}, str(exc)
        else:
            found, error = store.scan_bytes(data, path)
            if len(data) != shard.bytes:
                note = f" (file is {len(data)} bytes, manifest says {shard.bytes})"
                error = (error + note) if error else f"{path} is damaged or truncated{note}"
            elif (digest := hashlib.sha256(data).hexdigest()) != shard.sha256:
                problems.append(f"shard {path}: sha256 {digest} differs from the manifest's")
        if error:
            problems.append(error)
        listed = {r.key for r in shard.records}
        for key in sorted(set(found) - listed):
            problems.append(f"shard {path}: record {key} is not in the manifest")
        for record in shard.records:
            if record.key not in found:
                why = "not reached: the shard is damaged (above)" if error else "record missing"
                problems.append(f"shard {path}, domain {record.domain}: {why}")
                continue
            try:
                decode_record(path, record, found[record.key])
            except ShardError as exc:
                problems.append(str(exc))
    return ShardVerifyReport(folder, len(manifest.shards), manifest.n_domains, tuple(problems))
