"""The final-evaluation protocol: choose on validation, then train on training + validation and test once.

Used by `python -m core.train --test` and by search.retrain, so that both fix the same settings the same way.
Nothing is chosen on test.
"""
from __future__ import annotations

import dataclasses
import logging

from core.config import Config
from core.data import PreparedData
from core.fit import FitResult, fit
from core.validation import needs_validation_choices, validation_choices

log = logging.getLogger(__name__)


def choose_on_validation(config: Config, data: PreparedData, keep_epochs: bool = False) -> Config:
    """The config with what training for test takes from a validation run of it (validation_choices): with
    patience, the epochs of its best epoch, unless keep_epochs (epochs already chosen, as by a search's peak:
    then the run trains all config.epochs without patience); markov_blend and seen_items where auto."""
    run = dataclasses.replace(config, patience=0) if keep_epochs else config
    if not run.patience and not needs_validation_choices(run):
        return config
    result = fit(dataclasses.replace(run, val_sample=0), data)  # what is kept for test: chosen on every target
    return dataclasses.replace(config, **validation_choices(run, result.best, result.best_epoch))


def train_for_test(config: Config, data: PreparedData, seeds: int = 1,
                   keep_epochs: bool = False) -> tuple[Config, list[FitResult]]:
    """Choose on validation (choose_on_validation), then train on training + validation once per seed
    (config.seed, config.seed + 1, ...) and evaluate each on test: (the config trained, one result per seed)."""
    config = choose_on_validation(config, data, keep_epochs)
    results = []
    for index in range(seeds):
        seeded = dataclasses.replace(config, seed=config.seed + index)
        log.info("seed %d (%d of %d): training %d epochs on training + validation", seeded.seed, index + 1,
                 seeds, seeded.epochs)
        results.append(fit(seeded, data, evaluate_on="test"))
    return config, results
