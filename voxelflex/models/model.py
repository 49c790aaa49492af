"""The model every architecture shares: trunk once per residue, temperature after it.

:class:`RMSFModel` owns everything that turns data into model inputs and outputs back into RMSF:
temperature scaling from the training range (no clamping: temperatures outside it are allowed
and flagged by :func:`voxelflex.quantities.outside_range`), per-residue feature standardisation, and
the target transform (optional log, then standardisation). These statistics are buffers, so
they travel inside the checkpoint's weights.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from voxelflex.frame import GRID_SHAPE

__all__ = ["STATISTICS_BUFFERS", "ModelSpec", "RMSFModel"]

# Buffers set from the training data, not learned. A fine-tuning run (--init-from) keeps the
# checkpoint's, so that it starts from exactly the checkpoint's function.
STATISTICS_BUFFERS = (
    "temperature_range",
    "target_loc",
    "target_scale",
    "feature_mean",
    "feature_std",
)


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a model's modules (its weights and statistics aside).

    Attributes
    ----------
    name : str
        Architecture: ``densenet3d``, ``dilated_resnet3d`` or ``multipath``.
    preset : str
        Size: ``tiny``, ``small`` or ``base``.
    conditioning : str
        ``head`` or ``film``.
    features : tuple of str
        Names of the per-residue scalar features, in input order (F = len).
    feature_norm : str
        ``global``: features as the index has them; ``domain``: each feature z-scored over its
        domain's residues before the model's own standardisation (sources do it).
    dropout : float
    log_target : bool
        The network fits log(RMSF); :meth:`RMSFModel.forward` still returns RMSF.
    target_norm : str
        ``global``: outputs are RMSF in the training unit; ``domain``: trained on each
        domain's z-scored targets, so outputs are relative (per-domain z-scores).
    hyperparameters : dict
        The architecture's keyword arguments that differ from the preset's (sequences as
        lists); empty for a plain preset.
    """

    name: str
    preset: str
    conditioning: str
    features: tuple[str, ...] = ()
    feature_norm: str = "global"
    dropout: float = 0.3
    log_target: bool = False
    target_norm: str = "global"
    hyperparameters: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Lists, not tuples, so a spec from a config equals the same spec read from a file.
        plain = {k: list(v) if isinstance(v, tuple) else v for k, v in self.hyperparameters.items()}
        object.__setattr__(self, "hyperparameters", plain)

    def to_dict(self) -> dict:
        """Plain values (features as a list), as stored under ``model_spec`` in a checkpoint."""
        d = asdict(self)
        d["features"] = list(self.features)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(
            name=str(d["name"]),
            preset=str(d["preset"]),
            conditioning=str(d["conditioning"]),
            features=tuple(d.get("features", ())),
            feature_norm=str(d.get("feature_norm", "global")),
            dropout=float(d.get("dropout", 0.3)),
            log_target=bool(d.get("log_target", False)),
            target_norm=str(d.get("target_norm", "global")),
            hyperparameters=dict(d.get("hyperparameters") or {}),
        )

    def describe(self) -> str:
        """``name/preset`` plus any hyperparameters that differ from the preset."""
        extra = ", ".join(f"{k}={v}" for k, v in sorted(self.hyperparameters.items()))
        return f"{self.name}/{self.preset}" + (f" ({extra})" if extra else "")


class RMSFModel(nn.Module):
    """``forward(voxels (R,5,21,21,21), residue_index (B,), temperature (B,) K, features (R,F))``.

    Parameters
    ----------
    spec : ModelSpec
    trunk : nn.Module
        Maps voxels to a feature map ``(R, C, d, d, d)``; has ``out_channels``.
    conditioning : nn.Module
        Maps (feature map, residue_index, scaled temperature, standardised features) to ``(B,)``.
    temperature_range : (float, float)
        Training temperatures' (min, max) in K; mapped to [-1, 1].
    """

    def __init__(
        self,
        spec: ModelSpec,
        trunk: nn.Module,
        conditioning: nn.Module,
        temperature_range: tuple[float, float],
    ) -> None:
        super().__init__()
        self.spec = spec
        self.trunk = trunk
        self.conditioning = conditioning
        # Channels-last 3D lets oneDNN/cuDNN pick faster convolution kernels (≈1.3× on CPU);
        # build_model converts the weights to match.
        self.channels_last = True
        n_features = len(spec.features)
        self.register_buffer(
            "temperature_range", torch.tensor(temperature_range, dtype=torch.float32)
        )
        self.register_buffer("target_loc", torch.tensor(0.0))
        self.register_buffer("target_scale", torch.tensor(1.0))
        self.register_buffer("feature_mean", torch.zeros(n_features))
        self.register_buffer("feature_std", torch.ones(n_features))

    def set_statistics(
        self,
        target_loc: float,
        target_scale: float,
        feature_mean: torch.Tensor | None = None,
        feature_std: torch.Tensor | None = None,
    ) -> None:
        """Set the target standardisation (in transformed units) and feature standardisation."""
        self.target_loc.fill_(float(target_loc))
        self.target_scale.fill_(float(target_scale))
        if feature_mean is not None:
            self.feature_mean.copy_(feature_mean)
        if feature_std is not None:
            self.feature_std.copy_(feature_std)

    def scale_temperature(self, temperature: torch.Tensor) -> torch.Tensor:
        """Kelvin → model units: the training range maps to [-1, 1]; no clamping outside it."""
        lo, hi = self.temperature_range[0], self.temperature_range[1]
        half = torch.clamp((hi - lo) / 2, min=1.0)  # a single training temperature: 1 K per unit
        return (temperature.float() - (lo + hi) / 2) / half

    def encode_target(self, target: torch.Tensor) -> torch.Tensor:
        """RMSF → the standardised units the network outputs with ``raw=True``."""
        y = torch.log(target) if self.spec.log_target else target
        return (y - self.target_loc) / self.target_scale

    def decode_output(self, raw: torch.Tensor) -> torch.Tensor:
        """Network output → RMSF in the index's unit."""
        y = raw.float() * self.target_scale + self.target_loc
        return torch.exp(y) if self.spec.log_target else y

    @property
    def reads_voxels(self) -> bool:
        """False for a trunk that reads only the number of residues (``features_only``): the
        engine then passes a zero-stride stand-in instead of unpacking the grids."""
        return not getattr(self.trunk, "ignores_voxels", False)

    def forward(
        self,
        voxels: torch.Tensor,
        residue_index: torch.Tensor,
        temperature: torch.Tensor,
        features: torch.Tensor | None = None,
        *,
        raw: bool = False,
    ) -> torch.Tensor:
        """Predict RMSF for every sample.

        Parameters
        ----------
        voxels : torch.Tensor, float32 (or autocast dtype), shape (R, 5, 21, 21, 21)
        residue_index : torch.Tensor, int64, shape (B,)
            Row of ``voxels`` for each sample.
        temperature : torch.Tensor, float32, shape (B,)
            Kelvin.
        features : torch.Tensor, float32, shape (R, F), optional
            Raw per-residue features named by ``spec.features`` (standardised here).
        raw : bool
            Return standardised network outputs (what the loss compares with
            :meth:`encode_target`) instead of RMSF.

        Returns
        -------
        torch.Tensor, float32, shape (B,)
        """
        if voxels.ndim != 5 or tuple(voxels.shape[1:]) != GRID_SHAPE:
            raise ValueError(f"voxels must be (R, {GRID_SHAPE}), got {tuple(voxels.shape)}")
        n_features = len(self.spec.features)
        if n_features:
            if features is None or features.shape != (voxels.shape[0], n_features):
                got = None if features is None else tuple(features.shape)
                raise ValueError(
                    f"model expects features {list(self.spec.features)} as (R, {n_features}), "
                    f"got {got}"
                )
            feats = (features.float() - self.feature_mean) / self.feature_std
        else:
            feats = voxels.new_zeros((voxels.shape[0], 0))
        if self.channels_last and self.reads_voxels:
            voxels = voxels.contiguous(memory_format=torch.channels_last_3d)
        fmap = self.trunk(voxels)
        out = self.conditioning(
            fmap, residue_index, self.scale_temperature(temperature), feats.to(fmap.dtype)
        )
        return out.float() if raw else self.decode_output(out)
