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


def compare_with_baselines(config: Config, data: PreparedData, targets: EvalTargets, per_target: dict[str, np.ndarray],
                           seeds: int, model: LSTMRecommender, evaluate_on: str = "test") -> dict[str, Any]:
    """The paired NDCG margin over each baseline and NDCG by slice, from target_figures' arrays (the model's
    NDCG averaged over `seeds` seeds), with the catalogue figures of `model` (one seed's) and of each baseline."""
    return {**summarise_targets(per_target, seeds, config.seed, config.ks[0]),
            "seen_items_last": model_seen_last(config), "exclude_seen": config.exclude_seen,
            **catalogue_comparison(config, data, targets, model, evaluate_on), "catalogue_of": "the kept seed's model"}


def target_figures(config: Config, data: PreparedData, targets: EvalTargets, model_ndcg: list[np.ndarray],
                   evaluate_on: str = "test") -> dict[str, np.ndarray]:
    """(T,) arrays: NDCG at the first K of the model (averaged over the seeds given) and of each baseline,
    ranked under the model's seen-item rule; each target's history length and whether it is a head item."""
    last_train_period = EVAL_SPLITS[evaluate_on][0]
    device, seen_last = resolve_device(config.device), model_seen_last(config)
    out = {"model": np.mean(model_ndcg, axis=0)}
    out.update({name: target_ndcg(config, make(data, last_train_period, device), None, (0.0, seen_last), targets)
                for name, make in BASELINES.items()})
    head = head_items(item_counts(data, last_train_period))
    out["history_length"] = history_lengths(targets)
    out["target_head"] = head[targets.items[targets.starts + targets.lengths].cpu().numpy()]
    return out


def summarise_targets(per_target: dict[str, np.ndarray], seeds: int, seed: int = 0,
                      k: int = 5) -> dict[str, Any]:
    """From target_figures' arrays: the paired margin of the model over each baseline (95% intervals, Wilcoxon)
    and every recommender's mean NDCG by history length and by target popularity."""
    ndcg = {name: v for name, v in per_target.items() if name not in ("history_length", "target_head")}
    head = per_target["target_head"].astype(bool)
    return {"metric": metric_name("ndcg", k), "seeds": seeds,
            "paired": {name: paired_difference(ndcg["model"], v, seed=seed) for name, v in ndcg.items()
                       if name != "model"},
            "by_history_length": sliced_means(ndcg, history_slices(per_target["history_length"])),
            "by_target_popularity": sliced_means(ndcg, {"head": head, "tail": ~head})}


def catalogue_comparison(config: Config, data: PreparedData, targets: EvalTargets, model: LSTMRecommender,
                         evaluate_on: str = "test") -> dict[str, Any]:
    """Coverage, mean popularity and long-tail share of the top-K lists (K: the first) of the model and of
    each baseline over every target, and the targets' own popularity."""
    last_train_period = EVAL_SPLITS[evaluate_on][0]
    device, k, seen_last = resolve_device(config.device), config.ks[0], model_seen_last(config)
    rank = dict(k=k, exclude_seen=config.exclude_seen, batch_size=config.eval_batch_size)
    lists = {"model": top_k_lists(*model_ranking(config, model), targets, **rank)}
    lists.update({name: top_k_lists(make(data, last_train_period, device), None, (0.0, seen_last), targets, **rank)
                  for name, make in BASELINES.items()})
    counts = item_counts(data, last_train_period)
    head = head_items(counts)
    answers = targets.items[targets.starts + targets.lengths].cpu().numpy()  # (T,)
    return {"top_k": k, "catalogue": {
        **{name: catalogue_figures(top, counts, head) for name, top in lists.items()},
        "targets": {"mean_popularity": float(counts[answers].mean()), "tail_share": float((~head[answers]).mean())}}}
