"""Temperature-aware 3D CNNs: trunks and conditionings from :mod:`voxelflex.registry`.

``build_model(ModelSpec("multipath", "tiny", "film"), temperature_range=(320., 450.))`` gives an
:class:`RMSFModel`; unknown names raise :class:`~voxelflex.errors.ConfigError` listing the
valid ones. A trunk class takes ``in_channels`` plus the keyword arguments of one of its
``PRESETS`` (``tiny``, ``small``, ``base``) and has ``out_channels``; a conditioning class takes
``(trunk channels, number of features, dropout)``.
"""

from __future__ import annotations

import torch

from voxelflex.errors import ConfigError
from voxelflex.frame import GRID_SHAPE
from voxelflex.models.model import ModelSpec, RMSFModel
from voxelflex.registry import ARCHITECTURES, CONDITIONINGS

__all__ = ["ModelSpec", "RMSFModel", "build_model", "parameter_counts"]


def build_model(spec: ModelSpec, *, temperature_range: tuple[float, float]) -> RMSFModel:
    """Build an untrained model (statistics at identity until :meth:`RMSFModel.set_statistics`).

    Parameters
    ----------
    spec : ModelSpec
    temperature_range : (float, float)
        Training (min, max) temperature in K.
    """
    trunk_cls = ARCHITECTURES.get(spec.name)
    head_cls = CONDITIONINGS.get(spec.conditioning)
    if spec.preset not in trunk_cls.PRESETS:
        raise ConfigError(
            f"unknown preset {spec.preset!r} of architecture {spec.name!r} (config key "
            f"'model.preset'); valid: {', '.join(trunk_cls.PRESETS)}"
        )
    trunk = trunk_cls(GRID_SHAPE[0], **trunk_cls.PRESETS[spec.preset])
    head = head_cls(trunk.out_channels, len(spec.features), spec.dropout)
    model = RMSFModel(spec, trunk, head, temperature_range)
    return model.to(memory_format=torch.channels_last_3d)


def parameter_counts(model: RMSFModel) -> dict[str, int]:
    """Trainable parameters of the trunk, the conditioning head and in total."""
    trunk = sum(p.numel() for p in model.trunk.parameters() if p.requires_grad)
    head = sum(p.numel() for p in model.conditioning.parameters() if p.requires_grad)
    return {"trunk": trunk, "head": head, "total": trunk + head}
