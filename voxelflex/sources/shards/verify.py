"""`voxelflex shards verify`: every shard and record checked against the manifest."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from voxelflex.errors import ShardError
from voxelflex.frame import FRAME
from voxelflex.index import LoadedIndex
from voxelflex.sources.shards.manifest import ShardManifest, file_sha256
from voxelflex.sources.shards.reader import decode_record, scan_shard

__all__ = ["ShardVerifyReport", "verify_shards"]


@dataclass(frozen=True)
class ShardVerifyReport:
    """Outcome of :func:`verify_shards`: every problem found, one line each."""

    folder: Path
    n_shards: int
    n_domains: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_shards(
    folder: str | os.PathLike, *, index: LoadedIndex | None = None
) -> ShardVerifyReport:
    """Check every shard against the manifest: size, SHA-256, every record decoded.

    Does not stop at the first problem; the manifest itself must be readable.

    Parameters
    ----------
    folder : path
        Shard folder.
    index : LoadedIndex, optional
        Also check that the shards were built from this index's voxel file (stale shards).
    """
    folder = Path(folder)
    manifest = ShardManifest.load(folder)
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
        path = folder / shard.name
        if path.is_file() and path.stat().st_size == shard.bytes:
            digest = file_sha256(path)
            if digest != shard.sha256:
                problems.append(f"shard {path}: sha256 {digest} differs from the manifest's")
        found, error = scan_shard(path, None, shard.bytes)
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
                decode_record(str(path), record, found[record.key])
            except ShardError as exc:
                problems.append(str(exc))
    return ShardVerifyReport(folder, len(manifest.shards), manifest.n_domains, tuple(problems))
