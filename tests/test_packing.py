"""Bit packing: round trips, channel reordering, and equality with the earlier system's input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from voxelflex.frame import CHANNELS, GRID_SHAPE, PACKED_BYTES, channel_permutation
from voxelflex.packing import pack_file_grids, unpack_numpy, unpack_torch

_FILE = (21, 21, 21, 5)


def _grids(seed: int, n: int, density: float) -> np.ndarray:
    """Random bool grids in file layout (x, y, z, channel)."""
    return np.random.default_rng(seed).random((n, *_FILE)) < density


def _earlier_system(grid: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """What the earlier voxelflex fed its model: bool → float32, transpose (3, 0, 1, 2)."""
    x = torch.from_numpy(grid.astype(np.float32)).permute(3, 0, 1, 2)
    return x[torch.from_numpy(perm)].numpy()  # then our canonical channel order


grid_cases = st.tuples(
    st.integers(0, 2**32 - 1), st.integers(1, 3), st.sampled_from([0.0, 0.0002, 0.01, 0.5, 1.0])
)


@settings(max_examples=25, deadline=None)
@given(case=grid_cases, order=st.permutations(CHANNELS))
def test_pack_unpack_round_trip_with_any_channel_order(case, order):
    seed, n, density = case
    canonical = _grids(seed, n, density).transpose(0, 4, 1, 2, 3)  # (n, 5, 21, 21, 21), CHANNELS
    # write the canonical channels into a file whose atom_encoder is `order`
    file_grids = np.empty((n, *_FILE), dtype=bool)
    for file_pos, label in enumerate(order):
        file_grids[..., file_pos] = canonical[:, CHANNELS.index(label)]
    perm = channel_permutation(order)
    packed = pack_file_grids(file_grids, perm)
    assert packed.dtype == np.uint8 and packed.shape == (n, PACKED_BYTES)
    np.testing.assert_array_equal(unpack_numpy(packed), canonical.astype(np.float32))
    torch_out = unpack_torch(torch.from_numpy(packed))
    np.testing.assert_array_equal(torch_out.numpy(), canonical.astype(np.float32))


@settings(max_examples=15, deadline=None)
@given(case=grid_cases, order=st.permutations(CHANNELS))
def test_unpack_equals_earlier_system_processing(case, order):
    seed, n, density = case
    grids = _grids(seed, n, density)
    perm = channel_permutation(order)
    packed = pack_file_grids(grids, perm)
    expected = np.stack([_earlier_system(g, perm) for g in grids])
    assert expected.shape == (n, *GRID_SHAPE)
    np.testing.assert_array_equal(unpack_numpy(packed), expected)
    np.testing.assert_array_equal(unpack_torch(torch.from_numpy(packed)).numpy(), expected)


def test_unpack_torch_low_precision_dtype_keeps_values():
    grids = _grids(1, 2, 0.01)
    packed = torch.from_numpy(pack_file_grids(grids, np.arange(5)))
    out = unpack_torch(packed, torch.bfloat16)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out.float(), unpack_torch(packed))


def test_aposteriori_2_2_channel_order_is_reordered():
    # aposteriori ≤ 2.2 wrote C, N, O, CB, CA: CB in file channel 3 must land in canonical 4.
    grid = np.zeros((1, *_FILE), dtype=bool)
    grid[0, 10, 10, 10, 3] = True
    perm = channel_permutation(["C", "N", "O", "CB", "CA"])
    out = unpack_numpy(pack_file_grids(grid, perm))[0]
    assert out[CHANNELS.index("CB"), 10, 10, 10] == 1 and out.sum() == 1


def test_bad_shapes_and_dtypes_are_refused():
    with pytest.raises(ValueError, match="shape"):
        pack_file_grids(np.zeros((1, 21, 21, 21, 4), dtype=bool), np.arange(5))
    with pytest.raises(ValueError, match="uint8"):
        unpack_torch(torch.zeros((1, PACKED_BYTES), dtype=torch.int32))
    # the reference path refuses the same: np.unpackbits pads short rows with zero bits
    for bad in (np.zeros((2, 100), np.uint8), np.zeros((1, PACKED_BYTES + 1), np.uint8)):
        with pytest.raises(ValueError, match="uint8"):
            unpack_numpy(bad)
        with pytest.raises(ValueError, match="uint8"):
            unpack_torch(torch.from_numpy(bad))
    with pytest.raises(ValueError, match="uint8"):
        unpack_numpy(np.zeros((1, PACKED_BYTES), np.int32))
