"""The index join against an independent reference join, row by row, on random adversarial data.

The reference below is written from the rules of docs/formats.md (domain ids exactly, then by
the part before the first ``_``; a CSV residue names the HDF5 key of its number without an
insertion code; a domain whose names disagree at shift 0 is skipped as ``resid_offset`` or
``resname_mismatch``; several chains without a chain column are ``multi_chain``; every other
voxelized residue with a label and features is one ``predict`` row) in plain Python, without
voxelflex's join code. Each random domain is a small case of its own: insertion codes (a key
``54A`` beside or instead of ``54``), negative and zero numbers, gaps, several chains, shifted
or wrong CSV names, names in lower case or as force-field histidines, temperatures written
``320``, ``320.0`` or ``319.99999``, rows and columns in random order, residues without a
label or without features, HDF5 domains without CSV rows and CSV ids without HDF5 domains.
The voxels each index row points at are read through the HDF5 source and compared with the
file's dataset permuted to the canonical channel order here.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pytest

from tests._index_data import csv_rows, residues, write_csv, write_voxels
from voxelflex.errors import InputError
from voxelflex.index import build_index, read_index
from voxelflex.inputs.voxel_scan import scan_voxel_file
from voxelflex.packing import unpack_numpy
from voxelflex.sources.hdf5 import Hdf5Reader
from voxelflex.structure.features import FEATURE_NAMES, write_feature_sidecar

CANONICAL = ("C", "N", "O", "CA", "CB")
NAMES = ("ALA", "GLY", "SER", "HIS", "CYS", "LYS", "TRP", "ASP", "GLU", "VAL")
# names mdCATH's force field gives these residues (docs/formats.md, residue numbering offsets)
ALIASES = {"HIS": ("HSD", "HSE", "HIE", "HIP"), "CYS": ("CYX",), "ASP": ("ASH",), "LYS": ("LYN",)}
PDB_NAME = {a: n for n, aliases in ALIASES.items() for a in aliases}
# equal float32 temperatures written in different ways: one residue × temperature each
SPELLINGS = {
    320.0: ("320", "320.0", "319.99999", "320.00001", "3.2e2"),
    348.0: ("348", "348.000"),
    379.5: ("379.5", "3.795e2"),
    413.0: ("413",),
    450.0: ("450", "450.0", "449.999999"),
}
SHIFTS = (-2, -1, 1, 2)


@dataclass
class Domain:
    """One random case: an HDF5 domain (or none) and the CSV rows of its id."""

    csv_id: str
    key: str | None  # HDF5 domain key; None: a CSV id without voxels
    # chain -> [(resid_str, resnum, icode, label or None)]
    chains: dict[str, list[tuple[str, int, str, str | None]]] = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)  # CSV rows (chain: the CSV's chain or None)
    has_csv: bool = True
    split: str | None = None  # split the split files give it
    split_name: str | None = None  # the name it is listed under


def _residue_keys(rng: random.Random, n: int) -> list[tuple[str, int, str]]:
    """``n`` residue keys: gaps, negative and zero numbers, insertion codes beside or instead
    of the plain number."""
    keys: list[tuple[str, int, str]] = []
    num = rng.randint(-5, 3)
    while len(keys) < n:
        num += 1 if rng.random() < 0.8 else rng.randint(2, 5)
        r = rng.random()
        if r < 0.1:  # insertion codes only: the CSV cannot name these residues
            codes = ["A"] if rng.random() < 0.5 else ["A", "B"]
        elif r < 0.25:
            codes = ["", "A"] if rng.random() < 0.5 else ["", "A", "B"]
        else:
            codes = [""]
        keys += [(f"{num}{c}", num, c) for c in codes]
    return keys[:n]


def _spell_name(rng: random.Random, label: str) -> str:
    """The CSV's way of writing ``label``: as is, lower case, padded or a force-field alias."""
    r = rng.random()
    if r < 0.15:
        return label.lower()
    if r < 0.25:
        return f" {label} "
    if r < 0.5 and label in ALIASES:
        return rng.choice(ALIASES[label])
    return label


def _random_domain(rng: random.Random, i: int, *, chain_column: bool, long: bool) -> Domain:
    csv_id = f"d{i}"
    r = rng.random()
    key = csv_id if r < 0.6 else f"{csv_id}_pdb" if r < 0.8 else f"{csv_id}_1"
    d = Domain(csv_id, key)
    chain_names = rng.sample(["A", "B", "C", "a", "1"], rng.choice([1, 1, 1, 2, 3]))
    for chain in chain_names:
        n = rng.randint(1, 20 if long else 8)
        d.chains[chain] = [
            (s, num, code, None if rng.random() < 0.03 else rng.choice(NAMES))
            for s, num, code in _residue_keys(rng, n)
        ]
    r = rng.random()
    if r < 0.08:  # voxels only: every residue a predict row
        d.has_csv = False
        return d
    if r < 0.12:  # a CSV id without voxels
        d.key, d.chains = None, {}
    mode = rng.choices(["plain", "shift", "wrong", "extra"], [0.7, 0.12, 0.08, 0.1])[0]
    shift = rng.choice(SHIFTS)
    temps = rng.sample(sorted(SPELLINGS), rng.randint(1, 3))
    labelled = [(c, k) for c, ks in d.chains.items() for k in ks]
    if d.key is None:
        labelled = [("A", (str(n), n, "", rng.choice(NAMES))) for n in range(1, 4)]
    named = set()  # (CSV chain, resid): one residue a number (a repeat would be refused)
    for chain, (_, num, code, label) in labelled:
        resid = num - shift if mode == "shift" else num
        # a CSV cannot name an insertion code; it may number such a residue by its plain
        # number, which points at the plain key or at no key
        if (chain if chain_column else None, resid) in named or rng.random() < 0.15:
            continue
        if code and rng.random() < 0.5:
            continue
        named.add((chain if chain_column else None, resid))
        name = label or rng.choice(NAMES)
        if mode == "wrong" and rng.random() < 0.5:
            name = rng.choice([n for n in NAMES if n != PDB_NAME.get(name, name)])
        csv_name = _spell_name(rng, name)
        for t in temps:
            d.rows.append(
                {
                    "domain_id": f" {csv_id}" if rng.random() < 0.1 else csv_id,
                    "chain": chain if chain_column else None,
                    "resid": resid,
                    "resname": csv_name,
                    "temperature_feature": rng.choice(SPELLINGS[t]),
                    "target_rmsf": f"{rng.uniform(0.02, 0.9):.4f}",
                    "relative_accessibility": f"{rng.random():.5f}",
                    "t": t,
                }
            )
    if mode == "extra":  # CSV residues and chains the voxel file lacks
        far = max((k[1] for ks in d.chains.values() for k in ks), default=0) + 50
        for chain in [*d.chains, "Z"] if chain_column else ["A"]:
            d.rows.append(
                {
                    "domain_id": csv_id,
                    "chain": chain if chain_column else None,
                    "resid": far,
                    "resname": "GLY",
                    "temperature_feature": "320",
                    "target_rmsf": "0.5",
                    "relative_accessibility": "0.5",
                    "t": 320.0,
                }
            )
    return d


def _write_case(
    root: Path,
    rng: random.Random,
    domains: list[Domain],
    *,
    encoder: list[str],
    chain_column: bool,
    splits: bool,
    features: bool,
) -> dict:
    """Write the voxel file, the CSV, split files and a sidecar; return build_index's arguments
    and the truth: grids, feature values."""
    root.mkdir(parents=True, exist_ok=True)
    grids: dict[tuple[str, str, str], np.ndarray] = {}
    voxel_file = root / "voxels.hdf5"
    with h5py.File(voxel_file, "w") as f:
        f.attrs["atom_encoder"] = np.array(encoder, dtype="S2")
        f.attrs["frame_edge_length"] = 12.0
        for d in domains:
            if d.key is None:
                continue
            for chain, keys in d.chains.items():
                group = f.require_group(d.key).create_group(chain)
                for resid_str, _, _, label in keys:
                    grid = np.zeros((21, 21, 21, 5), dtype=bool)
                    at = rng.sample(range(grid.size), 12)
                    grid.reshape(-1)[at] = True
                    grids[d.key, chain, resid_str] = grid
                    ds = group.create_dataset(resid_str, data=grid)
                    if label is not None:
                        ds.attrs["label"] = label
    rows = [r for d in domains for r in d.rows]
    rng.shuffle(rows)
    columns = ["domain_id", "resid", "resname", "temperature_feature", "target_rmsf"]
    columns += ["relative_accessibility"]
    columns += ["chain"] if chain_column else []
    rng.shuffle(columns)
    with open(root / "rmsf.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        w.writerows([r[c] for c in columns] for r in rows)
    args: dict = {"rmsf_csv": root / "rmsf.csv", "rmsf_unit": "nm"}
    if splits:
        listed: dict[str, list[str]] = {"train": ["unknown_id"], "val": [], "test": []}
        for d in domains:
            if d.key is not None and d.rows and rng.random() < 0.85:
                d.split = rng.choice(["train", "train", "val", "test"])
                d.split_name = d.csv_id if rng.random() < 0.6 else d.key
                listed[d.split].append(d.split_name)
        for split, ids in listed.items():
            (root / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
            args[split] = root / f"{split}.txt"
    values = {}
    if features:
        table = {c: [] for c in ("domain", "chain", "resid_str", "resnum", "icode", "resname")}
        for d in domains:
            for chain, keys in (d.chains if d.key else {}).items():
                for resid_str, num, code, label in keys:
                    if label is None or rng.random() < 0.1:
                        continue  # no features: the residue is skipped
                    values[d.key, chain, resid_str] = float(len(values) + 1)
                    for c, v in zip(
                        table, (d.key, chain, resid_str, num, code, label), strict=True
                    ):
                        table[c].append(v)
        cols = {
            c: pa.array(v, pa.int32() if c == "resnum" else pa.string()) for c, v in table.items()
        }
        first = pa.array(list(values.values()), pa.float32())
        for name in FEATURE_NAMES:
            cols[name] = (
                first if name == FEATURE_NAMES[0] else pa.array(np.zeros(len(first), np.float32))
            )
        write_feature_sidecar(
            root / "features.parquet", [pa.table(cols)], altloc="first", keys="aposteriori"
        )
        args["features"] = root / "features.parquet"
    return {"voxel_file": voxel_file, "args": args, "grids": grids, "features": values}


def _canon(name: str) -> str:
    name = name.strip().upper()
    return PDB_NAME.get(name, name)


def _agreement(csv_res: dict, labels: dict, shift: int) -> tuple[int, int]:
    """Residues compared and residues whose names agree, CSV resid + ``shift`` = HDF5 number."""
    pairs = [
        (_canon(rows[0]["resname"]), _canon(labels[chain, resid + shift]))
        for (chain, resid), rows in csv_res.items()
        if (chain, resid + shift) in labels
    ]
    return len(pairs), sum(a == b for a, b in pairs)


def _reference(
    domains: list[Domain],
    *,
    chain_column: bool,
    splits: bool,
    features: dict | None,
    sampled: set | None,
):
    """The index rows and domain-level skip lines the documented rules give, in plain Python.

    ``sampled`` holds the ``(domain, chain, resid_str)`` whose label the quick scan read for
    the per-domain numbering check (None: every label, as in a deep scan).

    Returns ``rows``: ``(split, domain, domain_id, chain, resid_str, resnum, icode, resname,
    temperature, target_rmsf, relative_accessibility)`` per index row (floats as float32, NaN
    for predict), and ``skips``: ``(reason, domain or domain_id)``.
    """
    ids = {d.csv_id for d in domains if d.rows}
    rows, skips = [], set()
    for d in domains:
        if d.key is None:
            if d.rows:
                skips.add(("not_in_hdf5", d.csv_id))
            continue
        # the CSV id the HDF5 key maps to: exactly, else the part before the first "_"
        mapped = d.key if d.key in ids else d.key.split("_", 1)[0]
        mapped = mapped if mapped in ids else None
        usable = {
            (chain, s): (num, code, label)
            for chain, keys in d.chains.items()
            for s, num, code, label in keys
            if label is not None and (features is None or (d.key, chain, s) in features)
        }
        targets: dict[tuple[str, str], list[dict]] = {}
        split = None
        if mapped is None:
            if usable:
                skips.add(("no_rmsf", d.key))
        elif not chain_column and len(d.chains) > 1:
            skips.add(("multi_chain", d.key))
        else:
            only = next(iter(d.chains))
            # chain, resid -> CSV rows
            csv_res: dict[tuple[str, int], list[dict]] = {}
            for r in d.rows:
                csv_res.setdefault((r["chain"] or only, r["resid"]), []).append(r)
            labels = {
                (chain, num): label
                for chain, keys in d.chains.items()
                for s, num, code, label in keys
                if code == ""
                and label is not None
                and (sampled is None or (d.key, chain, s) in sampled)
            }
            compared, matched = _agreement(csv_res, labels, 0)
            shifted = [
                s
                for s in SHIFTS
                if 0 < _agreement(csv_res, labels, s)[0] == _agreement(csv_res, labels, s)[1]
            ]
            if matched < compared or (compared == 0 and shifted):
                skips.add(("resid_offset" if shifted else "resname_mismatch", d.key))
            else:
                split = d.split if splits else "train"
                if split is None:
                    skips.add(("no_split", d.key))
                else:
                    plain = {(c, num): s for (c, s), (num, code, _) in usable.items() if not code}
                    for (c, r), rs in csv_res.items():
                        s = plain.get((c, r))
                        if s is not None and all(
                            _canon(x["resname"]) == _canon(usable[c, s][2]) for x in rs
                        ):
                            targets[c, s] = rs
        domain_id = mapped or d.key
        for (c, s), (num, code, label) in usable.items():
            if (c, s) in targets:
                rows += [
                    (
                        split,
                        d.key,
                        domain_id,
                        c,
                        s,
                        num,
                        code,
                        x["resname"].strip().upper(),
                        np.float32(x["t"]),
                        np.float32(float(x["target_rmsf"])),
                        np.float32(float(x["relative_accessibility"])),
                    )
                    for x in targets[c, s]
                ]
            else:
                rows.append(
                    ("predict", d.key, domain_id, c, s, num, code, label, np.nan, np.nan, np.nan)
                )
    return rows, skips


_ORDER = {"train": 0, "val": 1, "test": 2, "predict": 3}


def _sort_key(row):
    split, domain, _, chain, _, resnum, icode, _, t, *_ = row
    return (_ORDER[split], domain, chain, resnum, icode, -1.0 if np.isnan(t) else float(t))


def _rows_of(table: pa.Table) -> list[tuple]:
    cols = ["split", "domain", "domain_id", "chain", "resid_str", "resnum", "icode", "resname"]
    out = [table[c].to_pylist() for c in cols]
    out += [
        pc.fill_null(table[c], np.nan).to_numpy(zero_copy_only=False)
        for c in ("temperature", "target_rmsf", "relative_accessibility")
    ]
    return list(zip(*out, strict=True))


def _normal(row: tuple) -> tuple:
    """A row with its floats as float32 values, NaN as None (comparable and hashable)."""
    return (*row[:8], *(None if np.isnan(x) else float(np.float32(x)) for x in row[8:]))


# (chain column, split files, deep scan, feature sidecar, long chains, channel order)
CONFIGS = [
    (False, False, False, False, False, ["C", "N", "O", "CA", "CB"]),
    (True, True, False, False, True, ["C", "N", "O", "CB", "CA"]),
    (False, True, True, True, True, ["CB", "O", "CA", "N", "C"]),
    (True, False, True, True, True, ["N", "CA", "C", "O", "CB"]),
    (True, True, True, False, True, ["CA", "CB", "C", "N", "O"]),
]
DOMAINS_PER_BUILD = 44  # 5 builds: 220 random domains


@pytest.mark.parametrize("config", range(len(CONFIGS)))
def test_index_join_matches_an_independent_reference(tmp_path, config):
    chain_column, splits, deep, features, long, encoder = CONFIGS[config]
    rng = random.Random(1000 + config)
    domains = [
        _random_domain(rng, i, chain_column=chain_column, long=long)
        for i in range(DOMAINS_PER_BUILD)
    ]
    case = _write_case(
        tmp_path,
        rng,
        domains,
        encoder=encoder,
        chain_column=chain_column,
        splits=splits,
        features=features,
    )
    report = build_index(
        case["voxel_file"], tmp_path / "index.parquet", deep=deep, progress=False, **case["args"]
    )
    table = read_index(report.index_path).table
    # which labels a quick scan reads for the numbering check is the scan's choice (a sample
    # per chain): taken from it; the residue-level check must catch every other mismatch
    labels = None if deep else scan_voxel_file(case["voxel_file"], progress=False).labels
    expected, expected_skips = _reference(
        domains,
        chain_column=chain_column,
        splits=splits,
        features=case["features"] or None,
        sampled=None
        if labels is None
        else set(
            zip(*(labels[c].to_pylist() for c in ("domain", "chain", "resid_str")), strict=True)
        ),
    )
    got = _rows_of(table)
    # the index's own order is the documented sort
    assert table["row_id"].to_pylist() == list(range(table.num_rows))
    assert [_sort_key(r) for r in got] == sorted(_sort_key(r) for r in got)
    got_rows = sorted(map(_normal, got), key=str)
    want = sorted(map(_normal, expected), key=str)
    missing, extra = sorted(set(want) - set(got_rows)), sorted(set(got_rows) - set(want))
    assert not missing and not extra, (len(got), len(want), missing[:5], extra[:5])
    assert got_rows == want  # no row twice

    skip = pcsv.read_csv(
        report.skip_table_path,
        convert_options=pcsv.ConvertOptions(
            column_types={"resid": pa.string()}, strings_can_be_null=True
        ),
    ).to_pylist()
    domain_level = {"not_in_hdf5", "no_rmsf", "multi_chain", "resid_offset", "resname_mismatch"}
    got_skips = {
        (s["reason"], s["domain"] or s["domain_id"])
        for s in skip
        if s["kind"] == "domain" and s["reason"] in domain_level | {"no_split"}
    }
    assert got_skips == expected_skips

    # each row's voxels: the file's dataset of its key, channels put in canonical order here
    reader = Hdf5Reader(case["voxel_file"])
    to_canonical = [encoder.index(name) for name in CANONICAL]
    for domain in sorted(set(table["domain"].to_pylist())):
        rows = table.filter(pc.equal(table["domain"], domain))
        chains = np.asarray(rows["chain"].to_pylist(), dtype=object)
        resids = np.asarray(rows["resid_str"].to_pylist(), dtype=object)
        grids = unpack_numpy(reader.read_domain(domain, chains, resids))
        files = np.stack([case["grids"][domain, c, s] for c, s in zip(chains, resids, strict=True)])
        np.testing.assert_array_equal(grids, files[..., to_canonical].transpose(0, 4, 1, 2, 3))
    reader.close()
    if features:
        keys = zip(
            table["domain"].to_pylist(),
            table["chain"].to_pylist(),
            table["resid_str"].to_pylist(),
            strict=True,
        )
        assert table[FEATURE_NAMES[0]].to_pylist() == [case["features"][k] for k in keys]


@pytest.mark.parametrize("twin", ["320.0", "319.99999", "3.2e2"])
def test_one_temperature_written_twice_is_refused(tmp_path, twin):
    # equal in float32, as the index keeps temperatures: two targets for one residue × T
    voxels = write_voxels(tmp_path / "v.h5", {"d": {"A": residues("ALA GLY")}})
    rows = [*csv_rows("d", "ALA GLY", temps=(320,)), ("d", 2, "GLY", twin, 0.3)]
    with pytest.raises(InputError, match=r"duplicated .* resid 2 at 320 K on lines \[3, 4\]"):
        build_index(
            voxels,
            tmp_path / "i.parquet",
            rmsf_csv=write_csv(tmp_path / "r.csv", rows),
            rmsf_unit="nm",
            progress=False,
        )
