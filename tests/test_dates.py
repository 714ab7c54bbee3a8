"""Times are read as written or refused, never guessed; repeated rows are counted and dropped unless kept."""
import dataclasses

import pandas as pd
import pytest

from core.config import build_config
from core.data import prepare_data
from core.dates import slashed_pattern
from core.errors import ConfigError, DataError
from tests.conftest import write_log

DAY_FIRST = [(1, "13/01/2024", 10), (1, "05/02/2024", 20), (1, "03/03/2024", 30),
             (2, "02/01/2024", 10), (2, "01/02/2024", 30), (2, "28/02/2024", 20)]


def test_day_first_dates_are_refused_with_the_values_and_the_setting_to_use(tmp_path):
    path = write_log(tmp_path / "rentals.csv", DAY_FIRST)
    with pytest.raises(DataError) as err:
        prepare_data(build_config({"data": str(path)}))
    message = str(err.value)
    assert "rentals.csv: column 'agreement_date' has dates that are not ISO 8601" in message
    assert "lines 2 ('13/01/2024'), 3 ('05/02/2024')" in message and "(and 1 more)" in message
    assert "--set time_format='%d/%m/%Y'" in message


def test_day_first_dates_are_read_right_with_time_format(tmp_path):
    path = write_log(tmp_path / "rentals.csv", DAY_FIRST)
    data = prepare_data(build_config({"data": str(path), "time_format": "%d/%m/%Y", "min_user_events": 2}))
    # customer 1: 13 Jan (10), 5 Feb (20), 3 Mar (30); customer 2: 2 Jan (10), 1 Feb (30), 28 Feb (20)
    numbers = data.catalog["item_number"].to_numpy()
    assert numbers[data.items - 1].tolist() == [10, 20, 30, 10, 30, 20]
    assert data.stats["times"] == "dates 2024-01-02 .. 2024-03-03"


def test_a_format_that_does_not_fit_names_the_rows_and_the_format(tmp_path):
    path = write_log(tmp_path / "rentals.csv", DAY_FIRST)
    with pytest.raises(DataError, match=r"do not match time_format '%m/%d/%Y' at lines 2 \('13/01/2024'\), "
                                        r"7 \('28/02/2024'\)"):
        prepare_data(build_config({"data": str(path), "time_format": "%m/%d/%Y"}))
    with pytest.raises(ConfigError, match="time_format: expected a strftime pattern"):
        build_config({"time_format": "dd/mm/yyyy"})


@pytest.mark.parametrize("values, pattern", [
    (["13/01/2024", "01/02/2024"], "%d/%m/%Y"),
    (["01/13/2024", "02/01/2024"], "%m/%d/%Y"),
    (["01.02.24", "03.04.24"], "%d.%m.%y' or '%m.%d.%y"),
    (["2024/01/31"], None),
])
def test_the_suggested_pattern_follows_the_values(values, pattern):
    assert slashed_pattern(pd.Series(values)) == pattern


def test_iso_dates_with_offsets_and_numbers_as_unix_seconds(tmp_path):
    path = write_log(tmp_path / "log.csv", [(1, "2024-01-01T10:00:00+01:00", 10), (1, "2024-01-01 09:30Z", 20),
                                            (2, "2024-01-02 00:00-05:00", 20), (2, "2024-01-02 04:00+00:00", 10)])
    data = prepare_data(build_config({"data": str(path), "split": "leave_one_out"}))
    assert data.catalog["item_number"].to_numpy()[data.items - 1].tolist() == [10, 20, 10, 20]  # 09:00 UTC first
    write_log(path, [(1, "2024-01-01T10:00:00+01:00", 10), (1, "2024-01-01 09:30", 20), (2, "2024-01-02", 10)])
    with pytest.raises(DataError, match=r"'agreement_date' mixes times with a UTC offset \(line 2: "
                                        r"'2024-01-01T10:00:00\+01:00'\) and times without one \(line 3: "
                                        r"'2024-01-01 09:30'\)"):
        prepare_data(build_config({"data": str(path)}))
    pd.DataFrame({"account_number": [1, 1, 2, 2], "agreement_date": [1_700_000_000, 1_700_000_100] * 2,
                  "model_number": [1, 2, 1, 2]}).to_csv(tmp_path / "unix.csv", index=False)
    data = prepare_data(build_config({"data": str(tmp_path / "unix.csv"), "description_1_col": None,
                                      "description_2_col": None}))
    assert data.stats["times"] == "numbers read as unix seconds (2023-11-14 .. 2023-11-14)"


def test_repeated_rows_are_counted_and_dropped_unless_kept(tmp_path):
    rows = [(1, "2024-01-01", 10), (1, "2024-01-01", 10), (1, "2024-01-02", 20), (1, "2024-01-02", 20),
            (1, "2024-01-02", 30), (2, "2024-01-01", 10), (2, "2024-01-03", 10)]
    path = write_log(tmp_path / "log.csv", rows)
    dropped = prepare_data(build_config({"data": str(path), "split": "leave_one_out"}))
    assert dropped.stats["duplicate_events"] == 2 and len(dropped.items) == 5
    kept = prepare_data(build_config({"data": str(path), "split": "leave_one_out", "drop_duplicates": False}))
    assert kept.stats["duplicate_events"] == 2 and len(kept.items) == 7


def test_the_new_data_settings_at_their_defaults_keep_earlier_fingerprints():
    data = prepare_data(build_config({"synthetic_customers": 50, "synthetic_items": 140}))
    before = {k: v for k, v in data.settings.items() if k not in ("time_format", "drop_duplicates")}
    assert data.fingerprint() == dataclasses.replace(data, settings=before).fingerprint()
    changed = dict(data.settings, time_format="%Y-%m-%d")
    assert data.fingerprint() != dataclasses.replace(data, settings=changed).fingerprint()
