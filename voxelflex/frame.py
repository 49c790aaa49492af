"""The one definition of the voxel frame voxelflex models consume.

A frame is a cube of ``VOXELS_PER_SIDE``³ voxels centred on a residue's CA, with one boolean
channel per atom type in the canonical order ``CHANNELS``. aposteriori writes grids as
``(x, y, z, channel)`` in the order of its ``atom_encoder`` attribute, which changed between
versions (2.2: C, N, O, CB, CA; 2.3+: C, N, O, CA, CB); :func:`channel_permutation` maps any
order of the same atoms onto ours and refuses anything else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from voxelflex.errors import FrameError

__all__ = [
    "CHANNELS",
    "FRAME",
    "FRAME_EDGE_LENGTH",
    "GRID_SHAPE",
    "N_VOXELS",
    "PACKED_BYTES",
    "VOXELS_PER_SIDE",
    "FrameSpec",
    "channel_permutation",
    "decode_atom_encoder",
]

VOXELS_PER_SIDE = 21
CHANNELS: tuple[str, ...] = ("C", "N", "O", "CA", "CB")
FRAME_EDGE_LENGTH = 12.0  # Å, aposteriori's default
GRID_SHAPE = (len(CHANNELS), VOXELS_PER_SIDE, VOXELS_PER_SIDE, VOXELS_PER_SIDE)
N_VOXELS = int(np.prod(GRID_SHAPE))  # 46,305
PACKED_BYTES = (N_VOXELS + 7) // 8  # 5,789


@dataclass(frozen=True)
class FrameSpec:
    """Frame settings recorded in every index, shard manifest and checkpoint.

    Attributes
    ----------
    voxels_per_side : int
        Grid size along each axis.
    channels : tuple of str
        Channel labels in model (canonical) order.
    frame_edge_length : float
        Edge of the cube in Å.
    """

    voxels_per_side: int = VOXELS_PER_SIDE
    channels: tuple[str, ...] = CHANNELS
    frame_edge_length: float = FRAME_EDGE_LENGTH

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> FrameSpec:
        return cls(
            voxels_per_side=int(d["voxels_per_side"]),
            channels=tuple(d["channels"]),
            frame_edge_length=float(d["frame_edge_length"]),
        )

    def require_same(self, other: FrameSpec, *, what: str, where: str) -> None:
        """Raise :class:`FrameError` if ``other`` (from ``where``) differs from this frame."""
        if self != other:
            raise FrameError(
                f"{what} in {where} uses frame {other.to_dict()}, but this needs "
                f"{self.to_dict()}; re-voxelize or rebuild with matching frame settings"
            )


FRAME = FrameSpec()


def decode_atom_encoder(raw: object) -> list[str]:
    """Turn an HDF5 ``atom_encoder`` attribute (str, bytes, or an array of either) into labels."""
    if isinstance(raw, bytes | str):
        items: Sequence = [raw]
    else:
        items = list(np.asarray(raw).ravel())
    out = []
    for item in items:
        label = item.decode() if isinstance(item, bytes | np.bytes_) else str(item)
        out.append(label.strip())
    return out


def channel_permutation(
    atom_encoder: Sequence[str], *, source: str = "the voxel file"
) -> np.ndarray:
    """Return indices that reorder a file's channels into :data:`CHANNELS`.

    Parameters
    ----------
    atom_encoder : sequence of str
        Channel labels as written by the voxelizer, in file order.
    source : str
        Name of the file, used in error messages.

    Returns
    -------
    numpy.ndarray of int64, shape (5,)
        ``perm`` such that ``grid_file[..., perm]`` is in canonical order.
    """
    labels = [str(a).strip().upper() for a in atom_encoder]
    if sorted(labels) != sorted(CHANNELS) or len(set(labels)) != len(labels):
        raise FrameError(
            f"{source}: atom_encoder {labels} does not name the atoms {list(CHANNELS)}; "
            "voxelflex models need exactly these five channels (aposteriori option "
            "-ae CNOCBCA with -cb True); re-voxelize with that encoder"
        )
    return np.array([labels.index(c) for c in CHANNELS], dtype=np.int64)
