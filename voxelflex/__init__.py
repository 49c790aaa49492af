"""voxelflex: temperature-aware per-residue protein flexibility from voxelized environments."""

from voxelflex.errors import VoxelflexError
from voxelflex.frame import FRAME, FrameSpec

__version__ = "0.1.0"
__all__ = ["FRAME", "FrameSpec", "VoxelflexError", "__version__"]
