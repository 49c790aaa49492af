"""`voxelflex demo` runs every pipeline step and says where each output is."""

import json

import pytest
from typer.testing import CliRunner

from voxelflex.cli.main import app


def test_demo_runs_the_whole_pipeline(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(
        app, ["demo", "--output", str(out), "--domains", "8", "--epochs", "1", "--device", "cpu"]
    )
    assert result.exit_code == 0, result.output
    for step in ("generate", "index", "shards", "train", "predict", "evaluate", "plot", "total"):
        assert f"  {step}" in result.output
    assert "baseline: residue type" in result.output
    run = out / "outputs" / "demo"
    assert (run / "models" / "best.pt").stat().st_size > 0
    assert (run / "metrics" / "predictions_test.parquet").stat().st_size > 0
    metrics = json.loads((run / "metrics" / "evaluation_metrics_test.json").read_text())
    assert metrics["overall"]["n"] > 0
    pngs = list((run / "visualizations").glob("*.png"))
    assert len(pngs) >= 6 and all(p.stat().st_size > 10_000 for p in pngs)
    assert (out / "work" / "shards" / "manifest.json").exists()


@pytest.mark.parametrize("n", ["0", "-1", "5"])
def test_too_few_demo_domains_are_refused_before_any_work(tmp_path, n):
    out = tmp_path / "d"
    result = CliRunner().invoke(app, ["demo", "-o", str(out), "--domains", n])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "--domains" in result.output and not out.exists()


def test_no_epochs_is_refused_before_any_work(tmp_path):
    result = CliRunner().invoke(app, ["demo", "--output", str(tmp_path / "d"), "--epochs", "0"])
    assert result.exit_code == 2 and "--epochs" in result.output
    assert not (tmp_path / "d").exists()


def test_cuda_without_a_gpu_is_refused_before_any_work(tmp_path, monkeypatch):
    # it failed at the train step, after the data, index and shards were built
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    result = CliRunner().invoke(app, ["demo", "--output", str(tmp_path / "d"), "--device", "cuda"])
    assert result.exit_code == 2 and "no CUDA device is available" in result.output
    assert not (tmp_path / "d").exists()
