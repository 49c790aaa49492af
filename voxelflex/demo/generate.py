"""A small deterministic dataset in the exact input formats users have.

The voxel file follows aposteriori's ``make-frame-dataset`` layout (``f[domain][chain][resid]``,
bool ``(21, 21, 21, 5)`` datasets, gzip level 4, chunks ``(11, 11, 11, 5)``, ``label`` and
``encoded_residue`` attributes, ``atom_encoder`` on the root), the RMSF CSV is in nm at the five
mdCATH temperatures, and the split files list domain ids one a line.

The target is known, so models and evaluation can be checked against it:

* ``density``: true voxels of channels C, N, CA and CB within 6 voxels (≈3.4 Å) of the centre;
  residues are "buried" (dense) or "exposed" (sparse) along a smooth profile of each chain.
* ``rmsf(T) = (0.05 + 0.6·exp(-density/5)) · (1 + s·(T - 320)/130) · noise``, where the heat
  sensitivity ``s = 0.3 + 0.3·n_cb`` grows with the CB voxels near the centre (a grid × temperature
  interaction: some residues soften faster with heat), and ``noise`` is log-normal with σ = 0.05.
* Channel ``O`` is filled at random, independent of everything else: the target ignores it, so
  its permutation importance must come out near zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from voxelflex.atomic import atomic_path, atomic_write_text
from voxelflex.index import BuildReport, build_index

__all__ = [
    "MDCATH_TEMPERATURES",
    "DemoPaths",
    "build_demo_index",
    "domain_ids",
    "generate_demo",
    "rmsf_rows",
    "rmsf_target",
    "write_rmsf_csv",
    "write_splits",
]

MDCATH_TEMPERATURES = (320.0, 348.0, 379.0, 413.0, 450.0)
AMINO_ACIDS = [
    "ALA",
    "ARG",
    "ASN",
    "ASP",
    "CYS",
    "GLN",
    "GLU",
    "GLY",
    "HIS",
    "ILE",
    "LEU",
    "LYS",
    "MET",
    "PHE",
    "PRO",
    "SER",
    "THR",
    "TRP",
    "TYR",
    "VAL",
]
_SIDE = 21
_CENTRE = 10
_NEAR_RADIUS = 6.0
_PSEUDO_CB = (_CENTRE - 1, _CENTRE - 1, _CENTRE + 1)  # fixed offset, every residue has one


@dataclass(frozen=True)
class DemoPaths:
    """Where a demo generator wrote each input file.

    ``structures`` (the folder of structure files) and ``features`` (the feature sidecar) exist
    only in the demo made from atoms (:func:`voxelflex.demo.structures.generate_structure_demo`).
    """

    root: Path
    voxel_file: Path
    rmsf_csv: Path
    train_split: Path
    val_split: Path
    test_split: Path
    structures: Path | None = None
    features: Path | None = None

    @classmethod
    def under(cls, root: Path, **extra: Path) -> DemoPaths:
        """The demo's file names under ``root``."""
        return cls(
            root=root,
            voxel_file=root / "voxels.hdf5",
            rmsf_csv=root / "rmsf.csv",
            train_split=root / "train_domains.txt",
            val_split=root / "val_domains.txt",
            test_split=root / "test_domains.txt",
            **extra,
        )


def _near_mask() -> np.ndarray:
    ax = np.arange(_SIDE) - _CENTRE
    d2 = ax[:, None, None] ** 2 + ax[None, :, None] ** 2 + ax[None, None, :] ** 2
    return d2 <= _NEAR_RADIUS**2


_NEAR = _near_mask()


def rmsf_target(
    grids: np.ndarray, temperatures: np.ndarray, atom_encoder: Sequence[str]
) -> np.ndarray:
    """Noise-free demo RMSF in nm.

    Parameters
    ----------
    grids : numpy.ndarray of bool, shape (R, 21, 21, 21, 5)
        Grids in file layout, channels in ``atom_encoder`` order.
    temperatures : numpy.ndarray of float, shape (T,)
        Kelvin.
    atom_encoder : sequence of str

    Returns
    -------
    numpy.ndarray of float64, shape (R, T)
    """
    enc = [a.upper() for a in atom_encoder]
    near = grids[:, _NEAR, :]  # (R, n_near, 5)
    counts = near.sum(axis=1)  # (R, 5)
    density = counts[:, [enc.index(c) for c in ("C", "N", "CA", "CB")]].sum(axis=1)
    n_cb = counts[:, enc.index("CB")] - 1  # the pseudo-CB is always there
    base = 0.05 + 0.6 * np.exp(-density / 5.0)
    sensitivity = 0.3 + 0.3 * n_cb
    heat = (np.asarray(temperatures, dtype=np.float64)[None, :] - 320.0) / 130.0
    return base[:, None] * (1.0 + sensitivity[:, None] * heat)


def _burial_profile(rng: np.random.Generator, n: int) -> np.ndarray:
    """Smooth per-residue burial in [0, 1] along a chain."""
    x = np.arange(n)
    profile = np.zeros(n)
    for _ in range(3):
        period = rng.uniform(6, 30)
        profile += rng.uniform(0.5, 1.0) * np.sin(2 * np.pi * x / period + rng.uniform(0, 6.3))
    profile += rng.normal(0, 0.4, n)
    return 1.0 / (1.0 + np.exp(-1.5 * profile))


def _domain_grids(rng: np.random.Generator, burial: np.ndarray, enc: list[str]) -> np.ndarray:
    """Sparse grids (≈9 true voxels a channel) whose density near the centre follows ``burial``."""
    n = len(burial)
    grids = np.zeros((n, _SIDE, _SIDE, _SIDE, 5), dtype=bool)
    for i, b in enumerate(burial):
        for ch, atom in enumerate(enc):
            if atom == "O":  # independent of burial: the target ignores this channel
                k, spread = rng.poisson(10), 6.0
            else:
                k, spread = rng.poisson(4 + 12 * b), 7.5 - 4.0 * b
            pos = np.rint(rng.normal(_CENTRE, spread, size=(k, 3))).astype(int)
            pos = pos[((pos >= 0) & (pos < _SIDE)).all(axis=1)]
            grids[i, pos[:, 0], pos[:, 1], pos[:, 2], ch] = True
        grids[i, _CENTRE, _CENTRE, _CENTRE, enc.index("CA")] = True
        x, y, z = _PSEUDO_CB
        grids[i, x, y, z, enc.index("CB")] = True
    return grids


def _write_voxels(path: Path, domains: dict, enc: list[str]) -> None:
    with atomic_path(path, suffix=".hdf5") as tmp, h5py.File(tmp, "w") as f:
        f.attrs["make_frame_dataset_ver"] = "2.4.0"
        f.attrs["frame_dims"] = np.array([_SIDE, _SIDE, _SIDE, 5])
        f.attrs["atom_encoder"] = np.array(enc, dtype=h5py.string_dtype())
        f.attrs["encode_cb"] = True
        f.attrs["atom_filter_fn"] = "keep_sidechains"
        f.attrs["residue_encoder"] = np.array(AMINO_ACIDS, dtype=h5py.string_dtype())
        f.attrs["frame_edge_length"] = 12.0
        f.attrs["voxels_as_gaussian"] = False
        for dom, (resnames, grids) in domains.items():
            chain = f.create_group(dom).create_group("A")
            for i, (name, grid) in enumerate(zip(resnames, grids, strict=True)):
                ds = chain.create_dataset(
                    str(i + 1),
                    data=grid,
                    compression="gzip",
                    compression_opts=4,
                    chunks=(11, 11, 11, 5),
                )
                ds.attrs["label"] = str(name)
                ds.attrs["encoded_residue"] = (np.array(AMINO_ACIDS) == name).astype(np.float32)
                ds.attrs["rotamers"] = "0"


def generate_demo(
    out_dir: str | Path,
    *,
    n_domains: int = 24,
    min_residues: int = 30,
    max_residues: int = 60,
    seed: int = 0,
    temperatures: Sequence[float] = MDCATH_TEMPERATURES,
    atom_encoder: Sequence[str] = ("C", "N", "O", "CA", "CB"),
    csv_resid_offset: int = 0,
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
) -> DemoPaths:
    """Write the demo inputs into ``out_dir`` and return their paths.

    Parameters
    ----------
    out_dir : path
        Created if missing; files inside are overwritten.
    n_domains, min_residues, max_residues : int
        Dataset size: ``n_domains`` single-chain domains of uniformly drawn length.
    seed : int
        Everything written is a function of the arguments (same seed, same bytes of data).
    temperatures : sequence of float
        Kelvin; one CSV row per residue and temperature.
    atom_encoder : sequence of str
        Channel order written to the HDF5 (aposteriori ≤ 2.2 used C, N, O, CB, CA).
    csv_resid_offset : int
        Added to CSV ``resid`` (mdCATH-derived CSVs count from 0: use -1 to mimic them).
    split_fractions : tuple of float
        Train, val, test fractions of the domains.
    """
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    enc = [a.upper() for a in atom_encoder]
    temps = np.asarray(temperatures, dtype=np.float64)
    ids = domain_ids(n_domains)

    domains, rows = {}, []
    for dom in ids:
        n = int(rng.integers(min_residues, max_residues + 1))
        burial = _burial_profile(rng, n)
        grids = _domain_grids(rng, burial, enc)
        resnames = rng.choice(AMINO_ACIDS, size=n)
        domains[dom] = (resnames, grids)
        rmsf = rmsf_target(grids, temps, enc) * np.exp(rng.normal(0, 0.05, size=(n, len(temps))))
        ss = rng.choice(np.array(["H", "E", "C"]), size=n, p=[0.4, 0.25, 0.35])
        access = np.clip(1.0 - burial + rng.normal(0, 0.1, n), 0.0, 1.0)
        resid = np.arange(1, n + 1) + csv_resid_offset
        rows.append(rmsf_rows(np.full(n, dom), resid, resnames, temps, rmsf, access, ss))

    paths = DemoPaths.under(root)
    _write_voxels(paths.voxel_file, domains, enc)
    write_rmsf_csv(paths.rmsf_csv, {k: np.concatenate([r[k] for r in rows]) for k in rows[0]})
    write_splits(paths, ids, rng, split_fractions)
    return paths


def domain_ids(n: int) -> list[str]:
    """``n`` distinct CATH-like domain ids (``1a0AA00``, ...)."""
    return [f"{k + 1}{chr(97 + (k // 10) % 26)}{k % 10}{chr(65 + k % 26)}A00" for k in range(n)]


def rmsf_rows(
    domain_id: np.ndarray,
    resid: np.ndarray,
    resname: np.ndarray,
    temperatures: np.ndarray,
    rmsf: np.ndarray,
    accessibility: np.ndarray,
    ss: np.ndarray,
) -> dict[str, np.ndarray]:
    """RMSF CSV columns for R residues at T temperatures, temperature-major (R·T rows).

    Parameters
    ----------
    domain_id, resid, resname : numpy.ndarray, shape (R,)
    temperatures : numpy.ndarray of float, shape (T,)
        Kelvin.
    rmsf : numpy.ndarray of float, shape (R, T)
        nm; written to 5 decimals.
    accessibility : numpy.ndarray of float, shape (R,)
        Relative accessibility, written to 3 decimals.
    ss : numpy.ndarray of str, shape (R,)
        ``H``, ``E`` or ``C``; ``secondary_structure_encoded`` is 0, 1, 2.
    """
    t = len(temperatures)
    return {
        "domain_id": np.tile(domain_id, t),
        "resid": np.tile(resid, t),
        "resname": np.tile(resname, t),
        "temperature_feature": np.repeat(temperatures, len(resid)),
        "target_rmsf": np.round(np.asarray(rmsf).T.ravel(), 5),
        "relative_accessibility": np.tile(np.round(accessibility, 3), t),
        "dssp": np.tile(ss, t),
        "secondary_structure_encoded": np.tile(np.select([ss == "H", ss == "E"], [0, 1], 2), t),
    }


def write_rmsf_csv(path: Path, columns: dict[str, np.ndarray]) -> None:
    """Write the aggregated RMSF CSV (columns in the order given) atomically."""
    with atomic_path(path, suffix=".csv") as tmp:
        pacsv.write_csv(pa.table(columns), tmp, pacsv.WriteOptions(quoting_style="none"))


def write_splits(
    paths: DemoPaths,
    ids: Sequence[str],
    rng: np.random.Generator,
    fractions: tuple[float, float, float],
) -> None:
    """Shuffle ``ids`` with ``rng`` and write the train, val and test lists by ``fractions``."""
    order = rng.permutation(len(ids))
    n_train = round(fractions[0] * len(ids))
    n_val = round(fractions[1] * len(ids))
    parts = (order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :])
    for path, part in zip(
        (paths.train_split, paths.val_split, paths.test_split), parts, strict=True
    ):
        lines = ["# voxelflex demo split: one domain id a line"] + [ids[k] for k in sorted(part)]
        atomic_write_text(path, "\n".join(lines) + "\n")


def build_demo_index(
    paths: DemoPaths, out_path: str | Path, *, progress: bool = False, overwrite: bool = False
) -> BuildReport:
    """Build the sample index of a demo dataset (all three splits, RMSF in nm; with the feature
    sidecar's columns where the dataset has one)."""
    return build_index(
        paths.voxel_file,
        out_path,
        rmsf_csv=paths.rmsf_csv,
        rmsf_unit="nm",
        train=paths.train_split,
        val=paths.val_split,
        test=paths.test_split,
        progress=progress,
        overwrite=overwrite,
        features=paths.features,
    )
