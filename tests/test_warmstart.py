"""Warm start: an earlier search's trials become Optuna's first knowledge, or are refused by setting name."""
import pandas as pd
import pytest

from core.config import build_config
from core.errors import ConfigError
from search.plan import SearchPlan, Status
from search.space import SearchSettings, SearchSpec
from search.tuner import searcher_for
from search.warmstart import load_warm_start

EARLIER_SPACE = {"lr": {"loguniform": [0.001, 0.01]}, "hidden_dim": {"choice": [16, 32]}}


def earlier_search(folder, space=EARLIER_SPACE, metric="val_ndcg@5"):
    spec = SearchSpec(space=space, settings=SearchSettings(metric=metric))
    SearchPlan(name=folder.name, storage=str(folder.parent), folder=str(folder), samples=4, cpus_per_trial=1,
               gpus_per_trial=0, concurrency=1, config=build_config({"embed_dim": 8}).to_dict(),
               search=spec.to_dict(), status=Status.FINISHED, created="2026-11-30T12:00:00").save()
    pd.DataFrame({"trial": [1, 2, 3, 4], "status": ["completed", "early-stopped", "errored", "completed"],
                  "lr": [0.002, 0.004, 0.003, 0.009], "hidden_dim": [16, 32, 16, 32],
                  "best_val_ndcg@5": [0.30, 0.35, None, 0.20]}).to_csv(folder / "trials.csv", index=False)
    return folder


def test_finished_trials_inside_todays_space_are_carried_over_with_their_values(tmp_path):
    folder = earlier_search(tmp_path / "earlier")
    today = SearchSpec(space={"lr": {"loguniform": [0.001, 0.005]}, "hidden_dim": {"choice": [16, 32, 64]},
                              "embed_dim": {"choice": [8, 16]}}, settings=SearchSettings())
    warm = load_warm_start(folder, today)
    # trial 3 errored (no value); trial 4's lr 0.009 is outside today's range
    assert warm.points == [{"lr": 0.002, "hidden_dim": 16, "embed_dim": 8}, {"lr": 0.004, "hidden_dim": 32, "embed_dim": 8}]
    assert warm.rewards == [0.30, 0.35] and warm.left_out == {"lr": 1}

    searcher = searcher_for(0, None, warm, tmp_path / "optuna.journal", "today")
    searcher.set_search_properties("val_ndcg@5", "max", today.domains())
    told = searcher._ot_study.trials  # what Optuna knows before proposing anything
    assert [(t.params, t.value) for t in told] == list(zip(warm.points, warm.rewards, strict=True))


def test_the_searcher_draws_the_start_up_trials_it_is_given(tmp_path):
    searcher = searcher_for(0, None, None, tmp_path / "optuna.journal", "s", startup_trials=3)
    assert searcher._sampler._n_startup_trials == 3
    assert searcher_for(0, None, None, tmp_path / "o.journal", "t")._sampler._n_startup_trials == 10


def test_incompatible_settings_are_refused_by_name(tmp_path):
    folder = earlier_search(tmp_path / "earlier")
    today = SearchSpec(space={"lr": {"loguniform": [0.001, 0.01]}, "hidden_dim": {"int": [16, 64]},
                              "embed_dim": {"choice": [16, 32]}}, settings=SearchSettings())
    with pytest.raises(ConfigError) as err:
        load_warm_start(folder, today)
    message = str(err.value)
    assert "hidden_dim: searched as {'choice': [16, 32]} there and {'int': [16, 64]} here" in message
    assert "embed_dim: fixed at 8 there, outside {'choice': [16, 32]} here" in message
    assert "lr" not in message.split("incompatible settings:")[1]


def test_another_objective_is_refused(tmp_path):
    folder = earlier_search(tmp_path / "earlier", metric="val_hr@5")
    with pytest.raises(ConfigError, match="optimised val_hr@5 \\(max\\), this one val_ndcg@5"):
        load_warm_start(folder, SearchSpec(space=EARLIER_SPACE, settings=SearchSettings()))
