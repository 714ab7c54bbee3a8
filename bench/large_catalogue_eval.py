"""Validation and export at large catalogues, ranked in item blocks: seconds and peak memory.

    flock /tmp/heavy.lock python bench/large_catalogue_eval.py eval --items 100000 --customers 100000
    flock /tmp/heavy.lock python bench/large_catalogue_eval.py export --items 1000000 --customers 20000
    flock /tmp/heavy.lock python bench/large_catalogue_eval.py compare --items 1682 --customers 943
    flock /tmp/heavy.lock python bench/large_catalogue_eval.py prepare --items 1000000 --customers 2000000
    flock /tmp/heavy.lock python bench/large_catalogue_eval.py run --items 1000000 --customers 100000 --events 20 \
        --val-sample 20000

A random leave-one-out log (Zipf-like item popularity, `--events` per customer on average) is built as a
PreparedData directly, with the Markov tables and training windows a fit would build (timed as `prepare`).
The model is untrained (random weights, the default sizes, markov_blend auto, seen_items auto): the cost of
ranking does not depend on the weights. `eval` runs one validation as fit does (every blend weight and both
seen-item rules), `export` every customer's top-10, `compare` the blocked validation against the
unblocked one of commit 04d03d3 (read from git), alternated; `blocks` validation at 2^22, 2^24 and 2^26
scores per block, alternated; `prepare` writes such a log as a Parquet event
log (in a child process, not timed) and times core.data.prepare_data on it, then the training windows,
Markov tables and validation targets of a fit. `run` is what a trial and the export do at this size, in one
process: one epoch of core.fit.fit (the default config with `loss: auto`, the sampled softmax from 20,000 items,
and lazy item updates there) with its validation (--val-sample targets, every blend weight), then every customer's
top-10 (core.recommend.top_k_items, as `search.recommend --all` runs it); each timed, and the peak RSS over all
three. Each prints one JSON line, with the peak RSS.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from common import ROOT

from core.baselines import item_counts, markov_table
from core.config import build_config
from core.data import PreparedData, prepare_data
from core.model import build_model
from core.recommend import top_k_items
from core.samples import training_windows
from core.split import TRAIN, VALID
from core.tensors import evaluation_targets, sample_targets
from core.validation import evaluate_model

UNBLOCKED_COMMIT = "04d03d3"


def random_log(n_items: int, n_customers: int, mean_events: int, seed: int = 0) -> PreparedData:
    """Leave-one-out periods over random sequences of at least 3 events; items drawn with p ~ 1 / rank."""
    rng = np.random.default_rng(seed)
    lengths = rng.poisson(mean_events - 3, n_customers) + 3
    user_start = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    weights = 1.0 / np.arange(1, n_items + 1)
    items = rng.choice(np.arange(1, n_items + 1), size=int(user_start[-1]), p=weights / weights.sum())
    period = np.zeros(len(items), dtype=np.int8)
    period[user_start[1:] - 1], period[user_start[1:] - 2] = 2, 1
    catalog = pd.DataFrame({"item_id": np.arange(1, n_items + 1), "item_number": np.arange(1, n_items + 1),
                            "description_1": None, "description_2": None})
    return PreparedData(items=items.astype(np.int64), user_start=user_start, period=period,
                        user_ids=np.arange(n_customers, dtype=np.int64), catalog=catalog, settings={})


def prepared_model(data: PreparedData, config) -> torch.nn.Module:
    """The default model's sizes with the Markov blend's tables, as fit builds it."""
    torch.manual_seed(0)
    model = build_model(data.n_items, config.embed_dim, config.hidden_dim, 1, 0.0, markov_blend=True)
    model.set_markov_table(*markov_table(data, TRAIN), item_counts(data, TRAIN))
    return model


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KB on Linux


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("eval", "export", "compare", "blocks", "prepare", "write-log", "run"))
    parser.add_argument("--items", type=int, required=True)
    parser.add_argument("--customers", type=int, required=True)
    parser.add_argument("--events", type=int, default=10, help="mean events per customer")
    parser.add_argument("--val-sample", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="compare: alternated runs of each")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.what in ("prepare", "write-log"):
        return prepare(args)
    if args.what == "run":
        return run(args)
    began = time.perf_counter()
    data = random_log(args.items, args.customers, args.events)
    config = build_config({"val_sample": args.val_sample})
    windows = training_windows(data, config.max_seq_len, TRAIN, config.window_overlap)
    model = prepared_model(data, config)
    targets = sample_targets(evaluation_targets(data, VALID, config.max_seq_len, torch.device("cpu")),
                             args.val_sample)
    out = {"what": args.what, "items": args.items, "customers": args.customers, "events": len(data.items),
           "train_windows": len(windows[0]), "val_targets": len(targets), "threads": args.threads,
           "prepare_seconds": round(time.perf_counter() - began, 1), "prepare_peak_rss_gb": round(peak_rss_gb(), 2)}
    if args.what == "eval":
        began = time.perf_counter()
        scores, _, chosen = evaluate_model(config, model, targets)
        out.update(eval_seconds=round(time.perf_counter() - began, 1), ndcg5=round(scores["ndcg@5"], 5))
    elif args.what == "export":
        began = time.perf_counter()
        ids, _ = top_k_items(model, data.items, data.user_start, np.arange(len(data.user_ids)), k=10,
                             max_seq_len=config.max_seq_len)
        out.update(export_seconds=round(time.perf_counter() - began, 1), exported=int((ids > 0).sum()))
    elif args.what == "blocks":
        out.update(block_sizes(config, model, targets, args.repeats))
    else:
        out.update(compare(config, model, targets, args.repeats))
    out["peak_rss_gb"] = round(peak_rss_gb(), 2)
    print(json.dumps(out))
    return 0


def run(args: argparse.Namespace) -> int:
    """One epoch of fit with its validation, then every customer's top-10: seconds of each and the peak RSS."""
    from core.fit import fit

    config = build_config({"epochs": 1, "patience": 0, "val_sample": args.val_sample, "threads": args.threads,
                           "loss": "auto"})
    began = time.perf_counter()
    data = dataclasses.replace(random_log(args.items, args.customers, args.events), settings=config.data_settings())
    out = {"what": "run", "items": data.n_items, "items_in_log": len(np.unique(data.items)),
           "customers": len(data.user_ids), "events": len(data.items), "threads": args.threads,
           "log_seconds": round(time.perf_counter() - began, 1)}
    began = time.perf_counter()
    result = fit(config, data)
    epoch = result.history[0]
    out.update(fit_seconds=round(time.perf_counter() - began, 1), train_seconds=round(epoch["train_seconds"], 1),
               val_seconds=round(epoch["eval_seconds"], 1), val_targets=args.val_sample or "all",
               val_ndcg5=round(epoch["val_ndcg@5"], 5), fit_peak_rss_gb=round(peak_rss_gb(), 2))
    print(json.dumps(out), file=sys.stderr, flush=True)
    began = time.perf_counter()
    ids, _ = top_k_items(result.model, data.items, data.user_start, np.arange(len(data.user_ids)), k=10,
                         max_seq_len=config.max_seq_len)
    out.update(export_seconds=round(time.perf_counter() - began, 1), exported_customers=len(ids),
               exported=int((ids > 0).sum()), peak_rss_gb=round(peak_rss_gb(), 2))
    print(json.dumps(out))
    return 0


def prepare(args: argparse.Namespace) -> int:
    """write-log: the random log as a Parquet event log; prepare: time reading and preparing it."""
    path = Path(f"/tmp/large_catalogue_{args.items}_{args.customers}_{args.events}.parquet")
    if args.what == "write-log":
        data = random_log(args.items, args.customers, args.events)
        user = np.repeat(data.user_ids, np.diff(data.user_start))
        day = np.arange(len(data.items)) - np.repeat(data.user_start[:-1], np.diff(data.user_start))
        pd.DataFrame({"account_number": user, "agreement_date": pd.Timestamp("2024-01-01") + pd.to_timedelta(
            day, unit="D"), "model_number": data.items * 7 + 100}).to_parquet(path, index=False)
        return 0
    if not path.exists():
        subprocess.run([sys.executable, __file__, "write-log", "--items", str(args.items), "--customers",
                        str(args.customers), "--events", str(args.events)], check=True)
    config = build_config({"data": str(path), "split": "leave_one_out", "description_1_col": None,
                           "description_2_col": None})
    began = time.perf_counter()
    data = prepare_data(config)
    out = {"what": "prepare", "items": data.n_items, "customers": len(data.user_ids), "events": len(data.items),
           "prepare_data_seconds": round(time.perf_counter() - began, 1),
           "prepare_data_peak_rss_gb": round(peak_rss_gb(), 2)}
    began = time.perf_counter()
    windows = training_windows(data, config.max_seq_len, TRAIN, config.window_overlap)
    table = markov_table(data, TRAIN)
    targets = evaluation_targets(data, VALID, config.max_seq_len, torch.device("cpu"))
    out.update(train_windows=len(windows[0]), transitions=len(table[1]), val_targets=len(targets),
               fit_tables_seconds=round(time.perf_counter() - began, 1), peak_rss_gb=round(peak_rss_gb(), 2))
    print(json.dumps(out))
    return 0


def block_sizes(config, model, targets, repeats: int) -> dict:
    """Seconds of validation at several block sizes (scores held at once), alternated."""
    import core.ranking as ranking
    default = ranking.BLOCK_ELEMENTS
    seconds = {size: [] for size in (1 << 22, 1 << 24, 1 << 26)}
    for _ in range(repeats):
        for size in seconds:
            ranking.BLOCK_ELEMENTS = size
            began = time.perf_counter()
            evaluate_model(config, model, targets)
            seconds[size].append(round(time.perf_counter() - began, 2))
    ranking.BLOCK_ELEMENTS = default
    return {f"block_elements_{size}_seconds": values for size, values in seconds.items()}


def compare(config, model, targets, repeats: int) -> dict:
    """Seconds of validation (as fit runs it), blocked and unblocked (the code of UNBLOCKED_COMMIT), alternated."""
    import core.fit as fit_module
    source = subprocess.run(["git", "show", f"{UNBLOCKED_COMMIT}:core/evaluation.py"], capture_output=True,
                            text=True, check=True, cwd=ROOT).stdout
    path = Path("/tmp/unblocked_evaluation.py")
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("unblocked_evaluation", path)
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)
    new = (fit_module.evaluate_variants, fit_module.model_scorer, fit_module.markov_blend_scorer)
    seconds = {"blocked": [], "unblocked": []}
    results = {}
    for _ in range(repeats):
        for name, functions in (("blocked", new), ("unblocked", (old.evaluate_variants, old.model_scorer,
                                                                 old.markov_blend_scorer))):
            fit_module.evaluate_variants, fit_module.model_scorer, fit_module.markov_blend_scorer = functions
            began = time.perf_counter()
            results[name] = evaluate_model(config, model, targets)[0]
            seconds[name].append(time.perf_counter() - began)
    fit_module.evaluate_variants, fit_module.model_scorer, fit_module.markov_blend_scorer = new
    same = all(results["blocked"][k] == results["unblocked"][k] for k in results["blocked"] if k != "loss")
    return {f"{name}_seconds": [round(s, 2) for s in values] for name, values in seconds.items()} | {
        "ratio_blocked_over_unblocked_median": round(float(np.median(seconds["blocked"]) / np.median(
            seconds["unblocked"])), 3), "same_metrics": same}


if __name__ == "__main__":
    sys.exit(main())
