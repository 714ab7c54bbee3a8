"""The one place where settings are checked: a frozen Config (core.config_fields) built from a plain dict.

Precedence: the defaults (core.config_fields; mirrored, with comments, in configs/default.yaml) < a YAML file
< --set overrides < values sampled by a search. After `build_config` everything is a plain value.
"""
from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from core.config_checks import check_value
from core.config_fields import FIELD_TYPES, Config
from core.errors import ConfigError

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "configs" / "default.yaml"


def build_config(values: Mapping[str, Any] | None = None, source: str = "config") -> Config:
    """Validate a dict of settings (missing keys take defaults); report every problem in one ConfigError."""
    values = dict(values or {})
    problems = []
    unknown = sorted(set(values) - set(FIELD_TYPES), key=str)
    for key in unknown:
        close = difflib.get_close_matches(str(key), FIELD_TYPES, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        problems.append(f"{key}: unknown setting ({hint}valid settings: {', '.join(FIELD_TYPES)})")
    checked = {}
    for key in [k for k in FIELD_TYPES if k in values]:
        value, problem = check_value(key, values[key])
        if problem:
            problems.append(problem)
        else:
            checked[key] = value
    if checked.get("data_format", "auto") == "auto":
        checked["data_format"] = detect_data_format(checked.get("data", Config.data))
    if checked.get("data_format") == "sequences":
        checked["split"] = "leave_one_out"  # a sequence file has no times: leave-one-out is the only split
    config_so_far = dataclasses.replace(Config(), **checked)
    if config_so_far.val_quantile >= config_so_far.test_quantile:
        problems.append(
            f"val_quantile, test_quantile: expected val_quantile < test_quantile, "
            f"got {config_so_far.val_quantile} and {config_so_far.test_quantile}")
    if problems:
        raise ConfigError(f"invalid settings in {source}:\n  " + "\n  ".join(problems))
    return config_so_far


def check_negatives(config: Config, n_items: int) -> None:
    """A sampled loss needs fewer negatives than the catalogue has items (known once the data is read)."""
    if config.loss != "full" and config.negatives >= n_items:
        raise ConfigError(f"negatives: expected fewer than the catalogue's {n_items:,} items with loss "
                          f"{config.loss}, got {config.negatives:,} (or loss: full)")


def detect_data_format(data: str) -> str:
    """Tell the source format from the `data` value: synthetic, a folder (MovieLens), .txt, else an event log."""
    if data == "synthetic":
        return "synthetic"
    path = Path(data)
    if path.is_dir():
        return "movielens"
    if path.suffix.lower() == ".txt":
        return "sequences"
    return "events"


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path}: expected a mapping of settings, got {type(loaded).__name__}")
    return loaded


def parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
    """Turn ["lr=0.01", "ks=[5,10]"] into typed values (parsed as YAML scalars/lists)."""
    out = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {pair!r}: expected key=value, for example --set lr=0.01")
        try:
            out[key.strip()] = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            out[key.strip()] = text
    return out


def resolve_config(config_file: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> Config:
    """Defaults < config file < overrides, validated once."""
    values: dict[str, Any] = {}
    source = "defaults"
    if config_file is not None:
        values.update(load_yaml(config_file))
        source = str(config_file)
    if overrides:
        values.update(overrides)
        source = f"{source} with overrides" if config_file else "overrides"
    return build_config(values, source=source)
