"""What a search and a retrain leave for a person to read: trials.csv, best_config.yaml, summary.md (plots in
search.plots) and the retrained model's test report.

Works on plain trial records (search.tuner.trial_records makes them from Tune's results), so it is
testable without Ray.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from core.config import build_config
from core.metrics import KINDS, metric_name, parse_metric_name
from core.validation import validation_choices
from search import importance
from search.comparison_report import comparison_markdown
from search.plan import BEST_CONFIG_FILE, SearchPlan, Status
from search.plots import write_plots
from search.space import SearchSpec
from search.trials import (
    STATUS_COMPLETED,
    STATUS_ERRORED,
    STATUS_PLATEAUED,
    STATUS_STOPPED,
    STATUS_UNFINISHED,
    TrialRecord,
    best_row,
    trial_table,
)


@dataclass(frozen=True)
class SearchFacts:
    """What running the search learned, beyond its plan: the data, the baselines and where the time went."""
    data_stats: str
    baselines: dict[str, dict[str, float]]  # recommender -> validation metrics
    ray_start_seconds: float
    prepare_seconds: float
    trial_seconds: float
    default_trial_id: str | None            # the trial that ran the base config, if any


def write_best_config(path: Path, record: TrialRecord, row: pd.Series, metric: str, experiment: str) -> None:
    """The best trial's complete config with `epochs` set to its peak epoch: ready to retrain."""
    at_peak = {k: row[k] for k in ("markov_blend", "seen_last") if k in row and np.isfinite(row[k])}
    chosen = validation_choices(build_config(record.config), at_peak, None)
    config = dict(record.config, epochs=int(row["peak_epoch"]), **chosen)
    blend = "".join(f", `{key}` as chosen there" for key in chosen)
    header = (f"# Best trial {row['trial_id']} of search {experiment}: {metric} {row[f'best_{metric}']:.5f} "
              f"at epoch {int(row['peak_epoch'])} (ran {int(row['epochs_run'])} epochs, {row['status']}).\n"
              f"# `epochs` is that peak epoch{blend}. Retrain: python -m search.retrain {path.parent}\n")
    path.write_text(header + yaml.safe_dump(config, sort_keys=False))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def markdown_table(frame: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + " --- |" * len(frame.columns)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def _chosen_at_peak(row: pd.Series) -> str:
    """What validation chose at the best trial's peak, for the summary ("" when nothing was chosen)."""
    parts = []
    if pd.notna(row.get("markov_blend", float("nan"))):
        parts.append(f"markov_blend {row['markov_blend']:g}")
    if pd.notna(row.get("seen_last", float("nan"))):
        parts.append(f"seen_items {'last' if row['seen_last'] else 'keep'}")
    return f"; chosen on validation: {', '.join(parts)}" if parts else ""


def write_summary(path: Path, table: pd.DataFrame, plan: SearchPlan, spec: SearchSpec, facts: SearchFacts) -> None:
    """A short report a person reads first: status, best trial, baselines, top 10, failures, effort."""
    settings, space_keys = spec.settings, list(spec.space)
    metric = settings.metric
    lines = [f"# Search {plan.name}", "", _status_line(table, plan), "",
             f"Data: `{plan.config['data']}` ({facts.data_stats}).", *_effort_lines(table, plan, spec, facts)]
    if plan.config.get("val_sample"):
        lines.append(f"Validation scored on a fixed, seeded sample of {plan.config['val_sample']} targets "
                     "(`val_sample`; trials and baselines alike); retraining validates and tests on every target.")
    if plan.warm_start:
        lines.append(f"Warm start: Optuna first learnt the finished trials of `{plan.warm_start}`.")
    best = best_row(table, metric, settings.mode)
    if best is not None:
        values = ", ".join(f"{k}={_fmt(best[k])}" for k in space_keys)
        lines += ["", "## Best trial", "",
                  f"Trial {int(best['trial'])} ({best['trial_id']}): {metric} **{best[f'best_{metric}']:.4f}** at epoch "
                  f"{int(best['peak_epoch'])}; {values}{_chosen_at_peak(best)}. Config: `{BEST_CONFIG_FILE}`."]
    lines += ["", "## Against the baselines (validation, same targets, metric code and seen-item rule)", "",
              _comparison(table, best, metric, facts)]
    ranked = table.dropna(subset=[f"best_{metric}"]) if f"best_{metric}" in table else table.iloc[:0]
    ranked = ranked.sort_values(f"best_{metric}", ascending=settings.mode == "min") if len(ranked) else ranked
    if len(ranked):
        columns = ["trial", "trial_id", f"best_{metric}", "peak_epoch", "epochs_run", "status", *space_keys]
        lines += ["", "## Top 10", "", markdown_table(ranked[columns].head(10))]
    errored = table[table["status"] == STATUS_ERRORED] if len(table) else table
    if len(errored):
        lines += ["", "## Errored trials", ""]
        lines += [f"- trial {int(r['trial'])} ({r['trial_id']}): {r['error']}" for _, r in errored.iterrows()]
    lines += importance.summary_lines(table, spec)  # importance of each setting, edge-of-range warnings
    lines += ["", "Plots: `search_progress.png`, `learning_curves.png`, `parameters.png`, `importance.png`. "
                  "Every trial: `trials.csv`.", ""]
    path.write_text("\n".join(lines))


def _status_line(table: pd.DataFrame, plan: SearchPlan) -> str:
    if plan.status == Status.FINISHED:
        return f"Status: **finished** ({len(table)} of {plan.samples} trials)."
    return (f"Status: **INTERRUPTED** ({len(table)} of {plan.samples} trials started). Resume with "
            f"`{plan.resume_command()}`.")


def _effort_lines(table: pd.DataFrame, plan: SearchPlan, spec: SearchSpec, facts: SearchFacts) -> list[str]:
    settings = spec.settings
    counts = table["status"].value_counts() if len(table) else pd.Series(dtype=int)
    used = int(table["epochs_run"].sum()) if len(table) else 0
    budget = plan.samples * settings.max_epochs
    scheduler = (f"ASHA grace period {settings.grace_period}, reduction factor {settings.reduction_factor}"
                 f"{' (the base config never stopped)' if settings.keep_base else ''}, "
                 if settings.scheduler == "asha" else "FIFO (no early stopping), ")
    return [
        f"Objective: {settings.metric} ({settings.mode}); {scheduler}at most {settings.max_epochs} epochs; "
        f"Optuna TPE seed {settings.seed}, {settings.startup_trials} start-up trials; {plan.concurrency} trials "
        f"at a time, {plan.cpus_per_trial} CPU and "
        f"{plan.gpus_per_trial} GPU each.",
        f"Trials: {counts.get(STATUS_COMPLETED, 0)} completed, {counts.get(STATUS_PLATEAUED, 0)} plateaued "
        f"(patience), {counts.get(STATUS_STOPPED, 0)} early-stopped (ASHA), "
        f"{counts.get(STATUS_ERRORED, 0)} errored, {counts.get(STATUS_UNFINISHED, 0)} unfinished.",
        f"Trial-epochs used: {used} of {budget} ({plan.samples} x {settings.max_epochs}; "
        f"{used / max(budget, 1):.0%}).",
        f"Wall time: {plan.wall_seconds:.0f} s (Ray start-up {facts.ray_start_seconds:.1f} s, data preparation "
        f"{facts.prepare_seconds:.1f} s, trial compute {facts.trial_seconds:.0f} trial-seconds).",
    ]


def seen_last_key(baseline: str) -> str:
    """Where SearchFacts.baselines keeps a baseline ranked with seen items last, beside the rule of the config."""
    return f"{baseline}_seen_last"


def baselines_under(baselines: dict[str, dict[str, float]], best: pd.Series | None) -> dict[str, dict[str, float]]:
    """The baselines ranked under the best trial's seen-item rule: seen items last where it chose so."""
    chosen = best.get("seen_last", float("nan")) if best is not None else float("nan")
    last = pd.notna(chosen) and bool(chosen)
    return {name: baselines.get(seen_last_key(name), baselines[name]) if last else baselines[name]
            for name in ("markov", "most_popular")}


def _comparison(table: pd.DataFrame, best: pd.Series | None, metric: str, facts: SearchFacts) -> str:
    k = parse_metric_name(metric)[2] or 5
    names = [metric_name(kind, k) for kind in KINDS]
    rows = []
    if best is not None:
        rows.append(["best trial (its best epoch)"] + [best.get(f"best_val_{n}", float("nan")) for n in names])
    default = table[table["trial_id"] == facts.default_trial_id] if len(table) else table
    if len(default):
        rows.append(["base config (its best epoch)"] + [default.iloc[0].get(f"best_val_{n}", float("nan"))
                                                       for n in names])
    baselines = baselines_under(facts.baselines, best)
    for name, label in (("markov", "Markov (last item)"), ("most_popular", "most popular")):
        rows.append([label] + [baselines[name].get(n, float("nan")) for n in names])
    return markdown_table(pd.DataFrame(rows, columns=["recommender", *names]))


def retrain_report(metrics: dict[str, Any], ks: tuple[int, ...]) -> str:
    """A retrained model's test results: mean ± std over seeds beside the baselines, every metric at every K."""
    names = [metric_name(kind, k) for k in ks for kind in KINDS]
    mean, std = metrics["model"]["mean"], metrics["model"]["std"]
    spread = (lambda n: f" ± {std[n]:.4f}") if len(metrics["seeds"]) > 1 else (lambda n: "")
    header = "| recommender | " + " | ".join(names) + " |\n|" + " --- |" * (len(names) + 1)
    rows = [f"| LSTM (best config, {len(metrics['seeds'])} seed{'s' * (len(metrics['seeds']) > 1)}) | "
            + " | ".join(f"{mean[n]:.4f}{spread(n)}" for n in names) + " |"]
    blend = metrics.get("markov_blend") or 0.0
    lstm_alone = metric_name("lstm_ndcg", ks[0])
    if blend and lstm_alone in mean:
        rows.append("| its LSTM alone (without the Markov blend) | " + " | ".join(
            f"{mean[lstm_alone]:.4f}{spread(lstm_alone)}" if n == metric_name("ndcg", ks[0]) else ""
            for n in names) + " |")
    for key, label in (("markov", "Markov (last item)"), ("most_popular", "most popular")):
        rows.append(f"| {label} | " + " | ".join(f"{metrics[key][n]:.4f}" for n in names) + " |")
    stats = metrics["data_stats"]
    return "\n".join([
        f"# Test results of search {metrics['experiment']}", "",
        f"Best config trained on training + validation for {metrics['epochs']} epochs (the best trial's peak)"
        + (f", scores blended with the Markov chain at weight {blend:g} (chosen on validation)" if blend else "")
        + (", items the customer already had ranked last (chosen on validation; the baselines rank them last too)"
           if metrics.get("seen_items") == "last" and not metrics["exclude_seen"] else "")
        + f", then evaluated once on test: {stats.get('test_targets')} targets "
        f"({stats.get('test_cold_targets')} with an item never seen in training, scored as they come), "
        f"full ranking over {stats.get('items')} items, seen items {'excluded' if metrics['exclude_seen'] else 'kept'}.",
        "", header, *rows, "",
        *(["One seed: no spread to report (retrain with --seeds 3 for mean ± std).", ""]
          if len(metrics["seeds"]) == 1 else []),
        *(comparison_markdown(metrics["comparison"]) if "comparison" in metrics else []),
        f"Data `{metrics['data']}` (fingerprint {metrics['data_fingerprint']}); seeds {metrics['seeds']}; "
        f"retrained {metrics['retrained']} in {metrics['retrain_seconds']} s. Model: `model.pt` "
        "(recommend with python -m search.recommend).", ""])


def write_outputs(folder: Path, records: list[TrialRecord], plan: SearchPlan, spec: SearchSpec,
                  facts: SearchFacts) -> pd.DataFrame:
    """trials.csv, best_config.yaml, summary.md and the plots; returns the trials table."""
    settings = spec.settings
    table = trial_table(records, list(spec.space), settings.metric, settings.mode, settings.max_epochs)
    table.to_csv(folder / "trials.csv", index=False)
    best = best_row(table, settings.metric, settings.mode)
    if best is not None:
        record = next(r for r in records if r.trial_id == best["trial_id"])
        write_best_config(folder / BEST_CONFIG_FILE, record, best, settings.metric, plan.name)
    write_summary(folder / "summary.md", table, plan, spec, facts)
    write_plots(folder, records, table, plan.name, spec, baselines_under(facts.baselines, best))
    importance.plot_importance(folder / "importance.png", table, spec)
    return table
