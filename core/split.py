"""Which period each event belongs to: training, validation or test, by quantiles of time or leave-one-out."""
from __future__ import annotations

import numpy as np
import pandas as pd

from core.config import Config

TRAIN, VALID, TEST = 0, 1, 2
PERIOD_NAMES = {"val": VALID, "test": TEST}
# what a model is evaluated on: (last period it trains on, period of its targets)
EVAL_SPLITS = {"val": (TRAIN, VALID), "test": (VALID, TEST)}


def split_periods(times: pd.Series, user_start: np.ndarray, config: Config) -> tuple[np.ndarray, dict]:
    """Period per event: by quantiles of event time, or leave-one-out per customer."""
    n_events = len(times)
    if config.split == "leave_one_out":
        from_end = np.repeat(user_start[1:], np.diff(user_start)) - np.arange(n_events)  # 1 = last event
        period = np.where(from_end == 1, TEST, np.where(from_end == 2, VALID, TRAIN)).astype(np.int8)
        return period, {"split": "leave_one_out"}
    values = times.to_numpy()
    as_numbers = values.astype("datetime64[ns]").astype(np.int64) if np.issubdtype(
        values.dtype, np.datetime64) else values.astype(np.float64)
    val_cut, test_cut = np.quantile(as_numbers, [config.val_quantile, config.test_quantile], method="lower")
    period = np.where(as_numbers < val_cut, TRAIN, np.where(as_numbers < test_cut, VALID, TEST)).astype(np.int8)
    show = (lambda x: str(pd.Timestamp(int(x)))) if np.issubdtype(values.dtype, np.datetime64) else float
    return period, {"split": "time", "val_cut": show(val_cut), "test_cut": show(test_cut)}
