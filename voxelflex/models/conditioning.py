"""How temperature enters after the shared trunk: ``head`` or ``film``.

Both take the trunk's feature map once per residue, ``(R, C, d, d, d)``, and predict one value
per sample (residue × temperature row) in standardised target units. Both start with the same
1×1 convolution + GroupNorm, computed once per residue; the per-sample work is cheap, so a
temperature sweep costs one trunk pass per residue.

* ``head`` (the earlier system's way): ReLU, global average+max pooling, then the scaled
  temperature is concatenated to the pooled vector before the MLP.
* ``film``: a small temperature embedding yields a per-channel scale γ and shift β applied to the
  normalised feature map, ``ReLU((1 + γ(T))·h + β(T))``, before pooling. The non-linearity sits
  between modulation and pooling, so each voxel's features respond to heat on their own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from voxelflex.models.blocks import ConvNormAct

__all__ = ["FilmConditioning", "HeadConditioning"]

_HIDDEN = 64  # channels of the 1×1 layer after the trunk; MLP 64 → 32 → 1 as before
_EMBED = 32


def _pool(h: torch.Tensor) -> torch.Tensor:
    """Global average and max pooling: ``(N, C, d, d, d)`` → ``(N, 2C)``."""
    flat = h.flatten(2)
    return torch.cat([flat.mean(dim=2), flat.amax(dim=2)], dim=1)


def _gather(x: torch.Tensor, residue_index: torch.Tensor) -> torch.Tensor:
    """Rows of ``x`` for each sample. ``index_select``, not ``x[idx]``: the latter's CPU
    backward accumulates with atomic adds across threads, which breaks run-to-run determinism."""
    return torch.index_select(x, 0, residue_index)


def _mlp(c_in: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(c_in, 64),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(64, 32),
        nn.ReLU(inplace=True),
        nn.Linear(32, 1),
    )


class HeadConditioning(nn.Module):
    """Scaled temperature concatenated to pooled per-residue features, then an MLP."""

    def __init__(self, c_in: int, n_features: int, dropout: float) -> None:
        super().__init__()
        self.post = ConvNormAct(c_in, _HIDDEN, 1)
        self.mlp = _mlp(2 * _HIDDEN + 1 + n_features, dropout)

    def forward(
        self,
        fmap: torch.Tensor,
        residue_index: torch.Tensor,
        t_scaled: torch.Tensor,
        features: torch.Tensor,
    ) -> torch.Tensor:
        pooled = _pool(self.post(fmap))  # once per residue
        x = _gather(torch.cat([pooled, features], dim=1), residue_index)
        x = torch.cat([x, t_scaled.to(x.dtype).unsqueeze(1)], dim=1)
        return self.mlp(x).squeeze(1)


class FilmConditioning(nn.Module):
    """Temperature-dependent scale and shift of the last feature map, then pooling and an MLP."""

    def __init__(self, c_in: int, n_features: int, dropout: float) -> None:
        super().__init__()
        self.post = ConvNormAct(c_in, _HIDDEN, 1, act=False)
        self.embed = nn.Sequential(nn.Linear(1, _EMBED), nn.SiLU(), nn.Linear(_EMBED, 2 * _HIDDEN))
        # Start as the identity modulation (γ = 0, β = 0) so early training is stable.
        nn.init.zeros_(self.embed[-1].weight)
        nn.init.zeros_(self.embed[-1].bias)
        self.mlp = _mlp(2 * _HIDDEN + n_features, dropout)

    def forward(
        self,
        fmap: torch.Tensor,
        residue_index: torch.Tensor,
        t_scaled: torch.Tensor,
        features: torch.Tensor,
    ) -> torch.Tensor:
        # Once per residue; halving the resolution (6³ → 3³) makes the per-sample work 8× cheaper.
        h = F.avg_pool3d(self.post(fmap), 2, ceil_mode=True)
        gamma, beta = self.embed(t_scaled.to(h.dtype).unsqueeze(1)).chunk(2, dim=1)
        shape = (-1, _HIDDEN, 1, 1, 1)
        h = torch.relu(_gather(h, residue_index) * (1 + gamma.view(shape)) + beta.view(shape))
        x = torch.cat([_pool(h), _gather(features, residue_index)], dim=1)
        return self.mlp(x).squeeze(1)
