"""One batch through a model: move, unpack on the device, forward; the weighted loss.

Used by the trainer (training and validation) and by prediction (``voxelflex predict``).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from voxelflex.errors import CheckpointError, ConfigError, SourceError
from voxelflex.frame import GRID_SHAPE
from voxelflex.packing import unpack_torch
from voxelflex.sources.batch import Batch

__all__ = ["autocast_dtype", "forward_batch", "predict_batch", "weighted_loss"]


def autocast_dtype(choice: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``train.precision`` on ``device``: None = fp32.

    Mixed precision runs on CUDA only (``auto``: bf16 where supported, else fp16).
    """
    if device.type != "cuda":
        if choice in ("bf16", "fp16"):
            raise ConfigError(
                f"config key 'train.precision': got {choice!r}, but mixed precision needs CUDA "
                f"(device is {device}); use fp32 or auto"
            )
        return None
    if choice == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[choice]


def _features(model: nn.Module, batch: Batch) -> torch.Tensor | None:
    names = getattr(model, "module", model).spec.features  # DDP wraps the model
    if not names:
        return None
    served = 0 if batch.features is None else batch.features.shape[1]
    if served != len(names):
        raise SourceError(
            f"the model needs per-residue features {list(names)}, but the source serves "
            f"{served} feature column(s); use a source that provides them or train without "
            "model.features"
        )
    return batch.features


def forward_batch(
    model: nn.Module,
    batch: Batch,
    *,
    autocast_dtype: torch.dtype | None = None,
    raw: bool = False,
) -> torch.Tensor:
    """Forward a batch already on the model's device.

    Parameters
    ----------
    model : RMSFModel or DistributedDataParallel of one
    batch : Batch
        On the model's device; ``packed`` still uint8.
    autocast_dtype : torch.dtype, optional
        bf16/fp16 mixed precision (CUDA); voxels are unpacked straight into this dtype.
    raw : bool
        Standardised network outputs (for the loss) instead of RMSF.

    Returns
    -------
    torch.Tensor, float32, shape (B,)
    """
    device = batch.packed.device
    dtype = autocast_dtype or torch.float32
    if getattr(model, "module", model).reads_voxels:  # DDP wraps the model in .module
        voxels = unpack_torch(batch.packed, dtype)
    else:  # a features-only trunk reads the batch size alone: no grid is unpacked
        voxels = torch.zeros((), dtype=dtype, device=device).expand(len(batch.packed), *GRID_SHAPE)
    ctx = (
        torch.autocast(device_type=device.type, dtype=autocast_dtype)
        if autocast_dtype is not None
        else contextlib.nullcontext()
    )
    with ctx:
        out = model(
            voxels, batch.residue_index, batch.temperature, _features(model, batch), raw=raw
        )
    return out.float()


@torch.no_grad()
def predict_batch(
    model: nn.Module,
    batch: Batch,
    device: str | torch.device,
    *,
    autocast_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Predicted RMSF for every sample of ``batch``.

    Moves the batch to ``device`` (the model must already be there, in eval mode), unpacks the
    voxels there with :func:`voxelflex.packing.unpack_torch` and runs the trunk once per residue.

    Parameters
    ----------
    model : RMSFModel
        E.g. from :func:`voxelflex.engine.checkpoint.load_for_inference`.
    batch : Batch
    device : str or torch.device
    autocast_dtype : torch.dtype, optional
        Mixed precision on CUDA (bf16/fp16); None = float32.

    Returns
    -------
    torch.Tensor, float32, shape (B,), on the CPU
        RMSF in the checkpoint's unit (padding rows included: drop ``row_id == -1``).

    Raises
    ------
    CheckpointError
        The model is in training mode (e.g. straight from ``Checkpoint.build_model``).
    """
    if getattr(model, "module", model).training:
        # dropout would be on: every call would return other, random numbers
        raise CheckpointError(
            "predict_batch got a model in training mode, whose dropout makes its predictions "
            "random; call model.eval() first (load_for_inference returns it in eval mode)"
        )
    batch = batch.to(device, non_blocking=True)
    return forward_batch(model, batch, autocast_dtype=autocast_dtype).cpu()


def weighted_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor,
    *,
    kind: str,
    huber_delta: float = 1.0,
    normalizer: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """Weighted mean of per-sample MSE or Huber loss; weight-0 rows (padding) count zero.

    Parameters
    ----------
    pred, target, weight : torch.Tensor, float32, shape (B,)
        Targets of weight-0 rows may be NaN; they never reach the sum.
    kind : {"mse", "huber"}
    huber_delta : float
    normalizer : float or tensor, optional
        Divide by this instead of ``weight.sum()`` (DDP: the global weight sum / world size,
        so that averaging gradients over ranks gives the global weighted mean).
    """
    keep = weight > 0
    safe_target = torch.where(keep, target, pred.detach())
    if kind == "mse":
        per = F.mse_loss(pred, safe_target, reduction="none")
    elif kind == "huber":
        per = F.huber_loss(pred, safe_target, reduction="none", delta=huber_delta)
    else:
        raise ValueError(f"unknown loss {kind!r}; valid: mse, huber")
    total = (per * weight).sum()
    denom = weight.sum() if normalizer is None else normalizer
    return total / torch.clamp(torch.as_tensor(denom, dtype=total.dtype), min=1e-12)
