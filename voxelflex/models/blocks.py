"""Layers shared by the architectures: 3D convolution + GroupNorm + ReLU.

GroupNorm, not BatchNorm: its output for a residue does not depend on the other residues in the
batch, so weight-0 padding rows (empty grids), batch composition, DDP rank splits and resuming
mid-epoch cannot change a prediction.
"""

from __future__ import annotations

from torch import nn

__all__ = ["ConvNormAct", "norm"]


def norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with up to 8 groups (the largest of 8, 4, 2, 1 that divides ``channels``)."""
    groups = next(g for g in (8, 4, 2, 1) if channels % g == 0)
    return nn.GroupNorm(groups, channels)


class ConvNormAct(nn.Sequential):
    """``Conv3d(bias=False) -> GroupNorm -> ReLU`` with 'same' padding for odd kernels."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int = 3,
        *,
        stride: int = 1,
        dilation: int = 1,
        act: bool = True,
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv3d(
                c_in,
                c_out,
                kernel,
                stride=stride,
                padding=dilation * (kernel // 2),
                dilation=dilation,
                bias=False,
            ),
            norm(c_out),
        ]
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)
