"""`fit`: one configuration trained from a Config, with validation metrics after every epoch.

Reads as data -> tensors -> model -> loop. Build order: data first (it fixes the number of items), then
the model, then the optimiser. Runs without Ray; search/ wraps it, passing a `report` that forwards the
metrics and a checkpoint to Tune.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from core.baselines import item_counts, markov_table
from core.config import Config, check_negatives
from core.data import PreparedData, prepare_data
from core.epoch import train_epoch
from core.errors import ConfigError
from core.losses import TargetLoss, build_loss, full_softmax, resolve_loss
from core.metrics import metric_name, with_split
from core.model import LSTMRecommender
from core.optim import build_optimizer, lazy_item_updates
from core.split import EVAL_SPLITS
from core.tensors import (
    EvalTargets,
    TrainingSamples,
    evaluation_targets,
    resolve_device,
    sample_targets,
    training_samples,
)
from core.validation import evaluate_model, needs_validation_choices

log = logging.getLogger(__name__)

Report = Callable[[dict[str, float], dict[str, Any]], None]


@dataclass
class FitResult:
    model: LSTMRecommender  # with patience: the weights of the best epoch
    config: Config
    history: list[dict[str, float]] = field(default_factory=list)  # one row of metrics per epoch
    best_epoch: int | None = None  # with patience: the epoch with the best monitored value

    @property
    def final(self) -> dict[str, float]:
        return self.history[-1] if self.history else {}

    @property
    def best(self) -> dict[str, float]:
        """The metrics of the best epoch (with patience), else of the last."""
        return self.history[self.best_epoch - 1] if self.best_epoch else self.final


@dataclass
class Patience:
    """Stops training once `monitor` has not improved for `epochs` epochs; remembers the best epoch's weights."""
    epochs: int
    monitor: str
    mode: str
    best_epoch: int | None = None
    best_value: float | None = None
    best_weights: dict[str, torch.Tensor] | None = None

    def update(self, epoch: int, metrics: Mapping[str, float], model: torch.nn.Module) -> bool:
        """Record one epoch; True when training should stop."""
        value = float(metrics.get(self.monitor, float("nan")))
        if math.isfinite(value) and (self.best_value is None or (
                value > self.best_value if self.mode == "max" else value < self.best_value)):
            self.best_epoch, self.best_value = epoch, value
            self.best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return self.best_epoch is not None and epoch - self.best_epoch >= self.epochs


def check_data_matches(config: Config, data: PreparedData) -> None:
    """Prepared data must come from the same data settings as the config it is trained with."""
    differ = {k: (v, data.settings.get(k)) for k, v in config.data_settings().items() if data.settings.get(k) != v}
    if differ:
        lines = ", ".join(f"{k}: config {a!r} vs data {b!r}" for k, (a, b) in differ.items())
        raise ConfigError(f"the prepared data was built with other data settings ({lines})")


def fit(config: Config, data: PreparedData | None = None, report: Report | None = None,
        checkpoint: Mapping[str, Any] | None = None, evaluate_on: str = "val", monitor: str | None = None,
        mode: str = "max") -> FitResult:
    """Train one config. evaluate_on="val": train on the training period, evaluate on validation after every
    epoch; with config.patience, stop once `monitor` (default: validation NDCG at the first K) has not
    improved for that many epochs, and keep the best epoch's weights. evaluate_on="test": train on training +
    validation for config.epochs, evaluate on test once, after the last epoch (test data never guides
    anything; earlier epochs report the training loss only). Calls report(metrics, state) after each epoch;
    resumes from such a state when given one as `checkpoint`. The state's tensors are the live model's:
    save or copy them inside `report`."""
    if evaluate_on not in EVAL_SPLITS:
        raise ConfigError(f"evaluate_on: expected one of {', '.join(EVAL_SPLITS)}, got {evaluate_on!r}")
    data = prepare_data(config) if data is None else data
    check_data_matches(config, data)
    if evaluate_on == "test" and needs_validation_choices(config):
        raise ConfigError("markov_blend and seen_items: auto is chosen on validation; training for test needs the "
                          "values chosen there (core.train --test and search.retrain choose them first)")
    last_train_period = EVAL_SPLITS[evaluate_on][0]
    device = resolve_device(config.device)
    samples, targets = fit_inputs(config, data, evaluate_on, device)
    torch.manual_seed(config.seed)
    model = model_for_training(config, data, last_train_period, device)
    loss = training_loss(config, data, last_train_period, device)
    lazy_items = loss is not full_softmax and lazy_item_updates(config.item_updates, data.n_items, checkpoint)
    optimizer = build_optimizer(model, config.lr, config.weight_decay, sparse_items=lazy_items,
                                fused=loss is not full_softmax)
    averaged = moving_average(model, config.ema_decay)
    scored = averaged.module if averaged is not None else model  # what is evaluated, kept and saved
    after_step = None if averaged is None else functools.partial(averaged.update_parameters, model)
    result = FitResult(model=scored, config=config)
    patience = Patience(config.patience, monitor or metric_name("ndcg", config.ks[0], "val"), mode) \
        if config.patience and evaluate_on == "val" else None
    first_epoch = 0 if checkpoint is None else restore(checkpoint, model, optimizer, result, patience, averaged)
    for epoch in range(first_epoch, config.epochs):
        evaluated = evaluate_on == "val" or epoch + 1 == config.epochs
        metrics = run_epoch(config, model, optimizer, samples, epoch, targets if evaluated else None, evaluate_on,
                            scored, after_step, loss)
        result.history.append(metrics)
        stop = patience is not None and patience.update(epoch + 1, metrics, scored)
        if report is not None:
            report(metrics, training_state(epoch + 1, model, optimizer, config, result, patience, averaged))
        if stop:
            log.info("stopping: %s has not improved for %d epochs since epoch %d", patience.monitor,
                     patience.epochs, patience.best_epoch)
            break
    if patience is not None and patience.best_weights is not None:
        scored.load_state_dict(patience.best_weights)
        result.best_epoch = patience.best_epoch
    return result


def fit_inputs(config: Config, data: PreparedData, evaluate_on: str,
               device: torch.device) -> tuple[TrainingSamples, EvalTargets]:
    """The training samples before evaluate_on's period and its evaluation targets (validation: sampled by
    val_sample; test: always every target)."""
    last_train_period, target_period = EVAL_SPLITS[evaluate_on]
    samples = training_samples(data, config.sample_mode, config.max_seq_len, last_train_period,
                               config.window_overlap, device)
    if len(samples) == 0:
        raise ConfigError(f"{config.data}: no training samples (no customer has 2 events in the training period)")
    targets = evaluation_targets(data, target_period, config.max_seq_len, device)
    if evaluate_on == "val":
        targets = sample_targets(targets, config.val_sample)
    return samples, targets


def model_for_training(config: Config, data: PreparedData, last_train_period: int,
                       device: torch.device) -> LSTMRecommender:
    """The config's model on `device`, with the training period's Markov tables where it uses them and its
    blend weight where the config fixes it."""
    model = LSTMRecommender.from_config(config, data.n_items).to(device)
    if model.markov_residual or model.markov_blend:
        model.set_markov_table(*markov_table(data, last_train_period), item_counts(data, last_train_period))
    if model.markov_blend and config.markov_blend != "auto":
        model.blend_weight.fill_(float(config.markov_blend))
    return model


def training_loss(config: Config, data: PreparedData, last_train_period: int, device: torch.device) -> TargetLoss:
    """The config's loss (auto resolved by the catalogue's size), its negatives drawn from training counts."""
    loss = resolve_loss(config.loss, data.n_items)
    check_negatives(dataclasses.replace(config, loss=loss), data.n_items)
    counts = item_counts(data, last_train_period) if loss != "full" else None
    log.info("loss: %s%s", loss, "" if loss == "full" else f" ({config.negatives} negatives per batch, "
             f"drawn by popularity^{config.sample_alpha:g})")
    return build_loss(loss, data.n_items, counts, config.negatives, config.sample_alpha, config.gbce_t, device)


def moving_average(model: LSTMRecommender, decay: float) -> AveragedModel | None:
    """decay > 0: an exponential moving average of the model's weights (torch's AveragedModel), updated after
    every optimiser step; it shares the model's Markov tables and has its own blend weight."""
    if not decay:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=False)


def training_state(epoch: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer, config: Config,
                   result: FitResult, patience: Patience | None,
                   averaged: AveragedModel | None = None) -> dict[str, Any]:
    """Everything needed to continue training after `epoch` (plain tensors and values only)."""
    state = {"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "config": config.to_dict(), "history": list(result.history)}
    if averaged is not None:
        state["averaged"] = averaged.state_dict()
    if patience is not None and patience.best_epoch is not None:
        state.update(best_epoch=patience.best_epoch, best_value=patience.best_value, best_model=patience.best_weights)
    return state


def restore(checkpoint: Mapping[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer,
            result: FitResult, patience: Patience | None, averaged: AveragedModel | None = None) -> int:
    """Load a training state into the model, optimiser, history, patience and moving average; returns the
    epochs done."""
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    if averaged is not None:
        averaged.load_state_dict(checkpoint["averaged"])
    result.history = list(checkpoint.get("history", []))
    if patience is not None and "best_epoch" in checkpoint:
        patience.best_epoch, patience.best_value = int(checkpoint["best_epoch"]), float(checkpoint["best_value"])
        patience.best_weights = dict(checkpoint["best_model"])
    return int(checkpoint["epoch"])


def run_epoch(config: Config, model: LSTMRecommender, optimizer: torch.optim.Optimizer, samples: TrainingSamples,
              epoch: int, targets: EvalTargets | None, split: str, scored: LSTMRecommender | None = None,
              after_step: Callable[[], None] | None = None, loss: TargetLoss = full_softmax) -> dict[str, float]:
    """Train `model` one epoch (calling after_step after every optimiser step), then evaluate `scored` (default:
    the model; the moving average of its weights when there is one) on `targets` unless None; log one line;
    return the epoch's metrics."""
    began = time.perf_counter()
    torch.manual_seed(config.seed * 100_003 + epoch)  # dropout; with the batch order, a resumed run repeats exactly
    order = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
    train_loss = train_epoch(model, optimizer, samples, batch_size=config.batch_size, generator=order,
                             bf16=config.bf16, by_length=config.batch_by_length,
                             after_step=after_step, loss=loss)
    trained = time.perf_counter()
    metrics = {"epoch": epoch + 1, "train_loss": train_loss, "train_seconds": trained - began}
    line = f"epoch {epoch + 1}/{config.epochs}  train_loss {train_loss:.4f}"
    if targets is not None:
        ndcg = metric_name("ndcg", config.ks[0])
        scores, plain, (weight, seen_last) = evaluate_model(config, model if scored is None else scored, targets)
        metrics.update(with_split(split, scores), eval_seconds=time.perf_counter() - trained)
        line += (f"  {metric_name('loss', split=split)} {scores['loss']:.4f}  "
                 f"{metric_name('ndcg', config.ks[0], split)} {scores[ndcg]:.4f}")
        if model.markov_blend or not config.exclude_seen:
            metrics.update({"markov_blend": weight, f"{split}_lstm_{ndcg}": plain[ndcg]})
            line += f" (LSTM alone {plain[ndcg]:.4f}; markov_blend {weight:g}"
            if not config.exclude_seen:  # with exclude_seen, every ranking leaves them out
                metrics["seen_last"] = float(seen_last)
                line += f", seen items {'last' if seen_last else 'kept'}"
            line += ")"
    log.info("%s  %.1fs", line, time.perf_counter() - began)
    return metrics
