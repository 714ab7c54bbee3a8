"""Importance and edge-of-range warnings on hand-made trials (no Ray)."""
import numpy as np
import pandas as pd

from search.importance import (
    edge_warnings,
    param_importances,
    plot_importance,
    summary_lines,
)
from search.space import SearchSettings, SearchSpec

SPACE = {"lr": {"loguniform": [0.0001, 0.1]}, "dropout": {"uniform": [0.0, 0.5]},
         "hidden_dim": {"choice": [16, 32, 64]}, "batch_size": {"int": [16, 256]}}
SPEC = SearchSpec(space=SPACE, settings=SearchSettings())


def trials(n=40, seed=0):
    """lr alone drives the objective (higher is better); the other settings are noise."""
    rng = np.random.default_rng(seed)
    lr = np.exp(rng.uniform(np.log(0.0001), np.log(0.1), n))
    frame = pd.DataFrame({"trial": range(1, n + 1), "status": "completed", "lr": lr,
                          "dropout": rng.uniform(0.0, 0.5, n), "hidden_dim": rng.choice([16, 32, 64], n),
                          "batch_size": rng.integers(16, 257, n)})
    frame["best_val_ndcg@5"] = 0.1 + 0.05 * np.log10(lr / 0.0001) + rng.normal(0, 0.002, n)
    return frame


def test_importance_ranks_the_setting_that_drives_the_objective_first():
    importance = param_importances(trials(), SPACE, "val_ndcg@5", "max")
    assert importance.settings[0] == "lr" and importance.values[0] > 0.5
    assert set(importance.settings) == set(SPACE) and abs(sum(importance.values) - 1) < 1e-6
    assert importance.trials == 40 and "PED-ANOVA" in importance.evaluator
    # minimising the same numbers: lr still decides, now at its low end
    assert param_importances(trials(), SPACE, "val_ndcg@5", "min").settings[0] == "lr"


def test_errored_unfinished_and_out_of_space_trials_are_left_out():
    table = trials()
    table.loc[:4, "status"] = ["errored", "unfinished", "completed", "completed", "early-stopped"]
    table.loc[2, "lr"] = 5.0  # outside the space: not told to Optuna
    table.loc[3, "best_val_ndcg@5"] = np.nan
    assert param_importances(table, SPACE, "val_ndcg@5", "max").trials == 36
    assert param_importances(table.head(5), SPACE, "val_ndcg@5", "max") is None


def test_a_best_value_at_a_bound_is_warned_about_one_in_the_middle_is_not():
    best = {"lr": 0.095, "dropout": 0.25, "hidden_dim": 64, "batch_size": 20}
    warnings = {w.setting: w for w in edge_warnings(best, SPACE)}
    assert set(warnings) == {"lr", "hidden_dim", "batch_size"}
    assert (warnings["lr"].side, warnings["lr"].bound) == ("upper", 0.1)
    assert "lr: the best trial's value 0.095 is in the top 10% of [0.0001, 0.1] (log scale)" in warnings["lr"].message
    assert "widen the upper bound 0.1" in warnings["lr"].message
    assert "add a larger value" in warnings["hidden_dim"].message
    assert (warnings["batch_size"].side, warnings["batch_size"].bound) == ("lower", 16)
    # log scale: 0.05 is near the top of [0.0001, 0.1] on a line, but not in log terms
    assert not edge_warnings({"lr": 0.05}, {"lr": SPACE["lr"]})
    # two choices, or unordered ones, have no "end" worth a warning
    assert not edge_warnings({"num_layers": 2, "device": "cpu"},
                             {"num_layers": {"choice": [1, 2]}, "device": {"choice": ["cpu", "cuda", "auto"]}})


def test_a_bound_that_is_the_settings_own_limit_is_a_note_not_advice_to_widen():
    warning, = edge_warnings({"dropout": 0.01}, {"dropout": SPACE["dropout"]})
    assert warning.at_limit and "own limit, nothing to widen" in warning.message


def test_summary_section_and_plot(tmp_path, saved_figures):
    lines = "\n".join(summary_lines(trials(), SPEC))
    assert "## What mattered" in lines and "PED-ANOVA" in lines and "40 finished trials" in lines
    table_rows = [line for line in lines.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert table_rows[0].startswith("| lr | ")
    assert "- **warning** lr: the best trial's value" in lines and "widen the upper bound 0.1" in lines
    assert "dropout:" not in lines.split("Range check")[1]
    assert plot_importance(tmp_path / "importance.png", trials(), SPEC)
    bars, = saved_figures["importance.png"].axes
    assert len(bars.patches) == len(SPEC.space) and bars.get_title() == "What mattered for val_ndcg@5 (PED-ANOVA estimate)"
    assert [label.get_text() for label in bars.get_yticklabels()][-1] == "lr"  # the most important on top
    assert any(text.get_text().startswith("  best at upper bound 0.1") for text in bars.texts)  # its edge warning
    few = "\n".join(summary_lines(trials(3), SPEC))
    assert "Too few finished trials (3)" in few
    assert not plot_importance(tmp_path / "none.png", trials(3), SPEC)
