"""A checkpoint written before the checkpoint code was restructured still loads and predicts the
same numbers (tests/data/README.md says how it was made)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from voxelflex.analysis.predict import predict
from voxelflex.config import load_config
from voxelflex.demo.generate import build_demo_index, generate_demo

DATA = Path(__file__).parent / "data" / "checkpoint_v1"


def test_version_1_checkpoint_predicts_what_it_predicted_when_written(tmp_path):
    data = generate_demo(tmp_path / "d", n_domains=6, min_residues=8, max_residues=12, seed=5)
    build_demo_index(data, tmp_path / "index.parquet")
    report = predict(
        DATA / "best.pt",
        tmp_path / "index.parquet",
        split="train",
        temperatures=[300.0, 400.0],
        out_path=tmp_path / "p.parquet",
        config=load_config(None, ["train.device=cpu"]),
    )
    got = pq.read_table(report.path)
    want = pacsv.read_csv(DATA / "predictions.csv")
    assert got["domain"].to_pylist() == want["domain"].to_pylist()
    assert got["resid_str"].to_pylist() == [str(r) for r in want["resid_str"].to_pylist()]
    np.testing.assert_allclose(
        got["predicted_rmsf"].to_numpy(), want["predicted_rmsf"].to_numpy(), rtol=0, atol=1e-6
    )
