"""One mdCATH domain file → what it contributes to a voxelflex dataset (:class:`DomainPart`).

The file is read for what is needed (:mod:`voxelflex.datasets.mdcath_file`), its structure
renamed from CHARMM (:mod:`voxelflex.datasets.charmm`), then voxelized and featurized from the
same reading; RMSF rows are the replica mean per residue and temperature. Everything not used
becomes a report line with one reason (:data:`SKIP_REASONS`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import biotite.structure as struc
import numpy as np
import pyarrow as pa

from voxelflex.datasets.charmm import rename_charmm
from voxelflex.datasets.mdcath_file import (
    MDCATH_REPLICAS,
    MDCATH_TEMPERATURES,
    MdcathDomain,
    read_mdcath_domain,
)
from voxelflex.datasets.parts import DomainPart
from voxelflex.errors import DomainRefused, VoxelflexError
from voxelflex.quantities import ANGSTROM_PER
from voxelflex.structure.features import (
    FeatureMeta,
    compute_features,
    feature_table,
)
from voxelflex.structure.frames import compute_frames
from voxelflex.structure.hdf5 import VOXELIZER_VERSION, compress_frames
from voxelflex.structure.io import parse_structure

__all__ = [
    "ROW_SCHEMA",
    "SKIP_REASONS",
    "SKIP_SCHEMA",
    "ImportSettings",
    "import_domain",
    "skip_line",
]

log = logging.getLogger(__name__)

ROW_SCHEMA = pa.schema(
    [
        ("domain_id", pa.string()),
        ("chain", pa.string()),
        ("resid", pa.int64()),
        ("resname", pa.string()),
        ("temperature_feature", pa.float64()),
        # float32: mdCATH stores float32, and the CSV then shows 0.484, not 0.48399998545646666
        ("target_rmsf", pa.float32()),
        ("target_rmsf_std", pa.float32()),
        ("n_replicas", pa.int8()),
        ("dssp", pa.string()),
    ]
)
SKIP_SCHEMA = pa.schema(
    [
        ("domain", pa.string()),
        ("chain", pa.string()),
        ("resid", pa.string()),
        ("temperature", pa.float64()),
        ("reason", pa.string()),
        ("detail", pa.string()),
    ]
)
SKIP_REASONS = {
    "unreadable_file": "the file is not readable HDF5 (domain refused)",
    "not_mdcath": "not in mdCATH's layout (domain refused)",
    "residue_count_mismatch": "RMSF, DSSP or structure residue counts disagree (domain refused)",
    "residue_order_mismatch": "pdbProteinAtoms and mdCATH's per-atom resid disagree on which "
    "residue is where (domain refused)",
    "unreadable_structure": "pdbProteinAtoms does not parse (domain refused)",
    "features_failed": "structure features could not be computed (domain refused)",
    "no_frames": "no residue of the structure has N, CA and C: nothing to voxelize (domain "
    "refused)",
    "duplicate_domain": "a second file of a domain already imported (file refused)",
    "no_temperature": "none of the requested temperatures is in the file (domain refused)",
    "missing_temperature": "a requested temperature has no replica (its rows are absent)",
    "missing_replica": "a requested replica is absent (the mean is over the others)",
    "nan_replica": "a replica has NaN, infinite or negative RMSF values (dropped; mean over the "
    "others)",
    "no_dssp_replica": "a replica has no dssp (the majority code is over the others; empty when "
    "no replica has one)",
    "no_finite_rmsf": "no replica has a finite value for this residue and temperature (no row)",
    "insertion_code": "a residue with an insertion code: the CSV's integer resid cannot name it",
    "not_voxelized": "the voxelizer gave the residue no frame (its rows stay in the CSV, unless "
    "its key holds another residue's frame)",
    "no_split": "an imported domain in none of the split files (not trained or tested on)",
    "split_domain_absent": "a split file lists a domain that was not imported",
}


@dataclass(frozen=True)
class ImportSettings:
    """What a part depends on; a resumed import must use the same.

    Attributes
    ----------
    temperatures : tuple of int
        Kelvin.
    replicas : tuple of int
        Replica groups averaged.
    rmsf_unit : {"nm", "angstrom"}
        Unit of the CSV's RMSF (mdCATH stores nm).
    """

    temperatures: tuple[int, ...] = MDCATH_TEMPERATURES
    replicas: tuple[int, ...] = MDCATH_REPLICAS
    rmsf_unit: str = "nm"

    def to_dict(self) -> dict:
        """The settings plus the versions of the voxelizer and the features."""
        return {
            **dataclasses.asdict(self),
            "voxelizer_version": VOXELIZER_VERSION,
            "features": json.loads(FeatureMeta().to_json()),
        }

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def skip_line(
    domain: str,
    reason: str,
    detail: str = "",
    chain: str = "",
    resid: str = "",
    temperature: float | None = None,
) -> dict:
    """One report line (:data:`SKIP_SCHEMA`)."""
    return {
        "domain": domain,
        "chain": chain,
        "resid": resid,
        "temperature": temperature,
        "reason": reason,
        "detail": detail,
    }


def _rows_and_skips(
    data: MdcathDomain,
    chain: np.ndarray,
    resnum: np.ndarray,
    icode: np.ndarray,
    resname: np.ndarray,
    unit_factor: float,
    framed_elsewhere: np.ndarray,
) -> tuple[pa.Table, list[dict]]:
    """RMSF rows (residues in file order, each with its temperatures ascending) and the report
    lines of what did not make a row. Residues ``framed_elsewhere`` (their voxel key holds
    another residue's frame; the frames' ``not_voxelized`` line names them) get no row."""
    dom = data.domain
    skips = [
        skip_line(dom, "missing_temperature", f"no replica of {t} K in the file", temperature=t)
        for t in data.missing_temperatures
    ]
    coded = icode != ""
    for i in np.flatnonzero(coded):
        where = f"{resnum[i]}{icode[i]}"
        skips.append(skip_line(dom, "insertion_code", f"{where} ({resname[i]})", chain[i], where))
    pos, temp, mean, std, n, dssp = [], [], [], [], [], []
    for s in data.temperatures:
        t = float(s.temperature)
        with_dssp = sorted(set(s.used) - set(s.no_dssp))
        replica_lines = (
            ("missing_replica", s.missing, f"absent; mean over {list(s.used)}"),
            ("nan_replica", s.with_nan, "non-finite or negative values dropped from the mean"),
            ("no_dssp_replica", s.no_dssp, f"no dssp; majority code over {with_dssp}"),
        )
        skips += [
            skip_line(dom, reason, f"replica {r}: {detail}", temperature=t)
            for reason, reps, detail in replica_lines
            for r in reps
        ]
        finite = np.isfinite(s.mean)
        skips += [
            skip_line(
                dom,
                "no_finite_rmsf",
                f"replicas {list(s.used)} all non-finite",
                chain[i],
                str(resnum[i]),
                t,
            )
            for i in np.flatnonzero(~finite & ~coded & ~framed_elsewhere)
        ]
        keep = np.flatnonzero(finite & ~coded & ~framed_elsewhere)
        pos.append(keep)
        temp.append(np.full(len(keep), t))
        mean.append(s.mean[keep])
        std.append(s.std[keep])
        n.append(s.n[keep])
        dssp.append(s.dssp[keep])
    if not data.temperatures:
        return ROW_SCHEMA.empty_table(), skips
    pos, temp = np.concatenate(pos), np.concatenate(temp)
    order = np.lexsort((temp, pos))
    pos = pos[order]
    columns = {
        "domain_id": pa.array(np.full(len(pos), dom)),
        "chain": chain[pos],
        "resid": resnum[pos],
        "resname": resname[pos],
        "temperature_feature": temp[order],
        "target_rmsf": np.concatenate(mean)[order] * unit_factor,
        # NaN (one replica) becomes an empty CSV field, not "nan"
        "target_rmsf_std": pa.array(np.concatenate(std)[order] * unit_factor, from_pandas=True),
        "n_replicas": np.concatenate(n)[order],
        "dssp": np.concatenate(dssp)[order],
    }
    arrays = [
        c.cast(f.type) if isinstance(c, pa.Array) else pa.array(c, type=f.type)
        for f, c in ((f, columns[f.name]) for f in ROW_SCHEMA)
    ]
    return pa.Table.from_arrays(arrays, schema=ROW_SCHEMA), skips


def _numbering_offset(data: MdcathDomain, atoms: struc.AtomArray, path: str) -> int | None:
    """mdCATH's per-atom ``resid`` minus the PDB text's residue number, the same for every atom
    (0: the same numbering); None when the file has no per-atom ``resid`` or its atom count is
    not the PDB text's (nothing to compare atom by atom).

    Raises
    ------
    DomainRefused
        ``residue_order_mismatch``: the difference varies, so the two disagree on which residue
        is where, and the ``rmsf`` arrays (in the order of the per-atom ``resid``) could not be
        matched to the PDB text's residues.
    """
    if len(data.atom_resid) != atoms.array_length():
        return None
    diff = data.atom_resid - atoms.res_id.astype(np.int64)
    if not len(diff) or (diff == diff[0]).all():
        return int(diff[0]) if len(diff) else 0
    i = int(np.flatnonzero(diff != diff[0])[0])
    raise DomainRefused(
        "residue_order_mismatch",
        f"{path}: atom {i + 1} of pdbProteinAtoms belongs to {atoms.res_name[i]} "
        f"{atoms.res_id[i]}{atoms.ins_code[i]} but mdCATH's per-atom resid there is "
        f"{data.atom_resid[i]} (resid minus residue number: {diff[0]} at atom 1, {diff[i]} "
        "there); the two disagree on which residue is where, so rmsf[i] could not be matched "
        "to its residue",
    )


def refused_part(source: str, domain: str, exc: DomainRefused, settings: str) -> DomainPart:
    skips = pa.Table.from_pylist([skip_line(domain, exc.reason, exc.detail)], schema=SKIP_SCHEMA)
    meta = {"domain": domain, "source": source, "settings": settings, "refused": exc.reason}
    return DomainPart(meta, None, ROW_SCHEMA.empty_table(), None, skips)


def import_domain(path: str, settings: ImportSettings) -> DomainPart:
    """Everything one mdCATH file contributes (a refused domain: one report line).

    Parameters
    ----------
    path : str
        ``mdcath_dataset_{domain}.h5``.
    settings : ImportSettings
    """
    seconds = Counter()
    t0 = time.perf_counter()
    fallback = Path(path).name.removeprefix("mdcath_dataset_").split(".")[0]
    digest = settings.digest()
    try:
        data = read_mdcath_domain(
            path, temperatures=settings.temperatures, replicas=settings.replicas
        )
    except DomainRefused as exc:
        return refused_part(path, fallback, exc, digest)
    dom = data.domain
    if not data.temperatures:
        exc = DomainRefused(
            "no_temperature", f"{path}: none of {list(settings.temperatures)} K has a replica"
        )
        return refused_part(path, dom, exc, digest)
    t1 = time.perf_counter()
    try:
        structure = parse_structure(data.pdb_text, f"{dom}.pdb")
        t2 = time.perf_counter()
        renamed = rename_charmm(structure.atoms, where=path)
    except DomainRefused as exc:
        return refused_part(path, dom, exc, digest)
    except VoxelflexError as exc:
        exc = DomainRefused("unreadable_structure", f"{path}: {exc}")
        return refused_part(path, dom, exc, digest)
    atoms = structure.resolved()
    starts = struc.get_residue_starts(atoms)
    if len(starts) != data.n_residues:
        exc = DomainRefused(
            "residue_count_mismatch",
            f"{path}: pdbProteinAtoms has {len(starts)} residues but numResidues (and each rmsf "
            f"array) {data.n_residues}; rmsf[i] could not be matched to its residue",
        )
        return refused_part(path, dom, exc, digest)
    first = atoms[starts]
    keys = Counter(
        zip(first.chain_id.tolist(), first.res_id.tolist(), first.ins_code.tolist(), strict=True)
    )
    repeated = [k for k, c in keys.items() if c > 1]
    if repeated:
        chain, number, icode = repeated[0]
        exc = DomainRefused(
            "residue_count_mismatch",
            f"{path}: {len(repeated)} residue numbers of pdbProteinAtoms name more than one "
            f"residue, e.g. chain {chain} {number}{icode}; the voxelizer takes each number as "
            f"one residue ({len(keys)} in all, numResidues {data.n_residues}), so rmsf[i] "
            "could not be matched to its residue",
        )
        return refused_part(path, dom, exc, digest)
    try:
        offset = _numbering_offset(data, structure.atoms, path)
    except DomainRefused as exc:
        return refused_part(path, dom, exc, digest)
    t3 = time.perf_counter()
    frames = compute_frames(structure, keys="aposteriori")
    if len(frames.chains) == 0:
        exc = DomainRefused(
            "no_frames",
            f"{path}: no residue has N, CA and C, so nothing can be voxelized ("
            + "; ".join(f"{s.reason}: {s.detail}" for s in frames.skipped[:3])
            + ")",
        )
        return refused_part(path, dom, exc, digest)
    t4 = time.perf_counter()
    compressed = compress_frames(frames)
    t5 = time.perf_counter()
    try:
        features = feature_table(dom, compute_features(atoms, where=path), frames)
    except VoxelflexError as exc:
        return refused_part(path, dom, DomainRefused("features_failed", f"{path}: {exc}"), digest)
    t6 = time.perf_counter()
    chain, resname = atoms.chain_id[starts].astype(str), atoms.res_name[starts].astype(str)
    resnum, icode = atoms.res_id[starts].astype(np.int64), atoms.ins_code[starts].astype(str)
    factor = ANGSTROM_PER["nm"] / ANGSTROM_PER[settings.rmsf_unit]  # mdCATH's nm to the CSV's
    # The insertion code of the residue whose frame each (chain, number) key holds: a residue
    # after 44A numbered 44 has no frame, and a row for it would be joined to 44A's grid.
    owner = dict(
        zip(
            zip(frames.chains.tolist(), frames.resnums.tolist(), strict=True),
            frames.icodes.tolist(),
            strict=True,
        )
    )
    elsewhere = np.array(
        [owner.get(k[:2], k[2]) != k[2] for k in zip(chain, resnum.tolist(), icode, strict=True)],
        dtype=bool,
    )
    rows, skips = _rows_and_skips(data, chain, resnum, icode, resname, factor, elsewhere)
    skips += [
        skip_line(dom, "not_voxelized", f"{s.reason}: {s.detail}", s.chain, s.resid)
        for s in frames.skipped
    ]
    seconds.update(
        read=t1 - t0,
        parse=t2 - t1,
        rename=t3 - t2,
        frames=t4 - t3,
        compress=t5 - t4,
        features=t6 - t5,
        rows=time.perf_counter() - t6,
    )
    meta = {
        "domain": dom,
        "source": path,
        "settings": digest,
        "residues": data.n_residues,
        "voxelized": len(frames),
        "renamed": dict(renamed),
        "numbering_offset": offset,
        "seconds": dict(seconds),
    }
    return DomainPart(
        meta, compressed, rows, features, pa.Table.from_pylist(skips, schema=SKIP_SCHEMA)
    )
