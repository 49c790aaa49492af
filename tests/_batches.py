"""One check for "these two paths served the same batches", shared by the source tests."""

from __future__ import annotations

import dataclasses

from voxelflex.sources import Batch


def assert_same_batches(a: list[Batch], b: list[Batch]) -> None:
    """Equal batch counts and, batch by batch, every :class:`Batch` field equal bit for bit
    (NaN equal to NaN: a prediction batch's targets are all NaN)."""
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        for field in dataclasses.fields(Batch):
            u, v = getattr(x, field.name), getattr(y, field.name)
            if u is None or v is None:
                assert u is None and v is None, field.name
                continue
            assert u.dtype == v.dtype and u.shape == v.shape, field.name
            same = u == v
            if u.is_floating_point():
                same |= u.isnan() & v.isnan()
            assert bool(same.all()), field.name
