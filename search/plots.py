"""A search's plots: best-so-far against trial number, learning curves of the top trials, each searched
setting against the objective."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

from core.metrics import metric_name, parse_metric_name
from search.dimension import dimensions
from search.space import SearchSpec
from search.trials import TrialRecord

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)


def write_plots(folder: Path, records: list[TrialRecord], table: pd.DataFrame, name: str, spec: SearchSpec,
                baselines: dict[str, dict[str, float]]) -> None:
    """search_progress.png, learning_curves.png and parameters.png in folder."""
    metric, mode = spec.settings.metric, spec.settings.mode
    column = f"best_{metric}"
    if column not in table or table[column].isna().all():
        return
    scores = table[column].to_numpy(dtype=float)
    _progress(folder / "search_progress.png", table, scores, metric, mode, name, baselines)
    _learning_curves(folder / "learning_curves.png", records, table, metric, mode)
    _parameters(folder / "parameters.png", table, scores, metric, spec.space)


def _progress(path: Path, table: pd.DataFrame, scores: np.ndarray, metric: str, mode: str, name: str,
              baselines: dict[str, dict[str, float]]) -> None:
    best_so_far = (np.fmax.accumulate if mode == "max" else np.fmin.accumulate)(scores)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.scatter(table["trial"], scores, s=14, alpha=0.6, label="trial's best")
    ax.step(table["trial"], best_so_far, where="post", color="C3", label="best so far")
    for baseline, style in (("markov", "--"), ("most_popular", ":")):
        _, kind, k = parse_metric_name(metric)
        value = baselines[baseline].get(metric_name(kind, k))
        if value is not None:
            ax.axhline(value, color="grey", linestyle=style, label=baseline.replace("_", " "))
    ax.set(xlabel="trial", ylabel=metric, title=f"Search {name}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _learning_curves(path: Path, records: list[TrialRecord], table: pd.DataFrame, metric: str, mode: str) -> None:
    top = table.dropna(subset=[f"best_{metric}"]).sort_values(f"best_{metric}", ascending=mode == "min").head(5)
    by_id = {r.trial_id: r for r in records}
    fig, ax = plt.subplots(figsize=(7, 4))
    for _, row in top.iterrows():
        history = by_id[row["trial_id"]].history
        ax.plot(history["epoch"], history[metric], marker="o", ms=3, label=f"trial {int(row['trial'])}")
    ax.set(xlabel="epoch", ylabel=metric, title="Learning curves of the top trials")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _parameters(path: Path, table: pd.DataFrame, scores: np.ndarray, metric: str,
                space: dict[str, dict[str, list]]) -> None:
    searched = list(dimensions(space).values())
    cols = min(4, len(searched))
    rows = math.ceil(len(searched) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), squeeze=False)
    for ax, dimension in zip(axes.flat, searched):
        values = table[dimension.name]
        if dimension.is_choice:  # categories, evenly spaced in the order of the space file
            choices = dimension.values
            values = values.map(lambda v, choices=choices: next((i for i, c in enumerate(choices) if c == v), np.nan))
            ax.set_xticks(range(len(choices)), [str(c) for c in choices])
        ax.scatter(values, scores, s=12, alpha=0.7)
        if dimension.is_log:
            ax.set_xscale("log")
        ax.set(xlabel=dimension.name, ylabel=metric)
    for ax in list(axes.flat)[len(searched):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
