"""From interactions to a prepared data set: filter, sort, encode items, split.

A prepared data set is a few flat arrays: every customer's events are contiguous and in time order,
`items[user_start[u]:user_start[u + 1]]`, and each event carries its period (0 train, 1 validation,
2 test; core.split). Samples are index pairs into `items` (core.samples), built per trial, so the same
prepared data serves every trial of a search.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core.config import Config
from core.dates import describe_times
from core.errors import DataError, rows_text
from core.sources import load_event_log, load_movielens, load_sequences, load_synthetic
from core.split import PERIOD_NAMES, TEST, TRAIN, VALID, split_periods

log = logging.getLogger(__name__)
LATER_SETTINGS = {"time_format": None, "drop_duplicates": True}  # data settings added later, at their defaults


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
        # settings added after searches were saved count only when set: their data keeps its fingerprint
        settings = {k: v for k, v in self.settings.items() if LATER_SETTINGS.get(k, object()) != v}
        digest = hashlib.sha256(repr(sorted(settings.items())).encode())
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
                          config.description_1_col, config.description_2_col, config.time_format)


def prepare_data(config: Config, interactions: pd.DataFrame | None = None) -> PreparedData:
    """Load (unless given), drop short customers, sort, encode items, split: everything trials share."""
    frame = load_interactions(config) if interactions is None else interactions
    stats: dict[str, Any] = {"events_loaded": len(frame), "customers_loaded": int(frame["user"].nunique())}
    frame = count_duplicates(frame, config.drop_duplicates, stats)
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
    if config.split == "time":
        stats["times"] = describe_times(frame["time"])
    data = PreparedData(items=item_ids, user_start=user_start, period=period, user_ids=users,
                        catalog=catalog, settings=config.data_settings())
    data.stats = describe(data, stats)
    log.info("data: %s", ", ".join(f"{k} {v}" for k, v in data.stats.items()))
    return data


def count_duplicates(frame: pd.DataFrame, drop: bool, stats: dict[str, Any]) -> pd.DataFrame:
    """Count repeated (customer, time, item) rows in `stats`; drop them (keeping the first) when asked."""
    repeated = frame.duplicated(["user", "time", "item"]).to_numpy()
    stats["duplicate_events"] = int(repeated.sum())
    if repeated.any():
        lines = frame["line"].to_numpy()[repeated]
        action = "dropped (drop_duplicates: false keeps them)" if drop else "kept as events (drop_duplicates: false)"
        log.warning("data: %d repeated (customer, time, item) rows %s, e.g. at %s", repeated.sum(), action,
                    rows_text(lines))
    return frame[~repeated] if drop and repeated.any() else frame


def describe(data: PreparedData, stats: dict[str, Any]) -> dict[str, Any]:
    """Counts a user should see: events per period, evaluation targets, and targets we cannot score well."""
    stats = dict(stats, customers=len(data.user_ids), events=len(data.items), items=data.n_items)
    for name, period in (("train", TRAIN), ("val", VALID), ("test", TEST)):
        stats[f"{name}_events"] = int((data.period == period).sum())
    first_event = np.zeros(len(data.items), dtype=bool)
    first_event[data.user_start[:-1]] = True
    # an item the customer had before: with exclude_seen such a target is removed from the ranking, a sure miss
    owner = np.repeat(np.arange(len(data.user_ids)), np.diff(data.user_start))
    repeat = pd.Series(owner * (data.n_items + 1) + data.items).duplicated().to_numpy()
    for name, period in PERIOD_NAMES.items():
        in_period = data.period == period
        seen = np.zeros(data.n_items + 1, dtype=bool)
        seen[data.items[data.period < period]] = True
        stats[f"{name}_targets"] = int((in_period & ~first_event).sum())
        stats[f"{name}_no_history"] = int((in_period & first_event).sum())
        stats[f"{name}_cold_targets"] = int((in_period & ~first_event & ~seen[data.items]).sum())
        stats[f"{name}_repeat_targets"] = int((in_period & repeat).sum())
    return stats
