"""The event-log reader (CSV or Parquet) and the synthetic log read through it, returning the interactions table
every reader returns (MovieLens and sequence files: core.text_sources).

Interactions: one row per event with columns `user` and `item` (the ids as the source spells them: int64,
or a Categorical of texts when a column's ids are not all integers; core.ids), `time` (datetime64 or a
number; for a sequence file, the position), `description_1`, `description_2` (Categoricals: one copy per
distinct text), `line` (where the row came from, for error messages). CSV and Parquet are read with
pyarrow, only the columns named, ids as dictionary-encoded text; the CSV separator is the one whose
header holds the columns. Every problem with an input is raised as a DataError naming the file, the
column and the rows.
"""
from __future__ import annotations

import csv
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from core.dates import parse_times
from core.errors import DataError
from core.errors import rows_text as _rows_text
from core.ids import ids_from_column, ids_from_text
from core.synthetic import generate_rentals


SEPARATORS = (",", ";", "\t", "|")
SAMPLE_BYTES = 1 << 16


def _read_table(path: Path, wanted: dict[str, str | None],
                column_types: dict[str, pa.DataType]) -> tuple[pa.Table, str, int]:
    """Read only the wanted columns of a CSV (with the given types) or Parquet file; return the table, the
    word for a row position, and the first row's number."""
    if not path.exists():
        raise DataError(f"data file {path} does not exist")
    if path.is_dir():
        raise DataError(f"{path} is a folder; an event log must be a CSV or Parquet file "
                        "(a MovieLens folder needs u.data inside)")
    if path.stat().st_size == 0:
        raise DataError(f"data file {path} is empty")
    if path.suffix.lower() in (".parquet", ".pq"):
        return _read_parquet(path, wanted), "row", 1
    separator, header = _separator(path, wanted)
    _check_columns(str(path), header, wanted, separator)
    columns = list(dict.fromkeys(c for c in wanted.values() if c is not None))
    try:
        table = pa_csv.read_csv(path, parse_options=pa_csv.ParseOptions(delimiter=separator),
                                convert_options=pa_csv.ConvertOptions(
                                    include_columns=columns, strings_can_be_null=True, column_types=column_types))
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise DataError(f"data file {path} cannot be read as CSV: {_csv_problem(path, separator, err)}") from None
    if table.num_rows == 0:
        raise DataError(f"data file {path} has no rows (columns found: {', '.join(header)})")
    # CSV: report file line numbers (the header is line 1)
    return table, "line", 2


def _read_parquet(path: Path, wanted: dict[str, str | None]) -> pa.Table:
    try:
        names = pq.read_schema(path).names
        _check_columns(str(path), names, wanted, None)
        table = pq.read_table(path, columns=list(dict.fromkeys(c for c in wanted.values() if c is not None)))
    except (OSError, pa.ArrowException) as err:
        raise DataError(f"data file {path} cannot be read as Parquet: the file is damaged or not Parquet "
                        f"({type(err).__name__}); write it again, or save it as .csv") from None
    if table.num_rows == 0:
        raise DataError(f"data file {path} has no rows (columns found: {', '.join(names)})")
    return table


def _separator(path: Path, wanted: dict[str, str | None]) -> tuple[str, list[str]]:
    """The separator whose header holds every wanted column (else the one csv.Sniffer finds) and the header."""
    sample = path.open("rb").read(SAMPLE_BYTES)
    try:
        text = sample.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        if err.start < len(sample) - 4:  # not a character cut at the end of the sample
            raise DataError(f"data file {path} cannot be read as CSV: byte {sample[err.start]:#04x} at position "
                            f"{err.start} is not UTF-8 text (a binary file, or another encoding: save it as UTF-8 "
                            "CSV or as .parquet)") from None
        text = sample[:err.start].decode("utf-8-sig")
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise DataError(f"data file {path} is empty")
    needed = {c for c in wanted.values() if c is not None}
    for separator in SEPARATORS:
        header = next(csv.reader([lines[0]], delimiter=separator))
        if needed <= set(header):
            return separator, header
    try:
        separator = csv.Sniffer().sniff("\n".join(lines[:20]), delimiters="".join(SEPARATORS)).delimiter
    except csv.Error:
        separator = ","
    return separator, next(csv.reader([lines[0]], delimiter=separator))


def _check_columns(where: str, header: list[str], wanted: dict[str, str | None], separator: str | None) -> None:
    missing = [f"{col!r} (setting {key})" for key, col in wanted.items() if col is not None and col not in header]
    if not missing:
        return
    hint = " (a description column may be set to null when there is none)" if any(
        "description" in m for m in missing) else ""
    found = "" if separator is None else f" (separator found: {SEPARATOR_NAMES.get(separator, repr(separator))})"
    raise DataError(f"{where}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}; "
                    f"columns found: {', '.join(map(str, header))}{found}{hint}")


SEPARATOR_NAMES = {",": "',' (comma)", ";": "';' (semicolon)", "\t": "tab", "|": "'|' (bar)"}


def _csv_problem(path: Path, separator: str, err: Exception) -> str:
    """The problem in pandas' words, which name the line ('expected 5 fields in line 3, saw 7')."""
    try:
        pd.read_csv(path, sep=separator, dtype=str, encoding="utf-8-sig")
    except pd.errors.ParserError as parser_error:
        return _parser_problem(parser_error)
    except UnicodeDecodeError as decode_error:
        return f"byte {decode_error.object[decode_error.start]:#04x} at position {decode_error.start} is not UTF-8 text"
    except Exception:  # pandas fails another way: pyarrow's own words follow
        pass
    return str(err).strip().splitlines()[0]


def _parser_problem(err: pd.errors.ParserError) -> str:
    """pandas' tokenizer message ('Error tokenizing data. C error: Expected 5 fields in line 3, saw 7') in short."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    detail = text.split("C error: ", 1)[-1]
    return f"{detail[0].lower()}{detail[1:]}" if detail else "the rows do not split into the header's columns"


def load_event_log(path: str | Path, user_col: str, time_col: str, item_col: str,
                   description_1_col: str | None, description_2_col: str | None,
                   time_format: str | None = None) -> pd.DataFrame:
    """A CSV or Parquet event log with the given column names; times as core.dates reads them."""
    path = Path(path)
    wanted = {"user_col": user_col, "time_col": time_col, "item_col": item_col,
              "description_1_col": description_1_col, "description_2_col": description_2_col}
    as_text = pa.dictionary(pa.int32(), pa.string())  # repeated texts kept once
    column_types = {column: as_text for column in (description_1_col, description_2_col) if column is not None}
    if time_format is not None:
        column_types[time_col] = as_text  # pyarrow would read ISO-looking values itself, ignoring the format
    # ids as plain text, encoded once over the whole column (per-block dictionaries cost a second pass)
    column_types.update({user_col: pa.large_string(), item_col: pa.large_string()})
    table, unit, first = _read_table(path, wanted, column_types)
    lines = np.arange(first, table.num_rows + first)
    where = str(path)
    with ThreadPoolExecutor(2) as pool:  # the two id columns on the two cores (pyarrow and numpy free the GIL)
        user, item = pool.map(lambda column: _ids(table.column(column), column, where, lines, unit),
                              (user_col, item_col))
    return pd.DataFrame({
        "user": user,
        "time": _times(_series(table.column(time_col)), time_col, where, lines, unit, time_format),
        "item": item,
        "description_1": _texts(table, description_1_col),
        "description_2": _texts(table, description_2_col),
        "line": lines,
    }, copy=False)  # fresh arrays: no consolidating copy (seconds at 10M events)


def _ids(values: pa.ChunkedArray, name: str, where: str, lines: np.ndarray, unit: str) -> np.ndarray | pd.Categorical:
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        values = values.combine_chunks().dictionary_encode()
    if pa.types.is_dictionary(values.type) and (pa.types.is_string(values.type.value_type)
                                                or pa.types.is_large_string(values.type.value_type)):
        encoded = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values  # one dictionary
        codes = _codes(encoded.indices)
        return ids_from_text(codes, encoded.dictionary, name, where, lines, unit)
    return ids_from_column(_series(values), name, where, lines, unit)


def _codes(indices: pa.Array) -> np.ndarray:
    """(E,) int64 dictionary indices, -1 where empty."""
    if indices.null_count:
        indices = indices.fill_null(-1)
    return indices.to_numpy(zero_copy_only=False).astype(np.int64)


def _series(values: pa.ChunkedArray) -> pd.Series:
    return values.to_pandas()


def _texts(table: pa.Table, column: str | None) -> pd.Categorical:
    """A description column as a Categorical (one copy per distinct text); empty values as ''."""
    if column is None:
        return pd.Categorical.from_codes(np.zeros(table.num_rows, dtype=np.int8), categories=[""])
    values = table.column(column)
    if not pa.types.is_dictionary(values.type):
        values = values.cast(pa.string()).dictionary_encode()
    encoded = values.combine_chunks()
    texts = encoded.dictionary.cast(pa.string()).to_numpy(zero_copy_only=False).astype(object)
    codes = _codes(encoded.indices)
    empty = np.flatnonzero(texts == "")
    blank = int(empty[0]) if len(empty) else len(texts)
    codes[codes < 0] = blank
    categories = texts if len(empty) else np.append(texts, "")
    return pd.Categorical.from_codes(codes, categories=pd.Index(categories, dtype=object))


def _times(column: pd.Series, name: str, where: str, lines: np.ndarray, unit: str,
           time_format: str | None) -> np.ndarray:
    if isinstance(column.dtype, pd.CategoricalDtype):
        column = column.astype(object)
    null = column.isna().to_numpy()
    if null.any():
        raise DataError(f"{where}: column {name!r} has empty times at {_rows_text(lines[null], unit=unit)}")
    return parse_times(column, name, where, lines, unit, time_format).to_numpy()


def _interactions_from_frame(frame: pd.DataFrame, where: str, unit: str, first: int, user_col: str,
                             time_col: str, item_col: str, description_1_col: str | None,
                             description_2_col: str | None) -> pd.DataFrame:
    lines = np.arange(len(frame)) + first
    return pd.DataFrame({
        "user": ids_from_column(frame[user_col], user_col, where, lines, unit),
        "time": _times(frame[time_col], time_col, where, lines, unit, None),
        "item": ids_from_column(frame[item_col], item_col, where, lines, unit),
        "description_1": _texts(pa.table({"d": frame[description_1_col].astype(str)}), "d"),
        "description_2": _texts(pa.table({"d": frame[description_2_col].astype(str)}), "d"),
        "line": lines,
    }, copy=False)


def load_synthetic(n_customers: int, n_items: int, seed: int) -> pd.DataFrame:
    """The embedded furniture-rental log, read through the same path as a user's file."""
    log = generate_rentals(n_customers, n_items, seed)
    return _interactions_from_frame(log, "synthetic data", "row", 1, "account_number", "agreement_date",
                                    "model_number", "model_description_1", "model_description_2")
