"""`voxelflex demo`: the whole pipeline on generated data, each step timed.

generate inputs → index → shards → train (``tiny``) → predict (the test split at 290-480 K)
→ evaluate → plot. With ``structures`` the inputs are made from atoms
(:mod:`voxelflex.demo.structures`): the index carries the structure features, the model takes
them, evaluation adds the physics baselines, and a last step predicts from the test split's
structure files and writes B-factor copies of them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voxelflex.analysis import format_summary, plot
from voxelflex.analysis.evaluate import evaluate
from voxelflex.analysis.predict import predict
from voxelflex.analysis.structures import predict_structures
from voxelflex.config import load_config
from voxelflex.demo.generate import MDCATH_TEMPERATURES, build_demo_index, generate_demo
from voxelflex.demo.settings import DemoSettings
from voxelflex.demo.structures import generate_structure_demo
from voxelflex.engine import train
from voxelflex.engine.distributed import resolve_device
from voxelflex.errors import InputError
from voxelflex.inputs.splits import read_split_file
from voxelflex.sources.shards import build_shards
from voxelflex.structure.features import FEATURE_GROUPS

# Every group but the crystal's (the demo's chains are written without a crystal) and the
# sequence window (added after the demo's figures in docs/features.md were made).
DEMO_FEATURE_GROUPS = [g for g in FEATURE_GROUPS if g not in ("lattice", "window")]

__all__ = ["DemoResult", "DemoSettings", "run_demo"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoResult:
    """Where each output went, how long each step took (s), and the evaluation summary."""

    root: Path
    outputs: dict[str, Path] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    summary: str = ""


def _timed(seconds: dict[str, float], name: str, fn: Callable[[], Any]) -> Any:
    t0 = time.perf_counter()
    log.info("demo step: %s", name)
    out = fn()
    seconds[name] = time.perf_counter() - t0
    log.info("demo step %s done in %.1f s", name, seconds[name])
    return out


def run_demo(
    out_dir: str | Path = "demo_out", settings: DemoSettings = DemoSettings()
) -> DemoResult:
    """Run every pipeline step on a generated dataset under ``out_dir``.

    Parameters
    ----------
    out_dir : path
        Created if missing. Holds ``data/`` (inputs), ``work/`` (index, shards) and
        ``outputs/demo/`` (the run: checkpoints, predictions, metrics, plots).
    settings : DemoSettings
    """
    resolve_device(settings.device)  # --device cuda without a GPU: before building the data
    root = Path(out_dir).resolve()
    _claim(root)
    s: dict[str, float] = {}
    generate = generate_structure_demo if settings.structures else generate_demo
    data = _timed(
        s,
        "generate",
        lambda: generate(
            root / "data",
            n_domains=settings.n_domains,
            min_residues=30,
            max_residues=70,
            seed=settings.seed,
        ),
    )
    index_path = root / "work" / "index.parquet"
    _timed(
        s,
        "index",
        lambda: build_demo_index(data, index_path, overwrite=True),
    )
    shards_dir = root / "work" / "shards"
    _timed(
        s,
        "shards",
        lambda: build_shards(index_path, shards_dir, domains_per_shard=8, progress=False),
    )
    config = load_config(
        None,
        {
            "output_dir": str(root / "outputs"),
            "run_name": "demo",
            "data.index": str(index_path),
            "data.shards_dir": str(shards_dir),
            "loader.source": settings.source,
            "loader.num_workers": 1,
            "loader.seed": settings.seed,
            "model.preset": "tiny",
            "train.epochs": settings.epochs,
            "train.device": settings.device,
            "train.progress": False,
            "train.overwrite": True,
            **({"model.features": DEMO_FEATURE_GROUPS} if settings.structures else {}),
        },
    )
    result = _timed(s, "train", lambda: train(config))
    # The simulated temperatures (scored) plus a sweep past both ends of the training range
    # (flagged as extrapolation), in one pass: the trunk runs once per residue either way.
    temperatures = sorted(set(MDCATH_TEMPERATURES) | {290.0 + 10 * k for k in range(20)})
    preds = _timed(
        s,
        "predict",
        lambda: predict(
            result.best_checkpoint,
            index_path,
            split="test",
            temperatures=temperatures,
            overwrite=True,
            config=config,
        ),
    )
    report = _timed(
        s,
        "evaluate",
        lambda: evaluate(
            preds.path,
            index_path=index_path,
            checkpoint=result.best_checkpoint,
            overwrite=True,
            config=config,
        ),
    )
    plot_dir = result.run_dir / "visualizations"
    _timed(
        s,
        "plot",
        lambda: plot(
            plot_dir,
            run_dir=result.run_dir,
            predictions=preds.path,
            metrics=report.path,
            overwrite=True,
        ),
    )
    if data.structures is not None:
        test_files = [data.structures / f"{d}.pdb" for d in read_split_file(data.test_split)]
        from_files = _timed(
            s,
            "from structures",
            lambda: predict_structures(
                result.best_checkpoint,
                test_files,
                temperatures=MDCATH_TEMPERATURES,
                out_path=result.run_dir / "metrics" / "predictions_from_structures.parquet",
                bfactor_dir=result.run_dir / "bfactor_structures",
                overwrite=True,
                config=config,
            ),
        )
    outputs = {
        "inputs": data.root,
        "index": index_path,
        "shards": shards_dir,
        "run": result.run_dir,
        "best checkpoint": result.best_checkpoint,
        "predictions": preds.path,
        "metrics": report.path,
        "plots": plot_dir,
    }
    if data.structures is not None:
        outputs["from structures"] = from_files.path
        outputs["B-factor copies"] = from_files.bfactor_dir
    return DemoResult(root=root, outputs=outputs, seconds=s, summary=format_summary(report.metrics))


MARKER = ".voxelflex-demo"  # marks a folder the demo made, so it may replace its contents


def _claim(root: Path) -> None:
    """Make ``root`` the demo's folder; refuse a non-empty folder the demo did not make."""
    if root.exists() and not root.is_dir():
        raise InputError(f"demo output {root} is a file; --output names a folder")
    if root.is_dir() and any(root.iterdir()) and not (root / MARKER).is_file():
        raise InputError(
            f"demo output folder {root} holds files the demo did not write; the demo replaces "
            "what is in its folder: choose a new or empty --output folder"
        )
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text("written by `voxelflex demo`, which may replace this folder\n")
