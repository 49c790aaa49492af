"""Checkpoints and the per-batch step: round trip, version and data checks, predict_batch, loss."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch

from voxelflex.engine.checkpoint import Checkpoint, CheckpointMeta, load_for_inference
from voxelflex.engine.step import predict_batch, weighted_loss
from voxelflex.errors import CheckpointError, SourceError
from voxelflex.frame import FRAME, FrameSpec
from voxelflex.index.schema import IndexMeta
from voxelflex.models import ModelSpec, build_model
from voxelflex.packing import unpack_numpy
from voxelflex.quantities import outside_range
from voxelflex.sources.batch import Batch

T_RANGE = (320.0, 450.0)


def _meta(**kw) -> CheckpointMeta:
    d = {
        "temperature_range": T_RANGE,
        "frame": FRAME,
        "rmsf_unit": "nm",
        "index_fingerprint": "abc123",
        "epoch": 2,
        "batch": 0,
        "global_step": 40,
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
    )


@pytest.fixture
def saved(tmp_path):
    spec = ModelSpec("dilated_resnet3d", "tiny", "film")
    torch.manual_seed(0)
    model = build_model(spec, temperature_range=T_RANGE)
    model.set_statistics(0.3, 0.1)
    path = tmp_path / "models" / "best.pt"
    Checkpoint(model_spec=spec, meta=_meta(), model=model.state_dict()).save(path)
    return path, model.eval()


def test_round_trip_through_load_for_inference(saved):
    path, model = saved
    loaded, ck = load_for_inference(path, "cpu")
    assert not loaded.training
    assert ck.meta == _meta() and ck.model_spec == ModelSpec("dilated_resnet3d", "tiny", "film")
    assert float(loaded.target_loc) == pytest.approx(0.3)
    batch = _batch()
    out = predict_batch(loaded, batch, "cpu")
    assert out.shape == (5,) and out.dtype == torch.float32 and out.device.type == "cpu"
    voxels = torch.from_numpy(unpack_numpy(batch.packed.numpy()))  # the reference unpacking
    with torch.no_grad():
        expected = model(voxels, batch.residue_index, batch.temperature)
    torch.testing.assert_close(out, expected)
    assert outside_range(batch.temperature.numpy(), ck.meta.temperature_range).tolist() == [
        0,
        0,
        0,
        0,
        1,
    ]
    assert not list(path.parent.glob(".*tmp"))  # the atomic write left no temp file


def test_version_and_corruption_are_refused(saved, tmp_path):
    path, _ = saved
    payload = Checkpoint.load(path).to_dict()
    payload["format_version"] = 99
    other = tmp_path / "v99.pt"
    torch.save(payload, other)
    with pytest.raises(CheckpointError, match="format version 99"):
        load_for_inference(other)
    earlier = tmp_path / "best_model.pt"  # the earlier VoxelFlex's: weights, no format version
    torch.save({"epoch": 3, "model_state_dict": payload["model"]}, earlier)
    with pytest.raises(CheckpointError, match=r"no format version.*earlier VoxelFlex.*RMSF unit"):
        load_for_inference(earlier)
    broken = tmp_path / "broken.pt"
    broken.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_for_inference(broken)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_for_inference(tmp_path / "missing.pt")
    # one flipped bit in the largest weight: torch.load read it and predicted other numbers
    with zipfile.ZipFile(path) as archive:
        big = max(archive.infolist(), key=lambda m: m.file_size)
    assert big.filename.startswith("archive/data/")  # not named after the temporary file
    data = bytearray(path.read_bytes())
    data[big.header_offset + 30 + len(big.filename) + len(big.extra) + big.file_size // 2] ^= 1
    flipped = tmp_path / "flipped.pt"
    flipped.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"flipped\.pt is damaged \(CRC-32 of archive/"):
        load_for_inference(flipped)


def test_predict_batch_refuses_a_model_in_training_mode(saved):
    # Checkpoint.build_model() returns a model in train mode: with its dropout on, each call
    # would predict other numbers, none of them the model's prediction
    path, _ = saved
    model = Checkpoint.load(path).build_model()
    with pytest.raises(CheckpointError, match=r"training mode.*model\.eval\(\)"):
        predict_batch(model, _batch(), "cpu")
    model.eval()
    first, again = (predict_batch(model, _batch(), "cpu") for _ in range(2))
    torch.testing.assert_close(first, again, rtol=0, atol=0)


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


def test_a_new_checkpoint_field_round_trips_and_older_files_lack_it(saved, tmp_path):
    """Checkpoint owns its keys: every field goes to the file and comes back; the fixture from
    before the restructuring (tests/data/checkpoint_v1) loads with today's fields."""
    path, _ = saved
    ck = Checkpoint.load(path)
    assert set(ck.to_dict()) == {f for f in Checkpoint.__dataclass_fields__}
    again = tmp_path / "again.pt"
    ck.save(again)
    back = Checkpoint.load(again)
    assert back.meta == ck.meta and back.model_spec == ck.model_spec and back.history == []
    legacy = Checkpoint.load("tests/data/checkpoint_v1/best.pt")
    assert legacy.model_spec.name == "densenet3d" and legacy.meta.epoch == 1
    assert legacy.optimizer is not None and legacy.history and legacy.plan["batch_size"] == 256
    with pytest.raises(CheckpointError, match=r"lacks \['model'\]"):
        Checkpoint.from_dict({k: v for k, v in ck.to_dict().items() if k != "model"}, where="x")
