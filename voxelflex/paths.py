"""Input files that must exist and the one overwrite policy for every output voxelflex writes.

The policy (also in ``docs/formats.md``, "Outputs and overwriting"):

* An output is a local path: a URL is refused (:func:`refuse_url`, for every output option and
  config key).
* An output never resolves to one of the command's inputs (``index build -o voxels.hdf5`` would
  replace the voxel file with a Parquet): refused, naming both.
* An output whose folder, or a folder above it, is a file (``-o results.csv/p.parquet``) is
  refused, naming that file: nothing can be created below it.
* An existing output is refused, naming it and the ways on: ``--resume`` where the command has it,
  another name, or ``--overwrite``.
* A folder that holds the command's own build state (an interrupted ``shards build``) resumes
  without a flag; ``voxelflex demo`` owns its output folder.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from voxelflex.errors import InputError, VoxelflexError
from voxelflex.redaction import redact_url

__all__ = [
    "Location",
    "check_output",
    "decode_utf8",
    "file_in_the_way",
    "is_url",
    "join_location",
    "read_text_file",
    "redact_url",
    "refuse_url",
    "require_file",
    "require_suffix",
    "same_file",
    "split_url",
    "within",
]

# A local path, or a URL that fsspec resolves (https://, s3://, gs://, ...): kept as the str.
Location = Path | str
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")
# The first two bytes of every gzip stream (RFC 1952): a `.csv.gz` given as a text input.
_GZIP_MAGIC = b"\x1f\x8b"


def is_url(location: object) -> bool:
    """True for ``scheme://...`` (two or more scheme letters, so ``C:/`` stays a path)."""
    return isinstance(location, str) and _URL.match(location) is not None


def refuse_url(value: object, what: str, error: type[Exception]) -> None:
    """Raise ``error`` if ``value`` is a URL where voxelflex needs a local path.

    A :class:`~pathlib.Path` would fold ``s3://bucket/runs`` into a local folder
    ``s3:/bucket/runs``.

    Parameters
    ----------
    value : object
        The value given.
    what : str
        What takes the path, in the message: ``"this option"``, ``"config key 'output_dir' in
        run.yaml"``.
    error : type of Exception
        Raised type: ``typer.BadParameter`` for an option, ``ConfigError`` for a config key.
    """
    if is_url(value):
        raise error(
            f"{redact_url(value)} is a URL, but {what} takes a local path: voxelflex writes its "
            "outputs locally, so give a local path and upload the result with your storage tool "
            "(aws s3 cp, gsutil, rclone); download an input first"
        )


def split_url(url: str) -> tuple[str, str, str]:
    """``(folder, file name, query)`` of a file's URL, split at the last ``/`` of its path.

    ``https://host/run/index.parquet?sig=a/b`` gives ``("https://host/run", "index.parquet",
    "?sig=a/b")``: a query (a token that grants a folder, a signature) may hold ``/`` itself.
    """
    base, q, query = url.partition("?")
    folder, _, name = base.rstrip("/").rpartition("/")
    return folder, name, q + query


def join_location(base: Location, name: str) -> Location:
    """``base/name`` for a folder path or a URL (a URL keeps its scheme and ``//``)."""
    if is_url(base):
        return f"{str(base).rstrip('/')}/{name}"
    return Path(base) / name


def require_file(
    path: str | os.PathLike,
    *,
    what: str,
    option: str | None = None,
    error: type[VoxelflexError] = InputError,
) -> Path:
    """Return ``path`` if it is an existing file; else raise ``error`` naming it and the fix.

    Parameters
    ----------
    path : path
    what : str
        What the file is, e.g. ``"RMSF CSV"``.
    option : str, optional
        The option that named it (``--rmsf-csv``), for the hint.
    error : type of VoxelflexError
        Raised type (InputError by default).
    """
    p = Path(path)
    hint = f"; check {option}" if option else ""
    if p.is_dir():
        raise error(f"{what} {p} is a directory, not a file{hint} (name the file itself)")
    if not p.is_file():
        raise error(f"{what} {p} does not exist{hint}")
    return p


def decode_utf8(
    data: bytes, *, what: str, fix: str, error: type[VoxelflexError] = InputError
) -> str:
    """``data`` decoded as UTF-8 whatever the locale (a leading byte-order mark, which Windows
    editors write, is skipped): the one decoding of every text file voxelflex reads.

    Parameters
    ----------
    data : bytes
        The file's bytes (or its first line's), from offset 0.
    what : str
        The file, as messages name it (``"config file run/config.yaml"``).
    fix : str
        What the user does about it (``"save it as UTF-8 plain text"``).
    error : type
        The error to raise (the reader's own: ``ConfigError`` for a config file).

    Raises
    ------
    VoxelflexError
        ``error``: not UTF-8 text (UTF-16, which Windows Notepad's "Unicode" writes, Latin-1,
        or a binary file), naming the file, the first bad byte and its offset, and ``fix``;
        a gzip-compressed file (``rmsf.csv.gz``) is named as such, with gunzip as the fix.
    """
    if data.startswith(_GZIP_MAGIC):
        raise error(
            f"{what} is gzip-compressed, not text; decompress it first (`gunzip -k FILE`) and "
            "pass the uncompressed file"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(
            f"{what} is not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start}); {fix}"
        ) from None


def read_text_file(path: str | os.PathLike, *, what: str, option: str | None = None) -> str:
    """The text of the input file ``path``, read as UTF-8 (:func:`decode_utf8`).

    Parameters
    ----------
    path : path
    what, option : str
        What the file is and the option that named it, for the errors (:func:`require_file`).

    Raises
    ------
    InputError
        A missing file (:func:`require_file`), or one that is not UTF-8 text (:func:`decode_utf8`).
    """
    data = require_file(path, what=what, option=option).read_bytes()
    return decode_utf8(data, what=f"{what} {path}", fix="save it as UTF-8 plain text")


def _local(location: str | os.PathLike) -> str | os.PathLike:
    """The local path a ``file://`` or ``local://`` URL names, as fsspec reads it; else
    ``location`` unchanged."""
    if is_url(location) and location.split("://", 1)[0] in ("file", "local"):
        import fsspec

        return Path(fsspec.core.url_to_fs(location)[1])
    return location


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when ``a`` and ``b`` name the same file (through links, ``..`` and case folding).

    A ``file://`` URL is the local file it names; any other URL is the same as another only
    when the strings are equal, never a local file.
    """
    a, b = _local(a), _local(b)
    if is_url(a) or is_url(b):
        return str(a) == str(b)
    a, b = Path(a), Path(b)
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist (yet): compare the resolved names
        return a.resolve() == b.resolve()


def within(path: str | os.PathLike, place: str | os.PathLike) -> bool:
    """True when ``path`` is ``place`` or lies inside it, through links: the folders above
    ``path`` as given and above the file it resolves to are each compared with
    :func:`same_file`."""
    p = Path(path)
    return any(same_file(q, place) for q in (p, *p.absolute().parents, *p.resolve().parents))


def file_in_the_way(folder: str | os.PathLike) -> Path | None:
    """The first of ``folder`` and the folders above it that exists but is not a folder (a
    file, through links), so that nothing can be created below it; None when there is none.

    Parameters
    ----------
    folder : path
        A folder an output goes into, existing or not.
    """
    folder = Path(folder).absolute()
    for place in (*reversed(folder.parents), folder):
        if not place.exists():  # nothing below it exists either
            return None
        if not place.is_dir():
            return place
    return None


def require_suffix(
    path: str | os.PathLike, suffixes: tuple[str, ...], *, what: str, option: str = "--output"
) -> None:
    """Refuse an output whose name promises another format than the one written (a Parquet
    index named ``x.csv`` shows garbage in a spreadsheet).

    Raises
    ------
    InputError
        ``path`` does not end in one of ``suffixes`` (any case).
    """
    if Path(path).suffix.lower() not in suffixes:
        formats = " or ".join(s.lstrip(".") for s in suffixes)
        raise InputError(
            f"{path}: the {what} is written as {formats}; give {option} a name ending in "
            f"{' or '.join(suffixes)}"
        )


def check_output(
    path: str | os.PathLike,
    *,
    inputs: Mapping[str, str | os.PathLike | None] | Iterable = (),
    overwrite: bool = False,
    option: str = "--output",
    resume: str | None = None,
    what: str = "output",
) -> Path:
    """Apply the overwrite policy to one output file; return it as a :class:`~pathlib.Path`.

    Parameters
    ----------
    path : path
        The file the command is about to write.
    inputs : mapping of name -> path
        The command's inputs (None values are ignored); an output naming one is refused.
    overwrite : bool
        ``--overwrite`` was given: an existing output (not an input) may be replaced.
    option : str
        The option that set ``path``, for messages.
    resume : str, optional
        The flag that continues from the existing output, when the command has one.
    what : str
        What the output is, e.g. ``"index"``.

    Raises
    ------
    InputError
        The output is one of the inputs, a directory, lies below a file, or exists (without
        ``overwrite``).
    """
    p = Path(path)
    pairs = inputs.items() if isinstance(inputs, Mapping) else inputs
    for name, source in pairs:
        if source is not None and same_file(p, source):
            raise InputError(
                f"{option} {p} is the {name} this command reads; writing there would destroy "
                f"that input: choose another {option} path"
            )
    blocker = file_in_the_way(p.parent)
    if blocker is not None:
        raise InputError(
            f"{option} {p}: {blocker} is a file, not a folder, so nothing can be written below "
            f"it; choose another {option} path (or move that file away)"
        )
    if p.is_dir():
        raise InputError(
            f"{option} {p} is a directory, but the {what} is a file: give a file path "
            "(inside that folder, if you like)"
        )
    if p.exists() and not overwrite:
        ways = [f"pass {resume} to continue it"] if resume else []
        ways += [f"choose another {option}", "pass --overwrite to replace it"]
        raise InputError(f"{what} {p} already exists; " + ", or ".join(ways))
    return p
