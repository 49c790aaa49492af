"""One exception hierarchy for everything voxelflex raises on bad input or state.

Messages name the offending file, domain or residue, what was found, what is allowed, and the fix.
"""

__all__ = [
    "CheckpointError",
    "ConfigError",
    "FrameError",
    "IndexFormatError",
    "InputError",
    "ShardError",
    "SourceError",
    "TrainingError",
    "VoxelflexError",
]


class VoxelflexError(Exception):
    """Root of all voxelflex errors; the CLI prints these without a traceback."""


class InputError(VoxelflexError):
    """A user input file (voxel HDF5, RMSF CSV, split list) is malformed or inconsistent."""


class FrameError(InputError):
    """Voxel frame settings (size, channels, atom encoder) differ from what is expected."""


class ConfigError(VoxelflexError):
    """A configuration key or value is unknown or invalid."""


class IndexFormatError(VoxelflexError):
    """A sample index is missing, of another format version, or stale against its inputs."""


class SourceError(VoxelflexError):
    """A sample source cannot serve the requested data."""


class ShardError(SourceError):
    """A shard is truncated, corrupt, or disagrees with its manifest."""


class CheckpointError(VoxelflexError):
    """A checkpoint is unreadable or incompatible with the data or configuration."""


class TrainingError(VoxelflexError):
    """Training cannot continue (non-finite loss, uneven ranks, ...)."""
