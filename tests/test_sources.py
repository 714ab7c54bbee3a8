import numpy as np
import pandas as pd
import pytest

from core.config import build_config
from core.data import prepare_data
from core.errors import DataError
from core.sources import load_event_log
from core.text_sources import load_movielens, load_sequences
from tests.conftest import needs_shared, write_log

COLUMNS = ("account_number", "agreement_date", "model_number", "model_description_1", "model_description_2")


def load(path, **columns):
    names = dict(zip(("user_col", "time_col", "item_col", "description_1_col", "description_2_col"), COLUMNS))
    names.update(columns)
    return load_event_log(path, **names)


def test_event_log_csv_and_parquet_give_the_same_interactions(tmp_path):
    rows = [(7, "2024-01-03", 100, "Sofa", "grey"), (7, "2024-01-01", 200, "Desk", "oak"), (8, "2024-02-01", 100)]
    csv = write_log(tmp_path / "log.csv", rows)
    pd.read_csv(csv).to_parquet(tmp_path / "log.parquet")
    from_csv, from_parquet = load(csv), load(tmp_path / "log.parquet")
    assert from_csv["item"].tolist() == [100, 200, 100]
    assert from_csv["description_1"].tolist() == ["Sofa", "Desk", "desc"]
    assert from_csv["time"].tolist() == from_parquet["time"].tolist()
    assert from_csv["line"].tolist() == [2, 3, 4]


def test_any_column_names_through_the_mapping(tmp_path):
    path = tmp_path / "events.csv"
    pd.DataFrame({"uid": [1, 1], "ts": [10, 20], "sku": [5, 6]}).to_csv(path, index=False)
    frame = load_event_log(path, "uid", "ts", "sku", None, None)
    assert frame["item"].tolist() == [5, 6] and frame["description_1"].tolist() == ["", ""]


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="nope.csv does not exist"):
        load(tmp_path / "nope.csv")


def test_empty_file_and_header_only(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty.csv is empty"):
        load(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text(",".join(COLUMNS) + "\n")
    with pytest.raises(DataError, match="header.csv has no rows"):
        load(tmp_path / "header.csv")


def test_missing_column_is_named_with_the_columns_found(tmp_path):
    path = tmp_path / "log.csv"
    pd.DataFrame({"account_number": [1], "date": ["2024-01-01"], "model_number": [3]}).to_csv(path, index=False)
    with pytest.raises(DataError) as err:
        load(path)
    message = str(err.value)
    assert "missing columns 'agreement_date' (setting time_col)" in message
    assert "'model_description_1' (setting description_1_col)" in message
    assert "columns found: account_number, date, model_number" in message


def test_dates_that_do_not_parse_give_line_numbers(tmp_path):
    path = write_log(tmp_path / "log.csv", [(1, "2024-01-01", 5), (1, "not a date", 6), (2, "2024-13-45", 7)])
    with pytest.raises(DataError, match=r"'agreement_date' has values that are not dates at lines 3 \('not a date'\), "
                                        r"4 \('2024-13-45'\)"):
        load(path)


def test_integers_beside_decimal_numbers_and_null_ids(tmp_path):
    path = write_log(tmp_path / "log.csv", [(1, "2024-01-01", 5), (1, "2024-01-02", "X-12"), (1, "2024-01-03", 2.5)])
    with pytest.raises(DataError, match=r"'model_number' spells numbers in more than one way: line 2 \('5'\), "
                                        r"line 4 \('2.5'\)"):
        load(path)
    path.write_text("account_number,agreement_date,model_number,model_description_1,model_description_2\n"
                    "1,2024-01-01,5,a,b\n,2024-01-02,6,a,b\n")
    with pytest.raises(DataError, match="'account_number' has empty values at line 3"):
        load(path)


def test_no_customer_with_two_events_from_a_file(tmp_path):
    path = write_log(tmp_path / "log.csv", [(1, "2024-01-01", 5), (2, "2024-01-02", 6)])
    with pytest.raises(DataError, match="no customer has at least 2 events"):
        prepare_data(build_config({"data": str(path)}))


def test_sequence_file_reads_positions_as_time(tmp_path):
    path = tmp_path / "seqs.txt"
    path.write_text("1 10 11 12\n2 11 10\n")
    frame = load_sequences(path)
    assert frame["user"].tolist() == [1, 1, 1, 2, 2]
    assert frame["item"].tolist() == [10, 11, 12, 11, 10]
    assert frame["time"].tolist() == [0, 1, 2, 0, 1]
    data = prepare_data(build_config({"data": str(path)}))
    assert data.stats["split"] == "leave_one_out"


@pytest.mark.parametrize("text, message", [
    ("1 10 11\n2 11 11.0\n", r"'items' spells numbers in more than one way: line 1 \('10'\), line 1 \('11'\), "
                              r"line 2 \('11'\), line 2 \('11.0'\)"),
    ("1 10 11\n2\n", "lines with a user but no items at line 2"),
    ("1 10 11\n1 12 13\n", "users that appear on more than one line, at line 2"),
    ("\n\n", "is empty"),
])
def test_malformed_sequence_files(tmp_path, text, message):
    path = tmp_path / "seqs.txt"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        load_sequences(path)


def test_movielens_folder(tmp_path):
    (tmp_path / "u.data").write_text("1\t10\t5\t881250949\n1\t20\t3\t881250950\n2\t10\t4\t881250000\n")
    (tmp_path / "u.item").write_bytes("10|Toy Story (1995)|01-Jan-1995||url|0\n20|Caf\xe9 (1996)|02-Feb-1996||u|0\n"
                                      .encode("latin-1"))
    frame = load_movielens(tmp_path)
    assert frame["description_1"].tolist() == ["Toy Story (1995)", "Caf\xe9 (1996)", "Toy Story (1995)"]
    assert frame["description_2"].tolist()[1] == "02-Feb-1996"
    (tmp_path / "u.item").unlink()
    with pytest.raises(DataError, match="u.item is missing"):
        load_movielens(tmp_path)


def test_real_movielens_when_present():
    folder = needs_shared("ml-100k")
    data = prepare_data(build_config({"data": str(folder)}))
    assert (data.n_items, len(data.user_ids), len(data.items)) == (1682, 943, 100_000)
    assert data.catalog.loc[0, "description_1"] == "Toy Story (1995)"


def test_synthetic_log_has_the_notebooks_13_columns_and_is_deterministic():
    from core.synthetic import COLUMNS as SYNTHETIC_COLUMNS
    from core.synthetic import generate_rentals
    a, b = generate_rentals(300, 140, seed=3), generate_rentals(300, 140, seed=3)
    assert len(a.columns) == 13 and set(COLUMNS) <= set(a.columns) and list(a.columns) == SYNTHETIC_COLUMNS
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(generate_rentals(300, 140, seed=4))
    assert 100 <= a["model_number"].nunique() <= 140
    counts = a["model_number"].value_counts().to_numpy()
    assert counts[:10].sum() > 4 * counts[-10:].sum()  # skewed popularity
    assert np.issubdtype(a["agreement_date"].dtype, np.datetime64)
