"""Tiny hand-made inputs for input/index tests (the demo generator covers the happy path)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np

CHANNELS = ("C", "N", "O", "CA", "CB")
TEMPS = (320.0, 450.0)


def write_voxels(
    path: Path,
    layout: Mapping[str, Mapping[str, Sequence[tuple[str, str]]]],
    *,
    atom_encoder: Sequence[str] = CHANNELS,
    bad: Mapping[tuple[str, str, str], np.ndarray] = (),
) -> Path:
    """aposteriori layout: ``layout[domain][chain] = [(resid_key, label), ...]``.

    ``bad[(domain, chain, resid)]`` replaces that residue's grid (wrong shape or dtype).
    """
    bad = dict(bad)
    with h5py.File(path, "w") as f:
        f.attrs["atom_encoder"] = np.array(list(atom_encoder), dtype="S2")
        f.attrs["frame_edge_length"] = 12.0
        for domain, chains in layout.items():
            dgroup = f.create_group(domain)
            for chain, residues in chains.items():
                cgroup = dgroup.create_group(chain)
                for resid, label in residues:
                    grid = bad.get((domain, chain, resid), np.zeros((21, 21, 21, 5), dtype=bool))
                    ds = cgroup.create_dataset(resid, data=grid, compression="gzip")
                    if label is not None:
                        ds.attrs["label"] = label
    return path


def residues(names: str, start: int = 1) -> list[tuple[str, str]]:
    """``residues("ALA GLY")`` -> ``[("1", "ALA"), ("2", "GLY")]``."""
    return [(str(start + i), n) for i, n in enumerate(names.split())]


def write_csv(
    path: Path,
    rows: Sequence[tuple],
    header: str = "domain_id,resid,resname,temperature_feature,target_rmsf",
) -> Path:
    """Write ``rows`` (tuples matching ``header``) as CSV."""
    lines = [header, *(",".join(str(v) for v in row) for row in rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def csv_rows(domain_id: str, names: str, start: int = 1, temps=TEMPS) -> list[tuple]:
    """One row per residue and temperature, RMSF 0.1 + 0.01 * position."""
    return [
        (domain_id, start + i, n, t, round(0.1 + 0.01 * i, 4))
        for i, n in enumerate(names.split())
        for t in temps
    ]
