"""Temperature-aware 3D CNNs: trunks and conditionings from :mod:`voxelflex.registry`.

``build_model(ModelSpec("multipath", "tiny", "film"), temperature_range=(320., 450.))`` gives an
:class:`RMSFModel`; unknown names raise :class:`~voxelflex.errors.ConfigError` listing the
valid ones. A trunk class takes ``in_channels`` plus the keyword arguments of one of its
``PRESETS`` (``tiny``, ``small``, ``base``) and has ``out_channels``; a conditioning class takes
``(trunk channels, number of features, dropout)``.
"""

from __future__ import annotations

from typing import Any

import torch

from voxelflex.errors import ConfigError
from voxelflex.frame import GRID_SHAPE
from voxelflex.models.model import STATISTICS_BUFFERS, ModelSpec, RMSFModel
from voxelflex.registry import ARCHITECTURES, CONDITIONINGS

__all__ = [
    "STATISTICS_BUFFERS",
    "ModelSpec",
    "RMSFModel",
    "build_model",
    "parameter_counts",
    "trunk_arguments",
]


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
    trunk = trunk_cls(GRID_SHAPE[0], **trunk_arguments(spec))
    head = head_cls(trunk.out_channels, len(spec.features), spec.dropout)
    model = RMSFModel(spec, trunk, head, temperature_range).to(memory_format=torch.channels_last_3d)
    # A 1×1×1 kernel is laid out alike in both formats, but its channels-last strides differ
    # from the contiguous ones its gradient comes back with: DDP warned and copied every step.
    for p in model.parameters():
        if p.dim() == 5 and p.shape[2:] == (1, 1, 1):
            p.data = p.data.clone(memory_format=torch.contiguous_format)
    return model


def trunk_arguments(spec: ModelSpec) -> dict[str, Any]:
    """The trunk's keyword arguments: its preset's, with ``spec.hyperparameters`` over them.

    Raises
    ------
    ConfigError
        An unknown preset or hyperparameter name (the message lists the architecture's), or a
        value of another kind than the preset's (a number for a number, a list for a list), a
        number <= 0, or a list that is empty or holds a number <= 0.
    """
    trunk_cls = ARCHITECTURES.get(spec.name)
    if spec.preset not in trunk_cls.PRESETS:
        raise ConfigError(
            f"unknown preset {spec.preset!r} of architecture {spec.name!r} (config key "
            f"'model.preset'); valid: {', '.join(trunk_cls.PRESETS)}"
        )
    args = dict(trunk_cls.PRESETS[spec.preset])
    for name, value in spec.hyperparameters.items():
        key = f"model.hyperparameters.{name}"
        if name not in args:
            names = (
                f"its hyperparameters: {', '.join(args)} (preset {spec.preset}: {args})"
                if args
                else "it has none: drop model.hyperparameters"
            )
            raise ConfigError(
                f"config key '{key}': {spec.name} has no hyperparameter {name!r}; {names}"
            )
        default = args[name]
        if isinstance(default, tuple):
            # every element positive, and at least one: a dilation of 0, a kernel of -1 or an
            # empty list of dilations failed only in torch, after the data had been read, and a
            # dense block of 0 layers silently built another network
            ok = (
                isinstance(value, list | tuple)
                and len(value) > 0
                and all(_same_kind(v, default[0]) and v > 0 for v in value)
            )
            value = tuple(value) if ok else value
            expected = f"a non-empty list of positive values like the preset's {list(default)}"
        else:
            ok = _same_kind(value, default) and value > 0
            expected = f"a positive value like the preset's {default!r}"
        if not ok:
            raise ConfigError(f"config key '{key}': got {value!r}, expected {expected}")
        args[name] = value
    return args


def _same_kind(value: Any, like: Any) -> bool:
    """``value`` fits where the preset has ``like``: an int for an int, a number for a float."""
    if isinstance(value, bool):
        return False
    if isinstance(like, int):
        return isinstance(value, int)
    return isinstance(value, int | float)


def parameter_counts(model: RMSFModel) -> dict[str, int]:
    """Trainable parameters of the trunk, the conditioning head and in total."""
    trunk = sum(p.numel() for p in model.trunk.parameters() if p.requires_grad)
    head = sum(p.numel() for p in model.conditioning.parameters() if p.requires_grad)
    return {"trunk": trunk, "head": head, "total": trunk + head}
