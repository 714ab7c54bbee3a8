"""Ray Tune's MLflow logger with the metric names MLflow accepts and only the per-epoch numbers worth a curve.

A module of its own because Tune pickles its callbacks with the experiment (for --resume): the class must
be importable by name. Importing it loads Ray, not mlflow (Ray imports mlflow when the callback is set up).
"""
from __future__ import annotations

from typing import Any

from ray.air.integrations.mlflow import MLflowLoggerCallback

from search.tracking import trial_metrics


class TrialLogger(MLflowLoggerCallback):
    """One MLflow run per trial: its config as parameters, its metrics at every epoch (step = epoch)."""

    def log_trial_result(self, iteration: int, trial: Any, result: dict[str, Any]) -> None:
        step = int(result.get("epoch") or result.get("training_iteration") or iteration)
        self.mlflow_util.log_metrics(run_id=self._trial_runs[trial], metrics_to_log=trial_metrics(result), step=step)
