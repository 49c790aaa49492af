"""The batch every sample source yields and every model step consumes.

Batches are grouped by residue: a residue's packed grid travels once (row of ``packed``) with all
of its temperature rows (entries of the per-sample arrays pointing at it via ``residue_index``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

__all__ = ["Batch"]


@dataclass(frozen=True)
class Batch:
    """R residues and B samples (residue × temperature rows), B ≥ R.

    Attributes
    ----------
    packed : torch.Tensor, uint8, shape (R, 5789)
        Bit-packed canonical grids (see :mod:`voxelflex.packing`).
    residue_index : torch.Tensor, int64, shape (B,)
        For each sample, its residue's row in ``packed``.
    temperature : torch.Tensor, float32, shape (B,)
        Temperature in kelvin, unscaled (scaling belongs to the model).
    target : torch.Tensor, float32, shape (B,)
        Target RMSF in the index's unit; NaN where there is none.
    weight : torch.Tensor, float32, shape (B,)
        Loss weight; 0 for padding rows.
    row_id : torch.Tensor, int64, shape (B,)
        Index ``row_id`` of each sample (for prediction: the residue's row); -1 for padding.
    features : torch.Tensor, float32, shape (R, F), or None
        Per-residue scalar features for models that take them (``model.features``): the
        index's structure-feature columns the source was opened with (``docs/architecture.md``,
        "The feature seam"); None without features.
    """

    packed: torch.Tensor
    residue_index: torch.Tensor
    temperature: torch.Tensor
    target: torch.Tensor
    weight: torch.Tensor
    row_id: torch.Tensor
    features: torch.Tensor | None = None

    @property
    def n_residues(self) -> int:
        return int(self.packed.shape[0])

    @property
    def n_samples(self) -> int:
        return int(self.residue_index.shape[0])

    def _map(self, fn) -> Batch:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return Batch(**{k: None if v is None else fn(v) for k, v in values.items()})

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """Move every tensor to ``device`` (packed bits stay uint8)."""
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> Batch:
        """Called by ``DataLoader(pin_memory=True)``."""
        return self._map(lambda t: t.pin_memory())
