"""Small readers of the aposteriori voxel HDF5 (``f[domain][chain][resid]``, a dataset a residue).

These functions are shared by the index builder and the HDF5 sample source: open the file, map
its ``atom_encoder`` onto the canonical channels, list a domain's chains and residue keys
(without opening any dataset), and validate one grid. Residue keys are ``str(resnum)`` in
aposteriori files, possibly negative; other writers may append an insertion code (``"52A"``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from voxelflex.errors import FrameError, InputError
from voxelflex.frame import FRAME, channel_permutation, decode_atom_encoder
from voxelflex.paths import require_file

__all__ = [
    "GRID_FILE_SHAPE",
    "ResidueKeys",
    "check_frame",
    "check_grid_layout",
    "check_grid_values",
    "file_permutation",
    "grid_location",
    "list_chains",
    "list_domains",
    "open_voxel_file",
    "parse_residue_keys",
    "read_label",
    "residue_keys",
    "validate_grid",
]

# aposteriori's axis order: x, y, z, channel.
GRID_FILE_SHAPE = (FRAME.voxels_per_side,) * 3 + (len(FRAME.channels),)
_KEY_PATTERN = r"^(?P<num>-?\d+)(?P<icode>[A-Za-z]?)$"


@dataclass(frozen=True)
class ResidueKeys:
    """Residue keys of one chain, sorted by (resnum, icode).

    Attributes
    ----------
    resid_str : numpy.ndarray of object (str), shape (R,)
        Keys exactly as written in the file.
    resnum : numpy.ndarray of int32, shape (R,)
        Residue numbers (may be negative).
    icode : numpy.ndarray of object (str), shape (R,)
        Insertion codes, ``""`` when absent (always so in aposteriori files).
    """

    resid_str: np.ndarray
    resnum: np.ndarray
    icode: np.ndarray

    def __len__(self) -> int:
        return len(self.resid_str)


def open_voxel_file(path: str | os.PathLike) -> h5py.File:
    """Open a voxel HDF5 read-only, with an :class:`InputError` naming the file if that fails."""
    path = os.fspath(path)
    require_file(path, what="voxel file", option="--voxel-file (the aposteriori HDF5 output)")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise InputError(
            f"voxel file {path} is not a readable HDF5 file ({exc}); pass the aposteriori "
            "`make-frame-dataset` output"
        ) from exc


def file_permutation(f: h5py.File) -> np.ndarray:
    """Read the root ``atom_encoder`` and return the channel permutation to canonical order.

    Returns
    -------
    numpy.ndarray of int64, shape (5,)
        ``grid[..., perm]`` is in :data:`voxelflex.frame.CHANNELS` order.
    """
    if "atom_encoder" not in f.attrs:
        raise FrameError(
            f"{f.filename}: root attribute `atom_encoder` is missing, so the channel order is "
            "unknown; re-voxelize with aposteriori `make-frame-dataset -ae CNOCBCA -cb True`"
        )
    labels = decode_atom_encoder(f.attrs["atom_encoder"])
    return channel_permutation(labels, source=f.filename)


def check_frame(f: h5py.File) -> np.ndarray:
    """Check the file's frame attributes against :data:`voxelflex.frame.FRAME`.

    Checks ``atom_encoder`` and, when present, ``frame_edge_length``. Grid size is checked per
    dataset by :func:`validate_grid`. Returns the channel permutation.
    """
    perm = file_permutation(f)
    if "frame_edge_length" in f.attrs:
        edge = float(np.asarray(f.attrs["frame_edge_length"]).ravel()[0])
        if abs(edge - FRAME.frame_edge_length) > 1e-6:
            raise FrameError(
                f"{f.filename}: frame_edge_length is {edge} Å but voxelflex needs "
                f"{FRAME.frame_edge_length} Å; re-voxelize with --frame-edge-length "
                f"{FRAME.frame_edge_length}"
            )
    return perm


def list_domains(f: h5py.File) -> list[str]:
    """Domain keys at the file root, in file order."""
    return list(f.keys())


def list_chains(f: h5py.File, domain: str) -> list[str]:
    """Chain keys of ``domain``, sorted."""
    try:
        group = f[domain]
    except KeyError:
        raise InputError(
            f"{f.filename}: domain {domain!r} not found; check the domain key (the HDF5 key, "
            "not the CSV id) or rebuild the index against this file"
        ) from None
    if not isinstance(group, h5py.Group):
        raise InputError(
            f"{f.filename}: {domain!r} is a dataset, expected a group of chains "
            "(aposteriori layout f[domain][chain][resid])"
        )
    return sorted(group.keys())


def parse_residue_keys(keys: pa.Array | list[str], *, where: str) -> tuple[pa.Array, pa.Array]:
    """Parse residue keys into residue numbers and insertion codes (vectorised).

    Parameters
    ----------
    keys : pyarrow string array or list of str, shape (N,)
    where : str
        File/domain/chain the keys come from, for the error message.

    Returns
    -------
    resnum : pyarrow int32 array, shape (N,)
    icode : pyarrow string array, shape (N,)
    """
    arr = pa.array(keys, type=pa.string())
    parts = pc.extract_regex(arr, _KEY_PATTERN)
    if parts.null_count:
        bad = pc.filter(arr, pc.is_null(parts)).to_pylist()[:5]
        raise InputError(
            f"{where}: residue keys {bad} are not residue numbers (optionally followed by one "
            "insertion-code letter, e.g. '12', '-3', '52A'); fix the voxel file's layout"
        )
    resnum = pc.cast(pc.struct_field(parts, "num"), pa.int32())
    return resnum, pc.struct_field(parts, "icode")


def residue_keys(f: h5py.File, domain: str, chain: str) -> ResidueKeys:
    """List one chain's residue keys without opening any dataset, sorted numerically."""
    try:
        group = f[domain][chain]
    except KeyError:
        raise InputError(
            f"{f.filename}: domain {domain}, chain {chain} not found; check the chain key or "
            "rebuild the index against this file"
        ) from None
    keys = list(group.keys())
    resnum, icode = parse_residue_keys(keys, where=f"{f.filename}: {domain}/{chain}")
    resnum_np = resnum.to_numpy(zero_copy_only=False).astype(np.int32)
    icode_np = np.asarray(icode.to_pylist(), dtype=object)
    order = np.lexsort((icode_np.astype(str), resnum_np))
    return ResidueKeys(
        resid_str=np.asarray(keys, dtype=object)[order],
        resnum=resnum_np[order],
        icode=icode_np[order],
    )


def grid_location(filename: str, domain: str, chain: str, resid: str) -> str:
    """``"FILE: domain D, chain C, residue R"``: how every grid error names its dataset."""
    return f"{filename}: domain {domain}, chain {chain}, residue {resid}"


def check_grid_layout(shape: tuple[int, ...], dtype: np.dtype, *, where: str) -> None:
    """Raise :class:`FrameError` unless a grid has shape (21, 21, 21, 5) and dtype bool or uint8.

    Parameters
    ----------
    shape : tuple of int
        Dataset or array shape.
    dtype : numpy.dtype
        Dataset or array dtype (uint8 must hold 0/1: see :func:`check_grid_values`).
    where : str
        File, domain, chain and residue, from :func:`grid_location`.
    """
    if tuple(shape) != GRID_FILE_SHAPE:
        raise FrameError(
            f"{where}: grid shape {tuple(shape)}, expected {GRID_FILE_SHAPE} "
            f"({FRAME.voxels_per_side} voxels a side, {len(FRAME.channels)} channels); "
            "re-voxelize with --voxels-per-side 21 -ae CNOCBCA -cb True"
        )
    if dtype != np.bool_ and dtype != np.uint8:
        raise FrameError(
            f"{where}: grid dtype {dtype}, expected bool (or uint8 holding 0/1); "
            "gaussian voxels are not supported: re-voxelize with -vas False"
        )


def check_grid_values(grid: np.ndarray, *, where: str) -> None:
    """Raise unless a uint8 grid holds only 0 and 1 (bool grids always pass).

    Parameters
    ----------
    grid : numpy.ndarray of bool or uint8, any shape
    where : str
        File, domain, chain and residue, from :func:`grid_location`.
    """
    if grid.dtype == np.uint8 and grid.max(initial=0) > 1:
        raise InputError(
            f"{where}: uint8 grid holds values above 1; expected 0/1 occupancy: re-voxelize "
            "with -vas False (binary voxels)"
        )


def validate_grid(
    grid: h5py.Dataset | np.ndarray, *, filename: str, domain: str, chain: str, resid: str
) -> None:
    """Raise :class:`InputError` unless ``grid`` is a bool or 0/1 uint8 array of shape (21,21,21,5).

    For an ``h5py.Dataset`` only dtype and shape are checked (no data is read); for a NumPy
    array of uint8 the values are checked too.
    """
    where = grid_location(filename, domain, chain, resid)
    if not isinstance(grid, h5py.Dataset | np.ndarray):
        raise InputError(f"{where}: expected a voxel dataset, found {type(grid).__name__}")
    check_grid_layout(grid.shape, grid.dtype, where=where)
    if isinstance(grid, np.ndarray):
        check_grid_values(grid, where=where)


def read_label(group: h5py.Group, resid: str) -> str | None:
    """Return the ``label`` attribute (3-letter residue name) of ``group[resid]``, None if absent.

    Uses the low-level API (no Dataset object) because it runs once per residue on large files.
    """
    try:
        attr = h5py.h5a.open(group.id, b"label", obj_name=resid.encode())
    except KeyError:
        return None
    buf = np.empty(attr.shape, dtype=attr.dtype)
    attr.read(buf)
    value = buf.item() if buf.shape == () else buf.ravel()[0]
    return value.decode() if isinstance(value, bytes) else str(value)
