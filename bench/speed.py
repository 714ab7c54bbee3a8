"""Speed against the notebook's approach, at equal hyperparameters, on the same data and targets, in one run.

    python bench/speed.py [--data ../shared/data/ml-100k] [--epochs 10] [--batch-size 64] [--lr 0.001]

Measures data preparation, training throughput (target predictions per second) of the reference
(bench/notebook_reference.py), of our `prefix` mode and of our `all_positions` mode, evaluation
throughput (validation targets ranked per second), and validation NDCG@5 after the same epochs, every
model scored by the same full-ranking code on the same targets. Prints a markdown table with ratios.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import date
from pathlib import Path

import notebook_reference as reference
import torch

from core.config import build_config
from core.data import prepare_data
from core.evaluation import evaluate
from core.fit import fit
from core.samples import prefix_samples, training_windows
from core.split import VALID
from core.tensors import evaluation_targets
from core.text_sources import load_movielens

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared/data/ml-100k"


def left_padded_scorer(model):
    """Our evaluation feeds right-padded windows; the reference model expects left padding."""
    def score(inputs, lengths):
        width = inputs.shape[1]
        shift = (torch.arange(width)[None, :] - (width - lengths)[:, None]) % width  # (B, T)
        return model(torch.gather(inputs, 1, shift)).float()
    return score


VARIANTS = {"prefix": {"sample_mode": "prefix"},
            "all_positions overlap 0": {"sample_mode": "all_positions", "window_overlap": 0.0},
            "all_positions overlap 0.75": {"sample_mode": "all_positions", "window_overlap": 0.75}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument("--tuned-lr", type=float, default=0.003,
                        help="lr for all_positions' time-to-quality run (its windows hold ~20x the targets "
                             "of a prefix batch, so it takes ~20x fewer steps per epoch)")
    parser.add_argument("--out", default="bench/out/speed.json")
    args = parser.parse_args()
    config = build_config({"data": args.data, "max_seq_len": 20, "embed_dim": 64, "hidden_dim": 128,
                           "num_layers": 1, "dropout": 0.2, "batch_size": args.batch_size, "lr": args.lr,
                           "epochs": args.epochs, "patience": 0, "markov_blend": 0, "batch_by_length": False,
                           "ema_decay": 0, "ks": [5]})
    frame = load_movielens(args.data)
    out = {}

    began = time.perf_counter()
    train_set, val_set, n_items, _ = reference.prepare(frame[["user", "time", "item"]], config.max_seq_len)
    out["reference_prepare_seconds"] = time.perf_counter() - began
    began = time.perf_counter()
    data = prepare_data(config, interactions=frame)
    training_windows(data, config.max_seq_len, 0, config.window_overlap)
    prefix_samples(data, config.max_seq_len, 0)
    val_targets = evaluation_targets(data, VALID, config.max_seq_len, torch.device("cpu"))
    out["our_prepare_seconds"] = time.perf_counter() - began
    assert len(val_set) == len(val_targets) and n_items == data.n_items, "the two pipelines disagree on the targets"

    torch.manual_seed(config.seed)
    model = reference.NotebookLSTM(n_items, config.embed_dim, config.hidden_dim, config.num_layers, config.dropout)
    history = reference.train(model, train_set, val_set, args.epochs, args.batch_size, args.lr, seed=config.seed)
    out["reference_seconds_per_epoch"] = sum(h["train_seconds"] for h in history) / args.epochs
    out["reference_train_targets"] = len(train_set)
    began = time.perf_counter()
    reference_loop = reference.topk_metrics(model, val_set, k=5)
    out["reference_eval_seconds"] = time.perf_counter() - began
    began = time.perf_counter()
    out["reference_ndcg@5"] = evaluate(left_padded_scorer(model), val_targets, ks=(5,), exclude_seen=False,
                                       batch_size=1024)["ndcg@5"]
    out["our_eval_seconds"] = time.perf_counter() - began
    out["reference_loop_ndcg@5"] = reference_loop["ndcg@5"]
    print(f"reference: {out['reference_seconds_per_epoch']:.2f} s/epoch", flush=True)

    for mode, settings in VARIANTS.items():
        result = fit(build_config(dict(config.to_dict(), **settings)), data)
        out[f"{mode}_seconds_per_epoch"] = sum(h["train_seconds"] for h in result.history) / args.epochs
        out[f"{mode}_ndcg@5"] = result.final["val_ndcg@5"]
        print(f"{mode}: {out[f'{mode}_seconds_per_epoch']:.2f} s/epoch", flush=True)
    # time to quality: all_positions at its own lr, until it matches the reference's NDCG@5 after args.epochs
    tuned = fit(build_config(dict(config.to_dict(), **VARIANTS["all_positions overlap 0.75"], lr=args.tuned_lr,
                                  epochs=2 * args.epochs)), data)
    elapsed, reached = 0.0, None
    for row in tuned.history:
        elapsed += row["train_seconds"]
        if reached is None and row["val_ndcg@5"] >= out["reference_ndcg@5"]:
            reached = (row["epoch"], elapsed, row["val_ndcg@5"])
    out["tuned_all_positions"] = {"lr": args.tuned_lr, "reached": reached,
                                  "best_ndcg@5": max(r["val_ndcg@5"] for r in tuned.history)}
    targets = out["reference_train_targets"]
    rows = [("notebook reference", out["reference_seconds_per_epoch"], out["reference_ndcg@5"])] + [
        (f"ours, {mode}", out[f"{mode}_seconds_per_epoch"], out[f"{mode}_ndcg@5"]) for mode in VARIANTS]
    print(f"\n{date.today()}, {platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{targets} training targets, {len(val_targets)} validation targets; batch {args.batch_size}, lr {args.lr}, "
          f"{args.epochs} epochs")
    print("| implementation | s/epoch | targets/s | speed-up | val NDCG@5 |\n| --- | --- | --- | --- | --- |")
    for name, seconds, ndcg in rows:
        print(f"| {name} | {seconds:.2f} | {targets / seconds:,.0f} | "
              f"{out['reference_seconds_per_epoch'] / seconds:.1f}x | {ndcg:.4f} |")
    print(f"\ndata preparation: reference {out['reference_prepare_seconds']:.2f} s, ours "
          f"{out['our_prepare_seconds']:.2f} s ({out['reference_prepare_seconds'] / out['our_prepare_seconds']:.1f}x)")
    print(f"evaluation of {len(val_targets)} targets: reference top-5 loop {out['reference_eval_seconds']:.2f} s "
          f"({len(val_targets) / out['reference_eval_seconds']:,.0f}/s), ours full ranking {out['our_eval_seconds']:.2f} s "
          f"({len(val_targets) / out['our_eval_seconds']:,.0f}/s, "
          f"{out['reference_eval_seconds'] / out['our_eval_seconds']:.1f}x)")
    reference_time = out["reference_seconds_per_epoch"] * args.epochs
    if reached:
        print(f"time to the reference's NDCG@5 ({out['reference_ndcg@5']:.4f} after {args.epochs} epochs, "
              f"{reference_time:.0f} s of training): all_positions (overlap 0.75) at lr {args.tuned_lr} reached "
              f"{reached[2]:.4f} at epoch {reached[0]} after {reached[1]:.1f} s ({reference_time / reached[1]:.1f}x "
              f"faster); its best in {2 * args.epochs} epochs: {out['tuned_all_positions']['best_ndcg@5']:.4f}")
    else:
        print(f"all_positions at lr {args.tuned_lr} did not reach the reference's NDCG@5 in {2 * args.epochs} epochs "
              f"(best {out['tuned_all_positions']['best_ndcg@5']:.4f})")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(dict(out, date=str(date.today()), threads=torch.get_num_threads()), indent=1))


if __name__ == "__main__":
    main()
