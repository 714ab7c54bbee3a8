"""Beyond accuracy: what a ranking does to the catalogue, and where its accuracy comes from.

From each test target's top-K list: catalogue coverage, the mean training popularity of what is
recommended (beside the targets' own) and the share from the long tail. From per-target NDCG: its mean
sliced by history length and by the target's popularity, so a model can be set beside a baseline on the
same slice. Head items are the top `head_share` of the catalogue by training count; the rest is the tail.
"""
from __future__ import annotations

import numpy as np
import torch

from core.batching import batch_indices, gather_windows
from core.evaluation import Scorer, Variant
from core.ranking import ItemScores, as_item_scores, history_pairs, top_k_blocked
from core.tensors import EvalTargets

HISTORY_BINS = ((1, 2), (3, 5), (6, 20), (21, None))  # history lengths (events before the target), inclusive
HEAD_SHARE = 0.2  # the head: the top 20% of items by training count


@torch.no_grad()
def top_k_lists(scorer: Scorer, blend: Scorer | None, variant: Variant, targets: EvalTargets, *, k: int,
                exclude_seen: bool, batch_size: int) -> np.ndarray:
    """(T, k) the item ids each target's customer is recommended under (blend weight, seen items last): the
    scores scorer + w * blend, padding never, the customer's earlier items never if exclude_seen or seen last
    (ranked last, they cannot reach a top k shorter than the unseen catalogue). Ranked in item blocks by the
    kernel that recommend and export use (core.ranking.top_k_blocked)."""
    weight, seen_last = variant
    items, lists = targets.items, []
    for batch in batch_indices(len(targets), batch_size):
        batch = batch.to(items.device)
        start, length = targets.starts[batch], targets.lengths[batch]
        inputs = gather_windows(items, start, length, int(length.max()))
        scores = as_item_scores(scorer(inputs, length))
        if weight:
            scores = _blended(scores, as_item_scores(blend(inputs, length)), weight)
        first = targets.history_first[batch]
        seen = history_pairs(items, first, start + length if exclude_seen or seen_last else first)
        _, columns, _ = top_k_blocked(scores, k, seen)
        lists.append(columns.cpu())  # (B, k)
    return torch.cat(lists).numpy() if lists else np.zeros((0, k), dtype=np.int64)


def _blended(scores: ItemScores, added: ItemScores, weight: float) -> ItemScores:
    """scores + weight * added, block by block."""
    def block(lo: int, hi: int, rows: torch.Tensor | None) -> torch.Tensor:
        return scores.block(lo, hi, rows).add_(added.block(lo, hi, rows), alpha=weight)
    return ItemScores(scores.n_rows, scores.n_columns, block)


def head_items(counts: np.ndarray, share: float = HEAD_SHARE) -> np.ndarray:
    """(N + 1,) True for the top `share` of items 1..N by training count (ties broken by item id)."""
    n_items = len(counts) - 1
    order = np.argsort(-counts[1:], kind="stable") + 1  # item ids, most frequent first
    head = np.zeros(len(counts), dtype=bool)
    head[order[:int(round(share * n_items))]] = True
    return head


def catalogue_figures(lists: np.ndarray, counts: np.ndarray, head: np.ndarray) -> dict[str, float]:
    """Coverage (distinct recommended items / catalogue items), mean training count of the recommended items,
    and the share of recommendations from the tail, over every slot of every (T, K) top-K list."""
    n_items = len(counts) - 1
    return {"coverage": len(np.unique(lists)) / n_items,
            "mean_popularity": float(counts[lists].mean()),
            "tail_share": float((~head[lists]).mean())}


def history_lengths(targets: EvalTargets) -> np.ndarray:
    """(T,) events in each target's customer's whole history before it (not only the model's window)."""
    return (targets.starts + targets.lengths - targets.history_first).cpu().numpy()


def history_slices(lengths: np.ndarray) -> dict[str, np.ndarray]:
    """{label: (T,) bool} one mask per HISTORY_BINS range, e.g. "1-2", ">20"."""
    slices = {}
    for low, high in HISTORY_BINS:
        label = f"{low}-{high}" if high is not None else f">{low - 1}"
        slices[label] = (lengths >= low) & (lengths <= (high if high is not None else np.inf))
    return slices


def sliced_means(values: dict[str, np.ndarray], slices: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """{slice: {"targets": n, name: mean of values[name] on the slice}} for per-target values of several
    recommenders (NaN where a slice is empty)."""
    out = {}
    for label, mask in slices.items():
        n = int(mask.sum())
        out[label] = {"targets": n, **{name: float(v[mask].mean()) if n else float("nan")
                                       for name, v in values.items()}}
    return out
