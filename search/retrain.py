"""Retrain a search's best config and evaluate it once on test: `python -m search.retrain [results/<name>]`.

Trains best_config.yaml on training + validation data for the epochs at which the best trial peaked, then
reports test HR/MRR/NDCG at every K for the model (mean and standard deviation over --seeds) and for
both baselines (ranked under the model's seen-item rule), the paired per-target margin over each baseline
with its 95% interval, and coverage, popularity and NDCG by slice beside the baselines (core.comparison).
Writes results/<name>/final/: model.pt (everything needed to recommend), metrics.json and report.md.
Test data is used here only, never to choose anything.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from core.artifact import MODEL_FILE, save_model
from core.integrity import write_manifest
from core.baselines import evaluate_baselines
from core.comparison import compare_with_baselines, model_target_ndcg, split_targets, target_figures
from core.config import Config, build_config, load_yaml
from core.data import prepare_data
from core.errors import ConfigError, RecsysError
from core.fit import choose_on_validation, fit, needs_validation_choices
from core.metrics import of_split
from core.threads import apply_threads
from search.plan import (
    BEST_CONFIG_FILE,
    FINAL_FOLDER,
    PLAN_FILE,
    SearchPlan,
    Status,
    load_plan,
)
from search.reports import retrain_report
from search.storage import check_storage, child, fetch_reports, is_uri, last_part, newest_folder_with, upload_folder
from search.tracking import log_retrain, require_mlflow

log = logging.getLogger("search.retrain")


def latest_experiment(storage: Path) -> Path:
    """The most recently started search under storage."""
    plans = sorted(storage.glob(f"*/{PLAN_FILE}"), key=lambda p: p.stat().st_mtime)
    if not plans:
        raise ConfigError(f"no search found in {storage}/ (run python -m search.run first)")
    return plans[-1].parent


def search_folder(experiment: str | None, storage: str) -> tuple[Path, str | None]:
    """The local folder of the search to retrain and, for a search kept at a URI, that URI: its reports are
    fetched from there into results/<name>/ first, and final/ is copied back there."""
    uri = experiment if experiment and is_uri(experiment) else None
    if experiment is None and is_uri(storage):
        check_storage(storage)
        uri = newest_folder_with(storage, PLAN_FILE)
        if uri is None:
            raise ConfigError(f"no search found in {storage} (run python -m search.run --storage ... first)")
    if uri is None:
        return (Path(experiment) if experiment else latest_experiment(Path(storage))), None
    check_storage(uri)
    folder = Path("results").resolve() / last_part(uri)
    if PLAN_FILE not in fetch_reports(uri, folder):
        raise ConfigError(f"{uri} is not a search folder (it holds no {PLAN_FILE})")
    return folder, uri


def load_experiment(folder: Path, force: bool) -> tuple[SearchPlan, Config]:
    """The search's plan and its best config; an unfinished search is refused unless forced."""
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a search folder (expected results/<name>/ with {PLAN_FILE})")
    plan = load_plan(folder)
    if plan.status != Status.FINISHED and not force:
        raise ConfigError(f"search {folder.name} did not finish (status: {plan.status.value}); resume it with "
                          f"{plan.resume_command()}, or retrain its best trial so far with --force")
    best_path = folder / BEST_CONFIG_FILE
    if not best_path.is_file():
        raise ConfigError(f"{folder} has no {BEST_CONFIG_FILE}: no trial of this search reported a result")
    return plan, build_config(load_yaml(best_path), source=str(best_path))


def summarise(per_seed: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean and sample standard deviation of every metric over seeds."""
    names = per_seed[0].keys()
    return {"mean": {n: statistics.fmean(r[n] for r in per_seed) for n in names},
            "std": {n: statistics.stdev([r[n] for r in per_seed]) if len(per_seed) > 1 else 0.0 for n in names}}


def retrain(folder: Path, seeds: int = 1, force: bool = False) -> dict[str, Any]:
    """Retrain on training + validation, test once; write final/ and return the metrics."""
    plan, config = load_experiment(folder, force)
    if plan.mlflow:  # a tracked search: fail now, not after training, if the extra is missing
        require_mlflow()
    apply_threads(config)
    data = prepare_data(config)
    searched_on = plan.data_fingerprint
    if searched_on and searched_on != data.fingerprint() and not force:
        raise ConfigError(f"the data of {config.data} changed since search {folder.name} ran (fingerprint "
                          f"{data.fingerprint()} vs {searched_on}); search again, or retrain anyway with --force")
    began = time.perf_counter()
    if needs_validation_choices(config):  # a best config written before these were recorded: choose them now
        config = dataclasses.replace(choose_on_validation(dataclasses.replace(config, patience=0), data),
                                     patience=config.patience)
    final = folder / FINAL_FOLDER
    targets = split_targets(config, data, "test")
    per_seed, per_target, kept = [], [], None
    for index in range(seeds):
        seeded = dataclasses.replace(config, seed=config.seed + index)
        log.info("seed %d (%d of %d): training %d epochs on training + validation", seeded.seed, index + 1,
                 seeds, seeded.epochs)
        result = fit(seeded, data, evaluate_on="test")
        per_seed.append(of_split("test", result.final))
        per_target.append(model_target_ndcg(seeded, result.model, targets))
        if index == 0:  # the model kept is the one of the config's own seed, never the best on test
            save_model(final, result.model, seeded, data, info={"experiment": folder.name})
            kept = result.model
    metrics = {
        "experiment": folder.name, "data": config.data, "data_fingerprint": data.fingerprint(),
        "data_stats": data.stats, "epochs": config.epochs, "markov_blend": config.markov_blend,
        "seen_items": config.seen_items, "seeds": [config.seed + i for i in range(seeds)],
        "model": {**summarise(per_seed), "per_seed": per_seed},
        **evaluate_baselines(config, data, evaluate_on="test"),  # under the model's seen-item rule
        "comparison": compare_with_baselines(config, data, targets, target_figures(config, data, targets, per_target),
                                             seeds, kept),
        "exclude_seen": config.exclude_seen, "search_created": plan.created,
        "retrained": datetime.now().isoformat(timespec="seconds"),
        "retrain_seconds": round(time.perf_counter() - began, 1),
    }
    (final / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (final / "report.md").write_text(retrain_report(metrics, config.ks))
    write_manifest(final, [MODEL_FILE, "metrics.json", "report.md"])  # checked by every load
    if plan.mlflow:
        log_retrain(plan.mlflow, folder.name, config.to_dict(), metrics, final)
    return metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m search.retrain", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", nargs="?", help="results/<name>, or <storage URI>/<name> for a search kept "
                                                      "in an object store (default: the most recent search)")
    parser.add_argument("--seeds", type=int, default=1, help="retrain with this many seeds; report mean ± std")
    parser.add_argument("--storage", default="results", help="where searches live, a folder or a URI (for the "
                                                             "default experiment)")
    parser.add_argument("--force", action="store_true",
                        help="retrain even if the search did not finish or its data changed")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr, force=True)
    for name in ("core", "search"):
        logging.getLogger(name).setLevel(logging.INFO)
    try:
        folder, uri = search_folder(args.experiment, args.storage)
        retrain(folder, seeds=args.seeds, force=args.force)
        if uri is not None:
            upload_folder(folder / FINAL_FOLDER, child(uri, FINAL_FOLDER))
    except RecsysError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print((folder / FINAL_FOLDER / "report.md").read_text())
    if uri is not None:
        print(f"final model: {child(uri, FINAL_FOLDER)} (and {folder / FINAL_FOLDER})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
