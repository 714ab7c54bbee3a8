"""`fit`: everything one configuration needs, from a config dict to per-epoch validation metrics.

Build order: data first (it fixes the number of items), then the model, then the optimiser. Runs without
Ray; search/ wraps it, passing a `report` that forwards metrics and a checkpoint to Tune.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from core.baselines import markov_scorer, popularity_scorer
from core.config import Config, build_config
from core.data import (
    TEST,
    TRAIN,
    VALID,
    PreparedData,
    eval_targets,
    history_starts,
    prefix_samples,
    prepare_data,
    training_windows,
)
from core.errors import ConfigError
from core.model import LSTMRecommender, build_model
from core.training import evaluate, model_scorer, train_epoch

log = logging.getLogger(__name__)

Report = Callable[[dict[str, float], dict[str, Any]], None]
EVAL_SPLITS = {"val": (TRAIN, VALID), "test": (VALID, TEST)}  # evaluated on: (last training period, target period)


@dataclass
class FitResult:
    model: LSTMRecommender
    config: Config
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def final(self) -> dict[str, float]:
        return self.history[-1] if self.history else {}


def resolve_device(name: str) -> torch.device:
    """auto: the GPU if one is visible (under Ray: the one assigned to the trial), else the CPU."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda was asked for, but no GPU is visible to torch")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


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

    items, eval_starts, eval_lengths, history_first = eval_tensors(data, target_period, config.max_seq_len, device)
    loss_from = None  # prefix samples: the loss is at the last position
    if config.sample_mode == "all_positions":
        starts, lengths, loss_from = (torch.tensor(a, device=device) for a in training_windows(
            data, config.max_seq_len, last_train_period, config.window_overlap))
    else:
        starts, lengths = (torch.tensor(a, device=device) for a in prefix_samples(
            data, config.max_seq_len, last_train_period))
    if len(starts) == 0:
        raise ConfigError(f"{config.data}: no training samples (no customer has 2 events in the training period)")

    for epoch in range(first_epoch, config.epochs):
        began = time.perf_counter()
        torch.manual_seed(config.seed * 100_003 + epoch)  # dropout; with the batch order, a resumed run repeats exactly
        order = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        train_loss = train_epoch(model, optimizer, items, starts, lengths, mode=config.sample_mode,
                                 batch_size=config.batch_size, generator=order, bf16=config.bf16,
                                 loss_from=loss_from)
        trained = time.perf_counter()
        metrics = {"epoch": epoch + 1, "train_loss": train_loss, "train_seconds": trained - began}
        line = f"epoch {epoch + 1}/{config.epochs}  train_loss {train_loss:.4f}"
        if evaluate_on == "val" or epoch + 1 == config.epochs:
            scores = evaluate(model_scorer(model, config.bf16), items, eval_starts, eval_lengths,
                              history_first, ks=config.ks, exclude_seen=config.exclude_seen,
                              batch_size=config.eval_batch_size, with_loss=True)
            metrics.update({f"{evaluate_on}_{name}": value for name, value in scores.items()},
                           eval_seconds=time.perf_counter() - trained)
            line += (f"  {evaluate_on}_loss {scores['loss']:.4f}  {evaluate_on}_ndcg@{config.ks[0]} "
                     f"{scores[f'ndcg@{config.ks[0]}']:.4f}")
        result.history.append(metrics)
        log.info("%s  %.1fs", line, time.perf_counter() - began)
        if report is not None:
            state = {"epoch": epoch + 1, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "config": config.to_dict(), "history": list(result.history)}
            report(metrics, state)
    return result


def eval_tensors(data: PreparedData, period: int, max_seq_len: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """On the device: all items, the targets' (start, length) pairs, and where each target's history begins."""
    # torch.tensor copies: arrays shared through Ray's object store are read-only
    items = torch.tensor(data.items, device=device)
    starts, lengths = (torch.tensor(a, device=device) for a in eval_targets(data, period, max_seq_len))
    history_first = torch.tensor(history_starts(data), device=device)[starts + lengths]
    return items, starts, lengths, history_first


def evaluate_baselines(config: Config | Mapping[str, Any], data: PreparedData,
                       evaluate_on: str = "val") -> dict[str, dict[str, float]]:
    """Most-popular and Markov metrics on the same targets, with the same metric code, as `fit`."""
    config = as_config(config)
    last_train_period, target_period = EVAL_SPLITS[evaluate_on]
    items, starts, lengths, history_first = eval_tensors(data, target_period, config.max_seq_len,
                                                         resolve_device(config.device))
    device = items.device
    out = {}
    for name, make in (("most_popular", popularity_scorer), ("markov", markov_scorer)):
        out[name] = evaluate(make(data, last_train_period, device), items, starts, lengths, history_first,
                             ks=config.ks, exclude_seen=config.exclude_seen, batch_size=config.eval_batch_size)
    return out
