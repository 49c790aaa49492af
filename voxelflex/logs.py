"""Logging set-up: one console handler and, for a run, ``<run_dir>/logs/voxelflex.log``.

Library modules log through ``logging.getLogger(__name__)`` (children of ``voxelflex``); only the
CLI and :func:`voxelflex.engine.train` call :func:`setup_logging`. Every other command that
writes results logs to a file too, while it runs (:func:`command_log`): into the run folder when
its output lies in one, else beside its output. Read-only commands write no log.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

from voxelflex import __version__
from voxelflex.paths import redact_url

__all__ = ["LOG_FILE", "command_log", "log_file_for", "setup_logging"]

LOG_FILE = Path("logs") / "voxelflex.log"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_MARK = "_voxelflex_handler"


class _RedactingFormatter(logging.Formatter):
    """A formatter that hides URL credentials (:func:`voxelflex.paths.redact_url`) in every line.

    Messages redact the URLs they name; this catches any that does not (an exception's text, a
    third-party message, a value logged as given), in the console and in every log file.
    """

    def format(self, record: logging.LogRecord) -> str:
        return redact_url(super().format(record))


def setup_logging(
    run_dir: str | Path | None = None,
    level: str = "INFO",
    *,
    console: bool = True,
    rank: int | None = None,
) -> Path | None:
    """Route the ``voxelflex`` logger to the console and, given ``run_dir``, to its log file.

    Calling it again replaces the handlers it installed before (not anyone else's).

    Parameters
    ----------
    run_dir : path, optional
        Run folder; the log goes to ``run_dir/logs/voxelflex.log`` (appended, so a resumed run
        keeps one log).
    level : str
        ``DEBUG``, ``INFO``, ``WARNING`` or ``ERROR``.
    console : bool
        Also log to stderr.
    rank : int, optional
        DDP rank, written into every line (torchrun interleaves the ranks' stderr).

    Returns
    -------
    pathlib.Path or None
        The log file, if any.
    """
    logger = logging.getLogger("voxelflex")
    logger.setLevel(level)
    for handler in list(logger.handlers):
        if getattr(handler, _MARK, False):
            logger.removeHandler(handler)
            handler.close()
    fmt = _FORMAT if rank is None else _FORMAT.replace("%(levelname)s", f"rank{rank} %(levelname)s")
    formatter = _RedactingFormatter(fmt, datefmt="%Y-%m-%d %H:%M:%S")
    handlers: list[logging.Handler] = []
    if console:
        handlers.append(logging.StreamHandler(sys.stderr))
    log_path = None
    if run_dir is not None:
        log_path = Path(run_dir) / LOG_FILE
        log_path.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(formatter)
        setattr(handler, _MARK, True)
        logger.addHandler(handler)
    logger.propagate = False
    return log_path


def log_file_for(output: str | Path) -> Path:
    """Where a command that writes ``output`` logs.

    Into the run folder when ``output`` lies in one (``<run>/metrics/predictions_test.parquet``,
    ``<run>/visualizations``: a folder with ``logs/voxelflex.log``, or ``models/`` beside
    ``training_history.json``, from ``voxelflex train``; a project folder that merely has a
    ``models/`` subfolder is not a run), as
    ``<run>/logs/voxelflex.log``; else beside ``output``, as ``<output stem>.log``
    (``work/index.parquet`` → ``work/index.log``, ``work/shards`` → ``work/shards.log``).
    """
    output = Path(output).absolute()
    for folder in (output.parent, output.parent.parent):
        run = (folder / "models").is_dir() and (folder / "training_history.json").is_file()
        if run or (folder / LOG_FILE).is_file():
            return folder / LOG_FILE
    return output.with_name(output.stem + ".log")


@contextlib.contextmanager
def command_log(output: str | Path, what: str) -> Iterator[Path]:
    """Also write the ``voxelflex`` log to :func:`log_file_for` ``(output)`` while active.

    The file is appended to (reruns and resumed builds keep one log). Records reach it at the
    ``voxelflex`` logger's level (INFO after :func:`setup_logging`); the first line names the
    command and the voxelflex version. Nested use for the same file (a run folder's log that
    :func:`setup_logging` already writes) adds only that line.

    Parameters
    ----------
    output : path
        The command's output file or folder.
    what : str
        The command, e.g. ``"predict"``, for the first line.
    """
    path = log_file_for(output)
    logger = logging.getLogger("voxelflex")
    # The header goes to the file whatever the logger's level (a library caller may not have
    # set one): the log always says which command and version wrote what follows.
    header = logger.makeRecord(
        logger.name, logging.INFO, __file__, 0, "voxelflex %s: %s -> %s",
        (__version__, what, output), None,
    )  # fmt: skip
    existing = next(
        (
            h
            for h in logger.handlers
            if isinstance(h, logging.FileHandler) and Path(h.baseFilename) == path.absolute()
        ),
        None,
    )
    if existing is not None:
        existing.handle(header)
        yield path
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(_RedactingFormatter(_FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))
    handler.handle(header)
    logger.addHandler(handler)
    try:
        yield path
    finally:
        logger.removeHandler(handler)
        handler.close()
