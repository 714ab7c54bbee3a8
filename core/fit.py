"""`fit`: one configuration trained from a config dict, with validation metrics after every epoch.

Reads as data -> tensors -> model -> loop. Build order: data first (it fixes the number of items), then
the model, then the optimiser. Runs without Ray; search/ wraps it, passing a `report` that forwards the
metrics and a checkpoint to Tune.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from core.config import Config, build_config
from core.data import PreparedData, prepare_data
from core.epoch import train_epoch
from core.errors import ConfigError
from core.evaluation import evaluate, model_scorer
from core.metrics import metric_name, with_split
from core.model import LSTMRecommender, build_model
from core.split import EVAL_SPLITS
from core.tensors import (
    EvalTargets,
    TrainingSamples,
    evaluation_targets,
    resolve_device,
    training_samples,
)

log = logging.getLogger(__name__)

Report = Callable[[dict[str, float], dict[str, Any]], None]


@dataclass
class FitResult:
    model: LSTMRecommender
    config: Config
    history: list[dict[str, float]] = field(default_factory=list)  # one row of metrics per epoch

    @property
    def final(self) -> dict[str, float]:
        return self.history[-1] if self.history else {}


def as_config(config: Config | Mapping[str, Any]) -> Config:
    return config if isinstance(config, Config) else build_config(config)


def check_data_matches(config: Config, data: PreparedData) -> None:
    """Prepared data must come from the same data settings as the config it is trained with."""
    differ = {k: (v, data.settings.get(k)) for k, v in config.data_settings().items() if data.settings.get(k) != v}
    if differ:
        lines = ", ".join(f"{k}: config {a!r} vs data {b!r}" for k, (a, b) in differ.items())
        raise ConfigError(f"the prepared data was built with other data settings ({lines})")


def fit(config: Config | Mapping[str, Any], data: PreparedData | None = None, report: Report | None = None,
        checkpoint: Mapping[str, Any] | None = None, evaluate_on: str = "val") -> FitResult:
    """Train one config. evaluate_on="val": train on the training period, evaluate on validation after every
    epoch. evaluate_on="test": train on training + validation, evaluate on test once, after the last epoch
    (test data never guides anything; earlier epochs report the training loss only). Calls
    report(metrics, state) after each epoch; resumes from such a state when given one as `checkpoint`.
    The state's tensors are the live model's: save or copy them inside `report`."""
    config = as_config(config)
    if evaluate_on not in EVAL_SPLITS:
        raise ConfigError(f"evaluate_on: expected one of {', '.join(EVAL_SPLITS)}, got {evaluate_on!r}")
    data = prepare_data(config) if data is None else data
    check_data_matches(config, data)
    last_train_period, target_period = EVAL_SPLITS[evaluate_on]
    device = resolve_device(config.device)

    samples = training_samples(data, config.sample_mode, config.max_seq_len, last_train_period,
                               config.window_overlap, device)
    if len(samples) == 0:
        raise ConfigError(f"{config.data}: no training samples (no customer has 2 events in the training period)")
    targets = evaluation_targets(data, target_period, config.max_seq_len, device)

    torch.manual_seed(config.seed)
    model = build_model(data.n_items, config.embed_dim, config.hidden_dim, config.num_layers, config.dropout)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    result = FitResult(model=model, config=config)
    first_epoch = 0
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        first_epoch = int(checkpoint["epoch"])
        result.history = list(checkpoint.get("history", []))

    for epoch in range(first_epoch, config.epochs):
        evaluated = evaluate_on == "val" or epoch + 1 == config.epochs
        metrics = run_epoch(config, model, optimizer, samples, epoch, targets if evaluated else None, evaluate_on)
        result.history.append(metrics)
        if report is not None:
            state = {"epoch": epoch + 1, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "config": config.to_dict(), "history": list(result.history)}
            report(metrics, state)
    return result


def run_epoch(config: Config, model: LSTMRecommender, optimizer: torch.optim.Optimizer, samples: TrainingSamples,
              epoch: int, targets: EvalTargets | None, split: str) -> dict[str, float]:
    """Train one epoch, then evaluate on `targets` unless None; log one line; return the epoch's metrics."""
    began = time.perf_counter()
    torch.manual_seed(config.seed * 100_003 + epoch)  # dropout; with the batch order, a resumed run repeats exactly
    order = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
    train_loss = train_epoch(model, optimizer, samples, batch_size=config.batch_size, generator=order,
                             bf16=config.bf16)
    trained = time.perf_counter()
    metrics = {"epoch": epoch + 1, "train_loss": train_loss, "train_seconds": trained - began}
    line = f"epoch {epoch + 1}/{config.epochs}  train_loss {train_loss:.4f}"
    if targets is not None:
        scores = evaluate(model_scorer(model, config.bf16), targets, ks=config.ks, exclude_seen=config.exclude_seen,
                          batch_size=config.eval_batch_size, with_loss=True)
        metrics.update(with_split(split, scores), eval_seconds=time.perf_counter() - trained)
        ndcg = metric_name("ndcg", config.ks[0])
        line += (f"  {metric_name('loss', split=split)} {scores['loss']:.4f}  "
                 f"{metric_name('ndcg', config.ks[0], split)} {scores[ndcg]:.4f}")
    log.info("%s  %.1fs", line, time.perf_counter() - began)
    return metrics
