"""The one place where settings are checked: a frozen dataclass built from a plain dict.

Precedence: the defaults below (mirrored, with comments, in configs/default.yaml) < a YAML file
< --set overrides < values sampled by a search. After `build_config` everything is a plain value.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from core.errors import ConfigError

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "configs" / "default.yaml"


@dataclass(frozen=True)
class Config:
    # data
    data: str = "synthetic"
    data_format: str = "auto"
    user_col: str = "account_number"
    time_col: str = "agreement_date"
    item_col: str = "model_number"
    description_1_col: str | None = "model_description_1"
    description_2_col: str | None = "model_description_2"
    synthetic_customers: int = 3000
    synthetic_items: int = 300
    synthetic_seed: int = 0
    min_user_events: int = 2
    split: str = "time"
    val_quantile: float = 0.70
    test_quantile: float = 0.85
    time_format: str | None = None
    drop_duplicates: bool = True
    # model
    max_seq_len: int = 20
    embed_dim: int = 128
    hidden_dim: int = 64
    num_layers: int = 1
    dropout: float = 0.45
    embed_dropout: float = 0.3
    markov_residual: bool = False
    markov_blend: float | str = "auto"
    seen_items: str = "auto"
    # training
    loss: str = "full"
    negatives: int = 1000
    sample_alpha: float = 0.5
    gbce_t: float = 0.75
    sample_mode: str = "all_positions"
    window_overlap: float = 0.75
    batch_size: int = 64
    batch_by_length: bool = True
    lr: float = 0.001
    weight_decay: float = 1e-5
    epochs: int = 50
    patience: int = 3
    ema_decay: float = 0.0
    seed: int = 0
    device: str = "auto"
    bf16: bool = False
    threads: int | str = "auto"
    # evaluation
    ks: tuple[int, ...] = (5, 10, 20)
    exclude_seen: bool = False
    eval_batch_size: int = 1024
    val_sample: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain, YAML-safe values (lists instead of tuples)."""
        out = dataclasses.asdict(self)
        out["ks"] = list(self.ks)
        return out

    def data_settings(self) -> dict[str, Any]:
        """The settings that determine the prepared data set (not the model or its training)."""
        return {key: getattr(self, key) for key in DATA_KEYS}


DATA_KEYS = (
    "data", "data_format", "user_col", "time_col", "item_col", "description_1_col", "description_2_col",
    "synthetic_customers", "synthetic_items", "synthetic_seed", "min_user_events",
    "split", "val_quantile", "test_quantile", "time_format", "drop_duplicates",
)
FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(Config)}
CHOICES = {
    "data_format": ("auto", "synthetic", "events", "movielens", "sequences"),
    "split": ("time", "leave_one_out"),
    "sample_mode": ("all_positions", "prefix"),
    "device": ("auto", "cpu", "cuda"),
    "seen_items": ("auto", "keep", "last"),
    "loss": ("full", "sampled", "gbce", "auto"),
}
# (low, high, low_inclusive, high_inclusive); None means unbounded on that side.
RANGES = {
    "synthetic_customers": (10, None, True, True),
    "synthetic_items": (140, None, True, True),  # 26 pieces x 5 styles + 8 accessories at least
    "min_user_events": (2, None, True, True),
    "val_quantile": (0.0, 1.0, False, False),
    "test_quantile": (0.0, 1.0, False, False),
    "max_seq_len": (1, None, True, True),
    "embed_dim": (1, None, True, True),
    "hidden_dim": (1, None, True, True),
    "num_layers": (1, None, True, True),
    "dropout": (0.0, 1.0, True, False),
    "embed_dropout": (0.0, 1.0, True, False),
    "window_overlap": (0.0, 1.0, True, False),
    "negatives": (1, None, True, True),
    "sample_alpha": (0.0, 1.0, True, True),
    "gbce_t": (0.0, 1.0, True, True),
    "batch_size": (1, None, True, True),
    "lr": (0.0, 10.0, False, True),  # finite and bounded: beyond 10 Adam only diverges
    "weight_decay": (0.0, 10.0, True, True),
    "epochs": (1, None, True, True),
    "patience": (0, None, True, True),
    "ema_decay": (0.0, 1.0, True, False),
    "eval_batch_size": (1, None, True, True),
    "val_sample": (0, None, True, True),
}


def _check_type(key: str, value: Any) -> tuple[Any, str | None]:
    """Return (converted value, problem or None) for one setting."""
    kind = FIELD_TYPES[key]
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return value, f"{key}: expected an integer, got {value!r}"
    elif kind == "float":
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return value, f"{key}: expected a finite number, got {value!r}"
        value = float(value)
    elif kind == "bool":
        if not isinstance(value, bool):
            return value, f"{key}: expected true or false, got {value!r}"
    elif kind == "str":
        if not isinstance(value, str) or not value:
            return value, f"{key}: expected a non-empty string, got {value!r}"
    elif kind == "str | None":
        if value is not None and (not isinstance(value, str) or not value):
            what = "a strftime pattern such as '%d/%m/%Y'" if key == "time_format" else "a column name"
            return value, f"{key}: expected {what} or null, got {value!r}"
        if key == "time_format" and value is not None and "%" not in value:
            return value, f"{key}: expected a strftime pattern such as '%d/%m/%Y' (with % codes), got {value!r}"
    elif kind == "float | str":  # markov_blend
        if value != "auto" and (isinstance(value, bool) or not isinstance(value, (int, float))
                                or not math.isfinite(value) or value < 0):
            return value, f"{key}: expected auto or a number >= 0 (0: off), got {value!r}"
        value = value if value == "auto" else float(value)
    elif kind == "int | str":  # threads
        if value != "auto" and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            return value, f"{key}: expected auto or a positive integer, got {value!r}"
    elif kind == "tuple[int, ...]":
        items = value if isinstance(value, (list, tuple)) else [value]
        if not items or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in items):
            return value, f"{key}: expected a list of positive integers such as [5, 10, 20], got {value!r}"
        value = tuple(sorted(set(items)))
    return value, None


def _check_range(key: str, value: Any) -> str | None:
    if key in CHOICES and value not in CHOICES[key]:
        return f"{key}: expected one of {', '.join(CHOICES[key])}, got {value!r}"
    if key not in RANGES:
        return None
    low, high, low_in, high_in = RANGES[key]
    too_low = low is not None and (value < low if low_in else value <= low)
    too_high = high is not None and (value > high if high_in else value >= high)
    if too_low or too_high:
        left = "" if low is None else f"{'>=' if low_in else '>'} {low}"
        right = "" if high is None else f"{'<=' if high_in else '<'} {high}"
        return f"{key}: expected a value {' and '.join(x for x in (left, right) if x)}, got {value!r}"
    return None


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
        value, problem = _check_type(key, values[key])
        problem = problem or _check_range(key, value)
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
