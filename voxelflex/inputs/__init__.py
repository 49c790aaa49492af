"""Readers and validators of voxelflex's three inputs: voxel HDF5, RMSF CSV, split files."""

from voxelflex.inputs.id_mapping import IdMapping, map_domain_ids
from voxelflex.inputs.rmsf_csv import read_rmsf_csv
from voxelflex.inputs.splits import read_split_file, read_splits
from voxelflex.inputs.voxel_hdf5 import (
    ResidueKeys,
    check_frame,
    file_permutation,
    list_chains,
    list_domains,
    open_voxel_file,
    parse_residue_keys,
    read_label,
    residue_keys,
    validate_grid,
)
from voxelflex.inputs.voxel_scan import VoxelScan, read_labels, scan_voxel_file

__all__ = [
    "IdMapping",
    "ResidueKeys",
    "VoxelScan",
    "check_frame",
    "file_permutation",
    "list_chains",
    "list_domains",
    "map_domain_ids",
    "open_voxel_file",
    "parse_residue_keys",
    "read_label",
    "read_labels",
    "read_rmsf_csv",
    "read_split_file",
    "read_splits",
    "residue_keys",
    "scan_voxel_file",
    "validate_grid",
]
