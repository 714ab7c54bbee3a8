"""Customer and item ids as the user wrote them: integers where every value is one, text otherwise.

An id column is decided from its text, never through a float parse: it is int64 when every distinct value
is a plain integer (no sign but '-', no leading zero) that int64 holds exactly, and text otherwise (Amazon's
A1MNLT8X5G66H1, UUIDs, SKUs, zero-padded numbers, integers beyond int64). Two spellings of one number
(12 and 12.0 or 1.2e1, 7 and 007 or +7) are refused with their rows, never merged. All checks run on the
distinct values, so their cost follows the number of ids, not of events.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from core.errors import DataError, rows_text

PLAIN_INTEGER = r"-?(0|[1-9][0-9]*)"
SIGNED_DIGITS = r"[+-]?[0-9]+"
DECIMAL_NUMBER = r"[+-]?([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+(\.[0-9]*)?[eE][+-]?[0-9]+)"
INT64_MAX = "9223372036854775807"


def id_type(ids: np.ndarray) -> str:
    """'integer' for an int64 id array, 'string' for text ids."""
    return "integer" if np.issubdtype(np.asarray(ids).dtype, np.integer) else "string"


def ids_from_column(column: pd.Series, name: str, where: str, lines: np.ndarray,
                    unit: str) -> np.ndarray | pd.Categorical:
    """(E,) int64 ids (an integer column), or a Categorical of ids decided from their text (core.ids.ids_from_text);
    refusals name the rows."""
    if pd.api.types.is_bool_dtype(column.dtype):
        raise DataError(f"{where}: column {name!r} holds true/false values, not ids, at "
                        f"{rows_text(lines[:5], column[:5], unit=unit)}")
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes, texts = column.cat.codes.to_numpy(), column.cat.categories.to_numpy()
        if not pd.api.types.is_object_dtype(texts.dtype) and not pd.api.types.is_string_dtype(texts.dtype):
            return ids_from_column(column.astype(texts.dtype), name, where, lines, unit)
    elif pd.api.types.is_integer_dtype(column.dtype) and column.notna().all():
        values = column.to_numpy()
        if values.dtype != np.uint64 or len(values) == 0 or values.max() < 2 ** 63:
            return values.astype(np.int64)
        codes, texts = pd.factorize(column.astype(str))  # beyond int64: exact as text, never wrapped
    elif pd.api.types.is_float_dtype(column.dtype):
        return _integral_floats(column, name, where, lines, unit)
    else:
        codes, texts = pd.factorize(column)
    return ids_from_text(np.asarray(codes), pd.Series(texts, dtype=object).astype(str).to_numpy(dtype=object),
                         name, where, lines, unit)  # a Categorical of int64 or text ids


def ids_from_text(codes: np.ndarray, texts: np.ndarray | pa.Array, name: str, where: str, lines: np.ndarray,
                  unit: str) -> pd.Categorical:
    """Ids given as (E,) codes (-1: empty) into (D,) distinct texts: a Categorical whose sorted categories are
    int64 when every text is a plain integer int64 holds, else the texts."""
    empty = codes < 0
    if empty.any():
        raise DataError(f"{where}: column {name!r} has empty values at {rows_text(lines[empty], unit=unit)}")
    raw = pa.array(texts, pa.string()) if not isinstance(texts, pa.Array) else texts.cast(pa.string())
    text = pc.utf8_trim_whitespace(raw)
    digits = _matches(text, SIGNED_DIGITS)
    decimal = _matches(text, DECIMAL_NUMBER)
    _refuse_mixed_numbers(codes, text, digits, decimal, name, where, lines, unit)
    plain = _matches(text, PLAIN_INTEGER)
    if pc.any(pc.not_equal(text, raw)).as_py() or (digits & ~plain).any():
        _refuse_two_spellings(codes, raw, text, digits, name, where, lines, unit)
    if plain.all() and _fits_int64(text).all():
        values = pc.cast(text, pa.int64()).to_numpy()
        order = np.argsort(values, kind="stable")
        categories = pd.Index(values[order])
    else:
        order = pc.array_sort_indices(text).to_numpy()
        categories = pd.Index(text.take(pa.array(order)).to_numpy(zero_copy_only=False), dtype=object)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return pd.Categorical.from_codes(rank[codes], categories=categories, validate=False)


def _matches(text: pa.Array, pattern: str) -> np.ndarray:
    return pc.match_substring_regex(text, f"^(?:{pattern})$").to_numpy(zero_copy_only=False).astype(bool)


def _refuse_two_spellings(codes: np.ndarray, raw: pa.Array, text: pa.Array, digits: np.ndarray, name: str,
                          where: str, lines: np.ndarray, unit: str) -> None:
    """'7' and '007', or 'A1' and ' A1': one id written two ways would be merged or told apart by accident."""
    text = pd.Series(text.to_numpy(zero_copy_only=False), dtype=object)
    key = text.where(~digits, _canonical_integers(text))
    if key.nunique() == len(key):
        return
    twice = key[key.duplicated(keep=False)]
    first = twice[twice == twice.iloc[0]].index.to_numpy()[:2]
    rows = [int(lines[np.argmax(codes == c)]) for c in first]
    shown = raw.take(pa.array(first)).to_pylist()
    raise DataError(f"{where}: column {name!r} writes one id in two ways at {rows_text(rows, shown, unit=unit)}; "
                    "they would be merged or told apart by accident: write each id one way")


def _refuse_mixed_numbers(codes: np.ndarray, text: pa.Array, digits: np.ndarray, decimal: np.ndarray, name: str,
                          where: str, lines: np.ndarray, unit: str) -> None:
    """Integers beside decimal spellings (12 and 12.0, 1000 and 1e3), or every id a decimal: refused."""
    if not decimal.any() or not (digits.any() or (digits | decimal).all()):
        return
    shown = []
    for kind in (digits, decimal):
        at = np.flatnonzero(kind[codes])[:3]
        shown += [f"{unit} {lines[i]} ({text[int(codes[i])].as_py()!r})" for i in at]
    raise DataError(f"{where}: column {name!r} spells numbers in more than one way: {', '.join(shown)}; ids are "
                    "compared as written, and reading them as numbers could merge different ids (a float holds 15-16 "
                    "digits): write every id as an integer (no '.0', no exponent) or as text")


def _integral_floats(column: pd.Series, name: str, where: str, lines: np.ndarray, unit: str) -> np.ndarray:
    """A float column (Parquet) as int64 when every value is a whole number a float holds exactly."""
    values = column.to_numpy()
    bad = np.isnan(values) | (values % 1 != 0) | (np.abs(values) > 2 ** 53)
    if bad.any():
        raise DataError(f"{where}: column {name!r} holds ids as floats that are not exact whole numbers at "
                        f"{rows_text(lines[bad], column[bad], unit=unit)}; store ids as integers or text")
    return values.astype(np.int64)


def _canonical_integers(text: pd.Series) -> pd.Series:
    """'+007' -> '7', '-0' -> '0': the integer each digit string denotes, as text (no int64 limit)."""
    sign = text.str.startswith("-")
    body = text.str.lstrip("+-").str.lstrip("0").replace("", "0")
    return (sign & (body != "0")).map({True: "-", False: ""}) + body


def _fits_int64(text: pa.Array) -> np.ndarray:
    """Plain integer texts that int64 holds (compared as text: no parse that could wrap)."""
    length = pc.utf8_length(pc.utf8_ltrim(text, "-")).to_numpy()
    if length.max(initial=0) < 19:
        return np.ones(len(text), dtype=bool)
    body = pd.Series(text.to_numpy(zero_copy_only=False), dtype=object)
    limit = INT64_MAX[:-1] + np.where(body.str.startswith("-"), "8", "7").astype(object)
    return (length < 19) | ((length == 19) & (body.str.lstrip("-") <= limit).to_numpy(dtype=bool))


def factorize_ids(column: pd.Series | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(E,) codes into (U,) sorted distinct ids (int64 or text): the ids factorised once."""
    if isinstance(getattr(column, "dtype", None), pd.CategoricalDtype):
        values = pd.Series(column).cat
        categories = values.categories
        integer = pd.api.types.is_integer_dtype(categories.dtype)
        ids = categories.to_numpy() if integer else categories.to_numpy(dtype=object)
        return values.codes.to_numpy().astype(np.int64), ids
    codes, uniques = pd.factorize(np.asarray(column), sort=True)
    return codes.astype(np.int64), np.asarray(uniques)


def positions_of(known: np.ndarray, asked: Iterable[int | str]) -> tuple[np.ndarray, list[str]]:
    """Rows of the asked ids (the user's spelling) in the sorted `known`, -1 where unknown, and the malformed ones.

    Integer models take integer texts only ('12', ' 12'); text models take any text, compared exactly. A
    binary search, not a hash table: a server asks for one customer at a time among millions.
    """
    texts = [str(a).strip() for a in asked]
    if id_type(known) == "string":
        wanted = np.array(texts, dtype=object)
    else:
        malformed = [t for t in texts if not _is_integer(t)]
        if malformed:
            return np.full(len(texts), -1), malformed
        in_range = np.array([abs(int(t)) < 2 ** 63 for t in texts], dtype=bool)  # beyond int64: never a known id
        wanted = np.array([int(t) if fits else 0 for t, fits in zip(texts, in_range)], dtype=np.int64)
    found = np.searchsorted(known, wanted).clip(max=max(len(known) - 1, 0))
    hit = (known[found] == wanted) if len(known) else np.zeros(len(texts), dtype=bool)
    if id_type(known) == "integer":
        hit &= in_range
    return np.where(hit, found, -1), []


def _is_integer(text: str) -> bool:
    return text.lstrip("+-").isdigit() and text.count("-") + text.count("+") <= 1
