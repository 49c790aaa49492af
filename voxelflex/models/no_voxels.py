"""A trunk that ignores the voxels: the model then sees only temperature and structure features.

The "features only" row of an ablation (a small MLP over ``model.features`` and temperature,
through the conditioning head), so a voxel model can be set beside what its features alone
achieve. Its output is one channel of ones, whatever the input: a constant map the head turns
into a learned vector, which ``film`` then scales and shifts with temperature.

Checkpoints written before 2026-12-02 had a map of zeros. Through ``film`` that map stays zero
(the temperature modulation starts at zero and ReLU passes no gradient at 0), so those models
predict the same value at every temperature. They still load and predict as they were trained
(``level`` 0, with a warning); retrain them to get a temperature response.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

__all__ = ["PRESETS", "NoVoxelsTrunk"]

log = logging.getLogger(__name__)

PRESETS: dict[str, dict] = {"tiny": {}, "small": {}, "base": {}}  # nothing to size


class NoVoxelsTrunk(nn.Module):
    """``(R, 5, 21, 21, 21)`` → ``level`` everywhere, ``(R, 1, 2, 2, 2)`` (the smallest map both
    heads pool)."""

    PRESETS = PRESETS
    ignores_voxels = True  # forward reads x.shape[0] and x.dtype only

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.out_channels = 1
        self.register_buffer("level", torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.level.to(x.dtype).expand(x.shape[0], 1, 2, 2, 2)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        if prefix + "level" not in state_dict:  # a checkpoint from before the buffer existed
            log.warning(
                "a features-only checkpoint from before 2026-12-02: its trunk map is zero as it "
                "was trained; with film conditioning its predictions do not depend on "
                "temperature: retrain it"
            )
            state_dict[prefix + "level"] = torch.zeros(())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
