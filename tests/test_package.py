"""Package-level behaviour: entry points and process settings made at import."""

import ast
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path


def _run(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def test_import_makes_idle_openmp_threads_sleep_unless_the_user_chose():
    code = "import voxelflex, os; print(os.environ['OMP_WAIT_POLICY'])"
    assert _run(code) == "PASSIVE"
    assert _run(code, OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"


def test_python_dash_m_voxelflex_lists_every_command():
    out = subprocess.run(
        [sys.executable, "-m", "voxelflex", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in (
        "index",
        "shards",
        "preprocess",
        "train",
        "predict",
        "evaluate",
        "plot",
        "demo",
    ):
        assert command in out


def test_the_real_set_tools_write_what_they_keep_atomically():
    """build_real_set.py, experiment.py and baselines.py wrote the set, hours of experiment
    results and reports with plain writes: a kill mid-write left a truncated file that looked
    whole (and the earlier manifest beside a half-rebuilt set)."""
    plain = []
    for path in sorted((Path(__file__).parents[1] / "tools" / "real_set").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "attr", getattr(node.func, "id", None))
            modes = [a.value for a in node.args[1:2] if isinstance(a, ast.Constant)]
            if name in ("write_text", "write_bytes") or (name == "open" and "w" in "".join(modes)):
                plain.append(f"{path.name}:{node.lineno}")
    assert plain == []


def test_the_real_set_lists_name_pinned_sdists_and_the_committed_splits(monkeypatch):
    """Every entry of the real set names a pinned sdist (a second version of a package by its
    ``package==version`` key), no PDB id is listed twice, and the committed split lists and
    manifest agree with the lists in build_real_set.py for every held-out split, the fourth
    hold-out's included (the third pins second versions of six packages beside the first)."""
    folder = Path(__file__).parents[1] / "tools" / "real_set"
    spec = importlib.util.spec_from_file_location("build_real_set", folder / "build_real_set.py")
    build = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, build)  # its dataclasses look their module up
    spec.loader.exec_module(build)
    listed = [*build.ENTRIES, *(e for entries, _ in build.HELD_OUT.values() for e in entries)]
    assert {key for _, key, _ in listed} <= set(build.SDISTS)
    assert all(key == s.key for key, s in build.SDISTS.items())
    ids = [pdb_id for pdb_id, _, _ in listed]
    assert len(ids) == len(set(ids))
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert set(manifest["sdists"]) == set(build.SDISTS)
    for split, (entries, _) in build.HELD_OUT.items():
        committed = [
            line for line in (folder / f"{split}.txt").read_text().splitlines() if line[:1] != "#"
        ]
        kept = sorted(i for i, e in manifest["entries"].items() if e["split"] == split)
        assert committed == kept
        assert set(kept) <= {pdb_id for pdb_id, _, _ in entries}
