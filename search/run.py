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
from typing import Any

from core.baselines import evaluate_baselines
from core.config import Config, build_config
from core.data import PreparedData, prepare_data
from core.errors import ConfigError, RecsysError
from search import endings, integrity, recover, tuner
from search.command import (
    checked_pickles,
    extended,
    new_plan,
    parse_args,
    report_folder,
    resumed_plan,
)
from search.endings import SearchStopped, stop_signals
from search.lock import hold_search_lock, release_search_lock
from search.plan import SearchPlan, Status
from search.reports import SearchFacts, seen_last_key, write_outputs
from search.space import SearchSpec
from search.storage import check_storage, is_uri, publish_reports
from search.trials import TrialRecord
from search.warmstart import load_warm_start

log = logging.getLogger(__name__)

def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv, __doc__)
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
    ran = run_until_stopped(args, plan, config, spec, data, context)
    if isinstance(ran, int):
        return ran
    plan, records = ran
    return write_reports(args, plan, records, (config, spec, data, baselines), began, ray_seconds, prepared - began)


def run_until_stopped(args: argparse.Namespace, plan: SearchPlan, config: Config, spec: SearchSpec,
                      data: PreparedData, context: Any) -> tuple[SearchPlan, list[TrialRecord]] | int:
    """The trials, until they end or are stopped; then Ray is shut down and Tune's pickles sealed. The plan
    (resources resolved) and every trial's record, or the exit code of a search that cannot go on."""
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
    return plan, records


def write_reports(args: argparse.Namespace, plan: SearchPlan, records: list[TrialRecord],
                  inputs: tuple[Config, SearchSpec, PreparedData, dict[str, dict[str, float]]], began: float,
                  ray_seconds: float, prepare_seconds: float) -> int:
    """The plan's final status, the reports and the closing lines; 0 when every trial ran, 130 when not."""
    config, spec, data, baselines = inputs
    kept = recover.fewer_than_reported(plan.folder, records)
    if kept:
        print(f"error: {kept}; resume again, or look at {plan.tune_path}", file=sys.stderr)
        return 1
    finished = len(records) == plan.samples and all(r.done or r.error for r in records)
    plan = dataclasses.replace(plan, status=Status.FINISHED if finished else Status.INTERRUPTED,
                               wall_seconds=plan.wall_seconds + time.perf_counter() - began).save()
    facts = search_facts(records, config, spec, data, baselines, ray_seconds, prepare_seconds)
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
