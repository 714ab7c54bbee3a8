"""Checks of one setting's value against its declaration (core.config_fields): its type, read from the field's
annotation, then its choices or range. core.config.build_config gathers the problems of every setting."""
from __future__ import annotations

import math
from typing import Any

from core.config_fields import CHOICES, FIELD_TYPES, RANGES


def check_value(key: str, value: Any) -> tuple[Any, str | None]:
    """Return (converted value, problem or None) for one setting."""
    value, problem = _check_type(key, value)
    return value, problem or _check_range(key, value)


def _check_type(key: str, value: Any) -> tuple[Any, str | None]:
    """Return (converted value, problem or None) for one setting."""
    kind = FIELD_TYPES[key]
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return value, f"{key}: expected an integer, got {value!r}"
    elif kind == "float":
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return value, f"{key}: expected a finite number, got {value!r}"
        value = float(value)
    elif kind == "bool":
        if not isinstance(value, bool):
            return value, f"{key}: expected true or false, got {value!r}"
    elif kind == "str":
        if not isinstance(value, str) or not value:
            return value, f"{key}: expected a non-empty string, got {value!r}"
    elif kind == "str | None":
        if value is not None and (not isinstance(value, str) or not value):
            what = "a strftime pattern such as '%d/%m/%Y'" if key == "time_format" else "a column name"
            return value, f"{key}: expected {what} or null, got {value!r}"
        if key == "time_format" and value is not None and "%" not in value:
            return value, f"{key}: expected a strftime pattern such as '%d/%m/%Y' (with % codes), got {value!r}"
    elif kind == "float | str":  # markov_blend
        if value != "auto" and (isinstance(value, bool) or not isinstance(value, (int, float))
                                or not math.isfinite(value) or value < 0):
            return value, f"{key}: expected auto or a number >= 0 (0: off), got {value!r}"
        value = value if value == "auto" else float(value)
    elif kind == "int | str":  # threads
        if value != "auto" and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            return value, f"{key}: expected auto or a positive integer, got {value!r}"
    elif kind == "tuple[int, ...]":
        items = value if isinstance(value, (list, tuple)) else [value]
        if not items or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in items):
            return value, f"{key}: expected a list of positive integers such as [5, 10, 20], got {value!r}"
        value = tuple(sorted(set(items)))
    return value, None


def _check_range(key: str, value: Any) -> str | None:
    if key in CHOICES and value not in CHOICES[key]:
        return f"{key}: expected one of {', '.join(CHOICES[key])}, got {value!r}"
    if key not in RANGES:
        return None
    low, high, low_in, high_in = RANGES[key]
    too_low = low is not None and (value < low if low_in else value <= low)
    too_high = high is not None and (value > high if high_in else value >= high)
    if too_low or too_high:
        left = "" if low is None else f"{'>=' if low_in else '>'} {low}"
        right = "" if high is None else f"{'<=' if high_in else '<'} {high}"
        return f"{key}: expected a value {' and '.join(x for x in (left, right) if x)}, got {value!r}"
    return None
