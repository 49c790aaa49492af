"""Checkpoints: one versioned dict of tensors and plain Python values, written atomically.

Everything a checkpoint holds loads with ``torch.load(weights_only=True)``: model spec and
weights (statistics included as buffers), optimizer / scheduler / scaler / RNG state, the
position in training (epoch, next batch, optimizer steps), and what the data must match: frame,
RMSF unit, training temperature range, feature list and standardisation, index fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from voxelflex.atomic import atomic_path
from voxelflex.errors import CheckpointError
from voxelflex.frame import FrameSpec
from voxelflex.models import ModelSpec, RMSFModel, build_model

__all__ = [
    "FORMAT_VERSION",
    "CheckpointMeta",
    "index_fingerprint",
    "load_checkpoint",
    "load_for_inference",
    "meta_from_dict",
    "meta_to_dict",
    "model_from_payload",
    "save_checkpoint",
]

FORMAT_VERSION = 1


def index_fingerprint(meta) -> str:
    """Short hash identifying an index's content (its input fingerprints, counts, unit, frame).

    Parameters
    ----------
    meta : IndexMeta
    """
    payload = {
        "fingerprints": meta.fingerprints,
        "counts": meta.counts,
        "rmsf_unit": meta.rmsf_unit,
        "frame": meta.frame.to_dict(),
        "temperature_range": list(meta.temperature_range) if meta.temperature_range else None,
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class CheckpointMeta:
    """What a checkpoint says about its model and the data it was trained on.

    Attributes
    ----------
    model_name, preset, conditioning : str
    temperature_range : (float, float)
        Training temperatures (min, max) in K; predictions outside are extrapolation.
    frame : FrameSpec
    rmsf_unit : str
        ``nm`` or ``angstrom``: the unit of predictions.
    features : list of str
        Per-residue input features, in order.
    feature_mean, feature_std : list of float
        Their standardisation (from the training split).
    index_fingerprint : str
        :func:`index_fingerprint` of the training index.
    format_version : int
    epoch, batch, global_step : int
        Position: ``batch`` is the next batch to run in ``epoch``; ``global_step`` counts
        optimizer steps so far.
    log_target : bool
    """

    model_name: str
    preset: str
    conditioning: str
    temperature_range: tuple[float, float]
    frame: FrameSpec
    rmsf_unit: str
    features: list[str]
    feature_mean: list[float]
    feature_std: list[float]
    index_fingerprint: str
    format_version: int
    epoch: int
    batch: int
    global_step: int
    log_target: bool

    def is_extrapolation(self, temperature: np.ndarray) -> np.ndarray:
        """``bool`` array: temperatures (K) outside the training range."""
        t = np.asarray(temperature, dtype=np.float64)
        lo, hi = self.temperature_range
        return (t < lo) | (t > hi)

    def check_data(self, index_meta, *, where: str, checkpoint: str | None = None) -> None:
        """Refuse data whose frame or RMSF unit differs from the checkpoint's.

        Parameters
        ----------
        index_meta : IndexMeta
            Of the index about to be used; a prediction index (``rmsf_unit`` None) is only
            checked for its frame.
        where : str
            The index path, for the message.
        checkpoint : str, optional
            The checkpoint path, for the message.
        """
        ck = "the checkpoint" if checkpoint is None else f"checkpoint {checkpoint}"
        if index_meta.frame != self.frame:
            raise CheckpointError(
                f"{where} uses voxel frame {index_meta.frame.to_dict()}, but {ck} was "
                f"trained on frame {self.frame.to_dict()}; re-voxelize with the checkpoint's "
                "frame settings or train a model on this frame"
            )
        if index_meta.rmsf_unit is not None and index_meta.rmsf_unit != self.rmsf_unit:
            raise CheckpointError(
                f"{where} has RMSF in {index_meta.rmsf_unit}, but {ck} predicts RMSF "
                f"in {self.rmsf_unit}; rebuild the index with --rmsf-unit {self.rmsf_unit} "
                "(after converting the CSV) or use a checkpoint trained in "
                f"{index_meta.rmsf_unit}"
            )


def meta_to_dict(meta: CheckpointMeta) -> dict[str, Any]:
    """Plain values only (lists, str, numbers), as stored under ``meta`` in a checkpoint."""
    return {
        "model_name": meta.model_name,
        "preset": meta.preset,
        "conditioning": meta.conditioning,
        "temperature_range": [float(x) for x in meta.temperature_range],
        "frame": meta.frame.to_dict(),
        "rmsf_unit": meta.rmsf_unit,
        "features": list(meta.features),
        "feature_mean": [float(x) for x in meta.feature_mean],
        "feature_std": [float(x) for x in meta.feature_std],
        "index_fingerprint": meta.index_fingerprint,
        "format_version": meta.format_version,
        "epoch": meta.epoch,
        "batch": meta.batch,
        "global_step": meta.global_step,
        "log_target": meta.log_target,
    }


def meta_from_dict(d: dict[str, Any]) -> CheckpointMeta:
    """Inverse of :func:`meta_to_dict`."""
    return CheckpointMeta(
        model_name=str(d["model_name"]),
        preset=str(d["preset"]),
        conditioning=str(d["conditioning"]),
        temperature_range=(float(d["temperature_range"][0]), float(d["temperature_range"][1])),
        frame=FrameSpec.from_dict(d["frame"]),
        rmsf_unit=str(d["rmsf_unit"]),
        features=list(d["features"]),
        feature_mean=list(d["feature_mean"]),
        feature_std=list(d["feature_std"]),
        index_fingerprint=str(d["index_fingerprint"]),
        format_version=int(d["format_version"]),
        epoch=int(d["epoch"]),
        batch=int(d["batch"]),
        global_step=int(d["global_step"]),
        log_target=bool(d["log_target"]),
    )


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` (see :mod:`voxelflex.engine.trainer`) atomically with ``torch.save``."""
    payload = {"format_version": FORMAT_VERSION, **payload}
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` onto the CPU and check its format version.

    Raises
    ------
    CheckpointError
        Missing or unreadable file, or another format version.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's text advises weights_only=False, i.e. running whatever code the file holds
        found = re.search(r"WeightsUnpickler error: ([^\n]*)", str(exc))
        detail = f" ({found[1].strip()})" if found else ""
        raise CheckpointError(
            f"checkpoint {path} holds Python objects a weights-only load refuses{detail}; "
            "voxelflex checkpoints hold none, so it is not one (or was altered): do not load it, "
            "use a checkpoint written by `voxelflex train`"
        ) from None
    except Exception as exc:  # torch raises many types for corrupt or foreign files
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc}); it is corrupt or "
            "not a voxelflex checkpoint"
        ) from exc
    version = payload.get("format_version") if isinstance(payload, dict) else None
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {version}, this voxelflex reads version "
            f"{FORMAT_VERSION}; retrain with this version"
        )
    return payload


def model_from_payload(payload: dict[str, Any], *, where: str) -> tuple[RMSFModel, CheckpointMeta]:
    """Rebuild the model of a loaded checkpoint dict and load its weights (on the CPU).

    Raises
    ------
    CheckpointError
        A key is missing or malformed, or a weight is NaN or infinite (a model that can only
        predict NaN).
    """
    missing = [k for k in ("meta", "model_spec", "model") if k not in payload]
    if missing:
        raise CheckpointError(
            f"checkpoint {where} lacks {missing} (it has {sorted(payload)}); it is not a complete "
            "voxelflex checkpoint: use one written by `voxelflex train`"
        )
    try:
        meta = meta_from_dict(payload["meta"])
        spec = ModelSpec.from_dict(payload["model_spec"])
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise CheckpointError(
            f"checkpoint {where}: metadata field missing or malformed ({exc!r}); use a checkpoint "
            "written by `voxelflex train`"
        ) from exc
    _require_finite(payload["model"], where=where)
    model = build_model(spec, temperature_range=meta.temperature_range)
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as exc:
        raise CheckpointError(
            f"checkpoint {where}: weights do not fit its model spec ({exc})"
        ) from exc
    return model, meta


def _require_finite(state: dict[str, Any], *, where: str) -> None:
    """Raise :class:`CheckpointError` naming the first tensor with NaN or infinite values."""
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {where}: `model` is not a state dict; retrain")
    for name, tensor in state.items():
        if torch.is_tensor(tensor) and tensor.is_floating_point():
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                raise CheckpointError(
                    f"checkpoint {where}: weight {name!r} holds {bad} NaN or infinite values, so "
                    "every prediction would be NaN; use an earlier checkpoint of the run "
                    "(best.pt, epoch_NNN.pt) or retrain"
                )


def load_for_inference(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[RMSFModel, CheckpointMeta]:
    """Load a checkpoint's model for prediction.

    Parameters
    ----------
    path : path
        ``best.pt``, ``latest.pt`` or a periodic checkpoint.
    device : str or torch.device

    Returns
    -------
    (RMSFModel, CheckpointMeta)
        The model on ``device`` in eval mode; the metadata to check data against
        (:meth:`CheckpointMeta.check_data`) and to flag extrapolation.
    """
    model, meta = model_from_payload(load_checkpoint(path), where=str(path))
    return model.to(device).eval(), meta
