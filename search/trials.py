"""A finished or unfinished trial as plain data, made from Tune's results by search.tuner.trial_records."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class TrialRecord:
    trial_id: str
    started: float               # unix time of its first epoch's start (orders the trials)
    config: dict[str, Any]       # its complete config
    history: pd.DataFrame        # one row per epoch it reported: epoch and metrics
    error: str | None            # the last line of its error, if it failed
    done: bool                   # Tune says it terminated (ran its epochs, or was stopped by the scheduler)
    wall_seconds: float
    retried: bool = False        # its worker died once and it went on from its last checkpoint

    @property
    def epochs_run(self) -> int:
        return len(self.history)
