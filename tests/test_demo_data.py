"""The demo generator writes aposteriori-layout inputs with a documented, learnable target."""

import h5py
import numpy as np
import pyarrow.csv as pacsv

from voxelflex.demo.generate import generate_demo, rmsf_target


def test_layout_matches_aposteriori(demo_data):
    with h5py.File(demo_data.voxel_file, "r") as f:
        assert [a if isinstance(a, str) else a.decode() for a in f.attrs["atom_encoder"]] == [
            "C",
            "N",
            "O",
            "CA",
            "CB",
        ]
        dom = sorted(f)[0]
        ds = f[dom]["A"]["1"]
        assert ds.dtype == bool and ds.shape == (21, 21, 21, 5)
        assert ds.compression == "gzip" and ds.chunks == (11, 11, 11, 5)
        assert isinstance(ds.attrs["label"], str) and len(ds.attrs["label"]) == 3
        grid = ds[()]
        assert grid[10, 10, 10, 3]  # CA at the centre voxel
        per_channel = grid.sum(axis=(0, 1, 2))
        assert (per_channel >= 1).all() and per_channel.sum() < 200  # sparse


def test_csv_rows_and_splits(demo_data):
    table = pacsv.read_csv(demo_data.rmsf_csv)
    assert set(table.column("temperature_feature").to_numpy()) == {320, 348, 379, 413, 450}
    with h5py.File(demo_data.voxel_file, "r") as f:
        n_res = sum(len(f[d]["A"]) for d in f)
        domains = set(f)
    assert table.num_rows == 5 * n_res
    listed = []
    for path in (demo_data.train_split, demo_data.val_split, demo_data.test_split):
        listed += [x for x in path.read_text().split("\n") if x and not x.startswith("#")]
    assert sorted(listed) == sorted(domains)


def test_same_seed_same_data(tmp_path):
    a = generate_demo(tmp_path / "a", n_domains=3, seed=5)
    b = generate_demo(tmp_path / "b", n_domains=3, seed=5)
    assert a.rmsf_csv.read_bytes() == b.rmsf_csv.read_bytes()
    with h5py.File(a.voxel_file, "r") as fa, h5py.File(b.voxel_file, "r") as fb:
        for dom in fa:
            for key in fa[dom]["A"]:
                assert np.array_equal(fa[dom]["A"][key][()], fb[dom]["A"][key][()])


def test_target_ignores_oxygen_and_heats_up(demo_data):
    with h5py.File(demo_data.voxel_file, "r") as f:
        dom = sorted(f)[0]
        grids = np.stack([f[dom]["A"][k][()] for k in f[dom]["A"]])
    enc = ["C", "N", "O", "CA", "CB"]
    temps = np.array([320.0, 450.0])
    base = rmsf_target(grids, temps, enc)
    shuffled = grids.copy()
    shuffled[..., 2] = grids[::-1, ..., 2]
    assert np.array_equal(base, rmsf_target(shuffled, temps, enc))
    assert (base[:, 1] > base[:, 0]).all()
