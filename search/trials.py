"""A search's trial bookkeeping as plain data: each trial's record (made from Tune's results by
search.tuner.trial_records), its status, the trials table (trials.csv) and its best row."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.metrics import parse_metric_name

STATUS_COMPLETED, STATUS_PLATEAUED, STATUS_STOPPED = "completed", "plateaued", "early-stopped"
STATUS_ERRORED, STATUS_UNFINISHED = "errored", "unfinished"
FINISHED = (STATUS_COMPLETED, STATUS_PLATEAUED, STATUS_STOPPED)  # ran to an end that reported the objective


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


def trial_status(record: TrialRecord, max_epochs: int, peak_epoch: int | None) -> str:
    """completed (ran max_epochs), plateaued (stopped by its own patience), early-stopped (by ASHA), errored
    or unfinished."""
    if record.error:
        return STATUS_ERRORED
    if not record.done:
        return STATUS_UNFINISHED
    if record.epochs_run >= max_epochs:
        return STATUS_COMPLETED
    patience = record.config.get("patience") or 0
    plateaued = patience and peak_epoch is not None and record.epochs_run - peak_epoch >= patience
    return STATUS_PLATEAUED if plateaued else STATUS_STOPPED


def trial_table(records: list[TrialRecord], space_keys: list[str], metric: str, mode: str,
                max_epochs: int) -> pd.DataFrame:
    """One row per trial (in the order they started): sampled values, status, epochs run, its peak epoch, best
    and last validation metrics, wall time."""
    rows = []
    for number, record in enumerate(records, start=1):
        history = record.history
        row = {"trial": number, "trial_id": record.trial_id, "status": "",
               **{key: record.config.get(key) for key in space_keys}, "epochs_run": record.epochs_run}
        if len(history) and metric in history:
            values = history[metric].to_numpy(dtype=float)
            if np.isnan(values).all():
                best = len(values) - 1
            else:
                best = int(np.nanargmax(values) if mode == "max" else np.nanargmin(values))
            row.update({f"best_{metric}": values[best], "peak_epoch": int(history["epoch"].iloc[best])})
            for chosen in ("markov_blend", "seen_last"):  # chosen on validation, at the peak
                if chosen in history:
                    row[chosen] = float(history[chosen].iloc[best])
            validation = [c for c in history.columns if parse_metric_name(c)[0] == "val"]
            for column in [c for c in validation if c != metric]:
                row[f"best_{column}"] = history[column].iloc[best]  # at the peak epoch
            for column in validation:
                row[f"last_{column}"] = history[column].iloc[-1]
        row["status"] = trial_status(record, max_epochs, row.get("peak_epoch"))
        row["wall_seconds"] = record.wall_seconds
        row["retried"] = record.retried
        if "node_ip" in history:  # which machine ran it (Tune's own field), for a search on a cluster
            row["node"] = history["node_ip"].iloc[-1]
        row["error"] = record.error or ""
        rows.append(row)
    return pd.DataFrame(rows)


def best_row(table: pd.DataFrame, metric: str, mode: str) -> pd.Series | None:
    column = f"best_{metric}"
    if column not in table or table[column].isna().all():
        return None
    index = table[column].idxmax() if mode == "max" else table[column].idxmin()
    return table.loc[index]
