"""CHARMM names in mdCATH's ``pdbProteinAtoms`` → the PDB names the voxelizer and features use.

mdCATH's structures come from CHARMM simulations. Only what the frame or the features read is
renamed; every rename is counted, so the import report says what was changed:

======================  ==================  ==============================================
CHARMM                  becomes             why
======================  ==================  ==============================================
chain ``0``, ``1``, …   ``A``, ``B``, …     voxel keys use letters (users rename "0" to "A")
HSD, HSE, HSP           HIS                 protonation states of histidine; aposteriori
                                            refuses a chain with non-standard ATOM names
OT1 (C-terminus)        O                   the backbone O of the last residue: channel O
OT2 (C-terminus)        OXT                 PDB's name of the second terminal oxygen
ILE CD                  CD1                 PDB's name; SASA radii are looked up by name
======================  ==================  ==============================================

Hydrogens keep their CHARMM names: frames and features ignore hydrogens.
"""

from __future__ import annotations

import string
from collections import Counter

__all__ = ["CHARMM_RESIDUES", "chain_letter", "to_pdb_names"]

CHARMM_RESIDUES = {"HSD": "HIS", "HSE": "HIS", "HSP": "HIS"}
_ATOMS = {"OT1": "O", "OT2": "OXT"}
_RESIDUE_ATOMS = {("ILE", "CD"): "CD1"}
_LETTERS = string.ascii_uppercase


def chain_letter(chain: str) -> str:
    """``"0"`` → ``"A"``, ``"1"`` → ``"B"``, …; any other chain id is kept."""
    return _LETTERS[int(chain)] if chain.isdigit() and int(chain) < len(_LETTERS) else chain


def _atom_field(name: str) -> str:
    """The PDB atom-name columns 13-16: one-letter elements start in column 14."""
    return f" {name:<3}" if len(name) < 4 else name


def to_pdb_names(text: str) -> tuple[str, Counter]:
    """Rename CHARMM chains, residues and atoms of a PDB text (table in the module docstring).

    Parameters
    ----------
    text : str
        PDB text (fixed columns), e.g. mdCATH's ``pdbProteinAtoms``.

    Returns
    -------
    text : str
        The renamed PDB text; non-ATOM/HETATM records are kept as they are.
    renamed : collections.Counter
        Renames done, e.g. ``{"chain 0->A": 2200, "HSD->HIS": 3, "OT1->O": 1}`` (chains and
        atoms counted per atom record, residues per residue).
    """
    renamed: Counter = Counter()
    out = []
    last_residue = None
    for line in text.splitlines():
        if line.startswith(("ATOM  ", "HETATM")) and len(line) >= 27:
            chain, resname, atom = line[21], line[17:20].strip(), line[12:16].strip()
            residue = line[21:27]
            new_chain = chain_letter(chain)
            if new_chain != chain:
                renamed[f"chain {chain}->{new_chain}"] += 1
            new_res = CHARMM_RESIDUES.get(resname, resname)
            if new_res != resname and residue != last_residue:
                renamed[f"{resname}->{new_res}"] += 1
            last_residue = residue
            new_atom = _RESIDUE_ATOMS.get((new_res, atom), _ATOMS.get(atom, atom))
            if new_atom != atom:
                where = f"{new_res} " if (new_res, atom) in _RESIDUE_ATOMS else ""
                renamed[f"{where}{atom}->{new_atom}"] += 1
            if (new_chain, new_res, new_atom) != (chain, resname, atom):
                line = (
                    line[:12]
                    + (_atom_field(new_atom) if new_atom != atom else line[12:16])
                    + line[16:17]
                    + f"{new_res:>3}"
                    + line[20:21]
                    + new_chain
                    + line[22:]
                )
        out.append(line)
    return "\n".join(out) + "\n", renamed
