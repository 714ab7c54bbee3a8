"""The search's reports from hand-built trial records (no Ray)."""
import dataclasses

import pandas as pd
import yaml

from core.config import build_config
from search.plan import SearchPlan, Status
from search.trials import TrialRecord, trial_table
from search.reports import SearchFacts, seen_last_key, write_outputs, write_summary
from search.space import SearchSettings, SearchSpec


def record(trial_id, ndcg, done=True, error=None, lr=0.001, patience=0):
    history = pd.DataFrame({"epoch": range(1, len(ndcg) + 1), "val_ndcg@5": ndcg, "val_hr@5": [2 * v for v in ndcg],
                            "markov_blend": [0.5 * i for i in range(len(ndcg))]})
    return TrialRecord(trial_id=trial_id, started=0.0, config=dict(build_config({}).to_dict(), lr=lr, patience=patience),
                       history=history, error=error, done=done, wall_seconds=1.5)


RECORDS = [record("a", [0.1, 0.3, 0.2]), record("b", [0.05]), record("c", [0.2, 0.25], done=False, lr=0.01),
           record("d", [], error="DivergedError: training loss became nan; try a lower lr"),
           record("e", [0.2, 0.1], patience=1)]


def test_statuses_best_epochs_and_metrics_at_the_best_epoch():
    table = trial_table(RECORDS, ["lr"], "val_ndcg@5", "max", max_epochs=3).set_index("trial_id")
    assert table["status"].to_dict() == {"a": "completed", "b": "early-stopped", "c": "unfinished", "d": "errored",
                                         "e": "plateaued"}
    assert (table.loc["a", "best_val_ndcg@5"], table.loc["a", "peak_epoch"]) == (0.3, 2)
    assert table.loc["a", "best_val_hr@5"] == 0.6 and table.loc["a", "last_val_ndcg@5"] == 0.2
    assert table.loc["a", "markov_blend"] == 0.5
    assert pd.isna(table.loc["d", "best_val_ndcg@5"]) and "nan" in table.loc["d", "error"]
    lowest = trial_table(RECORDS, ["lr"], "val_ndcg@5", "min", max_epochs=3).set_index("trial_id")
    assert lowest.loc["a", "peak_epoch"] == 1


def test_reports_name_the_best_trial_its_peak_epoch_and_the_errors(tmp_path):
    spec = SearchSpec(space={"lr": {"loguniform": [0.0001, 0.1]}},
                      settings=SearchSettings(max_epochs=3, grace_period=1, reduction_factor=4))
    plan = SearchPlan(name="hand", storage=str(tmp_path), folder=str(tmp_path), samples=5, cpus_per_trial=1,
                      gpus_per_trial=0, concurrency=2, config=build_config({}).to_dict(), search=spec.to_dict(),
                      status=Status.INTERRUPTED, created="2026-11-30T12:00:00", wall_seconds=10.0)
    facts = SearchFacts(data_stats="", baselines={"markov": {"ndcg@5": 0.15, "hr@5": 0.3, "mrr@5": 0.1},
                                                  "most_popular": {"ndcg@5": 0.05, "hr@5": 0.1, "mrr@5": 0.03}},
                        ray_start_seconds=2.0, prepare_seconds=0.1, trial_seconds=6.0, default_trial_id="b")
    write_outputs(tmp_path, RECORDS, plan, spec, facts)
    best = yaml.safe_load((tmp_path / "best_config.yaml").read_text())
    assert (best["epochs"], best["lr"], best["markov_blend"]) == (2, 0.001, 0.5)  # the weight chosen at the peak
    assert (tmp_path / "best_config.yaml").read_text().startswith("# Best trial a of search hand: val_ndcg@5 0.30000")
    summary = (tmp_path / "summary.md").read_text()
    assert "at epoch 2; lr=0.001; chosen on validation: markov_blend 0.5. Config:" in summary
    assert "**INTERRUPTED** (5 of 5 trials started)" in summary
    assert f"`python -m search.run --resume --name hand --storage {tmp_path}`" in summary
    assert "1 completed, 1 plateaued (patience), 1 early-stopped (ASHA), 1 errored, 1 unfinished" in summary
    assert "Trial-epochs used: 8 of 15" in summary
    assert "| base config (its best epoch) | 0.1 | " in summary
    assert "| Markov (last item) | 0.3 | 0.1 | 0.15 |" in summary  # the best chose no seen-item rule: the config's
    assert "- trial 4 (d): DivergedError: training loss became nan" in summary
    assert all((tmp_path / f).is_file() for f in ("trials.csv", "search_progress.png", "parameters.png"))
    assert "seeded sample" not in summary
    sampled = dataclasses.replace(plan, config=build_config({"val_sample": 500}).to_dict())
    write_summary(tmp_path / "sampled.md", trial_table(RECORDS, ["lr"], "val_ndcg@5", "max", max_epochs=3),
                  sampled, spec, facts)
    assert "Validation scored on a fixed, seeded sample of 500 targets" in (tmp_path / "sampled.md").read_text()


def test_the_summary_ranks_the_baselines_as_the_best_trial_ranked_seen_items(tmp_path):
    chose_last = record("s", [0.1, 0.3])
    chose_last.history["seen_last"] = [0.0, 1.0]  # at its peak (epoch 2), seen items last
    spec = SearchSpec(space={"lr": {"loguniform": [0.0001, 0.1]}},
                      settings=SearchSettings(max_epochs=3, grace_period=1, reduction_factor=4))
    plan = SearchPlan(name="seen", storage=str(tmp_path), folder=str(tmp_path), samples=1, cpus_per_trial=1,
                      gpus_per_trial=0, concurrency=1, config=build_config({}).to_dict(), search=spec.to_dict(),
                      status=Status.FINISHED, created="2026-12-04T12:00:00", wall_seconds=1.0)
    kept, last = {"ndcg@5": 0.11, "hr@5": 0.2, "mrr@5": 0.1}, {"ndcg@5": 0.17, "hr@5": 0.3, "mrr@5": 0.15}
    facts = SearchFacts(data_stats="", baselines={"markov": kept, "most_popular": kept, seen_last_key("markov"): last,
                                                  seen_last_key("most_popular"): last},
                        ray_start_seconds=0.0, prepare_seconds=0.0, trial_seconds=1.0, default_trial_id=None)
    write_outputs(tmp_path, [chose_last], plan, spec, facts)
    summary = (tmp_path / "summary.md").read_text()
    assert "| Markov (last item) | 0.3 | 0.15 | 0.17 |" in summary and "0.11" not in summary  # hr, mrr, ndcg


def test_the_plots_show_every_trial_the_baselines_the_top_curves_and_each_setting(tmp_path, saved_figures):
    spec = SearchSpec(space={"lr": {"loguniform": [0.0001, 0.1]}, "hidden_dim": {"choice": [16, 32, 64]}},
                      settings=SearchSettings(max_epochs=3, grace_period=1, reduction_factor=4))
    plan = SearchPlan(name="hand", storage=str(tmp_path), folder=str(tmp_path), samples=5, cpus_per_trial=1,
                      gpus_per_trial=0, concurrency=2, config=build_config({}).to_dict(), search=spec.to_dict(),
                      status=Status.INTERRUPTED, created="2026-11-30T12:00:00", wall_seconds=10.0)
    facts = SearchFacts(data_stats="", baselines={"markov": {"ndcg@5": 0.15}, "most_popular": {"ndcg@5": 0.05}},
                        ray_start_seconds=0.0, prepare_seconds=0.0, trial_seconds=1.0, default_trial_id=None)
    write_outputs(tmp_path, RECORDS, plan, spec, facts)
    progress, = saved_figures["search_progress.png"].axes
    assert (progress.get_xlabel(), progress.get_ylabel(), progress.get_title()) == ("trial", "val_ndcg@5", "Search hand")
    assert progress.get_legend_handles_labels()[1] == ["trial's best", "best so far", "markov", "most popular"]
    assert len(progress.collections[0].get_offsets()) == len(RECORDS)  # one point per trial, the errored one as nan
    curves, = saved_figures["learning_curves.png"].axes
    assert curves.get_legend_handles_labels()[1] == ["trial 1", "trial 3", "trial 5", "trial 2"]  # best first
    assert [len(line.get_xdata()) for line in curves.lines] == [3, 2, 2, 1]  # every epoch each reported
    lr, hidden = saved_figures["parameters.png"].axes
    assert (lr.get_xlabel(), lr.get_xscale(), hidden.get_xlabel()) == ("lr", "log", "hidden_dim")
    assert [tick.get_text() for tick in hidden.get_xticklabels()] == ["16", "32", "64"]  # a choice, in file order
