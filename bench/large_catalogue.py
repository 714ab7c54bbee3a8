"""Training time per epoch at large catalogues: the full softmax against the sampled losses, alternated.

    python bench/large_catalogue.py [--sizes 5000000:30000 900000:100000 1800000:1000000] [--batches 20]
                                    [--rounds 3] [--losses full sampled] [--epoch] [--set KEY=VALUE ...]
    python bench/large_catalogue.py --config bench/configs/beauty.yaml ...   # a real log instead of sizes

Each size (events:items of the synthetic log) runs in its own process, so its peak memory is its own. The
model and training are the defaults (or --set). Every loss trains its own copy of the same initial model;
`--rounds` times, each loss in turn trains `--batches` optimiser steps on windows drawn at random (after one
warm-up step each), so that load from other jobs falls on all of them alike. Seconds per batch are the
median over rounds; seconds per epoch are extrapolated from them (an epoch of the full softmax at 30K items
takes ~20 minutes on 2 cores). --epoch also trains one whole epoch with the last loss listed and times it;
--whole-epochs K then trains K rounds of one whole epoch per loss, alternated, and reports the median.
A sampled loss may name its item tables' updates (`sampled:dense`, `sampled:lazy`; otherwise the config's
`item_updates`). Peak memory is the process's maximum resident set (getrusage). Writes bench/out/large_catalogue.json.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from common import child_env

CUSTOMER_EVENTS = 9.05  # mean events per synthetic customer (bench/scaling.py)


def measure(log: str, losses: list[str], batches: int, rounds: int, epoch: bool,
            overrides: dict, threads: int, whole_epochs: int = 0) -> dict:
    import torch

    from core.baselines import item_counts
    from core.config import build_config, resolve_config
    from core.data import prepare_data
    from core.epoch import train_epoch
    from core.losses import build_loss
    from core.model import build_model
    from core.optim import build_optimizer, lazy_item_updates
    from core.sources import load_synthetic
    from core.split import TRAIN
    from core.tensors import TrainingSamples, training_samples

    torch.set_num_threads(threads)
    began = time.perf_counter()
    if log.endswith((".yaml", ".yml")):  # a config file naming a real log
        config = resolve_config(log, overrides)
        data = prepare_data(config)
    else:
        events, items = map(int, log.split(":"))
        config = build_config({"synthetic_customers": round(events / CUSTOMER_EVENTS), "synthetic_items": items,
                               **overrides})
        frame = load_synthetic(config.synthetic_customers, config.synthetic_items, config.synthetic_seed)
        data = prepare_data(config, interactions=frame)
        del frame
    out = {"events": len(data.items), "items": data.n_items, "customers": len(data.user_ids),
           "data_seconds": time.perf_counter() - began, "peak_mb_after_data": peak_rss_mb()}
    samples = training_samples(data, config.sample_mode, config.max_seq_len, TRAIN, config.window_overlap,
                               torch.device("cpu"))
    counts = item_counts(data, TRAIN)
    out.update(windows=len(samples), train_targets=samples.n_targets(),
               batches_per_epoch=-(-len(samples) // config.batch_size))
    runs = {}
    for name in losses:  # a loss, or a sampled loss and its item tables' updates: sampled:dense, sampled:lazy
        loss, _, item_updates = name.partition(":")
        lazy = loss != "full" and lazy_item_updates(item_updates or config.item_updates, data.n_items)
        torch.manual_seed(config.seed)
        model = build_model(data.n_items, config.embed_dim, config.hidden_dim, config.num_layers, config.dropout,
                            embed_dropout=config.embed_dropout)
        optimizer = build_optimizer(model, config.lr, config.weight_decay, sparse_items=lazy, fused=loss != "full")
        runs[name] = (model, optimizer, build_loss(loss, data.n_items, counts, config.negatives, config.sample_alpha,
                                                   config.gbce_t, torch.device("cpu")))
    draw = torch.Generator().manual_seed(0)

    def timed_epoch(loss: str, epoch_samples: TrainingSamples) -> float:
        """Seconds of one train_epoch over `epoch_samples` with this loss's model, optimiser and loss."""
        model, optimizer, loss_fn = runs[loss]
        began = time.perf_counter()
        train_epoch(model, optimizer, epoch_samples, batch_size=config.batch_size,
                    generator=torch.Generator().manual_seed(0), by_length=config.batch_by_length, loss=loss_fn)
        return time.perf_counter() - began

    def train_steps(loss: str, steps: int) -> float:
        rows = torch.randint(len(samples), (steps * config.batch_size,), generator=draw)
        subset = TrainingSamples(items=samples.items, starts=samples.starts[rows], lengths=samples.lengths[rows],
                                 loss_from=samples.loss_from[rows], mode=samples.mode)
        return timed_epoch(loss, subset) / steps

    for loss in losses:
        train_steps(loss, 1)  # warm-up: first-call allocations stay out of the timing
    per_batch = {loss: [] for loss in losses}
    for _ in range(rounds):
        for loss in losses:
            per_batch[loss].append(train_steps(loss, batches))
    for loss in losses:
        seconds = statistics.median(per_batch[loss])
        out[loss] = {"seconds_per_batch": seconds, "rounds": per_batch[loss],
                     "seconds_per_epoch_extrapolated": seconds * out["batches_per_epoch"]}
    if epoch:
        out[losses[-1]]["seconds_one_epoch"] = timed_epoch(losses[-1], samples)
    whole = {loss: [] for loss in losses}
    for _ in range(whole_epochs):  # whole epochs, as training runs them (batches by length), alternated
        for loss in losses:
            whole[loss].append(timed_epoch(loss, samples))
    for loss in losses:
        if whole[loss]:
            out[loss].update(seconds_whole_epoch=statistics.median(whole[loss]), whole_epochs=whole[loss])
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["5000000:30000", "900000:100000", "1800000:1000000"],
                        help="events:items pairs of the synthetic log")
    parser.add_argument("--config", help="a config file whose log is measured instead of --sizes")
    parser.add_argument("--losses", nargs="+", default=["full", "sampled"])
    parser.add_argument("--batches", type=int, default=20, help="optimiser steps timed per loss and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of alternation")
    parser.add_argument("--epoch", action="store_true", help="also train one whole epoch with the last loss")
    parser.add_argument("--whole-epochs", type=int, default=0,
                        help="then this many rounds of one whole epoch per loss, alternated (median reported)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: steadier on a shared machine)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    from core.config import parse_overrides
    overrides = parse_overrides(args.overrides)
    if args.child:
        print(json.dumps(measure(args.child, args.losses, args.batches, args.rounds, args.epoch, overrides,
                                 args.threads, args.whole_epochs)))
        return
    rows = []
    for size in [args.config] if args.config else args.sizes:
        command = [sys.executable, __file__, "--child", size, "--batches", str(args.batches), "--rounds",
                   str(args.rounds), "--threads", str(args.threads), "--losses", *args.losses]
        command += ["--epoch"] * args.epoch + ["--whole-epochs", str(args.whole_epochs)]
        command += [f"--set={pair}" for pair in args.overrides]
        result = subprocess.run(command, capture_output=True, text=True,
                                env=child_env())
        if result.returncode != 0:
            print(f"{size}: failed: {result.stderr.strip().splitlines()[-1:]}", file=sys.stderr, flush=True)
            continue
        rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
        print(f"{size}: {json.dumps(rows[-1])}", file=sys.stderr, flush=True)
    print(f"\n{date.today()}, {os.cpu_count()} CPUs, {args.threads} torch thread(s); losses "
          f"{', '.join(args.losses)}; {args.rounds} rounds x {args.batches} batches each, alternated; "
          f"settings {args.overrides or 'defaults'}")
    print("| events | items | windows (batches/epoch) | loss | s/batch (median) | s/epoch (extrapolated) | "
          "one epoch (s) | peak memory (MB) |\n" + "| --- " * 8 + "|")
    for r in rows:
        for loss in args.losses:
            m = r[loss]
            one = f"{m['seconds_one_epoch']:.0f}" if "seconds_one_epoch" in m else ""
            if "seconds_whole_epoch" in m:
                one = f"{m['seconds_whole_epoch']:.1f} (median of {len(m['whole_epochs'])})"
            print(f"| {r['events']:,} | {r['items']:,} | {r['windows']:,} ({r['batches_per_epoch']:,}) | {loss} | "
                  f"{m['seconds_per_batch']:.4f} | {m['seconds_per_epoch_extrapolated']:,.0f} | {one} | "
                  f"{r['peak_rss_mb']:,.0f} |")
        if len(args.losses) > 1:
            first = r[args.losses[0]]["seconds_per_batch"]
            whole = [r[name].get("seconds_whole_epoch") for name in (args.losses[0], loss)]
            ratio = f"{whole[0] / whole[1]:.2f}x" if all(whole) else ""
            print(f"| | | | {args.losses[0]} / {loss} | {first / r[loss]['seconds_per_batch']:.1f}x | | {ratio} | |")
    out = Path(__file__).resolve().parent / "out"
    out.mkdir(exist_ok=True)
    (out / "large_catalogue.json").write_text(json.dumps({"date": str(date.today()), "args": vars(args),
                                                          "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
