"""Top-K recommendations for a customer or a history of item numbers, with each item's descriptions; the one
top-K kernel (top_k_items, over core.ranking.top_k_blocked) that export and the server use too, and the one
lookup of customer ids."""
from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd
import torch

from core.artifact import SavedModel
from core.batching import gather_windows
from core.errors import DataError
from core.evaluation import model_scorer
from core.ids import id_type, positions_of
from core.model import LSTMRecommender
from core.ranking import history_pairs, top_k_blocked

MAX_SPELLING_SEARCH = 100_000


def item_ids_for_numbers(catalog: pd.DataFrame, numbers: list[int | str]) -> np.ndarray:
    """Item numbers (as the source spells them) -> item ids; unknown numbers raise with close matches."""
    lookup = pd.Series(catalog["item_id"].to_numpy(), index=catalog["item_number"].astype(str).to_numpy())
    asked = [str(n).strip() for n in numbers]
    unknown = [n for n in asked if n not in lookup.index]
    if unknown:
        known = lookup.index.tolist()
        hints = []
        for number in unknown[:5]:
            close = difflib.get_close_matches(number, known, n=3, cutoff=0.6)
            hints.append(f"{number}" + (f" (close: {', '.join(close)})" if close else ""))
        raise DataError(f"unknown item number{'s' if len(unknown) > 1 else ''}: {'; '.join(hints)}"
                        f"{' ...' if len(unknown) > 5 else ''} (the catalogue has {len(known)} items)")
    return lookup[asked].to_numpy(dtype=np.int64)


def customer_history(user_ids: np.ndarray, user_start: np.ndarray, items: np.ndarray,
                     customer: int | str) -> np.ndarray:
    """All item ids of one customer (the id as the user writes it), oldest first; an unknown customer raises
    with close ids."""
    found, malformed = positions_of(user_ids, [customer])
    if malformed:
        raise DataError(f"customer id must be an integer, got {customer!r}")
    index = int(found[0])
    if index < 0:
        raise DataError(f"unknown customer {str(customer).strip()} ({len(user_ids)} customers, "
                        f"{_near_ids(user_ids, str(customer).strip())})")
    return items[user_start[index]:user_start[index + 1]]


def customer_positions(user_ids: np.ndarray, customers: Iterable[int | str]) -> np.ndarray:
    """Customer ids (as the user writes them) -> their rows in user_ids; every unknown or malformed id is
    named in one error."""
    positions, malformed = positions_of(user_ids, customers)
    if malformed:
        raise DataError(f"customer ids must be integers; not: {_listing(malformed)}")
    if (positions < 0).any():
        asked = [str(c).strip() for c in customers]
        unknown = list(dict.fromkeys(a for a, p in zip(asked, positions) if p < 0))
        known = f"ids {user_ids.min()}..{user_ids.max()}" if len(user_ids) else "no ids"
        raise DataError(f"{len(unknown)} unknown customer{'s' * (len(unknown) > 1)}: {_listing(unknown)} "
                        f"(the model knows {len(user_ids)} customers, {known})")
    return positions


def _near_ids(user_ids: np.ndarray, customer: str) -> str:
    """The known ids nearest to an unknown one: by value for integer ids, by spelling for text ids."""
    if id_type(user_ids) == "string":
        if len(user_ids) > MAX_SPELLING_SEARCH:  # difflib compares one by one: too slow for a server's answer
            return "none checked for spelling"
        close = difflib.get_close_matches(customer, user_ids.tolist(), n=3, cutoff=0.6)
        return f"close: {', '.join(close)}" if close else "none spelled alike"
    index = np.searchsorted(user_ids, int(customer))
    near = user_ids[max(0, index - 2):index + 2]
    return f"ids {user_ids.min()}..{user_ids.max()}; nearest: {', '.join(map(str, near))}"


@torch.no_grad()
def top_k_items(model: LSTMRecommender, items: np.ndarray, user_start: np.ndarray, positions: np.ndarray,
                k: int, max_seq_len: int, include_seen: bool = False, batch_size: int = 4096,
                on_batch: Callable[[int], None] | None = None,
                block_columns: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(C, k) item ids and (C, k) probabilities for the customers at `positions`; id 0 / score 0 where fewer
    than k items are left to recommend. Items are scored in blocks (core.ranking.top_k_blocked)."""
    scorer = model_scorer(model)  # puts the model in eval mode: dropout is the identity from here on
    device = next(model.parameters()).device
    k_kept = min(k, model.output.out_features - 1)
    ends = user_start[positions + 1]
    full_start = user_start[positions]
    window_length = np.minimum(ends - full_start, max_seq_len)
    order = np.argsort(window_length, kind="stable")  # a batch holds histories of about one length: little padding
    # a loaded model's item array is read-only: copied (only then) before torch takes it
    items_t = torch.from_numpy(np.require(items, np.int64, ["C", "W"])).to(device)
    top_ids = np.zeros((len(positions), k), dtype=np.int64)
    top_scores = np.zeros((len(positions), k), dtype=np.float32)
    for first in range(0, len(order), batch_size):
        rows = order[first:first + batch_size]
        lengths = torch.from_numpy(window_length[rows]).to(device)
        batch_ends = torch.from_numpy(ends[rows]).to(device)
        window = gather_windows(items_t, batch_ends - lengths, lengths, int(lengths.max()))  # (B, T)
        starts = torch.from_numpy(full_start[rows]).to(device)
        masked = history_pairs(items_t, starts, starts if include_seen else batch_ends)  # the whole history, or none
        values, columns, log_total = top_k_blocked(scorer(window, lengths), k_kept, masked, block_columns)
        top_ids[rows, :k_kept] = columns.cpu().numpy()
        top_scores[rows, :k_kept] = torch.exp(values - log_total[:, None]).cpu().numpy()      # -inf -> 0
        if on_batch is not None:
            on_batch(len(rows))
    return top_ids, top_scores


def recommend(model: LSTMRecommender, catalog: pd.DataFrame, history: np.ndarray, k: int = 5,
              max_seq_len: int = 20, exclude_seen: bool = True) -> pd.DataFrame:
    """The k items the model rates most likely next after `history` (item ids, oldest first).

    Returns rank, item_number, description_1, description_2 and score (the model's probability).
    """
    if len(history) == 0:
        raise DataError("the history is empty: give at least one item")
    if k < 1:
        raise DataError(f"k must be at least 1, got {k}")
    ids, probabilities = top_k_items(model, np.asarray(history, dtype=np.int64), np.array([0, len(history)]),
                                     np.array([0]), k=k, max_seq_len=max_seq_len, include_seen=not exclude_seen)
    kept = ids[0] > 0  # 0: fewer than k items were left to recommend
    top_ids, top_scores = ids[0][kept], probabilities[0][kept]
    rows = catalog.iloc[top_ids - 1]
    return pd.DataFrame({
        "rank": np.arange(1, len(rows) + 1),
        "item_number": rows["item_number"].to_numpy(),
        "description_1": rows["description_1"].to_numpy(),
        "description_2": rows["description_2"].to_numpy(),
        "score": top_scores,
    })


def recommend_for(saved: SavedModel, customer: int | str | None = None, items: list[int | str] | None = None,
                  k: int = 5, include_seen: bool = False) -> pd.DataFrame:
    """Top-k for a known customer, or for a history of item numbers: rank, item_number, descriptions, score."""
    if (customer is None) == (items is None):
        raise DataError("give either a customer or a history of items, not both")
    if customer is not None:
        history = customer_history(saved.user_ids, saved.user_start, saved.items, customer)
    else:
        history = item_ids_for_numbers(saved.catalog, items)
    return recommend(saved.model, saved.catalog, history, k=k, max_seq_len=saved.config.max_seq_len,
                     exclude_seen=not include_seen)


def recommend_batch(model: LSTMRecommender, histories: list[np.ndarray], ks: list[int], max_seq_len: int,
                    exclude_seen: list[bool]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per history (item ids, oldest first): its top-k item ids and probabilities, ranked as `recommend` does,
    in one batched pass per setting of exclude_seen (an online server's batch of requests)."""
    if not histories or any(len(h) == 0 for h in histories):
        raise DataError("every history needs at least one item")
    if min(ks) < 1:
        raise DataError(f"k must be at least 1, got {min(ks)}")
    items = np.concatenate([np.asarray(h, dtype=np.int64) for h in histories])
    starts = np.r_[0, np.cumsum([len(h) for h in histories])].astype(np.int64)
    answers: list[tuple[np.ndarray, np.ndarray]] = [(np.empty(0, np.int64), np.empty(0, np.float32))] * len(histories)
    for include_seen in (False, True):
        rows = np.flatnonzero(np.asarray(exclude_seen) != include_seen)
        if len(rows) == 0:
            continue
        ids, scores = top_k_items(model, items, starts, rows, k=max(ks), max_seq_len=max_seq_len,
                                  include_seen=include_seen, batch_size=len(rows))
        for row, row_ids, row_scores in zip(rows, ids, scores):
            keep = row_ids[:ks[row]] > 0  # 0: fewer than k items were left to recommend
            answers[row] = (row_ids[:ks[row]][keep], row_scores[:ks[row]][keep])
    return answers


def _listing(values: list, limit: int = 20) -> str:
    shown = ", ".join(map(str, values[:limit]))
    return shown + (f" ... ({len(values) - limit} more)" if len(values) > limit else "")
