"""What mattered in a search, and whether its space was wide enough: plain functions on the trials table.

Importance: Optuna's own PED-ANOVA evaluator over the finished trials, told to an in-memory study built
with optuna.trial.create_trial (no Ray involved). Edge warnings: a searched setting whose best trial's
value lies in the outer 10% of its numeric range, or at the end of an ordered choice, with the bound to widen.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.config_fields import RANGES
from search.dimension import Dimension, dimensions
from search.space import SearchSpec
from search.trials import FINISHED, best_row

MIN_TRIALS = 4          # fewer finished trials: no importance estimate
TOP_TRIALS_WANTED = 5   # PED-ANOVA wants at least about 5 trials above its target quantile
EVALUATOR = "PED-ANOVA (optuna.importance.PedAnovaImportanceEvaluator)"


@dataclass(frozen=True)
class Importance:
    settings: tuple[str, ...]     # most important first
    values: tuple[float, ...]     # normalised to sum to 1
    trials: int                   # finished trials it was estimated from
    target_quantile: float        # importance for reaching this top fraction of those trials
    evaluator: str = EVALUATOR


@dataclass(frozen=True)
class EdgeWarning:
    setting: str
    value: Any
    bound: Any
    side: str                     # "lower" or "upper"
    at_limit: bool                # the bound is the setting's own limit (dropout >= 0): nothing to widen
    message: str


def finished_trials(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Trials that completed or were stopped by ASHA and reported the objective."""
    column = f"best_{metric}"
    if not len(table) or column not in table:
        return table.iloc[:0]
    ok = table["status"].isin(FINISHED) & np.isfinite(pd.to_numeric(table[column], errors="coerce"))
    return table[ok]


def param_importances(table: pd.DataFrame, space: dict[str, dict[str, list]], metric: str,
                      mode: str) -> Importance | None:
    """Importance of each searched setting for the objective (each trial's best value); None with too few trials."""
    import optuna

    trials = finished_trials(table, metric)
    searched = dimensions(space)
    distributions = {key: dimension.to_optuna() for key, dimension in searched.items()}
    frozen = []
    for _, row in trials.iterrows():
        params = {key: dimension.optuna_value(row[key]) for key, dimension in searched.items()}
        try:  # a value outside the space (a base config that lies outside it) cannot be told to Optuna
            frozen.append(optuna.trial.create_trial(params=params, distributions=distributions,
                                                    value=float(row[f"best_{metric}"])))
        except ValueError:
            continue
    if len(frozen) < MIN_TRIALS or len(space) == 0:
        return None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if mode == "max" else "minimize")
    study.add_trials(frozen)
    quantile = min(0.5, max(0.1, TOP_TRIALS_WANTED / len(frozen)))
    evaluator = optuna.importance.PedAnovaImportanceEvaluator(target_quantile=quantile)
    found = optuna.importance.get_param_importances(study, evaluator=evaluator, params=list(space))
    if not math.isfinite(sum(found.values())):
        return None
    ranked = sorted(found.items(), key=lambda pair: -pair[1])
    return Importance(settings=tuple(k for k, _ in ranked), values=tuple(float(v) for _, v in ranked),
                      trials=len(frozen), target_quantile=quantile)


def edge_warnings(best: pd.Series | dict[str, Any], space: dict[str, dict[str, list]],
                  top: pd.DataFrame | None = None) -> list[EdgeWarning]:
    """One warning per searched setting whose best value sits in the outer 10% of its range or at the end of an
    ordered (numeric, at least 3 values) choice; `top` (the best few trials) adds how many of them are there too."""
    warnings = []
    for key, dimension in dimensions(space).items():
        value = best.get(key)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        edge = dimension.edge(value)
        if edge is None:
            continue
        side, bound = edge
        at_limit = _is_setting_limit(key, side, bound)
        company = ""
        if top is not None and key in top and len(top) > 1:
            near = sum(dimension.edge(v) == edge for v in top[key].dropna())
            company = f" ({near} of the top {len(top)} trials are there)"
        warnings.append(EdgeWarning(key, value, bound, side, at_limit,
                                    _edge_message(dimension, value, edge, at_limit, company)))
    return warnings


def _edge_message(dimension: Dimension, value: Any, edge: tuple[str, Any], at_limit: bool, company: str) -> str:
    side, bound = edge
    low, high = dimension.values[0], dimension.values[-1]
    where = (f"{'the largest' if side == 'upper' else 'the smallest'} of the choices {list(dimension.values)}"
             if dimension.is_choice else
             f"in the {'top' if side == 'upper' else 'bottom'} 10% of [{_show(low)}, {_show(high)}]"
             f"{' (log scale)' if dimension.is_log else ''}")
    advice = (f"{_show(bound)} is the setting's own limit, nothing to widen" if at_limit else
              (f"add a {'larger' if side == 'upper' else 'smaller'} value" if dimension.is_choice else
               f"widen the {side} bound {_show(bound)}"))
    return f"{dimension.name}: the best trial's value {_show(value)} is {where}{company}; {advice}."


def _is_setting_limit(key: str, side: str, bound: Any) -> bool:
    limits = RANGES.get(key)
    if limits is None:
        return False
    limit = limits[0] if side == "lower" else limits[1]
    return limit is not None and float(bound) == float(limit)


def _show(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def summary_lines(table: pd.DataFrame, spec: SearchSpec) -> list[str]:
    """The summary's section: importance table and edge warnings (markdown lines)."""
    metric, mode, space = spec.settings.metric, spec.settings.mode, spec.space
    trials = finished_trials(table, metric)
    lines = ["", "## What mattered", ""]
    importance = param_importances(table, space, metric, mode)
    best = best_row(trials, metric, mode)
    if importance is None:
        lines.append(f"Too few finished trials ({len(trials)}) for an importance estimate (at least {MIN_TRIALS}).")
    else:
        lines += [f"Importance of each searched setting for {metric} (each trial's best epoch), estimated by Optuna's "
                  f"{importance.evaluator} over the {importance.trials} finished trials: how much each setting "
                  f"decides whether a trial reaches the top {importance.target_quantile:.0%}. An estimate, noisy with "
                  "few trials; it does not say which value is best. Plot: `importance.png`.", "",
                  "| setting | importance | best trial's value |", "| --- | --- | --- |"]
        lines += [f"| {key} | {value:.3f} | {_show(best[key]) if best is not None else ''} |"
                  for key, value in zip(importance.settings, importance.values)]
    if best is not None:
        ranked = trials.sort_values(f"best_{metric}", ascending=mode == "min").head(5)
        warnings = edge_warnings(best, space, top=ranked)
        lines += ["", "Range check (the best trial's value in the outer 10% of a range, or at the end of an "
                      "ordered choice):", ""]
        lines += [f"- **warning** {w.message}" if not w.at_limit else f"- note: {w.message}" for w in warnings] or \
            ["- every searched setting's best value lies inside its range."]
    return lines


def plot_importance(path: Path, table: pd.DataFrame, spec: SearchSpec) -> bool:
    """A bar per searched setting (edge warnings marked); False when there are too few trials to plot."""
    import matplotlib.pyplot as plt  # the backend is chosen in search.plots

    metric, mode = spec.settings.metric, spec.settings.mode
    importance = param_importances(table, spec.space, metric, mode)
    if importance is None:
        return False
    trials = finished_trials(table, metric)
    best = best_row(trials, metric, mode)
    flagged = {w.setting: w for w in edge_warnings(best, spec.space) if not w.at_limit}
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(importance.settings) + 1.4))
    names = list(importance.settings)[::-1]
    values = list(importance.values)[::-1]
    ax.barh(names, values, color=["C3" if n in flagged else "C0" for n in names])
    for y, name in enumerate(names):
        if name in flagged:
            ax.text(values[y], y, f"  best at {flagged[name].side} bound {_show(flagged[name].bound)}",
                    va="center", fontsize=8, color="C3")
    ax.set(xlabel=f"importance for reaching the top {importance.target_quantile:.0%} ({importance.trials} trials)",
           title=f"What mattered for {metric} (PED-ANOVA estimate)", xlim=(0, max(values) * 1.6 or 1))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
