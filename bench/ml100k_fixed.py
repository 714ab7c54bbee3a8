"""MovieLens-100K, the notebook's time split, one fixed config: the LSTM in both sample modes and the baselines.

    python bench/ml100k_fixed.py [--data ../shared/data/ml-100k] [--epochs 10]

Trains each sample mode twice (training period -> validation; training + validation -> test) with
max_seq_len 20, embed 64, hidden 128, 1 layer, dropout 0.2, batch 64, lr 1e-3, and evaluates every model
with seen items kept and excluded (the same weights: exclusion only changes the ranking). Prints a
markdown table and the seconds per epoch of each mode with their ratio, measured in this one run.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import date
from pathlib import Path

import torch

from core.baselines import markov_scorer, popularity_scorer
from core.config import build_config
from core.data import prepare_data
from core.evaluation import evaluate, model_scorer
from core.fit import fit
from core.split import EVAL_SPLITS
from core.tensors import evaluation_targets

VARIANTS = {"all_positions overlap 0": {"sample_mode": "all_positions", "window_overlap": 0.0},
            "all_positions overlap 0.75": {"sample_mode": "all_positions", "window_overlap": 0.75},
            "prefix": {"sample_mode": "prefix"}}
FIXED = {"max_seq_len": 20, "embed_dim": 64, "hidden_dim": 128, "num_layers": 1, "dropout": 0.2,
         "batch_size": 64, "lr": 0.001, "ks": [5, 10, 20], "patience": 0, "markov_blend": 0,
         "batch_by_length": False, "ema_decay": 0}  # as documented


def score_all(scorer, data, config, split):
    targets = evaluation_targets(data, EVAL_SPLITS[split][1], config.max_seq_len, torch.device("cpu"))
    return {seen: evaluate(scorer, targets, ks=config.ks, exclude_seen=seen, batch_size=1024)
            for seen in (False, True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/ml-100k"))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", default="bench/out/ml100k_fixed.json")
    args = parser.parse_args()
    rows, seconds = [], {}
    base = build_config(dict(FIXED, data=args.data, epochs=args.epochs))
    data = prepare_data(base)
    for split in ("val", "test"):
        last_train = EVAL_SPLITS[split][0]
        for name, make in (("most popular", popularity_scorer), ("Markov", markov_scorer)):
            for seen, metrics in score_all(make(data, last_train, torch.device("cpu")), data, base, split).items():
                rows.append({"split": split, "recommender": name, "exclude_seen": seen, **metrics})
        for mode, settings in VARIANTS.items():
            config = build_config(dict(base.to_dict(), **settings))
            began = time.perf_counter()
            result = fit(config, data, evaluate_on=split)
            per_epoch = [r["train_seconds"] for r in result.history]
            seconds.setdefault(mode, []).extend(per_epoch)
            print(f"{split} {mode}: {time.perf_counter() - began:.0f} s, {sum(per_epoch) / len(per_epoch):.2f} s/epoch",
                  flush=True)
            for seen, metrics in score_all(model_scorer(result.model), data, config, split).items():
                rows.append({"split": split, "recommender": f"LSTM {mode}", "exclude_seen": seen, **metrics})
    mean = {mode: sum(v) / len(v) for mode, v in seconds.items()}
    print(f"\n{date.today()}, {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}")
    print("| split | exclude seen | recommender | HR@5 | MRR@5 | NDCG@5 |\n| --- | --- | --- | --- | --- | --- |")
    for row in sorted(rows, key=lambda r: (r["split"] == "test", r["exclude_seen"])):
        print(f"| {row['split']} | {'on' if row['exclude_seen'] else 'off'} | {row['recommender']} | "
              f"{row['hr@5']:.4f} | {row['mrr@5']:.4f} | {row['ndcg@5']:.4f} |")
    print("\ntraining seconds per epoch: " + ", ".join(
        f"{mode} {seconds:.2f} ({mean['prefix'] / seconds:.1f}x prefix's speed)" for mode, seconds in mean.items()))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"rows": rows, "seconds_per_epoch": mean, "date": str(date.today()),
                                          "threads": torch.get_num_threads(), "data_stats": data.stats}, indent=1))


if __name__ == "__main__":
    main()
