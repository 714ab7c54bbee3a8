"""Train one config without Ray: `python -m core.train [--config FILE] [--data SOURCE] [--set k=v ...] [--test]`.

Prints one line per epoch, then one JSON line with the final metrics of the model and of both baselines
(ranked under the model's seen-item rule); with --test also `comparison`: the per-target paired NDCG
margin over each baseline with its 95% interval, and coverage, popularity and NDCG by slice
(core.comparison).
Without --test: trains on the training period and reports validation metrics (of the best epoch, with
`patience`). With --test: trains on training + validation and reports test metrics (the final-evaluation
protocol; nothing is chosen on test); with `patience`, for as many epochs as a validation run peaked at, and
with the blend weight and the ranking of seen items that run chose where they are auto.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time

import numpy as np

from core.baselines import evaluate_baselines, model_seen_last
from core.comparison import compare_with_baselines, model_target_ndcg, split_targets, target_figures
from core.config import parse_overrides, resolve_config
from core.data import prepare_data
from core.errors import RecsysError
from core.fit import fit
from core.metrics import of_split
from core.protocol import train_for_test
from core.threads import apply_threads
from core.validation import validation_choices

log = logging.getLogger("core.train")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m core.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML file of settings (over configs/default.yaml)")
    parser.add_argument("--data", help="data source: synthetic, an event log CSV/Parquet, a MovieLens folder, "
                                       "or a sequence .txt file (overrides the config's `data`)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one setting, e.g. --set lr=0.01 --set ks=[5,10]; repeatable")
    parser.add_argument("--test", action="store_true",
                        help="train on training + validation and report test metrics")
    parser.add_argument("--per-target", metavar="FILE.npz",
                        help="with --test: save each test target's NDCG at the first K (model, baselines), history "
                             "length and head/tail to FILE.npz, to combine seeds (bench/quality.py)")
    parser.add_argument("--quiet", action="store_true", help="print only the final JSON line")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s",
                        stream=sys.stderr, force=True)
    try:
        overrides = parse_overrides(args.overrides)
        if args.data:
            overrides["data"] = args.data
        config = resolve_config(args.config, overrides)
        began = time.perf_counter()
        data = prepare_data(config)
        prepared = time.perf_counter()
        apply_threads(config)  # after the data, so that a data error stays the one line printed
        split = "test" if args.test else "val"
        if args.test:  # epochs and blend weight come from validation, as from a search's peak
            config, (result,) = train_for_test(config, data)
        else:
            result = fit(config, data)
        seen_last = bool(result.best.get("seen_last", model_seen_last(config)))  # the model's rule, as chosen
        baselines = evaluate_baselines(config, data, evaluate_on=split, seen_last=seen_last)
        compared = {}
        if args.test:
            targets = split_targets(config, data, split)
            figures = target_figures(config, data, targets, [model_target_ndcg(config, result.model, targets)], split)
            compared["comparison"] = compare_with_baselines(config, data, targets, figures, 1, result.model, split)
            if args.per_target:
                np.savez(args.per_target, **figures)
    except RecsysError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    model = of_split(split, result.best)
    chosen = {"markov_blend": config.markov_blend, "seen_items": config.seen_items}
    if not args.test:
        chosen.update(validation_choices(config, result.best, None))
    train_seconds = [row["train_seconds"] for row in result.history]
    eval_seconds = [row["eval_seconds"] for row in result.history if "eval_seconds" in row]
    print(json.dumps({
        "split": split, "data": config.data, "sample_mode": config.sample_mode, "exclude_seen": config.exclude_seen,
        "epochs": config.epochs, **chosen, "epochs_run": len(result.history), "best_epoch": result.best_epoch,
        "model": model, **baselines, **compared,
        "data_stats": data.stats, "prepare_seconds": round(prepared - began, 3),
        "train_seconds_per_epoch": round(sum(train_seconds) / len(train_seconds), 3),
        "eval_seconds_per_epoch": round(sum(eval_seconds) / max(len(eval_seconds), 1), 3),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
