import dataclasses

import pytest
import yaml

from core.config import (
    DEFAULT_CONFIG_PATH,
    Config,
    build_config,
    parse_overrides,
    resolve_config,
)
from core.errors import ConfigError


def test_default_yaml_lists_every_setting_with_the_code_defaults():
    from_yaml = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    assert from_yaml == Config().to_dict()


def test_every_line_of_default_yaml_has_a_comment():
    lines = [line for line in DEFAULT_CONFIG_PATH.read_text().splitlines() if line and not line.startswith("#")]
    assert len(lines) == len(dataclasses.fields(Config))
    assert all("# " in line for line in lines)


def test_all_problems_are_reported_together_naming_each_key():
    with pytest.raises(ConfigError) as err:
        build_config({"lr": -1, "hiden_dim": 3, "ks": [0], "split": "random", "epochs": True, "dropout": 1.0})
    message = str(err.value)
    assert "hiden_dim: unknown setting (did you mean hidden_dim?" in message
    assert "lr: expected a value > 0.0 and <= 10.0, got -1.0" in message
    assert "ks: expected a list of positive integers" in message
    assert "split: expected one of time, leave_one_out, got 'random'" in message
    assert "epochs: expected an integer, got True" in message
    assert "dropout: expected a value >= 0.0 and < 1.0, got 1.0" in message


def test_quantiles_must_be_ordered():
    with pytest.raises(ConfigError, match="val_quantile < test_quantile"):
        build_config({"val_quantile": 0.9, "test_quantile": 0.8})


def test_types_are_converted_once():
    config = build_config({"lr": 1, "ks": [20, 5, 5]})
    assert config.lr == 1.0 and isinstance(config.lr, float)
    assert config.ks == (5, 20)


def test_sequence_file_implies_leave_one_out_and_formats_are_detected(tmp_path):
    assert build_config({"data": "beauty.txt"}).split == "leave_one_out"
    assert build_config({"data": "beauty.txt"}).data_format == "sequences"
    assert build_config({"data": "log.csv"}).data_format == "events"
    assert build_config({"data": str(tmp_path)}).data_format == "movielens"
    assert build_config({}).data_format == "synthetic"


def test_precedence_defaults_then_file_then_overrides(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("lr: 0.01\nepochs: 3\n")
    config = resolve_config(path, parse_overrides(["epochs=5", "ks=[5,10]", "description_1_col=null"]))
    assert (config.lr, config.epochs, config.ks, config.description_1_col) == (0.01, 5, (5, 10), None)
    assert config.hidden_dim == Config().hidden_dim


def test_bad_config_files_and_overrides_are_named(tmp_path):
    with pytest.raises(ConfigError, match="missing.yaml does not exist"):
        resolve_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml is not valid YAML"):
        resolve_config(bad)
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        resolve_config(bad)
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_overrides(["lr"])
    bad.write_text("learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"invalid settings in .*bad.yaml:\n  learning_rate: unknown"):
        resolve_config(bad)
