"""Prediction from a checkpoint on the demo data; permutation importance; the analysis CLI.

The model is a tiny untrained network (its weights on voxel channel O zeroed, so that channel
provably cannot matter); the demo generator's own target function stands in for a perfect model
where importance must reflect what the target uses.
"""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pytest
import torch
from typer.testing import CliRunner

from tests._checkpoints import make_checkpoint
from voxelflex.analysis import predict as predict_module
from voxelflex.analysis.evaluate import evaluate
from voxelflex.analysis.importance import importance_for_rows, permutation_importance
from voxelflex.analysis.predict import predict
from voxelflex.analysis.predictions import read_predictions
from voxelflex.analysis.temperatures import parse_sweep
from voxelflex.cli.main import app
from voxelflex.config import load_config
from voxelflex.demo.generate import MDCATH_TEMPERATURES, rmsf_target
from voxelflex.errors import CheckpointError, ConfigError, InputError, SourceError
from voxelflex.frame import FRAME
from voxelflex.index import build_index, read_index
from voxelflex.inputs import read_split_file
from voxelflex.sources import PlanConfig, open_source
from voxelflex.sources.hdf5 import Hdf5Reader
from voxelflex.sources.shards.manifest import file_sha256


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("run") / "models" / "best.pt")


@pytest.fixture(scope="module")
def test_domain(demo_index):
    table = read_index(demo_index).table
    return sorted(set(table.filter(pc.equal(table["split"], "test"))["domain"].to_pylist()))[0]


def test_sweep_predicts_each_residue_at_each_temperature_in_order(
    checkpoint, demo_index, test_domain, tmp_path, monkeypatch
):
    residues_read = []
    original = Hdf5Reader.read_domain

    def counting(self, domain, chains, resids):
        residues_read.append(len(resids))
        return original(self, domain, chains, resids)

    monkeypatch.setattr(Hdf5Reader, "read_domain", counting)
    trunk_rows = []
    load = predict_module.load_for_inference

    def load_and_count(path, device):
        model, ck = load(path, device)
        model.trunk.register_forward_hook(lambda mod, args, out: trunk_rows.append(len(args[0])))
        return model, ck

    monkeypatch.setattr(predict_module, "load_for_inference", load_and_count)
    sweep = parse_sweep("300:460:20")  # 300, 320, ..., 460: 320 is an index temperature
    report = predict(
        checkpoint,
        demo_index,
        domains=[test_domain],
        temperatures=sweep,
        out_path=tmp_path / "sweep.parquet",
        config=load_config(None, ["predict.residues_per_batch=16", "loader.num_workers=0"]),
    )
    table, meta = read_predictions(report.path)
    n_res = report.n_residues
    # one voxel read and one trunk pass per residue for the whole sweep; the trunk always sees
    # 16 residues (the last batch padded), so batch composition cannot change a prediction
    assert sum(residues_read) == n_res
    assert trunk_rows == [16] * -(-n_res // 16)
    assert table.num_rows == report.n_rows == n_res * len(sweep)
    t = table["temperature"].to_numpy().reshape(n_res, len(sweep))
    np.testing.assert_array_equal(t, np.broadcast_to(sweep, t.shape))
    resnum = table["resnum"].to_numpy().reshape(n_res, len(sweep))
    assert (resnum == resnum[:, :1]).all() and (np.diff(resnum[:, 0]) > 0).all()
    assert set(table["domain"].to_pylist()) == {test_domain}
    # targets joined exactly where the index has that residue and temperature
    has_target = np.isfinite(table["target_rmsf"].to_numpy())
    np.testing.assert_array_equal(has_target, table["temperature"].to_numpy() == 320.0)
    # extrapolation: flagged in the column and the report, not refused
    extrap = table["extrapolated"].to_numpy(zero_copy_only=False)
    np.testing.assert_array_equal(extrap, np.isin(table["temperature"].to_numpy(), [300, 460]))
    assert report.extrapolated_temperatures == (300.0, 460.0)
    assert np.isfinite(table["predicted_rmsf"].to_numpy()).all()
    assert meta.rmsf_unit == "nm" and meta.training_temperature_range == [320.0, 450.0]


def test_domains_by_list_with_missing_ones_reported(checkpoint, demo_index, test_domain, tmp_path):
    out = tmp_path / "some.csv"
    report = predict(checkpoint, demo_index, domains=[test_domain, "9zzzZ99"], out_path=out)
    table, _ = read_predictions(out)
    assert set(table["domain"].to_pylist()) == {test_domain}
    assert sorted(set(table["temperature"].to_pylist())) == list(MDCATH_TEMPERATURES)
    assert np.isfinite(table["target_rmsf"].to_numpy()).all()
    assert report.n_missing == 1 and report.missing_path.is_file()
    missing = report.missing_path.read_text()
    assert "9zzzZ99" in missing and "not in the index" in missing
    assert out.read_text().splitlines()[0].startswith('"domain","chain"')  # plain CSV
    assert (tmp_path / "some.csv.json").is_file()  # its metadata
    with pytest.raises(InputError, match=r"9zzzZ99 \(not in the index\)"):
        predict(checkpoint, demo_index, domains=["9zzzZ99"], out_path=tmp_path / "none.csv")


def test_split_wide_predict_reports_the_split_domains_the_index_lost(
    checkpoint, demo_data, tmp_path
):
    test_ids = read_split_file(demo_data.test_split)
    voxels = tmp_path / "v.hdf5"
    shutil.copy(demo_data.voxel_file, voxels)
    with h5py.File(voxels, "a") as f:
        del f[test_ids[0]]  # a test domain the voxel file lacks
    split = tmp_path / "test.txt"
    split.write_text("\n".join([*test_ids, "9zzzZ99"]) + "\n")  # and an id nobody has
    index = build_index(
        voxels,
        tmp_path / "i.parquet",
        rmsf_csv=demo_data.rmsf_csv,
        rmsf_unit="nm",
        train=demo_data.train_split,
        val=demo_data.val_split,
        test=split,
        progress=False,
    ).index_path
    assert read_index(index).meta.split_ids["test"] == sorted([*test_ids, "9zzzZ99"])
    report = predict(checkpoint, index, split="test", out_path=tmp_path / "p.csv")
    lines = pacsv.read_csv(report.missing_path).to_pylist()
    reasons = {r["domain"]: (r["reason"], r["detail"]) for r in lines}
    assert reasons[test_ids[0]][0] == "not_indexed"
    assert reasons[test_ids[0]][1].startswith("not_in_hdf5")
    assert reasons["9zzzZ99"][1].startswith("split_id_unknown")
    predicted, _ = read_predictions(report.path)
    assert set(predicted["domain"].to_pylist()) == set(test_ids[1:])


def test_prediction_index_needs_temperatures(checkpoint, demo_data, tmp_path):
    from voxelflex.index import build_index

    index = tmp_path / "predict_index.parquet"
    build_index(demo_data.voxel_file, index, progress=False)  # no RMSF: every residue in `predict`
    with pytest.raises(ConfigError, match="--temperature"):
        predict(checkpoint, index, split="predict", out_path=tmp_path / "p.parquet")
    domain = read_index(index).table["domain"][0].as_py()
    report = predict(
        checkpoint, index, domains=[domain], temperatures=[300.0], out_path=tmp_path / "p.parquet"
    )
    table, _ = read_predictions(report.path)
    assert table.num_rows == report.n_residues > 0
    assert np.isnan(table["target_rmsf"].to_numpy()).all()


def test_library_predict_refuses_temperatures_at_or_below_zero_kelvin(
    checkpoint, demo_index, test_domain, tmp_path
):
    # the CLI's parser refused them; predict() wrote predictions at -20 K and 0 K, exit 0
    for temps in ([-20.0, 300.0], [0.0]):
        out = tmp_path / "p.parquet"
        with pytest.raises(SourceError, match=r"finite kelvin values > 0 K, got \[(-20|0)"):
            predict(checkpoint, demo_index, domains=[test_domain], temperatures=temps, out_path=out)
        assert not out.exists()


def test_refuses_index_with_another_rmsf_unit(demo_index, tmp_path):
    ckpt = make_checkpoint(tmp_path / "angstrom.pt", rmsf_unit="angstrom")
    with pytest.raises(
        CheckpointError, match=r"RMSF in nm, but checkpoint .* predicts RMSF in angs"
    ):
        predict(ckpt, demo_index, split="test", out_path=tmp_path / "x.parquet")


def test_importance_of_a_channel_the_target_ignores_is_zero(demo_index):
    """The demo target as the model: shuffling O changes nothing, the used channels matter."""
    enc = list(FRAME.channels)

    def target_model(grids, batch):
        file_layout = grids.permute(0, 2, 3, 4, 1).cpu().numpy().astype(bool)
        per_sample = rmsf_target(file_layout, batch.temperature.cpu().numpy(), enc)
        return torch.from_numpy(
            per_sample[batch.residue_index.cpu().numpy(), np.arange(batch.n_samples)]
        )

    source = open_source("hdf5", read_index(demo_index), split="test")
    result = permutation_importance(
        target_model,
        source.loader(PlanConfig(batch_size=200, shuffle=False), epoch=0),
        channels=enc,
        n_shuffles=2,
    )
    drops = {k: v["pearson_drop"] for k, v in result["features"].items()}
    assert result["n_rows"] == source.sample_count
    assert result["baseline_pearson"] > 0.9  # the noise-free target against the noisy one
    assert drops["channel_O"] == pytest.approx(0.0, abs=1e-12)
    for used in ("temperature", "channel_C", "channel_N", "channel_CA", "channel_CB"):
        assert drops[used] > 0.01, (used, drops)


def test_importance_of_a_relative_model_scores_it_against_per_domain_z_scores(demo_index, tmp_path):
    # a target_norm=domain model predicts z-scores: RMSE against raw nm would mix units
    ckpt = make_checkpoint(tmp_path / "z.pt", target_norm="domain")
    config = load_config(None, ["loader.num_workers=0", "predict.progress=false"])
    preds = predict(ckpt, demo_index, split="test", out_path=tmp_path / "p.parquet", config=config)
    table, _ = read_predictions(preds.path)
    domains = sorted(set(table["domain"].to_pylist()))
    result = importance_for_rows(
        checkpoint=ckpt, index_path=demo_index, splits=["test"], domains=domains,
        config=config, n_shuffles=1,
    )  # fmt: skip
    y, p = table["target_rmsf"].to_numpy(), table["predicted_rmsf"].to_numpy()
    d = np.asarray(table["domain"].to_pylist())
    z = np.empty_like(y, dtype=np.float64)
    for domain in domains:
        at = d == domain
        z[at] = (y[at] - y[at].mean()) / y[at].std()
    assert result["n_rows"] == len(y)
    assert result["baseline_rmse"] == pytest.approx(np.sqrt(np.mean((p - z) ** 2)), rel=1e-4)


def test_evaluate_with_importance_through_a_checkpoint(
    checkpoint, demo_index, test_domain, tmp_path
):
    preds = predict(
        checkpoint, demo_index, domains=[test_domain], out_path=tmp_path / "metrics" / "p.parquet"
    )
    report = evaluate(
        preds.path, n_shuffles=1, config=load_config(None, ["predict.residues_per_batch=64"])
    )
    m = report.metrics
    sha = file_sha256(checkpoint)  # which model made the predictions and the importance
    assert read_predictions(preds.path)[1].checkpoint_sha256 == sha
    assert m["checkpoint"]["sha256"] == sha == m["permutation_importance"]["checkpoint"]["sha256"]
    assert report.path.name == "evaluation_metrics_test.json"
    imp = m["permutation_importance"]
    assert imp["n_rows"] == preds.n_rows  # the predicted domain's rows, once each
    assert set(imp["features"]) == {"temperature", *(f"channel_{c}" for c in FRAME.channels)}
    assert imp["features"]["channel_O"]["pearson_drop"] == 0.0  # zero weights on O
    assert m["baselines"]["n_train_rows"] > 0
    assert m["baselines"]["temperature_fit"]["overall"]["n"] == m["overall"]["n"]
    assert set(m["stratified"]) == {"secondary_structure", "relative_accessibility", "residue_type"}


def test_cli_predict_evaluate_plot(checkpoint, demo_index, test_domain, tmp_path):
    runner = CliRunner()
    preds = tmp_path / "metrics" / "predictions_test.csv"
    args = ["predict", "-c", str(checkpoint), "-i", str(demo_index), "-d", test_domain]
    args += ["-t", "348", "--temperatures", "400:500:50", "-o", str(preds)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "extrapolated (outside the training range): 500 K" in result.output
    result = runner.invoke(app, ["evaluate", "-p", str(preds), "--no-importance"])
    assert result.exit_code == 0, result.output
    assert "baseline: temperature-only fit" in result.output
    assert (tmp_path / "metrics" / "evaluation_metrics_test.json").is_file()
    result = runner.invoke(app, ["visualize", "-p", str(preds), "--format", "svg"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "visualizations" / "pred_vs_true.svg").stat().st_size > 0
    result = runner.invoke(app, [*args[:-4], "--temperatures", "300:200:10"])
    assert result.exit_code == 2 and "error: temperature sweep" in result.output
    result = runner.invoke(app, [*args, "--domains-file", str(tmp_path / "ids.txt")])
    assert result.exit_code == 2 and "ids.txt does not exist; check --domains-file" in result.output
    (tmp_path / "empty.txt").write_text("# nothing yet\n\n")  # no filter would be every domain
    result = runner.invoke(app, [*args[:5], "--domains-file", str(tmp_path / "empty.txt")])
    assert result.exit_code == 2 and "empty.txt lists no domain id" in result.output
    # --format csv beside -o x.parquet wrote Parquet, the flag silently overruled
    result = runner.invoke(app, [*args[:5], "--format", "csv", "-o", str(tmp_path / "x.parquet")])
    assert result.exit_code == 2 and "--format csv, but --output" in result.output
    assert not (tmp_path / "x.parquet").exists()


def test_temperatures_that_look_like_celsius_warn_and_are_written_as_flagged(
    checkpoint, demo_index, test_domain, tmp_path
):
    # 25 °C given as kelvin: a warning naming the values and the fix, as index build gives for
    # an RMSF CSV; the rows are written, flagged extrapolated
    preds = tmp_path / "cold.csv"
    args = ["predict", "-c", str(checkpoint), "-i", str(demo_index), "-d", test_domain]
    result = CliRunner().invoke(app, [*args, "-t", "25", "--temperatures", "30:40:10", "-o", preds])
    assert result.exit_code == 0, result.output
    assert "predict: temperatures 25, 30, 40 K are below 60 K" in result.output
    assert (
        "pass kelvin to --temperature or --temperatures (e.g. 298.15 K for 25 °C)" in result.output
    )
    assert (
        "temperatures 25, 30, 40 K lie outside" in result.output
        and "even negative" in result.output
    )
    table, _ = read_predictions(preds)
    assert table["extrapolated"].to_numpy(zero_copy_only=False).all()
    result = CliRunner().invoke(app, [*args, "-t", "37", "-o", tmp_path / "one.csv"])
    assert result.exit_code == 0, result.output
    assert (
        "predict: temperature 37 K is below 60 K" in result.output
        and "if it is °C" in result.output
    )
    assert "temperature 37 K lies outside" in result.output
    assert "residues × 1 temperature = " in result.output


def test_shards_and_hdf5_give_the_same_predictions(checkpoint, demo_index, test_domain, tmp_path):
    from voxelflex.sources import build_shards

    build_shards(read_index(demo_index), tmp_path / "shards", progress=False)
    tables = []
    for source in ("hdf5", "shards"):
        report = predict(
            checkpoint,
            demo_index,
            domains=[test_domain],
            temperatures=[350.0],
            out_path=tmp_path / f"{source}.parquet",
            config=load_config(
                None, [f"loader.source={source}", f"data.shards_dir={tmp_path / 'shards'}"]
            ),
        )
        tables.append(read_predictions(report.path)[0])
    hdf5, shards = tables
    assert hdf5.drop_columns("target_rmsf").equals(shards.drop_columns("target_rmsf"))
    assert np.isnan(hdf5["target_rmsf"].to_numpy()).all()  # 350 K is not an index temperature
    assert np.isnan(shards["target_rmsf"].to_numpy()).all()
