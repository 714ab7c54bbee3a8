"""Every Ray and Optuna call of a search but the trial's own reporting (search.trainable): starting or joining
Ray, resources, the Tuner with Optuna's TPE and ASHA, restoring an interrupted search, and reading its trials.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import ray
from optuna.samplers import TPESampler
from ray import tune
from ray.tune.schedulers import FIFOScheduler
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from core.config import Config
from core.data import PreparedData
from core.errors import ConfigError
from search.asha import ResumableASHA
from search.connect import DEFAULT_CONNECT_TIMEOUT_S, join_cluster, loopback_only
from search.endings import TrialErrorLine
from search.integrity import SealPickles
from search.plan import SearchPlan
from search.space import SearchSettings, SearchSpec
from search.study import JOURNAL_FILE, FolderStudySearch, journal_at, set_budget
from search.tracking import allow_file_store, require_mlflow
from search.trainable import train_trial
from search.trials import TrialRecord
from search.warmstart import WarmStart

log = logging.getLogger(__name__)


def start_ray(address: str | None, dashboard: bool, num_cpus: int | None, num_gpus: float | None,
              connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S) -> Any:
    """Join `address` (within connect_timeout), or start a fresh local Ray (never a stale one) that listens on
    127.0.0.1 only, its dashboard included."""
    if address:
        return join_cluster(address, connect_timeout)
    with loopback_only():
        return ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=dashboard,
                        dashboard_host="127.0.0.1", logging_level=logging.WARNING, log_to_driver=False,
                        _node_ip_address="127.0.0.1")


def stop_ray() -> None:
    ray.shutdown()


def resolve_resources(plan: SearchPlan) -> SearchPlan:
    """GPU share and parallel slots from what the cluster has."""
    resources = ray.cluster_resources()
    cpus, gpus = resources.get("CPU", 1.0), resources.get("GPU", 0.0)
    gpus_per_trial = plan.gpus_per_trial if plan.gpus_per_trial is not None else (0.25 if gpus > 0 else 0.0)
    if gpus_per_trial > gpus:
        raise ConfigError(f"--gpus-per-trial {gpus_per_trial} but the Ray cluster has {gpus:g} GPUs")
    if plan.cpus_per_trial > cpus:
        raise ConfigError(f"--cpus-per-trial {plan.cpus_per_trial} but the Ray cluster has {cpus:g} CPUs")
    concurrency = plan.concurrency
    if concurrency is None:
        slots = math.floor(cpus / plan.cpus_per_trial + 1e-9)
        if gpus_per_trial > 0:
            slots = min(slots, math.floor(gpus / gpus_per_trial + 1e-9))
        concurrency = max(1, slots)
    return dataclasses.replace(plan, gpus_per_trial=gpus_per_trial, concurrency=concurrency)


def run_trials(plan: SearchPlan, config: Config, spec: SearchSpec, data: PreparedData,
               warm: WarmStart | None = None) -> list[TrialRecord]:
    """Run (or continue) the search's trials; returns every trial's record, finished or not."""
    threads = max(1, int(plan.cpus_per_trial))
    trainable = tune.with_parameters(train_trial, data=data, threads=threads, metric=spec.settings.metric,
                                     mode=spec.settings.mode)
    trainable = tune.with_resources(trainable,
                                    {"cpu": plan.cpus_per_trial, "gpu": plan.gpus_per_trial})
    with journal_at(Path(plan.folder) / JOURNAL_FILE):  # Tune restores the searcher inside fit
        results = build_tuner(plan, config, spec, trainable, warm).fit()
    return trial_records(results)


def build_tuner(plan: SearchPlan, config: Config, spec: SearchSpec, trainable: Any,
                warm: WarmStart | None = None) -> tune.Tuner:
    """A new Tuner, or the interrupted one restored with its searcher state and finished trials. A new one
    evaluates the base config first, or, warm-started, first learns the earlier search's trials."""
    if tune.Tuner.can_restore(plan.tune_path):
        log.info("resuming %s", plan.tune_path)
        set_budget(plan.tune_path, plan.samples)  # --resume --samples N: go on to N trials in total
        return tune.Tuner.restore(plan.tune_path, trainable=trainable, resume_unfinished=True, resume_errored=False)
    settings = spec.settings
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    start = {dimension.name: getattr(config, dimension.name) for dimension in spec.dimensions}
    if not all(dimension.contains(start[dimension.name]) for dimension in spec.dimensions):
        log.warning("the base config lies outside the search space; it is not evaluated first")
        start = None
    searcher = searcher_for(settings.seed, [start] if start else None, warm,
                            Path(plan.folder) / JOURNAL_FILE, plan.name, settings.startup_trials)
    param_space = {**config.to_dict(), "epochs": settings.max_epochs,
                   **spec.domains()}
    scheduler = ResumableASHA(max_t=settings.max_epochs, grace_period=settings.grace_period,
                              reduction_factor=settings.reduction_factor,
                              keep=start if settings.keep_base else None) \
        if settings.scheduler == "asha" else FIFOScheduler()
    reporter = tune.CLIReporter(metric_columns={"epoch": "epoch", settings.metric: settings.metric,
                                                "val_loss": "val_loss"},
                                parameter_columns=list(spec.space), max_report_frequency=20, sort_by_metric=True,
                                max_progress_rows=15)
    return tune.Tuner(
        trainable, param_space=param_space,
        tune_config=tune.TuneConfig(
            metric=settings.metric, mode=settings.mode, num_samples=plan.samples,
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=plan.concurrency), scheduler=scheduler,
            trial_dirname_creator=trial_folder_name, reuse_actors=True),
        run_config=tune.RunConfig(
            name=plan.name, storage_path=plan.storage, verbose=1, progress_reporter=reporter,
            callbacks=tune_callbacks(plan.mlflow, plan.name),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            failure_config=tune.FailureConfig(max_failures=1)),  # a dead worker: once more from its checkpoint
    )


def tune_callbacks(uri: str | None, experiment: str) -> list[Any]:
    """Tune's callbacks for a search: errors as one line, the pickles sealed, and one MLflow logger when the
    search is tracked (uri given)."""
    callbacks = [TrialErrorLine(), SealPickles()]
    if uri:
        require_mlflow()
        allow_file_store(uri)
        # Ray's MLflow integration is loaded for a tracked search only
        from search.mlflow_callback import TrialLogger

        callbacks.append(TrialLogger(tracking_uri=uri, experiment_name=experiment,
                                     tags={"search": experiment, "role": "trial"}))
    return callbacks


def searcher_for(seed: int, first: list[dict[str, Any]] | None, warm: WarmStart | None, journal: Path,
                 study_name: str, startup_trials: int = SearchSettings.startup_trials) -> OptunaSearch:
    """Optuna's TPE, seeded, drawing `startup_trials` at random first, its study in the journal file; told a
    warm start's trials (with their values), else evaluating `first` first."""
    sampler = TPESampler(seed=seed, n_startup_trials=startup_trials)
    study = dict(journal=journal, study_name=study_name, sampler=sampler)
    if warm is not None:
        log.info("warm start: Optuna learns %d trials of %s first", len(warm.points), warm.source)
        return FolderStudySearch(**study, points_to_evaluate=warm.points, evaluated_rewards=warm.rewards)
    return FolderStudySearch(**study, points_to_evaluate=first)


def trial_folder_name(trial: tune.experiment.Trial) -> str:
    return trial.trial_id


def records_on_disk(plan: SearchPlan) -> list[TrialRecord]:
    """Every trial's record from the experiment folder alone (after a hard stop); none if nothing was saved."""
    try:
        return trial_records(tune.ResultGrid(tune.ExperimentAnalysis(plan.tune_path)))
    except Exception as err:  # no experiment state written yet
        log.warning("no trial results readable in %s (%s)", plan.tune_path, type(err).__name__)
        return []


def tune_trials(results: tune.ResultGrid) -> list[tune.experiment.Trial]:
    """Tune's own record of every trial (status, failures), read where the experiment lives (a folder or a
    cloud URI: the result grid's experiment_path has lost the URI's scheme, its filesystem has not)."""
    return tune.ExperimentAnalysis(results.experiment_path, storage_filesystem=results.filesystem).trials


def trial_records(results: tune.ResultGrid) -> list[TrialRecord]:
    """Plain records of every trial from Tune's ResultGrid, in the order Tune created them (its own count,
    the number its experiment tag starts with), which is the order they started.

    A trial is done when Tune's own status says it terminated (completed or stopped by ASHA); the `done`
    flag of its last result is not reliable across an interruption.
    """
    trials = tune_trials(results)
    statuses = {trial.trial_id: trial.status for trial in trials}
    created = {trial.trial_id: creation_number(trial) for trial in trials}
    failures = {trial.trial_id: trial.run_metadata.num_failures for trial in trials}
    records = []
    for result in results:
        history = result.metrics_dataframe
        if history is None or "epoch" not in history:
            history = pd.DataFrame({"epoch": []})
        history = history.drop_duplicates("epoch", keep="last")  # epochs rerun after a restart count once
        error = None
        if result.error is not None:
            lines = [line for line in str(result.error).strip().splitlines() if line.strip()]
            error = lines[-1] if lines else type(result.error).__name__
        started = float("inf")
        if len(history) and "timestamp" in history and "time_this_iter_s" in history:
            started = float(history["timestamp"].iloc[0] - history["time_this_iter_s"].iloc[0])
        trial_id = result.metrics.get("trial_id") or Path(result.path).name
        records.append(TrialRecord(
            trial_id=trial_id, started=started, config=result.config or {}, history=history, error=error,
            done=statuses.get(trial_id) == "TERMINATED", retried=error is None and failures.get(trial_id, 0) > 0,
            wall_seconds=float(result.metrics.get("time_total_s", 0.0))))
    # not by start time alone: results carry whole-second timestamps, so fast trials tie
    return sorted(records, key=lambda r: (created.get(r.trial_id, float("inf")), r.started))


def creation_number(trial: tune.experiment.Trial) -> float:
    """Tune's count of the trial among those its searcher created (the experiment tag's leading number)."""
    head = str(getattr(trial, "experiment_tag", "")).split("_", 1)[0]
    return float(head) if head.isdigit() else float("inf")
