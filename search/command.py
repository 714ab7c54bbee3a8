"""The command line of `python -m search.run`: its flags, and the checked plan they make, of a new search or
of one resumed (whose saved settings are kept, its pickles checked before anything loads them)."""
from __future__ import annotations

import argparse
import dataclasses
import logging
from datetime import datetime
from pathlib import Path

from core.config import parse_overrides, resolve_config
from core.errors import ConfigError
from search import integrity, recover
from search.connect import DEFAULT_CONNECT_TIMEOUT_S
from search.plan import PLAN_FILE, SearchPlan, Status, load_plan
from search.space import SearchSpec, load_search_spec
from search.storage import check_storage, child, exists, fetch_reports, is_uri
from search.study import trials_created
from search.tracking import require_mlflow, tracking_uri
from search.warmstart import load_warm_start

log = logging.getLogger(__name__)

FIXED_ON_RESUME = ("data", "config", "overrides", "space", "max_epochs", "seed", "scheduler",
                   "cpus_per_trial", "gpus_per_trial", "concurrency", "warm_start", "mlflow", "grace_period",
                   "reduction_factor", "startup_trials", "keep_base")


# search settings a flag sets over the space file's
SEARCH_FLAGS = ("max_epochs", "seed", "scheduler", "grace_period", "reduction_factor", "startup_trials",
                "keep_base")


def parse_args(argv: list[str] | None = None, description: str | None = None) -> argparse.Namespace:
    """The flags of python -m search.run (its --help shows `description`), checked together."""
    parser = argparse.ArgumentParser(prog="python -m search.run", description=description,
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
    parser.add_argument("--startup-trials", type=int,
                        help="Optuna TPE: trials drawn at random, the base config included, before TPE models "
                             "the rest (default: the space file's)")
    parser.add_argument("--keep-base", action=argparse.BooleanOptionalAction, default=None,
                        help="ASHA never stops the base config's trial; patience still ends it (default: the space "
                             "file's)")
    parser.add_argument("--connect-timeout", type=float, default=DEFAULT_CONNECT_TIMEOUT_S,
                        help=f"with --address: seconds to reach the cluster before giving up "
                             f"(default {DEFAULT_CONNECT_TIMEOUT_S:g})")
    parser.add_argument("--no-dashboard", action="store_true", help="start the local Ray without its dashboard")
    parser.add_argument("--num-cpus", type=int, help="local Ray only: CPUs it may use (default: all)")
    parser.add_argument("--num-gpus", type=float,
                        help="local Ray only: GPUs it may schedule (default: detected); a logical count "
                             "on a CPU machine tests GPU packing")
    args = parser.parse_args(argv)
    check_args(parser, args)
    return args


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Flags that cannot go together, or values out of range: parser.error names the flag."""
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
    spec = load_search_spec(args.space, config, {key: getattr(args, key) for key in SEARCH_FLAGS})
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
    fixed = [f"--{'no-' if getattr(args, k) is False else ''}{k.replace('_', '-')}" for k in FIXED_ON_RESUME
             if getattr(args, k) not in (None, [])]
    if fixed:
        raise ConfigError(f"a resumed search keeps its settings; drop {', '.join(fixed)} "
                          f"(they are in {folder / PLAN_FILE})")
    plan = load_plan(folder)
    if plan.mlflow:  # its Tune callback is restored with the experiment
        require_mlflow()
    return dataclasses.replace(plan, status=Status.RUNNING, address=args.address)


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
