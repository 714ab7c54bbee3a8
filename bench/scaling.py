"""How cost grows with the log and the catalogue: synthetic logs of ~1e5, 1e6 and 5e6 events.

    python bench/scaling.py [--sizes 100000:300 1000000:3000 5000000:30000] [--steps 30] [--profile]

Each size runs in its own process (so peak memory is its own): generating the log, preparing the data
(interactions -> sorted, encoded, split arrays), building the training windows, then timing `--steps`
optimiser steps and one evaluation batch, from which seconds per epoch are extrapolated (a full epoch
of the largest size takes far too long on 2 cores to run whole). Writes bench/out/scaling.json and
bench/out/scaling.png; --profile prints where the time of the largest size goes.
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from common import child_env

CUSTOMER_EVENTS = 9.05  # mean events per synthetic customer (measured on the default log)
MODEL = {"embed_dim": 64, "hidden_dim": 128, "dropout": 0.2}  # the model of the published table (defaults until 12-01)


def measure(events: int, items: int, steps: int, profile: bool) -> dict:
    import torch

    from core.config import build_config
    from core.data import prepare_data
    from core.epoch import train_epoch
    from core.evaluation import evaluate, model_scorer
    from core.model import build_model
    from core.sources import load_synthetic
    from core.split import TRAIN, VALID
    from core.tensors import (
        EvalTargets,
        TrainingSamples,
        evaluation_targets,
        training_samples,
    )

    config = build_config({"synthetic_customers": round(events / CUSTOMER_EVENTS), "synthetic_items": items,
                           **MODEL})
    profiler = cProfile.Profile() if profile else None
    warm_up_torch()
    out = {"target_events": events, "target_items": items}
    began = time.perf_counter()
    frame = load_synthetic(config.synthetic_customers, config.synthetic_items, config.synthetic_seed)
    out["generate_seconds"] = time.perf_counter() - began
    out["peak_mb_after_generate"] = peak_rss_mb()
    if profiler:
        profiler.enable()
    began = time.perf_counter()
    data = prepare_data(config, interactions=frame)
    out["prepare_seconds"] = time.perf_counter() - began
    began = time.perf_counter()
    samples = training_samples(data, "all_positions", config.max_seq_len, TRAIN, 0.0, torch.device("cpu"))
    starts, lengths = samples.starts, samples.lengths
    out["windows_seconds"] = time.perf_counter() - began
    out["peak_mb_after_prepare"] = peak_rss_mb()
    out.update(events=len(data.items), items=data.n_items, customers=len(data.user_ids),
               train_targets=int(lengths.sum()), windows=len(starts))
    del frame
    if profiler:
        profiler.disable()
        print("## data preparation (cProfile, by own time)")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(12)

    torch.manual_seed(0)
    model = build_model(data.n_items, config.embed_dim, config.hidden_dim, config.num_layers, config.dropout)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    sample = torch.randperm(len(starts), generator=torch.Generator().manual_seed(0))[:(steps + 1) * config.batch_size]

    def train_steps(rows: torch.Tensor) -> None:
        subset = TrainingSamples(items=samples.items, starts=starts[rows], lengths=lengths[rows],
                                 loss_from=samples.loss_from[rows], mode="all_positions")
        train_epoch(model, optimizer, subset, batch_size=config.batch_size, generator=torch.Generator().manual_seed(0))

    train_steps(sample[:config.batch_size])  # warm-up: first-call allocations stay out of the timing
    began = time.perf_counter()
    train_steps(sample[config.batch_size:])
    seconds_per_step = (time.perf_counter() - began) / steps
    out["seconds_per_step"] = seconds_per_step
    out["seconds_per_epoch"] = seconds_per_step * len(starts) / config.batch_size

    targets = evaluation_targets(data, VALID, config.max_seq_len, torch.device("cpu"))
    batch = min(len(targets), 4 * config.eval_batch_size)
    # a random subset, kept in the targets' (length) order: the first batches would be the shortest histories
    pick = torch.randperm(len(targets), generator=torch.Generator().manual_seed(0))[:batch].sort().values
    subset = EvalTargets(items=targets.items, starts=targets.starts[pick], lengths=targets.lengths[pick],
                         history_first=targets.history_first[pick])
    began = time.perf_counter()
    evaluate(model_scorer(model), subset, ks=config.ks, exclude_seen=True, batch_size=config.eval_batch_size)
    out["eval_seconds"] = (time.perf_counter() - began) * len(targets) / batch
    out["val_targets"] = len(targets)
    if profile:
        with torch.profiler.profile() as torch_profile:
            train_steps(sample[:5 * config.batch_size])
        print("## 5 training steps (torch.profiler, by own CPU time)")
        print(torch_profile.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def warm_up_torch() -> None:
    """Import what torch loads lazily on first use (Adam pulls in torch._dynamo), outside every timing."""
    import torch

    layer = torch.nn.Linear(2, 2)
    torch.optim.Adam(layer.parameters()).step()


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    events = [r["events"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for ax, keys, label in ((axes[0], ("generate_seconds", "prepare_seconds", "windows_seconds"), "seconds"),
                            (axes[1], ("seconds_per_epoch", "eval_seconds"), "seconds"),
                            (axes[2], ("peak_mb_after_generate", "peak_mb_after_prepare", "peak_rss_mb"), "MB")):
        for key in keys:
            ax.plot(events, [r[key] for r in rows], marker="o", label=key.replace("_", " "))
        ax.set(xscale="log", yscale="log", xlabel="events", ylabel=label)
        ax.legend(fontsize=8)
    axes[0].set_title("data")
    axes[1].set_title("training epoch / evaluation (extrapolated)")
    axes[2].set_title("peak memory")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["100000:300", "1000000:3000", "5000000:30000"],
                        help="events:items pairs")
    parser.add_argument("--steps", type=int, default=30, help="optimiser steps timed per size")
    parser.add_argument("--profile", action="store_true", help="profile the largest size")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        events, items = map(int, args.child.split(":"))
        print(json.dumps(measure(events, items, args.steps, args.profile)))
        return
    rows = []
    for index, size in enumerate(args.sizes):
        profile = args.profile and index == len(args.sizes) - 1
        command = [sys.executable, __file__, "--child", size, "--steps", str(args.steps)] + (["--profile"] * profile)
        result = subprocess.run(command, capture_output=True, text=True, check=True,
                                env=child_env())
        lines = result.stdout.strip().splitlines()
        if profile:
            print("\n".join(lines[:-1]))
        rows.append(json.loads(lines[-1]))
        print(f"{size}: {rows[-1]}", file=sys.stderr, flush=True)
    print(f"\n{date.today()}, {os.cpu_count()} CPUs, default model (embed 64, hidden 128, batch 64, max_seq_len 20)")
    print("| events | customers | items | generate (s) | prepare (s) | windows (s) | s/epoch (extrapolated) | "
          "evaluation (s) | peak memory (MB): after generating / preparing / in all |\n" + "| --- " * 9 + "|")
    for r in rows:
        print(f"| {r['events']:,} | {r['customers']:,} | {r['items']:,} | {r['generate_seconds']:.2f} | "
              f"{r['prepare_seconds']:.2f} | {r['windows_seconds']:.2f} | {r['seconds_per_epoch']:,.1f} | "
              f"{r['eval_seconds']:.2f} | {r['peak_mb_after_generate']:,.0f} / {r['peak_mb_after_prepare']:,.0f} / "
              f"{r['peak_rss_mb']:,.0f} |")
    out = Path(__file__).resolve().parent / "out"
    out.mkdir(exist_ok=True)
    (out / "scaling.json").write_text(json.dumps({"date": str(date.today()), "rows": rows}, indent=1))
    plot(rows, out / "scaling.png")


if __name__ == "__main__":
    main()
