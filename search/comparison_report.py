"""The model against the baselines (core.comparison's figures) as markdown, for report.md and bench/quality.py."""
from __future__ import annotations

from typing import Any

LABELS = {"model": "model", "markov": "Markov (last item)", "most_popular": "most popular"}


def _signed(value: float) -> str:
    return f"{value:+.4f}"


def _p_value(p: float) -> str:
    return f"{p:.3g}" if p >= 1e-4 else "< 1e-4"


def margin_table(comparison: dict[str, Any]) -> list[str]:
    """One row per baseline: the mean per-target difference, its 95% intervals, Wilcoxon, and whether 0 is out."""
    lines = ["| against | model | baseline | difference | 95% bootstrap interval | 95% t interval | "
             "Wilcoxon z (p) | interval excludes 0 |", "|" + " --- |" * 8]
    for name, paired in comparison["paired"].items():
        lines.append(f"| {LABELS.get(name, name)} | {paired['model']:.4f} | {paired['baseline']:.4f} | "
                     f"{_signed(paired['difference'])} | [{_signed(paired['bootstrap_low'])}, "
                     f"{_signed(paired['bootstrap_high'])}] | "
                     f"[{_signed(paired['t_low'])}, {_signed(paired['t_high'])}] | "
                     f"{paired['wilcoxon_z']:.2f} ({_p_value(paired['wilcoxon_p'])}) | "
                     f"{'yes' if paired['excludes_zero'] else 'no'} |")
    return lines


def catalogue_table(comparison: dict[str, Any]) -> list[str]:
    """Coverage, mean popularity and long-tail share of each recommender's top-K lists, and the targets' own."""
    lines = ["| recommender | catalogue coverage | mean popularity (training count) | long-tail share |",
             "| --- | --- | --- | --- |"]
    for name, figures in comparison["catalogue"].items():
        if name == "targets":
            continue
        lines.append(f"| {LABELS.get(name, name)} | {figures['coverage']:.1%} | {figures['mean_popularity']:.1f} | "
                     f"{figures['tail_share']:.1%} |")
    targets = comparison["catalogue"]["targets"]
    lines.append(f"| the test targets themselves | | {targets['mean_popularity']:.1f} | {targets['tail_share']:.1%} |")
    return lines


def slice_table(comparison: dict[str, Any]) -> list[str]:
    """NDCG at the first K of every recommender on each history-length and target-popularity slice."""
    names = [n for n in next(iter(comparison["by_history_length"].values())) if n != "targets"]
    lines = ["| slice | targets | " + " | ".join(LABELS.get(n, n) for n in names) + " |",
             "|" + " --- |" * (len(names) + 2)]
    for title, key in (("history of {} items", "by_history_length"), ("target in the {}", "by_target_popularity")):
        for label, row in comparison[key].items():
            scores = ("-" if row["targets"] == 0 else f"{row[n]:.4f}" for n in names)  # an empty slice has no mean
            lines.append(f"| {title.format(label)} | {row['targets']} | " + " | ".join(scores) + " |")
    return lines


def comparison_markdown(comparison: dict[str, Any], split: str = "test") -> list[str]:
    """The three tables with their headings and what they mean, as report lines."""
    metric, k = comparison["metric"].upper(), comparison["top_k"]
    seeds = comparison["seeds"]
    averaged = f"averaged over its {seeds} seeds per target" if seeds > 1 else "one seed"
    rule = ("seen items excluded" if comparison["exclude_seen"] else
            "seen items ranked last" if comparison["seen_items_last"] else "seen items kept")
    return [
        f"## The margin over the baselines, target by target ({split} {metric})", "",
        f"Per-target {metric} of the model ({averaged}) minus the baseline's, on the same targets, every ranking "
        f"with {rule}. Intervals: 95%, from 2,000 paired bootstrap resamples of the targets (seeded) and the "
        "paired t interval; the Wilcoxon signed-rank test uses the normal approximation with the tie correction.",
        "", *margin_table(comparison), "",
        f"## Beyond accuracy: the top-{k} list of every {split} target", "",
        f"Coverage: distinct items recommended / catalogue items. Popularity: training count. Long tail: items "
        f"outside the top 20% by training count. Model: {comparison.get('catalogue_of', 'one seed')}.", "",
        *catalogue_table(comparison), "",
        f"## {metric} by slice (history length: the customer's events before the target)", "",
        *slice_table(comparison), ""]
