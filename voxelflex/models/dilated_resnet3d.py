"""Dilated residual 3D trunk (after the earlier system's ``DilatedResNet3D``).

A stride-2 stem, then residual blocks whose dilations cycle 1, 2, 4 (a wide receptive field
without further downsampling), channels growing ×1.5 per block; the second block strides by 2.
"""

from __future__ import annotations

import torch
from torch import nn

from voxelflex.models.blocks import ConvNormAct

__all__ = ["PRESETS", "DilatedResNet3DTrunk"]

# stem channels, residual blocks, channel growth per block, dilations (cycled over the blocks)
PRESETS = {
    "tiny": {"base_filters": 16, "n_blocks": 2, "growth": 1.5, "dilations": (1, 2, 4)},
    "small": {"base_filters": 24, "n_blocks": 3, "growth": 1.5, "dilations": (1, 2, 4)},
    "base": {"base_filters": 32, "n_blocks": 3, "growth": 1.5, "dilations": (1, 2, 4)},
}


class _ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, dilation: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvNormAct(c_in, c_out, 3, stride=stride),
            ConvNormAct(c_out, c_out, 3, dilation=dilation, act=False),
        )
        self.shortcut = (
            nn.Identity()
            if c_in == c_out and stride == 1
            else ConvNormAct(c_in, c_out, 1, stride=stride, act=False)
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class DilatedResNet3DTrunk(nn.Module):
    """``(R, 5, 21, 21, 21)`` → feature map ``(R, out_channels, d, d, d)``."""

    PRESETS = PRESETS  # size presets: voxelflex.registry.PRESETS, each a set of kwargs

    def __init__(
        self,
        in_channels: int,
        *,
        base_filters: int,
        n_blocks: int,
        growth: float = 1.5,
        dilations: tuple[int, ...] = (1, 2, 4),
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvNormAct(in_channels, base_filters, 3, stride=2)]
        c = base_filters
        for i in range(n_blocks):
            c_out = max(4, 4 * round(c * growth / 4))  # multiples of 4 keep GroupNorm groups even
            dilation = dilations[i % len(dilations)]
            layers.append(_ResBlock(c, c_out, dilation, stride=2 if i == 1 else 1))
            c = c_out
        self.body = nn.Sequential(*layers)
        self.out_channels = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
