"""Config: packaged defaults, user YAML merge, --set overrides, path resolution and errors."""

from __future__ import annotations

import dataclasses
import logging
from importlib import resources
from pathlib import Path

import pytest
import yaml

from voxelflex.config import (
    Config,
    choices,
    config_to_yaml,
    load_config,
    parse_config_yaml,
    path_keys,
)
from voxelflex.errors import ConfigError
from voxelflex.logs import setup_logging
from voxelflex.migrate import migrate_file


def test_defaults_load_and_cover_every_key():
    config = load_config()
    assert config.model.name == "multipath"
    assert config.loader.source == "hdf5"
    assert config.data.index is None
    assert config.output_dir == Path.cwd() / "outputs"
    # The packaged YAML lists exactly the declared keys (a missing one would raise in load_config).
    packaged = yaml.safe_load(
        resources.files("voxelflex").joinpath("default_config.yaml").read_text()
    )
    assert set(packaged) == {f.name for f in dataclasses.fields(Config)}


def test_user_yaml_merges_and_resolves_paths_against_its_folder(tmp_path, monkeypatch):
    cfg_dir = tmp_path / "conf"
    cfg_dir.mkdir()
    (cfg_dir / "run.yaml").write_text(
        "run_name: r1\ndata:\n  index: ../data/index.parquet\ntrain:\n  epochs: 3\n"
    )
    monkeypatch.chdir(tmp_path / "conf")
    config = load_config(cfg_dir / "run.yaml", ["train.lr=2e-3", "data.shards_dir=sh"])
    assert config.run_name == "r1"
    assert config.train.epochs == 3
    assert config.train.lr == pytest.approx(2e-3)
    assert config.loader.batch_size == 256  # default kept
    assert config.data.index == (tmp_path / "data" / "index.parquet").resolve()
    assert config.data.shards_dir == (tmp_path / "conf" / "sh").resolve()
    assert config.run_dir == config.output_dir / "r1"


def test_overrides_mapping_and_lists():
    config = load_config(overrides={"model.features": ["relative_accessibility"], "loader.seed": 7})
    assert config.model.features == ("relative_accessibility",)
    assert config.loader.seed == 7
    config = load_config(overrides=["model.features=[a, b]", "train.log_target=true"])
    assert config.model.features == ("a", "b")
    assert config.train.log_target is True


def test_override_values_are_read_as_written(tmp_path):
    # a path with " #" (a YAML comment), a leading zero (YAML 1.1 octal), an emptied mapping
    conf = tmp_path / "run.yaml"
    conf.write_text("model:\n  hyperparameters: {growth: 16}\n")
    config = load_config(
        conf,
        ["data.index=runs #3/index.parquet", "train.epochs=010", "model.hyperparameters={}"],
    )
    assert config.data.index.name == "index.parquet" and config.data.index.parent.name == "runs #3"
    assert config.train.epochs == 10
    assert dict(config.model.hyperparameters) == {}
    assert dict(load_config(conf).model.hyperparameters) == {"growth": 16}


def test_resolved_yaml_round_trips(tmp_path):
    config = load_config(overrides=["model.preset=tiny", "data.index=x.parquet"])
    path = tmp_path / "resolved.yaml"
    path.write_text(config_to_yaml(config))
    assert load_config(path) == config


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("train.lrr=1", "unknown config key 'train.lrr'"),
        ("bogus=1", "unknown config key 'bogus'"),
        ("train.lr=-1", "'train.lr'"),
        ("train.epochs=abc", "'train.epochs'"),
        ("model.name=resnet", "'model.name'"),
        ("loader.source=lmdb", "one of hdf5, shards"),
        ("train.progress=maybe", "'train.progress'"),
        ("model.dropout=1.5", "'model.dropout'"),
        ("run_name=a/b", "'run_name'"),
        # torch seeds with an unsigned 64-bit integer: these failed as traces once training
        # (or permutation importance) started
        ("loader.seed=-1", r"'loader.seed': got -1, expected an integer >= 0 and < 2\*\*64"),
        ("loader.seed=18446744073709551616", "'loader.seed'"),
        ("evaluate.seed=-1", "'evaluate.seed'"),
        ("evaluate.seed=18446744073709551616", "'evaluate.seed'"),
        ("train", "key.sub=value"),
    ],
)
def test_bad_overrides_name_the_key(override, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        load_config(overrides=[override])


def test_unknown_key_in_file_names_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  nmae: multipath\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "model.nmae" in str(info.value) and str(path) in str(info.value)
    path.write_text("model: 3\n")
    with pytest.raises(ConfigError, match="'model'"):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.yaml")


def test_bad_value_names_the_layer_that_set_it(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  epochs: 0\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "'train.epochs'" in str(info.value) and str(path) in str(info.value)
    # a later override replaces the file's value, and with it the culprit named
    with pytest.raises(ConfigError, match=r"got 'x'.*\(set in override loader\.seed\)"):
        load_config(path, ["train.epochs=2", "loader.seed=x"])


def test_a_url_for_a_local_path_key_is_refused_naming_key_file_and_fix(tmp_path):
    """data.rmsf_csv is read locally only; a Path would fold s3://b/r.csv into s3:/b/r.csv."""
    path = tmp_path / "run.yaml"
    path.write_text("data:\n  rmsf_csv: s3://b/r.csv\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert f"s3://b/r.csv is a URL, but config key 'data.rmsf_csv' in {path}" in message
    assert "download an input first" in message and "aws s3 cp" in message


def test_choices_list_a_keys_allowed_values():
    assert choices("loader.source") == ("hdf5", "shards")
    assert choices("data.rmsf_unit") == ("nm", "angstrom")
    with pytest.raises(ConfigError, match=r"'train\.epochs' is not a choice"):
        choices("train.epochs")


def test_path_keys_list_a_sections_path_keys_from_their_types():
    assert path_keys("data", urls_only=True) == ("data.index", "data.shards_dir")
    assert set(path_keys("data")) == {
        "data.index", "data.voxel_file", "data.rmsf_csv", "data.features", "data.shards_dir",
        "data.train_split", "data.val_split", "data.test_split",
    }  # fmt: skip
    assert path_keys("train") == ("train.init_from",)
    with pytest.raises(ConfigError, match=r"'train\.epochs' is not a section"):
        path_keys("train.epochs")


def test_setup_logging_writes_run_log(tmp_path):
    log_path = setup_logging(tmp_path / "run", "INFO", console=False)
    logging.getLogger("voxelflex.test").info("hello log")
    for handler in logging.getLogger("voxelflex").handlers:
        handler.flush()
    assert log_path == tmp_path / "run" / "logs" / "voxelflex.log"
    assert "hello log" in log_path.read_text()
    setup_logging(None, "INFO", console=False)  # detach the file handler again


def test_a_key_twice_in_a_config_file_is_an_error_naming_key_and_lines(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr: 1e-4\ntrain:\n  epochs: 3\n")
    with pytest.raises(
        ConfigError, match=r"c.yaml: config key 'train' appears twice \(lines 1 and 3\)"
    ):
        load_config(path)
    path.write_text("train:\n  lr: 1e-4\n  epochs: 3\n  lr: 1e-2\n")  # within a section
    with pytest.raises(ConfigError, match=r"'lr' appears twice \(lines 2 and 4\)"):
        load_config(path)
    # an anchor merged with `<<` and then overridden is not a repeat
    text = "model: &m {dropout: 0.1}\ntrain:\n  lr: 0.01\n"
    assert load_config(path.write_text(text) and path).train.lr == 0.01
    assert parse_config_yaml("a: &x {k: 1}\nb:\n  <<: *x\n  k: 2\n", "m.yaml")["b"]["k"] == 2


def test_a_leading_zero_integer_in_a_config_file_is_refused_not_read_as_octal(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 010\n")
    with pytest.raises(
        ConfigError, match=r"c.yaml: line 2: the number 010 .*octal \(8\); write 10"
    ):
        load_config(path)
    path.write_text("train:\n  epochs: 10\n")
    assert load_config(path).train.epochs == 10
    assert load_config(None, ["train.epochs=010"]).train.epochs == 10  # --set: decimal


def test_a_config_file_that_is_not_text_is_an_error_naming_it(tmp_path):
    # e.g. --config given the voxel file: a UnicodeDecodeError traceback before
    path = tmp_path / "voxels.hdf5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n\xff\x00")
    for read in (load_config, lambda p: migrate_file(p, None, rmsf_unit=None, overwrite=False)):
        with pytest.raises(ConfigError, match=rf"config file {path} is not UTF-8 text \(byte 0x89"):
            read(path)
    path.write_bytes("\ufefftrain:\n  epochs: 3  # Å\n".encode())  # a BOM, non-ASCII comment
    assert load_config(path).train.epochs == 3


def test_an_empty_path_is_an_error_not_the_folder_itself(tmp_path):
    # `--set data.test_split=` (meant: none) named the working folder, `index: ""` the config's
    path = tmp_path / "c.yaml"
    path.write_text('data:\n  index: ""\n')
    with pytest.raises(ConfigError, match=rf"config key 'data.index' in {path}: an empty path"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"'data.test_split' in override .*write null"):
        load_config(None, ["data.test_split="])
    assert load_config(None, ["data.test_split=null"]).data.test_split is None


@pytest.mark.parametrize(
    ("text", "key"),
    [("run_name: no\n", "run_name"), ("train:\n  scheduler: off\n", "train.scheduler")],
)
def test_a_yaml_boolean_for_a_text_key_says_to_quote_it(tmp_path, text, key):
    # YAML 1.1 reads unquoted no/off/yes/on as booleans: "got False" alone puzzled
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=rf"'{key}': got False, .*quote the word"):
        load_config(path)


def test_flags_pass_typed_values_not_yaml_text():
    # flags went through the --set parser as "key=value" text: `--run-name null` became None
    from voxelflex.cli.options import build_config

    flags = {"run_name": "null", "data.index": "i.parquet", "train.lr": 1e-5, "train.plot": None}
    cfg = build_config(None, ["run_name=other", "train.lr=0.5"], flags)
    assert (cfg.run_name, cfg.train.lr) == ("null", 1e-5)  # the flags, applied after --set
    assert cfg.train.plot == load_config().train.plot  # a flag not given leaves the key alone
    with pytest.raises(ConfigError, match="'run_name': got None"):
        build_config(None, ["run_name=null"], {})  # --set keeps YAML: null is None
