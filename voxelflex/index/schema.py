"""Schema and metadata of the sample index (one Parquet table, one row per residue × temperature).

Rows are sorted by ``split`` (train, val, test, predict), then ``domain``, ``chain``, ``resnum``,
``icode``, ``temperature``, so a domain's rows are contiguous and a residue's temperatures are
adjacent. ``row_id`` is the row's position in that order and traces any batch back to the index.

Rows of split ``predict`` describe residues without a target: one row per residue with
``temperature`` and ``target_rmsf`` NaN; temperatures are chosen at prediction time.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import pyarrow as pa

from voxelflex.errors import IndexFormatError
from voxelflex.frame import FrameSpec
from voxelflex.inputs.rmsf_csv import OPTIONAL_COLUMNS
from voxelflex.structure.features import FeatureProvenance

__all__ = [
    "FORMAT_VERSION",
    "METADATA_KEY",
    "OPTIONAL_COLUMNS",
    "SCHEMA",
    "SPLITS",
    "IndexMeta",
]

FORMAT_VERSION = 1
METADATA_KEY = b"voxelflex.index"
SPLITS = ("train", "val", "test", "predict")

SCHEMA = pa.schema(
    [
        ("row_id", pa.int64()),  # position in the sorted table
        ("split", pa.string()),  # one of SPLITS
        ("domain", pa.string()),  # HDF5 key of the domain
        ("domain_id", pa.string()),  # id in the RMSF CSV / split files (often == domain)
        ("chain", pa.string()),
        ("resid_str", pa.string()),  # HDF5 residue key as written
        ("resnum", pa.int32()),
        ("icode", pa.string()),  # insertion code, "" for aposteriori files
        ("resname", pa.string()),  # 3-letter name: CSV `resname`, HDF5 `label` for predict
        ("temperature", pa.float32()),  # K; NaN for split `predict`
        ("target_rmsf", pa.float32()),  # in IndexMeta.rmsf_unit; NaN when unknown
    ]
)


@dataclass(frozen=True)
class IndexMeta:
    """Metadata stored in the Parquet footer under :data:`METADATA_KEY`.

    Attributes
    ----------
    frame : FrameSpec
        Frame of the voxel file the index was built from.
    rmsf_unit : str or None
        ``"nm"`` or ``"angstrom"``; None for a prediction-only index.
    voxel_file : str
        Absolute path of the voxel HDF5.
    fingerprints : dict
        Per input file: size, mtime and, for the HDF5, a hash of its key listing.
    temperature_range : tuple of float or None
        (min, max) temperature in K over the train split.
    counts : dict
        Rows per split, and number of skipped items.
    features : dict
        Per-residue feature columns joined from a feature sidecar: name → its ``group``,
        ``unit`` and ``definition``; empty without a sidecar.
    split_ids : dict
        Split → the domain ids it was given (the split files' ids as listed; without split
        files, every RMSF CSV id under ``train``), so a split-wide ``predict`` can report those
        the index holds no rows of; empty for a prediction index (or one built before).
    feature_provenance : FeatureProvenance or None
        The sidecar's format version, parameters and biotite version, which a checkpoint
        trained with features compares with its own; None without a sidecar (or for an index
        built before it was recorded).
    format_version : int
    """

    frame: FrameSpec
    rmsf_unit: str | None
    voxel_file: str
    fingerprints: dict = field(default_factory=dict)
    temperature_range: tuple[float, float] | None = None
    counts: dict = field(default_factory=dict)
    features: dict = field(default_factory=dict)
    split_ids: dict = field(default_factory=dict)
    feature_provenance: FeatureProvenance | None = None
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(
            {
                "format_version": self.format_version,
                "frame": self.frame.to_dict(),
                "rmsf_unit": self.rmsf_unit,
                "voxel_file": self.voxel_file,
                "fingerprints": self.fingerprints,
                "temperature_range": list(self.temperature_range)
                if self.temperature_range
                else None,
                "counts": self.counts,
                "features": self.features,
                "split_ids": self.split_ids,
                "feature_provenance": None
                if self.feature_provenance is None
                else self.feature_provenance.to_dict(),
            },
            sort_keys=True,
        )

    def fingerprint(self) -> str:
        """Short hash of what the index holds (its input fingerprints, counts, unit, frame,
        temperature range): checkpoints record it, and ``--resume`` compares it."""
        payload = {
            "fingerprints": self.fingerprints,
            "counts": self.counts,
            "rmsf_unit": self.rmsf_unit,
            "frame": self.frame.to_dict(),
            "temperature_range": list(self.temperature_range) if self.temperature_range else None,
        }
        text = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def input_paths(self) -> dict[str, str]:
        """Input name (``voxel_file``, ``rmsf_csv``, ``train_split`` ...) → absolute path."""
        return {name: fp["path"] for name, fp in self.fingerprints.items()}

    @classmethod
    def from_json(cls, text: str | bytes, *, where: str) -> IndexMeta:
        fix = "rebuild it with `voxelflex index build`"
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise IndexFormatError(
                f"{where}: index metadata is not valid JSON ({exc}); {fix}"
            ) from exc
        version = d.get("format_version")
        if version != FORMAT_VERSION:
            raise IndexFormatError(
                f"{where}: index format version {version} unsupported, expected "
                f"{FORMAT_VERSION}; {fix}"
            )
        try:
            if "path" not in d["fingerprints"]["voxel_file"]:  # read_meta checks that file
                raise KeyError("fingerprints.voxel_file.path")
            tr = d.get("temperature_range")
            meta = cls(
                frame=FrameSpec.from_dict(d["frame"]),
                rmsf_unit=d.get("rmsf_unit"),
                voxel_file=d["voxel_file"],
                fingerprints=dict(d["fingerprints"]),
                temperature_range=(float(tr[0]), float(tr[1])) if tr else None,
                counts=d.get("counts", {}),
                features=dict(d.get("features") or {}),
                split_ids={k: list(v) for k, v in (d.get("split_ids") or {}).items()},
                feature_provenance=None
                if d.get("feature_provenance") is None
                else FeatureProvenance.from_dict(d["feature_provenance"]),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise IndexFormatError(
                f"{where}: index metadata field missing or malformed ({exc!r}); {fix}"
            ) from exc
        return meta
