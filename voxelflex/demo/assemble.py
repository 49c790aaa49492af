"""Protein-like domains of any length, cut from real chains: demo and rehearsal structures.

The package ships six real protein chains (``chains/``: heavy atoms of chain A of the PDB
entries 1UBI, 1A8O, 1HVR, 1FKI, 4CUP and 3CYH, 66-164 residues, B-factors and occupancies set to
0 and 1; PDB data are public domain). :func:`assemble_domain` makes a domain of ``length``
residues from them: a stretch of one chain when one is long enough, else stretches of several,
each rotated at random and packed around the domain centre. The geometry is that of real
proteins (backbone, side chains, secondary structure), so frames, contact numbers and GNM
fluctuations look like those of real domains, yet every seed gives new domains.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from pathlib import Path

import biotite.structure as struc
import biotite.structure.io.pdb as pdb
import numpy as np

from voxelflex.structure import find_structure_files, read_structure

__all__ = ["CHAINS_DIR", "assemble_domain", "source_chains", "to_pdb_text"]

CHAINS_DIR = Path(__file__).parent / "chains"
MIN_SOURCE_RESIDUES = 20


def source_chains(
    paths: Iterable[str | os.PathLike] | None = None,
) -> list[struc.AtomArray]:
    """Heavy-atom protein chains of at least 20 residues.

    Parameters
    ----------
    paths : iterable of path, optional
        Structure files or folders; default: the packaged chains (``CHAINS_DIR``).

    Returns
    -------
    list of biotite.structure.AtomArray
        One array per chain, in file order.
    """
    files = find_structure_files([CHAINS_DIR] if paths is None else list(paths))
    out = []
    for path in files:
        atoms = read_structure(path).resolved()
        atoms = atoms[struc.filter_amino_acids(atoms) & ~atoms.hetero & (atoms.element != "H")]
        for chain in np.unique(atoms.chain_id):
            c = atoms[atoms.chain_id == chain]
            if struc.get_residue_count(c) >= MIN_SOURCE_RESIDUES:
                out.append(c)
    return out


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _segment(c: struc.AtomArray, start: int, n: int) -> struc.AtomArray:
    starts = struc.get_residue_starts(c)
    stop = starts[start + n] if start + n < len(starts) else c.array_length()
    return c[starts[start] : stop].copy()


def assemble_domain(
    length: int, chains: list[struc.AtomArray], rng: np.random.Generator
) -> struc.AtomArray:
    """A one-chain domain of ``length`` residues cut from ``chains``.

    Parameters
    ----------
    length : int
        Residues of the domain.
    chains : list of biotite.structure.AtomArray
        Source chains (:func:`source_chains`).
    rng : numpy.random.Generator
        Chooses chains, cut points and rotations.

    Returns
    -------
    biotite.structure.AtomArray
        Chain ``"A"``, residues numbered 1..``length`` in order, no insertion codes; float32
        coordinates in Å. Where several stretches are packed, their junctions are chain breaks.
    """
    sizes = np.array([struc.get_residue_count(c) for c in chains])
    long_enough = np.flatnonzero(sizes >= length)
    parts, resid, k = [], 1, 0
    if len(long_enough):
        c = chains[int(rng.choice(long_enough))]
        parts.append(
            _segment(c, int(rng.integers(0, struc.get_residue_count(c) - length + 1)), length)
        )
        resid = length + 1
    while resid <= length:
        c = chains[rng.integers(len(chains))]
        n = struc.get_residue_count(c)
        seg = int(min(length - resid + 1, rng.integers(MIN_SOURCE_RESIDUES, n + 1)))
        piece = _segment(c, int(rng.integers(0, n - seg + 1)), seg)
        centre = piece.coord.mean(axis=0)
        # segment centres on a compact spiral around the domain centre, 16 Å apart
        phi = k * 2.399963
        z = 1 - 2 * (k + 0.5) / 8
        where = 16.0 * np.cbrt(k + 1) * np.array([np.cos(phi), np.sin(phi), z])
        piece.coord = ((piece.coord - centre) @ _rotation(rng).T + where).astype(np.float32)
        parts.append(piece)
        resid += seg
        k += 1
    offset = 0
    for piece in parts:  # one number a residue, 1..length in order, no insertion codes
        first = np.zeros(piece.array_length(), np.int64)
        first[struc.get_residue_starts(piece)] = 1
        piece.res_id = offset + np.cumsum(first)
        piece.ins_code[:] = ""
        offset = int(piece.res_id[-1])
    atoms = struc.concatenate(parts)
    atoms.chain_id[:] = "A"
    return atoms


def to_pdb_text(atoms: struc.AtomArray) -> str:
    """``atoms`` as the text of a PDB file (biotite's writer)."""
    out = pdb.PDBFile()
    out.set_structure(atoms)
    buffer = io.StringIO()
    out.write(buffer)
    return buffer.getvalue()
