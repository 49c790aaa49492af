"""One check for "these two paths served the same batches", shared by the source tests."""

from __future__ import annotations

import dataclasses

import torch

from voxelflex.sources import Batch


def assert_same_batches(a: list[Batch], b: list[Batch]) -> None:
    """Equal batch counts and, batch by batch, every :class:`Batch` field equal bit for bit."""
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        for field in dataclasses.fields(Batch):
            u, v = getattr(x, field.name), getattr(y, field.name)
            assert (u is None and v is None) or torch.equal(u, v), field.name
