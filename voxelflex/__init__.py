"""voxelflex: temperature-aware per-residue protein flexibility from voxelized environments."""

import os

# Idle OpenMP threads sleep instead of spinning. With spinning, torch's CPU ops slowed ~10x as
# soon as another process (a loader worker, another job) shared the cores; set before torch
# loads (an explicit OMP_WAIT_POLICY in the environment wins).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from voxelflex.errors import VoxelflexError
from voxelflex.frame import FRAME, FrameSpec

__version__ = "0.1.0"
__all__ = ["FRAME", "FrameSpec", "VoxelflexError", "__version__"]
