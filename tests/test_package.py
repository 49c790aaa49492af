"""Package-level behaviour: entry points and process settings made at import."""

import os
import subprocess
import sys


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
