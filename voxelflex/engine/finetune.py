"""Which model a run trains, and starting it from another run's weights (``--init-from``).

A fine-tuning run (``train.init_from``) is a new run that starts from exactly the checkpoint's
model: its settings, its weights and its statistics (:data:`voxelflex.models.STATISTICS_BUFFERS`:
the temperature scaling, the target and the feature standardisation), so that before the first
step it predicts what the checkpoint predicts. Re-fitting those statistics to the new data
would change every prediction of the pretrained weights at once (a model fine-tuned at one
temperature would lose its temperature trend). What counts as extrapolation becomes the union
of the checkpoint's training temperature range and the new data's (:func:`training_range`).
Optimizer, schedule, epochs and history start anew. ``--resume`` of such a run continues from
the run's own ``latest.pt``.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from voxelflex.config import Config
from voxelflex.engine.checkpoint import Checkpoint
from voxelflex.engine.data import expand_features
from voxelflex.errors import CheckpointError
from voxelflex.index import LoadedIndex
from voxelflex.models import ModelSpec, RMSFModel

__all__ = [
    "config_model_spec",
    "config_with_model",
    "init_from",
    "log_init",
    "run_model_spec",
    "training_range",
]

log = logging.getLogger("voxelflex.engine.trainer")  # the trainer's lines, as users know them


def config_model_spec(config: Config) -> ModelSpec:
    """The model the config's ``model`` section (and ``train.log_target``, ``train.target_norm``)
    describes; feature groups expanded to their columns."""
    m = config.model
    return ModelSpec(
        name=m.name,
        preset=m.preset,
        conditioning=m.conditioning,
        features=expand_features(m.features),
        feature_norm=m.feature_norm,
        dropout=m.dropout,
        log_target=config.train.log_target,
        target_norm=config.train.target_norm,
        hyperparameters=m.hyperparameters,
    )


def config_with_model(config: Config, spec: ModelSpec) -> Config:
    """``config`` with its ``model`` section (and ``train.log_target``, ``train.target_norm``)
    describing ``spec``: what a fine-tuning run saves as its ``config.yaml``, since it trains the
    checkpoint's model, not the config's."""
    model = dataclasses.replace(
        config.model,
        name=spec.name,
        preset=spec.preset,
        conditioning=spec.conditioning,
        dropout=spec.dropout,
        features=tuple(spec.features),
        feature_norm=spec.feature_norm,
        hyperparameters=dict(spec.hyperparameters),
    )
    train = dataclasses.replace(
        config.train, log_target=spec.log_target, target_norm=spec.target_norm
    )
    return dataclasses.replace(config, model=model, train=train)


def training_range(
    data_range: tuple[float, float], earlier: tuple[float, float] | None
) -> tuple[float, float]:
    """Training temperatures of a run, (min, max) in K: its data's range, widened by the range
    an ``--init-from`` checkpoint was trained on (``earlier``; None for a run from scratch).
    Temperatures outside are extrapolation."""
    lo, hi = (float(x) for x in data_range)
    if earlier is not None:
        lo, hi = min(lo, float(earlier[0])), max(hi, float(earlier[1]))
    return lo, hi


def run_model_spec(
    config: Config, *, init: Checkpoint | None, latest: Checkpoint | None
) -> ModelSpec:
    """The model a run trains.

    Parameters
    ----------
    config : Config
    init : Checkpoint or None
        The ``--init-from`` checkpoint of a new run: its model is used (a warning says so when
        the config's model section differs).
    latest : Checkpoint or None
        ``latest.pt`` of a resumed run: a fine-tuning run continues with its own model, so
        that resuming it needs neither the first checkpoint nor model flags.
    """
    configured = config_model_spec(config)
    if init is not None:
        if init.model_spec != configured:
            log.warning(
                "--init-from %s: the model comes from that checkpoint (%s); the config's model "
                "section, train.log_target and train.target_norm (%s) are not used",
                config.train.init_from,
                init.model_spec.to_dict(),
                configured.to_dict(),
            )
        return init.model_spec
    if latest is not None and config.train.init_from:
        return latest.model_spec
    return configured


def init_from(model: RMSFModel, init: Checkpoint, index: LoadedIndex, *, where: str) -> None:
    """Load ``init``'s weights and statistics into ``model`` (built from ``init.model_spec``),
    after checking that the training data has the checkpoint's voxel frame and RMSF unit and
    its structure features' parameters (:meth:`Checkpoint.check_data`).

    Raises
    ------
    CheckpointError
        Another frame, RMSF unit or feature parameter (naming both), or weights that do not
        fit.
    """
    init.check_data(index.meta, where=str(index.path), checkpoint=where)
    try:
        model.load_state_dict(init.model)
    except RuntimeError as exc:
        raise CheckpointError(
            f"--init-from {where}: weights do not fit its model spec ({exc})"
        ) from exc


def log_init(
    model: RMSFModel,
    init: Checkpoint,
    index: LoadedIndex,
    target: np.ndarray,
    *,
    extrapolation: tuple[float, float],
    where: str,
) -> None:
    """One line: what was kept from the checkpoint, what this run's data holds, and the
    temperature range outside which predictions count as extrapolation.

    Parameters
    ----------
    target : numpy.ndarray
        This run's train targets as the model standardises them (log RMSF with
        ``log_target``), for comparison with the kept standardisation.
    """

    def span(lo: float, hi: float) -> str:
        return f"{lo:g} K" if lo == hi else f"{lo:g}-{hi:g} K"

    n = len(model.spec.features)
    kind = "log RMSF" if model.spec.log_target else "RMSF"
    if model.spec.target_norm == "domain":
        kind = f"per-domain z-scored {kind}"
    log.info(
        "--init-from %s: continuing a %s model trained on %s (RMSF in %s) with its "
        "weights and statistics kept: temperature scaling %s, %s standardisation (mean "
        "%.4g, sd %.4g), %s; this run's data: %s "
        "(%s mean %.4g, sd %.4g), so predictions outside %s count as extrapolation; "
        "optimizer, LR schedule, epochs, best value and history start anew",
        where,
        init.model_spec.describe(),
        span(*init.meta.temperature_range),
        init.meta.rmsf_unit,
        span(*(float(x) for x in model.temperature_range)),
        kind,
        float(model.target_loc),
        float(model.target_scale),
        f"feature standardisation ({n} features)" if n else "no features",
        span(*index.meta.temperature_range),
        kind,
        float(np.mean(target)) if len(target) else float("nan"),
        float(np.std(target)) if len(target) else float("nan"),
        span(*extrapolation),
    )
