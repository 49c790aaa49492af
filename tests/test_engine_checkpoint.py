"""Checkpoints and the per-batch step: round trip, version and data checks, predict_batch, loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from voxelflex.engine.checkpoint import (
    CheckpointMeta,
    load_checkpoint,
    load_for_inference,
    meta_to_dict,
    save_checkpoint,
)
from voxelflex.engine.step import predict_batch, weighted_loss
from voxelflex.errors import CheckpointError, SourceError
from voxelflex.frame import FRAME, FrameSpec
from voxelflex.index.schema import IndexMeta
from voxelflex.models import ModelSpec, build_model
from voxelflex.packing import unpack_numpy
from voxelflex.sources.batch import Batch

T_RANGE = (320.0, 450.0)


def _meta(**kw) -> CheckpointMeta:
    d = {
        "model_name": "dilated_resnet3d",
        "preset": "tiny",
        "conditioning": "film",
        "temperature_range": T_RANGE,
        "frame": FRAME,
        "rmsf_unit": "nm",
        "features": [],
        "feature_mean": [],
        "feature_std": [],
        "index_fingerprint": "abc123",
        "format_version": 1,
        "epoch": 2,
        "batch": 0,
        "global_step": 40,
        "log_target": False,
    }
    d.update(kw)
    return CheckpointMeta(**d)


def _batch(seed: int = 0) -> Batch:
    rng = np.random.default_rng(seed)
    packed = rng.integers(0, 256, size=(3, 5789), dtype=np.uint8) & rng.integers(
        0, 256, size=(3, 5789), dtype=np.uint8
    )
    return Batch(
        packed=torch.from_numpy(packed),
        residue_index=torch.tensor([0, 0, 1, 2, 2]),
        temperature=torch.tensor([320.0, 450.0, 348.0, 379.0, 500.0]),
        target=torch.tensor([0.1, 0.2, 0.3, float("nan"), 0.5]),
        weight=torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0]),
        row_id=torch.tensor([4, 5, 9, -1, 12]),
        features=torch.zeros((3, 0)),
    )


@pytest.fixture
def saved(tmp_path):
    spec = ModelSpec("dilated_resnet3d", "tiny", "film")
    torch.manual_seed(0)
    model = build_model(spec, temperature_range=T_RANGE)
    model.set_statistics(0.3, 0.1)
    path = tmp_path / "models" / "best.pt"
    save_checkpoint(
        path,
        {"meta": meta_to_dict(_meta()), "model_spec": spec.to_dict(), "model": model.state_dict()},
    )
    return path, model.eval()


def test_round_trip_through_load_for_inference(saved):
    path, model = saved
    loaded, meta = load_for_inference(path, "cpu")
    assert not loaded.training
    assert meta == _meta()
    assert float(loaded.target_loc) == pytest.approx(0.3)
    batch = _batch()
    out = predict_batch(loaded, batch, "cpu")
    assert out.shape == (5,) and out.dtype == torch.float32 and out.device.type == "cpu"
    voxels = torch.from_numpy(unpack_numpy(batch.packed.numpy()))  # the reference unpacking
    with torch.no_grad():
        expected = model(voxels, batch.residue_index, batch.temperature)
    torch.testing.assert_close(out, expected)
    assert meta.is_extrapolation(batch.temperature.numpy()).tolist() == [0, 0, 0, 0, 1]
    assert not list(path.parent.glob(".*tmp"))  # the atomic write left no temp file


def test_version_and_corruption_are_refused(saved, tmp_path):
    path, _ = saved
    payload = load_checkpoint(path)
    payload["format_version"] = 99
    other = tmp_path / "v99.pt"
    torch.save(payload, other)
    with pytest.raises(CheckpointError, match="format version 99"):
        load_for_inference(other)
    broken = tmp_path / "broken.pt"
    broken.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_for_inference(broken)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_for_inference(tmp_path / "missing.pt")


def test_data_with_other_frame_or_unit_is_refused_naming_both():
    meta = _meta()
    same = IndexMeta(frame=FRAME, rmsf_unit="nm", voxel_file="v.h5")
    meta.check_data(same, where="idx.parquet")
    meta.check_data(IndexMeta(frame=FRAME, rmsf_unit=None, voxel_file="v.h5"), where="p")
    with pytest.raises(CheckpointError) as info:
        meta.check_data(IndexMeta(frame=FRAME, rmsf_unit="angstrom", voxel_file="v"), where="i")
    assert "angstrom" in str(info.value) and "in nm" in str(info.value)
    other = FrameSpec(voxels_per_side=17)
    with pytest.raises(CheckpointError) as info:
        meta.check_data(IndexMeta(frame=other, rmsf_unit="nm", voxel_file="v"), where="i")
    assert "'voxels_per_side': 17" in str(info.value) and "'voxels_per_side': 21" in str(info.value)


def test_weighted_loss_ignores_padding_rows():
    pred = torch.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    target = torch.tensor([1.5, 2.0, float("nan"), 0.0])
    weight = torch.tensor([1.0, 1.0, 0.0, 2.0])
    loss = weighted_loss(pred, target, weight, kind="mse")
    assert loss.item() == pytest.approx((0.25 + 0 + 2 * 16) / 4)
    loss.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad[2] == 0
    huber = weighted_loss(pred, target, weight, kind="huber", huber_delta=1.0)
    assert huber.item() == pytest.approx((0.125 + 0 + 2 * 3.5) / 4)


def test_missing_features_are_an_error_naming_them():
    model = build_model(
        ModelSpec("multipath", "tiny", "head", features=("relative_accessibility",)),
        temperature_range=T_RANGE,
    ).eval()
    with pytest.raises(SourceError, match=r"\['relative_accessibility'\].*0 feature column"):
        predict_batch(model, _batch(), "cpu")
