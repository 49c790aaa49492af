"""The shard format: bit-packed, zstd-compressed WebDataset tar shards, one record per domain.

``manifest`` (the versioned description of a shard folder), ``writer`` (``voxelflex shards
build``), ``reader`` (the ``shards`` sample source) and ``verify`` (``voxelflex shards verify``)
sit side by side; the reader never imports the writer.
"""

from voxelflex.sources.shards.manifest import ShardManifest
from voxelflex.sources.shards.reader import ShardReader, ShardSource
from voxelflex.sources.shards.verify import ShardVerifyReport, verify_shards
from voxelflex.sources.shards.writer import ShardBuildReport, build_shards

__all__ = [
    "ShardBuildReport",
    "ShardManifest",
    "ShardReader",
    "ShardSource",
    "ShardVerifyReport",
    "build_shards",
    "verify_shards",
]
