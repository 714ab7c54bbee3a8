"""The search's Optuna study in its results folder (read live and after), and a finished search extended."""
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest

from search.run import main
from search.study import JOURNAL_FILE, load_search_study

pytestmark = pytest.mark.ray  # every test here runs a search

SPACE = """
search: {max_epochs: 3, grace_period: 1, reduction_factor: 2, seed: 0}
space:
  lr: {loguniform: [0.001, 0.01]}
  hidden_dim: {choice: [16, 32]}
"""
TINY = ["--set", "synthetic_customers=300", "--set", "synthetic_items=140", "--set", "embed_dim=8",
        "--set", "hidden_dim=16", "--no-dashboard"]


# trials long enough (8 epochs, none stopped early) that a reader polling the journal sees one running
WATCHED_SPACE = SPACE.replace("max_epochs: 3, grace_period: 1", "max_epochs: 8, grace_period: 8")


def search_args(tmp_path: Path, name: str, samples: int, *extra: str, space_text: str = SPACE) -> list[str]:
    space = tmp_path / "space.yaml"
    space.write_text(space_text)
    return ["--samples", str(samples), "--storage", str(tmp_path), "--name", name, "--space", str(space),
            *TINY, *extra]


def epoch_values(trial_folder: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (trial_folder / "result.json").read_text().splitlines()]
    return {row["training_iteration"]: row["val_ndcg@5"] for row in rows}


def test_the_study_is_readable_while_the_search_runs_and_holds_every_trial_after(tmp_path):
    command = [sys.executable, "-m", "search.run", *search_args(tmp_path, "watched", 3, "--concurrency", "1",
                                                                "--set", "patience=0", space_text=WATCHED_SPACE)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    journal = tmp_path / "watched" / JOURNAL_FILE
    seen_running = None
    deadline = time.time() + 120
    while process.poll() is None and time.time() < deadline:
        if journal.is_file():
            running = [t for t in load_search_study(journal.parent).trials
                       if t.state == optuna.trial.TrialState.RUNNING and t.intermediate_values]
            if running:  # read by a second process while the driver writes it: epochs as they come
                seen_running = running
                break
        time.sleep(0.1)
    _, err = process.communicate(timeout=180)
    assert process.returncode == 0, err[-3000:]
    assert seen_running is not None

    study = optuna.load_study(study_name="watched", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))))
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert len(study.trials) == 3 and all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    table = pd.read_csv(tmp_path / "watched" / "trials.csv")
    for _, row in table.iterrows():  # each Tune trial is one Optuna trial, with every epoch's value
        trial, = [t for t in study.trials if t.params["lr"] == pytest.approx(row["lr"])]
        assert trial.params["hidden_dim"] == row["hidden_dim"]
        assert trial.intermediate_values == pytest.approx(epoch_values(tmp_path / "watched" / row["trial_id"]))
        assert trial.value == pytest.approx(row["last_val_ndcg@5"])


def test_a_finished_search_goes_on_to_more_samples_keeping_its_trials(tmp_path, capsys):
    assert main(search_args(tmp_path, "grow", 3)) == 0
    folder = tmp_path / "grow"
    before = pd.read_csv(folder / "trials.csv").set_index("trial_id")
    assert main(["--resume", "--name", "grow", "--storage", str(tmp_path), "--samples", "3", "--no-dashboard"]) == 2
    assert "--samples 3 is not above the 3 trials" in capsys.readouterr().err

    assert main(["--resume", "--name", "grow", "--storage", str(tmp_path), "--samples", "5", "--no-dashboard"]) == 0
    after = pd.read_csv(folder / "trials.csv").set_index("trial_id")
    assert len(after) == 5 and set(before.index) < set(after.index)
    pd.testing.assert_frame_equal(after.loc[before.index, before.columns], before, check_dtype=False)
    assert "Status: **finished** (5 of 5 trials)" in (folder / "summary.md").read_text()
    study = load_search_study(folder)
    assert len(study.trials) == 5  # one study: TPE went on with its history, nothing duplicated
    assert len({(t.params["lr"], t.params["hidden_dim"]) for t in study.trials}) == 5

    # a copied folder resumes against its own journal: the original's study is left as it was
    shutil.copytree(folder, tmp_path / "copy")
    original = (folder / JOURNAL_FILE).read_bytes()
    assert main(["--resume", "--name", "copy", "--storage", str(tmp_path), "--samples", "6", "--no-dashboard"]) == 0
    assert (folder / JOURNAL_FILE).read_bytes() == original
    assert len(load_search_study(tmp_path / "copy").trials) == 6
