import json
import subprocess
import sys

import numpy as np
import pytest

from core.train import main
from tests.conftest import TINY, settings, write_log


def test_train_cli_ends_with_one_json_line_of_model_and_baseline_metrics(capsys):
    assert main(settings(TINY) + ["--quiet"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    result = json.loads(out[0])
    assert result["split"] == "val"
    for name in ("model", "most_popular", "markov"):
        assert {"hr@5", "mrr@5", "ndcg@5", "ndcg@20"} <= set(result[name])
    assert result["data_stats"]["val_targets"] > 0


def test_train_cli_test_mode_reports_test_metrics_and_prints_epoch_lines(capsys):
    assert main(settings(dict(TINY, patience=0, markov_blend=0, seen_items="keep")) + ["--test"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["split"] == "test"
    assert captured.err.count("train_loss") == TINY["epochs"]
    assert captured.err.count("test_ndcg@5") == 1  # test is evaluated once, after the last epoch


def test_train_cli_test_mode_compares_with_the_baselines_target_by_target(capsys, tmp_path):
    config = dict(TINY, patience=0, markov_blend=0, seen_items="last")
    assert main(settings(config) + ["--test", "--quiet", "--per-target", str(tmp_path / "t.npz")]) == 0
    result = json.loads(capsys.readouterr().out)
    paired = result["comparison"]["paired"]["markov"]
    assert paired["model"] == pytest.approx(result["model"]["ndcg@5"], abs=1e-6)
    assert paired["baseline"] == pytest.approx(result["markov"]["ndcg@5"], abs=1e-6)  # ranked like the model
    assert paired["bootstrap_low"] <= paired["difference"] <= paired["bootstrap_high"]
    saved = np.load(tmp_path / "t.npz")
    assert len(saved["model"]) == paired["targets"] == result["data_stats"]["test_targets"]


def test_train_cli_test_mode_takes_the_blend_weight_from_a_validation_run(capsys):
    assert main(settings(dict(TINY, patience=0, markov_blend="auto")) + ["--test"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert captured.err.count("val_loss") == captured.err.count("train_loss") - TINY["epochs"] == TINY["epochs"]
    assert f"markov_blend {result['markov_blend']:g}" in captured.err.split("chosen on validation")[1]
    assert isinstance(result["markov_blend"], float) and "lstm_ndcg@5" in result["model"]


def test_train_cli_test_mode_with_patience_trains_for_the_validation_peak(capsys):
    assert main(settings(dict(TINY, epochs=6, patience=1, lr=0.05)) + ["--test"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    validation_epochs = captured.err.count("val_loss")
    assert 1 <= result["epochs"] <= validation_epochs <= 6  # the peak of the validation run
    assert captured.err.count("train_loss") == validation_epochs + result["epochs"]
    assert captured.err.count("test_ndcg@5") == 1


def test_train_cli_bad_input_is_one_clear_line_and_exit_code_2(tmp_path, capsys):
    path = write_log(tmp_path / "log.csv", [(1, "2024-01-01", 5), (1, "yesterday", 6)])
    assert main(["--data", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "line 3" in err and "Traceback" not in err
    assert main(["--set", "hiden_dim=3"]) == 2
    assert "did you mean hidden_dim" in capsys.readouterr().err


def test_importing_core_does_not_load_ray():
    code = ("import importlib, pkgutil, sys, core\n"
            "for module in pkgutil.iter_modules(core.__path__): importlib.import_module(f'core.{module.name}')\n"
            "print(sorted(name for name in ('ray', 'optuna') if name in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
