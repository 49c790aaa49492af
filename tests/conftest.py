"""Shared fixtures: the demo generator's small dataset and an index built from it."""

from __future__ import annotations

import logging

import pytest

from voxelflex.demo.generate import DemoPaths, build_demo_index, generate_demo


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> DemoPaths:
    """24 domains of 30-60 residues, 5 temperatures (≈5.4 k CSV rows); do not modify in tests."""
    return generate_demo(tmp_path_factory.mktemp("demo"), n_domains=24, seed=0)


@pytest.fixture(scope="session")
def demo_index(demo_data, tmp_path_factory):
    """Path of the sample index built from :func:`demo_data` (train/val/test splits, nm)."""
    out = tmp_path_factory.mktemp("index") / "index.parquet"
    build_demo_index(demo_data, out)
    return out


@pytest.fixture(autouse=True)
def _reset_voxelflex_logging():
    """Undo :func:`voxelflex.logs.setup_logging` after each test.

    It installs handlers and stops propagation (as a CLI run should), which would hide later
    tests' log records from ``caplog`` and keep run log files open.
    """
    yield
    logger = logging.getLogger("voxelflex")
    for handler in [h for h in logger.handlers if getattr(h, "_voxelflex_handler", False)]:
        logger.removeHandler(handler)
        handler.close()
    logger.propagate = True
    logger.setLevel(logging.NOTSET)
