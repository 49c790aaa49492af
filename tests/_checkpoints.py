"""A small untrained checkpoint for prediction tests (no training run needed)."""

from __future__ import annotations

import torch

from voxelflex.engine.checkpoint import Checkpoint, CheckpointMeta
from voxelflex.frame import FRAME
from voxelflex.models import ModelSpec, build_model
from voxelflex.structure.features import FeatureMeta, FeatureProvenance

O_CHANNEL = FRAME.channels.index("O")


def make_checkpoint(
    path,
    *,
    rmsf_unit: str = "nm",
    features: tuple[str, ...] = (),
    feature_norm: str = "global",
    target_norm: str = "global",
    provenance: FeatureProvenance | str | None = "current",
):
    """A tiny dilated_resnet3d/head model (outputs ≈0.2 nm; channel O's weights zeroed).

    With ``features``, the model takes those structure features (standardised with mean 1 and
    standard deviation 2, so they move the output), z-scored per domain first with
    ``feature_norm="domain"``. With ``target_norm="domain"`` it was "trained" on per-domain
    z-scores: outputs spread around 0 with both signs. ``provenance`` is what the checkpoint
    records of its training features: ``"current"`` for this voxelflex's (as a run trained
    with features records), None for a checkpoint that records none.
    """
    if provenance == "current":
        provenance = FeatureMeta().provenance() if features else None
    torch.manual_seed(0)
    spec = ModelSpec(
        "dilated_resnet3d",
        "tiny",
        "head",
        features,
        feature_norm=feature_norm,
        dropout=0.0,
        target_norm=target_norm,
    )
    model = build_model(spec, temperature_range=(320.0, 450.0))
    n = len(features)
    mean, std = (0.2, 0.1) if target_norm == "global" else (-1.5, 10.0)
    model.set_statistics(mean, std, torch.ones(n), torch.full((n,), 2.0))  # outputs ≈0.2 nm
    first = next(m for m in model.modules() if isinstance(m, torch.nn.Conv3d))
    with torch.no_grad():
        first.weight[:, O_CHANNEL] = 0.0
    meta = CheckpointMeta(
        temperature_range=(320.0, 450.0),
        frame=FRAME,
        rmsf_unit=rmsf_unit,
        index_fingerprint="test",
        epoch=1,
        feature_provenance=provenance,
    )
    Checkpoint(model_spec=spec, meta=meta, model=model.state_dict()).save(path)
    return path
