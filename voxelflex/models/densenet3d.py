"""DenseNet-style 3D trunk (after the earlier system's ``DenseNet3DRegression``).

A stride-2 stem, then dense blocks (each layer: 1×1 bottleneck, 3×3 conv, output concatenated
to its input) separated by transitions (1×1 conv halving the channels, 2× average pooling).
"""

from __future__ import annotations

import torch
from torch import nn

from voxelflex.models.blocks import ConvNormAct

__all__ = ["PRESETS", "DenseNet3DTrunk"]

# growth rate, layers per block, stem features, bottleneck width (× growth)
PRESETS = {
    "tiny": {"growth": 8, "blocks": (2, 2), "init_features": 16, "bottleneck": 2},
    "small": {"growth": 12, "blocks": (3, 3), "init_features": 24, "bottleneck": 4},
    "base": {"growth": 16, "blocks": (4, 4, 4), "init_features": 32, "bottleneck": 4},
}


class _DenseLayer(nn.Module):
    def __init__(self, c_in: int, growth: int, bottleneck: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvNormAct(c_in, bottleneck * growth, 1), ConvNormAct(bottleneck * growth, growth, 3)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.body(x)], dim=1)


class DenseNet3DTrunk(nn.Module):
    """``(R, 5, 21, 21, 21)`` → feature map ``(R, out_channels, d, d, d)``."""

    PRESETS = PRESETS  # size presets: voxelflex.registry.PRESETS, each a set of kwargs

    def __init__(
        self,
        in_channels: int,
        *,
        growth: int,
        blocks: tuple[int, ...],
        init_features: int,
        bottleneck: int,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvNormAct(in_channels, init_features, 3, stride=2)]
        c = init_features
        for i, n_layers in enumerate(blocks):
            for _ in range(n_layers):
                layers.append(_DenseLayer(c, growth, bottleneck))
                c += growth
            if i < len(blocks) - 1:
                layers += [ConvNormAct(c, c // 2, 1), nn.AvgPool3d(2, ceil_mode=True)]
                c //= 2
        self.body = nn.Sequential(*layers)
        self.out_channels = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
