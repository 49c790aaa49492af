"""tools/aposteriori_reference.py makes aposteriori's venv only where it may: never in a user's
folder (``--venv .venv`` once wiped the project's venv), and a failed install is a message.
subprocess is faked: nothing is installed, nothing is downloaded."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location(
    "aposteriori_reference", ROOT / "tools" / "aposteriori_reference.py"
)
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)


@pytest.fixture
def commands(monkeypatch):
    """The commands run, faked: the probe fails (aposteriori not importable), ``venv --clear``
    empties the folder and makes ``bin/python`` and ``pyvenv.cfg``, and a step fails (after
    that) when the test puts its name (``"venv"``, ``"pip"``) in ``failing``. The running
    Python is the one the venv needs."""
    monkeypatch.setattr(tool, "VENV_PYTHON", sys.version_info[:2])
    ran: list[list[str]] = []
    failing: set[str] = set()

    def run(command, check=False, **kwargs):
        command = [str(c) for c in command]
        ran.append(command)
        step = "venv" if "venv" in command else "pip" if "pip" in command else "probe"
        returncode = 1 if step in failing or (step == "probe" and "capture_output" in kwargs) else 0
        if step == "venv":
            venv = Path(command[-1])
            shutil.rmtree(venv, ignore_errors=True)
            (venv / "bin").mkdir(parents=True)
            (venv / "bin" / "python").write_text("")
            (venv / "pyvenv.cfg").write_text("")
        if check and returncode:
            raise subprocess.CalledProcessError(returncode, command)
        return subprocess.CompletedProcess(command, returncode)

    monkeypatch.setattr(tool.subprocess, "run", run)
    return ran, failing


@pytest.mark.parametrize(
    "files",
    [["data/notes.txt", "README"], ["bin/python", "pyvenv.cfg"]],
    ids=["a user's folder", "a venv it did not make"],
)
def test_an_existing_folder_it_did_not_make_is_refused_and_left_as_it_is(files, commands, tmp_path):
    venv = tmp_path / "myenv"
    for name in files:
        (venv / name).parent.mkdir(parents=True, exist_ok=True)
        (venv / name).write_text(f"{name} of the user")
    with pytest.raises(SystemExit, match="new or empty folder") as err:
        tool.ensure_venv(venv)
    assert f"--venv {venv}" in str(err.value)
    assert not [c for c in commands[0] if "venv" in c or "pip" in c]
    assert sorted(str(p.relative_to(venv)) for p in venv.rglob("*") if p.is_file()) == sorted(files)
    assert all((venv / name).read_text() == f"{name} of the user" for name in files)


@pytest.mark.parametrize("state", ["absent", "empty", "made by the tool"])
def test_a_new_empty_or_own_folder_is_made_into_the_venv_and_marked(state, commands, tmp_path):
    venv = tmp_path / "myenv"
    if state != "absent":
        venv.mkdir()
    if state == "made by the tool":
        (venv / tool.VENV_MARKER).write_text("")
        (venv / "lib").mkdir()  # a broken install: the probe fails
    assert tool.ensure_venv(venv) == venv / "bin" / "python"
    steps = [c[2] if c[1] == "-m" else "probe" for c in commands[0]]
    assert [s for s in steps if s != "probe"] == ["venv", "pip", "pip"] and steps[-1] == "probe"
    assert (venv / tool.VENV_MARKER).is_file()


def test_a_failed_pip_install_names_the_command_and_what_to_check(commands, tmp_path):
    commands[1].add("pip")
    with pytest.raises(SystemExit) as err:
        tool.ensure_venv(tmp_path / "myenv")
    message = str(err.value)
    assert "-m pip install" in message and "numpy==1.23.5" in message
    assert "PyPI" in message and "C compiler" in message and "Cython" in message
    # the folder it made stays marked as its own: the rerun remakes it
    assert (tmp_path / "myenv" / tool.VENV_MARKER).is_file()


def test_a_venv_step_failing_part_way_leaves_the_folder_marked_and_the_rerun_remakes_it(
    commands, tmp_path
):
    """Debian without python3-venv: ensurepip fails after ``bin/`` and ``pyvenv.cfg`` exist."""
    venv = tmp_path / "myenv"
    commands[1].add("venv")
    with pytest.raises(SystemExit, match="python3-venv"):
        tool.ensure_venv(venv)
    assert (venv / "pyvenv.cfg").is_file() and (venv / tool.VENV_MARKER).is_file()
    commands[1].clear()
    assert tool.ensure_venv(venv) == venv / "bin" / "python"
    assert (venv / tool.VENV_MARKER).is_file()


def test_another_python_than_the_venvs_is_refused_before_anything_is_made(
    commands, monkeypatch, tmp_path
):
    monkeypatch.setattr(tool, "VENV_PYTHON", (2, 7))
    with pytest.raises(SystemExit) as err:
        tool.ensure_venv(tmp_path / "myenv")
    message = str(err.value)
    running = ".".join(map(str, sys.version_info[:2]))
    assert "needs Python 2.7" in message and f"{sys.executable} is Python {running}" in message
    assert "numpy==1.23.5" in message
    assert not (tmp_path / "myenv").exists()
    assert [c for c in commands[0] if "venv" in c or "pip" in c] == []


def test_docs_state_the_venv_recipe_the_tool_installs():
    """docs/structures.md gives the recipe by hand: the same pins as the script."""
    text = (ROOT / "docs" / "structures.md").read_text()
    assert f"pip install {' '.join(tool.VENV_REQUIREMENTS)}\n" in text
    assert f"--no-build-isolation {' '.join(tool.VENV_NO_DEPS)}\n" in text
    assert tool.VENV_MARKER in text
    assert f"(Python {'.'.join(map(str, tool.VENV_PYTHON))})" in text
