"""What validation chooses: the Markov blend weight and the ranking of seen items where the config leaves them
as auto (per evaluation, `evaluate_model`), and the settings a validation run fixes for training on training +
validation (`validation_choices`). core.protocol runs the validation; core.fit evaluates with evaluate_model."""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from core.config import Config
from core.evaluation import (
    Variant,
    evaluate_variants,
    markov_blend_scorer,
    model_scorer,
)
from core.metrics import metric_name
from core.model import LSTMRecommender
from core.tensors import EvalTargets

log = logging.getLogger(__name__)

BLEND_WEIGHTS = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)  # tried by markov_blend: auto after every validation


def evaluate_model(config: Config, model: LSTMRecommender,
                   targets: EvalTargets) -> tuple[dict[str, float], dict[str, float], Variant]:
    """(the model's metrics, the LSTM's alone (ranked under the same seen-item rule), the chosen (blend weight,
    seen items last)). What the config leaves as auto is chosen here, on these targets, by NDCG at the first
    K (on a tie: the smaller weight, seen items kept); the model's blend weight is set to the one chosen."""
    weights = (0.0,)
    if model.markov_blend:
        weights = BLEND_WEIGHTS if config.markov_blend == "auto" else (float(config.markov_blend),)
    seen_last = (False,) if config.exclude_seen else {"auto": (False, True), "keep": (False,), "last": (True,)}[
        config.seen_items]
    allowed = [(w, last) for last in seen_last for w in weights]
    alone = [(0.0, last) for last in seen_last]  # the LSTM alone under each seen-item rule allowed
    results = evaluate_variants(model_scorer(model, blend=False), markov_blend_scorer(model) if model.markov_blend
                                else None, tuple(dict.fromkeys([*allowed, *alone])), targets, ks=config.ks,
                                exclude_seen=config.exclude_seen, batch_size=config.eval_batch_size, with_loss=True)
    ndcg = metric_name("ndcg", config.ks[0])
    chosen = max(allowed, key=lambda v: (results[v][ndcg], -v[0], not v[1]))
    if model.markov_blend:
        model.blend_weight.fill_(chosen[0])
    return results[chosen], results[0.0, chosen[1]], chosen


def needs_validation_choices(config: Config) -> bool:
    """True when a setting is auto: chosen on validation, so not yet known when training for test."""
    return config.markov_blend == "auto" or (config.seen_items == "auto" and not config.exclude_seen)


def validation_choices(config: Config, best: Mapping[str, Any], best_epoch: int | None) -> dict[str, Any]:
    """The settings a validation run fixes for training on training + validation, from its best epoch's
    metrics: epochs (with patience), markov_blend and seen_items where they are auto."""
    chosen: dict[str, Any] = {"epochs": best_epoch} if config.patience and best_epoch else {}
    if config.markov_blend == "auto":
        chosen["markov_blend"] = float(best.get("markov_blend", 0.0))
    if config.seen_items == "auto" and "seen_last" in best:
        chosen["seen_items"] = "last" if best["seen_last"] else "keep"
    log.info("chosen on validation: %s", ", ".join(f"{k} {v}" for k, v in chosen.items()) or "nothing")
    return chosen
