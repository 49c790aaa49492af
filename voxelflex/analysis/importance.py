"""Permutation importance of the temperature input and of each voxel channel.

Importance of an input = Pearson r of the model on intact inputs minus Pearson r after shuffling
that input, averaged over ``n_shuffles`` shuffles (the rise in RMSE is reported too). Shuffles
happen inside each batch, on the device, after unpacking: the temperature column is permuted
across the batch's samples, and a channel's grids are permuted across the batch's residues while
the other channels stay in place. Each batch is read and unpacked once for all shuffles.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from voxelflex.analysis.predict import restrict_index
from voxelflex.config import Config
from voxelflex.engine.checkpoint import load_for_inference
from voxelflex.engine.distributed import resolve_device
from voxelflex.errors import ConfigError, InputError, SourceError
from voxelflex.index import read_index
from voxelflex.metrics import pearson
from voxelflex.packing import unpack_torch
from voxelflex.paths import Location
from voxelflex.sources import PlanConfig, open_source, source_options
from voxelflex.sources.batch import Batch

__all__ = ["Forward", "importance_for_rows", "permutation_importance"]

log = logging.getLogger(__name__)

Forward = Callable[[torch.Tensor, Batch], torch.Tensor]
"""``forward(grids, batch) -> (B,)``: model output for unpacked ``grids`` float32
(R, C, 21, 21, 21) and the batch's temperatures, residue_index and features (on the device)."""


def _rmse(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.sqrt(np.mean((p - y) ** 2))) if len(y) else float("nan")


@torch.no_grad()
def permutation_importance(
    forward: Forward,
    batches: Iterable[Batch],
    *,
    channels: Sequence[str],
    feature_names: Sequence[str] = (),
    device: torch.device | str = "cpu",
    n_shuffles: int = 3,
    seed: int = 0,
) -> dict:
    """Drop in Pearson r (and rise in RMSE) when temperature, a channel or a feature is shuffled.

    Parameters
    ----------
    forward : Forward
        Model call on unpacked grids.
    batches : iterable of Batch
        Rows to score (targets finite; padding rows with ``row_id`` -1 are ignored).
    channels : sequence of str
        Channel labels in grid order, e.g. ``("C", "N", "O", "CA", "CB")``.
    feature_names : sequence of str
        Columns of ``Batch.features``; each is permuted across the batch's residues.
    n_shuffles : int
        Shuffles averaged per input.
    seed : int
        Seed of the shuffles (results are deterministic for a given batch order).

    Returns
    -------
    dict
        ``{"n_rows", "n_shuffles", "baseline_pearson", "baseline_rmse", "features": {name:
        {"pearson_drop", "pearson_drop_std", "rmse_rise"}}}`` with names ``"temperature"``,
        ``"channel_<label>"`` and ``"feature_<name>"``, in that order.
    """
    if n_shuffles < 1:
        raise ConfigError(
            f"permutation importance needs n_shuffles >= 1, got {n_shuffles}: pass --shuffles 1 "
            "or more (or --no-importance)"
        )
    names = [
        "temperature",
        *(f"channel_{c}" for c in channels),
        *(f"feature_{f}" for f in feature_names),
    ]
    gen = torch.Generator(device="cpu").manual_seed(seed)
    truth: list[np.ndarray] = []
    base: list[np.ndarray] = []
    shuffled: dict[str, list[list[np.ndarray]]] = {
        n: [[] for _ in range(n_shuffles)] for n in names
    }
    for batch in batches:
        batch = batch.to(device)
        keep = ((batch.row_id >= 0) & torch.isfinite(batch.target)).cpu().numpy()
        grids = unpack_torch(batch.packed, torch.float32)

        def run(g: torch.Tensor, b: Batch, keep=keep) -> np.ndarray:
            return forward(g, b).float().cpu().numpy()[keep]

        truth.append(batch.target.cpu().numpy()[keep])
        base.append(run(grids, batch))
        n_res, n_smp = batch.n_residues, batch.n_samples
        for k in range(n_shuffles):
            perm_t = torch.randperm(n_smp, generator=gen).to(device)
            shuffled_t = replace(batch, temperature=batch.temperature[perm_t])
            shuffled["temperature"][k].append(run(grids, shuffled_t))
            for ci, c in enumerate(channels):
                perm_r = torch.randperm(n_res, generator=gen).to(device)
                g = grids.clone()
                g[:, ci] = grids[perm_r, ci]
                shuffled[f"channel_{c}"][k].append(run(g, batch))
            for fi, f in enumerate(feature_names):  # drawn after the channels': same streams
                perm_r = torch.randperm(n_res, generator=gen).to(device)
                feats = batch.features.clone()
                feats[:, fi] = batch.features[perm_r, fi]
                shuffled[f"feature_{f}"][k].append(run(grids, replace(batch, features=feats)))

    def cat(parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts).astype(np.float64) if parts else np.zeros(0)

    y, p0 = cat(truth), cat(base)
    r0, e0 = pearson(y, p0), _rmse(y, p0)
    features = {}
    for name in names:
        drops, rises = [], []
        for k in range(n_shuffles):
            pk = cat(shuffled[name][k])
            drops.append(r0 - pearson(y, pk))
            rises.append(_rmse(y, pk) - e0)
        features[name] = {
            "pearson_drop": float(np.mean(drops)),
            "pearson_drop_std": float(np.std(drops)),
            "rmse_rise": float(np.mean(rises)),
        }
    return {
        "n_rows": len(y),
        "n_shuffles": n_shuffles,
        "baseline_pearson": r0,
        "baseline_rmse": e0,
        "features": features,
    }


def importance_for_rows(
    *,
    checkpoint: Path,
    index_path: Location,
    splits: Sequence[str],
    domains: Sequence[str],
    config: Config,
    n_shuffles: int = 3,
    seed: int = 0,
) -> dict:
    """Permutation importance over the index rows (with targets) of ``domains`` in ``splits``.

    One voxel read per residue; batches of ``config.predict.residues_per_batch`` residues (each
    with all its temperature rows), from ``config.loader.source`` on ``config.train.device``.
    """
    device = str(resolve_device(config.train.device))
    model, ck = load_for_inference(checkpoint, device)
    index = read_index(index_path)
    ck.check_data(index.meta, where=str(index_path), checkpoint=str(checkpoint))
    restricted = restrict_index(index, list(domains))

    def forward(grids: torch.Tensor, batch: Batch) -> torch.Tensor:
        return model(grids, batch.residue_index, batch.temperature, batch.features)

    def batches() -> Iterator[Batch]:
        for s in splits:
            try:
                src = open_source(
                    config.loader.source,
                    restricted,
                    split=s,
                    features=model.spec.features,
                    feature_norm=model.spec.feature_norm,
                    **source_options(config),
                )
            except SourceError as exc:
                log.warning("permutation importance: split %s skipped: %s", s, exc)
                continue
            if model.spec.target_norm == "domain":  # its outputs are per-domain z-scores
                src.table = src.table.with_domain_zscored_targets()
            per_residue = int(src.table.residue_samples().max())
            cfg = PlanConfig(
                batch_size=config.predict.residues_per_batch * per_residue, shuffle=False
            )
            yield from tqdm(
                src.loader(cfg, epoch=0),
                total=src.num_batches(cfg, 0),
                desc=f"permutation importance ({s})",
                unit="batch",
                disable=not config.predict.progress,
                leave=False,
            )

    result = permutation_importance(
        forward,
        batches(),
        channels=ck.meta.frame.channels,
        feature_names=ck.model_spec.features,
        device=device,
        n_shuffles=n_shuffles,
        seed=seed,
    )
    if result["n_rows"] == 0:
        raise InputError(
            f"{index_path}: no rows with targets in split(s) {list(splits)} for the predicted "
            "domains, so permutation importance has nothing to score; evaluate predictions of a "
            "split with targets (or pass --no-importance)"
        )
    return result
