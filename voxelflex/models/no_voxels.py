"""A trunk that ignores the voxels: the model then sees only temperature and structure features.

The "features only" row of an ablation (a small MLP over ``model.features`` and temperature,
through the conditioning head), so a voxel model can be set beside what its features alone
achieve. Its output is one channel of zeros, whatever the input.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["PRESETS", "NoVoxelsTrunk"]

PRESETS: dict[str, dict] = {"tiny": {}, "small": {}, "base": {}}  # nothing to size


class NoVoxelsTrunk(nn.Module):
    """``(R, 5, 21, 21, 21)`` → zeros ``(R, 1, 2, 2, 2)`` (the smallest map both heads pool)."""

    PRESETS = PRESETS

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.out_channels = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros((x.shape[0], 1, 2, 2, 2))
