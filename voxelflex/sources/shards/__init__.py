"""The shard format: bit-packed, zstd-compressed WebDataset tar shards, one record per domain.

``manifest`` (the versioned description of a shard folder, with each record's byte offsets),
``writer`` (``voxelflex shards build``), ``record`` (one record's checks and decoding),
``reader`` (the ``shards`` sample source) and ``verify`` (``voxelflex shards verify``) sit side
by side; ``store`` says where a folder lives (a path, or a URL read through fsspec) and
``cache`` keeps shards from a URL on the node. The reader never imports the writer.
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
