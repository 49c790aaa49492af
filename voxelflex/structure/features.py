"""Per-residue context features computed from a static structure, and their Parquet sidecar.

An aposteriori frame shows only the backbone within ±6 Å of a residue; flexibility also depends
on packing at longer range and on where the residue sits in its chain. :func:`compute_features`
derives those context descriptors from one model of a structure (never from B-factors or
occupancies, which are what users want predicted), for every chain of the file and for the
residues the voxelizer frames: protein residues with N, CA and C.

What counts as the environment
------------------------------
Only protein residues: ATOM records that biotite classifies as amino acids
(``filter_amino_acids``) or that have N, CA and C (force-field names such as CHARMM's HSD), and,
as the voxelizer reads them, HETATM residues with N, CA, C and O and a three-letter name in a
chain with standard ATOM residues (MSE, CAS, inhibitor groups the CCD does not call amino
acids); other HETATM residues are ligands, as in the frames. Water, ions, ligands and nucleic
acids are ignored everywhere, so a crystal structure with ligands and the same protein stripped for
simulation (mdCATH) are described alike. Hydrogens (element H or D; atom names starting with H
when the element column is empty) are dropped first, so a CHARMM file with hydrogens and a
crystal structure without them give the same features. Every chain of the file belongs to the
environment of every other chain.

Keys
----
:func:`compute_features` gives one row per framed residue, in file order, with its own chain
id, ``resnum``, ``icode`` and ``resname``; a blank chain and a chain ``"A"`` are two chains.
:func:`feature_table` gives each row the keys of the residue's own frame (same chain id,
number, insertion code and name; :func:`voxelflex.structure.compute_frames` and its key rule):
``chain`` is the chain key (blank becomes ``"A"``), ``resid_str`` the residue key
(``str(resnum)`` under aposteriori's rule, where only the first framed residue of a number has
a frame, even if it carries an insertion code; ``f"{resnum}{icode}"`` under ``keys="icode"``);
residues without a frame get no row.

Features (:data:`FEATURES` holds names, groups, units and definitions; the same text is stored in
every sidecar's footer): inverse-square contact numbers and CA neighbour counts (group
``contact``), Gaussian network model mean-square fluctuation (``gnm``), relative chain position
and distance to the nearest terminus (``position``), relative solvent accessibility (``rsa``), a
P-SEA secondary-structure one-hot (``ss``) and, for crystal structures, the contact number to the
neighbouring copies in the crystal (``lattice``, :mod:`voxelflex.structure.crystal`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import biotite
import biotite.structure as struc
import biotite.structure.info as struc_info
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from biotite.sequence import ProteinSequence

from voxelflex.atomic import atomic_write_parquet
from voxelflex.columns import repeated_keys
from voxelflex.errors import InputError
from voxelflex.structure.crystal import Crystal, lattice_neighbours, ncs_operators
from voxelflex.structure.keys import residue_ids
from voxelflex.structure.residue_codes import FORCE_FIELD_RESIDUES, STANDARD_RESIDUES

log = logging.getLogger(__name__)

__all__ = [
    "BREAK_DISTANCE",
    "FEATURES",
    "FEATURE_GROUPS",
    "FEATURE_NAMES",
    "FORMAT_VERSION",
    "GNM_CUTOFF",
    "GNM_MAX_NODES",
    "KEY_COLUMNS",
    "LATTICE_CUTOFF",
    "MAX_ASA",
    "METADATA_KEY",
    "NEIGHBOUR_RADII",
    "READING_PARAMETERS",
    "SASA_POINTS",
    "FeatureMeta",
    "FeatureProvenance",
    "FeatureSpec",
    "FramedResidues",
    "ResidueFeatures",
    "compute_features",
    "feature_names",
    "feature_table",
    "read_feature_sidecar",
    "write_feature_sidecar",
]

# 6: secondary structure reads the CA of every protein residue, whatever its name (biotite's
# P-SEA reads only the residues the CCD calls amino acids). 5: the NCS copies a file does not
# hold (MTRIX, _struct_ncs_oper generate) join the environment.
# 4: rows take the keys of the residue's own frame (same chain id, number, insertion code and
# name). 3: keyed by the key rule over the residues with N, CA and C, which gave a key to a
# residue without a frame, or chain A's key to chain A when a blank chain (which aposteriori
# stores as A) came later in the file. 2: keyed by number and insertion code. 1: HETATM amino
# acids (MSE, an inhibitor's peptide groups) were ligands.
FORMAT_VERSION = 6
_KEYED_BY_RULE = (
    "could give a frame's key to another residue: a residue without a frame sharing its number "
    "with an insertion-code residue, or chain A when the file also has a blank chain"
)
_KEYED_BY_ICODE = (
    "keyed residues by number and insertion code, so where a residue with an insertion code "
    "comes first of its number (it holds aposteriori's key for that number) the next residue's "
    "features joined its frame, and it took a blank chain and a chain A for one chain"
)
_NOT_GENERATED = (
    "did not generate the NCS copies a file does not hold (PDB MTRIX without iGiven 1, mmCIF "
    "_struct_ncs_oper code generate): residues at their interfaces had too few contacts and too "
    "much accessibility in such files"
)
_SSE_BY_NAME = (
    "left the residues whose names the CCD does not list as amino acids (force-field names such "
    "as HSD, HIE and CYX; HETATM peptide groups) out of the secondary structure: they and their "
    "nearest neighbours were called coil"
)
_OLD_VERSIONS = {
    1: "treated HETATM amino acids (MSE, an inhibitor's peptide groups) as ligands: they have no "
    f"features in it and their neighbours' contact and GNM values leave them out; it also "
    f"{_KEYED_BY_ICODE}; it {_NOT_GENERATED}; and it {_SSE_BY_NAME}",
    2: f"{_KEYED_BY_ICODE}; it also {_NOT_GENERATED}; and it {_SSE_BY_NAME}",
    3: f"{_KEYED_BY_RULE}; it also {_NOT_GENERATED}; and it {_SSE_BY_NAME}",
    4: f"{_NOT_GENERATED}; it also {_SSE_BY_NAME}",
    5: _SSE_BY_NAME,
}
METADATA_KEY = b"voxelflex.features"
# Parameters of the reading of the structures, not of the computation: index build checks them
# against the voxel file's, and a model may meet features of files read either way.
READING_PARAMETERS = ("altloc", "keys")
KEY_COLUMNS = ("domain", "chain", "resid_str", "resnum", "icode", "resname")

GNM_CUTOFF = 7.3  # Å, CA–CA contact cutoff of the Kirchhoff matrix (Bahar et al. 1997)
NEIGHBOUR_RADII = (8.0, 12.0, 16.0)  # Å, CA–CA
BREAK_DISTANCE = 2.0  # Å, C(i)–N(i+1) beyond this is a chain break (a peptide bond is 1.33 Å)
# Shrake–Rupley points per atom. biotite's default (1000) costs ~10x more; per-residue RSA then
# moves by about 0.01 (mean absolute, on real chains; tests/test_features.py checks a bound).
SASA_POINTS = 100
# Above this many CA nodes the Kirchhoff matrix is split by chain (inter-chain contacts dropped):
# a connected component costs one dense O(n³) inverse.
GNM_MAX_NODES = 3000
LATTICE_CUTOFF = 20.0  # Å, reach of the crystal-neighbour contact sum (a lattice sum diverges)
# Residues either side of a residue in the sequence window of the `window` group: B-factors and
# RMSF vary smoothly along a chain, while a single residue's contact sum is noisy (7-residue
# windows lifted a linear fit on the real set's validation chains from 0.742 to 0.763).
WINDOW_HALF = 3
WINDOWED = ("wcn_ca", "wcn_heavy", "wcn_lattice", "rsa")  # the columns the window averages
_MIN_R2 = 1.0  # Å², floor of squared distances in the 1/r² sums (coincident atoms are errors)
_CHUNK = 1 << 20  # pair distances held in memory at once in the contact sums

# Theoretical maximum ASA in Å² (Tien, Meyer, Sydykova, Spielman, Wilke 2013, PLoS ONE 8:e80635,
# table 1, "theoretical"), the usual denominator of relative solvent accessibility.
# fmt: off
MAX_ASA: dict[str, float] = {
    "ALA": 129.0, "ARG": 274.0, "ASN": 195.0, "ASP": 193.0, "CYS": 167.0,
    "GLN": 225.0, "GLU": 223.0, "GLY": 104.0, "HIS": 224.0, "ILE": 197.0,
    "LEU": 201.0, "LYS": 236.0, "MET": 224.0, "PHE": 240.0, "PRO": 159.0,
    "SER": 155.0, "THR": 172.0, "TRP": 285.0, "TYR": 263.0, "VAL": 174.0,
}
# fmt: on
_FALLBACK_MAX_ASA = 200.0  # Å², about the table's median, for residues with no standard parent
_ONE_TO_THREE = {ProteinSequence.convert_letter_3to1(name): name for name in MAX_ASA}


@dataclass(frozen=True)
class FeatureSpec:
    """One feature column.

    Attributes
    ----------
    name : str
        Column name in :class:`ResidueFeatures` and the sidecar.
    group : str
        One of ``contact``, ``gnm``, ``lattice``, ``position``, ``rsa``, ``ss``, ``window``;
        models pick whole groups.
    unit : str
    definition : str
        Exact definition (stored in every sidecar's footer).
    """

    name: str
    group: str
    unit: str
    definition: str


# The copies NCS operators marked not given generate (MTRIX, _struct_ncs_oper generate).
_NCS = "every NCS copy the file does not hold"
_OTHER_CA = f"the CA atoms of all other protein residues of the file (every chain, and {_NCS})"
# Each residue's own features; the window group's are derived from some of them below.
_OWN: tuple[FeatureSpec, ...] = (
    FeatureSpec(
        "wcn_ca",
        "contact",
        "1/Å²",
        f"Σ 1/r² from this residue's CA to {_OTHER_CA}; no cutoff; r² floored at 1 Å²",
    ),
    FeatureSpec(
        "wcn_heavy",
        "contact",
        "1/Å²",
        "Σ 1/r² from this residue's CA to every heavy (non-hydrogen) atom of all other protein "
        f"residues of the file (every chain, and {_NCS}); no cutoff; r² floored at 1 Å²",
    ),
    *(
        FeatureSpec(
            f"n_ca_{r:g}",
            "contact",
            "count",
            f"number of {_OTHER_CA} within {r:g} Å (r ≤ {r:g}) of this residue's CA",
        )
        for r in NEIGHBOUR_RADII
    ),
    FeatureSpec(
        "gnm_msf",
        "gnm",
        "1/γ (Kirchhoff units)",
        f"Gaussian network model mean-square fluctuation [Γ⁺]_ii: Γ is the Kirchhoff matrix of "
        f"the CA atoms of all protein residues of the file (and of {_NCS}) with contacts at "
        f"r ≤ {GNM_CUTOFF:g} Å "
        "(spatial, so chain breaks and other chains are handled by geometry), Γ⁺ its "
        "pseudo-inverse (every zero mode dropped, one per connected component); a residue "
        "without contacts gets the largest value of the file (a file without any contact is "
        "refused); above "
        f"{GNM_MAX_NODES} CA atoms Γ is built per chain",
    ),
    FeatureSpec(
        "wcn_lattice",
        "lattice",
        "1/Å²",
        "Σ 1/r² from this residue's CA to the CA atoms of the file's protein residues (and of "
        f"{_NCS}: the asymmetric unit) in the "
        "other copies of the crystal (every space-group operator and lattice translation of "
        "the file's cell, CRYST1 or mmCIF _cell and _symmetry, except the file's own copy) "
        f"within {LATTICE_CUTOFF:g} Å; r² floored at 1 Å²; 0 unless the file states a "
        "diffraction or crystallography method (EXPDTA, _exptl.method): NMR, EM and simulation "
        "files have no crystal",
    ),
    FeatureSpec(
        "rel_position",
        "position",
        "fraction",
        "k / (n - 1): k the 0-based index of the residue among the n framed residues of its "
        "chain in file order; 0 for a one-residue chain",
    ),
    FeatureSpec(
        "term_distance",
        "position",
        "residues",
        "residues to the nearest end of the residue's chain segment (0 at an end); segments end "
        f"at the chain ends and at chain breaks (C(i)–N(i+1) > {BREAK_DISTANCE:g} Å between "
        "consecutive framed residues, which includes every missing residue)",
    ),
    FeatureSpec(
        "rsa",
        "rsa",
        "fraction",
        f"Shrake–Rupley SASA (biotite.structure.sasa, ProtOr radii, probe 1.4 Å, {SASA_POINTS} "
        "points an atom) summed over the residue's heavy atoms, with every protein heavy atom of "
        f"the file and of {_NCS} occluding, divided by the theoretical maximum ASA of Tien et "
        "al. 2013 (parent "
        f"amino acid for modified residues, {_FALLBACK_MAX_ASA:g} Å² when none); not clipped",
    ),
    *(
        FeatureSpec(
            f"ss_{name}",
            "ss",
            "one-hot",
            f"1 if biotite.structure.annotate_sse (P-SEA, CA geometry, per chain) calls the "
            f"residue {name} ('{code}'), else 0"
            + ("; residues P-SEA leaves unassigned count as coil" if name == "coil" else ""),
        )
        for name, code in (("helix", "a"), ("strand", "b"), ("coil", "c"))
    ),
)


def _window_name(name: str) -> str:
    """Column of the ``window`` group that averages ``name`` (one of :data:`WINDOWED`)."""
    return f"{name}_w{2 * WINDOW_HALF + 1}"


FEATURES: tuple[FeatureSpec, ...] = (
    *_OWN,
    *(
        FeatureSpec(
            _window_name(f.name),
            "window",
            f.unit,
            f"mean of {f.name} over the residues of this residue's chain segment (as for "
            f"term_distance) at most {WINDOW_HALF} framed residues before or after it in file "
            "order, this residue included (fewer near a segment end)"
            + ("; 0 without a crystal, like wcn_lattice" if f.name == "wcn_lattice" else ""),
        )
        for f in _OWN
        if f.name in WINDOWED
    ),
)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
FEATURE_GROUPS: dict[str, tuple[str, ...]] = {
    g: tuple(f.name for f in FEATURES if f.group == g)
    for g in ("contact", "gnm", "lattice", "position", "rsa", "ss", "window")
}


def feature_names(groups: Iterable[str]) -> tuple[str, ...]:
    """Feature names of the given groups, in :data:`FEATURE_NAMES` order.

    Raises
    ------
    InputError
        An unknown group name.
    """
    groups = list(groups)
    unknown = [g for g in groups if g not in FEATURE_GROUPS]
    if unknown:
        raise InputError(f"unknown feature group(s) {unknown}; choose from {list(FEATURE_GROUPS)}")
    return tuple(n for n in FEATURE_NAMES if any(n in FEATURE_GROUPS[g] for g in groups))


@dataclass(frozen=True)
class ResidueFeatures:
    """Features of the framed residues of one structure, in file order.

    Attributes
    ----------
    chain : numpy.ndarray of str, shape (R,)
        Chain id as in the file (blank allowed; :func:`feature_table` gives the voxel file's
        chain key).
    resnum : numpy.ndarray of int32, shape (R,)
        Author residue number.
    icode : numpy.ndarray of str, shape (R,)
        Insertion code, ``""`` when none.
    resname : numpy.ndarray of str, shape (R,)
        Residue name as in the file.
    values : numpy.ndarray of float32, shape (R, F)
        Feature values, columns in the order of ``names`` (units in :data:`FEATURES`).
    names : tuple of str
        Column names of ``values``; :data:`FEATURE_NAMES`.
    """

    chain: np.ndarray
    resnum: np.ndarray
    icode: np.ndarray
    resname: np.ndarray
    values: np.ndarray
    names: tuple[str, ...] = field(default=FEATURE_NAMES)

    def __post_init__(self) -> None:
        n = len(self.resnum)
        if self.values.shape != (n, len(self.names)):
            raise InputError(
                f"feature values have shape {self.values.shape}, expected ({n}, "
                f"{len(self.names)}) for {n} residues and features {list(self.names)}"
            )
        for name in ("chain", "icode", "resname"):
            if len(getattr(self, name)) != n:
                raise InputError(f"{name} has {len(getattr(self, name))} entries, expected {n}")

    def __len__(self) -> int:
        return len(self.resnum)

    def column(self, name: str) -> np.ndarray:
        """Values of feature ``name``, float32 of shape (R,)."""
        if name not in self.names:
            raise InputError(f"unknown feature {name!r}; features are {list(self.names)}")
        return self.values[:, self.names.index(name)]


# --------------------------------------------------------------------------------------------
# selection of the environment and of the framed residues


def _hydrogen_mask(atoms: struc.AtomArray) -> np.ndarray:
    """Hydrogen and deuterium atoms, bool of shape (A,). biotite's readers store elements
    stripped and upper case (guessed from the atom name when the column is empty); string work
    is kept to the atoms that still have no element, as solvated inputs run to 10⁵ atoms."""
    element = atoms.element
    mask = (element == "H") | (element == "D")
    blank = np.flatnonzero(element == "")
    if len(blank):
        name = np.char.upper(np.char.strip(atoms.atom_name[blank].astype(str)))
        mask[blank] = np.char.startswith(name, "H") | np.char.startswith(name, "D")
    return mask


def _check_input(atoms: object, where: str) -> struc.AtomArray:
    if isinstance(atoms, struc.AtomArrayStack):
        raise InputError(
            f"{where}: got {atoms.stack_depth()} models; pass one model (e.g. "
            "`pdb_file.get_structure(model=1)`)"
        )
    if not isinstance(atoms, struc.AtomArray):
        raise InputError(f"{where}: expected a biotite AtomArray, got {type(atoms).__name__}")
    if atoms.array_length() and not np.isfinite(atoms.coord).all():
        bad = int(np.flatnonzero(~np.isfinite(atoms.coord).all(axis=1))[0])
        raise InputError(
            f"{where}: atom {atoms.atom_name[bad]} of chain {str(atoms.chain_id[bad])!r} residue "
            f"{atoms.res_id[bad]}{atoms.ins_code[bad]} has non-finite coordinates; fix the file"
        )
    return atoms


@dataclass(frozen=True)
class _Environment:
    """Protein heavy atoms of a structure, grouped into residues.

    ``atoms`` holds the environment (A atoms); ``res_of_atom`` (A,) its residue index 0..M-1;
    ``n``, ``ca``, ``c`` (M,) the atom index of N, CA, C per residue (-1 when absent).
    """

    atoms: struc.AtomArray
    res_of_atom: np.ndarray
    starts: np.ndarray
    n: np.ndarray
    ca: np.ndarray
    c: np.ndarray


def _named_atom(
    atoms: struc.AtomArray, res_of_atom: np.ndarray, n_res: int, name: str, where: str
) -> np.ndarray:
    hits = np.flatnonzero(atoms.atom_name == name)
    counts = np.bincount(res_of_atom[hits], minlength=n_res)
    if (counts > 1).any():
        r = int(np.flatnonzero(counts > 1)[0])
        i = hits[res_of_atom[hits] == r][0]
        raise InputError(
            f"{where}: chain {str(atoms.chain_id[i])!r} residue {atoms.res_name[i]} "
            f"{atoms.res_id[i]}{atoms.ins_code[i]} has {counts[r]} atoms named {name}; resolve "
            "alternate locations first (e.g. biotite's get_structure(altloc='first'))"
        )
    index = np.full(n_res, -1, dtype=np.int64)
    index[res_of_atom[hits]] = hits
    return index


def _environment(atoms: struc.AtomArray, where: str) -> _Environment:
    heavy = atoms[~_hydrogen_mask(atoms)]
    if heavy.array_length() == 0:
        raise InputError(f"{where}: no heavy atoms; is this a structure file?")
    starts = struc.get_residue_starts(heavy)
    n_res = len(starts)
    res_of_atom = np.repeat(np.arange(n_res), np.diff(np.append(starts, heavy.array_length())))
    n = _named_atom(heavy, res_of_atom, n_res, "N", where)
    ca = _named_atom(heavy, res_of_atom, n_res, "CA", where)
    c = _named_atom(heavy, res_of_atom, n_res, "C", where)
    amino = struc.filter_amino_acids(heavy)[starts]
    solvent = struc.filter_solvent(heavy)[starts]
    backbone = (n >= 0) & (ca >= 0) & (c >= 0)
    hetero = heavy.hetero[starts]
    # HETATM residues follow the voxelizer's rule (voxelflex.structure.residues): one is a
    # residue of its chain when the chain has standard ATOM residues and it has N, CA, C and O
    # and a three-letter name, whether or not the CCD calls it an amino acid; else a ligand.
    names = heavy.res_name[starts].astype(str)
    _, chain = np.unique(heavy.chain_id[starts], return_inverse=True)
    standard = ~hetero & np.isin(names, STANDARD_RESIDUES)
    polypeptide = np.bincount(chain[standard], minlength=chain.max(initial=0) + 1) > 0
    # O only needs to be present (a residue of several waters or a ligand may hold many).
    has_o = np.bincount(res_of_atom[heavy.atom_name == "O"], minlength=n_res) > 0
    amino_like = backbone & has_o & (np.char.str_len(names) == 3) & polypeptide[chain]
    protein = np.where(hetero, amino_like, amino | backbone) & ~solvent
    if not protein.any():
        raise InputError(
            f"{where}: no protein residue (amino acid, or ATOM record with N, CA and C); "
            "features are defined for proteins only"
        )
    keep_atom = protein[res_of_atom]
    atom_offset = np.cumsum(keep_atom) - 1  # index among the kept atoms
    res_offset = np.cumsum(protein) - 1  # index among the kept residues

    def kept(index: np.ndarray) -> np.ndarray:
        index = index[protein]
        return np.where(index >= 0, atom_offset[np.maximum(index, 0)], -1)

    return _Environment(
        atoms=heavy[keep_atom],
        res_of_atom=res_offset[res_of_atom[keep_atom]],
        starts=atom_offset[starts[protein]],
        n=kept(n),
        ca=kept(ca),
        c=kept(c),
    )


# --------------------------------------------------------------------------------------------
# the feature groups


def _contacts(
    ca_xyz: np.ndarray,
    rows: np.ndarray,
    heavy_xyz: np.ndarray,
    heavy_res: np.ndarray,
    gnm_nodes: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Contact sums of the ``rows`` among ``ca_xyz`` (node index = residue index of ``rows``).

    Returns wcn_ca (R,), wcn_heavy (R,), neighbour counts (R, len(NEIGHBOUR_RADII)) and the
    GNM contact pairs (P, 2) among the first ``gnm_nodes`` nodes (all by default; i < j), all
    float64/int64.
    """
    m = len(ca_xyz)
    wcn_ca = np.zeros(len(rows))
    wcn_heavy = np.zeros(len(rows))
    counts = np.zeros((len(rows), len(NEIGHBOUR_RADII)))
    radii2 = np.square(np.asarray(NEIGHBOUR_RADII))
    step = max(1, _CHUNK // max(m, len(heavy_xyz), 1))
    ca2, heavy2 = np.square(ca_xyz).sum(axis=1), np.square(heavy_xyz).sum(axis=1)
    for lo in range(0, len(rows), step):
        sel = rows[lo : lo + step]
        d2 = _sq_dist(ca_xyz[sel], ca_xyz, ca2)
        d2[np.arange(len(sel)), sel] = np.inf  # not this residue itself
        wcn_ca[lo : lo + len(sel)] = (1.0 / np.maximum(d2, _MIN_R2)).sum(axis=1)
        counts[lo : lo + len(sel)] = (d2[:, :, None] <= radii2).sum(axis=1)
        h2 = _sq_dist(ca_xyz[sel], heavy_xyz, heavy2)
        h2[heavy_res[None, :] == sel[:, None]] = np.inf
        wcn_heavy[lo : lo + len(sel)] = (1.0 / np.maximum(h2, _MIN_R2)).sum(axis=1)
    # GNM contacts over all nodes (not only the framed rows), upper triangle.
    pairs = []
    cut2 = GNM_CUTOFF**2
    m = m if gnm_nodes is None else gnm_nodes
    step = max(1, _CHUNK // max(m, 1))
    for lo in range(0, m, step):
        d2 = _sq_dist(ca_xyz[lo : min(lo + step, m)], ca_xyz[:m], ca2[:m])
        i, j = np.nonzero(d2 <= cut2)
        i = i + lo
        pairs.append(np.stack([i[i < j], j[i < j]], axis=1))
    return wcn_ca, wcn_heavy, counts, np.concatenate(pairs) if pairs else np.zeros((0, 2), int)


def _sq_dist(a: np.ndarray, b: np.ndarray, b2: np.ndarray | None = None) -> np.ndarray:
    """Squared distances (Å², float64 (len(a), len(b))) as |a|² + |b|² − 2a·b: one BLAS product
    instead of an (a, b, 3) difference array; in float64 the cancellation error at protein
    coordinates (|x| ≲ 10³ Å) is ~1e-9 Å², far below the 1 Å² floor of the sums. ``b2``:
    |b|², when the caller holds it."""
    b2 = np.square(b).sum(axis=1) if b2 is None else b2
    d2 = np.square(a).sum(axis=1)[:, None] + b2[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d2, 0.0, out=d2)


def _lattice_contacts(
    ca_xyz: np.ndarray, rows: np.ndarray, crystal: Crystal | None, where: str
) -> np.ndarray:
    """wcn_lattice of the ``rows`` among ``ca_xyz`` (float64 (R,)): 1/r² to the CA atoms of the
    crystal's other copies within :data:`LATTICE_CUTOFF`."""
    out = np.zeros(len(rows))
    others = lattice_neighbours(ca_xyz, crystal, LATTICE_CUTOFF, where=where)
    if not len(others):
        return out
    cut2 = LATTICE_CUTOFF**2
    step = max(1, _CHUNK // len(others))
    for lo in range(0, len(rows), step):
        d2 = _sq_dist(ca_xyz[rows[lo : lo + step]], others)
        out[lo : lo + step] = np.where(d2 <= cut2, 1.0 / np.maximum(d2, _MIN_R2), 0.0).sum(axis=1)
    return out


def _components(n_nodes: int, pairs: np.ndarray) -> np.ndarray:
    """Connected-component label (the smallest node index in it) of every node, int64 (n,)."""
    label = np.arange(n_nodes)
    if not len(pairs):
        return label
    while True:
        new = label.copy()
        np.minimum.at(new, pairs[:, 0], label[pairs[:, 1]])
        np.minimum.at(new, pairs[:, 1], label[pairs[:, 0]])
        new = new[new]  # pointer jumping: O(log diameter) rounds instead of O(diameter)
        if np.array_equal(new, label):
            return label
        label = new


def _gnm_msf(
    n_nodes: int, pairs: np.ndarray, node_chain: np.ndarray, *, per_chain: bool
) -> np.ndarray:
    """Diagonal of the Kirchhoff pseudo-inverse, float64 of shape (n_nodes,); with
    ``per_chain`` the contacts between chains (``node_chain``) are dropped first.

    The pseudo-inverse of a block-diagonal Kirchhoff matrix is the block-diagonal of the blocks'
    pseudo-inverses, and for one connected block Γ of n nodes Γ⁺ = (Γ + J/n)⁻¹ − J/n (J all
    ones), so each connected component costs one dense inverse instead of an eigendecomposition.
    """
    if per_chain:
        pairs = pairs[node_chain[pairs[:, 0]] == node_chain[pairs[:, 1]]]
    degree = np.bincount(pairs.ravel(), minlength=n_nodes)
    label = _components(n_nodes, pairs)
    msf = np.zeros(n_nodes)
    local = np.full(n_nodes, -1)
    for root in np.unique(label[degree > 0]):
        nodes = np.flatnonzero(label == root)
        n = len(nodes)
        local[nodes] = np.arange(n)
        p = local[pairs]
        p = p[(p >= 0).all(axis=1)]
        local[nodes] = -1
        k = np.full((n, n), 1.0 / n)
        k[p[:, 0], p[:, 1]] -= 1.0
        k[p[:, 1], p[:, 0]] -= 1.0
        k[np.diag_indices(n)] += degree[nodes]
        msf[nodes] = np.diag(np.linalg.inv(k)) - 1.0 / n
    isolated = degree == 0
    if isolated.any() and (~isolated).any():
        msf[isolated] = msf[~isolated].max()  # no contact: least constrained of the file
    return msf


class _Segments(NamedTuple):
    """Where each of R rows stands in its chain and its chain segment (:func:`_segments`).

    Attributes
    ----------
    order : numpy.ndarray of int, shape (R,)
        Rows sorted by chain, file order within a chain; the other arrays follow this order.
    k, n : numpy.ndarray of int, shape (R,)
        0-based index of the row within its chain, and the chain's row count.
    first, last : numpy.ndarray of int, shape (R,)
        Positions in ``order`` of the first and last row of the row's segment.
    """

    order: np.ndarray
    k: np.ndarray
    n: np.ndarray
    first: np.ndarray
    last: np.ndarray


def _segments(chain_code: np.ndarray, broken_before: np.ndarray) -> _Segments:
    """Chains and segments of R rows.

    Parameters
    ----------
    chain_code : numpy.ndarray of int, shape (R,)
        Chain of each row; the rows of a chain are in file order.
    broken_before : numpy.ndarray of bool, shape (R,)
        A break separates the row from the previous row of its chain.
    """
    order = np.argsort(chain_code, kind="stable")
    code = chain_code[order]
    pos = np.arange(len(code))
    new_chain = np.r_[True, code[1:] != code[:-1]]
    new_segment = new_chain | broken_before[order]
    chain_start = np.maximum.accumulate(np.where(new_chain, pos, 0))
    chain_end = np.r_[np.flatnonzero(new_chain)[1:] - 1, len(code) - 1][np.cumsum(new_chain) - 1]
    first = np.maximum.accumulate(np.where(new_segment, pos, 0))
    last = np.r_[np.flatnonzero(new_segment)[1:] - 1, len(code) - 1][np.cumsum(new_segment) - 1]
    return _Segments(order, pos - chain_start, chain_end - chain_start + 1, first, last)


def _position(seg: _Segments) -> tuple[np.ndarray, np.ndarray]:
    """rel_position and term_distance of the rows, float64 of shape (R,)."""
    pos = np.arange(len(seg.order))
    rel = np.zeros(len(pos))
    term = np.zeros(len(pos))
    rel[seg.order] = np.where(seg.n > 1, seg.k / np.maximum(seg.n - 1, 1), 0.0)
    term[seg.order] = np.minimum(pos - seg.first, seg.last - pos)
    return rel, term


def _window_mean(values: np.ndarray, seg: _Segments) -> np.ndarray:
    """Mean of each column over the rows of a row's segment within :data:`WINDOW_HALF` rows.

    Parameters
    ----------
    values : numpy.ndarray of float, shape (R, C)
    seg : _Segments
        Of the same R rows.

    Returns
    -------
    numpy.ndarray of float64, shape (R, C)
    """
    pos = np.arange(len(seg.order))
    lo = np.maximum(pos - WINDOW_HALF, seg.first)
    hi = np.minimum(pos + WINDOW_HALF, seg.last)
    sums = np.vstack(
        [np.zeros(values.shape[1]), np.cumsum(values[seg.order], axis=0, dtype=np.float64)]
    )
    out = np.empty(values.shape, dtype=np.float64)
    out[seg.order] = (sums[hi + 1] - sums[lo]) / (hi - lo + 1)[:, None]
    return out


def _secondary_structure(
    atoms: struc.AtomArray, res_of_atom: np.ndarray, chain_code: np.ndarray
) -> np.ndarray:
    """P-SEA code of every residue (``"a"``, ``"b"``, ``"c"``, ``""`` without CA), per chain.

    Parameters
    ----------
    atoms : biotite.structure.AtomArray
        The protein heavy atoms (:class:`_Environment`).
    res_of_atom : numpy.ndarray of int, shape (A,)
        Residue index of every atom.
    chain_code : numpy.ndarray of int, shape (M,)
        Chain of every residue.

    Returns
    -------
    numpy.ndarray of str, shape (M,)
    """
    sse = np.full(len(chain_code), "c", dtype="U1")
    for code in np.unique(chain_code):
        res_in_chain = np.flatnonzero(chain_code == code)
        in_chain = chain_code[res_of_atom] == code
        chain_atoms = atoms[in_chain]
        # biotite's P-SEA reads the CA of residues the CCD calls amino acids only, so a
        # force-field name (HSD, HIE, CYX) or a HETATM peptide group would lose its CA and its
        # neighbours their helix: every residue here is protein, so each is named ALA. And it
        # finds residues where chain, number or insertion code change (sym_id too), so two
        # residues of one number that meet in a chain's atoms (the chain in two blocks) would
        # merge: sym_id holds each residue's own index.
        chain_atoms.res_name[:] = "ALA"
        chain_atoms.set_annotation("sym_id", np.searchsorted(res_in_chain, res_of_atom[in_chain]))
        sse[res_in_chain] = struc.annotate_sse(chain_atoms)
    return sse


@functools.lru_cache(maxsize=4096)
def _max_asa(res_name: str) -> float:
    name = FORCE_FIELD_RESIDUES.get(res_name, res_name)
    if name in MAX_ASA:
        return MAX_ASA[name]
    try:
        code = struc_info.one_letter_code(name)
    except Exception:  # an unknown name: the CCD lookup's errors are not part of its contract
        code = None
    return MAX_ASA.get(_ONE_TO_THREE.get(code or "", ""), _FALLBACK_MAX_ASA)


# Terminal-oxygen and CHARMM names that the CCD spells otherwise (ProtOr radii come from the CCD).
_ATOM_ALIASES = {"OT1": "O", "OT2": "OXT", "OC1": "O", "OC2": "OXT", "O1": "O", "O2": "OXT"}


@functools.lru_cache(maxsize=65536)
def _protor_radius(res_name: str, atom_name: str, element: str) -> float:
    res_name = FORCE_FIELD_RESIDUES.get(res_name, res_name)
    atom_name = "CD1" if (res_name, atom_name) == ("ILE", "CD") else atom_name
    atom_name = _ATOM_ALIASES.get(atom_name, atom_name)
    try:
        radius = struc_info.vdw_radius_protor(res_name, atom_name)
    except Exception:  # biotite raises KeyError/ValueError for names the CCD lacks
        radius = None
    if radius is None:
        try:
            radius = struc_info.vdw_radius_single(element)
        except Exception:  # an element biotite does not know
            radius = None
    return float(radius) if radius is not None else 1.8  # 1.8 Å: biotite's own default


def _sasa_radii(atoms: struc.AtomArray) -> np.ndarray:
    """ProtOr radius of every atom (Å, float32 of shape (A,)), with fallbacks for names the
    Chemical Component Dictionary lacks (force-field residue and atom names)."""
    key = np.char.add(
        np.char.add(atoms.res_name.astype(str), "|"),
        np.char.add(np.char.add(atoms.atom_name.astype(str), "|"), atoms.element.astype(str)),
    )
    unique, inverse = np.unique(key, return_inverse=True)
    radii = np.array([_protor_radius(*k.split("|")) for k in unique.tolist()], dtype=np.float32)
    return radii[inverse]


def _own_sasa(atoms: struc.AtomArray, all_xyz: np.ndarray) -> np.ndarray:
    """SASA (Å², float64 (A,)) of the ``atoms`` with the atoms at ``all_xyz`` occluding: the
    atoms themselves first, then their NCS copies (same radii)."""
    radii = _sasa_radii(atoms)
    n = atoms.array_length()
    if len(all_xyz) == n:
        return np.nan_to_num(struc.sasa(atoms, point_number=SASA_POINTS, vdw_radii=radii))
    # Atoms beyond the largest radius plus probe, twice, from every own atom occlude none.
    reach = 2.0 * (float(np.nanmax(radii)) + 1.4) + 1.0
    low, high = all_xyz[:n].min(axis=0) - reach, all_xyz[:n].max(axis=0) + reach
    near = ((all_xyz >= low) & (all_xyz <= high)).all(axis=1)
    near[:n] = True
    index = np.flatnonzero(near)
    occluding = atoms[index % n]  # the same residues, moved
    occluding.coord = all_xyz[index].astype(np.float32)
    own = index < n
    sasa = struc.sasa(
        occluding, point_number=SASA_POINTS, vdw_radii=radii[index % n], atom_filter=own
    )[own]
    return np.nan_to_num(sasa)


def compute_features(
    atoms: struc.AtomArray, *, where: str = "structure", crystal: Crystal | None = None
) -> ResidueFeatures:
    """Context features of every framed residue of one structure model.

    Parameters
    ----------
    atoms : biotite.structure.AtomArray
        One model, alternate locations already resolved; hydrogens, water, ions and ligands may
        be present (they are ignored, see the module docstring). B-factor and occupancy
        annotations, if present, are never read.
    where : str
        Name of the source (file path) used in error messages.
    crystal : Crystal, optional
        The file's crystal (:attr:`voxelflex.structure.Structure.crystal`) for ``wcn_lattice``
        and for the NCS copies the file does not hold (:attr:`Crystal.ncs`, whatever the
        method), which join the environment of every feature but the per-chain ones (never
        rows); None (simulation frames, NMR models): no crystal neighbours, ``wcn_lattice`` 0,
        no copies.

    Returns
    -------
    ResidueFeatures
        One row per protein residue with N, CA and C, in file order; ``values`` float32 of
        shape (R, len(FEATURE_NAMES)), definitions and units in :data:`FEATURES`.

    Raises
    ------
    InputError
        Not a single-model AtomArray, non-finite coordinates, an atom name twice in a residue
        (unresolved alternate locations), no protein residue, or no CA-CA contact (no GNM).
    """
    atoms = _check_input(atoms, where)
    env = _environment(atoms, where)
    a = env.atoms
    xyz = a.coord.astype(np.float64)
    has_ca = env.ca >= 0
    framed = (env.n >= 0) & has_ca & (env.c >= 0)
    if not framed.any():
        raise InputError(
            f"{where}: no protein residue has all of N, CA and C; nothing to compute features for"
        )
    starts = env.starts
    # A blank chain and a chain "A" are two chains here (the voxel file's keys merge their
    # names, not their residues: feature_table drops the later one, as the voxelizer does).
    chain = a.chain_id[starts].astype(str)
    _, chain_code = np.unique(chain, return_inverse=True)

    # CA nodes: every protein residue with a CA; rows: the framed ones among them.
    node_res = np.flatnonzero(has_ca)
    node_of_res = np.full(len(starts), -1)
    node_of_res[node_res] = np.arange(len(node_res))
    row_res = np.flatnonzero(framed)
    rows = node_of_res[row_res]
    # The NCS copies the file does not hold join the environment after the file's own atoms
    # (copy k: nodes k·n + node, chains k·c + chain); they are never rows.
    rotations, vectors = ncs_operators(crystal, xyz[env.ca[node_res]], where=where)
    copies = len(rotations)
    n_nodes, n_chains = len(node_res), int(chain_code.max()) + 1
    moved = (xyz @ r.T + v for r, v in zip(rotations, vectors, strict=True))
    all_xyz = np.concatenate([xyz, *moved])
    ca_xyz = all_xyz[(env.ca[node_res] + len(xyz) * np.arange(copies + 1)[:, None]).ravel()]
    heavy_node = node_of_res[env.res_of_atom]  # -1 for atoms of residues without CA
    # Atoms of a residue without CA are "other residues" for everyone: -2 matches no row.
    heavy_node = np.concatenate(
        [np.where(heavy_node >= 0, heavy_node + k * n_nodes, -2) for k in range(copies + 1)]
    )
    # Above GNM_MAX_NODES Γ is built per chain: the copies' chains then never touch a row's,
    # and each copy's values are its own chain's, so the file's own nodes give the same values.
    per_chain = len(ca_xyz) > GNM_MAX_NODES
    gnm_nodes = n_nodes if per_chain else len(ca_xyz)
    wcn_ca, wcn_heavy, counts, pairs = _contacts(ca_xyz, rows, all_xyz, heavy_node, gnm_nodes)
    if not len(pairs):  # every GNM value would be 0: the least flexible, not undefined
        raise InputError(
            f"{where}: no two CA atoms are within {GNM_CUTOFF:g} Å, so the Gaussian network "
            f"model has no contact ({len(node_res)} CA atom(s)); features need a folded chain, "
            "not a single residue or a sparse trace"
        )
    node_chain = (chain_code[node_res] + n_chains * np.arange(copies + 1)[:, None]).ravel()
    msf = _gnm_msf(gnm_nodes, pairs, node_chain[:gnm_nodes], per_chain=per_chain)[rows]

    row_chain = chain_code[row_res]
    order = np.argsort(row_chain, kind="stable")
    prev = np.full(len(row_res), -1)
    same_chain = row_chain[order][1:] == row_chain[order][:-1]
    prev[order[1:][same_chain]] = row_res[order[:-1][same_chain]]
    gap = np.linalg.norm(xyz[env.n[row_res]] - xyz[env.c[np.maximum(prev, 0)]], axis=1)
    broken_before = (prev >= 0) & (gap > BREAK_DISTANCE)
    segments = _segments(row_chain, broken_before)
    rel, term = _position(segments)

    res_sasa = np.bincount(env.res_of_atom, weights=_own_sasa(a, all_xyz), minlength=len(starts))
    res_names = a.res_name[starts].astype(str)
    rsa = res_sasa[row_res] / np.array([_max_asa(n) for n in res_names[row_res]])

    sse = _secondary_structure(a, env.res_of_atom, chain_code)[row_res]
    columns = {
        "wcn_ca": wcn_ca,
        "wcn_heavy": wcn_heavy,
        **{f"n_ca_{r:g}": counts[:, i] for i, r in enumerate(NEIGHBOUR_RADII)},
        "gnm_msf": msf,
        "wcn_lattice": _lattice_contacts(ca_xyz, rows, crystal, where),
        "rel_position": rel,
        "term_distance": term,
        "rsa": rsa,
        "ss_helix": sse == "a",
        "ss_strand": sse == "b",
        "ss_coil": (sse != "a") & (sse != "b"),
    }
    windowed = _window_mean(np.stack([columns[n] for n in WINDOWED], axis=1), segments)
    columns.update({_window_name(n): windowed[:, i] for i, n in enumerate(WINDOWED)})
    values = np.stack([np.asarray(columns[n], dtype=np.float32) for n in FEATURE_NAMES], axis=1)
    return ResidueFeatures(
        chain=chain[row_res],
        resnum=a.res_id[starts][row_res].astype(np.int32),
        icode=a.ins_code[starts][row_res].astype(str),
        resname=res_names[row_res],
        values=values,
    )


# --------------------------------------------------------------------------------------------
# the sidecar


@dataclass(frozen=True)
class FeatureMeta:
    """Footer metadata of a feature sidecar (under :data:`METADATA_KEY`).

    Attributes
    ----------
    features : tuple of FeatureSpec
        Columns with group, unit and definition.
    parameters : dict
        Cutoffs and settings the values depend on.
    biotite_version : str
    format_version : int
    """

    features: tuple[FeatureSpec, ...] = FEATURES
    parameters: dict = field(default_factory=lambda: _parameters())
    biotite_version: str = biotite.__version__
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(
            {
                "format_version": self.format_version,
                "features": [
                    {"name": f.name, "group": f.group, "unit": f.unit, "definition": f.definition}
                    for f in self.features
                ],
                "parameters": self.parameters,
                "biotite_version": self.biotite_version,
            },
            sort_keys=True,
            ensure_ascii=False,
        )

    def provenance(self) -> FeatureProvenance:
        """What these features' values depend on besides the structures (reading left out)."""
        return FeatureProvenance(
            format_version=self.format_version,
            parameters={k: v for k, v in self.parameters.items() if k not in READING_PARAMETERS},
            biotite_version=self.biotite_version,
        )

    @classmethod
    def from_json(cls, text: str | bytes, *, where: str) -> FeatureMeta:
        fix = "recompute it with `voxelflex features` (or compute_features + write_feature_sidecar)"
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: feature metadata is not valid JSON ({exc}); {fix}") from exc
        version = d.get("format_version") if isinstance(d, dict) else None
        if version in _OLD_VERSIONS:
            log.warning(
                "%s: feature sidecar format version %s %s; %s for features identical to those "
                "`predict --structure` computes",
                where,
                version,
                _OLD_VERSIONS[version],
                fix,
            )
        elif version != FORMAT_VERSION:
            raise InputError(
                f"{where}: feature sidecar format version {version} unsupported, expected "
                f"{FORMAT_VERSION}; {fix}"
            )
        try:
            return cls(
                features=tuple(FeatureSpec(**f) for f in d["features"]),
                parameters=dict(d["parameters"]),
                biotite_version=str(d["biotite_version"]),
                format_version=version,
            )
        except (KeyError, TypeError) as exc:
            raise InputError(
                f"{where}: feature metadata field missing or malformed ({exc!r}); {fix}"
            ) from exc


@dataclass(frozen=True)
class FeatureProvenance:
    """What feature values depend on besides the structures: recorded by the index (from its
    sidecar) and by a checkpoint trained with features, compared at prediction.

    Attributes
    ----------
    format_version : int
        The sidecar format (:data:`FORMAT_VERSION`; what older ones computed otherwise is in
        ``_OLD_VERSIONS``).
    parameters : dict
        Cutoffs and settings of the computation (:class:`FeatureMeta` ``parameters`` without
        :data:`READING_PARAMETERS`).
    biotite_version : str
        The biotite that computed them (SASA for ``rsa``, P-SEA for ``ss``).
    """

    format_version: int
    parameters: dict
    biotite_version: str

    def to_dict(self) -> dict:
        """Plain values (JSON and ``torch.load(weights_only=True)`` alike)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FeatureProvenance:
        """Inverse of :meth:`to_dict`.

        Raises
        ------
        KeyError, TypeError, ValueError
            A field missing or of another type (callers name their file).
        """
        if not isinstance(d, dict):  # a damaged footer or checkpoint: AttributeError below
            raise TypeError(f"feature provenance {d!r}: not a dict")
        if not isinstance(d.get("parameters"), dict):
            raise TypeError(f"feature provenance parameters {d.get('parameters')!r}: not a dict")
        return cls(
            format_version=int(d["format_version"]),
            parameters=dict(d["parameters"]),
            biotite_version=str(d["biotite_version"]),
        )

    def compare(
        self, data: FeatureProvenance, *, trained: str, given: str
    ) -> tuple[str, list[str]]:
        """What differs between the features a model was trained on (``self``) and ``data``.

        Parameters
        ----------
        data : FeatureProvenance
            Of the features the model is about to be given.
        trained, given : str
            What each side is, for the messages (``"checkpoint best.pt"``, ``"index i.parquet"``).

        Returns
        -------
        refusal : str
            ``""``, or a sentence naming the parameters both record with other values: the
            numbers then mean something else to the model.
        warnings : list of str
            Another format version (what the older one computed otherwise), parameters only
            one side records, another biotite version; each with its fix.
        """
        a, b = self.parameters, data.parameters
        differ = sorted(k for k in a.keys() & b.keys() if a[k] != b[k])
        refusal = ""
        if differ:
            said = "; ".join(f"{k} {a[k]!r} ({trained}) vs {b[k]!r} ({given})" for k in differ)
            refusal = (
                f"{given}: features computed with other parameters than those {trained} was "
                f"trained on: {said}; the values mean something else to the model. Give it "
                "features computed with its parameters (the voxelflex it was trained with), or "
                "retrain on these"
            )
        warnings = []
        if self.format_version != data.format_version:
            warnings.append(self._format_warning(data, trained=trained, given=given))
        alone = sorted(a.keys() ^ b.keys())
        if alone:
            said = ", ".join(f"{k} ({trained if k in a else given})" for k in alone)
            warnings.append(
                f"feature parameters only one side records: {said}; {trained} and {given} come "
                "from voxelflex versions with other feature sets. Retrain on features computed "
                "by this voxelflex to be sure"
            )
        if self.biotite_version != data.biotite_version:
            warnings.append(
                f"{trained} was trained on features computed with biotite "
                f"{self.biotite_version}, {given} has biotite {data.biotite_version}'s: rsa "
                "(Shrake–Rupley SASA) and the ss one-hot (P-SEA) come from biotite and can "
                f"differ between versions. Compute them with biotite {self.biotite_version} "
                f"(pip install biotite=={self.biotite_version}) or retrain on these"
            )
        return refusal, warnings

    def _format_warning(self, data: FeatureProvenance, *, trained: str, given: str) -> str:
        """Another format version: what the older one computed otherwise, and the fix."""
        versions = {trained: self.format_version, given: data.format_version}
        unknown = [f"{v} ({w})" for w, v in versions.items() if v > FORMAT_VERSION]
        if unknown:
            return (
                f"{trained} was trained on feature sidecar format {self.format_version}, "
                f"{given} has format {data.format_version}; format {' and '.join(unknown)} is "
                f"newer than this voxelflex's ({FORMAT_VERSION}), which cannot say what differs: "
                "use the voxelflex that wrote it"
            )
        said = "; ".join(
            f"format {v} ({w}) {_OLD_VERSIONS[v]}"
            for w, v in sorted(versions.items(), key=lambda wv: wv[1])
            if v in _OLD_VERSIONS
        )
        fix = (
            f"retrain on an index built from a sidecar recomputed with `voxelflex features` "
            f"(format {FORMAT_VERSION})"
            if self.format_version < data.format_version
            else "recompute the sidecar with `voxelflex features` and rebuild the index with "
            "`voxelflex index build --features`"
        )
        return (
            f"{trained} was trained on feature sidecar format {self.format_version}, but "
            f"{given} has format {data.format_version}: {said}. The residues concerned get "
            f"other feature values than in training; {fix}"
        )


def _parameters() -> dict:
    return {
        "gnm_cutoff_angstrom": GNM_CUTOFF,
        "gnm_max_nodes": GNM_MAX_NODES,
        "neighbour_radii_angstrom": list(NEIGHBOUR_RADII),
        "break_distance_angstrom": BREAK_DISTANCE,
        "sasa_points": SASA_POINTS,
        "sasa_radii": "ProtOr",
        "sasa_probe_angstrom": 1.4,
        "max_asa": "Tien et al. 2013, theoretical",
        "min_r2_angstrom2": _MIN_R2,
        "lattice_cutoff_angstrom": LATTICE_CUTOFF,
    }


class FramedResidues(Protocol):
    """The residues that have frames, with their voxel-file keys (a ``FrameSet`` is one).

    Attributes
    ----------
    chain_ids, icodes, labels : numpy.ndarray of str, shape (R,)
        Chain id as in the file, insertion code, three-letter name as written.
    resnums : numpy.ndarray of int, shape (R,)
    chains, resids : numpy.ndarray of str, shape (R,)
        The voxel file's chain and residue keys.
    """

    chain_ids: np.ndarray
    resnums: np.ndarray
    icodes: np.ndarray
    labels: np.ndarray
    chains: np.ndarray
    resids: np.ndarray


def feature_table(domain: str, features: ResidueFeatures, frames: FramedResidues) -> pa.Table:
    """Sidecar rows of one domain: :data:`KEY_COLUMNS` then one float32 column per feature.

    Each row is a residue with a frame, keyed as the voxel file keys that frame (``chain`` and
    ``resid_str``, :func:`voxelflex.structure.compute_frames` with its key rule); ``resnum``,
    ``icode`` and ``resname`` are the residue's own. A feature row joins a frame only when
    chain id, number, insertion code and name are the same residue's, so a residue's values
    never land on another residue's frame; residues without a frame get no row.

    Parameters
    ----------
    domain : str
    features : ResidueFeatures
        :func:`compute_features` of the structure the frames were computed from.
    frames : FramedResidues
        Its frames (``compute_frames``; only their residue ids and keys are read).
    """
    own = residue_ids(features.chain, features.resnum, features.icode)
    framed = residue_ids(frames.chain_ids, frames.resnums, frames.icodes)
    ids, first, counts = np.unique(own, return_index=True, return_counts=True)
    pos = np.minimum(np.searchsorted(ids, framed), len(ids) - 1)  # compute_features: ids != []
    row = first[pos]
    found = (ids[pos] == framed) & (counts[pos] == 1) & (features.resname[row] == frames.labels)
    frame, row = np.flatnonzero(found), row[found]
    cols = {
        "domain": pa.array([domain] * len(frame), pa.string()),
        "chain": pa.array(frames.chains[frame].tolist(), pa.string()),
        "resid_str": pa.array(frames.resids[frame].tolist(), pa.string()),
        "resnum": pa.array(features.resnum[row], pa.int32()),
        "icode": pa.array(features.icode[row].tolist(), pa.string()),
        "resname": pa.array(features.resname[row].tolist(), pa.string()),
    }
    for i, name in enumerate(features.names):
        cols[name] = pa.array(features.values[row, i], pa.float32())
    return pa.table(cols)


def _schema(names: Iterable[str]) -> pa.Schema:
    keys = [(k, pa.int32() if k == "resnum" else pa.string()) for k in KEY_COLUMNS]
    return pa.schema(keys + [(n, pa.float32()) for n in names])


def _refuse_repeated_keys(table: pa.Table, path: str | os.PathLike) -> None:
    repeated = repeated_keys(table, ["domain", "chain", "resid_str"])
    if repeated:
        n, first = repeated
        raise InputError(
            f"{path}: {n} (domain, chain, resid_str) keys occur twice, e.g. "
            f"{first['domain']}/{first['chain']}/{first['resid_str']}; give each structure file "
            "a distinct domain name"
        )


def write_feature_sidecar(
    path: str | os.PathLike,
    tables: Iterable[pa.Table],
    meta: FeatureMeta | None = None,
    *,
    altloc: str | None = None,
    keys: str | None = None,
) -> int:
    """Write the feature sidecar Parquet atomically; return the number of rows.

    Parameters
    ----------
    path : path
        Output ``.parquet`` file.
    tables : iterable of pyarrow.Table
        :func:`feature_table` outputs, one per domain.
    meta : FeatureMeta, optional
        Defaults to this module's definitions.
    altloc, keys : str, optional
        The reading of the structures (``--altloc``, ``--keys``), recorded in the parameters
        so that ``index build --features`` can refuse a voxel file read another way.

    Raises
    ------
    InputError
        A table without the sidecar columns, or a (domain, chain, resid_str) key twice.
    """
    meta = meta or FeatureMeta()
    rule = {k: v for k, v in (("altloc", altloc), ("keys", keys)) if v is not None}
    if rule:
        meta = dataclasses.replace(meta, parameters={**meta.parameters, **rule})
    schema = _schema(f.name for f in meta.features)
    parts = []
    for t in tables:
        missing = [c for c in schema.names if c not in t.column_names]
        if missing:
            raise InputError(f"feature table lacks columns {missing}; build it with feature_table")
        parts.append(t.select(schema.names).cast(schema))
    table = pa.concat_tables(parts) if parts else schema.empty_table()
    _refuse_repeated_keys(table, path)
    table = table.replace_schema_metadata({METADATA_KEY: meta.to_json().encode("utf-8")})
    atomic_write_parquet(table, path)
    return table.num_rows


def read_feature_sidecar(path: str | os.PathLike) -> tuple[pa.Table, FeatureMeta]:
    """Read a feature sidecar and check its format version and columns.

    Returns
    -------
    table : pyarrow.Table
        :data:`KEY_COLUMNS` and one float32 column per feature.
    meta : FeatureMeta

    Raises
    ------
    InputError
        Missing file, not a Parquet file, no or another version of feature metadata, a
        feature named in the metadata missing from the table, or a key twice.
    """
    path = os.fspath(path)
    fix = "compute it with `voxelflex features`"
    if not os.path.isfile(path):
        raise InputError(f"feature sidecar {path} does not exist; {fix}")
    try:
        table = pq.read_table(path, page_checksum_verification=True)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path} is not a Parquet file or is damaged ({exc}); {fix}") from exc
    kv = table.schema.metadata or {}
    if METADATA_KEY not in kv:
        raise InputError(f"{path} has no voxelflex feature metadata; {fix}")
    meta = FeatureMeta.from_json(kv[METADATA_KEY], where=path)
    expected = _schema(f.name for f in meta.features).names
    missing = [c for c in expected if c not in table.column_names]
    if missing:
        raise InputError(f"{path}: columns {missing} are missing; {fix}")
    _refuse_repeated_keys(table, path)  # a repeat would double index rows in the join
    return table, meta
