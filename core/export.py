"""Top-K for every customer (or a list of them) in one vectorised pass: the mailing, the "for you" shelf.

Customers are processed in batches on the model's device. Within a batch: one LSTM pass over each
customer's last max_seq_len items (right-padded, batches formed by history length so that little
padding is computed), then the items in blocks (core.ranking.top_k_blocked): per block the scores, the
customer's whole history masked out, a running top-K and a running softmax denominator, so the scores
reported are the model's probabilities. Memory stays bounded by one block, whatever the catalogue size.
The kernel is core.recommend.top_k_items, which also serves one history and the server's batches.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from core.artifact import SavedModel
from core.errors import DataError
from core.recommend import customer_positions, top_k_items

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
