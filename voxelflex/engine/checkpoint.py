"""Checkpoints: one versioned :class:`Checkpoint`, saved atomically, loaded weights-only.

A checkpoint is a flat dict of tensors and plain Python values, so everything in it loads with
``torch.load(weights_only=True)``; :class:`Checkpoint` owns its key names (its field names), its
format version and the conversion both ways. A new field is one edit: add it to
:class:`Checkpoint` (or to :class:`CheckpointMeta` for a plain value), with a default so older
files still load.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from voxelflex.atomic import atomic_path
from voxelflex.errors import CheckpointError
from voxelflex.frame import FrameSpec
from voxelflex.index import IndexMeta, LoadedIndex
from voxelflex.models import ModelSpec, RMSFModel, build_model
from voxelflex.structure.features import FeatureProvenance

__all__ = ["FORMAT_VERSION", "PLAN_DEFAULTS", "Checkpoint", "CheckpointMeta", "load_for_inference"]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
# Plan settings added after format 1 was fixed, with the value older checkpoints ran with.
PLAN_DEFAULTS = {"grad_accumulation": 1}


@dataclass(frozen=True)
class CheckpointMeta:
    """What the data must match, and where training stood when the checkpoint was written.

    Attributes
    ----------
    temperature_range : (float, float)
        Training temperatures (min, max) in K; predictions outside are extrapolation.
    frame : FrameSpec
    rmsf_unit : str
        ``nm`` or ``angstrom``: the unit of predictions.
    index_fingerprint : str
        :meth:`voxelflex.index.IndexMeta.fingerprint` of the training index.
    epoch, batch, global_step : int
        Position: ``batch`` is the next batch to run in ``epoch``; ``global_step`` counts
        optimizer steps so far.
    init_from : str or None
        The checkpoint whose weights the run started from (``--init-from``), if any.
    feature_provenance : FeatureProvenance or None
        Format version, parameters and biotite version of the training index's structure
        features (:attr:`voxelflex.index.IndexMeta.feature_provenance`); None for a model
        without features, a training index that does not record them, or a checkpoint
        written before they were recorded.
    """

    temperature_range: tuple[float, float]
    frame: FrameSpec
    rmsf_unit: str
    index_fingerprint: str
    epoch: int = 0
    batch: int = 0
    global_step: int = 0
    init_from: str | None = None
    feature_provenance: FeatureProvenance | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain values only (lists, str, numbers), as stored under ``meta``."""
        d = dataclasses.asdict(self)
        d["temperature_range"] = [float(x) for x in self.temperature_range]
        d["frame"] = self.frame.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CheckpointMeta:
        """Inverse of :meth:`to_dict`; keys it does not know (older files' extras) are ignored."""
        lo, hi = d["temperature_range"]
        return cls(
            temperature_range=(float(lo), float(hi)),
            frame=FrameSpec.from_dict(d["frame"]),
            rmsf_unit=str(d["rmsf_unit"]),
            index_fingerprint=str(d["index_fingerprint"]),
            epoch=int(d.get("epoch", 0)),
            batch=int(d.get("batch", 0)),
            global_step=int(d.get("global_step", 0)),
            init_from=d.get("init_from"),
            feature_provenance=None
            if d.get("feature_provenance") is None
            else FeatureProvenance.from_dict(d["feature_provenance"]),
        )

    def check_data(
        self, index_meta: IndexMeta, *, where: str, checkpoint: str | None = None
    ) -> None:
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


# Fields stored as something else than themselves: (to the file, from the file).
_CODECS: dict[str, tuple] = {
    "model_spec": (ModelSpec.to_dict, ModelSpec.from_dict),
    "meta": (CheckpointMeta.to_dict, CheckpointMeta.from_dict),
    "history": (json.dumps, json.loads),  # nested lists of dicts: a string loads weights-only
}


@dataclass(frozen=True)
class Checkpoint:
    """Everything a checkpoint holds; the field names are its keys in the file.

    Attributes
    ----------
    model_spec : ModelSpec
    meta : CheckpointMeta
    model : dict of str -> torch.Tensor
        Weights and statistics buffers (target and feature standardisation).
    optimizer, scheduler, scaler, rng : dict or None
        Training state (only ``--resume`` needs it).
    plan : dict or None
        Plan settings a mid-epoch resume must keep (batch size, seed, workers, world size,
        mixing buffer, gradient accumulation; :data:`PLAN_DEFAULTS` fills in later ones).
    history : list of dict
        One entry per finished epoch.
    trainer : dict or None
        Best value and epochs without improvement (:class:`~voxelflex.engine.tracker.BestTracker`).
    partial : dict or None
        Rows served so far in a mid-epoch checkpoint (the epoch's train metrics survive a resume).
    config : dict or None
        The resolved run configuration.
    format_version : int
    """

    model_spec: ModelSpec
    meta: CheckpointMeta
    model: dict[str, torch.Tensor]
    optimizer: dict | None = None
    scheduler: dict | None = None
    scaler: dict | None = None
    rng: dict | None = None
    plan: dict | None = None
    history: list = field(default_factory=list)
    trainer: dict | None = None
    partial: dict | None = None
    config: dict | None = None
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        """The dict that is saved (tensors and plain values only)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = _CODECS[f.name][0](value) if f.name in _CODECS else value
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, where: str) -> Checkpoint:
        """Inverse of :meth:`to_dict`, checked.

        Raises
        ------
        CheckpointError
            Another format version, a required key missing or malformed, or weights holding
            NaN or infinity (a model that can only predict NaN).
        """
        version = d.get("format_version") if isinstance(d, dict) else None
        if version is None:
            # e.g. the earlier VoxelFlex's best_model.pt: "retrain with this version" read as if
            # a conversion existed; none can, it records no RMSF unit and no voxel frame
            raise CheckpointError(
                f"checkpoint {where} has no format version: it is not a voxelflex checkpoint. "
                "A checkpoint of the earlier VoxelFlex does not load (it records neither the "
                "RMSF unit nor the voxel frame of its training data): train a model with "
                "`voxelflex train` (`voxelflex config migrate` converts the earlier config)"
            )
        if version != FORMAT_VERSION:
            raise CheckpointError(
                f"checkpoint {where} has format version {version}, this voxelflex reads version "
                f"{FORMAT_VERSION}; retrain with this version"
            )
        required = [f.name for f in dataclasses.fields(cls) if _no_default(f)]
        missing = [k for k in required if k not in d]
        if missing:
            raise CheckpointError(
                f"checkpoint {where} lacks {missing} (it has {sorted(d)}); it is not a complete "
                "voxelflex checkpoint: use one written by `voxelflex train`"
            )
        kwargs = {}
        try:
            for f in dataclasses.fields(cls):
                if f.name in d:
                    value = d[f.name]
                    kwargs[f.name] = _CODECS[f.name][1](value) if f.name in _CODECS else value
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise CheckpointError(
                f"checkpoint {where}: field {f.name!r} missing or malformed ({exc!r}); use a "
                "checkpoint written by `voxelflex train`"
            ) from exc
        _require_finite(kwargs["model"], where=where)
        return cls(**kwargs)

    def save(self, path: str | Path) -> None:
        """Write atomically with ``torch.save``."""
        # through a file object: the archive's members are then named archive/..., not after
        # the temporary file
        with atomic_path(path, suffix=".pt") as tmp, open(tmp, "wb") as fh:
            torch.save(self.to_dict(), fh)

    @classmethod
    def load(cls, path: str | Path) -> Checkpoint:
        """Read with ``weights_only=True`` onto the CPU and check it (see :meth:`from_dict`).

        Raises
        ------
        CheckpointError
            Missing or unreadable file, pickled Python objects, or a malformed checkpoint.
        """
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(_missing_message(path))
        _check_crc(path)
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            # torch's text advises weights_only=False, i.e. running whatever code the file holds
            found = re.search(r"WeightsUnpickler error: ([^\n]*)", str(exc))
            detail = f" ({found[1].strip()})" if found else ""
            raise CheckpointError(
                f"checkpoint {path} holds Python objects a weights-only load refuses{detail}; "
                "voxelflex checkpoints hold none, so it is not one (or was altered): do not "
                "load it, use a checkpoint written by `voxelflex train`"
            ) from None
        except Exception as exc:  # torch raises many types for corrupt or foreign files
            raise CheckpointError(
                f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc}); it is corrupt "
                "or not a voxelflex checkpoint"
            ) from exc
        return cls.from_dict(payload, where=str(path))

    def check_data(self, index_meta: IndexMeta, *, where: str, checkpoint: str) -> None:
        """Refuse data whose frame or RMSF unit differs (:meth:`CheckpointMeta.check_data`), or
        whose structure features were computed with other parameters; warn about another
        feature format or biotite version (:meth:`check_features`).

        Parameters
        ----------
        index_meta : IndexMeta
            Of the index about to be used; its features are checked only when it has some
            (an index without them is refused by the sample source, naming the columns).
        where, checkpoint : str
            The index and the checkpoint path, for messages.
        """
        self.meta.check_data(index_meta, where=where, checkpoint=checkpoint)
        if index_meta.features:
            self.check_features(
                index_meta.feature_provenance, given=f"index {where}", checkpoint=checkpoint
            )

    def check_features(
        self, data: FeatureProvenance | None, *, given: str, checkpoint: str
    ) -> None:
        """Compare the structure features this model was trained on with those it is given.

        Another format version, another biotite version, or either side not recording its
        features (files written before they were recorded) is a warning: an older checkpoint
        stays usable, and the warning says which residues' features differ and the fix.
        Parameters both sides record with other values are refused: the numbers then mean
        something else to the model. Nothing is checked for a model without features.

        Parameters
        ----------
        data : FeatureProvenance or None
            Of the features about to be given; None when their index does not record it.
        given : str
            What they are, for messages (``"index i.parquet"``).
        checkpoint : str
            The checkpoint path, for messages.

        Raises
        ------
        CheckpointError
            A feature parameter differs, naming both values.
        """
        if not self.model_spec.features:
            return
        trained = self.meta.feature_provenance
        ck = f"checkpoint {checkpoint}"
        if trained is None or data is None:
            log.warning(_unrecorded(trained, data, checkpoint=ck, given=given))
            return
        refusal, warnings = trained.compare(data, trained=ck, given=given)
        if refusal:
            raise CheckpointError(refusal)
        for warning in warnings:
            log.warning(warning)

    def require_resumable(
        self, *, spec: ModelSpec, index: LoadedIndex, plan: dict[str, int], where: str
    ) -> None:
        """Refuse to continue a run from this checkpoint with other data, model or epoch plan.

        Parameters
        ----------
        spec : ModelSpec
            The model the resumed run's config asks for.
        index : LoadedIndex
            The index the resumed run trains on.
        plan : dict
            The resumed run's plan settings (see :attr:`plan`).
        where : str
            The checkpoint path, for messages.

        Raises
        ------
        CheckpointError
            Naming what differs: frame or unit (checked first: they also change the index
            fingerprint, and this message says what differs), index fingerprint, model
            settings, or (mid-epoch only) the plan.
        """
        self.meta.check_data(index.meta, where=str(index.path), checkpoint=where)
        fingerprint = index.meta.fingerprint()
        if self.meta.index_fingerprint != fingerprint:
            raise CheckpointError(
                f"--resume: {where} was trained on index fingerprint "
                f"{self.meta.index_fingerprint}, but {index.path} has {fingerprint}; resume "
                "with the same index or start a new run (another --run-name)"
            )
        if self.model_spec != spec:
            raise CheckpointError(
                f"--resume: {where} holds model {self.model_spec.to_dict()}, but the config "
                f"asks for {spec.to_dict()}; use the checkpoint's model settings or a new run"
            )
        if self.meta.batch > 0 and {**PLAN_DEFAULTS, **(self.plan or {})} != plan:
            raise CheckpointError(
                f"--resume: {where} stopped mid-epoch with plan {self.plan}, but this run has "
                f"{plan}; the epoch cannot continue at batch {self.meta.batch} with another "
                "batch size, seed, worker or rank count or gradient accumulation: keep those "
                "settings"
            )

    def build_model(self, *, where: str = "the checkpoint") -> RMSFModel:
        """The model with its weights (on the CPU, train mode)."""
        model = build_model(self.model_spec, temperature_range=self.meta.temperature_range)
        try:
            model.load_state_dict(self.model)
        except RuntimeError as exc:
            raise CheckpointError(
                f"checkpoint {where}: weights do not fit its model spec ({exc})"
            ) from exc
        return model


def _unrecorded(
    trained: FeatureProvenance | None,
    data: FeatureProvenance | None,
    *,
    checkpoint: str,
    given: str,
) -> str:
    """The warning for features whose format, parameters and biotite version one side (or
    both) does not record: written by a voxelflex before they were recorded."""

    def said(p: FeatureProvenance) -> str:
        return f"format {p.format_version}, biotite {p.biotite_version}"

    unchecked = (
        "so the structure features could not be checked for another sidecar format, other "
        "parameters or another biotite version (docs/features.md)"
    )
    rebuild = "rebuild the index (`voxelflex index build --features`) to record them"
    if trained is None and data is None:
        return (
            f"neither {checkpoint} nor {given} records the features' format, parameters and "
            f"biotite version (written by an earlier voxelflex), {unchecked}; retrain, or "
            f"{rebuild}"
        )
    if trained is None:
        return (
            f"{checkpoint} does not record the format, parameters and biotite version of the "
            f"features it was trained on (written by an earlier voxelflex), {unchecked} against "
            f"those of {given} ({said(data)}); retrain to record them"
        )
    return (
        f"{given} does not record the format, parameters and biotite version of its features "
        f"(built by an earlier voxelflex), {unchecked} against those {checkpoint} was trained "
        f"on ({said(trained)}); {rebuild}"
    )


def _missing_message(path: Path) -> str:
    """Say that ``path`` is no checkpoint file, and what the folder it points into holds."""
    folder = path if path.is_dir() else path.parent
    if (folder / "models").is_dir() and not any(folder.glob("*.pt")):
        folder = folder / "models"  # a run folder: its checkpoints are in models/
    head = (
        f"checkpoint {path} is a folder, not a checkpoint file"
        if path.is_dir()
        else f"checkpoint {path} does not exist"
    )
    if not folder.is_dir():
        return (
            f"{head}, nor does the folder {folder}; check the path (train writes "
            "<output_dir>/<run_name>/models/best.pt)"
        )
    found = sorted(p.name for p in folder.glob("*.pt"))
    if not found:
        return f"{head}; {folder} holds no checkpoint (*.pt): train first, or check the path"
    best = "best.pt" if "best.pt" in found else found[0]
    return f"{head}; {folder} holds: {', '.join(found)} (pass one of them, e.g. {folder / best})"


def _no_default(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _require_finite(state: Any, *, where: str) -> None:
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


def _check_crc(path: Path) -> None:
    """Refuse a checkpoint whose bytes differ from those written: torch.save's zip archive holds
    a CRC-32 of every member, which torch.load does not check (a flipped bit in a weight loads,
    and predicts other numbers). Files that are not zip archives are left to torch.load."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except zipfile.BadZipFile:
        return
    except (OSError, EOFError) as exc:
        raise CheckpointError(f"checkpoint {path} cannot be read ({exc}); copy it again") from exc
    if bad is not None:
        raise CheckpointError(
            f"checkpoint {path} is damaged (CRC-32 of {bad} differs from the one written); copy "
            "it again from where it was trained, or use another checkpoint"
        )


def load_for_inference(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[RMSFModel, Checkpoint]:
    """Load a checkpoint's model for prediction.

    Parameters
    ----------
    path : path
        ``best.pt``, ``latest.pt`` or a periodic checkpoint.
    device : str or torch.device

    Returns
    -------
    (RMSFModel, Checkpoint)
        The model on ``device`` in eval mode; the checkpoint (its ``meta`` checks data with
        :meth:`CheckpointMeta.check_data` and gives the training temperature range).
    """
    ck = Checkpoint.load(path)
    return ck.build_model(where=str(path)).to(device).eval(), ck
