"""A received results folder runs no code, a damaged searcher state loses no trial, a local search stays on
loopback, one search per name: each on a real (tiny) search."""
import os
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from search import integrity
from search.run import main
from tests.conftest import TINY_SEARCH, write_space

MARKER = "ran-while-loading"


class RunsCode:
    """A pickle that creates a marker file when loaded: what a crafted tuner.pkl would do."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    storage = tmp_path_factory.mktemp("results")
    assert main(["--samples", "3", "--storage", str(storage), "--name", "mine", "--space", write_space(storage),
                 *TINY_SEARCH]) == 0
    return storage / "mine"


def copy_of(searched: Path, tmp_path: Path, name: str) -> Path:
    copy = tmp_path / name
    shutil.copytree(searched, copy)
    return copy


def resume(folder: Path) -> int:
    return main(["--resume", "--name", folder.name, "--storage", str(folder.parent), "--no-dashboard"])


@pytest.mark.ray
def test_a_search_signs_every_pickle_a_resume_loads(searched):
    signed = set(integrity.pickled_files(searched))
    assert "tuner.pkl" in signed and any(n.startswith("searcher-state-") for n in signed)
    assert any(n.startswith("experiment_state-") for n in signed)
    assert integrity.untrusted(searched) == []
    assert os.stat(integrity.key_path()).st_mode & 0o777 == 0o600
    assert not str(integrity.key_path()).startswith(str(searched.parent))


@pytest.mark.ray
def test_a_moved_folder_of_ones_own_resumes(searched, tmp_path, capsys):
    moved = copy_of(searched, tmp_path, "moved")
    assert resume(moved) == 0
    assert len(pd.read_csv(moved / "trials.csv")) == 3


@pytest.mark.ray
def test_a_crafted_tuner_pickle_is_refused_in_one_line_and_never_loaded(searched, tmp_path, capsys):
    received = copy_of(searched, tmp_path, "received")
    (received / "tuner.pkl").write_bytes(pickle.dumps(RunsCode(tmp_path / MARKER)))
    assert resume(received) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "tuner.pkl" in lines[0] and "--trust-pickles" in lines[0], err
    assert not (tmp_path / MARKER).exists() and "Traceback" not in err
    (received / integrity.TAG_FILE).unlink()  # a folder from someone else: no tags at all
    assert resume(received) == 2
    assert "it has no tag file" in capsys.readouterr().err and not (tmp_path / MARKER).exists()


@pytest.mark.ray
def test_trust_pickles_resumes_a_received_folder(searched, tmp_path, capsys):
    received = copy_of(searched, tmp_path, "trusted")
    (received / integrity.TAG_FILE).unlink()
    assert resume(received) == 2
    assert main(["--resume", "--name", "trusted", "--storage", str(tmp_path), "--no-dashboard",
                 "--trust-pickles"]) == 0
    assert integrity.untrusted(received) == []


@pytest.mark.ray
def test_a_truncated_searcher_state_is_set_aside_and_no_trial_is_lost(searched, tmp_path, capsys):
    damaged = copy_of(searched, tmp_path, "damaged")
    state = next(damaged.glob("searcher-state-*.pkl"))
    original = state.read_bytes()
    state.write_bytes(original[: len(original) // 2])
    assert resume(damaged) == 0
    err = capsys.readouterr().err
    assert f"{state.name} failed its check" in err and "set aside" in err
    assert (damaged / (state.name + ".damaged")).read_bytes() == original[: len(original) // 2]
    assert len(pd.read_csv(damaged / "trials.csv")) == 3
    assert "Status: **finished** (3 of 3 trials)" in (damaged / "summary.md").read_text()
    assert resume(damaged) == 0  # and every later resume too
    assert len(pd.read_csv(damaged / "trials.csv")) == 3


@pytest.mark.ray
def test_a_second_search_of_the_same_name_is_refused_naming_the_running_one(tmp_path, capsys):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from search.lock import hold_search_lock; "
                               f"hold_search_lock({str(tmp_path / 'race')!r}); print('held', flush=True); "
                               "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        began = time.time()
        assert main(["--samples", "2", "--storage", str(tmp_path), "--name", "race",
                     "--space", write_space(tmp_path), *TINY_SEARCH]) == 2
        err = capsys.readouterr().err
        assert f"search race is running now (pid {holder.pid}" in err and len(err.strip().splitlines()) == 1, err
        assert time.time() - began < 10 and not (tmp_path / "race").exists()
    finally:
        holder.kill()
        holder.wait()


LOOPBACK = {"127.0.0.1", "::ffff:127.0.0.1", "::1"}


@pytest.mark.ray
@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads listening sockets from Linux's /proc")
def test_a_local_search_listens_on_loopback_only(tmp_path):
    from tests.conftest import results_reported, wait_for
    from tests.listening import listening, process_tree

    search = subprocess.Popen([sys.executable, "-m", "search.run", "--samples", "2", "--storage", str(tmp_path),
                               "--name", "local", "--space", write_space(tmp_path), *TINY_SEARCH],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: results_reported(tmp_path / "local") >= 1)  # GCS, raylet, agents and trial workers run
        sockets = listening(process_tree(search.pid))
    finally:
        _, err = search.communicate(timeout=300)
    assert len({pid for pid, _, _ in sockets}) >= 3, sockets  # driver, GCS, raylet at least
    assert [s for s in sockets if s[1] not in LOOPBACK] == [], sockets
    assert search.returncode == 0, err[-2000:]


def test_reports_are_never_rewritten_with_fewer_trials_than_they_hold(tmp_path):
    from search.recover import fewer_than_reported

    pd.DataFrame({"trial": [1, 2, 3], "trial_id": ["a", "b", "c"]}).to_csv(tmp_path / "trials.csv", index=False)
    assert "lists 0 trials but" in fewer_than_reported(tmp_path, []) and "holds 3" in fewer_than_reported(tmp_path, [])
    assert fewer_than_reported(tmp_path, [object()] * 3) is None
    assert fewer_than_reported(tmp_path / "new", []) is None
