"""End-to-end searches on tiny data: outputs, interruption and resume, failures, GPU packing, a running cluster."""
import dataclasses
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from core.config import build_config
from core.errors import ConfigError
from search.run import main
from search.space import DEFAULT_SPACE_PATH, SearchSettings, load_search_spec
from tests.conftest import SMALL_SPACE, TINY_SEARCH, free_port, write_space


def search_command(storage: Path, name: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "search.run", "--storage", str(storage), "--name", name, *extra]


@pytest.mark.ray
def test_end_to_end_search_writes_every_output(tmp_path):
    code = main(["--samples", "3", "--max-epochs", "2", "--storage", str(tmp_path), "--name", "e2e",
                 "--space", write_space(tmp_path), *TINY_SEARCH])
    assert code == 0
    folder = tmp_path / "e2e"
    for name in ("best_config.yaml", "trials.csv", "summary.md", "search.yaml", "search_progress.png",
                 "learning_curves.png", "parameters.png"):
        assert (folder / name).is_file(), name
    trials = pd.read_csv(folder / "trials.csv")
    assert len(trials) == 3 and set(trials["status"]) <= {"completed", "early-stopped"}
    assert {"lr", "hidden_dim", "embed_dim", "best_val_ndcg@5", "peak_epoch", "last_val_ndcg@5",
            "wall_seconds"} <= set(trials.columns)
    # the base config is among the first two trials (two run at once): sampled, lr would not be exactly 0.001
    first = trials.sort_values("trial").head(2)
    assert ((first["lr"] == 0.001) & (first["hidden_dim"] == 16) & (first["embed_dim"] == 8)).sum() == 1
    best = yaml.safe_load((folder / "best_config.yaml").read_text())
    config = build_config(best)  # directly usable
    top = trials.loc[trials["best_val_ndcg@5"].idxmax()]
    assert config.epochs == top["peak_epoch"] and config.lr == pytest.approx(top["lr"])
    summary = (folder / "summary.md").read_text()
    assert "Status: **finished** (3 of 3 trials)" in summary
    assert "Markov (last item)" in summary and "most popular" in summary
    assert yaml.safe_load((folder / "search.yaml").read_text())["status"] == "finished"
    # a new search under the same name refuses and names --resume
    assert main(["--samples", "3", "--storage", str(tmp_path), "--name", "e2e", *TINY_SEARCH]) == 2


@pytest.mark.ray
def test_interrupted_search_resumes_and_keeps_finished_trials(tmp_path):
    space = write_space(tmp_path, SMALL_SPACE.replace("max_epochs: 2", "max_epochs: 3"))
    command = search_command(tmp_path, "cut", "--samples", "5", "--concurrency", "1", "--space", space,
                             "--set", "synthetic_customers=1500", "--no-dashboard")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    folder = tmp_path / "cut"
    deadline = time.time() + 120
    while time.time() < deadline and finished_trials(folder) < 2:
        time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "--resume --name cut" in err
    before = pd.read_csv(folder / "trials.csv")
    assert "INTERRUPTED" in (folder / "summary.md").read_text()
    assert yaml.safe_load((folder / "search.yaml").read_text())["status"] == "interrupted"
    kept = before[before["status"].isin(["completed", "early-stopped"])]
    assert 2 <= len(kept) < 5

    assert main(["--resume", "--name", "cut", "--storage", str(tmp_path), "--no-dashboard"]) == 0
    after = pd.read_csv(folder / "trials.csv").set_index("trial_id")
    assert len(after) == 5 and set(after["status"]) <= {"completed", "early-stopped"}
    for _, row in kept.iterrows():  # finished trials were not run again
        assert after.loc[row["trial_id"], "best_val_ndcg@5"] == row["best_val_ndcg@5"]
        assert after.loc[row["trial_id"], "wall_seconds"] == row["wall_seconds"]
    assert "Status: **finished** (5 of 5 trials)" in (folder / "summary.md").read_text()


@pytest.mark.ray
def test_a_killed_driver_resumes_without_rerunning_finished_trials(tmp_path):
    space = write_space(tmp_path, SMALL_SPACE.replace("max_epochs: 2", "max_epochs: 4")
                        .replace("hidden_dim: {choice: [16, 32]}", "hidden_dim: {choice: [128, 256]}"))
    command = search_command(tmp_path, "killed", "--samples", "5", "--concurrency", "1", "--space", space,
                             "--no-dashboard")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    folder = tmp_path / "killed"
    deadline = time.time() + 120
    while time.time() < deadline and finished_trials(folder) < 2:
        time.sleep(0.3)
    process.kill()  # SIGKILL: no chance to save anything more
    process.wait()
    finished = {path.parent.name: path.read_text() for path in folder.glob("*/result.json")
                if '"done": true' in path.read_text().strip().splitlines()[-1]}
    assert 2 <= len(finished) < 5

    assert main(["--resume", "--name", "killed", "--storage", str(tmp_path), "--no-dashboard"]) == 0
    trials = pd.read_csv(folder / "trials.csv")
    assert len(trials) == 5 and set(trials["status"]) <= {"completed", "early-stopped"}
    for name, text in finished.items():  # their results were not written again: they did not rerun
        assert (folder / name / "result.json").read_text() == text
    assert "Status: **finished** (5 of 5 trials)" in (folder / "summary.md").read_text()


def finished_trials(folder: Path) -> int:
    count = 0
    for result in folder.glob("*/result.json"):
        lines = result.read_text().strip().splitlines()
        count += bool(lines) and '"done": true' in lines[-1]
    return count


@pytest.mark.ray
@pytest.mark.skipif(torch.cuda.is_available(), reason="the failing trial asks for a GPU, which exists here")
def test_a_failing_trial_does_not_stop_the_search(tmp_path):
    space = write_space(tmp_path, SMALL_SPACE + "  device: {choice: [cpu, cuda]}\n")
    assert main(["--samples", "4", "--storage", str(tmp_path), "--name", "fail", "--space", space, *TINY_SEARCH]) == 0
    trials = pd.read_csv(tmp_path / "fail" / "trials.csv")
    errored = trials[trials["status"] == "errored"]
    assert len(errored) >= 1 and (trials["status"] != "errored").sum() >= 1
    assert (errored["device"] == "cuda").all()
    summary = (tmp_path / "fail" / "summary.md").read_text()
    assert "## Errored trials" in summary and "no GPU is visible" in summary


@pytest.mark.ray
def test_four_trials_share_a_logical_gpu_and_compute_on_the_cpu(tmp_path):
    code = main(["--samples", "4", "--max-epochs", "2", "--storage", str(tmp_path), "--name", "gpu",
                 "--space", write_space(tmp_path, SMALL_SPACE.replace("grace_period: 1", "grace_period: 2")),
                 "--num-gpus", "1", "--gpus-per-trial", "0.25", "--cpus-per-trial", "0.5", "--concurrency", "4",
                 "--set", "synthetic_customers=1500", "--no-dashboard"])
    assert code == 0
    plan = yaml.safe_load((tmp_path / "gpu" / "search.yaml").read_text())
    assert (plan["gpus_per_trial"], plan["concurrency"]) == (0.25, 4)
    spans = []
    for result in (tmp_path / "gpu").glob("*/result.json"):
        rows = [json.loads(line) for line in result.read_text().splitlines()]
        spans.append((rows[0]["timestamp"] - rows[0]["time_this_iter_s"], rows[-1]["timestamp"]))
    assert len(spans) == 4
    assert max(start for start, _ in spans) <= min(end for _, end in spans)  # all four ran at once
    trials = pd.read_csv(tmp_path / "gpu" / "trials.csv")
    assert (trials["status"] == "completed").all()  # device auto fell back to the CPU


@pytest.mark.ray
def test_search_joins_a_running_cluster(tmp_path):
    port = free_port()
    ray_cli = str(Path(sys.executable).parent / "ray")
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths have a length limit
    head = subprocess.Popen([ray_cli, "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1",
                             "--num-cpus=2", "--include-dashboard=false", f"--temp-dir={temp_dir}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        address = f"127.0.0.1:{port}"
        deadline = time.time() + 60
        while subprocess.run([ray_cli, "status", f"--address={address}"], capture_output=True).returncode != 0:
            assert time.time() < deadline, "the Ray head did not come up"
            time.sleep(1)
        result = subprocess.run(search_command(tmp_path, "cluster", "--samples", "2", "--address", address,
                                               "--space", write_space(tmp_path), *TINY_SEARCH),
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        assert len(pd.read_csv(tmp_path / "cluster" / "trials.csv")) == 2
    finally:
        head.send_signal(signal.SIGTERM)  # stops this head (and its processes) only
        head.wait(timeout=60)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.ray
def test_space_errors_are_named_before_ray_starts(tmp_path):
    base = build_config({})
    bad = write_space(tmp_path, """
search: {metric: val_ndcg@7, grace_period: 30, max_epochs: 10, colour: red, startup_trials: -1, keep_base: 1}
space:
  lr: {loguniform: [0, 0.1]}
  dropout: {uniform: [0.0, 1.5]}
  hiden_dim: {choice: [16]}
  batch_size: {normal: [1, 2]}
  num_layers: {int: [1, 3]}
""")
    with pytest.raises(ConfigError) as err:
        load_search_spec(bad, base)
    message = str(err.value)
    for expected in ("search.colour: unknown search setting", "search.metric: 'val_ndcg@7' is not reported",
                     "search.grace_period: expected at most max_epochs (10)",
                     "search.startup_trials: expected a non-negative integer, got -1",
                     "search.keep_base: expected true or false, got 1",
                     "space.lr: loguniform needs low > 0",
                     "space.dropout: uniform [0.0, 1.5] allows an invalid value (dropout: expected a value >= 0.0 "
                     "and < 1.0, got 1.5)", "space.hiden_dim: not a setting",
                     "space.batch_size: expected one distribution"):
        assert expected in message
    assert "space.num_layers" not in message
    began = time.time()
    assert main(["--space", bad, "--storage", str(tmp_path), "--no-dashboard"]) == 2
    assert time.time() - began < 5


def test_space_yaml_states_the_code_defaults_of_every_search_setting():
    from_yaml = yaml.safe_load(DEFAULT_SPACE_PATH.read_text())["search"]
    assert from_yaml == dataclasses.asdict(SearchSettings())
