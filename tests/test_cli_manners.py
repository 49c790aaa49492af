"""The CLI's manners (issue 14): --version, an example in each command's help, help that is
never cut at 80 columns, defaults shown, aliases after the main commands, messages that say
what to do (no RMSF unit, a temperature range, a missing checkpoint, an earlier config)."""

from __future__ import annotations

import errno
import os
import re
import tomllib
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import voxelflex
from tests._checkpoints import make_checkpoint
from voxelflex.cli.group import ALIASES
from voxelflex.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def _commands(group=None, prefix=()):
    group = group or typer.main.get_command(app)
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, (*prefix, name))
        else:
            yield (*prefix, name), cmd


def _help(cmd, name: str, width: int = 80) -> str:
    return cmd.get_help(cmd.context_class(cmd, info_name=name, terminal_width=width))


def test_version_matches_the_package():
    result = _invoke("--version")
    assert result.exit_code == 0
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert result.output.strip() == f"voxelflex {version}" == f"voxelflex {voxelflex.__version__}"


@pytest.mark.parametrize("path", [p for p, _ in _commands()], ids=" ".join)
def test_every_command_has_an_example_and_help_that_fits_80_columns(path):
    cmd = dict(_commands())[path]
    text = _help(cmd, "voxelflex " + " ".join(path))
    examples = text.split("Example")[1] if "Example" in text else ""
    assert re.search(r"^\s+voxelflex \w", examples, re.M), f"no example in {path}"
    assert all(len(line) <= 80 for line in text.splitlines()), [
        line for line in text.splitlines() if len(line) > 80
    ]
    assert "…" not in text  # rich's cut
    # click's cut of a short help (a usage line ends in '...' for a repeatable argument)
    assert not re.search(r"^(?!Usage:).*\.\.\.$", text, re.M)


def test_help_shows_defaults_of_the_flags_that_set_config_keys():
    result = _invoke("train", "--help")
    text = " ".join(result.output.split())  # the help wraps with the terminal
    for flag, shown in (
        ("--epochs", "Epochs (train.epochs). [default: 20]"),
        ("--lr", "[default: 0.001]"),
        ("--preset", "[default: small]"),
        ("--grad-accumulation", "[default: 1]"),
        ("--plot", "[default: true]"),
    ):
        assert flag in text and shown in text, (flag, shown)
    text = " ".join(_invoke("evaluate", "--help").output.split())
    assert "(evaluate.shuffles). [default: 3]" in text
    assert (
        "(predict.residues_per_batch; --batch-size is the earlier spelling, kept as an alias)."
        in text
    )


@pytest.mark.parametrize(
    ("command", "required"),
    [(("train",), ()), (("predict",), ("-c", "x.pt")), (("evaluate",), ("-p", "x")),
     (("index", "build"), ())],
)  # fmt: skip
def test_help_names_the_config_key_of_every_flag(command, required, monkeypatch):
    """README and docs/training.md: `--help` names the key each flag sets."""
    import voxelflex.cli.options as options

    keys = []

    def capture(config, sets, flags):
        keys.extend(flags)
        raise typer.Exit(0)

    for module in ("analysis", "index", "train"):
        monkeypatch.setattr(f"voxelflex.cli.{module}.build_config", capture)
    assert options.build_config is not capture  # only the commands' references are replaced
    assert _invoke(*command, *required).exit_code == 0 and keys
    text = " ".join(_invoke(*command, "--help").output.split())
    assert [k for k in keys if not re.search(rf"[(; ]{re.escape(k)}[);]", text)] == []


def test_every_index_option_also_answers_to_dash_i():
    """`-i` is the index everywhere (predict, evaluate and index stats had it; train and shards
    build did not)."""
    with_index = {
        path: p.opts
        for path, cmd in _commands()
        for p in cmd.params
        if "--index" in getattr(p, "opts", ())
    }
    assert {("train",), ("shards", "build"), ("predict",), ("evaluate",)} <= set(with_index)
    assert {path: opts for path, opts in with_index.items() if "-i" not in opts} == {}


def test_aliases_are_listed_after_the_main_commands():
    text = _invoke("--help").output
    commands, aliases = text.split("Aliases:")
    for name in ("train", "predict", "evaluate", "plot", "demo", "index", "shards", "config"):
        assert re.search(rf"^  {name}\s", commands, re.M), name
    for alias, target in ALIASES.items():
        assert re.search(rf"^  {alias}\s+Alias of `voxelflex {target}`", aliases, re.M)
        assert alias not in commands


def test_missing_rmsf_unit_says_no_rmsf_unit_given(demo_data, tmp_path):
    d = demo_data
    result = _invoke("index", "build", "--voxel-file", d.voxel_file, "--rmsf-csv", d.rmsf_csv,
                     "-o", tmp_path / "i.parquet", "--no-progress")  # fmt: skip
    assert result.exit_code == 2
    assert "no RMSF unit given" in result.output and "None" not in result.output
    assert "--rmsf-unit nm" in result.output


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("manners") / "run"
    make_checkpoint(root / "models" / "latest.pt")
    return root


def test_a_temperature_range_points_to_the_sweep_option(run, demo_index):
    args = ("predict", "-c", run / "models" / "latest.pt", "-i", demo_index)
    result = _invoke(*args, "-t", "300-450")
    assert result.exit_code == 2
    assert "--temperatures 300:450:10" in result.output and "Traceback" not in result.output
    result = _invoke(*args, "-t", "300:450:5")
    assert result.exit_code == 2 and "--temperatures 300:450:5" in result.output
    result = _invoke(*args, "--temperatures", "300-450")
    assert result.exit_code == 2 and "--temperatures 300:450:10" in result.output


def test_a_missing_checkpoint_lists_what_the_models_folder_holds(run, demo_index):
    result = _invoke("predict", "-c", run / "models" / "best.pt", "-i", demo_index)
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "best.pt does not exist" in message and "models holds: latest.pt" in message
    # the run folder itself, or a checkpoint path without models/: the same listing
    result = _invoke("predict", "-c", run, "-i", demo_index)
    assert result.exit_code == 2 and "models holds: latest.pt" in " ".join(result.output.split())
    result = _invoke("predict", "-c", run / "nowhere" / "best.pt", "-i", demo_index)
    assert result.exit_code == 2 and "nor does the folder" in result.output


def test_a_config_file_given_as_the_checkpoint_points_to_config(run, demo_index, tmp_path):
    # train's -c is --config, predict's and evaluate's is --checkpoint: a run's config.yaml
    # there was called a file holding "Python objects a weights-only load refuses"
    config = run / "config.yaml"
    config.write_text("train:\n  epochs: 3\n")
    for args in (
        ("predict", "-c", config, "-i", demo_index),
        ("evaluate", "-p", "p", "-c", config),
    ):
        result = _invoke(*args)
        assert result.exit_code == 2, result.output
        message = " ".join(result.output.split())
        assert f"{config} is a config file" in message and "--config" in message
        assert "Python objects" not in message


def test_every_local_path_option_refuses_a_url_naming_the_option():
    # a Path folded https://host/x into a local https:/host/x, then reported it missing
    unguarded = [
        (" ".join(path), param.name)
        for path, cmd in _commands()
        for param in cmd.params
        if "Path" in str(param.type_descriptor.annotation)
        and param.type_descriptor.parameter_info.parser is None
    ]
    assert unguarded == []
    url = "https://example.org/data/voxels.hdf5"
    for args in (
        ("train", "--voxel-file", url),
        ("shards", "build", "--index", url, "-o", "shards"),
        ("config", "show", "--config", url),
        ("voxelize", url, "-o", "v.hdf5"),
    ):
        result = _invoke(*args)
        assert result.exit_code == 2, result.output
        message = " ".join(result.output.split())
        assert f"{url} is a URL, but this option takes a local path" in message, message
        assert "https:/example.org" not in message


def test_config_show_prints_the_effective_configuration(tmp_path):
    result = _invoke("config", "show", "--set", "train.lr=5e-4", "--set", "model.preset=tiny")
    assert result.exit_code == 0, result.output
    assert "lr: 0.0005" in result.output and "preset: tiny" in result.output
    assert "accessibility_bins:" in result.output
    run_config = tmp_path / "run.yaml"
    run_config.write_text("train:\n  epochs: 3\n")
    result = _invoke("config", "show", "--config", run_config)
    assert result.exit_code == 0 and "epochs: 3" in result.output
    assert not any(tmp_path.glob("*.log"))  # read-only: no log


def test_an_earlier_config_points_to_config_migrate(tmp_path):
    old = tmp_path / "old.yaml"
    old.write_text("input:\n  voxel_file: x.hdf5\ntraining:\n  num_epochs: 3\n")
    for args in (("config", "show", "--config", old), ("train", "--config", old)):
        result = _invoke(*args)
        assert result.exit_code == 2
        message = " ".join(result.output.split())
        assert "unknown config key 'input'" in message
        assert "voxelflex config migrate OLD.yaml -o NEW.yaml" in message


@pytest.mark.parametrize(
    ("code", "says"),
    [(errno.EROFS, "read-only"), (errno.EACCES, "permission denied"), (errno.ENOSPC, "free space")],
)
def test_an_output_location_that_cannot_be_written_is_a_message_not_a_traceback(
    tmp_path, monkeypatch, code, says
):
    config = tmp_path / "old.yaml"
    config.write_text("training:\n  learning_rate: 0.001\n")
    out = tmp_path / "ro" / "new.yaml"

    def refuse(src, dst):
        raise OSError(code, os.strerror(code), str(dst))

    monkeypatch.setattr(os, "replace", refuse)  # every atomic write ends in os.replace
    result = _invoke("config", "migrate", config, "-o", out)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and str(out) in result.output
    assert says in result.output and not out.exists()


def test_an_other_os_error_stays_a_traceback(tmp_path, monkeypatch):
    config = tmp_path / "old.yaml"
    config.write_text("training:\n  learning_rate: 0.001\n")

    def broken(src, dst):
        raise OSError(errno.EBADF, "Bad file descriptor")  # a bug, not the user's folder

    monkeypatch.setattr(os, "replace", broken)
    result = _invoke("config", "migrate", config, "-o", tmp_path / "new.yaml")
    assert result.exit_code == 1 and isinstance(result.exception, OSError)


def test_an_output_below_a_file_names_that_file(demo_index, tmp_path):
    # `-o results.csv/out.parquet`, or a folder option naming a file's child: a
    # FileExistsError / NotADirectoryError traceback from mkdir before
    config = tmp_path / "old.yaml"
    config.write_text("training:\n  learning_rate: 0.001\n")
    blocker = tmp_path / "results.csv"
    blocker.write_text("x\n")
    for args in (
        ("config", "migrate", config, "-o", blocker / "new.yaml"),  # a file output
        ("index", "query", "-i", demo_index, "select 1", "-o", blocker / "deeper" / "q.csv"),
        ("shards", "build", "--index", demo_index, "-o", blocker / "shards"),  # a folder output
        ("train", "--index", demo_index, "--output-dir", blocker, "--no-progress"),
    ):
        result = _invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        message = " ".join(result.output.split())
        assert "Traceback" not in message and f"{blocker} is a file, not a folder" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.yaml", "results.csv"]
    assert blocker.read_text() == "x\n"


def test_a_file_exists_error_with_no_file_in_the_way_stays_a_traceback(tmp_path):
    from voxelflex.cli.group import file_system_message

    folder = tmp_path / "made"
    folder.mkdir()  # os.mkdir without exist_ok on a folder: a bug, not the user's path
    assert file_system_message(FileExistsError(errno.EEXIST, "File exists", str(folder))) is None
    blocked = FileExistsError(errno.EEXIST, "File exists", str(tmp_path / "old.yaml"))
    (tmp_path / "old.yaml").write_text("")
    assert "is a file, not a folder" in file_system_message(blocked)
