"""Models: registry, shapes, one trunk pass per residue, temperature scaling, batch independence."""

from __future__ import annotations

import pytest
import torch

from voxelflex.config import choices
from voxelflex.engine.step import forward_batch
from voxelflex.errors import ConfigError
from voxelflex.models import ModelSpec, build_model, parameter_counts
from voxelflex.packing import PACKED_BYTES, unpack_torch
from voxelflex.quantities import outside_range
from voxelflex.registry import ARCHITECTURES, CONDITIONINGS, PRESETS
from voxelflex.sources.batch import Batch

T_RANGE = (320.0, 450.0)


def _voxels(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand((n, 5, 21, 21, 21), generator=g) < 0.01).float()


@pytest.mark.parametrize("conditioning", sorted(CONDITIONINGS))
@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_tiny_models_predict_one_value_per_sample_with_one_trunk_pass(name, conditioning):
    torch.manual_seed(0)
    model = build_model(ModelSpec(name, "tiny", conditioning), temperature_range=T_RANGE).eval()
    calls = []
    model.trunk.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    voxels = _voxels(3)
    residue_index = torch.tensor([0, 0, 0, 1, 2, 2])
    temperature = torch.tensor([320.0, 379.0, 450.0, 348.0, 413.0, 500.0])
    out = model(voxels, residue_index, temperature)
    assert out.shape == (6,) and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert calls == [3]  # the trunk saw each residue once, not each of the 6 samples
    # A sample's prediction does not depend on the other residues in the batch (GroupNorm),
    # so zero-grid padding rows and batch composition cannot change it.
    alone = model(voxels[1:2], torch.tensor([0]), torch.tensor([348.0]))
    padded = model(
        torch.cat([torch.zeros_like(voxels[:2]), voxels[1:2]]),
        torch.tensor([2, 0]),
        torch.tensor([348.0, 320.0]),
    )
    torch.testing.assert_close(alone[0], out[3], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(padded[0], out[3], rtol=1e-4, atol=1e-5)


def test_presets_grow_and_counts_split_trunk_and_head():
    for name in ARCHITECTURES:
        if name == "features_only":  # no trunk to size
            continue
        totals = []
        for preset in PRESETS:
            counts = parameter_counts(
                build_model(ModelSpec(name, preset, "head"), temperature_range=T_RANGE)
            )
            assert counts["total"] == counts["trunk"] + counts["head"] > 0
            totals.append(counts["total"])
        assert totals == sorted(totals) and len(set(totals)) == 3, (name, totals)


def test_config_choices_match_the_registries():
    assert choices("model.name") == ARCHITECTURES.names()
    assert choices("model.preset") == PRESETS
    assert choices("model.conditioning") == CONDITIONINGS.names()
    for name in ARCHITECTURES:  # every architecture defines every preset
        assert tuple(ARCHITECTURES.get(name).PRESETS) == PRESETS


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        (
            ModelSpec("resnet", "tiny", "head"),
            r"unknown architecture 'resnet' \(config key 'model.name'\); valid: densenet3d",
        ),
        (
            ModelSpec("multipath", "huge", "head"),
            r"unknown preset 'huge' of architecture 'multipath' .*; valid: tiny, small, base",
        ),
        (
            ModelSpec("multipath", "tiny", "concat"),
            r"unknown temperature conditioning 'concat' .*; valid: head, film",
        ),
    ],
)
def test_registry_rejects_unknown_names(spec, needle):
    with pytest.raises(ConfigError, match=needle):
        build_model(spec, temperature_range=T_RANGE)


@pytest.mark.parametrize(
    ("name", "hyperparameters"),
    [
        ("dilated_resnet3d", {"dilations": [0, 2]}),  # built; failed in torch's first forward
        ("dilated_resnet3d", {"dilations": []}),  # ZeroDivisionError
        ("multipath", {"kernels": [-1, 3]}),  # odd, but no kernel size
        ("densenet3d", {"blocks": [0, 2]}),  # silently a network without its first block
        ("densenet3d", {"blocks": []}),
        ("densenet3d", {"growth": 0}),
    ],
)
def test_hyperparameter_lists_need_positive_elements(name, hyperparameters):
    # refused by trunk_arguments, which the trainer calls before any data work
    spec = ModelSpec(name, "tiny", "film", hyperparameters=hyperparameters)
    key = next(iter(hyperparameters))
    with pytest.raises(ConfigError, match=rf"'model\.hyperparameters\.{key}': got .*positive"):
        build_model(spec, temperature_range=T_RANGE)


def test_an_architecture_without_hyperparameters_says_so():
    spec = ModelSpec("features_only", "tiny", "film", hyperparameters={"growth": 8})
    with pytest.raises(ConfigError, match="has no hyperparameter 'growth'; it has none"):
        build_model(spec, temperature_range=T_RANGE)


def test_temperature_scaling_is_not_clamped_and_flags_extrapolation():
    model = build_model(ModelSpec("multipath", "tiny", "head"), temperature_range=T_RANGE)
    t = torch.tensor([300.0, 320.0, 385.0, 450.0, 500.0])
    scaled = model.scale_temperature(t)
    torch.testing.assert_close(scaled[1:4], torch.tensor([-1.0, 0.0, 1.0]))
    assert scaled[0] < -1 and scaled[4] > 1  # outside the range: extrapolated, not clamped
    assert outside_range(t.numpy(), T_RANGE).tolist() == [True, False, False, False, True]
    model.eval()
    out = model(_voxels(1), torch.zeros(5, dtype=torch.long), t)
    assert len(set(out.tolist())) == 5  # every temperature, inside or out, changes the output


@pytest.mark.parametrize("conditioning", sorted(CONDITIONINGS))
def test_the_features_only_model_learns_a_temperature_response(conditioning):
    # Its trunk map was all zeros, which film's zero-initialised modulation and ReLU could never
    # move off: the model predicted one value at every temperature.
    torch.manual_seed(0)
    spec = ModelSpec("features_only", "tiny", conditioning, features=("f",), dropout=0.0)
    model = build_model(spec, temperature_range=T_RANGE)
    n = 64
    features = torch.randn(n, 1)
    temperature = torch.tensor([320.0, 450.0]).repeat(n)
    residue_index = torch.arange(n).repeat_interleave(2)
    target = features[residue_index, 0] + (temperature - 385.0) / 65.0  # heat adds 2 units
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    voxels = torch.zeros(n, 5, 21, 21, 21)
    for _ in range(150):
        opt.zero_grad()
        loss = (model(voxels, residue_index, temperature, features, raw=True) - target) ** 2
        loss.mean().backward()
        opt.step()
    model.eval()
    out = model(voxels, residue_index, temperature, features, raw=True).detach()
    heat = (out[1::2] - out[::2]).mean()
    assert 1.5 < heat < 2.5, heat


def test_the_engine_skips_unpacking_for_a_features_only_model_with_the_same_predictions():
    torch.manual_seed(0)
    n = 6
    packed = torch.randint(0, 256, (n, PACKED_BYTES), dtype=torch.uint8)
    batch = Batch(
        packed=packed,
        residue_index=torch.arange(n).repeat_interleave(2),
        temperature=torch.tensor([320.0, 450.0]).repeat(n),
        target=torch.zeros(2 * n),
        weight=torch.ones(2 * n),
        row_id=torch.arange(2 * n),
        features=torch.randn(n, 1),
    )
    for name, reads in (("features_only", False), ("multipath", True)):
        spec = ModelSpec(name, "tiny", "film", features=("f",))
        model = build_model(spec, temperature_range=T_RANGE).eval()
        assert model.reads_voxels is reads
        with torch.no_grad():
            unpacked = model(unpack_torch(packed), batch.residue_index, batch.temperature,
                             batch.features)  # fmt: skip
            torch.testing.assert_close(forward_batch(model, batch), unpacked, rtol=0, atol=0)


def test_a_features_only_checkpoint_without_the_trunk_level_loads_as_trained(caplog):
    spec = ModelSpec("features_only", "tiny", "film", features=("f",))
    model = build_model(spec, temperature_range=T_RANGE).eval()
    state = {k: v for k, v in model.state_dict().items() if k != "trunk.level"}
    old = build_model(spec, temperature_range=T_RANGE).eval()
    with caplog.at_level("WARNING"):
        old.load_state_dict(state)
    assert old.trunk.level.item() == 0.0 and "do not depend on temperature" in caplog.text
    assert model.trunk.level.item() == 1.0


def test_target_transform_round_trips_and_features_are_standardised():
    spec = ModelSpec("densenet3d", "tiny", "head", features=("relative_accessibility",))
    model = build_model(spec, temperature_range=T_RANGE).eval()
    model.set_statistics(0.4, 0.2, torch.tensor([0.5]), torch.tensor([0.25]))
    y = torch.tensor([0.1, 0.5, 1.2])
    torch.testing.assert_close(model.decode_output(model.encode_target(y)), y)
    log_model = build_model(
        ModelSpec("densenet3d", "tiny", "head", log_target=True), temperature_range=T_RANGE
    )
    log_model.set_statistics(-1.0, 0.5)
    torch.testing.assert_close(log_model.decode_output(log_model.encode_target(y)), y)
    with pytest.raises(ValueError, match="relative_accessibility"):
        model(_voxels(2), torch.tensor([0, 1]), torch.tensor([320.0, 320.0]))
    out = model(_voxels(2), torch.tensor([0, 1]), torch.tensor([320.0, 320.0]), torch.ones(2, 1))
    assert out.shape == (2,)
