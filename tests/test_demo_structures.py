"""The demo made from atoms: structure files, frames and features of the same residues, a
target that follows its documented formula, and `voxelflex demo --structures` end to end."""

import json

import numpy as np
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from voxelflex.cli.main import app
from voxelflex.demo.assemble import assemble_domain, source_chains
from voxelflex.demo.generate import build_demo_index
from voxelflex.demo.structures import generate_structure_demo, structure_rmsf_target
from voxelflex.index import read_index
from voxelflex.inputs.splits import read_split_file
from voxelflex.structure import read_structure
from voxelflex.structure.features import read_feature_sidecar


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    return generate_structure_demo(tmp_path_factory.mktemp("sdemo"), n_domains=5, seed=3)


def test_assembled_domains_have_the_length_asked_and_real_geometry():
    chains = source_chains()
    assert len(chains) == 6
    for length, seed in ((30, 0), (170, 1), (400, 2)):  # one stretch; packed stretches
        atoms = assemble_domain(length, chains, np.random.default_rng(seed))
        ca = atoms[atoms.atom_name == "CA"]
        assert list(ca.res_id) == list(range(1, length + 1))
        step = np.linalg.norm(np.diff(ca.coord, axis=0), axis=1)
        # consecutive CA 3.8 Å apart except at the junctions of packed stretches
        assert np.mean(np.abs(step - 3.8) < 0.1) > 0.9
        if length > 164:  # longer than any source chain: several stretches, not overlapping
            assert (step > 4.2).sum() >= 1


def test_every_residue_has_frames_features_and_targets(made, tmp_path):
    features, _ = read_feature_sidecar(made.features)
    csv = pacsv.read_csv(made.rmsf_csv)
    assert csv.num_rows == 5 * features.num_rows
    assert not (made.root / "voxels.hdf5.skipped.csv").read_text().strip().count("\n")
    report = build_demo_index(made, tmp_path / "index.parquet")
    index = read_index(tmp_path / "index.parquet").table
    assert report.n_skipped == 0
    assert index.num_rows == csv.num_rows
    assert pc.all(pc.is_valid(index["gnm_msf"])).as_py()
    listed = [
        d for s in ("train", "val", "test") for d in read_split_file(getattr(made, f"{s}_split"))
    ]
    assert sorted(listed) == sorted(p.name.split(".")[0] for p in made.structures.iterdir())


def test_target_follows_its_formula(made):
    features, _ = read_feature_sidecar(made.features)
    csv = pacsv.read_csv(made.rmsf_csv)
    temps = np.array([320.0, 348.0, 379.0, 413.0, 450.0])
    expected = structure_rmsf_target(features, temps).T.ravel()  # CSV: temperature-major
    ratio = csv["target_rmsf"].to_numpy() / expected
    assert ratio.min() > 0.8 and ratio.max() < 1.25  # log-normal noise, σ = 0.05
    assert abs(np.log(ratio).std() - 0.05) < 0.01
    # glycine is the frames' part: same features, 1.3 times the target
    gly = features.set_column(
        features.schema.get_field_index("resname"),
        "resname",
        pc.if_else(pc.equal(features["resname"], "GLY"), "ALA", features["resname"]),
    )
    is_gly = features["resname"].to_numpy(zero_copy_only=False) == "GLY"
    assert is_gly.any()
    base = structure_rmsf_target(features, [320.0])[:, 0]
    assert np.allclose(base[is_gly] / structure_rmsf_target(gly, [320.0])[is_gly, 0], 1.3)
    hot = structure_rmsf_target(features, [450.0])[:, 0]
    assert (hot > base).all()


def test_same_seed_same_files(made, tmp_path):
    again = generate_structure_demo(tmp_path, n_domains=5, seed=3)
    assert again.rmsf_csv.read_bytes() == made.rmsf_csv.read_bytes()
    for path in made.structures.iterdir():
        assert (again.structures / path.name).read_bytes() == path.read_bytes()
    atoms = read_structure(next(made.structures.iterdir())).resolved()
    assert (atoms.b_factor == 0).all()  # nothing of the target in the files


def test_demo_with_structures_predicts_the_same_from_files_and_from_the_index(tmp_path):
    out = tmp_path / "demo"
    args = ["-o", str(out), "--structures", "--domains", "8", "--epochs", "1", "--device", "cpu"]
    result = CliRunner().invoke(app, ["demo", *args])
    assert result.exit_code == 0, result.output
    assert "baseline: GNM fluctuation" in result.output
    assert "feature_gnm_msf" in result.output  # permutation importance covers the features
    run = out / "outputs" / "demo"
    metrics = json.loads((run / "metrics" / "evaluation_metrics_test.json").read_text())
    assert set(metrics["baselines"]) >= {"contact_number", "gnm"}
    assert "crystal_contact_number" not in metrics["baselines"]  # no crystal: contact_number
    # two paths to one number: the index's frames and features, and the structure files'
    keys = ["domain", "chain", "resid_str", "temperature"]
    from_index = pq.read_table(run / "metrics" / "predictions_test.parquet")
    from_files = pq.read_table(run / "metrics" / "predictions_from_structures.parquet")
    joined = from_files.select([*keys, "predicted_rmsf"]).join(
        from_index.select([*keys, "predicted_rmsf"]), keys, right_suffix="_index"
    )
    test_ids = read_split_file(out / "data" / "test_domains.txt")
    assert joined.num_rows == from_files.num_rows > 0
    assert set(joined["domain"].to_pylist()) == set(test_ids)
    assert np.allclose(
        joined["predicted_rmsf"].to_numpy(), joined["predicted_rmsf_index"].to_numpy(), atol=1e-5
    )
    copies = sorted((run / "bfactor_structures").iterdir())
    assert [p.name for p in copies] == sorted(f"{d}.pdb" for d in test_ids)
    atoms = read_structure(copies[0]).resolved()
    assert (atoms.b_factor > 0).all()  # predicted RMSF written as B-factor column
