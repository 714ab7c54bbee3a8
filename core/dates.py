"""Event times read without guessing: ISO 8601 dates, numbers (unix seconds), or the `time_format` given.

A date such as 05/02/2024 means 5 February or 2 May depending on who wrote it; reading it "mixed" swaps
day and month silently wherever the day is 12 or less. So any layout but ISO 8601 needs `time_format`,
and the refusal shows the offending values and the pattern that probably fits. Times with a UTC offset are
read as UTC; a column that mixes times with and without an offset is refused (the naive ones' zone is
unknown), with an example of each.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from core.errors import DataError, rows_text

SLASHED = re.compile(r"^\s*(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{2}|\d{4})(\D.*)?$")
OFFSET = r"\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|z|UTC|[+-]\d{2}(?::?\d{2})?)$"
# unix seconds between 1990 and 2100: what a number read as seconds usually is
PLAUSIBLE_SECONDS = (631_152_000, 4_102_444_800)


def parse_times(column: pd.Series, name: str, where: str, lines: np.ndarray, unit: str,
                time_format: str | None) -> pd.Series:
    """Datetimes stay; numbers are unix seconds (kept as numbers); text is ISO 8601 or `time_format`."""
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        return _naive(column)
    is_number = pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype)
    if is_number and time_format is None:
        return column
    text = column.astype(str).str.replace(r"\.0$", "", regex=True) if is_number else column.astype(str)
    if time_format is not None:
        parsed = pd.to_datetime(text, format=time_format, errors="coerce", utc=True)
        bad = parsed.isna().to_numpy()
        if bad.any():
            raise DataError(f"{where}: column {name!r} has values that do not match time_format "
                            f"{time_format!r} at {rows_text(lines[bad], column[bad], unit=unit)}")
        return _naive(parsed)
    refuse_mixed_offsets(text, name, where, lines, unit)
    parsed = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)
    bad = parsed.isna().to_numpy()
    if not bad.any():
        return _naive(parsed)
    shown = rows_text(lines[bad], column[bad], unit=unit)
    pattern = slashed_pattern(text[bad])
    if pattern is not None:
        raise DataError(f"{where}: column {name!r} has dates that are not ISO 8601 (YYYY-MM-DD) at {shown}; "
                        f"day and month would be guessed, so they are not read: set time_format, "
                        f"e.g. --set time_format='{pattern}'")
    raise DataError(f"{where}: column {name!r} has values that are not dates at {shown}; expected ISO 8601 "
                    "(2024-01-31, 2024-01-31 14:05) or unix seconds, or set time_format (a strftime pattern)")


def refuse_mixed_offsets(text: pd.Series, name: str, where: str, lines: np.ndarray, unit: str) -> None:
    """Times with a UTC offset beside times without one: which zone the naive ones are in is unknown, so
    reading them as UTC could shift them by hours; refused with an example of each."""
    distinct, codes = np.unique(text.to_numpy(dtype=str), return_inverse=True)
    aware = pd.Series(distinct).str.contains(OFFSET, regex=True).to_numpy()
    if aware.all() or not aware.any():
        return
    with_offset, without = np.argmax(aware[codes]), np.argmax(~aware[codes])
    raise DataError(f"{where}: column {name!r} mixes times with a UTC offset ({unit} {lines[with_offset]}: "
                    f"{text.iloc[with_offset]!r}) and times without one ({unit} {lines[without]}: "
                    f"{text.iloc[without]!r}); the zone of the latter is unknown: write every time with its "
                    "offset (e.g. +01:00 or Z), or every time in one zone without offsets")


def slashed_pattern(values: pd.Series) -> str | None:
    """The strftime pattern that fits dates like 31/01/2024 ('%d/%m/%Y or %m/%d/%Y' when both fit)."""
    parts = values.str.extract(SLASHED)
    if parts[0].isna().all():
        return None
    parts = parts.dropna(subset=[0])
    first, second = parts[0].astype(int), parts[1].astype(int)
    sep = re.search(r"[/.\-]", str(values[parts.index[0]])).group(0)
    year = "%Y" if len(parts[2].iloc[0]) == 4 else "%y"
    day_first, month_first = f"%d{sep}%m{sep}{year}", f"%m{sep}%d{sep}{year}"
    time_part = " %H:%M" if parts[3].notna().any() else ""
    if (first > 12).any() and not (second > 12).any():
        return day_first + time_part
    if (second > 12).any() and not (first > 12).any():
        return month_first + time_part
    return f"{day_first}{time_part}' or '{month_first}{time_part}"


def describe_times(times: pd.Series) -> str:
    """One phrase for the data report: how the times were read and their range."""
    values = times.to_numpy()
    if np.issubdtype(values.dtype, np.datetime64):
        return f"dates {pd.Timestamp(values.min()).date()} .. {pd.Timestamp(values.max()).date()}"
    low, high = float(np.min(values)), float(np.max(values))
    for unit, scale in (("seconds", 1), ("milliseconds", 1_000), ("microseconds", 1_000_000)):
        if PLAUSIBLE_SECONDS[0] * scale <= low and high <= PLAUSIBLE_SECONDS[1] * scale:
            return (f"numbers read as unix {unit} ({pd.Timestamp(low / scale, unit='s').date()} .. "
                    f"{pd.Timestamp(high / scale, unit='s').date()})")
    return f"numbers {low:g} .. {high:g} (only their order is used)"


def _naive(times: pd.Series) -> pd.Series:
    """Timezone-aware times as naive UTC; naive ones as they are."""
    return times.dt.tz_convert(None) if getattr(times.dt, "tz", None) is not None else times
