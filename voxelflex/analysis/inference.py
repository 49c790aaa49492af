"""Running a model over prediction-mode sources: the loop ``predict`` and ``predict --structure``
share.

The trunk always sees batches of exactly ``predict.residues_per_batch`` residues (the last one of
each worker padded with empty grids): convolution kernels pick their algorithm, and so their
rounding, by batch size, so a fixed shape makes a residue's prediction independent of which
residues share its batch, of the worker count and of the rank count. Measured on the CPU: bit
for bit with ``residues_per_batch`` a multiple of 8 (the default 256 is); with 7, the head's last
matrix-vector product (and with 2 threads the trunk) rounds rows by their place in the batch, so
the last bits of a prediction (≈1e-6 relative) depend on where it lands.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from tqdm import tqdm

from voxelflex.analysis.parts import Predictions
from voxelflex.config import Config
from voxelflex.engine.distributed import DistContext
from voxelflex.engine.step import predict_batch
from voxelflex.models import RMSFModel
from voxelflex.sources import Batch, PlanConfig, SampleSource

__all__ = ["run_model"]


def _fixed_shape(batch: Batch, residues: int, per_residue: int) -> Batch:
    """``batch`` padded with empty residues (each with ``per_residue`` weight-0 samples) to
    ``residues`` residues; its own samples stay first and in order."""
    missing = residues - batch.n_residues
    if missing <= 0:
        return batch
    n = missing * per_residue
    return Batch(
        packed=torch.cat([batch.packed, batch.packed.new_zeros(missing, batch.packed.shape[1])]),
        residue_index=torch.arange(residues).repeat_interleave(per_residue),
        temperature=torch.cat([batch.temperature, batch.temperature[:per_residue].repeat(missing)]),
        target=torch.cat([batch.target, batch.target.new_full((n,), float("nan"))]),
        weight=torch.cat([batch.weight, batch.weight.new_zeros(n)]),
        row_id=torch.cat([batch.row_id, batch.row_id.new_full((n,), -1)]),
        features=None
        if batch.features is None
        else torch.cat(
            [batch.features, batch.features.new_zeros(missing, batch.features.shape[1])]
        ),
    )


def run_model(
    model: RMSFModel,
    sources: Sequence[SampleSource],
    config: Config,
    device: str,
    dist: DistContext | None = None,
) -> Predictions:
    """Predict every sample the ``sources`` (in prediction mode) serve to this rank.

    Batches go through the model padded to ``config.predict.residues_per_batch`` residues (see
    the module docstring); a rank's padding batches (no sample) are not run at all.

    Returns
    -------
    row_id : numpy.ndarray of int64, shape (N,)
    temperature : numpy.ndarray of float32, shape (N,)
        K.
    predicted : numpy.ndarray of float32, shape (N,)
        RMSF in the checkpoint's unit (possibly non-finite: the caller reports those).
    skipped : dict of int -> str
        Residues (first row_id) the sources could not read, with the reason.
    """
    residues = config.predict.residues_per_batch
    row_ids, t_out, p_out = [], [], []
    skipped: dict[int, str] = {}
    for src in sources:
        per_residue = len(src.temperatures)
        world = dist.world_size if dist else 1
        workers = config.loader.num_workers
        # Fewer domains than streams (a structure file or two): read them in the main process
        # rather than start workers, some of which would have nothing to read.
        if src.domain_count < world * workers:
            workers = 0
        cfg = PlanConfig(
            batch_size=residues * per_residue,
            shuffle=False,
            num_workers=workers,
            world_size=world,
            rank=dist.rank if dist else 0,
        )
        try:
            loader = src.loader(cfg, epoch=0)
            bar = tqdm(
                loader,
                total=src.num_batches(cfg, 0),
                desc=f"predict ({src.split})" if len(sources) > 1 else "predict",
                unit="batch",
                disable=not config.predict.progress or (dist is not None and not dist.is_main),
                leave=False,
            )
            for batch in bar:
                ok = ((batch.row_id >= 0) & (batch.weight > 0)).numpy()
                if not ok.any():
                    continue
                fixed = _fixed_shape(batch, residues, per_residue)
                pred = predict_batch(model, fixed, device).numpy()[: batch.n_samples]
                row_ids.append(batch.row_id.numpy()[ok])
                t_out.append(batch.temperature.numpy()[ok])
                p_out.append(pred[ok])
            skipped.update(loader.skipped)
        finally:
            src.close()  # one epoch is all predict reads: its workers can end now
    return (
        np.concatenate(row_ids) if row_ids else np.zeros(0, np.int64),
        np.concatenate(t_out) if t_out else np.zeros(0, np.float32),
        np.concatenate(p_out) if p_out else np.zeros(0, np.float32),
        skipped,
    )
