"""The search's Optuna study, kept in a journal file in its results folder, and a search's trial budget.

Ray's OptunaSearch keeps its study in memory and saves it only inside Tune's pickles. Here the study lives
in `<folder>/optuna.journal` (Optuna's JournalStorage with a file backend): every trial's parameters,
state, value and per-epoch intermediate values are written as the search runs, so `optuna.load_study`
and `optuna-dashboard <folder>/optuna.journal` read it live, and a resumed search goes on in the same
study. The journal is opened where the folder is now: a moved or copied folder writes its own journal,
never the original's.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
import pyarrow.fs
import ray.cloudpickle as cloudpickle
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from ray.tune.search.optuna import OptunaSearch

from core.errors import ConfigError
from search import integrity
from search.storage import is_uri

JOURNAL_FILE = "optuna.journal"
JOURNAL_ENV = "SEQREC_OPTUNA_JOURNAL"  # set by journal_at while Tune runs (and restores) a search
SEARCH_STATE_PREFIX = "search_gen_state-"  # Tune's SearchGenerator state: trials created, trial budget


@contextmanager
def journal_at(path: str | Path) -> Iterator[None]:
    """While Tune runs a search: its searcher, new or restored, uses the journal at `path`."""
    before = os.environ.get(JOURNAL_ENV)
    os.environ[JOURNAL_ENV] = str(path)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(JOURNAL_ENV, None)
        else:
            os.environ[JOURNAL_ENV] = before


def journal_storage(path: str | Path) -> JournalStorage:
    return JournalStorage(JournalFileBackend(str(path)))


def journal_study_name(journal: str | Path, default: str) -> str:
    """The study a search's journal holds (a moved folder keeps its original study name), else `default`."""
    if not Path(journal).is_file():
        return default
    names = optuna.study.get_all_study_names(journal_storage(journal))
    return names[0] if names else default


def load_search_study(folder: str | Path, name: str | None = None) -> optuna.Study:
    """The Optuna study of the search in `folder` (read-only use: history, importance, dashboards)."""
    path = Path(folder) / JOURNAL_FILE
    if not path.is_file():
        raise ConfigError(f"{folder} has no {JOURNAL_FILE}: not a search made with an Optuna journal")
    storage = journal_storage(path)
    names = optuna.study.get_all_study_names(storage)
    return optuna.load_study(study_name=name or names[0], storage=storage)


class FolderStudySearch(OptunaSearch):
    """OptunaSearch whose study is the journal in the results folder.

    Its saved state holds the sampler and which Optuna trial each Tune trial is, not the study (the journal
    is the study). Restored, it reopens the journal named by journal_at (in the folder being resumed),
    else the one it was built with."""

    def __init__(self, journal: str | Path, study_name: str, **kwargs: Any):
        self._journal = str(journal)
        super().__init__(study_name=study_name, **kwargs)

    def journal_path(self) -> str:
        return os.environ.get(JOURNAL_ENV) or self._journal

    def _setup_study(self, mode: Any) -> None:
        self._storage = journal_storage(self.journal_path())
        if self._study_name in optuna.study.get_all_study_names(self._storage):
            # Tune sets a restored search up again before restoring its state: the study already holds the
            # base config or the warm start's trials, which must not be queued or added a second time.
            self._points_to_evaluate, self._evaluated_rewards = [], None
        super()._setup_study(mode)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        trial = self._ot_trials.get(trial_id)
        if trial is not None and result.get("training_iteration") in self._reported(trial):
            return  # a trial restarted from its checkpoint repeats epochs: Optuna keeps the first value
        super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        # Tune hands a trial's last result to on_trial_complete only: record it as that epoch's value too
        if result and trial_id in self._ot_trials and trial_id not in self._completed_trials and self.metric in result:
            self.on_trial_result(trial_id, result)
        super().on_trial_complete(trial_id, result=result, error=error)

    def _reported(self, trial: optuna.Trial) -> dict[int, float]:
        return self._storage.get_trial(trial._trial_id).intermediate_values

    def save(self, checkpoint_path: str) -> None:
        state = {**self.__dict__, "_storage": None, "_ot_study": None,
                 "_ot_trials": {tune_id: trial._trial_id for tune_id, trial in self._ot_trials.items()}}
        with open(checkpoint_path, "wb") as file:
            cloudpickle.dump(state, file)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as file:
            state = cloudpickle.load(file)
        self.__dict__.update(state)
        self._storage = journal_storage(self.journal_path())
        self._ot_study = optuna.load_study(study_name=self._study_name, storage=self._storage,
                                           sampler=self._sampler)
        self._ot_trials = {tune_id: optuna.Trial(self._ot_study, trial_id)
                           for tune_id, trial_id in state["_ot_trials"].items()}


def trials_created(tune_path: str) -> int | None:
    """How many trials Tune's saved search state says were created (None: no state saved yet)."""
    found = _newest_search_state(tune_path)
    return None if found is None else found[2]["counter"]


def set_budget(tune_path: str, samples: int) -> None:
    """Make the saved search's trial budget `samples`, so that a restored Tuner creates trials up to it.

    Tune keeps the budget it started with in its SearchGenerator's saved state and ignores a new
    num_samples on restore; the plan (search.yaml) holds the budget asked for, and this brings Tune's
    state in line with it just before the restore."""
    found = _newest_search_state(tune_path)
    if found is None or found[2]["total_samples"] == samples:
        return
    fs, path, state = found
    state = {**state, "total_samples": samples, "finished": state["counter"] >= samples}
    temporary = f"{path}.budget"
    with fs.open_output_stream(temporary) as stream:
        stream.write(cloudpickle.dumps(state))
    fs.move(temporary, path)
    if not is_uri(tune_path):
        integrity.seal(tune_path)  # rewritten by this user, after verify() checked what it read


def _newest_search_state(tune_path: str) -> tuple[pyarrow.fs.FileSystem, str, dict] | None:
    fs, root = pyarrow.fs.FileSystem.from_uri(tune_path if "://" in tune_path else str(Path(tune_path).resolve()))
    try:
        infos = fs.get_file_info(pyarrow.fs.FileSelector(root))
    except FileNotFoundError:
        return None
    names = sorted(info.path for info in infos if Path(info.path).name.startswith(SEARCH_STATE_PREFIX))
    if not names:
        return None
    with fs.open_input_stream(names[-1]) as stream:  # Tune names them by session: the last is the newest
        return fs, names[-1], cloudpickle.loads(stream.readall())
