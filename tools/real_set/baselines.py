"""Physics baselines on the real-structure set: per-chain Pearson r of the target RMSF against
the inverse-square CA contact number (``wcn_ca``) and the GNM mean-square fluctuation
(``gnm_msf``) of :func:`voxelflex.structure.features.compute_features`, signs as they are.

Usage::

    python tools/real_set/baselines.py OUT_DIR [--split test] [--json FILE]

``OUT_DIR`` is the output of ``build_real_set.py``. Chains with fewer than
``MIN_CHAIN_RESIDUES`` target residues are not scored (a correlation over a 10-residue
peptide says little). No fitting: these are orientation figures, not the issue's one-feature
linear baselines (whose sign is learned on the train split).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np

from voxelflex.atomic import atomic_write_text
from voxelflex.structure.features import compute_features

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_real_set import MIN_CHAIN_RESIDUES, SPLIT_BUCKETS, read_structure

__all__ = ["chain_correlations"]

SCORED = ("wcn_ca", "gnm_msf")


def _targets(out_dir: Path) -> dict[tuple[str, str], dict[int, float]]:
    targets: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    with open(out_dir / "rmsf.csv", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            targets[row["domain_id"], row["chain"]][int(row["resid"])] = float(row["target_rmsf"])
    return targets


def chain_correlations(out_dir: Path, split: str) -> list[dict]:
    """One dict per scored chain of ``split``: entry, chain, residues, and r per feature."""
    manifest = json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))
    targets = _targets(out_dir)
    rows = []
    for pdb_id, entry in sorted(manifest["entries"].items()):
        if entry["split"] != split:
            continue
        path = out_dir / entry["file"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            atoms, _ = read_structure(path.name, path.read_bytes())
        feats = compute_features(atoms, where=str(path))
        plain = feats.icode == ""  # the targets leave insertion-code residues out
        for chain in entry["chains"]:
            target = targets[pdb_id, chain]
            sel = np.flatnonzero(plain & (feats.chain == chain))
            sel = sel[np.isin(feats.resnum[sel], list(target))]
            if len(sel) < MIN_CHAIN_RESIDUES:
                continue
            y = np.array([target[int(r)] for r in feats.resnum[sel]])
            row = {"entry": pdb_id, "chain": chain, "residues": len(sel)}
            for name in SCORED:
                row[name] = float(np.corrcoef(feats.column(name)[sel], y)[0, 1])
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--split", default="test", choices=list(SPLIT_BUCKETS))
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    rows = chain_correlations(args.out_dir, args.split)
    out = io.StringIO()
    out.write(f"{'entry':<6} {'chain':<5} {'res':>5} " + " ".join(f"{n:>8}" for n in SCORED))
    for r in rows:
        out.write(f"\n{r['entry']:<6} {r['chain']:<5} {r['residues']:>5} ")
        out.write(" ".join(f"{r[n]:>8.3f}" for n in SCORED))
    medians = {n: float(np.median([r[n] for r in rows])) for n in SCORED}
    out.write(f"\nmedian over {len(rows)} {args.split} chains: ")
    out.write(", ".join(f"{n} {v:+.3f}" for n, v in medians.items()))
    print(out.getvalue())
    if args.json:
        atomic_write_text(
            args.json,
            json.dumps({"split": args.split, "chains": rows, "median": medians}, indent=1) + "\n",
        )


if __name__ == "__main__":
    main()
