"""Samples as index pairs into a prepared data set's flat item array: training windows, the notebook's
prefix samples, and evaluation targets. Built per trial (they depend on max_seq_len) from the shared data.
"""
from __future__ import annotations

import numpy as np

from core.data import PreparedData


def training_windows(data: PreparedData, max_seq_len: int, last_period: int,
                     overlap: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows over each customer's training events, cut from the most recent end: (start, length, loss_from).

    A window reads items[start:start + length] and predicts items[start + 1:start + length + 1]; only its
    positions from loss_from on carry a loss. Each window has `stride` = max(1, round(max_seq_len *
    (1 - overlap))) targets and reads up to max_seq_len - stride earlier items as context only, so every
    training event after a customer's first is the target of exactly one position, and sees at least
    max_seq_len - stride + 1 items of history (or all it has). overlap 0: non-overlapping windows, every
    position a target; the closer to 1, the closer to the notebook's prefix samples, at more LSTM work.
    """
    stride = max(1, round(max_seq_len * (1 - overlap)))
    n_train = events_up_to(data, last_period)
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
    n_train = events_up_to(data, last_period)
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


def events_up_to(data: PreparedData, last_period: int) -> np.ndarray:
    """(U,) how many of each customer's events fall in periods <= last_period (they come first)."""
    return np.add.reduceat((data.period <= last_period).astype(np.int64), data.user_start[:-1])
