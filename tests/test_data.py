import numpy as np
import pandas as pd
import pytest

from core.config import build_config
from core.data import last_positions, prepare_data, stable_argsort
from core.errors import DataError
from core.samples import eval_targets, history_starts, prefix_samples, training_windows
from core.split import TEST, TRAIN, VALID
from tests.conftest import interactions


def test_sorting_encoding_and_dropping_short_customers():
    rows = [(2, 5, 300), (1, 3, 100), (1, 1, 200), (3, 1, 100), (1, 3, 50), (2, 1, 100)]  # user 3 has 1 event
    data = prepare_data(build_config({"split": "leave_one_out"}), interactions(rows))
    assert data.catalog["item_number"].tolist() == [50, 100, 200, 300]
    assert data.catalog["item_id"].tolist() == [1, 2, 3, 4]
    assert data.user_ids.tolist() == [1, 2]
    # user 1: time 1 -> 200, then the time-3 tie in file order: 100 before 50
    assert data.items.tolist() == [3, 2, 1, 2, 4]
    assert data.user_start.tolist() == [0, 3, 5]
    assert (data.stats["customers_dropped"], data.stats["events_dropped"]) == (1, 1)


def test_time_split_inputs_include_all_earlier_history():
    # 12 event times 1..10, 9, 10; lower quantiles: 0.5 -> 6, 0.85 -> 9
    rows = [(1, t, t) for t in range(1, 11)] + [(2, 9, 3), (2, 10, 4)]
    data = prepare_data(build_config({"val_quantile": 0.5}), interactions(rows))
    assert data.stats["val_cut"] == 6.0 and data.stats["test_cut"] == 9.0
    assert data.period.tolist() == [TRAIN] * 5 + [VALID] * 3 + [TEST] * 2 + [TEST] * 2
    starts, lengths = eval_targets(data, VALID, max_seq_len=50)
    assert [data.items[s:s + n].tolist() for s, n in zip(starts, lengths)] == [
        [1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6, 7]]
    starts, lengths = eval_targets(data, TEST, max_seq_len=3)
    # customer 1's test inputs hold validation events; customer 2's second test event has its first as history
    assert [data.items[s:s + n].tolist() for s, n in zip(starts, lengths)] == [[6, 7, 8], [7, 8, 9], [3]]


def test_counts_of_targets_without_history_and_with_items_unseen_in_training():
    rows = [(1, 1, 10), (1, 2, 20), (1, 3, 30),   # train: 10, 20, 30
            (1, 8, 99),                          # validation target with an item never trained on
            (2, 8, 10), (2, 9, 20), (2, 10, 40)]  # customer 2 starts in validation: no history for that event
    # 7 times; lower quantiles: 0.5 -> 8, 0.9 -> 9
    data = prepare_data(build_config({"val_quantile": 0.5, "test_quantile": 0.9}), interactions(rows))
    assert data.period.tolist() == [TRAIN, TRAIN, TRAIN, VALID, VALID, TEST, TEST]
    assert data.stats["val_no_history"] == 1
    assert data.stats["val_targets"] == 1
    assert data.stats["val_cold_targets"] == 1   # 99
    assert data.stats["test_targets"] == 2
    assert data.stats["test_cold_targets"] == 1  # 40 (20 was in training)


def test_leave_one_out_periods():
    rows = [(1, t, t) for t in range(5)] + [(2, t, t) for t in range(2)]
    data = prepare_data(build_config({"split": "leave_one_out"}), interactions(rows))
    assert data.period.tolist() == [0, 0, 0, 1, 2, 1, 2]
    assert data.stats["val_no_history"] == 1  # customer 2's validation event is their first


def naive_prefix_samples(data, max_seq_len, last_period):
    samples = []
    for u in range(len(data.user_ids)):
        seq = data.items[data.user_start[u]:data.user_start[u + 1]]
        per = data.period[data.user_start[u]:data.user_start[u + 1]]
        train = seq[per <= last_period]
        for j in range(1, len(train)):
            samples.append((tuple(train[max(0, j - max_seq_len):j]), train[j]))
    return samples


@pytest.mark.parametrize("max_seq_len", [1, 3, 8])
def test_samples_equal_a_naive_loop_and_windows_cover_each_target_once(max_seq_len):
    data = prepare_data(build_config({"synthetic_customers": 60, "synthetic_items": 140}))
    for last_period in (TRAIN, VALID):
        expected = naive_prefix_samples(data, max_seq_len, last_period)
        starts, lengths = prefix_samples(data, max_seq_len, last_period)
        got = [(tuple(data.items[s:s + n]), data.items[s + n]) for s, n in zip(starts, lengths)]
        assert got == expected
        starts, lengths, loss_from = training_windows(data, max_seq_len, last_period, overlap=0.0)
        assert lengths.min() >= 1 and lengths.max() <= max_seq_len and (loss_from == 0).all()
        targets = np.concatenate([np.arange(s + 1, s + n + 1) for s, n in zip(starts, lengths)])
        assert sorted(targets.tolist()) == sorted(starts_of(prefix_samples(data, max_seq_len, last_period)))
        assert (history_starts(data)[starts] <= starts).all()
        assert (data.period[targets] <= last_period).all()


@pytest.mark.parametrize("max_seq_len, overlap", [(8, 0.5), (8, 0.75), (5, 0.3), (3, 0.9)])
def test_overlapping_windows_give_each_target_once_with_a_long_enough_history(max_seq_len, overlap):
    data = prepare_data(build_config({"synthetic_customers": 60, "synthetic_items": 140}))
    stride = max(1, round(max_seq_len * (1 - overlap)))
    starts, lengths, loss_from = training_windows(data, max_seq_len, TRAIN, overlap)
    assert lengths.max() <= max_seq_len and (loss_from >= 0).all() and (loss_from < lengths).all()
    assert (lengths - loss_from).max() == stride
    targets = np.concatenate([np.arange(s + f + 1, s + n + 1) for s, n, f in zip(starts, lengths, loss_from)])
    assert sorted(targets.tolist()) == sorted(starts_of(prefix_samples(data, max_seq_len, TRAIN)))
    # each target reads max_seq_len - stride + 1 items before it, or its customer's whole history
    first = history_starts(data)
    context = np.concatenate([np.arange(f + 1, n + 1) for n, f in zip(lengths, loss_from)])
    owner_first = np.concatenate([np.full(n - f, s) for s, n, f in zip(starts, lengths, loss_from)])
    assert (context >= np.minimum(max_seq_len - stride + 1, targets - first[targets])).all()
    assert (owner_first >= first[targets]).all()  # a window never reads another customer's events


def starts_of(samples):
    starts, lengths = samples
    return (starts + lengths).tolist()


def test_no_customer_with_two_events_is_a_clear_error():
    with pytest.raises(DataError, match="no customer has at least 2 events"):
        prepare_data(build_config({}), interactions([(1, 1, 1), (2, 1, 1), (3, 2, 2)]))


def test_fingerprint_tells_data_apart():
    a = prepare_data(build_config({"synthetic_customers": 50, "synthetic_items": 140}))
    b = prepare_data(build_config({"synthetic_customers": 50, "synthetic_items": 140}))
    c = prepare_data(build_config({"synthetic_customers": 50, "synthetic_items": 140, "synthetic_seed": 1}))
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


@pytest.mark.parametrize("high", [3, 50, 10 ** 12])  # ties everywhere, some ties, almost none
def test_stable_argsort_keeps_ties_in_index_order(high):
    keys = np.random.default_rng(high).integers(0, high, 5000)
    np.testing.assert_array_equal(stable_argsort(keys), np.argsort(keys, kind="stable"))
    np.testing.assert_array_equal(stable_argsort(np.array([2, 1, 2, 1, 2])), [1, 3, 0, 2, 4])


def test_last_positions_of_each_code():
    np.testing.assert_array_equal(last_positions(np.array([1, 0, 1, 2, 0, 1]), 3), [4, 5, 3])


def test_events_at_one_time_keep_the_files_row_order(tmp_path):
    """A customer's events at the same time stay in the file's order (what the sort may not change)."""
    path = tmp_path / "ties.csv"
    pd.DataFrame({"u": [1] * 6 + [2] * 2, "t": ["2024-01-02"] * 3 + ["2024-01-01"] * 3 + ["2024-01-01"] * 2,
                  "i": [30, 10, 20, 60, 40, 50, 10, 20]}).to_csv(path, index=False)
    data = prepare_data(build_config({"data": str(path), "user_col": "u", "time_col": "t", "item_col": "i",
                                      "description_1_col": None, "description_2_col": None,
                                      "split": "leave_one_out"}))
    numbers = data.catalog["item_number"].to_numpy()
    assert numbers[data.items - 1].tolist() == [60, 40, 50, 30, 10, 20, 10, 20]
