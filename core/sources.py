"""Readers for every data source, each returning the same interactions table.

Interactions: one row per event with columns `user` (int64), `time` (datetime64 or a number; for a
sequence file, the position), `item` (int64, the item number as the source spells it), `description_1`,
`description_2` (strings), `line` (where the row came from, for error messages). Every problem with
an input is raised as a DataError naming the file, the column and the rows.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from core.dates import parse_times
from core.errors import DataError
from core.errors import rows_text as _rows_text
from core.synthetic import generate_rentals


def _read_table(path: Path) -> tuple[pd.DataFrame, str, int]:
    """Read CSV or Parquet; return the frame, the word for a row position, and the first row's number."""
    if not path.exists():
        raise DataError(f"data file {path} does not exist")
    if path.is_dir():
        raise DataError(f"{path} is a folder; an event log must be a CSV or Parquet file "
                        "(a MovieLens folder needs u.data inside)")
    if path.stat().st_size == 0:
        raise DataError(f"data file {path} is empty")
    is_parquet = path.suffix.lower() in (".parquet", ".pq")
    try:
        frame = pd.read_parquet(path) if is_parquet else pd.read_csv(path, low_memory=False)
    except pd.errors.EmptyDataError:
        raise DataError(f"data file {path} is empty") from None
    except UnicodeDecodeError as err:
        raise DataError(f"data file {path} cannot be read as CSV: byte {err.object[err.start]:#04x} at position "
                        f"{err.start} is not UTF-8 text (a binary file, or another encoding: save it as UTF-8 CSV "
                        "or as .parquet)") from None
    except pd.errors.ParserError as err:
        raise DataError(f"data file {path} cannot be read as CSV: {_parser_problem(err)}") from None
    except (OSError, ValueError) as err:
        if is_parquet:
            raise DataError(f"data file {path} cannot be read as Parquet: the file is damaged or not Parquet "
                            f"({type(err).__name__}); write it again, or save it as .csv") from None
        raise DataError(f"data file {path} cannot be read as CSV ({type(err).__name__}: "
                        f"{str(err).splitlines()[0] if str(err) else ''})") from None
    if frame.empty:
        raise DataError(f"data file {path} has no rows (columns found: {', '.join(map(str, frame.columns))})")
    # CSV: report file line numbers (the header is line 1); Parquet: row numbers from 1
    return frame, ("row" if is_parquet else "line"), (1 if is_parquet else 2)


def _parser_problem(err: pd.errors.ParserError) -> str:
    """pandas' tokenizer message ('Error tokenizing data. C error: Expected 5 fields in line 3, saw 7') in short."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    detail = text.split("C error: ", 1)[-1]
    return f"{detail[0].lower()}{detail[1:]}" if detail else "the rows do not split into the header's columns"


def _integer_ids(column: pd.Series, name: str, where: str, lines: np.ndarray, unit: str) -> np.ndarray:
    """The column as int64, or a DataError listing null or non-integer entries."""
    null = column.isna().to_numpy()
    if null.any():
        raise DataError(f"{where}: column {name!r} has empty values at {_rows_text(lines[null], unit=unit)}")
    if pd.api.types.is_integer_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype):
        return column.to_numpy(dtype=np.int64)
    numbers = pd.to_numeric(column, errors="coerce")
    bad = (numbers.isna() | (numbers % 1 != 0)).to_numpy()
    if pd.api.types.is_bool_dtype(column.dtype):
        bad[:] = True
    if bad.any():
        raise DataError(f"{where}: column {name!r} must hold integer ids; not integers at "
                        f"{_rows_text(lines[bad], column[bad], unit=unit)}")
    return numbers.to_numpy().astype(np.int64)


def load_event_log(path: str | Path, user_col: str, time_col: str, item_col: str,
                   description_1_col: str | None, description_2_col: str | None,
                   time_format: str | None = None) -> pd.DataFrame:
    """A CSV or Parquet event log with the given column names; times as core.dates reads them."""
    path = Path(path)
    frame, unit, first = _read_table(path)
    return _interactions_from_frame(frame, str(path), unit, first, user_col, time_col, item_col,
                                    description_1_col, description_2_col, time_format)


def _interactions_from_frame(frame: pd.DataFrame, where: str, unit: str, first: int, user_col: str,
                             time_col: str, item_col: str, description_1_col: str | None,
                             description_2_col: str | None, time_format: str | None = None) -> pd.DataFrame:
    wanted = {"user_col": user_col, "time_col": time_col, "item_col": item_col,
              "description_1_col": description_1_col, "description_2_col": description_2_col}
    missing = [f"{col!r} (setting {key})" for key, col in wanted.items() if col is not None and col not in frame]
    if missing:
        hint = " (a description column may be set to null when there is none)" if any(
            "description" in m for m in missing) else ""
        raise DataError(f"{where}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}; "
                        f"columns found: {', '.join(map(str, frame.columns))}{hint}")
    lines = np.arange(len(frame)) + first
    null = frame[time_col].isna().to_numpy()
    if null.any():
        raise DataError(f"{where}: column {time_col!r} has empty times at {_rows_text(lines[null], unit=unit)}")
    return pd.DataFrame({
        "user": _integer_ids(frame[user_col], user_col, where, lines, unit),
        "time": parse_times(frame[time_col], time_col, where, lines, unit, time_format).to_numpy(),
        "item": _integer_ids(frame[item_col], item_col, where, lines, unit),
        "description_1": _descriptions(frame, description_1_col),
        "description_2": _descriptions(frame, description_2_col),
        "line": lines,
    })


def _descriptions(frame: pd.DataFrame, column: str | None) -> np.ndarray:
    if column is None:
        return np.full(len(frame), "", dtype=object)
    return frame[column].fillna("").astype(str).to_numpy(dtype=object)


def load_synthetic(n_customers: int, n_items: int, seed: int) -> pd.DataFrame:
    """The embedded furniture-rental log, read through the same path as a user's file."""
    log = generate_rentals(n_customers, n_items, seed)
    return _interactions_from_frame(log, "synthetic data", "row", 1, "account_number", "agreement_date",
                                    "model_number", "model_description_1", "model_description_2")


def load_movielens(folder: str | Path) -> pd.DataFrame:
    """MovieLens-100K: u.data (user, item, rating, unix time) and u.item (title and release date)."""
    folder = Path(folder)
    ratings_path, items_path = folder / "u.data", folder / "u.item"
    for path in (ratings_path, items_path):
        if not path.is_file():
            raise DataError(f"MovieLens folder {folder}: {path.name} is missing (expected u.data and u.item)")
    try:
        ratings = pd.read_csv(ratings_path, sep="\t", header=None, names=["user", "item", "rating", "time"])
        titles = pd.read_csv(items_path, sep="|", header=None, encoding="latin-1", usecols=[0, 1, 2],
                             names=["item", "title", "release"])
    except pd.errors.EmptyDataError:
        raise DataError(f"MovieLens folder {folder}: u.data or u.item is empty") from None
    except (pd.errors.ParserError, ValueError) as err:
        raise DataError(f"MovieLens folder {folder}: cannot parse u.data/u.item: {err}") from None
    lines = np.arange(len(ratings)) + 1
    where = str(ratings_path)
    user = _integer_ids(ratings["user"], "user (column 1)", where, lines, "line")
    item = _integer_ids(ratings["item"], "item (column 2)", where, lines, "line")
    time = _integer_ids(ratings["time"], "timestamp (column 4)", where, lines, "line")
    info = titles.drop_duplicates("item").set_index("item")
    return pd.DataFrame({
        "user": user, "time": time, "item": item,
        "description_1": info["title"].reindex(item).fillna("").astype(str).to_numpy(dtype=object),
        "description_2": info["release"].reindex(item).fillna("").astype(str).to_numpy(dtype=object),
        "line": lines,
    })


def load_sequences(path: str | Path) -> pd.DataFrame:
    """One line per user, `user item1 item2 ...` in time order; the time is the position in the line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"sequence file {path} does not exist")
    lines = path.read_text().splitlines()
    tokens = [line.split() for line in lines]
    short = [i + 1 for i, t in enumerate(tokens) if len(t) == 1]
    if not any(tokens):
        raise DataError(f"sequence file {path} is empty")
    if short:
        raise DataError(f"sequence file {path}: lines with a user but no items at {_rows_text(short)}; "
                        "expected 'user item1 item2 ...'")
    kept = [i for i, t in enumerate(tokens) if t]
    counts = np.array([len(tokens[i]) - 1 for i in kept])
    flat = pd.Series([tok for i in kept for tok in tokens[i]])
    numbers = pd.to_numeric(flat, errors="coerce")
    bad = (numbers.isna() | (numbers % 1 != 0)).to_numpy()
    if bad.any():
        token_line = np.repeat(np.array(kept) + 1, counts + 1)
        raise DataError(f"sequence file {path}: tokens that are not integer ids at "
                        f"{_rows_text(token_line[bad], flat[bad])}; expected 'user item1 item2 ...'")
    numbers = numbers.to_numpy().astype(np.int64)
    is_user = np.zeros(len(flat), dtype=bool)
    is_user[np.cumsum(np.r_[0, counts[:-1] + 1])] = True
    users = numbers[is_user]
    duplicated = pd.Series(users).duplicated().to_numpy()
    if duplicated.any():
        raise DataError(f"sequence file {path}: users that appear on more than one line, at "
                        f"{_rows_text(np.array(kept)[duplicated] + 1, pd.Series(users[duplicated]))}")
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    no_text = np.full(len(within), "", dtype=object)
    return pd.DataFrame({
        "user": np.repeat(users, counts), "time": within, "item": numbers[~is_user],
        "description_1": no_text, "description_2": no_text.copy(), "line": np.repeat(np.array(kept) + 1, counts),
    })
