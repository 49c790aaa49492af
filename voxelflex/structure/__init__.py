"""Structures in: read PDB/mmCIF files and voxelize them exactly as aposteriori 2.4.0 does.

- :func:`read_structure`: the first model of a PDB or PDBx/mmCIF file (plain or gzip).
- :func:`compute_frames`: every residue's voxel frame, bit-packed, bit-identical to aposteriori.
- :func:`voxelize_files` / :func:`write_voxel_hdf5`: aposteriori's HDF5 layout, written atomically.
- :func:`write_bfactor_copy`: a copy of a structure with per-residue values as B-factors.

Rules and options: ``docs/structures.md``.
"""

from voxelflex.structure.bfactor import (
    BFACTOR_MODES,
    DEFAULT_SENTINEL,
    BfactorReport,
    write_bfactor_copy,
)
from voxelflex.structure.frames import KEY_RULES, FrameSet, Skip, compute_frames
from voxelflex.structure.hdf5 import (
    VOXELIZER_VERSION,
    VoxelizeReport,
    WriteResult,
    voxelize_files,
    write_voxel_hdf5,
)
from voxelflex.structure.io import (
    ALTLOC_RULES,
    STRUCTURE_SUFFIXES,
    Structure,
    domain_key,
    find_structure_files,
    read_structure,
)

__all__ = [
    "ALTLOC_RULES",
    "BFACTOR_MODES",
    "DEFAULT_SENTINEL",
    "KEY_RULES",
    "STRUCTURE_SUFFIXES",
    "VOXELIZER_VERSION",
    "BfactorReport",
    "FrameSet",
    "Skip",
    "Structure",
    "VoxelizeReport",
    "WriteResult",
    "compute_frames",
    "domain_key",
    "find_structure_files",
    "read_structure",
    "voxelize_files",
    "write_bfactor_copy",
    "write_voxel_hdf5",
]
