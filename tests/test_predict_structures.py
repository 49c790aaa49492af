"""`voxelflex predict --structure`: frames and features computed in memory give exactly what
the file route (voxelize → index → shards → predict) gives; the B-factor copies."""

from __future__ import annotations

import dataclasses
import gzip
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pytest
import torch
from typer.testing import CliRunner

from tests._checkpoints import make_checkpoint
from voxelflex.analysis.predict import predict
from voxelflex.analysis.predictions import read_predictions
from voxelflex.analysis.structures import predict_structures
from voxelflex.cli.main import app
from voxelflex.config import load_config
from voxelflex.engine.checkpoint import Checkpoint
from voxelflex.errors import CheckpointError, ConfigError, InputError, SourceError
from voxelflex.index import build_index, read_index
from voxelflex.sources import build_shards, open_source
from voxelflex.structure import voxelize_files
from voxelflex.structure.features import FeatureMeta, read_feature_sidecar

pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create")

DATA = Path(__file__).parent / "data" / "structures"
FILES = ("1vii.pdb.gz", "1a8o.pdb.gz", "disordered.pdb")
FEATURES = ("gnm_msf", "wcn_ca", "rsa")


@pytest.fixture(scope="module")
def structures(tmp_path_factory):
    root = tmp_path_factory.mktemp("structures")
    for name in FILES:
        shutil.copy(DATA / name, root / name)
    return root


@pytest.mark.parametrize(
    ("features", "feature_norm"),
    [((), "global"), (FEATURES, "global"), (FEATURES, "domain")],
    ids=["frames", "frames+features", "frames+features per domain"],
)
def test_structure_route_equals_voxelize_index_shards_predict(
    structures, tmp_path, features, feature_norm
):
    ckpt = make_checkpoint(tmp_path / "c.pt", features=features, feature_norm=feature_norm)
    report = voxelize_files(structures, tmp_path / "v.hdf5", features=True, progress=False)
    index = build_index(
        report.out_path,
        tmp_path / "i.parquet",
        features=report.features_path,
        progress=False,
    ).index_path
    build_shards(index, tmp_path / "s", progress=False)
    config = load_config(None, ["loader.source=shards", f"data.shards_dir={tmp_path / 's'}"])
    temps = [300.0, 400.0]
    files = predict(ckpt, index, temperatures=temps, out_path=tmp_path / "a.parquet", config=config)
    direct = predict_structures(
        ckpt, structures, temperatures=temps, out_path=tmp_path / "b.parquet"
    )
    a, _ = read_predictions(files.path)
    b, meta = read_predictions(direct.path)
    keys = ["domain", "chain", "resid_str", "temperature"]
    a, b = (t.sort_by([(k, "ascending") for k in keys]) for t in (a, b))
    for k in keys:
        assert a[k].to_pylist() == b[k].to_pylist(), k
    np.testing.assert_allclose(
        a["predicted_rmsf"].to_numpy(), b["predicted_rmsf"].to_numpy(), rtol=0, atol=1e-6
    )
    assert direct.n_residues == files.n_residues and meta.splits == ["predict"]
    assert set(b["domain"].to_pylist()) == {"1vii", "1a8o", "disordered"}


def test_bfactor_copies_hold_predicted_rmsf_in_angstrom(structures, tmp_path, caplog):
    ckpt = make_checkpoint(tmp_path / "c.pt")  # predicts in nm
    caplog.set_level("WARNING", logger="voxelflex.sources")
    report = predict_structures(
        ckpt,
        structures / "1a8o.pdb.gz",
        temperatures=[300.0, 350.0],
        bfactor_temperature=350.0,
        out_path=tmp_path / "p.csv",
    )
    # one file, fewer domains than the default 2 workers: read in the main process, no idle
    # worker streams to warn about
    assert "have no domains" not in caplog.text
    table, _ = read_predictions(report.path)
    at = table.filter(pc.equal(table["temperature"], 350.0))
    first = at.slice(0, 1).to_pylist()[0]
    copy = report.bfactor_dir / "1a8o.pdb.gz"
    lines = [
        line
        for line in gzip.decompress(copy.read_bytes()).decode().splitlines()
        if line.startswith(("ATOM", "HETATM"))
    ]
    ca = next(
        line
        for line in lines
        if line[12:16].strip() == "CA" and line[22:26].strip() == first["resid_str"]
    )
    assert float(ca[60:66]) == pytest.approx(10 * first["predicted_rmsf"], abs=0.006)  # nm -> Å
    water = next(line for line in lines if line[17:20] == "HOH")
    assert float(water[60:66]) == -1.0  # no prediction: the sentinel
    original = gzip.decompress((structures / "1a8o.pdb.gz").read_bytes()).decode().splitlines()
    copied = gzip.decompress(copy.read_bytes()).decode().splitlines()
    assert [o[:60] + o[66:] for o in original] == [c[:60] + c[66:] for c in copied]


@pytest.mark.parametrize("unit", ["nm", "angstrom"])
@pytest.mark.parametrize("as_", ["rmsf", "bfactor"])
def test_bfactor_copies_convert_the_checkpoint_s_unit_to_angstrom_once(
    structures, tmp_path, unit, as_
):
    # independent of voxelflex.quantities and bfactor_from_rmsf: Å = nm × 10 (so B × 100),
    # a checkpoint in Å is not converted, and B = 8π²/3 · RMSF² with RMSF in Å
    ckpt = make_checkpoint(tmp_path / "c.pt", rmsf_unit=unit)
    report = predict_structures(
        ckpt,
        structures / "1vii.pdb.gz",
        temperatures=[320.0],
        out_path=tmp_path / "p.parquet",
        bfactor_as=as_,
    )
    table, meta = read_predictions(report.path)
    assert meta.rmsf_unit == unit
    predicted = dict(
        zip(table["resid_str"].to_pylist(), table["predicted_rmsf"].to_pylist(), strict=True)
    )
    angstrom = {r: v * {"nm": 10.0, "angstrom": 1.0}[unit] for r, v in predicted.items()}
    assert min(angstrom.values()) > 0  # no clipping at 0 in the way of the comparison
    want = {r: a if as_ == "rmsf" else 8 * np.pi**2 / 3 * a**2 for r, a in angstrom.items()}
    text = gzip.decompress((report.bfactor_dir / "1vii.pdb.gz").read_bytes()).decode()
    got = {
        line[22:26].strip(): float(line[60:66])
        for line in text.splitlines()
        if line.startswith("ATOM") and line[12:16].strip() == "CA"
    }
    assert sorted(got) == sorted(want)
    # %.2f in the PDB column: 0.005 at most, plus float32
    np.testing.assert_allclose([got[r] for r in want], list(want.values()), rtol=0, atol=0.006)


def test_temperatures_at_or_below_zero_kelvin_are_refused(structures, tmp_path):
    ckpt = make_checkpoint(tmp_path / "c.pt")
    out = tmp_path / "p.csv"
    with pytest.raises(SourceError, match=r"finite kelvin values > 0 K, got \[-20"):
        predict_structures(
            ckpt,
            structures / "1a8o.pdb.gz",
            temperatures=[-20.0],
            bfactor_temperature=300.0,
            out_path=out,
        )
    assert not out.exists() and not (tmp_path / "p_structures").exists()


def test_bfactor_copies_of_a_relative_model_hold_its_score_never_the_sentinel(structures, tmp_path):
    # trained on per-domain z-scores: the outputs are scores of both signs, not RMSF in nm
    ckpt = make_checkpoint(tmp_path / "c.pt", target_norm="domain")
    with pytest.raises(ConfigError, match=r"target_norm=domain.*would square them"):
        predict_structures(
            ckpt,
            structures / "1a8o.pdb.gz",
            temperatures=[320.0],
            out_path=tmp_path / "b.csv",
            bfactor_as="bfactor",
        )
    report = predict_structures(
        ckpt, structures / "1a8o.pdb.gz", temperatures=[320.0], out_path=tmp_path / "p.csv"
    )
    assert report.bfactor_content.startswith("relative score")
    table, _ = read_predictions(report.path)
    z = dict(zip(table["resid_str"].to_pylist(), table["predicted_rmsf"].to_pylist(), strict=True))
    assert min(z.values()) < 0 < max(z.values())
    ca = {
        line[22:26].strip(): float(line[60:66])
        for line in gzip.decompress((report.bfactor_dir / "1a8o.pdb.gz").read_bytes())
        .decode()
        .splitlines()
        if line.startswith(("ATOM", "HETATM")) and line[12:16].strip() == "CA"
    }
    for resid, score in z.items():
        assert ca[resid] == pytest.approx(50 + 10 * score, abs=0.006)
    assert min(ca[r] for r in z) > 0  # never near the -1.00 of atoms without a prediction


def test_bfactor_temperature_defaults_to_the_first_requested(structures, tmp_path):
    ckpt = make_checkpoint(tmp_path / "c.pt")
    args = ["predict", "-c", ckpt, "--structure", structures / "1vii.pdb.gz", "-t", "400"]
    result = CliRunner().invoke(
        app, [str(a) for a in [*args, "-t", "320", "-o", tmp_path / "a.csv"]]
    )
    assert result.exit_code == 0, result.output
    assert "predicted RMSF (Å) at 400 K in the B-factor column" in result.output


def test_cli_predict_structure_and_plot(structures, tmp_path):
    ckpt = make_checkpoint(tmp_path / "c.pt")
    out = tmp_path / "one.csv"
    args = ["predict", "-c", ckpt, "--structure", structures / "1vii.pdb.gz", "-t", "320"]
    result = CliRunner().invoke(
        app, [str(a) for a in [*args, "-o", out, "--bfactor-as", "bfactor"]]
    )
    assert result.exit_code == 0, result.output
    assert "B-factor 8π²/3·RMSF² (Å²) at 320 K in the B-factor column" in result.output
    assert out.is_file()
    assert (tmp_path / "one_structures" / "1vii.pdb.gz").is_file()
    result = CliRunner().invoke(app, ["plot", "-p", str(out), "-o", str(tmp_path / "plots")])
    assert result.exit_code == 0, result.output
    assert any(p.name.startswith("rmsf_profile") for p in (tmp_path / "plots").iterdir())
    result = CliRunner().invoke(app, ["predict", "-c", str(ckpt), "--structure", str(structures)])
    assert result.exit_code == 2 and "needs temperatures" in result.output


def test_a_copy_that_cannot_be_written_stops_no_other_and_fails_the_command(tmp_path):
    """Model 2 is never read for frames; a damaged record there fails only its file's copy."""
    ckpt = make_checkpoint(tmp_path / "c.pt")
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(DATA / "1vii.pdb.gz", folder)
    atoms = [x for x in (DATA / "1bd2t.pdb").read_text().splitlines(True) if x[:4] == "ATOM"]
    bad = [*atoms[:3], atoms[3][:22] + "  !!" + atoms[3][26:], *atoms[4:]]
    (folder / "two.pdb").write_text(
        "".join(["MODEL        1\n", *atoms, "ENDMDL\nMODEL        2\n", *bad, "ENDMDL\n"])
    )
    out = tmp_path / "p.csv"
    with pytest.raises(InputError, match=r"1 of 2 B-factor copies .*two.pdb, line \d+: residue"):
        predict_structures(ckpt, folder, temperatures=[300.0], out_path=out)
    assert out.is_file() and (tmp_path / "p_structures" / "1vii.pdb.gz").is_file()
    assert not (tmp_path / "p_structures" / "two.pdb").exists()


def test_structure_dot_names_the_default_output_after_the_folder(tmp_path, monkeypatch):
    ckpt = make_checkpoint(tmp_path / "c.pt")
    folder = tmp_path / "mine"
    folder.mkdir()
    shutil.copy(DATA / "1vii.pdb.gz", folder)
    monkeypatch.chdir(folder)
    result = CliRunner().invoke(app, ["predict", "-c", str(ckpt), "--structure", ".", "-t", "300"])
    assert result.exit_code == 0, result.output
    assert (folder / "mine_predictions.parquet").is_file()  # was "_predictions.parquet"


def test_refusals(structures, tmp_path):
    ckpt = make_checkpoint(tmp_path / "c.pt")
    with pytest.raises(ConfigError, match="needs temperatures"):
        predict_structures(ckpt, structures, temperatures=[], out_path=tmp_path / "p.csv")
    twin = tmp_path / "twins"
    twin.mkdir()
    shutil.copy(DATA / "1a8o.pdb.gz", twin)
    shutil.copy(DATA / "1a8o.cif.gz", twin)
    with pytest.raises(InputError, match="same domain key '1a8o'"):
        predict_structures(ckpt, twin, temperatures=[300.0], out_path=tmp_path / "p.csv")
    (twin / "1a8o.cif.gz").rename(twin / "1A8O.cif.gz")  # one copy would replace the other
    with pytest.raises(InputError, match="domain keys '1A8O' and '1a8o'"):
        predict_structures(ckpt, twin, temperatures=[300.0], out_path=tmp_path / "p.csv")


def test_an_earlier_runs_copy_of_a_file_not_predicted_now_is_removed(structures, tmp_path):
    ckpt = make_checkpoint(tmp_path / "c.pt")
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(DATA / "1vii.pdb.gz", folder)
    shutil.copy(DATA / "1a8o.pdb.gz", folder)
    run = dict(temperatures=[300.0], out_path=tmp_path / "p.csv", overwrite=True)
    report = predict_structures(ckpt, folder, **run)
    stale = report.bfactor_dir / "1a8o.pdb.gz"
    assert stale.is_file()
    (folder / "1a8o.pdb.gz").write_bytes(gzip.compress(b"not a structure\n"))
    report = predict_structures(ckpt, folder, **run)
    assert report.files_failed == 1 and not stale.exists()
    assert (report.bfactor_dir / "1vii.pdb.gz").is_file()


@pytest.mark.parametrize("kelvin", [0.0, -5.0, float("nan")])
def test_a_bfactor_temperature_not_above_0_k_is_refused_like_a_requested_one(
    structures, tmp_path, kelvin
):
    # -t 0 is refused; --bfactor-temperature 0 was predicted and written into the copies
    ckpt = make_checkpoint(tmp_path / "c.pt")
    with pytest.raises(ConfigError, match=r"--bfactor-temperature .*finite and > 0 K"):
        predict_structures(
            ckpt,
            structures / "1vii.pdb.gz",
            temperatures=[300.0],
            bfactor_temperature=kelvin,
            out_path=tmp_path / "p.csv",
        )
    assert not (tmp_path / "p.csv").exists()


def test_per_domain_features_are_scaled_over_the_whole_domain_whatever_the_split(
    structures, tmp_path
):
    """A domain whose residues are split between train (with a target) and predict (without):
    each split's residues are z-scored with the whole domain's mean and deviation, so the
    index's predict split and the structure file give the same predictions."""
    report = voxelize_files(
        structures / "1a8o.pdb.gz", tmp_path / "v.hdf5", features=True, progress=False
    )
    sidecar, _ = read_feature_sidecar(report.features_path)
    resnum = sidecar["resnum"].to_numpy()
    half = resnum < np.median(resnum)
    rmsf = pa.table(
        {
            "domain_id": ["1a8o"] * int(half.sum()),
            "resid": resnum[half],
            "resname": sidecar["resname"].filter(pa.array(half)),
            "temperature_feature": [320.0] * int(half.sum()),
            "target_rmsf": np.linspace(0.1, 0.3, int(half.sum())),
        }
    )
    pacsv.write_csv(rmsf, tmp_path / "rmsf.csv")
    split = tmp_path / "train.txt"
    split.write_text("1a8o\n")
    index = build_index(
        report.out_path, tmp_path / "i.parquet", rmsf_csv=tmp_path / "rmsf.csv",
        rmsf_unit="nm", train=split, features=report.features_path, progress=False,
    ).index_path  # fmt: skip
    loaded = read_index(index)
    raw = sidecar["gnm_msf"].to_numpy().astype(np.float64)
    z = (raw - raw.mean()) / raw.std()
    expected = dict(zip(sidecar["resid_str"].to_pylist(), z, strict=True))
    for split_name, temperatures in (("train", None), ("predict", [320.0])):
        table = open_source(
            "hdf5",
            loaded,
            split=split_name,
            temperatures=temperatures,
            features=("gnm_msf",),
            feature_norm="domain",
        ).table
        np.testing.assert_allclose(
            table.features[:, 0], [expected[r] for r in table.resids], rtol=1e-5, atol=1e-5
        )
    ckpt = make_checkpoint(tmp_path / "c.pt", features=FEATURES, feature_norm="domain")
    temps = [320.0]
    a = predict(ckpt, index, split="predict", temperatures=temps, out_path=tmp_path / "a.parquet")
    b = predict_structures(
        ckpt, structures / "1a8o.pdb.gz", temperatures=temps, out_path=tmp_path / "b.parquet"
    )
    a_table, _ = read_predictions(a.path)
    b_table, _ = read_predictions(b.path)
    b_table = b_table.filter(pc.is_in(b_table["resid_str"], a_table["resid_str"]))
    keys = ["resid_str", "temperature"]
    a_table, b_table = (t.sort_by([(k, "ascending") for k in keys]) for t in (a_table, b_table))
    assert a_table.num_rows == b_table.num_rows == int((~half).sum())
    np.testing.assert_allclose(
        a_table["predicted_rmsf"].to_numpy(), b_table["predicted_rmsf"].to_numpy(), atol=1e-6
    )


def _shifted(path: Path, loc: float) -> Path:
    """The test checkpoint with its output shifted to about ``loc`` nm (a model that predicts
    negative RMSF, or RMSF too large for the PDB B-factor column)."""
    ck = Checkpoint.load(path)
    ck.model["target_loc"] = torch.tensor(loc)
    ck.save(path)
    return path


def _ca_bfactors(copy: Path) -> list[float]:
    text = gzip.decompress(copy.read_bytes()).decode() if copy.suffix == ".gz" else copy.read_text()
    return [
        float(line[60:66])
        for line in text.splitlines()
        if line.startswith("ATOM") and line[12:16].strip() == "CA"
    ]


@pytest.mark.parametrize("bfactor_as", ["rmsf", "bfactor"])
def test_negative_predicted_rmsf_is_written_as_zero_in_the_copies(
    structures, tmp_path, caplog, bfactor_as
):
    ckpt = _shifted(make_checkpoint(tmp_path / "c.pt"), -0.5)  # predicts about -0.5 nm
    caplog.set_level("WARNING", logger="voxelflex.analysis.structures")
    report = predict_structures(
        ckpt,
        structures / "1vii.pdb.gz",
        temperatures=[320.0],
        out_path=tmp_path / "p.csv",
        bfactor_as=bfactor_as,
    )
    table, _ = read_predictions(report.path)
    predicted = table["predicted_rmsf"].to_numpy()
    assert (predicted < 0).all()  # the table keeps the predictions
    # not -5.00 (below the -1.00 sentinel) nor, squared, B = 658 Å² (a flexible residue)
    assert set(_ca_bfactors(report.bfactor_dir / "1vii.pdb.gz")) == {0.0}
    assert f"{len(predicted)} of {len(predicted)} residues have a negative predicted RMSF" in (
        caplog.text
    )


def test_bfactors_too_wide_for_the_pdb_column_are_clipped_not_fatal(structures, tmp_path):
    ckpt = _shifted(make_checkpoint(tmp_path / "c.pt"), 0.7)  # 7 Å: B about 1290 Å²
    out = tmp_path / "hot.csv"
    args = ["predict", "-c", ckpt, "--structure", structures / "1vii.pdb.gz", "-t", "320"]
    result = CliRunner().invoke(
        app, [str(a) for a in [*args, "-o", out, "--bfactor-as", "bfactor", "--no-progress"]]
    )
    assert result.exit_code == 0, result.output
    assert out.is_file()  # the predictions, and every copy
    assert set(_ca_bfactors(tmp_path / "hot_structures" / "1vii.pdb.gz")) == {999.99}
    assert "the PDB copies hold 999.99" in result.output
    assert "`--bfactor-as rmsf` writes RMSF in Å" in result.output


def test_no_progress_hides_the_structure_bar_and_options_of_the_other_input_are_refused(
    structures, tmp_path
):
    ckpt = make_checkpoint(tmp_path / "c.pt")
    two = [structures / "1vii.pdb.gz", structures / "disordered.pdb"]
    args = ["predict", "-c", ckpt, *(a for f in two for a in ("--structure", f)), "-t", "320"]
    result = CliRunner().invoke(
        app, [str(a) for a in [*args, "-o", tmp_path / "two.csv", "--no-progress"]]
    )
    assert result.exit_code == 0, result.output
    assert "predict structures" not in result.output  # the bar of two or more files
    # options silently ignored before: refused, naming them
    result = CliRunner().invoke(
        app,
        ["predict", "-c", str(ckpt), "-i", "index.parquet", "--bfactor-as", "bfactor",
         "--bfactor-dir", "xx", "--keys", "icode"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--bfactor-as, --bfactor-dir, --keys only apply to predict --structure" in (
        " ".join(result.output.split())
    )
    result = CliRunner().invoke(app, [str(a) for a in [*args, "--split", "test"]])
    assert result.exit_code == 2
    assert "--split only applies to predict --index" in " ".join(result.output.split())


def test_features_computed_otherwise_than_the_checkpoints_are_a_warning_or_refused(
    structures, tmp_path, caplog
):
    """The checkpoint's training features against those predict --structure computes: another
    format is a warning naming both and what differs; another parameter is refused before
    anything is written."""
    caplog.set_level("WARNING", logger="voxelflex.engine.checkpoint")
    current = FeatureMeta().provenance()
    one = structures / "1vii.pdb.gz"

    def run(provenance, name):
        caplog.clear()
        ck = make_checkpoint(tmp_path / f"{name}.pt", features=FEATURES, provenance=provenance)
        out = tmp_path / f"{name}.csv"
        predict_structures(ck, one, temperatures=[300.0], out_path=out)
        assert out.exists()
        return [r.getMessage() for r in caplog.records if "feature" in r.getMessage()]

    assert run(current, "same") == []
    (old,) = run(dataclasses.replace(current, format_version=5), "v5")
    assert (
        "v5.pt was trained on feature sidecar format 5, but predict --structure has format 6" in old
    )
    assert "HSD, HIE and CYX" in old and "retrain" in old
    (unrecorded,) = run(None, "none")
    assert "none.pt does not record" in unrecorded and "predict --structure (format 6" in unrecorded
    other = dataclasses.replace(current, parameters={**current.parameters, "sasa_points": 1000})
    with pytest.raises(CheckpointError, match=r"sasa_points 1000 \(checkpoint .*\) vs 100"):
        run(other, "other")
    assert not (tmp_path / "other.csv").exists() and not (tmp_path / "other_structures").exists()
