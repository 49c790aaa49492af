"""The demo made from atoms: structure files, their frames and features, and a known target.

:func:`generate_structure_demo` writes what a user with structures has: one PDB file per domain
(cut from real chains by :func:`voxelflex.demo.assemble.assemble_domain`), the voxel HDF5 and
feature sidecar voxelflex's voxelizer makes of them (``voxelize --features``), an RMSF CSV in nm
at the five mdCATH temperatures, and the split lists. The target is known, so the feature
ablation (``docs/features.md``) can check that each input reaches the model:

* ``base = 0.06 + 0.10·exp(u) + 0.12·exp(-term_distance/2)`` nm, where ``u`` is the residue's
  log GNM fluctuation minus its domain's median, clipped to [-2, 2]: long-range packing, which a
  frame's ±6 Å cannot show, and the distance to a chain end or break;
* times a residue-type factor only the frames show (the features carry no residue type):
  1.3 for glycine (no CB), 0.8 for proline, 0.85 for PHE, TYR and TRP;
* ``rmsf(T) = base · factor · (1 + s·(T - 320)/130) · noise`` with heat sensitivity
  ``s = 0.2 + 0.8·clip(rsa, 0, 1)`` (exposed residues soften faster) and log-normal ``noise``,
  σ = 0.05.

The CSV's ``relative_accessibility`` and ``dssp`` columns hold the structure's own RSA and
P-SEA call, for stratified evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from voxelflex.atomic import atomic_write_text
from voxelflex.demo.assemble import assemble_domain, source_chains, to_pdb_text
from voxelflex.demo.generate import (
    MDCATH_TEMPERATURES,
    DemoPaths,
    domain_ids,
    rmsf_rows,
    write_rmsf_csv,
    write_splits,
)
from voxelflex.structure import voxelize_files
from voxelflex.structure.features import read_feature_sidecar

__all__ = ["RESIDUE_FACTOR", "generate_structure_demo", "structure_rmsf_target"]

RESIDUE_FACTOR = {"GLY": 1.3, "PRO": 0.8, "PHE": 0.85, "TYR": 0.85, "TRP": 0.85}


def structure_rmsf_target(features: pa.Table, temperatures: Sequence[float]) -> np.ndarray:
    """Noise-free RMSF of the demo made from atoms, in nm.

    Parameters
    ----------
    features : pyarrow.Table
        Feature sidecar rows (``domain``, ``resname``, ``gnm_msf``, ``term_distance``, ``rsa``).
    temperatures : sequence of float
        Kelvin.

    Returns
    -------
    numpy.ndarray of float64, shape (R, T)
    """
    domain = features["domain"].to_numpy(zero_copy_only=False)
    log_gnm = np.log(features["gnm_msf"].to_numpy().astype(np.float64))
    _, codes = np.unique(domain, return_inverse=True)
    median = np.array([np.median(log_gnm[codes == k]) for k in range(codes.max() + 1)])
    u = np.clip(log_gnm - median[codes], -2.0, 2.0)
    term = features["term_distance"].to_numpy().astype(np.float64)
    base = 0.06 + 0.10 * np.exp(u) + 0.12 * np.exp(-term / 2.0)
    names = features["resname"].to_numpy(zero_copy_only=False)
    factor = np.array([RESIDUE_FACTOR.get(n, 1.0) for n in names])
    rsa = np.clip(features["rsa"].to_numpy().astype(np.float64), 0.0, 1.0)
    heat = (np.asarray(temperatures, dtype=np.float64)[None, :] - 320.0) / 130.0
    return (base * factor)[:, None] * (1.0 + (0.2 + 0.8 * rsa)[:, None] * heat)


def generate_structure_demo(
    out_dir: str | Path,
    *,
    n_domains: int = 24,
    min_residues: int = 30,
    max_residues: int = 70,
    seed: int = 0,
    temperatures: Sequence[float] = MDCATH_TEMPERATURES,
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
) -> DemoPaths:
    """Write the demo made from atoms into ``out_dir`` and return its paths.

    Parameters
    ----------
    out_dir : path
        Created if missing; files inside are overwritten. Structure files go to
        ``out_dir/structures/{domain}.pdb``.
    n_domains, min_residues, max_residues : int
        Dataset size: ``n_domains`` one-chain domains of uniformly drawn length.
    seed : int
        Everything written is a function of the arguments.
    temperatures : sequence of float
        Kelvin; one CSV row per residue and temperature.
    split_fractions : tuple of float
        Train, val, test fractions of the domains.
    """
    root = Path(out_dir)
    structures = root / "structures"
    structures.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    chains = source_chains()
    ids = domain_ids(n_domains)
    for dom in ids:
        atoms = assemble_domain(int(rng.integers(min_residues, max_residues + 1)), chains, rng)
        atomic_write_text(structures / f"{dom}.pdb", to_pdb_text(atoms))
    paths = DemoPaths.under(root, structures=structures, features=root / "voxels.features.parquet")
    voxelize_files(
        [structures / f"{dom}.pdb" for dom in ids],
        paths.voxel_file,
        features=True,
        progress=False,
        overwrite=True,
    )
    table, _ = read_feature_sidecar(paths.features)
    temps = np.asarray(temperatures, dtype=np.float64)
    n = table.num_rows
    rmsf = structure_rmsf_target(table, temps) * np.exp(rng.normal(0, 0.05, size=(n, len(temps))))
    ss = np.select(
        [table["ss_helix"].to_numpy() > 0, table["ss_strand"].to_numpy() > 0], ["H", "E"], "C"
    )
    rows = rmsf_rows(
        table["domain"].to_numpy(zero_copy_only=False),
        table["resnum"].to_numpy(),
        table["resname"].to_numpy(zero_copy_only=False),
        temps,
        rmsf,
        np.clip(table["rsa"].to_numpy(), 0.0, 1.0),
        ss,
    )
    write_rmsf_csv(paths.rmsf_csv, rows)
    write_splits(paths, ids, rng, split_fractions)
    return paths
