"""Model selection on the real-structure set: train configurations, compare on validation,
then score the chosen one on the test split once (≥ 3 seeds, bootstrap 95 % interval).

Every run goes through the ordinary voxelflex API with an index built as the README of this
folder says (``voxelflex voxelize --features``, ``index build --features``, ``shards build``).

    python tools/real_set/experiment.py select OUT_DIR           # validation table, all variants
    python tools/real_set/experiment.py test OUT_DIR             # test: CHOSEN, 3 seeds, baselines
    python tools/real_set/experiment.py demo DEMO_DIR            # the ablation on the demo data

``select`` writes ``OUT_DIR/experiments/select.json``; ``test`` writes
``OUT_DIR/experiments/test.json``. ``demo`` makes the demo data from atoms (as
``voxelflex demo --structures``: 60 domains, seed 0) in ``DEMO_DIR`` unless it is there, trains
``DEMO_VARIANTS`` with 3 seeds and scores each on the demo's validation and test splits like
``voxelflex evaluate`` (median per-chain Pearson over all temperatures, and the mean over the
five temperatures of the median at each; the physics baselines beside), into
``DEMO_DIR/experiments/demo.json``.
On the real set, per-chain Pearson r is computed per (entry, chain) on rows with a target; the
median over chains is the figure of merit (the issue's).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from voxelflex.analysis.baselines import PHYSICS_BASELINES
from voxelflex.analysis.evaluate import evaluate
from voxelflex.analysis.predict import predict
from voxelflex.analysis.predictions import read_predictions
from voxelflex.atomic import atomic_write_text
from voxelflex.config import load_config
from voxelflex.demo.generate import build_demo_index
from voxelflex.demo.structures import generate_structure_demo
from voxelflex.engine import train
from voxelflex.index import read_index
from voxelflex.metrics import grouped_pearson
from voxelflex.sources.shards import build_shards

# name -> overrides on top of BASE; chosen on validation only.
BASE = [
    "model.name=multipath",
    "model.preset=tiny",
    "model.conditioning=film",
    "model.dropout=0.3",
    "loader.source=shards",
    "loader.batch_size=256",
    "loader.num_workers=1",
    "train.epochs=14",
    "train.lr=0.001",
    "train.weight_decay=0.01",
    "train.monitor=val_chain_pearson",
    "train.early_stopping_patience=4",
    "train.target_norm=domain",
    "train.progress=false",
    "train.checkpoint_every_batches=0",
]
VARIANTS = {
    "frames": [],
    "frames+contact": ["model.features=[contact]"],
    "frames+gnm": ["model.features=[gnm]"],
    "frames+position": ["model.features=[position]"],
    "frames+rsa": ["model.features=[rsa]"],
    "frames+ss": ["model.features=[ss]"],
    "frames+window": ["model.features=[window]"],
    "frames+all": ["model.features=[contact, gnm, position, rsa, ss]"],
    "features_only": [
        "model.name=features_only",
        "model.features=[contact, gnm, position, rsa, ss]",
    ],
    "frames+all, head": [
        "model.features=[contact, gnm, position, rsa, ss]",
        "model.conditioning=head",
    ],
    "frames+all, global targets": [
        "model.features=[contact, gnm, position, rsa, ss]",
        "train.target_norm=global",
    ],
    "frames+all, small": ["model.features=[contact, gnm, position, rsa, ss]", "model.preset=small"],
    "frames+all, no weight decay": [
        "model.features=[contact, gnm, position, rsa, ss]",
        "train.weight_decay=0",
        "model.dropout=0",
    ],
    "frames+all, strong regularisation": [
        "model.features=[contact, gnm, position, rsa, ss]",
        "train.weight_decay=0.05",
        "model.dropout=0.5",
    ],
    "frames+contact+gnm": ["model.features=[contact, gnm]"],
    "features_only, contact+gnm": ["model.name=features_only", "model.features=[contact, gnm]"],
    "features_only, head": [
        "model.name=features_only",
        "model.features=[contact, gnm, position, rsa, ss]",
        "model.conditioning=head",
    ],
    # Second round (after the first test score): features z-scored within each entry.
    "features_only, domain features": [
        "model.name=features_only",
        "model.features=[contact, gnm, position, rsa, ss]",
        "model.feature_norm=domain",
    ],
    "features_only, head, domain features": [
        "model.name=features_only",
        "model.features=[contact, gnm, position, rsa, ss]",
        "model.conditioning=head",
        "model.feature_norm=domain",
    ],
    "features_only, domain features, 40 epochs": [
        "model.name=features_only",
        "model.features=[contact, gnm, position, rsa, ss]",
        "model.feature_norm=domain",
        "train.epochs=40",
        "train.early_stopping_patience=8",
    ],
    "features_only, 40 epochs": [
        "model.name=features_only",
        "model.features=[contact, gnm, position, rsa, ss]",
        "train.epochs=40",
        "train.early_stopping_patience=8",
    ],
    "frames+all, domain features": [
        "model.features=[contact, gnm, position, rsa, ss]",
        "model.feature_norm=domain",
    ],
    # Round 4 (after the hold-out): the crystal neighbours (lattice group) added.
    "features_only+lattice, domain features, 40 epochs": [
        "model.name=features_only",
        "model.features=[contact, gnm, lattice, position, rsa, ss]",
        "model.feature_norm=domain",
        "train.epochs=40",
        "train.early_stopping_patience=8",
    ],
    "frames+all+lattice, domain features": [
        "model.features=[contact, gnm, lattice, position, rsa, ss]",
        "model.feature_norm=domain",
    ],
    "frames+lattice": ["model.features=[lattice]"],
}
# Round 6 (README, "Round 6 rule"): trained on train + test + holdout + holdout2, chosen on
# validation over seeds 0, 1, 2; round 4's configuration is the first.
_R4 = VARIANTS["features_only+lattice, domain features, 40 epochs"]
_WINDOW = "model.features=[contact, gnm, lattice, position, rsa, ss, window]"
ROUND6 = {
    "r6 round 4": _R4,
    "r6 round 4 + window": [*_R4, _WINDOW],
    "r6 round 4 + window, dropout 0.1": [*_R4, _WINDOW, "model.dropout=0.1"],
}
VARIANTS.update(ROUND6)
# Chosen on validation (mean over seeds 0, 1, 2 of the median per-chain r): 0.782 against 0.779
# with dropout 0.1 and 0.773 for round 4's configuration.
CHOSEN6 = "r6 round 4 + window"
# Round 7 (README, "Round 7 rule"): trained on train + test + holdout + holdout2 + holdout3.
ROUND7 = {
    "r7 round 6": VARIANTS[CHOSEN6],
    "r7 round 6, lr 3e-4": [*VARIANTS[CHOSEN6], "train.lr=0.0003"],
    "r7 round 6, weight decay 0.05, dropout 0.5": [
        *VARIANTS[CHOSEN6],
        "train.weight_decay=0.05",
        "model.dropout=0.5",
    ],
}
VARIANTS.update(ROUND7)
# Chosen on validation (mean over seeds 0, 1, 2): 0.7830 against 0.7827 for round 6's
# configuration and 0.7818 with lr 3e-4 (a tie in all but name: the rule takes the highest).
CHOSEN7 = "r7 round 6, weight decay 0.05, dropout 0.5"
# The variant in use (docs/examples/real_structures.yaml is this configuration); rounds 2 and 3
# chose "features_only, domain features, 40 epochs", round 4 "features_only+lattice, domain
# features, 40 epochs", round 6 CHOSEN6.
CHOSEN = CHOSEN7


# The ablation on the demo made from atoms: mdCATH-like absolute targets in nm (no per-domain
# standardisation), everything else as BASE.
DEMO_BASE = ["train.target_norm=global"]
DEMO_VARIANTS = [
    "frames",
    "frames+contact",
    "frames+gnm",
    "frames+position",
    "frames+rsa",
    "frames+ss",
    "frames+window",
    "frames+all",
    "frames+all, head",
    "features_only",
]


def _config(root: Path, name: str, extra: list[str], seed: int, shards: Path | None = None):
    run = f"{name.replace(' ', '').replace(',', '_').replace('+', '_')}_s{seed}"
    return load_config(
        None,
        [
            f"data.index={root / 'index.parquet'}",
            f"data.shards_dir={shards or root / 'shards'}",
            f"output_dir={root / 'experiments' / 'runs'}",
            f"run_name={run}",
            f"loader.seed={seed}",
            "train.overwrite=true",
            *BASE,
            *extra,
        ],
    )


def _chain_r(predictions: Path) -> tuple[np.ndarray, np.ndarray]:
    """Per-chain Pearson r of a predictions file (rows with a target) and the chain labels."""
    table, _ = read_predictions(predictions)
    table = table.filter(pc.is_finite(table["target_rmsf"]))
    labels = np.array(
        [
            f"{d}/{c}"
            for d, c in zip(table["domain"].to_pylist(), table["chain"].to_pylist(), strict=True)
        ]
    )
    names, codes = np.unique(labels, return_inverse=True)
    groups, r = grouped_pearson(
        table["target_rmsf"].to_numpy(), table["predicted_rmsf"].to_numpy(), codes
    )
    return names[groups], r


def _bootstrap(values: np.ndarray, n: int = 10_000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    medians = np.median(rng.choice(values, size=(n, len(values)), replace=True), axis=1)
    return float(np.percentile(medians, 2.5)), float(np.percentile(medians, 97.5))


def select(
    root: Path, seed: int, only: list[str] | None = None, shards: Path | None = None
) -> dict:
    """Train each variant; results go to select.json after each one, and variants already
    there are not trained again (an interrupted selection continues). Seeds other than 0 are
    recorded as ``"<variant> (seed N)"``."""
    path = root / "experiments" / "select.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    for variant, extra in VARIANTS.items():
        name = variant if seed == 0 else f"{variant} (seed {seed})"
        if (only and variant not in only) or name in results:
            continue
        t0 = time.perf_counter()
        result = train(_config(root, variant, extra, seed, shards))
        best = max(h["val"]["chain_pearson"] for h in result.history)
        results[name] = {
            "val_median_chain_pearson": best,
            "best_epoch": 1 + int(np.argmax([h["val"]["chain_pearson"] for h in result.history])),
            "epochs": len(result.history),
            "train_chain_pearson_at_best": result.history[
                int(np.argmax([h["val"]["chain_pearson"] for h in result.history]))
            ]["train"]["chain_pearson"],
            "seconds": time.perf_counter() - t0,
        }
        print(f"{name:32s} val median per-chain r {best:.3f}  {results[name]}", flush=True)
        atomic_write_text(path, json.dumps(results, indent=2) + "\n")
    return results


def test(root: Path, name: str, seeds: list[int], shards: Path | None = None) -> dict:
    extra = VARIANTS[name]
    per_seed, r_all = [], []
    chains = None
    for seed in seeds:
        config = _config(root, name, extra, seed, shards)
        result = train(config)
        out = root / "experiments" / f"test_{seed}.parquet"
        predict(
            result.best_checkpoint,
            root / "index.parquet",
            split="test",
            out_path=out,
            overwrite=True,
            config=config,
        )
        chains, r = _chain_r(out)
        per_seed.append(float(np.median(r)))
        r_all.append(r)
    mean_r = np.mean(np.stack(r_all), axis=0)  # each chain's r averaged over the seeds
    metrics = evaluate(out, importance=False, overwrite=True, config=config).metrics
    baselines = {
        n: b["per_chain_pearson"]["all_temperatures"]["median"]
        for n, b in metrics["baselines"].items()
        if n in PHYSICS_BASELINES
    }
    return {
        "variant": name,
        "seeds": seeds,
        "test_chains": len(chains),
        "median_chain_pearson_per_seed": per_seed,
        "median_chain_pearson_mean_over_seeds": float(np.mean(per_seed)),
        "median_of_seed_mean_chain_r": float(np.median(mean_r)),
        "bootstrap95_over_chains": _bootstrap(mean_r),
        "physics_baselines_median_chain_pearson": baselines,
        "index_rows": read_index(root / "index.parquet").table.num_rows,
    }


def _chain_scores(per_chain: dict) -> dict[str, float]:
    """Median per-chain Pearson r over all temperatures (the temperature trend included) and
    the mean over temperatures of the median at each temperature (ranking within one)."""
    by_t = [v["median"] for k, v in per_chain.items() if k != "all_temperatures"]
    return {"all_T": per_chain["all_temperatures"]["median"], "per_T": float(np.mean(by_t))}


def demo(root: Path, seeds: list[int], only: list[str] | None = None) -> dict:
    """The feature ablation on the demo made from atoms (see the module docstring); ``only``:
    these variants only (the others already in demo.json stay as they are)."""
    if not (root / "index.parquet").is_file():
        data = generate_structure_demo(root / "data", n_domains=60, seed=0)
        build_demo_index(data, root / "index.parquet", overwrite=True)
        build_shards(root / "index.parquet", root / "shards", domains_per_shard=8, progress=False)
    path = root / "experiments" / "demo.json"
    results = json.loads(path.read_text()) if path.exists() else {"variants": {}}
    for variant in DEMO_VARIANTS:
        if only and variant not in only:
            continue
        for seed in seeds:
            name = f"{variant} (seed {seed})"
            if name in results["variants"]:
                continue
            config = _config(root, variant, [*DEMO_BASE, *VARIANTS[variant]], seed)
            t0 = time.perf_counter()
            result = train(config)
            scores: dict = {}
            for split in ("val", "test"):
                out = root / "experiments" / f"demo_{split}.parquet"
                predict(
                    result.best_checkpoint,
                    root / "index.parquet",
                    split=split,
                    out_path=out,
                    overwrite=True,
                    config=config,
                )
                metrics = evaluate(out, importance=False, overwrite=True, config=config).metrics
                scores[split] = _chain_scores(metrics["per_chain_pearson"])
                results.setdefault("baselines", {})[split] = {
                    n: _chain_scores(b["per_chain_pearson"])
                    for n, b in metrics["baselines"].items()
                    if n in PHYSICS_BASELINES
                }
            scores["seconds"] = time.perf_counter() - t0
            results["variants"][name] = scores
            print(name, scores, flush=True)
            atomic_write_text(path, json.dumps(results, indent=2) + "\n")
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["select", "test", "demo"])
    ap.add_argument("root", type=Path, help="the set's folder (build_real_set.py OUT_DIR)")
    ap.add_argument("--variant", default=CHOSEN, help="test: the variant chosen")
    ap.add_argument("--seeds", type=int, nargs="+", help="default: 0 for select, 0 1 2 for test")
    ap.add_argument("--only", nargs="*", help="select, demo: these variants only")
    ap.add_argument("--shards", type=Path, help="shard folder (default ROOT/shards)")
    args = ap.parse_args()
    (args.root / "experiments").mkdir(parents=True, exist_ok=True)
    if args.what == "demo":
        out = demo(args.root, args.seeds or [0, 1, 2], args.only)
    elif args.what == "select":
        out = {}
        for seed in args.seeds or [0]:
            out = select(args.root, seed, args.only, args.shards)
    else:
        out = test(args.root, args.variant, args.seeds or [0, 1, 2], args.shards)
    path = args.root / "experiments" / f"{args.what}.json"
    atomic_write_text(path, json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
