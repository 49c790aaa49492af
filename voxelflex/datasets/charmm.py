"""CHARMM names in mdCATH's ``pdbProteinAtoms`` → the PDB names the voxelizer and features use.

mdCATH's structures come from CHARMM simulations. Only what the frame or the features read is
renamed; every rename is counted, so the import report says what was changed:

======================  ==================  ==============================================
CHARMM                  becomes             why
======================  ==================  ==============================================
chain ``0``, ``1``, …   ``A``, ``B``, …     voxel keys use letters (users rename "0" to "A")
blank chain             ``A``               the voxel key of a blank chain (MD tools' PDB text)
HSD, HSE, HSP           HIS                 protonation states (all of
ASPP, GLUP, LSN         ASP, GLU, LYS       ``FORCE_FIELD_RESIDUES``); aposteriori refuses
                                            a chain with non-standard ATOM names
OT1 (C-terminus)        O                   the backbone O of the last residue: channel O
OT2 (C-terminus)        OXT                 PDB's name of the second terminal oxygen
ILE CD                  CD1                 PDB's name; SASA radii are looked up by name
======================  ==================  ==============================================

Hydrogens keep their CHARMM names: frames and features ignore hydrogens.
"""

from __future__ import annotations

import string
from collections import Counter

import biotite.structure as struc
import numpy as np

from voxelflex.errors import DomainRefused
from voxelflex.structure.keys import BLANK_CHAIN_KEY
from voxelflex.structure.residue_codes import FORCE_FIELD_RESIDUES

__all__ = ["chain_letter", "rename_charmm"]

_ATOMS = {"OT1": "O", "OT2": "OXT"}
_RESIDUE_ATOMS = {("ILE", "CD"): "CD1"}
_LETTERS = string.ascii_uppercase


def chain_letter(chain: str) -> str:
    """``"0"`` → ``"A"``, ``"1"`` → ``"B"``, …, blank → ``"A"`` (the voxel file's key for a
    blank chain, so the RMSF CSV names the chain the frames do); any other chain id is kept."""
    if not chain.strip():
        return BLANK_CHAIN_KEY
    return _LETTERS[int(chain)] if chain.isdigit() and int(chain) < len(_LETTERS) else chain


def rename_charmm(atoms: struc.AtomArray, *, where: str = "structure") -> Counter:
    """Rename CHARMM chains, residues and atoms of ``atoms`` in place (module docstring).

    Parameters
    ----------
    atoms : biotite.structure.AtomArray
        Annotations ``chain_id``, ``res_name`` and ``atom_name`` are changed.
    where : str
        The file, for the error.

    Returns
    -------
    collections.Counter
        Renames done, e.g. ``{"chain 0->A": 2200, "HSD->HIS": 3, "OT1->O": 1}`` (chains and
        atoms counted per atom, residues per residue).

    Raises
    ------
    DomainRefused
        A renamed chain would take the id of another chain of the file, or two chains would
        be renamed alike (a blank chain and chain ``0`` both to ``A``).
    """
    renamed: Counter = Counter()
    chains = atoms.chain_id.copy()
    present = set(np.unique(chains).tolist())
    taken: dict[str, str] = {}  # new chain id -> the chain renamed to it
    for old in sorted(present):
        new = chain_letter(old)
        if new == old:
            continue
        # a blank chain and chain 0 both become A: merged, they would be one chain
        other = new if new in present else taken.setdefault(new, old)
        if other != old:
            raise DomainRefused(
                "unreadable_structure",
                f"{where}: chain {old.strip() or '(blank)'} would be renamed {new}, which "
                + (
                    "the file already has"
                    if new in present
                    else f"chain {other.strip() or '(blank)'} also becomes"
                ),
            )
        mask = chains == old
        atoms.chain_id[mask] = new
        renamed[f"chain {old}->{new}"] += int(mask.sum())
    first = np.zeros(atoms.array_length(), bool)
    first[struc.get_residue_starts(atoms)] = True
    res = atoms.res_name.copy()
    for old, new in FORCE_FIELD_RESIDUES.items():
        mask = res == old
        if mask.any():
            atoms.res_name[mask] = new
            renamed[f"{old}->{new}"] += int((mask & first).sum())
    names = atoms.atom_name.copy()
    for old, new in _ATOMS.items():
        mask = names == old
        if mask.any():
            atoms.atom_name[mask] = new
            renamed[f"{old}->{new}"] += int(mask.sum())
    for (residue, old), new in _RESIDUE_ATOMS.items():
        mask = (atoms.res_name == residue) & (names == old)
        if mask.any():
            atoms.atom_name[mask] = new
            renamed[f"{residue} {old}->{new}"] += int(mask.sum())
    return renamed
