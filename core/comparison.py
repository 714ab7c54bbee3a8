"""The model against the baselines on one split, target by target: the paired interval of the NDCG margin
(core.significance), and catalogue coverage, popularity and NDCG by slice (core.beyond).

Everything is ranked under the model's seen-item rule (core.baselines.model_seen_last), so the model and
the baselines compete on the same candidates. Used by `core.train --test` and `search.retrain`.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from core.baselines import BASELINES, item_counts, model_seen_last
from core.beyond import catalogue_figures, head_items, history_lengths, history_slices, sliced_means, top_k_lists
from core.config import Config
from core.data import PreparedData
from core.evaluation import Scorer, Variant, markov_blend_scorer, model_scorer, target_ranks_of
from core.metrics import metric_name, ndcg_at_k
from core.model import LSTMRecommender
from core.significance import paired_difference
from core.split import EVAL_SPLITS
from core.tensors import EvalTargets, evaluation_targets, resolve_device


def split_targets(config: Config, data: PreparedData, evaluate_on: str = "test") -> EvalTargets:
    """The targets of one split, as the model is evaluated on them."""
    return evaluation_targets(data, EVAL_SPLITS[evaluate_on][1], config.max_seq_len, resolve_device(config.device))


def model_ranking(config: Config, model: LSTMRecommender) -> tuple[Scorer, Scorer | None, Variant]:
    """The model's scorer, its Markov blend and the (blend weight, seen items last) it is evaluated with."""
    weight = float(config.markov_blend) if model.markov_blend else 0.0
    return (model_scorer(model, blend=False), markov_blend_scorer(model) if model.markov_blend else None,
            (weight, model_seen_last(config)))


def target_ndcg(config: Config, scorer: Scorer, blend: Scorer | None, variant: Variant,
                targets: EvalTargets) -> np.ndarray:
    """(T,) each target's NDCG at the first K under one ranking."""
    ranks = target_ranks_of(scorer, blend, variant, targets, exclude_seen=config.exclude_seen,
                            batch_size=config.eval_batch_size)
    return ndcg_at_k(ranks, config.ks[0]).cpu().numpy()


def model_target_ndcg(config: Config, model: LSTMRecommender, targets: EvalTargets) -> np.ndarray:
    """(T,) the model's per-target NDCG at the first K, ranked as its metrics are."""
    return target_ndcg(config, *model_ranking(config, model), targets)


def compare_with_baselines(config: Config, data: PreparedData, targets: EvalTargets, model_ndcg: list[np.ndarray],
                           model: LSTMRecommender, evaluate_on: str = "test") -> dict[str, Any]:
    """The paired NDCG margin over each baseline (the per-target NDCG averaged over the seeds given), and the
    beyond-accuracy figures of `model` (one seed's) and of each baseline, with top-K at the first K."""
    last_train_period = EVAL_SPLITS[evaluate_on][0]
    device, k, seen_last = resolve_device(config.device), config.ks[0], model_seen_last(config)
    scorers = {name: make(data, last_train_period, device) for name, make in BASELINES.items()}
    ndcg = {"model": np.mean(model_ndcg, axis=0)}  # (T,) averaged over seeds
    ndcg.update({name: target_ndcg(config, scorer, None, (0.0, seen_last), targets)
                 for name, scorer in scorers.items()})
    lists = {"model": top_k_lists(*model_ranking(config, model), targets, k=k, exclude_seen=config.exclude_seen,
                                  batch_size=config.eval_batch_size)}
    lists.update({name: top_k_lists(scorer, None, (0.0, seen_last), targets, k=k, exclude_seen=config.exclude_seen,
                                    batch_size=config.eval_batch_size) for name, scorer in scorers.items()})
    counts = item_counts(data, last_train_period)
    head = head_items(counts)
    answers = targets.items[targets.starts + targets.lengths].cpu().numpy()  # (T,)
    popularity_slices = {"head": head[answers], "tail": ~head[answers]}
    return {
        "metric": metric_name("ndcg", k), "seeds": len(model_ndcg), "seen_items_last": seen_last,
        "exclude_seen": config.exclude_seen,
        "paired": {name: paired_difference(ndcg["model"], ndcg[name], seed=config.seed) for name in scorers},
        "top_k": k,
        "catalogue": {**{name: catalogue_figures(top, counts, head) for name, top in lists.items()},
                      "targets": {"mean_popularity": float(counts[answers].mean()),
                                  "tail_share": float((~head[answers]).mean())}},
        "by_history_length": sliced_means(ndcg, history_slices(history_lengths(targets))),
        "by_target_popularity": sliced_means(ndcg, popularity_slices),
    }
