"""Search hyperparameters: `python -m search.run [--samples 50] [--data SOURCE] ...`.

Ray Tune's Tuner with Optuna's TPE sampler (seeded, the base config evaluated first) behind a concurrency
limit, and ASHA stopping weak trials early on the validation metric. The data is prepared once and shared
with every trial through Ray's object store. Outputs land in <storage>/<name>/; an interrupted search is
continued with --resume --name <name>.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import sys
import time
import traceback
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from core.config import Config, build_config, parse_overrides, resolve_config
from core.data import prepare_data
from core.errors import ConfigError, RecsysError
from core.trainable import evaluate_baselines
from search.outputs import write_outputs
from search.space import SEARCH_DEFAULTS, SearchSpec, load_search_spec
from search.tracking import require_mlflow, tracking_uri, tune_callbacks

log = logging.getLogger("search")
PLAN_FILE = "search.yaml"
FIXED_ON_RESUME = ("samples", "data", "config", "overrides", "space", "max_epochs", "seed", "scheduler",
                   "cpus_per_trial", "gpus_per_trial", "concurrency", "mlflow")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m search.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, help="number of trials (default 50)")
    parser.add_argument("--data", help="data source: synthetic (default), an event log CSV/Parquet, "
                                       "a MovieLens folder or a sequence .txt file")
    parser.add_argument("--config", help="YAML file of settings over configs/default.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one base setting (repeatable), e.g. --set exclude_seen=true")
    parser.add_argument("--space", help="search space YAML (default configs/space.yaml)")
    parser.add_argument("--max-epochs", type=int, help="epochs per trial at most (default: the space file's)")
    parser.add_argument("--cpus-per-trial", type=float,
                        help="CPUs each trial asks Ray for; torch uses that many threads (default 1)")
    parser.add_argument("--gpus-per-trial", type=float,
                        help="GPU share of each trial; 0.25 lets 4 trials share a GPU "
                             "(default 0.25 when the Ray cluster has a GPU, else 0)")
    parser.add_argument("--concurrency", type=int,
                        help="trials at once (default: as many as the CPUs and GPUs allow)")
    parser.add_argument("--name", help="experiment name (default search-<date>-<time>)")
    parser.add_argument("--storage", default="results",
                        help="where experiments live: a folder (default results/) or a cloud URI such as s3://...")
    parser.add_argument("--address", help="join a running Ray cluster (e.g. auto, or host:6379); "
                                          "default: start a local Ray")
    parser.add_argument("--resume", action="store_true", help="continue the interrupted search --name")
    parser.add_argument("--seed", type=int, help="Optuna sampler seed (default: the space file's)")
    parser.add_argument("--scheduler", choices=("asha", "fifo"),
                        help="asha stops weak trials early; fifo runs every trial to --max-epochs "
                             "(default: the space file's)")
    parser.add_argument("--no-dashboard", action="store_true", help="start the local Ray without its dashboard")
    parser.add_argument("--mlflow", nargs="?", const="", metavar="URI",
                        help="log every trial (and the retrain) to MLflow, one experiment per search (default URI: "
                             "mlruns/ beside the searches, e.g. results/mlruns); needs pip install -e \".[mlflow]\"")
    parser.add_argument("--num-cpus", type=int, help="local Ray only: CPUs it may use (default: all)")
    parser.add_argument("--num-gpus", type=float,
                        help="local Ray only: GPUs it may schedule (default: detected); a logical count "
                             "on a CPU machine tests GPU packing")
    args = parser.parse_args(argv)
    if args.samples is not None and args.samples < 1:
        parser.error("--samples must be at least 1")
    if args.cpus_per_trial is not None and args.cpus_per_trial <= 0:
        parser.error("--cpus-per-trial must be positive")
    if args.gpus_per_trial is not None and args.gpus_per_trial < 0:
        parser.error("--gpus-per-trial must be 0 or more")
    if args.resume and not args.name:
        parser.error("--resume needs --name of the search to continue")
    if args.address and (args.num_cpus is not None or args.num_gpus is not None):
        parser.error("--num-cpus/--num-gpus apply to a local Ray only, not with --address")
    return args


def experiment_folder(storage: str, name: str) -> tuple[str, Path]:
    """Ray's storage path and the local folder for our reports (the same unless storage is a URI)."""
    if "://" in storage:
        return storage, Path("results").resolve() / name
    path = Path(storage).resolve()
    return str(path), path / name


def new_plan(args: argparse.Namespace) -> dict[str, Any]:
    """Settings of a new search, all checked before Ray starts."""
    overrides = parse_overrides(args.overrides)
    if args.data:
        overrides["data"] = args.data
    config = resolve_config(args.config, overrides)
    if config.data_format != "synthetic":  # trials and retraining may run elsewhere: keep an absolute path
        config = dataclasses.replace(config, data=str(Path(config.data).resolve()))
    spec = load_search_spec(args.space, config, max_epochs=args.max_epochs, seed=args.seed,
                            scheduler=args.scheduler)
    name = args.name or datetime.now().strftime("search-%Y%m%d-%H%M%S")
    storage, folder = experiment_folder(args.storage, name)
    if folder.exists() and any(folder.iterdir()):
        raise ConfigError(f"{folder} already holds a search; continue it with --resume --name {name}, "
                          "or choose another --name")
    if args.mlflow is not None:
        require_mlflow()  # before Ray starts: a missing extra is one clear line
    return {"name": name, "storage": storage, "folder": str(folder), "samples": args.samples or 50,
            "cpus_per_trial": args.cpus_per_trial or 1.0, "gpus_per_trial": args.gpus_per_trial,
            "concurrency": args.concurrency, "config": config.to_dict(), "search": spec.to_dict(),
            "mlflow": None if args.mlflow is None else tracking_uri(args.mlflow, folder.parent),
            "status": "running", "created": datetime.now().isoformat(timespec="seconds")}


def resumed_plan(args: argparse.Namespace) -> dict[str, Any]:
    """The saved settings of an earlier search, resources included (its searcher and trials keep them)."""
    _, folder = experiment_folder(args.storage, args.name)
    if not (folder / PLAN_FILE).is_file():
        raise ConfigError(f"no search to resume at {folder} ({PLAN_FILE} is missing); "
                          "start one without --resume")
    fixed = [f"--{k.replace('_', '-')}" for k in FIXED_ON_RESUME if getattr(args, k) not in (None, [])]
    if fixed:
        raise ConfigError(f"a resumed search keeps its settings; drop {', '.join(fixed)} "
                          f"(they are in {folder / PLAN_FILE})")
    plan = yaml.safe_load((folder / PLAN_FILE).read_text())
    if plan.get("mlflow"):  # its Tune callback is restored with the experiment
        require_mlflow()
    plan["status"] = "running"
    return plan


def save_plan(plan: dict[str, Any]) -> None:
    folder = Path(plan["folder"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PLAN_FILE).write_text(yaml.safe_dump(plan, sort_keys=False))


def start_ray(args: argparse.Namespace) -> Any:
    """Join --address, or start a fresh local Ray (never a stale one), with the dashboard on 127.0.0.1."""
    import ray
    options = dict(include_dashboard=not args.no_dashboard, dashboard_host="127.0.0.1",
                   logging_level=logging.WARNING, log_to_driver=False)
    if args.address:
        return ray.init(address=args.address, logging_level=logging.WARNING, log_to_driver=False)
    return ray.init(address="local", num_cpus=args.num_cpus, num_gpus=args.num_gpus, **options)


def resolve_resources(plan: dict[str, Any]) -> None:
    """GPU share and parallel slots from what the cluster has."""
    import ray
    resources = ray.cluster_resources()
    cpus, gpus = resources.get("CPU", 1.0), resources.get("GPU", 0.0)
    if plan["gpus_per_trial"] is None:
        plan["gpus_per_trial"] = 0.25 if gpus > 0 else 0.0
    if plan["gpus_per_trial"] > gpus:
        raise ConfigError(f"--gpus-per-trial {plan['gpus_per_trial']} but the Ray cluster has {gpus:g} GPUs")
    if plan["cpus_per_trial"] > cpus:
        raise ConfigError(f"--cpus-per-trial {plan['cpus_per_trial']} but the Ray cluster has {cpus:g} CPUs")
    if plan["concurrency"] is None:
        slots = math.floor(cpus / plan["cpus_per_trial"] + 1e-9)
        if plan["gpus_per_trial"] > 0:
            slots = min(slots, math.floor(gpus / plan["gpus_per_trial"] + 1e-9))
        plan["concurrency"] = max(1, slots)


def trial_dirname(trial: Any) -> str:
    return trial.trial_id


def build_tuner(plan: dict[str, Any], config: Config, spec: SearchSpec, trainable: Any) -> Any:
    """A new Tuner, or the interrupted one restored with its searcher state and finished trials."""
    import optuna
    from optuna.samplers import TPESampler
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    folder = str(Path(plan["storage"]) / plan["name"]) if "://" not in plan["storage"] else \
        f"{plan['storage'].rstrip('/')}/{plan['name']}"
    if tune.Tuner.can_restore(folder):
        log.info("resuming %s", folder)
        return tune.Tuner.restore(folder, trainable=trainable, resume_unfinished=True, resume_errored=False)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    start = {key: getattr(config, key) for key in spec.space}
    if not all(_inside(value, spec.space[key]) for key, value in start.items()):
        log.warning("the base config lies outside the search space; it is not evaluated first")
        start = None
    searcher = OptunaSearch(sampler=TPESampler(seed=spec.seed), points_to_evaluate=[start] if start else None)
    param_space = {**config.to_dict(), "epochs": spec.max_epochs, **spec.domains()}
    return tune.Tuner(
        trainable, param_space=param_space,
        tune_config=tune.TuneConfig(
            metric=spec.metric, mode=spec.mode, num_samples=plan["samples"],
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=plan["concurrency"]),
            scheduler=ASHAScheduler(max_t=spec.max_epochs, grace_period=spec.grace_period,
                                    reduction_factor=spec.reduction_factor)
            if spec.scheduler == "asha" else FIFOScheduler(),
            trial_dirname_creator=trial_dirname, reuse_actors=True),
        run_config=tune.RunConfig(
            name=plan["name"], storage_path=plan["storage"], verbose=1, progress_reporter=tune.CLIReporter(
                metric_columns={"epoch": "epoch", spec.metric: spec.metric, "val_loss": "val_loss"},
                parameter_columns=list(spec.space), max_report_frequency=20, sort_by_metric=True,
                max_progress_rows=15),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1), callbacks=tune_callbacks(plan),
            failure_config=tune.FailureConfig(max_failures=0)),
    )


def _inside(value: Any, spec: dict[str, list]) -> bool:
    (kind, args), = spec.items()
    return value in args if kind == "choice" else args[0] <= value <= args[1]


def trial_records(results: Any) -> list[dict[str, Any]]:
    """Plain records of every trial from Tune's ResultGrid, in the order they started.

    A trial is done when Tune's own status says it terminated (completed or stopped by ASHA); the `done`
    flag of its last result is not reliable across an interruption.
    """
    from ray import tune

    statuses = {trial.trial_id: trial.status for trial in tune.ExperimentAnalysis(results.experiment_path).trials}
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
        records.append({
            "trial_id": trial_id, "started": started, "config": result.config or {}, "history": history,
            "error": error, "done": statuses.get(trial_id) == "TERMINATED", "epochs": len(history),
            "wall_seconds": float(result.metrics.get("time_total_s", 0.0)),
        })
    return sorted(records, key=lambda r: r["started"])  # trial number = order of starting


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr, force=True)
    for name in ("core", "search"):  # ours at INFO; libraries' (Ray's, tensorboardX's) only from WARNING
        logging.getLogger(name).setLevel(logging.INFO)
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the compact status table, not a box per finished trial
    began = time.perf_counter()
    try:
        plan = resumed_plan(args) if args.resume else new_plan(args)
        config = build_config(plan["config"], source=f"{plan['folder']}/{PLAN_FILE}")
        spec = SearchSpec(space=plan["search"]["space"], **{**SEARCH_DEFAULTS, **plan["search"]["search"]})
        data = prepare_data(config)
        prepared = time.perf_counter()
        if plan.setdefault("data_fingerprint", data.fingerprint()) != data.fingerprint():
            raise ConfigError(f"the data of {config.data} changed since search {plan['name']} started "
                              f"(fingerprint {data.fingerprint()} vs {plan['data_fingerprint']}); "
                              "start a new search")
        save_plan(plan)
        baselines = evaluate_baselines(config, data, evaluate_on="val")
    except RecsysError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return run_search(args, plan, config, spec, data, baselines, began, prepared)


def run_search(args: argparse.Namespace, plan: dict[str, Any], config: Config, spec: SearchSpec, data: Any,
               baselines: dict, began: float, prepared: float) -> int:
    import ray
    from ray import tune

    from search.reporting import train_trial

    ray_began = time.perf_counter()
    context = start_ray(args)
    ray_seconds = time.perf_counter() - ray_began
    try:
        resolve_resources(plan)
        save_plan(plan)
        dashboard = getattr(context, "dashboard_url", None)
        if dashboard:
            print(f"Ray dashboard: http://{dashboard}", file=sys.stderr)
        print(f"Search {plan['name']}: {plan['samples']} trials, {plan['concurrency']} at a time, "
              f"{plan['cpus_per_trial']:g} CPU + {plan['gpus_per_trial']:g} GPU each; outputs in {plan['folder']}",
              file=sys.stderr)
        threads = max(1, int(plan["cpus_per_trial"]))
        trainable = tune.with_resources(tune.with_parameters(train_trial, data=data, threads=threads),
                                        {"cpu": plan["cpus_per_trial"], "gpu": plan["gpus_per_trial"]})
        tuner = build_tuner(plan, config, spec, trainable)
        results = tuner.fit()
        records = trial_records(results)
    except RecsysError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # a failure inside Ray: keep the details, say how to go on
        error_log = Path(plan["folder"]) / "error.log"
        error_log.write_text(traceback.format_exc())
        print(f"error: the search stopped: {type(err).__name__}: {str(err).strip().splitlines()[-1:]}\n"
              f"details: {error_log}\nfinished trials are kept; resume with: "
              f"python -m search.run --resume --name {plan['name']}", file=sys.stderr)
        return 1
    finally:
        ray.shutdown()
    finished = len(records) == plan["samples"] and all(r["done"] or r["error"] for r in records)
    plan["status"] = "finished" if finished else "interrupted"
    plan["wall_seconds"] = plan.get("wall_seconds", 0.0) + time.perf_counter() - began
    save_plan(plan)
    info = {**spec.to_dict()["search"], "name": plan["name"], "samples": plan["samples"],
            "finished": finished, "space": spec.space, "space_keys": list(spec.space),
            "data": config.data, "data_stats": _short_stats(data.stats), "baselines": baselines,
            "concurrency": plan["concurrency"], "cpus_per_trial": plan["cpus_per_trial"],
            "gpus_per_trial": plan["gpus_per_trial"], "wall_seconds": plan["wall_seconds"],
            "ray_start_seconds": ray_seconds, "prepare_seconds": prepared - began,
            "trial_seconds": sum(r["wall_seconds"] for r in records),
            "default_trial_id": next((r["trial_id"] for r in records if all(
                r["config"].get(k) == getattr(config, k) for k in spec.space)), None)}
    table = write_outputs(Path(plan["folder"]), records, info)
    summary = Path(plan["folder"]) / "summary.md"
    print(f"\nSummary: {summary}", file=sys.stderr)
    if not finished:
        print(f"The search did not finish ({len(table)} of {plan['samples']} trials started). Resume it with:\n"
              f"  python -m search.run --resume --name {plan['name']}"
              f"{'' if args.storage == 'results' else ' --storage ' + args.storage}", file=sys.stderr)
        return 130
    return 0


def _short_stats(stats: dict[str, Any]) -> str:
    keys = ("customers", "items", "events", "train_events", "val_targets", "val_cold_targets", "val_no_history")
    return ", ".join(f"{k} {stats[k]}" for k in keys if k in stats)


if __name__ == "__main__":
    sys.exit(main())
