"""Top-K for every customer (or a list of them) in one vectorised pass: the mailing, the "for you" shelf.

Customers are processed in batches on the model's device. Within a batch: one LSTM pass over each
customer's last max_seq_len items (right-padded, batches formed by history length so that little
padding is computed), then the items in blocks (core.ranking.top_k_blocked): per block the scores, the
customer's whole history masked out, a running top-K and a running softmax denominator, so the scores
reported are the model's probabilities. Memory stays bounded by one block, whatever the catalogue size.
core.recommend's one history and the server's batches use the same kernel.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from core.artifact import SavedModel
from core.errors import DataError
from core.evaluation import model_scorer
from core.ids import positions_of
from core.model import LSTMRecommender
from core.ranking import Pairs, top_k_blocked

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


def read_customer_ids(path: str | Path) -> list[str]:
    """One customer id per line (blank lines and a header line `customer` are skipped; a UTF-8 BOM is fine)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no customer file at {path} (expected one customer id per line)")
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines()]
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: byte {err.object[err.start]:#04x} at position {err.start} is not UTF-8 text "
                        "(expected one customer id per line)") from None
    ids = [line for line in lines if line]
    if ids and ids[0].lower() in ("customer", "customer_id", "account_number", "user"):
        ids = ids[1:]
    if not ids:
        raise DataError(f"{path} holds no customer ids (expected one per line)")
    return ids


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
        window = _windows(items_t, torch.from_numpy(ends[rows]).to(device), lengths)        # (B, T)
        masked = _masked_pairs(items_t, full_start[rows], ends[rows], include_seen, device)
        values, columns, log_total = top_k_blocked(scorer(window, lengths), k_kept, masked, block_columns)
        top_ids[rows, :k_kept] = columns.cpu().numpy()
        top_scores[rows, :k_kept] = torch.exp(values - log_total[:, None]).cpu().numpy()      # -inf -> 0
        if on_batch is not None:
            on_batch(len(rows))
    return top_ids, top_scores


def _windows(items: torch.Tensor, ends: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, T) the last `lengths` items before `ends`, left-aligned, padded with 0 on the right."""
    steps = torch.arange(int(lengths.max()), device=items.device)                           # (T,)
    index = (ends - lengths)[:, None] + steps[None]                                           # (B, T)
    inside = steps[None] < lengths[:, None]
    return torch.where(inside, items[index.clamp(max=len(items) - 1)], 0)


def _masked_pairs(items: torch.Tensor, starts: np.ndarray, ends: np.ndarray, include_seen: bool,
                  device: torch.device) -> Pairs:
    """(row, item) of every item of each row's whole history, or none with include_seen (the top-K kernel
    leaves padding out itself)."""
    counts = np.zeros(len(starts), dtype=np.int64) if include_seen else ends - starts
    row = np.repeat(np.arange(len(starts)), counts)                                           # (S,)
    event = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())  # (S,) into items
    return Pairs.of(torch.from_numpy(row).to(device), items[torch.from_numpy(event).to(device)], len(starts))


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


def _listing(values: list, limit: int = 20) -> str:
    shown = ", ".join(map(str, values[:limit]))
    return shown + (f" ... ({len(values) - limit} more)" if len(values) > limit else "")
