"""Validation scoring with the targets in the log's order against ordered by history length (what
core.tensors.evaluation_targets does): seconds per pass, and whether the metrics agree (hit rates
exactly, the other means to 1e-5: float32 sums in another order).

    python bench/eval_order.py [--data synthetic] [--repeats 3]

One torch thread, as a search trial has; untrained models of the default space's sizes (the LSTM's work
does not depend on the weights). A batch is padded to its longest history, so the gain is largest where
most histories are shorter than max_seq_len.
"""
from __future__ import annotations

import argparse
import time
from datetime import date

import torch

from core.config import build_config
from core.data import prepare_data
from core.evaluation import evaluate, model_scorer
from core.model import build_model
from core.split import VALID
from core.tensors import EvalTargets, evaluation_targets

SIZES = [(64, 64, 1), (128, 128, 1), (128, 128, 2), (128, 256, 2)]  # (embed_dim, hidden_dim, num_layers)


def in_log_order(targets: EvalTargets) -> EvalTargets:
    """The same targets in the log's order (by position, as core.samples.eval_targets yields them)."""
    order = torch.argsort(targets.starts + targets.lengths, stable=True)
    return EvalTargets(items=targets.items, starts=targets.starts[order], lengths=targets.lengths[order],
                       history_first=targets.history_first[order])


def seconds(model, targets: EvalTargets, config, repeats: int) -> tuple[float, dict[str, float]]:
    best, metrics = float("inf"), {}
    for _ in range(repeats):
        began = time.perf_counter()
        metrics = evaluate(model_scorer(model), targets, ks=config.ks, exclude_seen=config.exclude_seen,
                           batch_size=config.eval_batch_size)
        best = min(best, time.perf_counter() - began)
    return best, metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("--repeats", type=int, default=3, help="passes per measurement; the fastest counts")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = build_config({"data": args.data})
    data = prepare_data(config)
    by_length = evaluation_targets(data, VALID, config.max_seq_len, torch.device("cpu"))
    by_log = in_log_order(by_length)
    mean_length = float(by_length.lengths.float().mean())
    print(f"{date.today()}; {args.data}; {len(by_length)} validation targets, mean history {mean_length:.1f} of "
          f"max_seq_len {config.max_seq_len}; eval_batch_size {config.eval_batch_size}; 1 thread\n")
    print("| embed / hidden / layers | log order (s) | by length (s) | speed-up | same metrics |\n| --- | --- | --- | --- | --- |")
    for embed, hidden, layers in SIZES:
        torch.manual_seed(0)
        model = build_model(data.n_items, embed, hidden, layers, 0.2)
        before, plain = seconds(model, by_log, config, args.repeats)
        after, ordered = seconds(model, by_length, config, args.repeats)
        # hit rates are exact counts; the other means differ only by float32 summation order
        same = all(plain[name] == ordered[name] if name.startswith("hr") else
                   abs(plain[name] - ordered[name]) <= 1e-5 * abs(plain[name]) for name in plain)
        print(f"| {embed} / {hidden} / {layers} | {before:.3f} | {after:.3f} | {before / after:.1f}x | {same} |")


if __name__ == "__main__":
    main()
