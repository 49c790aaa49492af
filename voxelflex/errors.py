"""One exception hierarchy for everything voxelflex raises on bad input or state.

Messages name the offending file, domain or residue, what was found, what is allowed, and the fix.
"""

from voxelflex.redaction import redact_url

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DomainRefused",
    "FetchError",
    "FrameError",
    "IndexFormatError",
    "InputError",
    "ResidueReadError",
    "ServerError",
    "ShardError",
    "SourceError",
    "TrainingError",
    "VoxelflexError",
]


class VoxelflexError(Exception):
    """Root of all voxelflex errors; the CLI prints these without a traceback.

    A URL in the message keeps neither its ``user:token@`` nor its query (:func:`redact_url`):
    messages name the inputs, and a library caller logs or shows ``str(exc)`` as it is.
    """

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact_url(a) if isinstance(a, str) else a for a in args))


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


class FetchError(SourceError):
    """A file at a URL could not be fetched: not found, refused, or broken after retries."""


class ServerError(VoxelflexError):
    """A server cannot serve the data at all (it ignores byte-range requests).

    Not a :class:`SourceError`: it stops every command, whatever its ``on_error`` policy, since
    skipping would drop every domain the server holds.
    """


class ShardError(SourceError):
    """A shard is truncated, corrupt, or disagrees with its manifest."""


class ResidueReadError(SourceError):
    """Some residues of a domain could not be read; the others were.

    Raised by a source's domain reader. Under ``on_error="raise"`` the first bad residue's own
    error stops the epoch; under ``"skip"`` the readable rows are served and each bad residue
    is skipped with its own reason.

    Attributes
    ----------
    rows : numpy.ndarray of uint8, shape (R, 5789)
        Packed rows of the domain, zeros where ``bad`` lists a residue.
    bad : dict of int -> VoxelflexError
        Position (in the requested order) → the error that residue raised.
    """

    def __init__(self, rows, bad: dict[int, VoxelflexError]) -> None:
        more = f" (and {len(bad) - 1} more residues of this domain)" if len(bad) > 1 else ""
        super().__init__(f"{bad[min(bad)]}{more}")
        self.rows = rows
        self.bad = bad

    @property
    def first(self) -> VoxelflexError:
        """The first bad residue's own error (what ``on_error="raise"`` raises)."""
        return self.bad[min(self.bad)]

    def __reduce__(self):
        # Crossing a process boundary (DataLoader or build worker) only the message matters.
        return SourceError, (str(self),)


class DomainRefused(InputError):
    """One domain of a dataset import cannot be used; the import skips it and reports ``reason``.

    Parameters
    ----------
    reason : str
        Short machine-readable reason (``residue_count_mismatch``, ...), a column of the report.
    detail : str
        What was found and the fix, naming the file.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = self.args[0]  # as redacted

    def __reduce__(self):
        return DomainRefused, (self.reason, self.detail)


class CheckpointError(VoxelflexError):
    """A checkpoint is unreadable or incompatible with the data or configuration."""


class TrainingError(VoxelflexError):
    """Training cannot continue (non-finite loss, uneven ranks, ...)."""
