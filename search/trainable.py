"""The Tune trainable: the one module that calls Tune's report and checkpoint API, so that the next Ray API
change touches only this file."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch
from ray import tune

from core.config import build_config
from core.data import PreparedData
from core.fit import fit

STATE_FILE = "state.pt"
PYTHON_ERROR_FILE = "python-error.txt"  # in the trial's working folder: its first attempt raised


class RepeatedTrialError(RuntimeError):
    """A retried trial whose first attempt raised a Python error (not a dead worker): it ends at once."""


def train_trial(config: dict[str, Any], data: PreparedData, threads: int, metric: str, mode: str) -> None:
    """A Tune trial: train `config` on the shared data, report and checkpoint after every epoch; with
    `patience`, the trial ends once the search's objective has stopped improving."""
    torch.set_num_threads(threads)
    # Tune retries every failure (FailureConfig); only a dead worker deserves it: an error would recur
    marker = Path(tune.get_context().get_trial_dir()) / PYTHON_ERROR_FILE
    if marker.is_file():
        raise RepeatedTrialError(f"not retried: {marker.read_text()}")
    try:
        fit(build_config(config), data, report=report_to_tune, checkpoint=load_state(tune.get_checkpoint()), monitor=metric,
            mode=mode)
    except Exception as err:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"{type(err).__name__}: {err}")
        raise


def report_to_tune(metrics: dict[str, float], state: dict[str, Any]) -> None:
    """Every epoch: the validation metrics, with the training state as a checkpoint."""
    with tempfile.TemporaryDirectory() as folder:
        torch.save(state, Path(folder) / STATE_FILE)
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def load_state(checkpoint: tune.Checkpoint | None) -> dict[str, Any] | None:
    """The state saved by report_to_tune (plain tensors and values only: nothing is unpickled)."""
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        return torch.load(Path(folder) / STATE_FILE, map_location="cpu", weights_only=True)
