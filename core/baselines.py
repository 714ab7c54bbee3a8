"""Most-popular and last-item transition (Markov) recommenders, scored like the model (core.evaluation)."""
from __future__ import annotations

import numpy as np
import torch

from core.batching import concat_ranges
from core.config import Config
from core.data import PreparedData
from core.evaluation import Scorer, evaluate_variants
from core.ranking import ItemScores
from core.samples import history_starts
from core.split import EVAL_SPLITS
from core.tensors import evaluation_targets, resolve_device, sample_targets


def training_mask(data: PreparedData, last_period: int) -> np.ndarray:
    """(E,) True for events the baselines may learn from."""
    return data.period <= last_period


def item_counts(data: PreparedData, last_period: int) -> np.ndarray:
    """(N + 1,) how often each item occurs in the training events (index 0, padding, stays 0)."""
    return np.bincount(data.items[training_mask(data, last_period)], minlength=data.n_items + 1)


def popularity_scorer(data: PreparedData, last_period: int, device: torch.device) -> Scorer:
    """Every history gets the same scores: training counts."""
    counts = torch.as_tensor(item_counts(data, last_period), dtype=torch.float32, device=device)

    def score(inputs: torch.Tensor, lengths: torch.Tensor) -> ItemScores:
        def block(lo: int, hi: int, rows: torch.Tensor | None) -> torch.Tensor:
            return counts[lo:hi].expand(len(inputs) if rows is None else len(rows), -1).clone()  # (R, hi - lo)
        return ItemScores(len(inputs), len(counts), block)
    return score


def markov_table(data: PreparedData, last_period: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Transition counts between consecutive training events of a customer, CSR by source item:
    (indptr (N + 2,), follower, count); the followers of item i are follower[indptr[i]:indptr[i + 1]]."""
    train = training_mask(data, last_period)
    position = np.arange(len(data.items))
    pair = train[1:] & train[:-1] & (history_starts(data)[1:] < position[1:])  # same customer, both training
    source, target = data.items[:-1][pair], data.items[1:][pair]
    n = data.n_items + 1
    pairs, weight = np.unique(source * n + target, return_counts=True)
    indptr = np.searchsorted(pairs // n, np.arange(n + 1))  # transitions of item i: indptr[i]:indptr[i + 1]
    return indptr, pairs % n, weight


def markov_scorer(data: PreparedData, last_period: int, device: torch.device) -> Scorer:
    """Scores = how often each item followed the history's last item in training, popularity breaking ties.

    Popularity is scaled below 1, so it only orders items with equal transition counts (and items
    after a last item never seen in training).
    """
    counts = item_counts(data, last_period)
    as_tensor = lambda a, dtype: torch.as_tensor(a, dtype=dtype, device=device)
    indptr, follower, weight = markov_table(data, last_period)
    indptr, follower, weight = as_tensor(indptr, torch.long), as_tensor(follower, torch.long), as_tensor(
        weight, torch.float32)
    prior = as_tensor(counts / (counts.sum() + 1.0), torch.float32)

    def score(inputs: torch.Tensor, lengths: torch.Tensor) -> ItemScores:
        last = inputs[torch.arange(len(inputs), device=inputs.device), lengths - 1]  # (B,)

        def block(lo: int, hi: int, rows: torch.Tensor | None) -> torch.Tensor:
            sources = last if rows is None else last[rows]
            row, index = concat_ranges(indptr[sources], indptr[sources + 1] - indptr[sources])
            inside = (follower[index] >= lo) & (follower[index] < hi)  # the followers in this block only
            row, index = row[inside], index[inside]
            scores = prior[lo:hi].expand(len(sources), -1).clone()  # (R, hi - lo)
            scores.index_put_((row, follower[index] - lo), weight[index], accumulate=True)
            return scores
        return ItemScores(len(inputs), len(prior), block)
    return score


BASELINES = {"markov": markov_scorer, "most_popular": popularity_scorer}


def model_seen_last(config: Config) -> bool:
    """True when the model ranks the customer's earlier items last (seen_items: last, seen items not excluded)."""
    return not config.exclude_seen and config.seen_items == "last"


def evaluate_baselines(config: Config, data: PreparedData, evaluate_on: str = "val",
                       seen_last: bool | None = None) -> dict[str, dict[str, float]]:
    """Most-popular and Markov metrics on the same targets, with the same metric code and the same seen-item
    rule as the model: with seen_last (default: the config's, model_seen_last) the customer's earlier items
    are ranked last, as the model ranks them; with exclude_seen they are left out of every ranking."""
    seen_last = model_seen_last(config) if seen_last is None else seen_last and not config.exclude_seen
    last_train_period, target_period = EVAL_SPLITS[evaluate_on]
    device = resolve_device(config.device)
    targets = evaluation_targets(data, target_period, config.max_seq_len, device)
    if evaluate_on == "val":
        targets = sample_targets(targets, config.val_sample)  # the model's validation targets
    variant = (0.0, seen_last)
    return {name: evaluate_variants(make(data, last_train_period, device), None, (variant,), targets, ks=config.ks,
                                    exclude_seen=config.exclude_seen, batch_size=config.eval_batch_size)[variant]
            for name, make in BASELINES.items()}
