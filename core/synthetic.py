"""A deterministic furniture-rental agreement log with the notebook's 13 columns and real sequential structure.

Customers furnish rooms in an order typical of their segment (a student: bedroom, office, living room),
each room's pieces in a typical order, mostly in one style they keep. Style-neutral accessories are
interleaved, so the last item alone often does not say what comes next: a model that remembers the
history beats one that looks at the last item (Markov) or at nothing (popularity). Item popularity is
skewed (Zipf over the variants of each piece), customers arrive with the seasons of their segment,
and patio furniture waits for spring.

Run `python -m core.synthetic out.csv` to write it as a CSV and see the expected input format.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from core.synthetic_catalog import ROOMS, STYLES, build_catalog

SEGMENTS = ["student", "young professional", "family", "corporate"]
SEGMENT_SHARE = [0.25, 0.30, 0.30, 0.15]
# Two room plans per segment (indices into ROOMS); each customer follows one.
ROOM_NAMES = list(ROOMS)
PLANS = {
    "student": [["bedroom", "home office", "living room"], ["bedroom", "living room", "home office"]],
    "young professional": [["living room", "bedroom", "home office", "dining room"],
                           ["bedroom", "living room", "dining room", "patio"]],
    "family": [["living room", "kids room", "bedroom", "dining room", "patio"],
               ["kids room", "bedroom", "living room", "patio", "dining room"]],
    "corporate": [["home office", "living room", "dining room"], ["home office", "dining room", "living room"]],
}
# Style preferences per segment (rows: SEGMENTS, columns: STYLES).
SEGMENT_STYLE = np.array([
    [0.30, 0.35, 0.25, 0.03, 0.07],
    [0.35, 0.30, 0.20, 0.05, 0.10],
    [0.15, 0.25, 0.05, 0.25, 0.30],
    [0.45, 0.10, 0.15, 0.25, 0.05],
])
# Month-of-arrival weights per segment: students arrive for the autumn term, families in spring and summer.
SEGMENT_MONTHS = np.array([
    [1, 1, 1, 1, 1, 2, 4, 8, 8, 2, 1, 1],
    [2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2],
    [1, 2, 3, 4, 4, 4, 3, 2, 1, 1, 1, 1],
    [4, 3, 2, 2, 2, 2, 1, 1, 2, 3, 2, 1],
], dtype=float)
SEGMENT_TERMS = [[3, 6], [6, 12], [12, 24], [12, 24]]
LOG_START = np.datetime64("2023-01-01")
LOG_DAYS = 730
P_ACCESSORY = 0.3
P_KEEP_STYLE = 0.85
P_SKIP_PIECE = 0.15
P_SAME_DAY = 0.35
MEAN_GAP_DAYS = 25.0
COLUMNS = [
    "agreement_number", "account_number", "agreement_date", "model_number", "model_description_1",
    "model_description_2", "product_category", "brand", "store_id", "region", "customer_segment",
    "rental_term_months", "monthly_rate",
]


def _zipf_choice(rng: np.random.Generator, n_options: int, size: int, exponent: float = 1.1) -> np.ndarray:
    weights = 1.0 / np.arange(1, n_options + 1) ** exponent
    return np.searchsorted(np.cumsum(weights) / weights.sum(), rng.random(size), side="right").clip(0, n_options - 1)


def _simulate_pieces(rng: np.random.Generator, segment: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, ...]:
    """Walk every customer through their room plan at once (a loop over steps, vectorised over customers).

    Returns per-event arrays in customer-major order: customer, room index, piece index within the room
    (-1 for an accessory).
    """
    n = len(segment)
    plan_choice = rng.integers(0, 2, n)
    max_rooms = max(len(p) for plans in PLANS.values() for p in plans)
    plans = np.full((len(SEGMENTS), 2, max_rooms), -1)
    for s, name in enumerate(SEGMENTS):
        for k, plan in enumerate(PLANS[name]):
            plans[s, k, :len(plan)] = [ROOM_NAMES.index(r) for r in plan]
    room_sizes = np.array([len(ROOMS[r]) for r in ROOM_NAMES])
    room_step, piece = np.zeros(n, dtype=int), np.zeros(n, dtype=int)
    extra_room = rng.integers(0, len(ROOM_NAMES), n)  # where a customer goes once the plan is done
    steps = []
    for t in range(int(lengths.max())):
        active = np.flatnonzero(lengths > t)
        planned = plans[segment[active], plan_choice[active], np.minimum(room_step[active], max_rooms - 1)]
        in_plan = (room_step[active] < max_rooms) & (planned >= 0)
        room = np.where(in_plan, planned, extra_room[active])
        accessory = (rng.random(len(active)) < P_ACCESSORY) & (t > 0)
        steps.append(np.stack([active, room, np.where(accessory, -1, piece[active]), np.full(len(active), t)]))
        # advance the customers who took a piece: next piece (sometimes one is skipped), then next room
        moved = active[~accessory]
        piece[moved] += 1 + (rng.random(len(moved)) < P_SKIP_PIECE)
        done = moved[piece[moved] >= room_sizes[room[~accessory]]]
        piece[done] = 0
        room_step[done] += 1
        left_plan = done[(room_step[done] >= max_rooms) | (plans[segment[done], plan_choice[done],
                                                                 np.minimum(room_step[done], max_rooms - 1)] < 0)]
        extra_room[left_plan] = rng.integers(0, len(ROOM_NAMES), len(left_plan))
    customer, room, piece_idx, step = np.concatenate(steps, axis=1)
    order = np.lexsort((step, customer))
    return customer[order], room[order], piece_idx[order], step[order]


def generate_rentals(n_customers: int = 3000, n_items: int = 300, seed: int = 0) -> pd.DataFrame:
    """A rental agreement log (13 columns), sorted by agreement date; the same for the same arguments."""
    rng = np.random.default_rng(seed)
    catalog = build_catalog(n_items, rng)
    segment = rng.choice(len(SEGMENTS), n_customers, p=SEGMENT_SHARE)
    style = (rng.random(n_customers)[:, None] > np.cumsum(SEGMENT_STYLE[segment], axis=1)).sum(axis=1)
    lengths = np.minimum(2 + rng.geometric(1 / 9, n_customers), 60)
    customer, room, piece, step = _simulate_pieces(rng, segment, lengths)

    row = _event_items(rng, catalog, style, customer, room, piece)
    day = _event_days(rng, segment, customer, room, piece, step)
    keep = day < LOG_DAYS
    customer, row, day = customer[keep], row[keep], np.floor(day[keep]).astype(int)

    store = rng.integers(1, 13, n_customers)
    items = catalog.iloc[row].reset_index(drop=True)
    log = pd.DataFrame({
        "account_number": 500000 + customer,
        "agreement_date": LOG_START + day.astype("timedelta64[D]"),
        "model_number": items["model_number"].to_numpy(),
        "model_description_1": items["model_description_1"].to_numpy(),
        "model_description_2": items["model_description_2"].to_numpy(),
        "product_category": items["product_category"].to_numpy(),
        "brand": items["brand"].to_numpy(),
        "store_id": store[customer],
        "region": np.array(["North", "East", "South", "West"])[(store[customer] - 1) // 3],
        "customer_segment": np.array(SEGMENTS)[segment[customer]],
        "rental_term_months": np.array(SEGMENT_TERMS)[segment[customer], rng.integers(0, 2, len(customer))],
        "monthly_rate": items["monthly_rate"].to_numpy(),
    })
    log = log.sort_values("agreement_date", kind="stable").reset_index(drop=True)
    log.insert(0, "agreement_number", 1_000_001 + np.arange(len(log)))
    log["agreement_date"] = log["agreement_date"].dt.normalize()
    return log[COLUMNS]


def _event_items(rng: np.random.Generator, catalog: pd.DataFrame, style: np.ndarray, customer: np.ndarray,
                 room: np.ndarray, piece: np.ndarray) -> np.ndarray:
    """Each event's catalogue row: a piece in the customer's style (mostly) and a Zipf-popular variant; or an
    accessory."""
    n_events = len(customer)
    main = catalog[catalog["style"] >= 0]
    variants = int(main["variant"].max()) + 1
    piece_offset = np.cumsum([0] + [len(ROOMS[r]) for r in ROOM_NAMES])[room] + np.maximum(piece, 0)
    event_style = np.where(rng.random(n_events) < P_KEEP_STYLE, style[customer], rng.integers(0, len(STYLES), n_events))
    main_row = (piece_offset * len(STYLES) + event_style) * variants + _zipf_choice(rng, variants, n_events)
    accessories = catalog.index[catalog["style"] < 0].to_numpy()
    acc_row = accessories[rng.permutation(len(accessories))[_zipf_choice(rng, len(accessories), n_events, 0.9)]]
    return np.where(piece >= 0, main_row, acc_row)


def _event_days(rng: np.random.Generator, segment: np.ndarray, customer: np.ndarray, room: np.ndarray,
                piece: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Each event's day since LOG_START: arrival in the segment's season, then same-day batches or gaps; the
    patio waits for spring."""
    n_customers, n_events = len(segment), len(customer)
    month = (rng.random(n_customers)[:, None] > np.cumsum(SEGMENT_MONTHS[segment] / SEGMENT_MONTHS[segment].sum(
        1, keepdims=True), axis=1)).sum(axis=1).clip(0, 11)
    year = rng.integers(0, 2, n_customers)
    start = year * 365 + month * 30.4 + rng.random(n_customers) * 30
    gap = np.where((rng.random(n_events) < P_SAME_DAY) | (step == 0), 0.0, rng.exponential(MEAN_GAP_DAYS, n_events))
    first = np.r_[True, customer[1:] != customer[:-1]]
    day = start[customer] + _cumsum_by_group(gap, first)
    patio = (room == ROOM_NAMES.index("patio")) & (piece >= 0)
    day_of_year = day % 365
    wait = np.where(patio & ((day_of_year < 90) | (day_of_year > 240)), (455 - day_of_year) % 365, 0.0)
    return day + _cummax_by_group(wait, first)  # later events cannot come before the delayed patio piece


def _cumsum_by_group(values: np.ndarray, group_start: np.ndarray) -> np.ndarray:
    total = np.cumsum(values)
    offset = np.maximum.accumulate(np.where(group_start, total - values, 0.0))
    return total - offset


def _cummax_by_group(values: np.ndarray, group_start: np.ndarray) -> np.ndarray:
    # values are >= 0 and groups are contiguous: shift each group above the previous groups' maximum
    group = np.cumsum(group_start)
    shifted = values + group * (values.max() + 1.0)
    return np.maximum.accumulate(shifted) - group * (values.max() + 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description="Write the synthetic furniture-rental log as a CSV.")
    parser.add_argument("out", type=Path, help="CSV file to write")
    parser.add_argument("--customers", type=int, default=3000, help="number of customers (default 3000)")
    parser.add_argument("--items", type=int, default=300, help="approximate catalogue size (default 300)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    args = parser.parse_args()
    log = generate_rentals(args.customers, args.items, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    log.to_csv(args.out, index=False, date_format="%Y-%m-%d")
    print(f"wrote {len(log):,} agreements of {log['account_number'].nunique():,} customers "
          f"and {log['model_number'].nunique():,} items to {args.out}")


if __name__ == "__main__":
    main()
