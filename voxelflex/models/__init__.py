"""Temperature-aware 3D CNNs: a registry of trunks, two conditionings, three size presets.

``build_model(ModelSpec("multipath", "tiny", "film"), temperature_range=(320., 450.))`` gives an
:class:`RMSFModel`; unknown names raise :class:`~voxelflex.errors.ConfigError` listing the
valid ones.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from voxelflex.errors import ConfigError
from voxelflex.frame import GRID_SHAPE
from voxelflex.models import densenet3d, dilated_resnet3d, multipath
from voxelflex.models.conditioning import CONDITIONINGS
from voxelflex.models.model import ModelSpec, RMSFModel

__all__ = [
    "ARCHITECTURES",
    "CONDITIONINGS",
    "PRESET_NAMES",
    "ModelSpec",
    "RMSFModel",
    "build_model",
    "parameter_counts",
]

# name -> (trunk class, {preset: constructor kwargs})
ARCHITECTURES: dict[str, tuple[Callable[..., nn.Module], dict[str, dict]]] = {
    "densenet3d": (densenet3d.DenseNet3DTrunk, densenet3d.PRESETS),
    "dilated_resnet3d": (dilated_resnet3d.DilatedResNet3DTrunk, dilated_resnet3d.PRESETS),
    "multipath": (multipath.MultipathTrunk, multipath.PRESETS),
}
PRESET_NAMES = ("tiny", "small", "base")


def _choice(kind: str, value: str, valid) -> None:
    if value not in valid:
        raise ConfigError(f"unknown {kind} {value!r}; valid: {', '.join(valid)}")


def build_model(spec: ModelSpec, *, temperature_range: tuple[float, float]) -> RMSFModel:
    """Build an untrained model (statistics at identity until :meth:`RMSFModel.set_statistics`).

    Parameters
    ----------
    spec : ModelSpec
    temperature_range : (float, float)
        Training (min, max) temperature in K.
    """
    _choice("model", spec.name, ARCHITECTURES)
    _choice("preset", spec.preset, PRESET_NAMES)
    _choice("conditioning", spec.conditioning, CONDITIONINGS)
    trunk_cls, presets = ARCHITECTURES[spec.name]
    trunk = trunk_cls(GRID_SHAPE[0], **presets[spec.preset])
    head = CONDITIONINGS[spec.conditioning](trunk.out_channels, len(spec.features), spec.dropout)
    model = RMSFModel(spec, trunk, head, temperature_range)
    return model.to(memory_format=torch.channels_last_3d)


def parameter_counts(model: RMSFModel) -> dict[str, int]:
    """Trainable parameters of the trunk, the conditioning head and in total."""
    trunk = sum(p.numel() for p in model.trunk.parameters() if p.requires_grad)
    head = sum(p.numel() for p in model.conditioning.parameters() if p.requires_grad)
    return {"trunk": trunk, "head": head, "total": trunk + head}
