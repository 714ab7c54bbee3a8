"""The search space as data: a YAML file of distributions and search settings, checked against the core
config before Ray starts (search.tuner turns it into Tune domains)."""
from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config import FIELD_TYPES, Config, build_config, load_yaml
from core.errors import ConfigError
from core.metrics import KINDS, metric_name
from search.dimension import DISTRIBUTIONS, Dimension, dimensions, shape_problem

DEFAULT_SPACE_PATH = Path(__file__).resolve().parent.parent / "configs" / "space.yaml"


@dataclass(frozen=True)
class SearchSettings:
    """How a search decides; the defaults are configs/space.yaml's `search` section (a test keeps them equal)."""
    metric: str = "val_ndcg@5"    # validation metric to optimise
    mode: str = "max"
    max_epochs: int = 30          # the most epochs a trial may train (its `epochs`)
    scheduler: str = "asha"       # asha or fifo
    grace_period: int = 2         # ASHA: epochs before a trial can be stopped
    reduction_factor: float = 3   # ASHA: 1 in this many goes on at each rung
    seed: int = 0                 # Optuna TPE sampler seed
    startup_trials: int = 10      # TPE: trials sampled at random (the base config counts) before TPE models them
    keep_base: bool = True        # ASHA never stops the base config's trial (patience and max_epochs still end it)


SETTING_NAMES = tuple(f.name for f in dataclasses.fields(SearchSettings))


@dataclass(frozen=True)
class SearchSpec:
    space: dict[str, dict[str, list]]  # setting -> {distribution: arguments}, as in the file
    settings: SearchSettings

    @property
    def dimensions(self) -> tuple[Dimension, ...]:
        """Each searched setting as a Dimension, in the file's order."""
        return tuple(dimensions(self.space).values())

    def domains(self) -> dict[str, Any]:
        """Tune's sampling domain of each searched setting."""
        return {dimension.name: dimension.to_tune() for dimension in self.dimensions}

    def to_dict(self) -> dict[str, Any]:
        return {"search": dataclasses.asdict(self.settings), "space": self.space}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SearchSpec:
        # a search planned before keep_base existed ran a scheduler that keeps no trial
        return cls(space=values["space"], settings=SearchSettings(**{"keep_base": False, **values["search"]}))


def _number(value: Any) -> Any:
    if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _check_param(key: str, spec: Any, base: Config) -> tuple[dict | None, list[str]]:
    """One searched setting: (normalised spec, problems)."""
    if key not in FIELD_TYPES:
        return None, [f"space.{key}: not a setting ({_did_you_mean(key, FIELD_TYPES)}"
                      f"valid: {', '.join(FIELD_TYPES)})"]
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
        return None, [f"space.{key}: expected one distribution such as {{loguniform: [0.0003, 0.01]}}; "
                      f"distributions: {', '.join(DISTRIBUTIONS)}; got {spec!r}"]
    (kind, args), = spec.items()
    args = [_number(a) for a in args] if isinstance(args, list) else args
    problem = shape_problem(kind, args)
    if problem:
        return None, [f"space.{key}: {problem}"]
    dimension = Dimension(key, kind, tuple(args))
    return dimension.spec, _invalid_ends(dimension, base)


def _invalid_ends(dimension: Dimension, base: Config) -> list[str]:
    """Every end of a range, every value of a choice, must make a valid config with the base's other settings
    (the config's own checks, cross-setting ones included, say why not)."""
    for value in dimension.ends:
        try:
            build_config({**base.to_dict(), dimension.name: value})
        except ConfigError as err:
            detail = str(err).split("\n  ", 1)[-1].replace("\n  ", "; ")
            values = list(dimension.values)
            return [f"space.{dimension.name}: {dimension.kind} {values!r} allows an invalid value ({detail})"]
    return []


def _did_you_mean(key: str, valid: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(valid), n=1)
    return f"did you mean {close[0]}? " if close else ""


def load_search_spec(path: str | Path | None, base: Config, flags: dict[str, Any] | None = None) -> SearchSpec:
    """Read and check a space file against the base config, search settings given as flags (None: the file's)
    over the file's; report every problem in one ConfigError."""
    path = Path(path) if path is not None else DEFAULT_SPACE_PATH
    raw = load_yaml(path)
    problems = [f"{key}: unknown section ({_did_you_mean(str(key), ('search', 'space'))}expected search and space)"
                for key in raw if key not in ("search", "space")]
    settings = dataclasses.asdict(SearchSettings())
    given = raw.get("search") or {}
    if not isinstance(given, dict):
        problems.append(f"search: expected a mapping, got {given!r}")
        given = {}
    for key, value in given.items():
        if key not in SETTING_NAMES:
            problems.append(f"search.{key}: unknown search setting ({_did_you_mean(str(key), SETTING_NAMES)}"
                            f"valid: {', '.join(SETTING_NAMES)})")
        else:
            settings[key] = value
    settings.update({key: value for key, value in (flags or {}).items() if value is not None})
    problems += _check_search_settings(settings, base)
    space = {}
    raw_space = raw.get("space")
    if not isinstance(raw_space, dict) or not raw_space:
        problems.append("space: expected a mapping of at least one setting to its distribution")
        raw_space = {}
    for key, spec in raw_space.items():
        normalised, found = _check_param(str(key), spec, base)
        problems += found
        if normalised is not None:
            space[str(key)] = normalised
    if problems:
        raise ConfigError(f"invalid search space in {path}:\n  " + "\n  ".join(problems))
    return SearchSpec(space=space, settings=SearchSettings(**settings))


def reported_metrics(config: Config) -> list[str]:
    """The validation metrics every trial reports after every epoch."""
    return [metric_name("loss", split="val")] + [metric_name(kind, k, "val") for k in config.ks for kind in KINDS]


def _check_search_settings(settings: dict[str, Any], base: Config) -> list[str]:
    problems = []
    for key in ("max_epochs", "grace_period", "seed", "startup_trials"):
        value, least = settings[key], 0 if key in ("seed", "startup_trials") else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            problems.append(f"search.{key}: expected a {'non-negative' if least == 0 else 'positive'} "
                            f"integer, got {value!r}")
    factor = settings["reduction_factor"]
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or factor <= 1:
        problems.append(f"search.reduction_factor: expected a number > 1, got {factor!r}")
    if not isinstance(settings["keep_base"], bool):
        problems.append(f"search.keep_base: expected true or false, got {settings['keep_base']!r}")
    if settings["scheduler"] not in ("asha", "fifo"):
        problems.append(f"search.scheduler: expected asha or fifo, got {settings['scheduler']!r}")
    if settings["mode"] not in ("max", "min"):
        problems.append(f"search.mode: expected max or min, got {settings['mode']!r}")
    if settings["metric"] not in reported_metrics(base):
        problems.append(f"search.metric: {settings['metric']!r} is not reported with ks={list(base.ks)}; "
                        f"reported: {', '.join(reported_metrics(base))}")
    if isinstance(settings["grace_period"], int) and isinstance(settings["max_epochs"], int) \
            and settings["grace_period"] > settings["max_epochs"]:
        problems.append(f"search.grace_period: expected at most max_epochs ({settings['max_epochs']}), "
                        f"got {settings['grace_period']} (set it with --grace-period, e.g. --grace-period 1)")
    return problems
