"""Adding a sample source or an architecture is one class plus one registry line.

Each test registers a toy implementation (what a new file would hold), trains one epoch of a few
steps with it through the ordinary config, and removes it again.
"""

from __future__ import annotations

import hashlib
from typing import ClassVar

import numpy as np
import pytest
from torch import nn

from voxelflex.config import load_config
from voxelflex.engine import train
from voxelflex.frame import PACKED_BYTES
from voxelflex.registry import ARCHITECTURES, SOURCES
from voxelflex.sources import DomainReader, SampleSource, SourceOption

pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create")


class _NoiseReader(DomainReader):
    def __init__(self, density: float) -> None:
        self.density = density

    def read_domain(self, domain, chains, resids):
        seed = int(hashlib.sha256(domain.encode()).hexdigest()[:8], 16)
        bits = np.random.default_rng(seed).random((len(chains), PACKED_BYTES * 8)) < self.density
        return np.packbits(bits, axis=1)[:, :PACKED_BYTES]


class NoiseSource(SampleSource):
    """A source that needs no files: random grids seeded by the domain name."""

    name = "noise"
    OPTIONS = (SourceOption("shards_dir", "data.shards_dir"),)  # declared, not required

    def __init__(self, index, *, shards_dir=None, **common):
        super().__init__(index, **common)

    def make_reader(self) -> DomainReader:
        return _NoiseReader(0.002)


class FlatTrunk(nn.Module):
    """A trunk as small as it gets: one strided convolution."""

    PRESETS: ClassVar[dict] = {"tiny": {"width": 4}, "small": {"width": 8}, "base": {"width": 16}}

    def __init__(self, in_channels: int, *, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv3d(in_channels, width, 3, stride=4), nn.ReLU())
        self.out_channels = width

    def forward(self, x):
        return self.body(x)


def _run(demo_index, tmp_path, name, *extra):
    overrides = [
        f"data.index={demo_index}",
        f"output_dir={tmp_path}",
        f"run_name={name}",
        "model.preset=tiny",
        "loader.num_workers=0",
        "loader.batch_size=512",
        "train.epochs=1",
        "train.progress=false",
        *extra,
    ]
    return train(load_config(None, overrides))


def test_a_registered_source_trains(demo_index, tmp_path):
    SOURCES.register("noise", NoiseSource)
    try:
        result = _run(demo_index, tmp_path, "noise", "loader.source=noise")
    finally:
        SOURCES.unregister("noise")
    assert result.global_step > 0 and result.best_checkpoint.is_file()
    assert "noise" not in SOURCES


def test_a_registered_architecture_trains(demo_index, tmp_path):
    ARCHITECTURES.register("flat", FlatTrunk)
    try:
        result = _run(demo_index, tmp_path, "flat", "model.name=flat")
    finally:
        ARCHITECTURES.unregister("flat")
    assert result.global_step > 0 and result.history[0]["val"]["n"] > 0
