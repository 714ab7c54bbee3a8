"""Checking what a client sends to the recommendation server, before anything reaches the model.

A bad request becomes a RequestError: an HTTP status and one line naming the problem. Nothing here keeps
state, so a bad request cannot change what later requests get.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from starlette.datastructures import QueryParams

from core.artifact import SavedModel
from core.errors import DataError, RecsysError
from core.ids import id_type
from core.recommend import customer_history, item_ids_for_numbers

GET_PARAMS = ("customer", "k", "include_seen")
BODY_KEYS = ("items", "k", "include_seen")
MAX_ITEMS = 10_000
INTEGER = re.compile(r"[+-]?[0-9]{1,18}")
FLAGS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


class RequestError(RecsysError):
    """A request the server refuses, with the HTTP status to answer."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Query:
    history: np.ndarray       # item ids, oldest first
    k: int
    exclude_seen: bool
    customer: int | str | None  # as the model spells it: an integer, or text


def check_k(value: Any, n_items: int) -> int:
    """k as an integer from 1 to the catalogue size."""
    if isinstance(value, str) and INTEGER.fullmatch(value.strip()):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= n_items:
        raise RequestError(400, f"k must be an integer from 1 to {n_items} (the catalogue's size), got {value!r}")
    return value


def query_from_params(params: QueryParams, saved: SavedModel) -> Query:
    """GET /recommend?customer=ID&k=5&include_seen=false -> a checked query."""
    unknown = sorted(set(params.keys()) - set(GET_PARAMS))
    if unknown:
        raise RequestError(400, f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                                f"GET /recommend takes {', '.join(GET_PARAMS)}")
    repeated = [name for name in GET_PARAMS if len(params.getlist(name)) > 1]
    if repeated:
        raise RequestError(400, f"parameter {repeated[0]} is given more than once")
    if "customer" not in params:
        raise RequestError(400, "give a customer: GET /recommend?customer=ID, or POST /recommend "
                                "with {\"items\": [...]} for an anonymous history")
    customer = params["customer"].strip()
    integer_ids = id_type(saved.user_ids) == "integer"
    if integer_ids and not INTEGER.fullmatch(customer):
        raise RequestError(400, f"customer must be an integer id, got {customer!r}")
    k = check_k(params.get("k", "5"), len(saved.catalog))
    flag = params.get("include_seen", "false").strip().lower()
    if flag not in FLAGS:
        raise RequestError(400, f"include_seen must be true or false, got {params['include_seen']!r}")
    try:
        history = customer_history(saved.user_ids, saved.user_start, saved.items, customer)
    except DataError as err:
        raise RequestError(404, str(err)) from None
    return Query(history=history, k=k, exclude_seen=not FLAGS[flag],
                 customer=int(customer) if integer_ids else customer)


def query_from_body(body: bytes, saved: SavedModel) -> Query:
    """POST /recommend {"items": [...], "k": 5, "include_seen": false} -> a checked query."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RequestError(400, f"malformed JSON body: {err}") from None
    except RecursionError:  # a body of [[[[...]]]] nested beyond Python's recursion limit
        raise RequestError(400, "the JSON body is nested too deeply; expected {\"items\": [...], \"k\": 5}") from None
    if not isinstance(payload, dict):
        raise RequestError(400, f"the body must be a JSON object such as {{\"items\": [1, 2], \"k\": 5}}, "
                                f"got a {type(payload).__name__}")
    unknown = sorted(set(payload) - set(BODY_KEYS))
    if unknown:
        raise RequestError(400, f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                                f"POST /recommend takes {', '.join(BODY_KEYS)}")
    items = payload.get("items")
    if not isinstance(items, list) or not items:
        raise RequestError(400, "items must be a non-empty list of item numbers, oldest first")
    if len(items) > MAX_ITEMS:
        raise RequestError(400, f"items has {len(items):,} entries, more than {MAX_ITEMS:,}")
    bad = [i for i in items if isinstance(i, bool) or not isinstance(i, (int, str))]
    if bad:
        raise RequestError(400, f"item numbers must be integers or strings, got {bad[0]!r}")
    k = check_k(payload.get("k", 5), len(saved.catalog))
    include_seen = payload.get("include_seen", False)
    if not isinstance(include_seen, bool):
        raise RequestError(400, f"include_seen must be true or false, got {include_seen!r}")
    try:
        history = item_ids_for_numbers(saved.catalog, items)
    except DataError as err:
        raise RequestError(422, str(err)) from None
    return Query(history=history, k=k, exclude_seen=not include_seen, customer=None)
