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
from core.ids import factorize_ids, id_type
from core.sources import load_event_log, load_synthetic
from core.split import PERIOD_NAMES, TEST, TRAIN, VALID, split_periods
from core.text_sources import load_movielens, load_sequences

log = logging.getLogger(__name__)
LATER_SETTINGS = {"time_format": None, "drop_duplicates": True}  # data settings added later, at their defaults


@dataclass
class PreparedData:
    items: np.ndarray         # (E,) int64 item id of each event, 1..n_items; customers contiguous, in time order
    user_start: np.ndarray    # (U + 1,) int64 offsets of each customer's events in `items`
    period: np.ndarray        # (E,) int8: 0 train, 1 validation, 2 test
    user_ids: np.ndarray      # (U,) customer ids as the source spells them, sorted: int64, or text (object)
    catalog: pd.DataFrame     # item_id, item_number (int64 or text), description_1, description_2; row i: id i + 1
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
        for array in (self.items, self.user_start, self.period):
            digest.update(np.ascontiguousarray(array).tobytes())
        numbers = self.catalog["item_number"].to_numpy()
        if id_type(numbers) == "integer":  # as before text ids existed, so saved searches keep their fingerprint
            digest.update(np.ascontiguousarray(numbers, dtype=np.int64).tobytes())
        else:
            digest.update("\n".join(numbers).encode())
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
    users, user_values = factorize_ids(frame["user"])  # (E,) codes in id order; (U,) ids: factorised once
    items, item_values = factorize_ids(frame["item"])
    times, lines = frame["time"].to_numpy(), frame["line"].to_numpy()
    stats: dict[str, Any] = {"events_loaded": len(frame), "customers_loaded": int((np.bincount(users) > 0).sum())}
    # ties in time keep the source's row order, so the result never depends on the sort algorithm
    order = customer_time_order(users, times, lines)
    # each column gathered once into that order: at 10M events a random gather costs about a second
    user, item, time = users[order], items[order], times[order]
    keep = ~repeated_events(user, time, item, lines, order, config.drop_duplicates, stats)
    sizes = np.bincount(user[keep], minlength=len(user_values))
    stats["customers_dropped"] = int(((sizes > 0) & (sizes < config.min_user_events)).sum())
    stats["events_dropped"] = int((sizes[sizes < config.min_user_events]).sum())
    keep &= sizes[user] >= config.min_user_events
    if not keep.any():
        raise DataError(f"{config.data}: no customer has at least {config.min_user_events} events "
                        f"({stats['customers_loaded']} customers, {int(sizes.sum())} events); "
                        "sequences need a history and a next item")
    if not keep.all():
        order, user, item, time = order[keep], user[keep], item[keep], time[keep]
    present = np.bincount(item, minlength=len(item_values)) > 0  # items of the kept events only
    item_kept = np.flatnonzero(present)
    item_ids = np.cumsum(present)[item]  # 1..n_items in id order; 0 is padding
    last_seen = order[last_positions(item_ids - 1, len(item_kept))]  # each item's descriptions: its latest event's
    catalog = pd.DataFrame({
        "item_id": np.arange(1, len(item_kept) + 1),
        "item_number": item_values[item_kept],
        "description_1": _texts_at(frame["description_1"], last_seen),
        "description_2": _texts_at(frame["description_2"], last_seen),
    })
    user_start = np.flatnonzero(np.r_[True, user[1:] != user[:-1], True]).astype(np.int64)
    time = pd.Series(time, dtype=frame["time"].dtype)
    period, cut_info = split_periods(time, user_start, config)
    stats.update(cut_info)
    if config.split == "time":
        stats["times"] = describe_times(time)
    data = PreparedData(items=item_ids, user_start=user_start, period=period,
                        user_ids=user_values[user[user_start[:-1]]], catalog=catalog,
                        settings=config.data_settings())
    data.stats = describe(data, stats)
    log.info("data: %s", ", ".join(f"{k} {v}" for k, v in data.stats.items()))
    return data


def _texts_at(column: pd.Series, rows: np.ndarray) -> np.ndarray:
    """The texts at `rows` (a Categorical's or a plain column's)."""
    return pd.Series(column).iloc[rows].astype(object).to_numpy(dtype=object)


def customer_time_order(users: np.ndarray, times: np.ndarray, lines: np.ndarray) -> np.ndarray:
    """(E,) event order by customer code, then time, then source line (a stable sort: lines usually ascend)."""
    if np.all(np.diff(lines) > 0):
        if times.dtype.kind in "iuM":  # one int64 key: one argsort instead of lexsort's two passes
            ticks = times.view(np.int64) if times.dtype.kind == "M" else times.astype(np.int64, copy=False)
            low, span = int(ticks.min()), int(ticks.max()) - int(ticks.min()) + 1
            if (int(users.max(initial=0)) + 1) * span < 2 ** 62:
                return stable_argsort(users * span + (ticks - low))
        return np.lexsort((times, users))
    return np.lexsort((lines, times, users))


def repeated_events(users: np.ndarray, times: np.ndarray, items: np.ndarray, lines: np.ndarray, order: np.ndarray,
                    drop: bool, stats: dict[str, Any]) -> np.ndarray:
    """(E,) True on repeated (customer, time, item) rows after the first, when `drop`; counted in `stats`.
    The events come sorted by customer and time (`order` into the source's `lines`), so a repeat lies in its
    first's run of equal (customer, time)."""
    new_run = np.r_[True, (users[1:] != users[:-1]) | (times[1:] != times[:-1])]
    shared = ~(new_run & np.r_[new_run[1:], True])  # events in a run of two or more: the only candidates
    run = np.cumsum(new_run)[shared]
    repeated = np.zeros(len(users), dtype=bool)
    repeated[shared] = first_seen_before(run * (int(items.max(initial=0)) + 1) + items[shared])
    stats["duplicate_events"] = int(repeated.sum())
    if repeated.any():
        action = "dropped (drop_duplicates: false keeps them)" if drop else "kept as events (drop_duplicates: false)"
        log.warning("data: %d repeated (customer, time, item) rows %s, e.g. at %s", repeated.sum(), action,
                    rows_text(np.sort(lines[order[repeated]])))
    return repeated if drop else np.zeros(len(users), dtype=bool)


def first_seen_before(keys: np.ndarray) -> np.ndarray:
    """(N,) True where the key appeared earlier in `keys` (a stable sort: cheaper than hashing here)."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    repeated = np.empty(len(keys), dtype=bool)
    repeated[order] = np.r_[False, ordered[1:] == ordered[:-1]]
    return repeated


def last_positions(codes: np.ndarray, n: int) -> np.ndarray:
    """(n,) the last position of each code 0..n-1 in `codes` (each appears at least once)."""
    last = np.zeros(n, dtype=np.int64)
    np.maximum.at(last, codes, np.arange(len(codes)))
    return last


def stable_argsort(keys: np.ndarray) -> np.ndarray:
    """np.argsort(keys, kind="stable"), from the unstable sort (2-3x faster on int64) with ties put back
    in index order; ties are usually few, and only they are sorted again."""
    order = np.argsort(keys)
    ordered = keys[order]
    tied = np.r_[False, ordered[1:] == ordered[:-1]]  # equal to the key before it
    if not tied.any():
        return order
    in_run = tied | np.r_[tied[1:], False]
    run = np.cumsum(~tied)[in_run]
    rows = order[in_run]
    order[in_run] = rows[np.lexsort((rows, run))]
    return order


def describe(data: PreparedData, stats: dict[str, Any]) -> dict[str, Any]:
    """Counts a user should see: events per period, evaluation targets, and targets we cannot score well."""
    stats = dict(stats, customers=len(data.user_ids), events=len(data.items), items=data.n_items)
    for name, period in (("train", TRAIN), ("val", VALID), ("test", TEST)):
        stats[f"{name}_events"] = int((data.period == period).sum())
    first_event = np.zeros(len(data.items), dtype=bool)
    first_event[data.user_start[:-1]] = True
    # an item the customer had before: with exclude_seen such a target is removed from the ranking, a sure miss
    owner = np.repeat(np.arange(len(data.user_ids)), np.diff(data.user_start))
    repeat = first_seen_before(owner * (data.n_items + 1) + data.items)
    for name, period in PERIOD_NAMES.items():
        in_period = data.period == period
        seen = np.zeros(data.n_items + 1, dtype=bool)
        seen[data.items[data.period < period]] = True
        stats[f"{name}_targets"] = int((in_period & ~first_event).sum())
        stats[f"{name}_no_history"] = int((in_period & first_event).sum())
        stats[f"{name}_cold_targets"] = int((in_period & ~first_event & ~seen[data.items]).sum())
        stats[f"{name}_repeat_targets"] = int((in_period & repeat).sum())
    return stats
