"""ASHA that keeps its decisions across a resume.

Ray Tune 2.60 does not save a scheduler's state: `Tuner.restore` unpickles the scheduler as it was built
(tuner.pkl), so after a resume every rung is empty (`Iter 2.000: None`) and trials ASHA would have stopped
run on. Here each restored trial's reported history (its result.json in the experiment folder) is replayed
into its bracket when Tune adds the trial back, before any new result arrives: the rungs then hold exactly
the values recorded before the interruption, whatever order the trials come back in.

It can also keep one config from being cut: the base config, the user's known starting point. A rung's
cutoff is taken over the values recorded there so far, so the second trial to reach the first rung must beat
the first one's value; on Amazon Beauty that stopped the base config at epoch 2 in one of three seeded
12-sample searches, which then ended 8% below what the base config reaches (bench/HISTORY.md). The kept
trial's values are still recorded at the rungs, and it still ends by patience or at max_t.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler

log = logging.getLogger(__name__)

RESULT_FILE = "result.json"


class ResumableASHA(AsyncHyperBandScheduler):
    """ASHAScheduler whose rungs are rebuilt from the trials' histories when a search is resumed, and which
    never stops a trial whose searched settings equal `keep` (the base config's values; None: none kept)."""

    def __init__(self, *args: Any, keep: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.keep = dict(keep) if keep else None
        self.kept_ids: set[str] = set()

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        super().on_trial_add(tune_controller, trial)
        if self.is_kept(trial.config):
            self.kept_ids.add(trial.trial_id)
        replayed = self.replay(trial, read_history(trial))
        if replayed:
            log.debug("ASHA: %d results of restored trial %s replayed into its rungs", replayed, trial.trial_id)

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> str:
        action = super().on_trial_result(tune_controller, trial, result)
        if action == TrialScheduler.STOP and trial.trial_id in getattr(self, "kept_ids", ()) \
                and result.get(self._time_attr, 0) < self._max_t:
            self._num_stopped -= 1  # its value is recorded at the rung all the same
            return TrialScheduler.CONTINUE
        return action

    def is_kept(self, config: Mapping[str, Any]) -> bool:
        """Whether a trial with this config is never stopped (a scheduler pickled before `keep` existed keeps none)."""
        keep = getattr(self, "keep", None)
        return bool(keep) and all(config.get(key) == value for key, value in keep.items())

    def replay(self, trial: Trial, history: list[dict[str, Any]]) -> int:
        """Record a trial's earlier results at the rungs they reached, as ASHA did when they came in."""
        bracket = self._trial_info[trial.trial_id]
        count = 0
        for result in history:
            if self._time_attr in result and result.get(self._metric) is not None:
                bracket.on_result(trial, result[self._time_attr], self._metric_op * result[self._metric])
                count += 1
        return count

    def rung_values(self) -> dict[float, dict[str, float]]:
        """Milestone -> {trial id: recorded value (sign as ASHA keeps it)} of the first bracket."""
        return {milestone: dict(recorded) for milestone, recorded in self._brackets[0]._rungs}


def read_history(trial: Trial) -> list[dict[str, Any]]:
    """The results a trial reported before (its result.json in the experiment folder), oldest first."""
    storage = getattr(trial, "storage", None)
    if storage is None or not getattr(storage, "trial_dir_name", None):
        return []  # a new trial: its folder is not named yet
    fs, path = storage.storage_filesystem, (Path(trial.path) / RESULT_FILE).as_posix()
    try:
        with fs.open_input_stream(path) as stream:
            text = stream.readall().decode()
    except (FileNotFoundError, OSError):
        return []  # a new trial: nothing reported yet
    rows = []
    for line in text.splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by a killed driver
            continue
    return rows
