"""Package-level behaviour: entry points and process settings made at import."""

import ast
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
