"""From interactions to a prepared data set: filter, sort, encode items, split, and index samples.

A prepared data set is a few flat arrays: every customer's events are contiguous and in time order,
`items[user_start[u]:user_start[u + 1]]`, and each event carries its period (0 train, 1 validation,
2 test). Training windows and evaluation targets are (start, length) index pairs into `items`, built
per trial (they depend on max_seq_len), so the same prepared data serves every trial of a search.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core.config import Config
from core.errors import DataError
from core.sources import load_event_log, load_movielens, load_sequences, load_synthetic

log = logging.getLogger(__name__)

TRAIN, VALID, TEST = 0, 1, 2
PERIOD_NAMES = {"val": VALID, "test": TEST}


@dataclass
class PreparedData:
    items: np.ndarray         # (E,) int64 item id of each event, 1..n_items; customers contiguous, in time order
    user_start: np.ndarray    # (U + 1,) int64 offsets of each customer's events in `items`
    period: np.ndarray        # (E,) int8: 0 train, 1 validation, 2 test
    user_ids: np.ndarray      # (U,) int64 customer ids as the source spells them
    catalog: pd.DataFrame     # item_id, item_number, description_1, description_2; row i is item id i + 1
    settings: dict[str, Any]  # the data settings it was built from
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def n_items(self) -> int:
        return len(self.catalog)

    def fingerprint(self) -> str:
        """A short hash of the settings and the prepared arrays: equal fingerprints, equal data."""
        digest = hashlib.sha256(repr(sorted(self.settings.items())).encode())
        for array in (self.items, self.user_start, self.period, self.catalog["item_number"].to_numpy()):
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()[:16]


def load_interactions(config: Config) -> pd.DataFrame:
    """Read the configured source into the interactions table (see core.sources)."""
    if config.data_format == "synthetic":
        return load_synthetic(config.synthetic_customers, config.synthetic_items, config.synthetic_seed)
    if config.data_format == "movielens":
        return load_movielens(config.data)
    if config.data_format == "sequences":
        return load_sequences(config.data)
    return load_event_log(config.data, config.user_col, config.time_col, config.item_col,
                          config.description_1_col, config.description_2_col)


def prepare_data(config: Config, interactions: pd.DataFrame | None = None) -> PreparedData:
    """Load (unless given), drop short customers, sort, encode items, split: everything trials share."""
    frame = load_interactions(config) if interactions is None else interactions
    stats: dict[str, Any] = {"events_loaded": len(frame), "customers_loaded": int(frame["user"].nunique())}
    sizes = frame.groupby("user")["user"].transform("size").to_numpy()
    keep = sizes >= config.min_user_events
    stats["customers_dropped"] = int(frame.loc[~keep, "user"].nunique())
    stats["events_dropped"] = int((~keep).sum())
    if not keep.any():
        raise DataError(f"{config.data}: no customer has at least {config.min_user_events} events "
                        f"({stats['customers_loaded']} customers, {len(frame)} events); "
                        "sequences need a history and a next item")
    # ties in time keep the source's row order, so the result never depends on the sort algorithm
    frame = frame[keep].sort_values(["user", "time", "line"], kind="stable").reset_index(drop=True)

    item_ids, item_numbers = pd.factorize(frame["item"], sort=True)  # hashing: np.unique's full sort is 3x slower
    item_ids, item_numbers = item_ids.astype(np.int64) + 1, np.asarray(item_numbers)  # 0 is padding
    first_seen = frame.drop_duplicates("item", keep="last").set_index("item").reindex(item_numbers)
    catalog = pd.DataFrame({
        "item_id": np.arange(1, len(item_numbers) + 1),
        "item_number": item_numbers,
        "description_1": first_seen["description_1"].to_numpy(),
        "description_2": first_seen["description_2"].to_numpy(),
    })
    user = frame["user"].to_numpy()  # sorted, so each customer's events are one run
    user_start = np.flatnonzero(np.r_[True, user[1:] != user[:-1], True]).astype(np.int64)
    users = user[user_start[:-1]]
    period, cut_info = split_periods(frame["time"], user_start, config)
    stats.update(cut_info)
    data = PreparedData(items=item_ids, user_start=user_start, period=period, user_ids=users,
                        catalog=catalog, settings=config.data_settings())
    data.stats = describe(data, stats)
    log.info("data: %s", ", ".join(f"{k} {v}" for k, v in data.stats.items()))
    return data


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


def describe(data: PreparedData, stats: dict[str, Any]) -> dict[str, Any]:
    """Counts a user should see: events per period, evaluation targets, and targets we cannot score well."""
    stats = dict(stats, customers=len(data.user_ids), events=len(data.items), items=data.n_items)
    for name, period in (("train", TRAIN), ("val", VALID), ("test", TEST)):
        stats[f"{name}_events"] = int((data.period == period).sum())
    first_event = np.zeros(len(data.items), dtype=bool)
    first_event[data.user_start[:-1]] = True
    for name, period in PERIOD_NAMES.items():
        in_period = data.period == period
        seen = np.zeros(data.n_items + 1, dtype=bool)
        seen[data.items[data.period < period]] = True
        stats[f"{name}_targets"] = int((in_period & ~first_event).sum())
        stats[f"{name}_no_history"] = int((in_period & first_event).sum())
        stats[f"{name}_cold_targets"] = int((in_period & ~first_event & ~seen[data.items]).sum())
    return stats


def training_windows(data: PreparedData, max_seq_len: int, last_period: int,
                     overlap: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows over each customer's training events, cut from the most recent end: (start, length, loss_from).

    A window reads items[start:start + length] and predicts items[start + 1:start + length + 1]; only its
    positions from loss_from on carry a loss. Each window has `stride` = max(1, round(max_seq_len *
    (1 - overlap))) targets and reads up to max_seq_len - stride earlier items as context only, so every
    training event after a customer's first is the target of exactly one position, and sees at least
    max_seq_len - stride + 1 items of history (or all it has). overlap 0: non-overlapping windows, every
    position a target; the closer to 1, the closer to the notebook's prefix samples, at more LSTM work.
    """
    stride = max(1, round(max_seq_len * (1 - overlap)))
    n_train = _events_up_to(data, last_period)
    n_targets = np.maximum(n_train - 1, 0)
    n_windows = -(-n_targets // stride)
    owner = np.repeat(np.arange(len(n_windows)), n_windows)
    k = np.arange(len(owner)) - np.repeat(np.cumsum(n_windows) - n_windows, n_windows)  # 0 = most recent
    first_event = data.user_start[owner]
    last_target = first_event + n_train[owner] - 1 - k * stride
    first_target = np.maximum(first_event + 1, last_target - stride + 1)
    start = np.maximum(first_event, last_target - max_seq_len)
    return start, last_target - start, first_target - 1 - start


def prefix_samples(data: PreparedData, max_seq_len: int, last_period: int) -> tuple[np.ndarray, np.ndarray]:
    """The notebook's samples: one per training event after a customer's first, reading up to max_seq_len before it."""
    n_train = _events_up_to(data, last_period)
    in_train = np.arange(len(data.items)) < np.repeat(data.user_start[:-1] + n_train, np.diff(data.user_start))
    return _history_before(data, np.flatnonzero(in_train), max_seq_len)


def eval_targets(data: PreparedData, period: int, max_seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Events of a period that have a history; the input is everything before, cut to max_seq_len."""
    return _history_before(data, np.flatnonzero(data.period == period), max_seq_len)


def _history_before(data: PreparedData, positions: np.ndarray, max_seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    first = history_starts(data)[positions]
    has_history = positions > first
    positions, first = positions[has_history], first[has_history]
    start = np.maximum(first, positions - max_seq_len)
    return start, positions - start


def history_starts(data: PreparedData) -> np.ndarray:
    """(E,) index of the first event of each event's customer: items[history_starts[p]:p] is p's full history."""
    return np.repeat(data.user_start[:-1], np.diff(data.user_start))


def _events_up_to(data: PreparedData, last_period: int) -> np.ndarray:
    """(U,) how many of each customer's events fall in periods <= last_period (they come first)."""
    return np.add.reduceat((data.period <= last_period).astype(np.int64), data.user_start[:-1])
