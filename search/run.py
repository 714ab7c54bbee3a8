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
import os
import sys
import time
import traceback
from datetime import datetime
from pathlib import Path

from core.baselines import evaluate_baselines
from core.config import Config, build_config, parse_overrides, resolve_config
from core.data import PreparedData, prepare_data
from core.errors import ConfigError, RecsysError
from search import endings, integrity, recover, tuner
from search.connect import DEFAULT_CONNECT_TIMEOUT_S
from search.endings import SearchStopped, stop_signals
from search.lock import hold_search_lock, release_search_lock
from search.plan import PLAN_FILE, SearchPlan, Status, load_plan
from search.reports import SearchFacts, seen_last_key, write_outputs
from search.space import SearchSpec, load_search_spec
from search.storage import check_storage, child, exists, fetch_reports, is_uri, publish_reports
from search.study import trials_created
from search.tracking import require_mlflow, tracking_uri
from search.warmstart import load_warm_start

log = logging.getLogger(__name__)

FIXED_ON_RESUME = ("data", "config", "overrides", "space", "max_epochs", "seed", "scheduler",
                   "cpus_per_trial", "gpus_per_trial", "concurrency", "warm_start", "mlflow", "grace_period",
                   "reduction_factor")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m search.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int,
                        help="number of trials (default 50); with --resume, go on to this many trials in total")
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
    parser.add_argument("--trust-pickles", action="store_true",
                        help="with --resume: load the folder's Tune and searcher pickles even though they are not "
                             "signed with your key (a folder from someone else); this runs any code they hold")
    parser.add_argument("--seed", type=int, help="Optuna sampler seed (default: the space file's)")
    parser.add_argument("--scheduler", choices=("asha", "fifo"),
                        help="asha stops weak trials early; fifo runs every trial to --max-epochs "
                             "(default: the space file's)")
    parser.add_argument("--warm-start", metavar="FOLDER",
                        help="an earlier search (results/<name>) whose finished trials Optuna learns from before "
                             "proposing anything; only the settings both spaces share are carried over")
    parser.add_argument("--mlflow", nargs="?", const="", metavar="URI",
                        help="log every trial (and the retrain) to MLflow, one experiment per search (default URI: "
                             "mlruns/ beside the searches, e.g. results/mlruns); needs pip install -e \".[mlflow]\"")
    parser.add_argument("--grace-period", type=int,
                        help="ASHA: epochs every trial runs before it can be stopped (default: the space file's)")
    parser.add_argument("--reduction-factor", type=float,
                        help="ASHA: 1 in this many trials goes on at each rung (default: the space file's)")
    parser.add_argument("--connect-timeout", type=float, default=DEFAULT_CONNECT_TIMEOUT_S,
                        help=f"with --address: seconds to reach the cluster before giving up "
                             f"(default {DEFAULT_CONNECT_TIMEOUT_S:g})")
    parser.add_argument("--no-dashboard", action="store_true", help="start the local Ray without its dashboard")
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
    if args.connect_timeout <= 0:
        parser.error("--connect-timeout must be positive")
    if args.resume and not args.name:
        parser.error("--resume needs --name of the search to continue")
    if args.trust_pickles and not args.resume:
        parser.error("--trust-pickles applies to --resume only")
    if args.address and (args.num_cpus is not None or args.num_gpus is not None):
        parser.error("--num-cpus/--num-gpus apply to a local Ray only, not with --address")
    return args


def report_folder(storage: str, name: str) -> Path:
    """The local folder of a search's reports: <storage>/<name>, or results/<name> when storage is a URI."""
    return Path("results").resolve() / name if is_uri(storage) else Path(storage).resolve() / name


def experiment_folder(storage: str, name: str) -> tuple[str, Path]:
    """Ray's storage path and the local folder for our reports (the same unless storage is a URI, whose bucket,
    credentials and endpoint are checked here, before anything is written)."""
    if is_uri(storage):
        check_storage(storage)
        return storage, report_folder(storage, name)
    return str(Path(storage).resolve()), report_folder(storage, name)


def new_plan(args: argparse.Namespace) -> SearchPlan:
    """Settings of a new search, all checked before Ray starts."""
    overrides = parse_overrides(args.overrides)
    if args.data:
        overrides["data"] = args.data
    config = resolve_config(args.config, overrides)
    if config.data_format != "synthetic":  # trials and retraining may run elsewhere: keep an absolute path
        config = dataclasses.replace(config, data=str(Path(config.data).resolve()))
    spec = load_search_spec(args.space, config, max_epochs=args.max_epochs, seed=args.seed,
                            scheduler=args.scheduler, grace_period=args.grace_period,
                            reduction_factor=args.reduction_factor)
    name = args.name or datetime.now().strftime("search-%Y%m%d-%H%M%S")
    storage, folder = experiment_folder(args.storage, name)
    if args.mlflow is not None:
        require_mlflow()  # before Ray starts: a missing extra is one clear line
    if args.warm_start:
        load_warm_start(args.warm_start, spec)  # refuse an incompatible search before anything starts
    taken = folder if folder.exists() and any(folder.iterdir()) else None
    if taken is None and is_uri(storage) and exists(child(storage, name)):
        taken = child(storage, name)
    if taken is not None:
        raise ConfigError(f"{taken} already holds a search; continue it with --resume --name {name}, "
                          "or choose another --name")
    return SearchPlan(name=name, storage=storage, folder=str(folder), samples=args.samples or 50,
                      cpus_per_trial=args.cpus_per_trial or 1.0, gpus_per_trial=args.gpus_per_trial,
                      concurrency=args.concurrency, config=config.to_dict(), search=spec.to_dict(),
                      status=Status.RUNNING, created=datetime.now().isoformat(timespec="seconds"),
                      warm_start=str(Path(args.warm_start).resolve()) if args.warm_start else None,
                      mlflow=None if args.mlflow is None else tracking_uri(args.mlflow, folder.parent),
                      address=args.address)


def resumed_plan(args: argparse.Namespace) -> SearchPlan:
    """The saved settings of an earlier search, resources included (its searcher and trials keep them)."""
    storage, folder = experiment_folder(args.storage, args.name)
    if is_uri(storage) and not (folder / PLAN_FILE).is_file():  # started on another machine: fetch its reports
        fetch_reports(child(storage, args.name), folder)
    if not (folder / PLAN_FILE).is_file():
        raise ConfigError(f"no search to resume at {folder} ({PLAN_FILE} is missing); "
                          "start one without --resume")
    fixed = [f"--{k.replace('_', '-')}" for k in FIXED_ON_RESUME if getattr(args, k) not in (None, [])]
    if fixed:
        raise ConfigError(f"a resumed search keeps its settings; drop {', '.join(fixed)} "
                          f"(they are in {folder / PLAN_FILE})")
    plan = load_plan(folder)
    if plan.mlflow:  # its Tune callback is restored with the experiment
        require_mlflow()
    return dataclasses.replace(plan, status=Status.RUNNING, address=args.address)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr, force=True)
    for name in ("core", "search"):  # ours at INFO; libraries' (Ray's, tensorboardX's) only from WARNING
        logging.getLogger(name).setLevel(logging.INFO)
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the compact status table, not a box per finished trial
    os.environ.setdefault("RAY_IGNORE_UNHANDLED_ERRORS", "1")  # an errored trial's traceback: its error.txt only
    args.name = args.name or datetime.now().strftime("search-%Y%m%d-%H%M%S")
    folder = report_folder(args.storage, args.name)
    try:
        return locked_search(args, folder)
    finally:
        release_search_lock(folder)


def locked_search(args: argparse.Namespace, folder: Path) -> int:
    """The search, once no other process runs one of this name (the lock is taken before anything is written)."""
    began = time.perf_counter()
    try:
        if is_uri(args.storage):
            check_storage(args.storage)  # a bucket that cannot be used: one line, and no lock file left here
        hold_search_lock(folder)
        integrity.user_key()  # a key others can read: refused now, not inside Tune
        plan = resumed_plan(args) if args.resume else new_plan(args)
        config = build_config(plan.config, source=str(plan.path))
        spec = SearchSpec.from_dict(plan.search)
        if args.resume:
            checked_pickles(plan, spec, args.trust_pickles)
            plan = extended(plan, args.samples)
        data = prepare_data(config)
        prepared = time.perf_counter()
        if plan.data_fingerprint not in (None, data.fingerprint()):
            raise ConfigError(f"the data of {config.data} changed since search {plan.name} started "
                              f"(fingerprint {data.fingerprint()} vs {plan.data_fingerprint}); start a new search")
        plan = dataclasses.replace(plan, data_fingerprint=data.fingerprint())  # saved once Ray is reached
        baselines = evaluate_baselines(config, data, evaluate_on="val")
        if config.seen_items == "auto" and not config.exclude_seen:  # trials choose the rule: both, for the best's
            baselines.update({seen_last_key(name): metrics for name, metrics in
                              evaluate_baselines(config, data, evaluate_on="val", seen_last=True).items()})
    except RecsysError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted before the search started; nothing was written", file=sys.stderr)
        return 130
    with stop_signals():
        return run_search(args, plan, config, spec, data, baselines, began, prepared)


def extended(plan: SearchPlan, samples: int | None) -> SearchPlan:
    """The plan of a resume with --samples N: N trials in all, more than the search has already run (read from
    Tune's search state, once checked_pickles has verified it)."""
    if samples is None:
        return plan
    created = trials_created(plan.tune_path)
    if created is not None and samples <= created:
        raise ConfigError(f"--samples {samples} is not above the {created} trials search {plan.name} "
                          f"has already run; ask for more than {created}")
    return dataclasses.replace(plan, samples=samples)


def checked_pickles(plan: SearchPlan, spec: SearchSpec, trust: bool) -> None:
    """Before a resume loads anything: refuse Tune state this user did not sign; replace a damaged searcher
    state (set aside, never loaded) by one that learns the finished trials."""
    if "://" in plan.tune_path:
        log.warning("pickles in %s are not checked (cloud storage)", plan.tune_path)
        return
    damaged = integrity.verify(plan.tune_path, trust)
    if damaged:
        recover.replace_searcher_state(plan, spec, damaged)


STOPPING = "\n{}: stopping now; the summary is written from the results saved so far"


def run_search(args: argparse.Namespace, plan: SearchPlan, config: Config, spec: SearchSpec, data: PreparedData,
               baselines: dict[str, dict[str, float]], began: float, prepared: float) -> int:
    """Start Ray, run the trials, write the reports; the exit code says how it ended."""
    ray_began = time.perf_counter()
    try:  # the plan is first saved after this: a cluster that cannot be reached leaves nothing behind
        context = tuner.start_ray(args.address, not args.no_dashboard, args.num_cpus, args.num_gpus,
                                  args.connect_timeout)
    except RecsysError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except SearchStopped as stop:
        tuner.stop_ray()
        print(f"{stop.signal_name}: stopped while starting Ray, before any trial; nothing was written",
              file=sys.stderr)
        return 130
    endings.catch()
    ray_seconds = time.perf_counter() - ray_began
    records = None
    try:
        plan = tuner.resolve_resources(plan).save()
        publish_reports(plan.folder, plan.storage, plan.name)
        if getattr(context, "dashboard_url", None):
            print(f"Ray dashboard: http://{context.dashboard_url}", file=sys.stderr)
        print(f"Search {plan.name}: {plan.samples} trials, {plan.concurrency} at a time, {plan.cpus_per_trial:g} CPU"
              f" + {plan.gpus_per_trial:g} GPU each; outputs in {plan.folder}"
              + (f" (trials and checkpoints in {plan.tune_path})" if is_uri(plan.storage) else ""), file=sys.stderr)
        endings.quiet_trial_tracebacks()
        warm = load_warm_start(plan.warm_start, spec) if plan.warm_start else None
        records = tuner.run_trials(plan, config, spec, data, warm)
    except SearchStopped as stop:
        print(STOPPING.format(stop.signal_name), file=sys.stderr)
    except RecsysError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # a failure inside Ray: keep the details, say how to go on
        stop = endings.stop_behind(err)
        if stop is None:
            error_log = Path(plan.folder) / "error.log"
            error_log.write_text(traceback.format_exc())
            dataclasses.replace(plan, status=Status.INTERRUPTED).save()
            print(f"error: the search stopped: {type(err).__name__}: {endings.error_line(str(err))}\n"
                  f"details: {error_log}\nfinished trials are kept; resume with: {plan.resume_command(args.address)}",
                  file=sys.stderr)
            return 1
        print(STOPPING.format(stop.signal_name), file=sys.stderr)  # a second stop inside Ray's Cython code
    finally:
        endings.finishing()
        tuner.stop_ray()
        if "://" not in plan.tune_path:
            integrity.seal(plan.tune_path)  # what Tune wrote last, now that it has stopped
    if records is None:
        records = tuner.records_on_disk(plan)
    kept = recover.fewer_than_reported(plan.folder, records)
    if kept:
        print(f"error: {kept}; resume again, or look at {plan.tune_path}", file=sys.stderr)
        return 1
    finished = len(records) == plan.samples and all(r.done or r.error for r in records)
    plan = dataclasses.replace(plan, status=Status.FINISHED if finished else Status.INTERRUPTED,
                               wall_seconds=plan.wall_seconds + time.perf_counter() - began).save()
    facts = search_facts(records, config, spec, data, baselines, ray_seconds, prepared - began)
    table = write_outputs(Path(plan.folder), records, plan, spec, facts)
    print(f"\nSummary: {Path(plan.folder) / 'summary.md'}{copied_to(plan)}", file=sys.stderr)
    if not finished:
        print(f"The search did not finish ({len(table)} of {plan.samples} trials started). Resume it with:\n"
              f"  {plan.resume_command(args.address)}", file=sys.stderr)
        return 130
    return 0


def copied_to(plan: SearchPlan) -> str:
    """For a URI storage: the reports are copied beside Ray's experiment; says where (or why not)."""
    try:
        uri = publish_reports(plan.folder, plan.storage, plan.name)
    except RecsysError as err:
        return f"\nwarning: the reports stay local only: {err}"
    return f" (copied to {uri})" if uri else ""


def search_facts(records: list, config: Config, spec: SearchSpec, data: PreparedData,
                 baselines: dict[str, dict[str, float]], ray_seconds: float, prepare_seconds: float) -> SearchFacts:
    """What the run learned for the reports: data counts, baselines, time, and which trial was the base config."""
    keys = ("customers", "items", "events", "train_events", "val_targets", "val_cold_targets", "val_no_history")
    base = next((r.trial_id for r in records if all(r.config.get(k) == getattr(config, k) for k in spec.space)), None)
    return SearchFacts(data_stats=", ".join(f"{k} {data.stats[k]}" for k in keys if k in data.stats),
                       baselines=baselines, ray_start_seconds=ray_seconds, prepare_seconds=prepare_seconds,
                       trial_seconds=sum(r.wall_seconds for r in records), default_trial_id=base)


if __name__ == "__main__":
    sys.exit(main())
