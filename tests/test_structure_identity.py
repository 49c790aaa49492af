"""voxelflex's frames are aposteriori 2.4.0's, bit for bit (tests/data/structures/README.md)."""

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from voxelflex.structure import compute_frames, read_structure

DATA = Path(__file__).parent / "data"
STRUCTURES = DATA / "structures"
RUNS = json.loads((STRUCTURES / "aposteriori_runs.json").read_text())
ACCEPTED = sorted(name for name, run in RUNS.items() if run.get("aposteriori_frames"))
REFUSED = sorted(name for name, run in RUNS.items() if "aposteriori_error" in run)


def _domain(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize("name", ACCEPTED)
def test_frames_keys_and_labels_equal_aposteriori_output(name):
    frames = compute_frames(read_structure(STRUCTURES / name))
    ref = np.load(STRUCTURES / f"{_domain(name)}.aposteriori.npz")
    ours = {key: i for i, key in enumerate(zip(frames.chains, frames.resids, strict=True))}
    theirs = list(zip(ref["chains"], ref["resids"], strict=True))
    assert set(ours) == set(theirs) and len(ours) == RUNS[name]["aposteriori_frames"]
    rows = np.array([ours[key] for key in theirs])
    assert np.array_equal(frames.packed[rows], ref["packed"])  # bit for bit
    assert frames.labels[rows].tolist() == ref["labels"].tolist()
    assert np.array_equal(frames.encoded_residues()[rows], ref["encoded"])
    assert frames.aposteriori_rejects == ()


@pytest.mark.parametrize("name", REFUSED)
def test_files_aposteriori_refuses_are_predicted_and_still_voxelized(name):
    frames = compute_frames(read_structure(STRUCTURES / name))
    assert frames.aposteriori_rejects, RUNS[name]["aposteriori_error"]
    assert len(frames) > 0


def test_real_aposteriori_hdf5_of_1vii_is_reproduced():
    """The committed aposteriori_1vii.hdf5 (tests/data/README.md), dataset by dataset."""
    frames = compute_frames(read_structure(STRUCTURES / "1vii.pdb.gz"))
    grids = frames.grids()
    with h5py.File(DATA / "aposteriori_1vii.hdf5", "r") as f:
        chain = f["1vii"]["A"]
        assert sorted(chain, key=int) == frames.resids.tolist()
        for i, resid in enumerate(frames.resids):
            assert np.array_equal(chain[resid][()], grids[i])
            assert chain[resid].attrs["label"] == frames.labels[i]


def test_every_ca_is_at_the_centre_and_grids_are_sparse():
    frames = compute_frames(read_structure(STRUCTURES / "1a8o.pdb.gz"))
    grids = frames.grids()  # (R, 21, 21, 21, 5), channels C, N, O, CA, CB
    assert grids[:, 10, 10, 10, 3].all()
    assert (grids.sum(axis=(1, 2, 3, 4)) < 100).all()
    assert (grids.sum(axis=4) <= 1).all()  # one atom type per voxel
