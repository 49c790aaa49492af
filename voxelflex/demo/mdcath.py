"""Small files in mdCATH's published layout, for tests and the full-scale rehearsal.

The layout (mdCATH, Sci Data 11:1299, 2024; the dataset builder's ``generator.py`` and
``molAnalyzer.py``), one HDF5 file ``mdcath_dataset_{domain}.h5`` per domain::

    /                         attrs: layout = "mdcath-only-protein-v1.0"
    /{domain}                 attrs: numProteinAtoms, numResidues, numChains
        pdbProteinAtoms       bytes: the PDB text of the protein atoms (ATOM/MODEL records,
                              CHARMM names: chain "0", HSD/HSE/HSP, hydrogens, OT1/OT2)
        chain, resname, resid, element, z      one entry per protein atom
        {T}/{replica}         T in "320", "348", "379", "413", "450"; replica "0".."4"
            attrs: numFrames
            rmsf              float32 (numResidues,), nm, CA fluctuation of this replica
            dssp              bytes (numFrames, numResidues), DSSP codes per frame
            rmsd, gyrationRadius   float32 (numFrames,), nm
            coords            float32 (numFrames, numProteinAtoms, 3), Å
            box               float32 (3,)
        (rmsf, rmsd, gyrationRadius and coords carry their unit as attrs["unit"])

:func:`write_mdcath_file` writes one such file from a PDB text; :func:`charmm_pdb` turns a
plain PDB's protein into mdCATH's naming (the one frame of coordinates is the structure itself,
which keeps files small: the importer never reads ``coords``).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Mapping, Sequence

import biotite.structure as struc
import biotite.structure.io.pdb as pdb
import h5py
import numpy as np

from voxelflex.atomic import atomic_path
from voxelflex.demo.assemble import to_pdb_text

__all__ = ["MDCATH_LAYOUT", "charmm_pdb", "write_mdcath_file"]

MDCATH_LAYOUT = "mdcath-only-protein-v1.0"
_ELEMENT_Z = {"H": 1, "C": 6, "N": 7, "O": 8, "S": 16, "SE": 34}


def charmm_pdb(pdb_text: str, *, histidine: str = "HSD") -> str:
    """The protein of a PDB text (first model, first conformer), named as mdCATH names it.

    Chain ids become ``"0"``, HIS becomes ``histidine`` (HSD, HSE or HSP), the last residue's
    O and OXT become OT1 and OT2 (CHARMM's C-terminus), ILE CD1 becomes CD; HETATM records,
    water and ligands are dropped.
    """
    atoms = pdb.PDBFile.read(io.StringIO(pdb_text)).get_structure(model=1, altloc="first")
    atoms = atoms[struc.filter_amino_acids(atoms) & ~atoms.hetero]
    atoms.res_name[atoms.res_name == "HIS"] = histidine
    last = atoms.res_id == atoms.res_id[-1]
    atoms.atom_name[last & (atoms.atom_name == "O")] = "OT1"
    atoms.atom_name[last & (atoms.atom_name == "OXT")] = "OT2"
    atoms.atom_name[(atoms.res_name == "ILE") & (atoms.atom_name == "CD1")] = "CD"
    atoms.chain_id[:] = "0"
    return to_pdb_text(atoms)


def _atoms(pdb_text: str) -> struc.AtomArray:
    return pdb.PDBFile.read(io.StringIO(pdb_text)).get_structure(model=1)


def write_mdcath_file(
    path: str | os.PathLike,
    domain: str,
    pdb_text: str,
    *,
    rmsf: Callable[[str, int, int], np.ndarray],
    temperatures: Sequence[str] = ("320", "348", "379", "413", "450"),
    replicas: int = 5,
    dssp: Callable[[str, int, int, int], np.ndarray] | None = None,
    frames: int = 2,
    missing: Mapping[str, Sequence[int]] | None = None,
) -> None:
    """Write one ``mdcath_dataset_{domain}.h5`` file (atomically).

    Parameters
    ----------
    path : path
    domain : str
        The domain id (the file's top group).
    pdb_text : str
        ``pdbProteinAtoms``: ATOM records in mdCATH's naming (see :func:`charmm_pdb`).
    rmsf : callable
        ``rmsf(temperature, replica, n_residues)`` → float (n_residues,) in nm (NaN allowed).
    temperatures : sequence of str
        Temperature groups to write.
    replicas : int
        Replicas per temperature.
    dssp : callable, optional
        ``dssp(temperature, replica, frames, n_residues)`` → str array (frames, n_residues)
        of DSSP codes; default all "H".
    frames : int
        Frames of ``dssp``, ``rmsd`` and ``gyrationRadius`` (``coords`` holds the structure
        once per frame).
    missing : mapping of str -> sequence of int, optional
        Replicas to leave out per temperature (a temperature with every replica missing is
        written as an empty group, as the builder does when a simulation failed).
    """
    atoms = _atoms(pdb_text)
    n_res = struc.get_residue_count(atoms)
    columns = {
        "chain": atoms.chain_id.astype("S4"),
        "resname": atoms.res_name.astype("S4"),
        "resid": atoms.res_id.astype(np.int64),
        "element": atoms.element.astype("S2"),
        "z": np.array([_ELEMENT_Z.get(e.upper(), 6) for e in atoms.element], dtype=np.int64),
    }
    coords = atoms.coord.astype(np.float32)
    missing = missing or {}
    with atomic_path(path, suffix=".h5") as tmp, h5py.File(tmp, "w") as f:
        f.attrs["layout"] = MDCATH_LAYOUT
        g = f.create_group(domain)
        g.attrs["numProteinAtoms"] = atoms.array_length()
        g.attrs["numResidues"] = n_res
        g.attrs["numChains"] = len(set(atoms.chain_id.tolist()))
        g.create_dataset("pdbProteinAtoms", data=pdb_text.encode("utf-8"))
        for name, values in columns.items():
            g.create_dataset(name, data=values)
        for t in temperatures:
            tg = g.create_group(t)
            for r in range(replicas):
                if r in missing.get(t, ()):
                    continue
                rg = tg.create_group(str(r))
                rg.attrs["numFrames"] = frames
                rg.create_dataset("rmsf", data=np.asarray(rmsf(t, r, n_res), np.float32))
                codes = (
                    np.full((frames, n_res), "H")
                    if dssp is None
                    else np.asarray(dssp(t, r, frames, n_res))
                )
                rg.create_dataset("dssp", data=np.char.encode(codes.astype(str), "utf-8"))
                rg.create_dataset("rmsd", data=np.full(frames, 0.1, np.float32))
                rg.create_dataset("gyrationRadius", data=np.full(frames, 1.2, np.float32))
                rg.create_dataset("coords", data=np.repeat(coords[None], frames, 0))
                for name in ("rmsf", "rmsd", "gyrationRadius"):  # as the builder labels them
                    rg[name].attrs["unit"] = "nm"
                rg["coords"].attrs["unit"] = "Angstrom"
                rg.create_dataset("box", data=np.full(3, 80.0, np.float32))
