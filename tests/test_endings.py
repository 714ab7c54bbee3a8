"""Every way a search ends: SIGTERM and a double Ctrl-C leave a resumable, summarised search whose printed
resume command works; a resume keeps ASHA's rungs; an unreachable cluster fails within the bound."""
import json
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pyarrow.fs
import pytest
import yaml
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from search.asha import ResumableASHA
from search.endings import SearchStopped, stop_behind
from search.run import main
from tests.conftest import (
    SMALL_SPACE,
    TINY_SEARCH,
    free_port,
    results_reported,
    wait_for,
    write_space,
)

METRIC = "val_ndcg@5"


def fake_trial(trial_id: str, folder: Path | None = None, config: dict | None = None) -> SimpleNamespace:
    """What the scheduler reads of a Tune trial: its id, config and, once it has a folder, where its results are."""
    storage = SimpleNamespace(storage_filesystem=pyarrow.fs.LocalFileSystem(),
                              trial_dir_name=trial_id if folder else None)
    return SimpleNamespace(trial_id=trial_id, storage=storage, path=str(folder / trial_id) if folder else None,
                           config=config or {})


def write_history(folder: Path, trial_id: str, values: list[float]) -> None:
    (folder / trial_id).mkdir(parents=True)
    rows = [{"training_iteration": epoch, "epoch": epoch, METRIC: value} for epoch, value in enumerate(values, 1)]
    (folder / trial_id / "result.json").write_text("".join(json.dumps(row) + "\n" for row in rows))


def feed(scheduler, trial, values: list[float]) -> list[float]:
    """Report epochs as Tune does until the scheduler stops the trial; returns the values reported."""
    scheduler.on_trial_add(None, trial)
    for epoch, value in enumerate(values, 1):
        result = {"training_iteration": epoch, METRIC: value}
        if scheduler.on_trial_result(None, trial, result) == TrialScheduler.STOP:
            scheduler.on_trial_complete(None, trial, result)
            return values[:epoch]
    return values


def scheduler(kind=ResumableASHA, max_t: int = 4, **kwargs):
    return kind(metric=METRIC, mode="max", max_t=max_t, grace_period=1, reduction_factor=2, **kwargs)


def test_asha_never_stops_the_base_config_but_records_its_values_at_the_rungs():
    base = {"lr": 0.003, "hidden_dim": 64}
    first = [0.30, 0.40, 0.45, 0.50]
    late = [0.20, 0.30, 0.60, 0.70]  # behind at both rungs (epochs 1 and 2), best at the end
    kept = scheduler(keep=base)
    assert feed(kept, fake_trial("a", config={"lr": 0.01, "hidden_dim": 64}), first) == first
    assert feed(kept, fake_trial("base", config={**base, "epochs": 4}), late) == late
    assert kept.rung_values()[1]["base"] == 0.20 and kept.rung_values()[2]["base"] == 0.30
    near = fake_trial("near", config={**base, "lr": 0.0031})  # not the base config: cut as usual
    assert feed(kept, near, late) == late[:1]

    plain = scheduler()  # keep=None (keep_base: false): the base config is cut at the first rung
    feed(plain, fake_trial("a", config={"lr": 0.01, "hidden_dim": 64}), first)
    assert feed(plain, fake_trial("base", config=dict(base)), late) == late[:1]


def test_a_resumed_asha_holds_the_rungs_recorded_before_and_stops_a_weak_trial_as_before(tmp_path):
    planned = {"a": [0.30, 0.40, 0.45, 0.50], "b": [0.20, 0.35, 0.36, 0.37], "c": [0.25, 0.42, 0.43, 0.44],
               "d": [0.28, 0.41]}  # d is running when the search is interrupted
    weak = [0.22, 0.9, 0.9, 0.9]  # the next trial: below the cut at rung 1
    uninterrupted, reported = scheduler(), {}
    for trial_id, values in planned.items():
        reported[trial_id] = feed(uninterrupted, fake_trial(trial_id), values)
    assert len(reported["b"]) == 1 and len(reported["a"]) == 4  # b stopped at the first rung
    rungs_before = uninterrupted.rung_values()
    assert len(feed(uninterrupted, fake_trial("weak"), weak)) == 1

    for trial_id, values in reported.items():  # the interrupted search's folder: each trial's results
        write_history(tmp_path, trial_id, values)
    resumed = scheduler()
    for trial_id in reversed(list(reported)):  # Tune adds restored trials back, latest first
        resumed.on_trial_add(None, fake_trial(trial_id, tmp_path))
    assert resumed.rung_values() == rungs_before and all(rungs_before.values())
    assert len(feed(resumed, fake_trial("weak"), weak)) == 1

    plain = scheduler(ASHAScheduler)  # Tune's own ASHA after a restore: empty rungs, the weak trial runs on
    for trial_id in reported:
        plain.on_trial_add(None, fake_trial(trial_id, tmp_path))
    assert len(feed(plain, fake_trial("weak"), weak)) == 4


@pytest.mark.ray
def test_an_unreachable_address_fails_at_once_and_leaves_nothing(tmp_path, capsys):
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    began = time.time()
    assert main(["--samples", "2", "--address", address, "--storage", str(tmp_path), "--name", "away",
                 "--space", write_space(tmp_path), *TINY_SEARCH]) == 2
    assert time.time() - began < 30
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: cannot reach the Ray cluster at " + address) and "ray start --head" in err
    assert not (tmp_path / "away").exists()  # the name stays free


@pytest.mark.ray
def test_an_address_that_never_answers_fails_within_the_timeout(tmp_path):
    with socket.socket() as silent:  # accepts connections, never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        began = time.time()
        result = subprocess.run([sys.executable, "-m", "search.run", "--samples", "2", "--address", address,
                                 "--connect-timeout", "5", "--storage", str(tmp_path), "--name", "silent",
                                 "--space", write_space(tmp_path), *TINY_SEARCH],
                                capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert time.time() - began < 60
    assert "error: " in result.stderr and address in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "silent").exists()


def resume_line(stderr: str) -> list[str]:
    line = next(line.strip() for line in stderr.splitlines() if line.strip().startswith("python -m search.run"))
    return shlex.split(line)


def check_interrupted(folder: Path, stderr: str) -> None:
    assert yaml.safe_load((folder / "search.yaml").read_text())["status"] == "interrupted"
    summary = (folder / "summary.md").read_text()
    assert "INTERRUPTED" in summary and "--storage " in summary
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr[-3000:]


@pytest.mark.ray
def test_sigterm_and_a_double_ctrl_c_leave_a_resumable_search_that_spends_what_asha_would(tmp_path):
    space = write_space(tmp_path, SMALL_SPACE.replace("max_epochs: 2", "max_epochs: 3")
                        .replace("hidden_dim: {choice: [16, 32]}", "hidden_dim: {choice: [64, 128]}"))
    folder = tmp_path / "ends"
    command = [sys.executable, "-m", "search.run", "--storage", str(tmp_path), "--name", "ends", "--samples", "5",
               "--concurrency", "1", "--space", space, "--set", "synthetic_customers=1000", "--no-dashboard"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: results_reported(folder) >= 2)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=180)
    assert process.returncode == 130, err[-3000:]
    check_interrupted(folder, err)

    resume = resume_line(err)  # as printed: python -m search.run --resume --name ends --storage ...
    assert resume[:5] == ["python", "-m", "search.run", "--resume", "--name"] and "--storage" in resume
    reported = results_reported(folder)
    process = subprocess.Popen([sys.executable] + resume[1:] + ["--no-dashboard"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    wait_for(lambda: results_reported(folder) > reported)
    process.send_signal(signal.SIGINT)
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=180)
    assert process.returncode == 130, err[-3000:]
    check_interrupted(folder, err)

    assert main(resume_line(err)[3:] + ["--no-dashboard"]) == 0
    trials = pd.read_csv(folder / "trials.csv").sort_values("trial")
    assert len(trials) == 5 and set(trials["status"]) <= {"completed", "early-stopped"}
    # one trial at a time: an uninterrupted search is ASHA fed each trial's results in turn
    asha = scheduler(ASHAScheduler, max_t=3)
    for trial_id, epochs_run in zip(trials["trial_id"], trials["epochs_run"]):
        history = [json.loads(line) for line in (folder / trial_id / "result.json").read_text().splitlines()]
        values = list({row["training_iteration"]: row[METRIC] for row in history}.values())
        assert epochs_asha_allows(asha, trial_id, values) == epochs_run, trial_id


def epochs_asha_allows(asha, trial_id: str, values: list[float]) -> int | None:
    """The epoch at which `asha` stops a trial reporting `values` (None: it would have gone on)."""
    trial = fake_trial(trial_id)
    asha.on_trial_add(None, trial)
    for epoch, value in enumerate(values, 1):
        result = {"training_iteration": epoch, METRIC: value}
        if asha.on_trial_result(None, trial, result) == TrialScheduler.STOP:
            asha.on_trial_complete(None, trial, result)
            return epoch
    return None


def test_a_stop_signal_wrapped_by_rays_cython_code_is_still_a_stop():
    stop = SearchStopped("SIGINT")
    try:
        try:
            raise stop
        except SearchStopped as inner:  # what "returned a result with an exception set" looks like
            raise SystemError("<cyfunction CoreWorker.wait> returned a result with an exception set") from inner
    except SystemError as wrapped:
        assert stop_behind(wrapped) is stop
    assert stop_behind(RuntimeError("a real failure")) is None


def finished_trials(folder: Path) -> set[str]:
    """Trials whose result.json reports their last epoch as done (written before any hard stop)."""
    done = set()
    for path in folder.glob("*/result.json"):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if rows and rows[-1].get("done"):
            done.add(path.parent.name)
    return done


@pytest.mark.ray
def test_sigkill_of_the_driver_loses_no_finished_trial_and_resumes(tmp_path):
    import os

    space = write_space(tmp_path, SMALL_SPACE.replace("max_epochs: 2", "max_epochs: 3"))
    folder = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "search.run", "--storage", str(tmp_path), "--name", "killed",
                                "--samples", "4", "--concurrency", "1", "--space", space, *TINY_SEARCH],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_for(lambda: len(finished_trials(folder)) >= 2)
    os.killpg(process.pid, signal.SIGKILL)  # the driver and the Ray it started, at once
    process.wait()
    before = finished_trials(folder)
    assert main(["--resume", "--name", "killed", "--storage", str(tmp_path), "--no-dashboard"]) == 0
    trials = pd.read_csv(folder / "trials.csv")
    assert len(trials) == 4 and before <= set(trials["trial_id"])
    assert set(trials.loc[trials["trial_id"].isin(before), "status"]) <= {"completed", "early-stopped"}


@pytest.mark.ray
def test_a_killed_worker_is_retried_from_its_checkpoint_and_reported(tmp_path):
    import os

    space = write_space(tmp_path, SMALL_SPACE.replace("max_epochs: 2", "max_epochs: 4")
                        .replace("hidden_dim: {choice: [16, 32]}", "hidden_dim: {choice: [64, 128]}"))
    folder = tmp_path / "oom"
    process = subprocess.Popen([sys.executable, "-m", "search.run", "--storage", str(tmp_path), "--name", "oom",
                                "--samples", "2", "--concurrency", "1", "--scheduler", "fifo", "--space", space,
                                "--set", "synthetic_customers=1000", "--no-dashboard"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: results_reported(folder) >= 1)
    first = json.loads(next(folder.glob("*/result.json")).read_text().splitlines()[0])
    os.kill(first["pid"], signal.SIGKILL)  # the trial's worker, as the out-of-memory killer would
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    trials = pd.read_csv(folder / "trials.csv").set_index("trial_id")
    assert set(trials["status"]) == {"completed"} and trials.loc[first["trial_id"], "retried"], trials
    assert trials["retried"].sum() == 1 and (trials["epochs_run"] == 4).all()
