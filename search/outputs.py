"""What a search leaves in results/<name>/: trials.csv, best_config.yaml, summary.md and plots.

Works on plain trial records (see search.run.trial_records), so it is testable without Ray.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from search import importance

STATUS_COMPLETED, STATUS_STOPPED, STATUS_ERRORED, STATUS_UNFINISHED = "completed", "early-stopped", "errored", "unfinished"


def trial_status(record: dict[str, Any], max_epochs: int) -> str:
    if record["error"]:
        return STATUS_ERRORED
    if not record["done"]:
        return STATUS_UNFINISHED
    return STATUS_COMPLETED if record["epochs"] >= max_epochs else STATUS_STOPPED


def trial_table(records: list[dict[str, Any]], space_keys: list[str], metric: str, mode: str,
                max_epochs: int) -> pd.DataFrame:
    """One row per trial (in the order they started): sampled values, status, epochs, best and last validation
    metrics, wall time."""
    rows = []
    for number, record in enumerate(records, start=1):
        history: pd.DataFrame = record["history"]
        row = {"trial": number, "trial_id": record["trial_id"], "status": trial_status(record, max_epochs),
               **{key: record["config"].get(key) for key in space_keys}, "epochs": record["epochs"]}
        if len(history) and metric in history:
            values = history[metric].to_numpy(dtype=float)
            if np.isnan(values).all():
                best = len(values) - 1
            else:
                best = int(np.nanargmax(values) if mode == "max" else np.nanargmin(values))
            row.update({f"best_{metric}": values[best], "best_epoch": int(history["epoch"].iloc[best])})
            for column in [c for c in history.columns if c.startswith("val_") and c != metric]:
                row[f"best_{column}"] = history[column].iloc[best]  # at the best epoch
            for column in [c for c in history.columns if c.startswith("val_")]:
                row[f"last_{column}"] = history[column].iloc[-1]
        row["wall_seconds"] = record["wall_seconds"]
        row["error"] = record["error"] or ""
        rows.append(row)
    return pd.DataFrame(rows)


def best_row(table: pd.DataFrame, metric: str, mode: str) -> pd.Series | None:
    column = f"best_{metric}"
    if column not in table or table[column].isna().all():
        return None
    index = table[column].idxmax() if mode == "max" else table[column].idxmin()
    return table.loc[index]


def write_best_config(path: Path, record: dict[str, Any], row: pd.Series, metric: str, experiment: str) -> None:
    """The best trial's complete config with `epochs` set to the epoch where it peaked: ready to retrain."""
    config = dict(record["config"], epochs=int(row["best_epoch"]))
    header = (f"# Best trial {row['trial_id']} of search {experiment}: {metric} {row[f'best_{metric}']:.5f} "
              f"at epoch {int(row['best_epoch'])} (ran {int(row['epochs'])} epochs, {row['status']}).\n"
              f"# `epochs` is that peak epoch. Retrain: python -m search.retrain {path.parent}\n")
    path.write_text(header + yaml.safe_dump(config, sort_keys=False))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def markdown_table(frame: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + " --- |" * len(frame.columns)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def write_summary(path: Path, table: pd.DataFrame, info: dict[str, Any]) -> None:
    """A short report a person reads first: status, best trial, baselines, top 10, failures, effort."""
    metric, space_keys = info["metric"], info["space_keys"]
    counts = table["status"].value_counts() if len(table) else pd.Series(dtype=int)
    used = int(table["epochs"].sum()) if len(table) else 0
    budget = info["samples"] * info["max_epochs"]
    lines = [f"# Search {info['name']}", ""]
    if info["finished"]:
        lines.append(f"Status: **finished** ({len(table)} of {info['samples']} trials).")
    else:
        lines.append(f"Status: **INTERRUPTED** ({len(table)} of {info['samples']} trials started). Resume with "
                     f"`python -m search.run --resume --name {info['name']}`.")
    lines += [
        "", f"Data: `{info['data']}` ({info['data_stats']}).",
        f"Objective: {metric} ({info['mode']}); " + (
            f"ASHA grace period {info['grace_period']}, reduction factor {info['reduction_factor']}, "
            if info["scheduler"] == "asha" else "FIFO (no early stopping), ") +
        f"at most {info['max_epochs']} epochs; Optuna TPE seed {info['seed']}; "
        f"{info['concurrency']} trials at a time, {info['cpus_per_trial']} CPU and {info['gpus_per_trial']} GPU each.",
        f"Trials: {counts.get(STATUS_COMPLETED, 0)} completed, {counts.get(STATUS_STOPPED, 0)} early-stopped, "
        f"{counts.get(STATUS_ERRORED, 0)} errored, {counts.get(STATUS_UNFINISHED, 0)} unfinished.",
        f"Trial-epochs used: {used} of {budget} ({info['samples']} x {info['max_epochs']}; "
        f"{used / max(budget, 1):.0%}).",
        f"Wall time: {info['wall_seconds']:.0f} s (Ray start-up {info['ray_start_seconds']:.1f} s, data preparation "
        f"{info['prepare_seconds']:.1f} s, trial compute {info['trial_seconds']:.0f} trial-seconds).",
    ]
    best = best_row(table, metric, info["mode"])
    if best is not None:
        values = ", ".join(f"{k}={_fmt(best[k])}" for k in space_keys)
        lines += ["", "## Best trial", "",
                  f"Trial {int(best['trial'])} ({best['trial_id']}): {metric} **{best[f'best_{metric}']:.4f}** at epoch "
                  f"{int(best['best_epoch'])}; {values}. Config: `best_config.yaml`."]
    lines += ["", "## Against the baselines (validation, same targets and metric code)", "",
              _comparison(table, best, info)]
    ranked = table.dropna(subset=[f"best_{metric}"]) if f"best_{metric}" in table else table.iloc[:0]
    ranked = ranked.sort_values(f"best_{metric}", ascending=info["mode"] == "min") if len(ranked) else ranked
    if len(ranked):
        columns = ["trial", "trial_id", f"best_{metric}", "best_epoch", "epochs", "status", *space_keys]
        lines += ["", "## Top 10", "", markdown_table(ranked[columns].head(10))]
    errored = table[table["status"] == STATUS_ERRORED] if len(table) else table
    if len(errored):
        lines += ["", "## Errored trials", ""]
        lines += [f"- trial {int(r['trial'])} ({r['trial_id']}): {r['error']}" for _, r in errored.iterrows()]
    lines += importance.summary_lines(table, info)  # importance of each setting, edge-of-range warnings
    lines += ["", "Plots: `search_progress.png`, `learning_curves.png`, `parameters.png`, `importance.png`. "
                  "Every trial: `trials.csv`.", ""]
    path.write_text("\n".join(lines))


def _comparison(table: pd.DataFrame, best: pd.Series | None, info: dict[str, Any]) -> str:
    k = info["metric"].rsplit("@", 1)[-1] if "@" in info["metric"] else "5"
    names = [f"hr@{k}", f"mrr@{k}", f"ndcg@{k}"]
    rows = []
    if best is not None:
        rows.append(["best trial (its best epoch)"] + [best.get(f"best_val_{n}", float("nan")) for n in names])
    default = table[table["trial_id"] == info.get("default_trial_id")] if len(table) else table
    if len(default):
        rows.append(["base config (its best epoch)"] + [default.iloc[0].get(f"best_val_{n}", float("nan"))
                                                       for n in names])
    for name, label in (("markov", "Markov (last item)"), ("most_popular", "most popular")):
        rows.append([label] + [info["baselines"][name].get(n, float("nan")) for n in names])
    return markdown_table(pd.DataFrame(rows, columns=["recommender", *names]))


def write_plots(folder: Path, records: list[dict[str, Any]], table: pd.DataFrame, info: dict[str, Any]) -> None:
    """Best-so-far against trial number, learning curves of the top trials, each parameter against the metric."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric, mode = info["metric"], info["mode"]
    column = f"best_{metric}"
    if column not in table or table[column].isna().all():
        return
    scores = table[column].to_numpy(dtype=float)
    best_so_far = (np.fmax.accumulate if mode == "max" else np.fmin.accumulate)(scores)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.scatter(table["trial"], scores, s=14, alpha=0.6, label="trial's best")
    ax.step(table["trial"], best_so_far, where="post", color="C3", label="best so far")
    for name, style in (("markov", "--"), ("most_popular", ":")):
        value = info["baselines"][name].get(metric.removeprefix("val_"))
        if value is not None:
            ax.axhline(value, color="grey", linestyle=style, label=name.replace("_", " "))
    ax.set(xlabel="trial", ylabel=metric, title=f"Search {info['name']}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(folder / "search_progress.png", dpi=110)
    plt.close(fig)

    top = table.dropna(subset=[column]).sort_values(column, ascending=mode == "min").head(5)
    by_id = {r["trial_id"]: r for r in records}
    fig, ax = plt.subplots(figsize=(7, 4))
    for _, row in top.iterrows():
        history = by_id[row["trial_id"]]["history"]
        ax.plot(history["epoch"], history[metric], marker="o", ms=3, label=f"trial {int(row['trial'])}")
    ax.set(xlabel="epoch", ylabel=metric, title="Learning curves of the top trials")
    ax.legend()
    fig.tight_layout()
    fig.savefig(folder / "learning_curves.png", dpi=110)
    plt.close(fig)

    keys = info["space_keys"]
    cols = min(4, len(keys))
    fig, axes = plt.subplots(math.ceil(len(keys) / cols), cols, figsize=(3.2 * cols, 2.8 * math.ceil(len(keys) / cols)),
                             squeeze=False)
    for ax, key in zip(axes.flat, keys):
        values = table[key]
        if "choice" in info["space"][key]:  # categories, evenly spaced in the order of the space file
            choices = info["space"][key]["choice"]
            values = values.map(lambda v: next((i for i, c in enumerate(choices) if c == v), np.nan))
            ax.set_xticks(range(len(choices)), [str(c) for c in choices])
        ax.scatter(values, scores, s=12, alpha=0.7)
        if info["space"][key].get("loguniform") or info["space"][key].get("logint"):
            ax.set_xscale("log")
        ax.set(xlabel=key, ylabel=metric)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(folder / "parameters.png", dpi=110)
    plt.close(fig)


def write_outputs(folder: Path, records: list[dict[str, Any]], info: dict[str, Any]) -> pd.DataFrame:
    """trials.csv, best_config.yaml, summary.md and the plots; returns the trials table."""
    table = trial_table(records, info["space_keys"], info["metric"], info["mode"], info["max_epochs"])
    table.to_csv(folder / "trials.csv", index=False)
    best = best_row(table, info["metric"], info["mode"])
    if best is not None:
        record = next(r for r in records if r["trial_id"] == best["trial_id"])
        write_best_config(folder / "best_config.yaml", record, best, info["metric"], info["name"])
    write_summary(folder / "summary.md", table, info)
    write_plots(folder, records, table, info)
    importance.plot_importance(folder / "importance.png", table, info)
    return table
