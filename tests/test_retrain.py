"""Retrain and recommend on the output of a tiny search."""
import json
import shutil

import pandas as pd
import pytest
import yaml

from core.artifact import load_model, save_model
from core.config import build_config
from core.data import prepare_data
from core.errors import DataError
from core.fit import fit
from core.integrity import write_manifest
from core.recommend import recommend, recommend_for
from search import retrain as retrain_cli
from search import run as search_cli
from search.serving import recommend as recommend_cli
from tests.conftest import TINY_SEARCH, write_space


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    storage = tmp_path_factory.mktemp("results")
    assert search_cli.main(["--samples", "2", "--storage", str(storage), "--name", "tiny",
                            "--space", write_space(storage), *TINY_SEARCH]) == 0
    return storage / "tiny"


@pytest.mark.ray
def test_search_outputs_hold_no_test_metrics(searched):
    for path in searched.glob("*"):
        if path.suffix in (".csv", ".md", ".yaml"):
            assert "test_" not in path.read_text().replace("test_quantile", ""), path.name


@pytest.mark.ray
def test_retrain_writes_every_artefact_with_test_metrics_of_model_and_baselines(searched, capsys):
    assert retrain_cli.main([str(searched), "--seeds", "2"]) == 0
    final = searched / "final"
    assert {p.name for p in final.iterdir()} == {"model.pt", "metrics.json", "report.md", "manifest.sha256"}
    listed = [line.split("  ")[1] for line in (final / "manifest.sha256").read_text().splitlines()]
    assert listed == ["metrics.json", "model.pt", "report.md"]
    metrics = json.loads((final / "metrics.json").read_text())
    best = yaml.safe_load((searched / "best_config.yaml").read_text())
    assert metrics["epochs"] == best["epochs"] and metrics["seeds"] == [0, 1]
    assert len(metrics["model"]["per_seed"]) == 2
    assert {"ndcg@5", "hr@20", "mrr@10"} <= set(metrics["model"]["mean"]) and "ndcg@5" in metrics["model"]["std"]
    assert {"ndcg@5", "hr@5"} <= set(metrics["markov"]) and {"ndcg@5"} <= set(metrics["most_popular"])
    assert metrics["data_fingerprint"] == yaml.safe_load((searched / "search.yaml").read_text())["data_fingerprint"]
    out = capsys.readouterr().out
    assert "| LSTM (best config, 2 seeds) |" in out and "± " in out and "| Markov (last item) |" in out
    comparison = metrics["comparison"]  # the seed-averaged per-target NDCG@5 against each baseline
    assert comparison["seeds"] == 2 and set(comparison["paired"]) == {"markov", "most_popular"}
    assert comparison["paired"]["markov"]["model"] == pytest.approx(metrics["model"]["mean"]["ndcg@5"], abs=1e-6)
    assert comparison["paired"]["markov"]["baseline"] == pytest.approx(metrics["markov"]["ndcg@5"], abs=1e-6)
    assert "interval excludes 0 |" in out and "| the test targets themselves |" in out
    assert metrics["markov_blend"] == best["markov_blend"]  # the weight chosen on validation at the peak
    saved = load_model(final)
    assert saved.model.markov_blend and float(saved.model.blend_weight) == pytest.approx(best["markov_blend"])


@pytest.mark.ray
def test_a_best_config_without_a_blend_weight_gets_one_from_validation(searched, tmp_path):
    copy = tmp_path / "old"
    shutil.copytree(searched, copy)
    best = yaml.safe_load((copy / "best_config.yaml").read_text())
    best.pop("markov_blend")  # as written before the weight was recorded: the default, auto
    (copy / "best_config.yaml").write_text(yaml.safe_dump(best))
    assert retrain_cli.main([str(copy)]) == 0
    assert isinstance(json.loads((copy / "final" / "metrics.json").read_text())["markov_blend"], float)


def test_reloaded_model_recommends_exactly_as_before_saving(tmp_path):
    config = build_config({"synthetic_customers": 200, "synthetic_items": 140, "embed_dim": 8, "hidden_dim": 16,
                           "epochs": 1, "dropout": 0.3})
    data = prepare_data(config)
    model = fit(config, data).model
    history = data.items[:5]
    before = recommend(model, data.catalog, history, k=10, max_seq_len=config.max_seq_len)
    save_model(tmp_path, model, config, data)
    saved = load_model(tmp_path)
    after = recommend_for(saved, items=data.catalog["item_number"].to_numpy()[history - 1].tolist(), k=10)
    pd.testing.assert_frame_equal(before, after)
    customer = recommend_for(saved, customer=int(data.user_ids[3]), k=3)
    assert len(customer) == 3


@pytest.mark.ray
def test_recommend_cli_prints_top_k_and_names_bad_input(searched, capsys):
    final = searched / "final"
    if not final.exists():
        assert retrain_cli.main([str(searched)]) == 0
    saved = load_model(final)
    customer = int(saved.user_ids[0])
    assert recommend_cli.main([str(final), "--customer", str(customer), "--k", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["rank", "item_number", "description_1", "description_2", "score"]
    assert len(out) == 4
    assert recommend_cli.main([str(final), "--customer", "12"]) == 2
    assert "unknown customer 12" in capsys.readouterr().err
    number = str(saved.catalog["item_number"].iloc[0])
    assert recommend_cli.main([str(final), "--items", f"{number},{number[:-1]}"]) == 2
    assert "unknown item number" in capsys.readouterr().err
    assert recommend_cli.main([str(searched / "nowhere"), "--customer", "1"]) == 2
    assert "no saved model" in capsys.readouterr().err


@pytest.mark.ray
def test_retrain_refuses_unfinished_searches_and_bad_paths(searched, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(searched, copy, ignore=shutil.ignore_patterns("final"))
    plan = yaml.safe_load((copy / "search.yaml").read_text())
    (copy / "search.yaml").write_text(yaml.safe_dump(dict(plan, status="interrupted")))
    assert retrain_cli.main([str(copy)]) == 2
    err = capsys.readouterr().err
    assert "did not finish" in err and "--force" in err and "--resume --name copy" in err
    assert retrain_cli.main([str(tmp_path / "missing")]) == 2
    assert "is not a search folder" in capsys.readouterr().err
    assert retrain_cli.main(["--storage", str(tmp_path / "empty")]) == 2
    assert "no search found" in capsys.readouterr().err


def test_loading_a_foreign_file_is_a_clear_error(tmp_path):
    (tmp_path / "model.pt").write_bytes(b"not a model")
    with pytest.raises(DataError, match="has no manifest.sha256 .* python -m core.integrity"):
        load_model(tmp_path)
    write_manifest(tmp_path, ["model.pt"])  # sealed: then its content is what is refused
    with pytest.raises(DataError, match="is not a model saved by this project"):
        load_model(tmp_path)


@pytest.mark.ray
def test_a_warm_started_search_runs_and_says_where_it_started(searched, tmp_path):
    assert search_cli.main(["--samples", "2", "--storage", str(tmp_path), "--name", "warm", "--warm-start",
                            str(searched), "--space", write_space(tmp_path), *TINY_SEARCH]) == 0
    assert yaml.safe_load((tmp_path / "warm" / "search.yaml").read_text())["warm_start"] == str(searched)
    assert f"Optuna first learnt the finished trials of `{searched}`" in (tmp_path / "warm" / "summary.md").read_text()
    assert len(pd.read_csv(tmp_path / "warm" / "trials.csv")) == 2
