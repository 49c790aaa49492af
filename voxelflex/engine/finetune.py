"""Which model a run trains, and starting it from another run's weights (``--init-from``).

A fine-tuning run (``train.init_from``) is a new run: it takes the weights and the model
settings from the checkpoint, and the training temperature range and target standardisation
from its own data (:data:`voxelflex.models.STATISTICS_BUFFERS`); optimizer, schedule, epochs
and history start anew. ``--resume`` of such a run continues from the run's own ``latest.pt``.
"""

from __future__ import annotations

import logging

from voxelflex.config import Config
from voxelflex.engine.checkpoint import Checkpoint
from voxelflex.engine.data import expand_features
from voxelflex.errors import CheckpointError
from voxelflex.index import LoadedIndex
from voxelflex.models import ModelSpec, RMSFModel

__all__ = ["config_model_spec", "init_from", "log_init", "run_model_spec"]

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
                "section (%s) is not used",
                config.train.init_from,
                init.model_spec.to_dict(),
                configured.to_dict(),
            )
        return init.model_spec
    if latest is not None and config.train.init_from:
        return latest.model_spec
    return configured


def init_from(model: RMSFModel, init: Checkpoint, index: LoadedIndex, *, where: str) -> None:
    """Load ``init``'s weights into ``model`` (not its statistics), after checking that the
    training data has the checkpoint's voxel frame and RMSF unit.

    Raises
    ------
    CheckpointError
        Another frame or RMSF unit (naming both), or weights that do not fit.
    """
    init.meta.check_data(index.meta, where=str(index.path), checkpoint=where)
    try:
        model.load_weights(init.model)
    except RuntimeError as exc:
        raise CheckpointError(
            f"--init-from {where}: weights do not fit its model spec ({exc})"
        ) from exc


def log_init(model: RMSFModel, init: Checkpoint, index: LoadedIndex, *, where: str) -> None:
    """Say what came from the checkpoint and what from the new data (after the model's
    statistics were set from it)."""
    lo, hi = index.meta.temperature_range
    old_lo, old_hi = init.meta.temperature_range
    log.info(
        "--init-from %s: weights of a %s model trained on %g-%g K (RMSF in %s); from this run's "
        "data: the temperature range %g-%g K (the model's temperature scaling) and the target "
        "standardisation (mean %.4g, sd %.4g); optimizer, LR schedule, epochs, best value and "
        "history start anew",
        where,
        init.model_spec.describe(),
        old_lo,
        old_hi,
        init.meta.rmsf_unit,
        lo,
        hi,
        float(model.target_loc),
        float(model.target_scale),
    )
