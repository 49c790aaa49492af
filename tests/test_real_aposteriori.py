"""The pipeline on a real aposteriori 2.4.0 output (tests/data/README.md says how it was made)."""

from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from voxelflex.errors import InputError
from voxelflex.index import build_index, read_index
from voxelflex.packing import unpack_numpy
from voxelflex.sources import PlanConfig, build_shards, open_source

REAL = Path(__file__).parent / "data" / "aposteriori_1vii.hdf5"


@pytest.fixture(scope="module")
def real_index(tmp_path_factory):
    out = tmp_path_factory.mktemp("real") / "index.parquet"
    build_index(REAL, out, deep=True, progress=False)
    return read_index(out)


def _served(source) -> tuple[np.ndarray, np.ndarray]:
    """(row_id, packed row) per residue of one pass over the prediction index at one temperature."""
    ids, rows = [], []
    for batch in source.loader(PlanConfig(batch_size=64, shuffle=False), 0):
        ids.append(batch.row_id.numpy())  # one temperature: sample i is residue i
        rows.append(batch.packed.numpy())
    return np.concatenate(ids), np.concatenate(rows)


def test_prediction_index_lists_every_residue_in_numeric_order(real_index):
    t = real_index.table
    assert t.num_rows == 36 and set(t["split"].to_pylist()) == {"predict"}
    assert t["resnum"].to_pylist() == list(range(41, 77))
    with h5py.File(REAL, "r") as f:
        labels = [f["1vii"]["A"][str(k)].attrs["label"] for k in range(41, 77)]
    assert t["resname"].to_pylist() == labels


def test_both_sources_serve_the_file_grids_in_canonical_order(real_index, tmp_path):
    build_shards(real_index, tmp_path / "shards", progress=False)
    hdf5 = _served(open_source("hdf5", real_index, split="predict", temperatures=[300.0]))
    shards = _served(
        open_source(
            "shards",
            real_index,
            split="predict",
            shards_dir=tmp_path / "shards",
            temperatures=[300.0],
        )
    )
    assert np.array_equal(hdf5[0], shards[0]) and np.array_equal(hdf5[1], shards[1])
    grids = unpack_numpy(hdf5[1])  # (36, 5, 21, 21, 21), channels C, N, O, CA, CB
    with h5py.File(REAL, "r") as f:
        # aposteriori 2.4 writes C, N, O, CA, CB: the canonical order, so only axes move
        raw = np.stack([f["1vii"]["A"][str(k)][()] for k in range(41, 77)])
    assert np.array_equal(grids, raw.transpose(0, 4, 1, 2, 3).astype(np.float32))
    assert (grids[:, 3, 10, 10, 10] == 1).all()  # every CA sits on the centre voxel


def test_csv_numbered_from_zero_is_reported_not_shifted(tmp_path):
    """mdCATH-style CSVs count residues from 0; the offset is detected on real labels."""
    with h5py.File(REAL, "r") as f:
        labels = [f["1vii"]["A"][str(k)].attrs["label"] for k in range(41, 77)]
    n = len(labels)
    csv = tmp_path / "rmsf.csv"
    pacsv.write_csv(
        pa.table(
            {
                "domain_id": ["1vii"] * n,
                "resid": list(range(40, 40 + n)),  # one below the structure's numbering
                "resname": labels,
                "temperature_feature": [320.0] * n,
                "target_rmsf": [0.1] * n,
            }
        ),
        csv,
    )
    # the only domain is shifted, so no row becomes a target: an error, with the skip table
    with pytest.raises(InputError, match=r"none of the 36 rows .*: resid_offset 36"):
        build_index(REAL, tmp_path / "i.parquet", rmsf_csv=csv, rmsf_unit="nm", progress=False)
    skipped = pacsv.read_csv(tmp_path / "i.skipped.csv").to_pylist()
    assert any(r["reason"] == "resid_offset" and r["domain"] == "1vii" for r in skipped)
