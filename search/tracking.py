"""MLflow tracking of a search and its retrain (`python -m search.run --mlflow [URI]`); mlflow is an optional extra.

Every trial is one MLflow run (its config as parameters, its per-epoch metrics by epoch) through Ray Tune's
MLflowLoggerCallback, in an experiment named after the search; the retrain adds a run `retrain` with the
test metrics and model.pt, metrics.json and report.md as artifacts. MLflow names may not hold `@`, so
`val_ndcg@5` is logged as `val_ndcg_at_5`. Nothing here is imported unless tracking is asked for.

The default store is a folder (file: URI), which MLflow 3 keeps in "maintenance mode" and refuses unless
MLFLOW_ALLOW_FILE_STORE=true: we set that for file: URIs (unless already set). A database or server URI
(sqlite:///results/mlflow.db, http://host:5000) is used as given.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from types import ModuleType
from typing import Any

from core.errors import ConfigError

INSTALL_HINT = 'pip install -e ".[mlflow]"'
DEFAULT_FOLDER = "mlruns"
TRIAL_METRIC_PREFIXES = ("val_", "train_", "eval_")
TRIAL_METRIC_KEYS = ("epoch", "time_total_s")


def require_mlflow() -> ModuleType:
    """The mlflow module, or one clear error naming the extra to install."""
    try:
        import mlflow
    except ImportError:
        raise ConfigError(f"--mlflow needs the mlflow package, an optional extra: {INSTALL_HINT}") from None
    return mlflow


def tracking_uri(given: str | None, storage_folder: Path) -> str:
    """The URI asked for, or a local mlruns/ folder beside the searches (storage_folder/mlruns) as a file: URI."""
    if given:
        return given if "://" in given or given.startswith("file:") else Path(given).resolve().as_uri()
    return (Path(storage_folder).resolve() / DEFAULT_FOLDER).as_uri()


def allow_file_store(uri: str) -> None:
    """MLflow 3 refuses a folder store unless told it may use one; a file: URI is what we were asked for."""
    if uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")


def mlflow_name(name: str) -> str:
    """A metric or parameter name MLflow accepts: `val_ndcg@5` -> `val_ndcg_at_5`."""
    return name.replace("@", "_at_")


def trial_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The per-epoch numbers worth a curve, named for MLflow (Tune's bookkeeping and the config left out)."""
    return {mlflow_name(key): float(value) for key, value in result.items()
            if (key.startswith(TRIAL_METRIC_PREFIXES) or key in TRIAL_METRIC_KEYS)
            and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)}


def log_retrain(uri: str, experiment: str, config: dict[str, Any], metrics: dict[str, Any], final: Path) -> str:
    """One run `retrain` in the search's experiment: the config, test metrics (mean, std, baselines), the files of
    final/ as artifacts. Returns the run id."""
    require_mlflow()
    allow_file_store(uri)
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    run = client.create_run(experiment_id, run_name="retrain", tags={"search": experiment, "role": "retrain"})
    values = {f"test_{n}": v for n, v in metrics["model"]["mean"].items()}
    values.update({f"test_{n}_std": v for n, v in metrics["model"]["std"].items()})
    for baseline in ("markov", "most_popular"):
        values.update({f"{baseline}_test_{n}": v for n, v in metrics.get(baseline, {}).items()})
    values["retrain_seconds"] = metrics.get("retrain_seconds", float("nan"))
    stamp = int(run.info.start_time or 0)
    client.log_batch(run.info.run_id,
                     metrics=[Metric(mlflow_name(k), float(v), stamp, 0) for k, v in values.items()
                              if isinstance(v, (int, float)) and math.isfinite(v)],
                     params=[Param(mlflow_name(k), str(v)) for k, v in config.items()])
    for name in ("model.pt", "metrics.json", "report.md"):
        if (final / name).is_file():
            client.log_artifact(run.info.run_id, str(final / name))
    client.set_terminated(run.info.run_id)
    return run.info.run_id
