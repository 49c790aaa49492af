"""`voxelflex shards verify`: every shard and record checked against the manifest."""

from __future__ import annotations

import hashlib
import io
import tarfile
from dataclasses import dataclass

from voxelflex.errors import ShardError
from voxelflex.frame import FRAME
from voxelflex.index import LoadedIndex
from voxelflex.paths import Location
from voxelflex.remote import DEFAULT_RETRIES
from voxelflex.sources.shards.manifest import KEYS_MEMBER, VOX_MEMBER, ShardEntry
from voxelflex.sources.shards.record import decode_record
from voxelflex.sources.shards.store import ShardStore

__all__ = ["ShardVerifyReport", "verify_shards"]


def _tar_problems(data: bytes, shard: ShardEntry, path: str) -> list[str]:
    """What the tar headers say differs from the manifest: members missing, moved or extra.

    The readers never parse tar headers (they read at the manifest's offsets); this is where a
    shard and its manifest are checked to describe the same archive.
    """
    members: dict[str, tuple[int, int]] = {}
    problems = []
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for info in tar:
                members[info.name] = (info.offset_data, info.size)
    except (tarfile.TarError, EOFError, OSError) as exc:
        problems.append(f"{path} is unreadable as a tar after {len(members)} members: {exc}")
    listed = set()
    for r in shard.records:
        for member, offset, size in (
            (VOX_MEMBER, r.vox_offset, r.vox_bytes),
            (KEYS_MEMBER, r.keys_offset, r.keys_bytes),
        ):
            name = f"{r.key}.{member}"
            listed.add(name)
            if name not in members:
                problems.append(f"shard {path}, domain {r.domain}: member {name} is missing")
            elif members[name] != (offset, size):
                problems.append(
                    f"shard {path}, domain {r.domain}: member {name} is at offset "
                    f"{members[name][0]} ({members[name][1]} bytes) in the tar, the manifest "
                    f"says {offset} ({size} bytes)"
                )
    for name in sorted(set(members) - listed):
        problems.append(f"shard {path}: member {name} is not in the manifest")
    return problems


@dataclass(frozen=True)
class ShardVerifyReport:
    """Outcome of :func:`verify_shards`: every problem found, one line each.

    ``index_mismatch`` says why the index given does not belong to the shards (``None``: it
    does, or none was given); it is no damage of the shards, so not among ``problems``.
    """

    folder: Location
    n_shards: int
    n_domains: int
    problems: tuple[str, ...]
    index_mismatch: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems and self.index_mismatch is None


def verify_shards(
    folder: Location, *, index: LoadedIndex | None = None, retries: int = DEFAULT_RETRIES
) -> ShardVerifyReport:
    """Check every shard against the manifest: size, SHA-256, the tar's members at the
    manifest's offsets, every record decoded.

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
    mismatch = (
        None if index is None else manifest.index_mismatch(index.meta, index_path=str(index.path))
    )
    for shard in manifest.shards:
        path = store.where(shard.name)
        try:
            data = store.read_shard(shard)
        except ShardError as exc:
            problems.append(str(exc))
            problems += [f"shard {path}, domain {r.domain}: not checked" for r in shard.records]
            continue
        if len(data) != shard.bytes:
            problems.append(
                f"{path} is damaged or truncated (file is {len(data)} bytes, manifest says "
                f"{shard.bytes})"
            )
        elif (digest := hashlib.sha256(data).hexdigest()) != shard.sha256:
            problems.append(f"shard {path}: sha256 {digest} differs from the manifest's")
        problems += _tar_problems(data, shard, path)
        for record in shard.records:
            try:
                decode_record(path, record, memoryview(data)[record.start : record.end])
            except ShardError as exc:
                problems.append(str(exc))
    return ShardVerifyReport(
        folder, len(manifest.shards), manifest.n_domains, tuple(problems), mismatch
    )
