"""Logging set-up: one console handler and, for a run, ``<run_dir>/logs/voxelflex.log``.

Library modules log through ``logging.getLogger(__name__)`` (children of ``voxelflex``); only the
CLI and :func:`voxelflex.engine.train` call :func:`setup_logging`.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

__all__ = ["LOG_FILE", "setup_logging"]

LOG_FILE = Path("logs") / "voxelflex.log"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_MARK = "_voxelflex_handler"


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
    formatter = logging.Formatter(fmt, datefmt="%Y-%m-%d %H:%M:%S")
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
