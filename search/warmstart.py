"""Warm start: an earlier search's finished trials, told to Optuna before it proposes anything.

Only the settings both spaces search are carried over; a setting searched now but fixed then takes the
earlier base config's value. Settings searched in incompatible ways (a choice against a range) are
refused by name; earlier trials whose values fall outside today's ranges are left out and counted.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from core.errors import ConfigError
from search.dimension import dimensions
from search.plan import load_plan
from search.space import SearchSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WarmStart:
    source: str
    points: list[dict[str, Any]]  # one per earlier trial, exactly the keys of today's space
    rewards: list[float]          # its best value of the objective
    left_out: dict[str, int]      # setting -> earlier trials left out because its value is outside today's range


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value  # numpy scalars from the CSV -> Python values


def load_warm_start(folder: str | Path, spec: SearchSpec) -> WarmStart:
    """The finished trials of the search in `folder`, as points of today's space with their objective values."""
    folder = Path(folder)
    earlier = load_plan(folder)
    old = SearchSpec.from_dict(earlier.search)
    metric, mode = spec.settings.metric, spec.settings.mode
    if (old.settings.metric, old.settings.mode) != (metric, mode):
        raise ConfigError(f"--warm-start {folder}: that search optimised {old.settings.metric} ({old.settings.mode}), "
                          f"this one {metric} ({mode}); their values cannot be compared")
    before, now = dimensions(old.space), dimensions(spec.space)
    problems = [f"{key}: searched as {before[key].spec} there and {dimension.spec} here (a choice against a range)"
                for key, dimension in now.items() if key in before and before[key].is_choice != dimension.is_choice]
    problems += [f"{key}: fixed at {earlier.config.get(key)!r} there, outside {dimension.spec} here"
                 for key, dimension in now.items()
                 if key not in before and not dimension.contains(earlier.config.get(key))]
    if problems:
        raise ConfigError(f"--warm-start {folder}: incompatible settings:\n  " + "\n  ".join(problems))
    trials_file = folder / "trials.csv"
    if not trials_file.is_file():
        raise ConfigError(f"--warm-start {folder}: no trials.csv (the search wrote no report)")
    trials = pd.read_csv(trials_file)
    column = f"best_{metric}"
    trials = trials[trials[column].notna()] if column in trials else trials.iloc[:0]
    points, rewards, left_out = [], [], {}
    for _, row in trials.iterrows():
        point = {key: _plain(row[key]) if key in old.space else earlier.config.get(key) for key in spec.space}
        outside = [key for key, value in point.items() if not now[key].contains(value)]
        for key in outside:
            left_out[key] = left_out.get(key, 0) + 1
        if not outside:
            points.append(point)
            rewards.append(float(row[column]))
    if not points:
        raise ConfigError(f"--warm-start {folder}: none of its {len(trials)} finished trials lies inside this "
                          f"space (outside, by setting: {left_out or 'no finished trials'})")
    for key, count in left_out.items():
        log.warning("warm start: %d earlier trials left out: their %s is outside %s", count, key, spec.space[key])
    return WarmStart(source=str(folder), points=points, rewards=rewards, left_out=left_out)
