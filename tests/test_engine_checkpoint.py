"""Checkpoints and the per-batch step: round trip, version and data checks, predict_batch, loss."""

from __future__ import annotations

import dataclasses
import re
import zipfile

import numpy as np
import pyarrow as pa
import pytest
import torch

from voxelflex.engine.checkpoint import Checkpoint, CheckpointMeta, load_for_inference
from voxelflex.engine.finetune import init_from
from voxelflex.engine.step import predict_batch, weighted_loss
from voxelflex.errors import CheckpointError, SourceError
from voxelflex.frame import FRAME, FrameSpec
from voxelflex.index import LoadedIndex
from voxelflex.index.schema import IndexMeta
from voxelflex.models import ModelSpec, build_model
from voxelflex.packing import unpack_numpy
from voxelflex.quantities import outside_range
from voxelflex.sources.batch import Batch
from voxelflex.structure.features import FeatureMeta, FeatureProvenance

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
    assert legacy.meta.feature_provenance is None  # written before it was recorded
    assert legacy.optimizer is not None and legacy.history and legacy.plan["batch_size"] == 256
    with pytest.raises(CheckpointError, match=r"lacks \['model'\]"):
        Checkpoint.from_dict({k: v for k, v in ck.to_dict().items() if k != "model"}, where="x")


CURRENT = FeatureMeta().provenance()
FEATURED_INDEX = {"gnm_msf": {"group": "gnm", "unit": "1/γ", "definition": "…"}}


def _featured(trained: FeatureProvenance | None, features=("gnm_msf",)) -> Checkpoint:
    spec = ModelSpec("dilated_resnet3d", "tiny", "head", features=features)
    return Checkpoint(model_spec=spec, meta=_meta(feature_provenance=trained), model={})


def _index(data: FeatureProvenance | None, features=FEATURED_INDEX) -> IndexMeta:
    return IndexMeta(
        frame=FRAME, rmsf_unit="nm", voxel_file="v", features=features, feature_provenance=data
    )


def _warnings(caplog, trained, data, **kw) -> list[str]:
    caplog.clear()
    _featured(trained, **kw).check_data(_index(data), where="i.parquet", checkpoint="c.pt")
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


def test_features_of_another_format_or_biotite_warn_and_other_parameters_are_refused(caplog):
    """A checkpoint compares the features it was trained on with the index's: the same pass
    quietly; another format (what the older one computed otherwise, and the fix) or biotite
    version is a warning; a parameter both record with another value is refused."""
    caplog.set_level("WARNING", logger="voxelflex.engine.checkpoint")
    assert _warnings(caplog, CURRENT, CURRENT) == []
    (old_model,) = _warnings(caplog, dataclasses.replace(CURRENT, format_version=5), CURRENT)
    assert "checkpoint c.pt was trained on feature sidecar format 5" in old_model
    assert "index i.parquet has format 6" in old_model
    assert "HSD, HIE and CYX" in old_model and "retrain" in old_model  # _OLD_VERSIONS[5]
    (old_index,) = _warnings(caplog, CURRENT, dataclasses.replace(CURRENT, format_version=4))
    assert "format 4 (index i.parquet) did not generate the NCS copies" in old_index
    assert "recompute the sidecar with `voxelflex features` and rebuild the index" in old_index
    (newer,) = _warnings(caplog, dataclasses.replace(CURRENT, format_version=7), CURRENT)
    assert "format 7 (checkpoint c.pt) is newer than this voxelflex's (6)" in newer
    (biotite,) = _warnings(caplog, dataclasses.replace(CURRENT, biotite_version="0.41.2"), CURRENT)
    assert f"biotite 0.41.2, index i.parquet has biotite {CURRENT.biotite_version}'s" in biotite
    before_lattice = {k: v for k, v in CURRENT.parameters.items() if k != "lattice_cutoff_angstrom"}
    (alone,) = _warnings(caplog, dataclasses.replace(CURRENT, parameters=before_lattice), CURRENT)
    assert "only one side records: lattice_cutoff_angstrom (index i.parquet)" in alone
    wider = dataclasses.replace(CURRENT, parameters={**CURRENT.parameters, "sasa_points": 1000})
    for trained, data, said in (
        (wider, CURRENT, "sasa_points 1000 (checkpoint c.pt) vs 100 (index i.parquet)"),
        (CURRENT, wider, "sasa_points 100 (checkpoint c.pt) vs 1000 (index i.parquet)"),
    ):
        with pytest.raises(
            CheckpointError,
            match=rf"i.parquet: features computed with other parameters.*{re.escape(said)}",
        ):
            _warnings(caplog, trained, data)
    # a model without features, or an index without them (its source names the missing
    # columns), is not checked
    assert _warnings(caplog, wider, CURRENT, features=()) == []
    ck = _featured(wider)
    ck.check_data(_index(CURRENT, features={}), where="i.parquet", checkpoint="c.pt")


def test_features_a_checkpoint_or_an_index_does_not_record_are_a_warning(caplog):
    caplog.set_level("WARNING", logger="voxelflex.engine.checkpoint")
    (old_ck,) = _warnings(caplog, None, CURRENT)
    assert "checkpoint c.pt does not record the format, parameters and biotite" in old_ck
    assert "retrain to record them" in old_ck
    (old_index,) = _warnings(caplog, CURRENT, None)
    assert "index i.parquet does not record" in old_index and "rebuild the index" in old_index
    (both,) = _warnings(caplog, None, None)
    assert both.startswith("neither checkpoint c.pt nor index i.parquet records")
    assert _warnings(caplog, None, None, features=()) == []


def test_feature_provenance_round_trips_leaves_out_the_reading_and_refuses_a_malformed_one(
    tmp_path,
):
    read = FeatureMeta(parameters={**FeatureMeta().parameters, "altloc": "A", "keys": "icode"})
    assert read.provenance() == CURRENT  # the reading is checked at index build, not here
    ck = _featured(CURRENT)
    model = build_model(ck.model_spec, temperature_range=T_RANGE)
    ck = dataclasses.replace(ck, model=model.state_dict())
    ck.save(tmp_path / "c.pt")
    assert Checkpoint.load(tmp_path / "c.pt").meta.feature_provenance == CURRENT
    d = ck.to_dict()
    d["meta"]["feature_provenance"] = {"format_version": 6, "parameters": [], "biotite": "1"}
    with pytest.raises(CheckpointError, match="field 'meta' missing or malformed"):
        Checkpoint.from_dict(d, where="c.pt")


@pytest.mark.parametrize("damaged", ["format 6", [6, {}, "1.6.0"]])
def test_feature_provenance_that_is_not_a_mapping_is_a_checkpoint_error(damaged):
    # was an AttributeError traceback ('str' object has no attribute 'get')
    d = _featured(CURRENT).to_dict()
    d["meta"]["feature_provenance"] = damaged
    with pytest.raises(CheckpointError, match=r"c\.pt: field 'meta' missing or malformed"):
        Checkpoint.from_dict(d, where="c.pt")


def test_init_from_refuses_training_data_whose_feature_parameters_differ(tmp_path):
    """Fine-tuning keeps the checkpoint's feature standardisation: features computed with
    other parameters would mean something else to it."""
    other = dataclasses.replace(CURRENT, parameters={**CURRENT.parameters, "gnm_max_nodes": 10})
    init = _featured(other)
    model = build_model(init.model_spec, temperature_range=T_RANGE)
    init = dataclasses.replace(init, model=model.state_dict())
    index = LoadedIndex(path=tmp_path / "i.parquet", table=pa.table({}), meta=_index(CURRENT))
    with pytest.raises(CheckpointError, match=r"gnm_max_nodes 10 \(checkpoint init.pt\) vs 3000"):
        init_from(model, init, index, where="init.pt")
    same = dataclasses.replace(init, meta=_meta(feature_provenance=CURRENT))
    init_from(model, same, index, where="init.pt")
