"""A prediction index held in memory: the residues of structures voxelized on the fly.

``voxelflex predict --structure`` voxelizes files without writing an HDF5; this table gives
those residues the index's schema (split ``predict``, one row per residue, sorted as an index),
so the sample-source machinery and the predictions table work on them unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from voxelflex.frame import FRAME
from voxelflex.index.read import LoadedIndex
from voxelflex.index.schema import SCHEMA, IndexMeta
from voxelflex.structure.features import FEATURES, KEY_COLUMNS, FeatureMeta
from voxelflex.structure.frames import FrameSet

__all__ = ["frames_index"]


def frames_index(
    framesets: Sequence[FrameSet], features: pa.Table | None = None, *, name: str = "structures"
) -> LoadedIndex:
    """An in-memory prediction index of the framed residues of ``framesets``.

    Parameters
    ----------
    framesets : sequence of FrameSet
        One per structure (domains must differ).
    features : pyarrow.Table, optional
        Feature-sidecar rows (``domain, chain, resid_str`` and feature columns) to join,
        computed by this voxelflex (the index records its feature provenance); residues
        without a row are left out (the caller reports them).
    name : str
        What ``LoadedIndex.path`` says in messages.

    Returns
    -------
    LoadedIndex
        Rows sorted by domain, chain, resnum, icode; ``row_id`` their position.
    """

    def column(attr: str) -> np.ndarray:
        parts = [np.asarray(getattr(f, attr)) for f in framesets]
        return np.concatenate(parts) if parts else np.zeros(0)

    domain = np.concatenate([np.full(len(f), f.domain, dtype=object) for f in framesets])
    n = len(domain)
    table = pa.table(
        {
            "split": pa.array(["predict"] * n, pa.string()),
            "domain": pa.array(domain.tolist(), pa.string()),
            "domain_id": pa.array(domain.tolist(), pa.string()),
            "chain": pa.array(column("chains").astype(str).tolist(), pa.string()),
            "resid_str": pa.array(column("resids").astype(str).tolist(), pa.string()),
            "resnum": pa.array(column("resnums").astype(np.int32)),
            "icode": pa.array(column("icodes").astype(str).tolist(), pa.string()),
            "resname": pa.array(column("labels").astype(str).tolist(), pa.string()),
            "temperature": pa.array(np.full(n, np.nan, np.float32)),
            "target_rmsf": pa.array(np.full(n, np.nan, np.float32)),
        }
    )
    names: list[str] = []
    if features is not None:
        names = [c for c in features.column_names if c not in KEY_COLUMNS]
        keys = ["domain", "chain", "resid_str"]
        table = table.join(features.select([*keys, *names]), keys=keys, join_type="inner")
    table = table.sort_by([(c, "ascending") for c in ("domain", "chain", "resnum", "icode")])
    table = table.add_column(0, "row_id", pa.array(np.arange(table.num_rows, dtype=np.int64)))
    fields = [*SCHEMA, *(pa.field(n, pa.float32()) for n in names)]
    table = table.select([f.name for f in fields]).cast(pa.schema(fields))
    by_name = {f.name: f for f in FEATURES}
    meta = IndexMeta(
        frame=FRAME,
        rmsf_unit=None,
        voxel_file="",
        features={
            n: {
                "group": by_name[n].group,
                "unit": by_name[n].unit,
                "definition": by_name[n].definition,
            }
            for n in names
            if n in by_name
        },
        feature_provenance=FeatureMeta().provenance() if names else None,
    )
    return LoadedIndex(path=Path(f"({name})"), table=table, meta=meta)
