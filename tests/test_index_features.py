"""Structure features as model inputs: sidecar joined into the index, served by every source,
standardised in training, required by the checkpoint, scored as physics baselines."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import torch

from tests._checkpoints import make_checkpoint
from voxelflex.analysis.baselines import fit_line, fit_temperature_lines
from voxelflex.analysis.evaluate import evaluate
from voxelflex.analysis.importance import importance_for_rows
from voxelflex.analysis.predict import predict
from voxelflex.analysis.predictions import PredictionsMeta, write_predictions
from voxelflex.config import load_config
from voxelflex.demo.generate import generate_demo
from voxelflex.engine import Checkpoint, train
from voxelflex.errors import CheckpointError, IndexFormatError, InputError, SourceError
from voxelflex.index import build_index, read_index
from voxelflex.index.schema import METADATA_KEY
from voxelflex.sources import PlanConfig, build_shards, open_source
from voxelflex.sources.table import zscore_segments
from voxelflex.structure.features import (
    FEATURE_GROUPS,
    FEATURE_NAMES,
    FeatureMeta,
    feature_table,
    read_feature_sidecar,
    write_feature_sidecar,
)

pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create")


class _Values:
    """Stands in for ResidueFeatures in feature_table (names, keys and a value matrix)."""

    def __init__(self, keys: pa.Table, values: np.ndarray) -> None:
        self.names = FEATURE_NAMES
        self.chain = np.asarray(keys["chain"].to_pylist(), dtype=object)
        self.resid_str = np.asarray(keys["resid_str"].to_pylist(), dtype=object)
        self.resnum = keys["resnum"].to_numpy()
        self.icode = np.asarray(keys["icode"].to_pylist(), dtype=object)
        self.resname = np.asarray(keys["resname"].to_pylist(), dtype=object)
        self.values = values

    def __len__(self) -> int:
        return len(self.chain)


class _Framed:
    """Stands in for the frames in feature_table: every index residue has one."""

    def __init__(self, values: _Values) -> None:
        self.chain_ids = self.chains = values.chain
        self.resnums, self.icodes, self.labels = values.resnum, values.icode, values.resname
        self.resids = values.resid_str


def _sidecar(index_path, out, drop_domain=None):
    """A sidecar for every residue of an index: gnm_msf tracks the 320 K target (a good
    'physics' baseline), wcn_ca is its negative plus noise, the rest is noise."""
    t = read_index(index_path).table
    rows = t.filter(pc.or_(pc.equal(t["temperature"], 320.0), pc.is_nan(t["temperature"])))
    keys = ["domain", "chain", "resid_str", "resnum", "icode", "resname"]
    rng = np.random.default_rng(0)
    tables = []
    for domain in sorted(set(rows["domain"].to_pylist()) - {drop_domain}):
        d = rows.filter(pc.equal(rows["domain"], domain))
        y = np.nan_to_num(d["target_rmsf"].to_numpy(zero_copy_only=False), nan=0.2)
        values = rng.normal(size=(d.num_rows, len(FEATURE_NAMES))).astype(np.float32)
        values[:, FEATURE_NAMES.index("gnm_msf")] = y
        values[:, FEATURE_NAMES.index("wcn_ca")] = -y + rng.normal(0, 0.05, d.num_rows)
        rows_of_domain = _Values(d.select(keys), values)
        tables.append(feature_table(domain, rows_of_domain, _Framed(rows_of_domain)))
    write_feature_sidecar(out, tables)
    return out


@pytest.fixture(scope="module")
def featured(tmp_path_factory):
    """Demo data, its plain index, a sidecar lacking one domain, and the index with features."""
    root = tmp_path_factory.mktemp("features")
    data = generate_demo(root / "data", n_domains=9, min_residues=8, max_residues=14, seed=4)
    args = {
        "rmsf_csv": data.rmsf_csv,
        "rmsf_unit": "nm",
        "train": data.train_split,
        "val": data.val_split,
        "test": data.test_split,
        "progress": False,
    }
    plain = build_index(data.voxel_file, root / "plain.parquet", **args).index_path
    first = read_index(plain).table["domain"][0].as_py()
    sidecar = _sidecar(plain, root / "features.parquet", drop_domain=first)
    report = build_index(data.voxel_file, root / "index.parquet", features=sidecar, **args)
    return data, plain, report, first


def test_sidecar_columns_join_and_residues_without_features_are_skipped(featured):
    _, plain, report, dropped = featured
    index = read_index(report.index_path)
    assert set(FEATURE_NAMES) <= set(index.table.column_names)
    assert sorted(index.meta.features) == sorted(FEATURE_NAMES)
    assert index.meta.features["gnm_msf"]["group"] == "gnm"
    assert dropped not in index.table["domain"].to_pylist()
    assert report.skipped["no_features"] > 0
    skip = pacsv.read_csv(report.skip_table_path).to_pylist()
    assert {r["domain"] for r in skip if r["reason"] == "no_features"} == {dropped}
    assert "features" in index.meta.fingerprints
    assert index.meta.fingerprint() != read_index(plain).meta.fingerprint()


def test_a_sidecar_naming_other_residues_is_refused(featured, tmp_path):
    data, _, report, _ = featured
    sidecar = read_index(report.index_path).meta.fingerprints["features"]["path"]
    table, _ = read_feature_sidecar(sidecar)
    names = table["resname"].to_pylist()
    names[3] = "TRP" if names[3] != "TRP" else "GLY"  # row 3 now describes another residue
    wrong = table.set_column(table.schema.get_field_index("resname"), "resname", pa.array(names))
    path = tmp_path / "wrong.parquet"
    write_feature_sidecar(path, [wrong])
    key = "/".join(
        table.slice(3, 1).select(["domain", "chain", "resid_str"]).to_pylist()[0].values()
    )
    with pytest.raises(InputError, match=rf"for 1 residues \({key}: voxel file"):
        build_index(
            data.voxel_file,
            tmp_path / "i.parquet",
            rmsf_csv=data.rmsf_csv,
            rmsf_unit="nm",
            features=path,
            progress=False,
        )


@pytest.mark.parametrize("workers", [0, 1])
def test_every_source_serves_the_same_features_per_residue(featured, tmp_path, workers):
    _, _, report, _ = featured
    index = read_index(report.index_path)
    build_shards(index, tmp_path / "s", progress=False)
    names = ("gnm_msf", "wcn_ca")
    batches = {}
    for name in ("hdf5", "shards"):
        src = open_source(name, index, split="train", features=names, shards_dir=tmp_path / "s")
        cfg = PlanConfig(batch_size=64, shuffle=False, num_workers=workers)
        batches[name] = list(src.loader(cfg, 0))
    for a, b in zip(batches["hdf5"], batches["shards"], strict=True):
        assert a.features.shape == (a.n_residues, 2) and torch.equal(a.features, b.features)
    table = index.table
    first = batches["hdf5"][0]
    rid = int(first.row_id[0])
    assert float(first.features[0, 0]) == pytest.approx(table["gnm_msf"][rid].as_py())
    with pytest.raises(SourceError, match=r"\['relative_accessibility'\] are not structure"):
        open_source("hdf5", index, split="train", features=("relative_accessibility",))


def test_an_index_whose_sidecar_predates_a_feature_group_names_the_fix(featured, tmp_path):
    # A sidecar written before the window group: its footer and columns lack the group.
    data, plain, report, _ = featured
    table, meta = read_feature_sidecar(report.index_path.parent / "features.parquet")
    older = FeatureMeta(features=tuple(f for f in meta.features if f.group != "window"))
    table = table.drop_columns([c for c in FEATURE_GROUPS["window"]])
    old = tmp_path / "old_features.parquet"
    write_feature_sidecar(old, [table], older)
    args = {"rmsf_csv": data.rmsf_csv, "rmsf_unit": "nm", "train": data.train_split}
    index = read_index(
        build_index(
            data.voxel_file, tmp_path / "i.parquet", features=old, progress=False, **args
        ).index_path
    )
    with pytest.raises(SourceError, match=r"recompute it with `voxelflex features` and rebuild"):
        open_source("hdf5", index, split="train", features=("wcn_ca", *FEATURE_GROUPS["window"]))
    with pytest.raises(SourceError) as plain_index:  # no sidecar at all: the plain fix alone
        open_source("hdf5", read_index(plain), split="train", features=("wcn_ca_w7",))
    assert "recompute" not in str(plain_index.value)


def test_training_with_features_stores_them_and_prediction_requires_them(featured, tmp_path):
    _, plain, report, _ = featured
    overrides = [
        f"data.index={report.index_path}",
        f"output_dir={tmp_path}",
        "run_name=feat",
        "model.preset=tiny",
        "model.features=[gnm, wcn_ca]",
        "loader.num_workers=0",
        "train.epochs=1",
        "train.progress=false",
        "train.monitor=val_chain_pearson",
    ]
    result = train(load_config(None, overrides))
    assert "chain_pearson" in result.history[0]["val"]
    ck = Checkpoint.load(result.best_checkpoint)
    assert ck.model_spec.features == ("gnm_msf", "wcn_ca")  # the group expanded, order kept
    index = read_index(report.index_path)
    assert ck.meta.feature_provenance == index.meta.feature_provenance is not None
    train_rows = index.table.filter(pc.equal(index.table["split"], "train"))
    first_rows = train_rows.filter(pc.equal(train_rows["temperature"], 320.0))
    expected = np.mean(first_rows["gnm_msf"].to_numpy())
    assert float(ck.model["feature_mean"][0]) == pytest.approx(expected, rel=1e-5)
    report_p = predict(result.best_checkpoint, report.index_path, out_path=tmp_path / "p.parquet")
    assert report_p.n_rows > 0
    with pytest.raises(SourceError, match=r"\['gnm_msf', 'wcn_ca'\] are not structure features"):
        predict(result.best_checkpoint, plain, out_path=tmp_path / "q.parquet")
    metrics = evaluate(report_p.path, n_shuffles=1).metrics
    imp = metrics["permutation_importance"]["features"]
    assert {"feature_gnm_msf", "feature_wcn_ca"} <= set(imp)
    for name in ("contact_number", "gnm", "crystal_contact_number"):
        base = metrics["baselines"][name]
        assert base["per_domain_pearson"]["all_temperatures"]["n"] > 0
    assert metrics["baselines"]["crystal_contact_number"]["feature"] == "wcn_ca + wcn_lattice"
    # gnm_msf is the 320 K target itself: its per-domain r at 320 K is 1
    gnm = metrics["baselines"]["gnm"]["per_domain_pearson"]["320"]["median"]
    assert gnm == pytest.approx(1.0, abs=1e-5)
    fit = metrics["baselines"]["contact_number"]["coefficients"]
    assert fit["slope"] < 0  # sign learned
    levels = [fit["intercept_per_temperature"][k] for k in ("320", "348", "379", "413", "450")]
    assert levels == sorted(levels)  # the target rises with temperature


def test_physics_baseline_slope_comes_from_within_each_domain():
    """Crystal B-factor scales differ between entries: here the densely packed domain has the
    larger scale, so a pooled line would learn that packing raises RMSF. Within each domain
    packing lowers it, and that is the slope the baseline uses."""
    rng = np.random.default_rng(0)
    x = np.r_[rng.uniform(0, 1, 50), rng.uniform(2, 3, 50)]  # contact number, domain 2 denser
    y = np.r_[5 - x[:50], 20 - x[50:]] + rng.normal(0, 0.01, 100)  # its B-factor scale larger
    domain = np.repeat([0, 1], 50)
    _, (_, pooled) = fit_line(x, y, x, what="test")
    _, (_, within) = fit_line(x, y, x, what="test", groups=domain)
    assert pooled > 0 and within == pytest.approx(-1, abs=0.02)


def test_physics_baseline_has_an_intercept_per_train_temperature():
    """mdCATH-like rows: the level grows with temperature. One slope (from within each domain
    and temperature), an intercept per train temperature; a temperature between two train
    temperatures interpolates them, one beyond the train range takes the nearest."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, 200)
    t = np.repeat([300.0, 400.0], 100)
    domain = np.tile(np.repeat([0, 1], 50), 2)
    y = np.where(t == 300, 1.0, 3.0) - x + 0.5 * domain  # domain 1 moves more throughout
    p, slope, intercepts = fit_temperature_lines(
        x, y, t, domain, np.array([0.5, 0.5, 0.5]), np.array([300, 350, 500.0]), what="test"
    )
    assert slope == pytest.approx(-1)
    assert intercepts == pytest.approx({300.0: 1.25, 400.0: 3.25})
    assert p == pytest.approx([0.75, 1.75, 2.75])
    one, *_ = fit_temperature_lines(x[:100], y[:100], t[:100], domain[:100], x, t, what="test")
    assert one == pytest.approx(fit_line(x[:100], y[:100], x, what="test", groups=domain[:100])[0])


def test_a_physics_baseline_counts_and_names_the_rows_it_has_no_feature_for(
    featured, tmp_path, caplog
):
    """A residue whose gnm_msf is NaN (a hand-edited sidecar) has no gnm baseline prediction:
    its rows used to drop out of the baseline's scores with only a smaller `n` to tell, so the
    baseline was compared with the model on other rows."""
    data, _, report, _ = featured
    index = read_index(report.index_path)
    sidecar, _ = read_feature_sidecar(index.meta.fingerprints["features"]["path"])
    test = index.table.filter(pc.equal(index.table["split"], "test"))
    key = test.slice(0, 1).select(["domain", "chain", "resid_str"]).to_pylist()[0]
    at = np.logical_and.reduce([np.asarray(sidecar[k].to_pylist()) == v for k, v in key.items()])
    gnm = np.where(at, np.nan, sidecar["gnm_msf"].to_numpy()).astype(np.float32)
    edited = sidecar.set_column(sidecar.schema.get_field_index("gnm_msf"), "gnm_msf", pa.array(gnm))
    write_feature_sidecar(tmp_path / "f.parquet", [edited])
    splits = {"train": data.train_split, "val": data.val_split, "test": data.test_split}
    path = build_index(
        data.voxel_file, tmp_path / "i.parquet", rmsf_csv=data.rmsf_csv, rmsf_unit="nm",
        features=tmp_path / "f.parquet", progress=False, **splits,
    ).index_path  # fmt: skip
    columns = ["domain", "chain", "resid_str", "resnum", "icode", "resname", "temperature"]
    rows = test.select([*columns, "target_rmsf"])
    y = rows["target_rmsf"].to_numpy()
    rows = rows.append_column("predicted_rmsf", pa.array(y * 1.1, pa.float32()))
    rows = rows.append_column("extrapolated", pa.array([False] * rows.num_rows))
    meta = PredictionsMeta("nm", "/nonexistent/best.pt", str(path), ["test"], [], None)
    preds = write_predictions(rows, meta, tmp_path / "predictions_test.parquet")
    baselines = evaluate(preds, importance=False).metrics["baselines"]
    n_temps = int(np.sum(np.logical_and.reduce(
        [np.asarray(test[k].to_pylist()) == v for k, v in key.items()]
    )))  # fmt: skip
    assert baselines["gnm"]["n_rows_without_feature"] == n_temps > 0
    assert baselines["gnm"]["overall"]["n"] == rows.num_rows - n_temps
    assert baselines["contact_number"]["n_rows_without_feature"] == 0
    assert baselines["contact_number"]["overall"]["n"] == rows.num_rows
    where = "/".join(key.values())
    assert f"baseline gnm has no gnm_msf value for {n_temps} of {rows.num_rows}" in caplog.text
    assert where in caplog.text


def test_zscore_segments_matches_a_per_segment_loop():
    rng = np.random.default_rng(1)
    values = rng.normal(5.0, 3.0, size=(12, 3))
    values[4:7, 1] = 2.5  # constant within segment 1: zeros there
    offsets = np.array([0, 4, 7, 7, 11, 12])  # an empty segment and a one-row segment
    got = zscore_segments(values, offsets)
    assert got.dtype == np.float32 and got.shape == values.shape
    for s in (0, 1, 3, 4):  # the non-empty segments
        seg = values[offsets[s] : offsets[s + 1]]
        std = seg.std(axis=0)
        want = np.where(std > 0, (seg - seg.mean(axis=0)) / np.where(std > 0, std, 1), 0)
        np.testing.assert_allclose(got[offsets[s] : offsets[s + 1]], want, atol=1e-6)
    assert np.all(got[4:7, 1] == 0) and np.all(got[11] == 0)
    np.testing.assert_allclose(zscore_segments(values[:, 0], offsets), got[:, 0])


def test_domain_feature_norm_is_served_alike_by_every_source_and_kept_by_the_model(
    featured, tmp_path
):
    _, _, report, _ = featured
    index = read_index(report.index_path)
    build_shards(index, tmp_path / "s", progress=False)
    names = ("gnm_msf", "n_ca_8")
    tables = {
        name: open_source(
            name,
            index,
            split="train",
            features=names,
            feature_norm="domain",
            shards_dir=tmp_path / "s",
        ).table
        for name in ("hdf5", "shards")
    }
    np.testing.assert_array_equal(tables["hdf5"].features, tables["shards"].features)
    raw = open_source("hdf5", index, split="train", features=names).table
    for d in range(raw.n_domains):  # each domain's residues: mean 0, standard deviation 1
        lo, hi = raw.domain_res_offsets[d : d + 2]
        z = tables["hdf5"].features[lo:hi]
        np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-5)
        np.testing.assert_allclose(z.std(axis=0), 1, atol=1e-5)
        x = raw.features[lo:hi].astype(np.float64)
        np.testing.assert_allclose(z, (x - x.mean(axis=0)) / x.std(axis=0), atol=1e-5)
    overrides = [
        f"data.index={report.index_path}",
        f"output_dir={tmp_path}",
        "run_name=zfeat",
        "model.name=features_only",
        f"model.features=[{', '.join(names)}]",
        "model.feature_norm=domain",
        "loader.num_workers=0",
        "train.epochs=1",
        "train.progress=false",
    ]
    ck = Checkpoint.load(train(load_config(None, overrides)).best_checkpoint)
    assert ck.model_spec.feature_norm == "domain"
    np.testing.assert_allclose(ck.model["feature_mean"].numpy(), 0, atol=1e-5)
    with pytest.raises(SourceError, match="feature_norm must be one of"):
        open_source("hdf5", index, split="train", features=names, feature_norm="chain")


def test_a_sidecar_read_with_another_altloc_or_keys_is_refused(featured, tmp_path):
    """The demo voxel file has no voxelflex record: aposteriori's reading (altloc first, keys
    aposteriori). A sidecar recording another is refused; one recording none is warned about."""
    data, _, report, _ = featured
    sidecar = read_index(report.index_path).meta.fingerprints["features"]["path"]
    table, _ = read_feature_sidecar(sidecar)
    args = {"rmsf_csv": data.rmsf_csv, "rmsf_unit": "nm", "progress": False}
    for altloc, keys, wrong in (("occupancy", "aposteriori", "altloc"), ("first", "icode", "keys")):
        path = tmp_path / f"{altloc}_{keys}.parquet"
        write_feature_sidecar(path, [table], altloc=altloc, keys=keys)
        with pytest.raises(InputError, match=rf"--{wrong} .* \(sidecar\).*--altloc first --keys"):
            build_index(data.voxel_file, tmp_path / "i.parquet", features=path, **args)
        assert not (tmp_path / "i.parquet").exists()
    same = tmp_path / "same.parquet"
    write_feature_sidecar(same, [table], altloc="first", keys="aposteriori")
    assert read_feature_sidecar(same)[1].parameters["altloc"] == "first"
    built = build_index(data.voxel_file, tmp_path / "ok.parquet", features=same, **args)
    assert not any("--altloc" in w for w in built.warnings)
    # a sidecar written before the record: read, with a warning naming it
    assert any("does not record the --altloc" in w for w in report.warnings)


def test_voxelize_and_features_with_other_altloc_are_refused_at_index_build(tmp_path):
    from typer.testing import CliRunner

    from voxelflex.cli.main import app

    src = tmp_path / "s"
    src.mkdir()
    (src / "1vii.pdb.gz").write_bytes(
        (Path(__file__).parent / "data" / "structures" / "1vii.pdb.gz").read_bytes()
    )
    run = CliRunner().invoke
    flags = ["--no-progress"]
    assert run(app, ["voxelize", str(src), "-o", str(tmp_path / "v.hdf5"), *flags]).exit_code == 0
    occ = ["features", str(src), "-o", str(tmp_path / "occ.parquet"), "--altloc", "occupancy"]
    assert run(app, [*occ, *flags]).exit_code == 0
    result = run(
        app,
        ["index", "build", "--voxel-file", str(tmp_path / "v.hdf5"), "--features",
         str(tmp_path / "occ.parquet"), "-o", str(tmp_path / "i.parquet"), *flags],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "--altloc occupancy (sidecar) vs first (voxel file)" in result.output


def test_the_index_records_its_sidecars_feature_provenance_and_an_older_index_loads(
    featured, tmp_path
):
    _, plain, report, _ = featured
    index = read_index(report.index_path)
    sidecar = index.meta.fingerprints["features"]["path"]
    assert index.meta.feature_provenance == read_feature_sidecar(sidecar)[1].provenance()
    assert index.meta.feature_provenance == FeatureMeta().provenance()
    assert read_index(plain).meta.feature_provenance is None
    # an index built before the provenance was recorded: its footer lacks the key
    table = pq.read_table(report.index_path)
    footer = json.loads(table.schema.metadata[METADATA_KEY])
    del footer["feature_provenance"]
    older = table.replace_schema_metadata({METADATA_KEY: json.dumps(footer).encode()})
    pq.write_table(older, tmp_path / "older.parquet")
    loaded = read_index(tmp_path / "older.parquet")
    assert loaded.meta.feature_provenance is None and loaded.meta.features == index.meta.features
    footer["feature_provenance"] = {"format_version": 6, "parameters": None}
    bad = table.replace_schema_metadata({METADATA_KEY: json.dumps(footer).encode()})
    pq.write_table(bad, tmp_path / "bad.parquet")
    with pytest.raises(IndexFormatError, match=r"bad\.parquet: index metadata field missing"):
        read_index(tmp_path / "bad.parquet")


def test_predict_compares_the_indexs_features_with_those_the_checkpoint_was_trained_on(
    featured, tmp_path, caplog
):
    """Another sidecar format (either side) or no record is a warning naming what differs and
    the fix, and the predictions are written; another parameter is refused before any output."""
    caplog.set_level("WARNING", logger="voxelflex.engine.checkpoint")
    data, _, report, _ = featured
    features = ("gnm_msf", "wcn_ca")
    current = FeatureMeta().provenance()

    def run(index, provenance, name):
        caplog.clear()
        ck = make_checkpoint(tmp_path / f"{name}.pt", features=features, provenance=provenance)
        out = tmp_path / f"{name}.parquet"
        predict(ck, index, split="test", out_path=out)
        assert out.exists()
        return [r.getMessage() for r in caplog.records if "feature" in r.getMessage()]

    assert run(report.index_path, current, "same") == []
    (old_model,) = run(report.index_path, dataclasses.replace(current, format_version=5), "v5")
    assert "trained on feature sidecar format 5, but index" in old_model
    assert "HSD, HIE and CYX" in old_model and "retrain on an index built from" in old_model
    (unrecorded,) = run(report.index_path, None, "none")
    assert "none.pt does not record the format, parameters and biotite" in unrecorded
    # an index from a format-5 sidecar meets a checkpoint trained on format 6
    sidecar = read_index(report.index_path).meta.fingerprints["features"]["path"]
    table, _ = read_feature_sidecar(sidecar)
    old_sidecar = tmp_path / "v5_features.parquet"
    write_feature_sidecar(old_sidecar, [table], FeatureMeta(format_version=5))
    old_index = build_index(
        data.voxel_file, tmp_path / "v5_index.parquet", rmsf_csv=data.rmsf_csv, rmsf_unit="nm",
        test=data.test_split, features=old_sidecar, progress=False,
    ).index_path  # fmt: skip
    assert read_index(old_index).meta.feature_provenance.format_version == 5
    (old_data,) = run(old_index, current, "v6")
    assert "format 6, but index" in old_data and "format 5 (index" in old_data
    assert "recompute the sidecar with `voxelflex features` and rebuild the index" in old_data
    other = dataclasses.replace(
        current, parameters={**current.parameters, "gnm_cutoff_angstrom": 8}
    )
    with pytest.raises(CheckpointError, match=r"gnm_cutoff_angstrom 8 \(checkpoint .*\) vs 7.3"):
        run(report.index_path, other, "other")
    assert not (tmp_path / "other.parquet").exists()
    with pytest.raises(CheckpointError, match="gnm_cutoff_angstrom 8"):  # evaluate's importance
        importance_for_rows(
            checkpoint=tmp_path / "other.pt", index_path=report.index_path, splits=["test"],
            domains=[], config=load_config(),
        )  # fmt: skip
