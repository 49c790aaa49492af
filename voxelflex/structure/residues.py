"""Which residues and atoms aposteriori 2.4.0 (through ampal 1.5.1) sees in a structure.

The rules, from ampal's ``pdb_parser.py`` and aposteriori's ``create_frame_data_set.py``:

- A residue is every record with the same chain id, residue number and insertion code; chains
  are processed in sorted order of their ids, residues in order of first appearance.
- A chain is a polypeptide when it has ATOM records of the 20 standard amino acids; a chain that
  also has ATOM records of other names is refused by ampal (the whole file). A chain with only
  other ATOM records is a polynucleotide; a chain of HETATM records only is a ligand group.
- A HETATM residue (MSE, CAS, ...) joins its chain as a residue when its atoms, over all
  alternate locations, include N, CA, C and O and its name has three letters; otherwise it is a
  ligand. Ligands and ligand-group chains never appear in any frame.
- Frame atoms are the heavy backbone atoms N, CA, C and O of every residue of a polypeptide or
  polynucleotide chain (atoms named so, element not H), plus a pseudo-CB for every residue of a
  polypeptide chain (glycine too). Nucleotides contribute nothing.
- Every residue of a polypeptide chain gets a frame; ampal refuses the whole file when one of them
  lacks N, CA or C, when one residue id carries two residue names or record types, or (aposteriori)
  when its name is neither standard nor mapped onto a standard residue.

voxelflex voxelizes what it can where aposteriori refuses a file: residues without N, CA or C
are skipped (their other backbone atoms still appear in neighbours' frames), a chain mixing
standard and other ATOM names is read as a polypeptide whose other residues follow the HETATM
rule, and the refusal is reported in :attr:`ResidueTable.aposteriori_rejects`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from voxelflex.structure.io import Structure, residue_groups
from voxelflex.structure.residue_codes import STANDARD_RESIDUES, parent_residue

__all__ = [
    "BACKBONE",
    "ROLE_ATOMS_ONLY",
    "ROLE_FRAME",
    "ROLE_NONE",
    "ResidueTable",
    "residue_table",
]

BACKBONE: tuple[str, ...] = ("N", "CA", "C", "O")
ROLE_NONE, ROLE_ATOMS_ONLY, ROLE_FRAME = 0, 1, 2


@dataclass(frozen=True)
class ResidueTable:
    """ampal's view of a structure: residues in processing order and their backbone atoms.

    Attributes
    ----------
    chain : numpy.ndarray of str, shape (G,)
        Chain id as in the file (``""`` when blank).
    resnum : numpy.ndarray of int64, shape (G,)
        Residue number.
    icode : numpy.ndarray of str, shape (G,)
        Insertion code (``""`` when none).
    label : numpy.ndarray of str, shape (G,)
        Residue name of the chosen conformer.
    hetero : numpy.ndarray of bool, shape (G,)
        HETATM residue.
    role : numpy.ndarray of int8, shape (G,)
        :data:`ROLE_FRAME` (residue of a polypeptide chain: its backbone atoms and pseudo-CB are
        in frames, and it gets a frame when it has N, CA and C), :data:`ROLE_ATOMS_ONLY`
        (residue of a polynucleotide chain: backbone atoms only) or :data:`ROLE_NONE`.
    backbone : numpy.ndarray of int64, shape (G, 4)
        Atom index (into ``Structure.atoms``) of N, CA, C, O; -1 when missing. For a name
        recorded twice in the conformer the last record's, as ampal overwrites.
    backbone_order : numpy.ndarray of int64, shape (G, 4)
        Index of the first record of that name: the atom's place in ampal's write order.
    polypeptide_chains : numpy.ndarray of str
        Chain ids (sorted) read as polypeptides.
    other_chains : dict of str to str
        Chain id -> why it is not voxelized.
    aposteriori_rejects : tuple of str
        Why aposteriori 2.4.0 would refuse the whole file (empty when it reads it).
    """

    chain: np.ndarray
    resnum: np.ndarray
    icode: np.ndarray
    label: np.ndarray
    hetero: np.ndarray
    role: np.ndarray
    backbone: np.ndarray
    backbone_order: np.ndarray
    polypeptide_chains: np.ndarray
    other_chains: dict[str, str]
    aposteriori_rejects: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.chain)

    def describe(self, g: int) -> str:
        """``"chain A residue 52A (SER)"``: how messages name residue ``g``."""
        chain = self.chain[g] or "(blank)"
        return f"chain {chain} residue {self.resnum[g]}{self.icode[g]} ({self.label[g]})"


def _per_group_any(mask: np.ndarray, group: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(group[mask], minlength=n) > 0


def residue_table(structure: Structure) -> ResidueTable:
    """Apply ampal's and aposteriori's residue rules (module docstring) to a structure.

    Parameters
    ----------
    structure : Structure

    Returns
    -------
    ResidueTable
        Residues of the first model, chains in sorted order, residues in order of appearance.
    """
    atoms = structure.atoms
    n_atoms = atoms.array_length()
    sort_group = residue_groups(atoms)
    n_groups = int(sort_group.max()) + 1
    idx = np.arange(n_atoms)
    first = np.full(n_groups, n_atoms, dtype=np.int64)
    np.minimum.at(first, sort_group, idx)
    chain_ids, chain_of_atom = np.unique(atoms.chain_id, return_inverse=True)
    # ampal's order: chains sorted by id, residues by first appearance in the chain
    order = np.lexsort((first, chain_of_atom[first]))
    rank = np.empty(n_groups, dtype=np.int64)
    rank[order] = np.arange(n_groups)
    group = rank[sort_group]
    first = first[order]

    hetero_atom = atoms.hetero.astype(bool)
    res_name = atoms.res_name.astype(str)
    std_atom = ~hetero_atom & np.isin(res_name, STANDARD_RESIDUES)
    other_atom = ~hetero_atom & ~std_atom

    # label of the chosen conformer: its first atom
    sel_first = np.full(n_groups, n_atoms, dtype=np.int64)
    np.minimum.at(sel_first, group[structure.selected], idx[structure.selected])
    label = res_name[sel_first]
    hetero = hetero_atom[sel_first]
    chain = atoms.chain_id.astype(str)[first]
    resnum = atoms.res_id.astype(np.int64)[first]
    icode = atoms.ins_code.astype(str)[first]

    rejects = list(structure.aposteriori_rejects)
    # one residue id with two names or record types (ampal: "single monomer id with multiple
    # labels"), over every alternate location
    _, label_code = np.unique(
        np.char.add(res_name, np.where(hetero_atom, "H", "A")), return_inverse=True
    )
    pairs = np.unique(group * (int(label_code.max()) + 1) + label_code)
    mixed = np.bincount(pairs // (int(label_code.max()) + 1), minlength=n_groups) > 1
    for g in np.flatnonzero(mixed)[:3]:
        names = sorted(set(res_name[group == g]))
        rejects.append(
            f"chain {chain[g] or '(blank)'} residue {resnum[g]}{icode[g]} has records "
            f"of several residue names or record types ({', '.join(names)})"
        )

    chain_of_group = np.searchsorted(chain_ids, chain)
    chain_p = _per_group_any(std_atom, chain_of_atom, len(chain_ids))
    chain_n = _per_group_any(other_atom, chain_of_atom, len(chain_ids))
    for c in np.flatnonzero(chain_p & chain_n):
        names = sorted(set(res_name[(chain_of_atom == c) & other_atom]))
        rejects.append(
            f"chain {chain_ids[c] or '(blank)'} mixes amino-acid ATOM records with "
            f"ATOM records of other names ({', '.join(names[:5])})"
        )

    # HETATM (and, leniently, non-standard ATOM) residues need N, CA, C and O over all altlocs
    has_name = np.zeros((n_groups, len(BACKBONE)), dtype=bool)
    for k, name in enumerate(BACKBONE):
        has_name[:, k] = _per_group_any(atoms.atom_name == name, group, n_groups)
    amino_like = has_name.all(axis=1) & (np.char.str_len(label) == 3)
    std_group = ~hetero & np.isin(label, STANDARD_RESIDUES)
    in_p = chain_p[chain_of_group]
    in_n = chain_n[chain_of_group] & ~in_p
    role = np.full(n_groups, ROLE_NONE, dtype=np.int8)
    role[in_p & (std_group | amino_like)] = ROLE_FRAME
    role[in_n & hetero & amino_like] = ROLE_ATOMS_ONLY

    other_chains: dict[str, str] = {}
    for c in np.flatnonzero(~chain_p):
        other_chains[str(chain_ids[c])] = (
            "no amino-acid ATOM records (nucleic acid or other polymer)"
            if chain_n[c]
            else "HETATM records only (ligands, ions or water)"
        )

    # backbone atoms of the chosen conformer, one per name: the last record wins, at the place
    # of the first (ampal fills an ordered dict keyed by atom name)
    name_code = np.full(n_atoms, -1, dtype=np.int64)
    for k, name in enumerate(BACKBONE):
        name_code[atoms.atom_name == name] = k
    cand = np.flatnonzero(structure.selected & (name_code >= 0) & (role[group] != ROLE_NONE))
    backbone = np.full((n_groups, len(BACKBONE)), -1, dtype=np.int64)
    backbone_order = np.full((n_groups, len(BACKBONE)), -1, dtype=np.int64)
    if len(cand):
        g, k = group[cand], name_code[cand]
        np.maximum.at(backbone, (g, k), cand)  # last record
        backbone_order[:] = n_atoms
        np.minimum.at(backbone_order, (g, k), cand)  # first record
        backbone_order[backbone < 0] = -1
    # ampal's atom filter drops hydrogens by element, whatever their name
    is_h = np.zeros_like(backbone, dtype=bool)
    present = backbone >= 0
    is_h[present] = atoms.element.astype(str)[backbone[present]] == "H"
    backbone[is_h] = -1
    backbone_order[is_h] = -1

    frame_role = role == ROLE_FRAME
    missing = frame_role & (backbone[:, :3] < 0).any(axis=1)
    for g in np.flatnonzero(missing)[:3]:
        lacks = [BACKBONE[k] for k in range(3) if backbone[g, k] < 0]
        rejects.append(
            f"chain {chain[g] or '(blank)'} residue {resnum[g]}{icode[g]} ({label[g]}) "
            f"has no {'/'.join(lacks)} atom"
        )
    names, name_of_group = np.unique(label, return_inverse=True)
    known = np.array([parent_residue(str(x)) is not None for x in names], dtype=bool)
    unknown = frame_role & ~known[name_of_group]
    for g in np.flatnonzero(unknown)[:3]:
        rejects.append(
            f"residue name {label[g]} (chain {chain[g] or '(blank)'} residue "
            f"{resnum[g]}{icode[g]}) is neither standard nor mapped onto a standard "
            "amino acid"
        )
    for kind, mask in (
        ("more residues with two names", mixed),
        ("more residues lacking N/CA/C", missing),
        ("more unknown residue names", unknown),
    ):
        if mask.sum() > 3:
            rejects.append(f"... and {int(mask.sum()) - 3} {kind}")

    return ResidueTable(
        chain=chain,
        resnum=resnum,
        icode=icode,
        label=label,
        hetero=hetero,
        role=role,
        backbone=backbone,
        backbone_order=backbone_order,
        polypeptide_chains=chain_ids[chain_p].astype(str),
        other_chains=other_chains,
        aposteriori_rejects=tuple(rejects),
    )
