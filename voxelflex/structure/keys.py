"""The voxel file's (chain, residue) keys of a structure's residues, as aposteriori gives them.

The frames' key rule (the feature sidecar takes its keys from the frames): the chain key is the
chain id, ``"A"`` when blank, and a later chain whose key is taken gets none (the frames pass
chains sorted by id, as aposteriori does, so a blank chain holds ``"A"`` and a chain A in the
same file gets none); the residue key is ``str(number)`` (``"aposteriori"``), so of several
residues with one number (insertion codes) only the first in file order gets it, even when that
first one has an insertion code, or the number with its insertion code (``"icode"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from voxelflex.formats import KEY_RULES

__all__ = ["BLANK_CHAIN_KEY", "KeyRule", "ResidueKeys", "residue_ids", "residue_keys"]

KeyRule = Literal["aposteriori", "icode"]
BLANK_CHAIN_KEY = "A"  # aposteriori's HDF5 key of a chain whose id is blank


def residue_ids(chain: np.ndarray, resnum: np.ndarray, icode: np.ndarray) -> np.ndarray:
    """One string per residue that names it as the file does: chain id as written (blank
    stays blank), number and insertion code; for matching residues across tables, not keys."""
    text = np.char.add(np.asarray(chain).astype(str), "\x00")
    text = np.char.add(text, np.asarray(resnum).astype(np.int64).astype(str))
    return np.char.add(np.char.add(text, "\x00"), np.asarray(icode).astype(str))


@dataclass(frozen=True)
class ResidueKeys:
    """Keys of R residues (in file order) and who got them.

    Attributes
    ----------
    chain_key, resid_key : numpy.ndarray of str, shape (R,)
        The key each residue would have.
    chain_owner : dict of str -> str
        Chain key → the chain id that holds it (the first in the order given).
    first : numpy.ndarray of int64, shape (R,)
        Index of the residue that holds this residue's key; -1 for residues of a chain without
        its key.
    """

    chain_key: np.ndarray
    resid_key: np.ndarray
    chain_owner: dict[str, str]
    first: np.ndarray

    @property
    def keep(self) -> np.ndarray:
        """bool (R,): the residues that hold their key."""
        return self.first == np.arange(len(self.first))


def residue_keys(
    chain: np.ndarray, resnum: np.ndarray, icode: np.ndarray, rule: KeyRule
) -> ResidueKeys:
    """Assign voxel-file keys to residues.

    Parameters
    ----------
    chain, icode : numpy.ndarray of str, shape (R,)
        Chain ids as in the file (blank allowed) and insertion codes (``""`` when none).
    resnum : numpy.ndarray of int, shape (R,)
    rule : {"aposteriori", "icode"}

    Returns
    -------
    ResidueKeys
    """
    if rule not in KEY_RULES:
        raise ValueError(f"keys={rule!r} is not one of {KEY_RULES}")
    chain = np.asarray(chain).astype(str)
    chain_key = np.where(chain == "", BLANK_CHAIN_KEY, chain)
    owner: dict[str, str] = {}
    for c in dict.fromkeys(chain.tolist()):  # chains in the order given
        owner.setdefault(c or BLANK_CHAIN_KEY, c)
    has_key = chain == np.array([owner[k] for k in chain_key.tolist()], dtype=str)
    resnum_text = np.asarray(resnum).astype(str)
    resid_key = resnum_text if rule == "aposteriori" else np.char.add(resnum_text, icode)
    pair = np.char.add(np.char.add(chain_key, "\x00"), resid_key)
    pair = np.where(has_key, pair, "\x01")
    _, first_index, inverse = np.unique(pair, return_index=True, return_inverse=True)
    first = np.where(has_key, first_index[inverse.ravel()], -1).astype(np.int64)
    return ResidueKeys(chain_key=chain_key, resid_key=resid_key, chain_owner=owner, first=first)
