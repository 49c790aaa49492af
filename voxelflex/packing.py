"""Bit-packing of voxel grids: how voxels travel from disk to the training device.

A packed row is ``np.packbits`` (big bit order) of the C-order canonical grid
``(5, 21, 21, 21)``: :data:`~voxelflex.frame.PACKED_BYTES` = 5,789 bytes. Grids stay packed
through every loader; :func:`unpack_torch` expands them on the model's device with bitwise ops.
"""

from __future__ import annotations

import numpy as np
import torch

from voxelflex.frame import GRID_SHAPE, N_VOXELS, PACKED_BYTES, VOXELS_PER_SIDE

__all__ = ["pack_file_grids", "unpack_numpy", "unpack_torch"]

_FILE_SHAPE = (VOXELS_PER_SIDE, VOXELS_PER_SIDE, VOXELS_PER_SIDE, GRID_SHAPE[0])


def pack_file_grids(grids: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """Pack grids in the voxelizer's layout into canonical packed rows.

    Parameters
    ----------
    grids : numpy.ndarray, bool or uint8 (0/1), shape (N, 21, 21, 21, 5)
        Axes x, y, z, channel in file channel order.
    perm : numpy.ndarray of int, shape (5,)
        From :func:`voxelflex.frame.channel_permutation`.

    Returns
    -------
    numpy.ndarray of uint8, shape (N, 5789)
    """
    if grids.shape[1:] != _FILE_SHAPE:
        raise ValueError(f"expected grids of shape (N, {_FILE_SHAPE}), got {grids.shape}")
    canonical = np.ascontiguousarray(grids.transpose(0, 4, 1, 2, 3)[:, perm])
    return np.packbits(canonical.reshape(len(grids), N_VOXELS), axis=1, bitorder="big")


def unpack_numpy(packed: np.ndarray) -> np.ndarray:
    """Reference unpacking: packed rows ``uint8 (R, 5789)`` → ``float32 (R, 5, 21, 21, 21)``.

    Refuses what :func:`unpack_torch` refuses: ``np.unpackbits`` pads rows that are too short
    with zeros, which would be a grid with its last voxels empty instead of an error.
    """
    if packed.dtype != np.uint8 or packed.ndim != 2 or packed.shape[1] != PACKED_BYTES:
        raise ValueError(
            f"expected uint8 (R, {PACKED_BYTES}), got {packed.dtype} {tuple(packed.shape)}"
        )
    bits = np.unpackbits(packed, axis=1, count=N_VOXELS, bitorder="big")
    return bits.reshape(len(packed), *GRID_SHAPE).astype(np.float32)


def unpack_torch(packed: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Unpack on whatever device ``packed`` lives on (GPU or CPU), with bitwise ops.

    Parameters
    ----------
    packed : torch.Tensor of uint8, shape (R, 5789)
    dtype : torch.dtype
        Output dtype (float32 by default; bf16/fp16 under mixed precision).

    Returns
    -------
    torch.Tensor, shape (R, 5, 21, 21, 21), values 0 or 1
    """
    if packed.dtype != torch.uint8 or packed.ndim != 2 or packed.shape[1] != PACKED_BYTES:
        raise ValueError(
            f"expected uint8 (R, {PACKED_BYTES}), got {packed.dtype} {tuple(packed.shape)}"
        )
    shifts = torch.arange(7, -1, -1, dtype=torch.uint8, device=packed.device)
    bits = (packed.unsqueeze(-1) >> shifts).bitwise_and_(1)  # in place: one uint8 pass fewer
    bits = bits.view(packed.shape[0], PACKED_BYTES * 8)[:, :N_VOXELS]
    return bits.to(dtype).view(packed.shape[0], *GRID_SHAPE)
