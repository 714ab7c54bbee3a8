"""MLflow tracking of a search and its retrain, and the one-line error when the extra is missing."""
import struct
import sys
from pathlib import Path

import pytest
import yaml

from core.config import build_config
from search import retrain as retrain_cli
from search import run as search_cli
from search.plan import SearchPlan, Status
from search.tracking import mlflow_name, tracking_uri, trial_metrics
from tests.conftest import TINY_SEARCH, write_space


def test_metric_names_and_values_fit_for_mlflow(tmp_path):
    assert mlflow_name("val_ndcg@5") == "val_ndcg_at_5"
    result = {"val_ndcg@5": 0.25, "train_loss": 3.0, "epoch": 2, "time_total_s": 1.5, "training_iteration": 2,
              "config": {"lr": 0.01}, "trial_id": "abc", "done": False, "val_loss": float("nan")}
    assert trial_metrics(result) == {"val_ndcg_at_5": 0.25, "train_loss": 3.0, "epoch": 2.0, "time_total_s": 1.5}
    assert tracking_uri(None, tmp_path) == (tmp_path / "mlruns").as_uri()
    assert tracking_uri("http://127.0.0.1:5000", tmp_path) == "http://127.0.0.1:5000"
    assert tracking_uri(str(tmp_path / "elsewhere"), tmp_path) == (tmp_path / "elsewhere").as_uri()


@pytest.mark.ray
def test_a_tracked_search_writes_one_run_per_trial_and_the_retrain_adds_one(tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    assert search_cli.main(["--samples", "2", "--storage", str(tmp_path), "--name", "tracked", "--mlflow",
                            "--space", write_space(tmp_path), *TINY_SEARCH]) == 0
    uri = (tmp_path / "mlruns").as_uri()
    assert yaml.safe_load((tmp_path / "tracked" / "search.yaml").read_text())["mlflow"] == uri
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("tracked")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 2 and {r.data.tags["role"] for r in runs} == {"trial"}
    for run in runs:
        assert {"lr", "hidden_dim", "embed_dim", "max_seq_len"} <= set(run.data.params)
        curve = client.get_metric_history(run.info.run_id, "val_ndcg_at_5")
        assert [m.step for m in curve] == list(range(1, len(curve) + 1)) and len(curve) >= 1
        assert "config/lr" not in run.data.metrics and "train_loss" in run.data.metrics

    curves = [tensorboard_scalars(path).get("ray/tune/val_ndcg_5") for path in (tmp_path / "tracked").glob(
        "*/events.out.tfevents.*")]  # Ray's TensorBoard files: one curve per trial, step = epoch
    assert len(curves) == 2 and all(c and [step for step, _ in c] == list(range(1, len(c) + 1)) for c in curves)

    assert retrain_cli.main([str(tmp_path / "tracked")]) == 0
    retrained, = client.search_runs([experiment.experiment_id], filter_string="tags.role = 'retrain'")
    assert {"test_ndcg_at_5", "test_ndcg_at_5_std", "markov_test_ndcg_at_5"} <= set(retrained.data.metrics)
    files = {f.path for f in client.list_artifacts(retrained.info.run_id)}
    assert {"model.pt", "metrics.json", "report.md"} <= files


@pytest.mark.ray
def test_a_missing_extra_is_one_clear_error_before_anything_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow now raises ImportError
    assert search_cli.main(["--samples", "2", "--storage", str(tmp_path), "--name", "x", "--mlflow",
                            "--space", write_space(tmp_path), *TINY_SEARCH]) == 2
    err = capsys.readouterr().err
    assert err == 'error: --mlflow needs the mlflow package, an optional extra: pip install -e ".[mlflow]"\n'
    assert not (tmp_path / "x").exists()
    folder = tmp_path / "tracked"  # a tracked search retrained without the extra: refused before training
    folder.mkdir()
    SearchPlan(name="tracked", storage=str(tmp_path), folder=str(folder), samples=1, cpus_per_trial=1,
               gpus_per_trial=0, concurrency=1, config=build_config({}).to_dict(), search={}, status=Status.FINISHED,
               created="2026-11-30T12:00:00", mlflow="file:///nowhere").save()
    (folder / "best_config.yaml").write_text(yaml.safe_dump({"epochs": 1}))
    assert retrain_cli.main([str(folder)]) == 2
    assert 'pip install -e ".[mlflow]"' in capsys.readouterr().err and not (folder / "final").exists()


def tensorboard_scalars(path: Path) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] from a TensorBoard event file (TFRecord framing, tensorboardX's protobuf)."""
    from tensorboardX.proto import event_pb2

    data, offset, scalars = path.read_bytes(), 0, {}
    while offset < len(data):
        length, = struct.unpack("<Q", data[offset:offset + 8])
        event = event_pb2.Event.FromString(data[offset + 12:offset + 12 + length])
        offset += 12 + length + 4
        for value in event.summary.value:
            scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars
