"""Top-K for every customer (or a list of them) in one vectorised pass: the mailing, the "for you" shelf.

Customers are processed in batches on the model's device. Within a batch: one LSTM pass over each
customer's last max_seq_len items (right-padded, batches formed by history length so that little
padding is computed), one (B, H) x (H, N + 1) product for the scores, the customer's whole history
masked out with one scatter, and top-K on the logits; only the K kept values are turned into
probabilities, with each row's softmax denominator summed in place, so the scores equal
core.recommend.recommend's. Memory stays bounded by the batch: one reused (B, N + 1) block.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from core.artifact import SavedModel
from core.errors import DataError
from core.model import LSTMRecommender

EXPORT_COLUMNS = ["customer", "rank", "item_number", "description_1", "description_2", "score"]
OUTPUT_SUFFIXES = (".parquet", ".csv")


def recommend_all(saved: SavedModel, customers: Iterable[int | str] | None = None, k: int = 10,
                  include_seen: bool = False, batch_size: int = 4096,
                  on_batch: Callable[[int], None] | None = None) -> pd.DataFrame:
    """Top-k for every customer (or the given ones, in that order): customer, rank, item_number, descriptions, score.

    Seen items are left out unless include_seen. Descriptions are categoricals (one copy per distinct text).
    on_batch(n) is called after each batch with the number of customers it held (for a progress bar).
    """
    if k < 1:
        raise DataError(f"k must be at least 1, got {k}")
    if batch_size < 1:
        raise DataError(f"batch_size must be at least 1, got {batch_size}")
    k = min(k, len(saved.catalog))  # no customer has more items to rank: memory follows the catalogue, not k
    positions = np.arange(len(saved.user_ids)) if customers is None else customer_positions(saved.user_ids, customers)
    item_ids, scores = top_k_items(saved.model, saved.items, saved.user_start, positions, k=k,
                                   max_seq_len=saved.config.max_seq_len, include_seen=include_seen,
                                   batch_size=batch_size, on_batch=on_batch)
    return recommendation_frame(saved.catalog, saved.user_ids[positions], item_ids, scores)


def customer_positions(user_ids: np.ndarray, customers: Iterable[int | str]) -> np.ndarray:
    """Customer ids -> their rows in the sorted user_ids; every unknown or malformed id is named in one error."""
    asked = [str(c).strip() for c in customers]
    bad = [c for c in asked if not _is_integer(c)]
    if bad:
        raise DataError(f"customer ids must be integers; not: {_listing(bad)}")
    beyond = [c for c in asked if not -2**63 <= int(c) < 2**63]  # no int64 id of the model can match them
    if beyond:
        raise DataError(f"{len(beyond)} unknown customer{'s' * (len(beyond) > 1)}: {_listing(beyond)} "
                        f"(the model knows {len(user_ids)} customers, ids {user_ids.min()}..{user_ids.max()})")
    ids = np.array([int(c) for c in asked], dtype=np.int64)
    positions = np.searchsorted(user_ids, ids).clip(max=max(len(user_ids) - 1, 0))
    known = (user_ids[positions] == ids) if len(user_ids) else np.zeros(len(ids), dtype=bool)
    if not known.all():
        unknown = list(dict.fromkeys(ids[~known].tolist()))
        raise DataError(f"{len(unknown)} unknown customer{'s' * (len(unknown) > 1)}: {_listing(unknown)} "
                        f"(the model knows {len(user_ids)} customers, ids {user_ids.min()}..{user_ids.max()})")
    return positions


def read_customer_ids(path: str | Path) -> list[str]:
    """One customer id per line (blank lines and a header line `customer` are skipped)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no customer file at {path} (expected one customer id per line)")
    lines = [line.strip() for line in path.read_text().splitlines()]
    ids = [line for line in lines if line]
    if ids and not _is_integer(ids[0]) and ids[0].lower() in ("customer", "customer_id", "account_number", "user"):
        ids = ids[1:]
    if not ids:
        raise DataError(f"{path} holds no customer ids (expected one per line)")
    return ids


@torch.no_grad()
def top_k_items(model: LSTMRecommender, items: np.ndarray, user_start: np.ndarray, positions: np.ndarray,
                k: int, max_seq_len: int, include_seen: bool = False, batch_size: int = 4096,
                on_batch: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(C, k) item ids and (C, k) probabilities for the customers at `positions`; id 0 / score 0 where fewer
    than k items are left to recommend."""
    model.eval()  # dropout is the identity from here on, so the output layer is one addmm
    device = next(model.parameters()).device
    weight, bias = model.output.weight, model.output.bias                                    # (N + 1, H), (N + 1,)
    k_kept = min(k, len(bias) - 1)
    ends = user_start[positions + 1]
    full_start = user_start[positions]
    window_length = np.minimum(ends - full_start, max_seq_len)
    order = np.argsort(window_length, kind="stable")  # a batch holds histories of about one length: little padding
    items_t = torch.from_numpy(np.ascontiguousarray(items, dtype=np.int64)).to(device)
    logits = torch.empty(min(batch_size, len(order)), len(bias), device=device)               # reused: (B, N + 1)
    top_ids = np.zeros((len(positions), k), dtype=np.int64)
    top_scores = np.zeros((len(positions), k), dtype=np.float32)
    for first in range(0, len(order), batch_size):
        rows = order[first:first + batch_size]
        lengths = torch.from_numpy(window_length[rows]).to(device)
        window = _windows(items_t, torch.from_numpy(ends[rows]).to(device), lengths)        # (B, T)
        hidden = model(window)[torch.arange(len(rows), device=device), lengths - 1]          # (B, H)
        block = torch.addmm(bias, hidden, weight.T, out=logits[:len(rows)])                   # (B, N + 1)
        model.add_markov_terms_(block, items_t[torch.from_numpy(ends[rows] - 1).to(device)])
        masked = _masked_flat_index(items_t, full_start[rows], ends[rows], include_seen, len(bias), device)
        values, indices, scores = _top_k_probabilities(block, masked, k_kept)
        top_ids[rows, :k_kept] = indices.cpu().numpy()
        top_scores[rows, :k_kept] = scores.cpu().numpy()
        if on_batch is not None:
            on_batch(len(rows))
    return top_ids, top_scores


def _top_k_probabilities(logits: torch.Tensor, masked: torch.Tensor,
                         k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top-k of a (B, N + 1) logit block outside the `masked` flat indices, with their softmax over all columns.

    Overwrites `logits`. The softmax's denominator is summed in place after the top-k (no (B, N + 1) copy):
    the unmasked columns from the block, the few masked ones from their values gathered beforehand.
    """
    n_columns = logits.shape[1]
    flat = logits.view(-1)
    masked_values = flat[masked]                                                              # (S,)
    flat[masked] = float("-inf")
    values, indices = torch.topk(logits, k, dim=1)                                            # (B, k)
    row = masked // n_columns
    shift = values[:, 0].clone()                                                              # (B,) row maximum:
    shift.scatter_reduce_(0, row, masked_values, reduce="amax")                                # of kept or masked
    total = logits.sub_(shift[:, None]).exp_().sum(dim=1)                                     # (B,)
    total.index_add_(0, row, torch.exp(masked_values - shift[row]))
    scores = torch.exp(values - shift[:, None]) / total[:, None]                             # -inf -> 0
    indices[~torch.isfinite(values)] = 0
    return values, indices, scores


def _windows(items: torch.Tensor, ends: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, T) the last `lengths` items before `ends`, left-aligned, padded with 0 on the right."""
    steps = torch.arange(int(lengths.max()), device=items.device)                           # (T,)
    index = (ends - lengths)[:, None] + steps[None]                                           # (B, T)
    inside = steps[None] < lengths[:, None]
    return torch.where(inside, items[index.clamp(max=len(items) - 1)], 0)


def _masked_flat_index(items: torch.Tensor, starts: np.ndarray, ends: np.ndarray, include_seen: bool,
                       n_columns: int, device: torch.device) -> torch.Tensor:
    """Sorted unique flat indices into a (B, n_columns) block: column 0 (padding) of every row, and unless
    include_seen every item of each row's whole history."""
    pad = torch.arange(len(starts), device=device) * n_columns
    if include_seen:
        return pad
    counts = ends - starts
    row = np.repeat(np.arange(len(starts)), counts)                                           # (S,)
    event = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())  # (S,) into items
    seen = torch.from_numpy(row).to(device) * n_columns + items[torch.from_numpy(event).to(device)]
    return torch.unique(torch.cat([pad, seen]))  # an item rented twice is masked, and summed, once


def recommendation_frame(catalog: pd.DataFrame, customer_ids: np.ndarray, item_ids: np.ndarray,
                         scores: np.ndarray) -> pd.DataFrame:
    """One row per customer and rank from (C, k) item ids (0: no item left) and scores."""
    k = item_ids.shape[1]
    kept = item_ids.ravel() > 0
    flat_ids = item_ids.ravel()[kept]
    frame = {
        "customer": np.repeat(customer_ids, k)[kept],
        "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), len(customer_ids))[kept],
        "item_number": catalog["item_number"].to_numpy()[flat_ids - 1],
    }
    for column in ("description_1", "description_2"):
        codes, texts = pd.factorize(catalog[column])
        frame[column] = pd.Categorical.from_codes(codes[flat_ids - 1], categories=texts)
    frame["score"] = scores.ravel()[kept]
    return pd.DataFrame(frame, columns=EXPORT_COLUMNS)


def write_recommendations(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write the export as Parquet or CSV, chosen by the file's suffix."""
    path = Path(path)
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise DataError(f"--out {path}: expected a .parquet or .csv file")
    if path.is_dir():
        raise DataError(f"--out {path} is a folder; give a file name, e.g. {path / ('recs' + path.suffix)}")
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise DataError(f"--out {path}: {blocking} is a file, not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix.lower() == ".parquet":
            frame.to_parquet(path, index=False)
        else:
            frame.to_csv(path, index=False, float_format="%.6g")
    except OSError as err:
        raise DataError(f"--out {path}: cannot write it ({err.strerror or err})") from None
    return path


def _is_integer(text: str) -> bool:
    return text.lstrip("+-").isdigit()


def _listing(values: list, limit: int = 20) -> str:
    shown = ", ".join(map(str, values[:limit]))
    return shown + (f" ... ({len(values) - limit} more)" if len(values) > limit else "")
