"""Multi-path 3D trunk (after the earlier system's default ``MultipathRMSFNet``).

A 7³ stride-2 convolution and a stride-2 max-pool stem (21³ → 6³), then three parallel paths of
two convolutions with kernels 3, 5 and 7 (local, medium and wide context; ``kernels``),
concatenated and fused by a 1×1 convolution.
"""

from __future__ import annotations

import torch
from torch import nn

from voxelflex.errors import ConfigError
from voxelflex.models.blocks import ConvNormAct

__all__ = ["PRESETS", "MultipathTrunk"]

# stem channels, channels of each path, the paths' kernel sizes
PRESETS = {
    "tiny": {"stem_channels": 8, "path_channels": 8, "kernels": (3, 5, 7)},
    "small": {"stem_channels": 16, "path_channels": 32, "kernels": (3, 5, 7)},
    "base": {"stem_channels": 32, "path_channels": 64, "kernels": (3, 5, 7)},
}


class MultipathTrunk(nn.Module):
    """``(R, 5, 21, 21, 21)`` → feature map ``(R, out_channels, 6, 6, 6)``."""

    PRESETS = PRESETS  # size presets: voxelflex.registry.PRESETS, each a set of kwargs

    def __init__(
        self,
        in_channels: int,
        *,
        stem_channels: int,
        path_channels: int,
        kernels: tuple[int, ...] = (3, 5, 7),
    ) -> None:
        super().__init__()
        if not kernels or any(k % 2 == 0 for k in kernels):
            raise ConfigError(
                f"config key 'model.hyperparameters.kernels': got {list(kernels)}, expected odd "
                "kernel sizes (a path keeps the 6³ map's size), e.g. [3, 5, 7]"
            )
        self.stem = nn.Sequential(
            ConvNormAct(in_channels, stem_channels, 7, stride=2),
            nn.MaxPool3d(3, stride=2, padding=1),
        )
        self.paths = nn.ModuleList(
            nn.Sequential(
                ConvNormAct(stem_channels, path_channels, k),
                ConvNormAct(path_channels, path_channels, k),
            )
            for k in kernels
        )
        self.out_channels = 2 * path_channels
        self.fuse = ConvNormAct(len(kernels) * path_channels, self.out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        return self.fuse(torch.cat([path(x) for path in self.paths], dim=1))
