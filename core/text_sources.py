"""Readers for the plain-text formats, each returning core.sources' interactions table: MovieLens-100K's
folder (u.data and u.item) and a sequence file (one line per user, `user item1 item2 ...`). Every problem
with an input is raised as a DataError naming the file, the column and the rows.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import DataError
from core.errors import rows_text as _rows_text
from core.ids import ids_from_column


def load_movielens(folder: str | Path) -> pd.DataFrame:
    """MovieLens-100K: u.data (user, item, rating, unix time) and u.item (title and release date)."""
    folder = Path(folder)
    ratings_path, items_path = folder / "u.data", folder / "u.item"
    for path in (ratings_path, items_path):
        if not path.is_file():
            raise DataError(f"MovieLens folder {folder}: {path.name} is missing (expected u.data and u.item)")
        if path.stat().st_size == 0:
            raise DataError(f"MovieLens folder {folder}: {path.name} is empty")
    try:
        ratings = pd.read_csv(ratings_path, sep="\t", header=None, names=["user", "item", "rating", "time"],
                              dtype=str, encoding="utf-8-sig")
        titles = pd.read_csv(items_path, sep="|", header=None, encoding="latin-1", usecols=[0, 1, 2],
                             names=["item", "title", "release"], dtype=str)
    except pd.errors.EmptyDataError:
        raise DataError(f"MovieLens folder {folder}: u.data or u.item is empty") from None
    except (pd.errors.ParserError, ValueError) as err:
        raise DataError(f"MovieLens folder {folder}: cannot parse u.data/u.item: {err}") from None
    lines = np.arange(len(ratings)) + 1
    where = str(ratings_path)
    user = ids_from_column(ratings["user"], "user (column 1)", where, lines, "line")
    item = ids_from_column(ratings["item"], "item (column 2)", where, lines, "line")
    time = ids_from_column(ratings["time"], "timestamp (column 4)", where, lines, "line")
    if not pd.api.types.is_integer_dtype(getattr(time, "categories", time).dtype):
        raise DataError(f"{where}: timestamp (column 4) must hold unix seconds (integers); not at "
                        f"{_rows_text(lines[:1], ratings['time'][:1])}")
    time = np.asarray(time)
    info = titles.drop_duplicates("item").set_index("item")
    item_text = pd.Series(np.asarray(item)).astype(str).str.strip().to_numpy(dtype=object)
    title, release = (pd.Categorical(info[c].reindex(item_text).fillna("").astype(str).to_numpy(dtype=object))
                      for c in ("title", "release"))
    return pd.DataFrame({
        "user": user, "time": time, "item": item, "description_1": title, "description_2": release,
        "line": lines,
    }, copy=False)


def load_sequences(path: str | Path) -> pd.DataFrame:
    """One line per user, `user item1 item2 ...` in time order; the time is the position in the line.
    Ids are integers or text, each kind (users, items) decided over the whole file (core.ids)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"sequence file {path} does not exist")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as err:
        raise DataError(f"sequence file {path}: byte {err.object[err.start]:#04x} at position {err.start} is "
                        "not UTF-8 text") from None
    tokens = [line.split() for line in lines]
    short = [i + 1 for i, t in enumerate(tokens) if len(t) == 1]
    if not any(tokens):
        raise DataError(f"sequence file {path} is empty")
    if short:
        raise DataError(f"sequence file {path}: lines with a user but no items at {_rows_text(short)}; "
                        "expected 'user item1 item2 ...'")
    kept = np.array([i for i, t in enumerate(tokens) if t])
    counts = np.array([len(tokens[i]) - 1 for i in kept])
    flat = pd.Series([tok for i in kept for tok in tokens[i]], dtype=object)
    is_user = np.zeros(len(flat), dtype=bool)
    is_user[np.cumsum(np.r_[0, counts[:-1] + 1])] = True
    item_line = np.repeat(kept + 1, counts)
    users = ids_from_column(flat[is_user].reset_index(drop=True), "user (first token)", f"sequence file {path}",
                            kept + 1, "line")
    items = ids_from_column(flat[~is_user].reset_index(drop=True), "items", f"sequence file {path}", item_line, "line")
    duplicated = pd.Series(users).duplicated().to_numpy()
    if duplicated.any():
        raise DataError(f"sequence file {path}: users that appear on more than one line, at "
                        f"{_rows_text(kept[duplicated] + 1, pd.Series(np.asarray(users)[duplicated]))}")
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    no_text = pd.Categorical.from_codes(np.zeros(len(within), dtype=np.int8), categories=[""])
    user_codes = np.repeat(np.arange(len(kept)), counts)
    return pd.DataFrame({
        "user": users[user_codes] if isinstance(users, np.ndarray) else pd.Categorical.from_codes(
            users.codes[user_codes], categories=users.categories),
        "time": within, "item": items,
        "description_1": no_text, "description_2": no_text.copy(), "line": item_line,
    }, copy=False)
