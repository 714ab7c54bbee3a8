"""ASHA schedules compared on the learning curves of one search whose trials all ran to their end.

    python bench/asha_replay.py bench/out/searches/<fifo-search> [--concurrency 2] [--schedules 2/3 4/3 6/3 120s/3]
        [--trials 12] [--orders 20]

Run the search once with `--scheduler fifo` (every trial trains until its patience or the epoch cap ends it),
then replay its trials through Ray's own ASHA scheduler under several (grace period / reduction factor)
schedules: trials start in the order they did, `--concurrency` at a time, each epoch taking the seconds it
took; when ASHA stops a trial, its slot takes the next one. Printed per schedule: trial-seconds and
trial-epochs used, the simulated wall time, the best validation value reached, and whether the search's best
trial survived. A schedule `120s/3` sets its milestones in trial-seconds instead of epochs (grace period 120 s
of training and validation; max_t the longest trial's seconds). `--trials N` replays the first N trials only
(what an N-sample search of the same searcher would have proposed). A rung's first arrival always goes on,
so the order in which trials reach a rung decides early cuts: `--orders K` replays each schedule K times,
every trial's and every epoch's seconds jittered by +-10% after the first, and prints medians and how often
the best trial was kept. The proposals are held fixed (TPE saw full curves in the FIFO run; a real ASHA run
tells TPE the values of the trials it cuts, and on Beauty that steered it elsewhere: bench/HISTORY.md); what
is compared is which trials each schedule lets show their peak.
"""
from __future__ import annotations

import argparse
import heapq
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler


def curves(folder: Path, metric: str) -> list[pd.DataFrame]:
    """Each trial's per-epoch results (epoch, metric, seconds), in the order the trials started."""
    out = []
    for path in folder.glob("*/result.json"):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if not rows:  # a trial that had not finished an epoch
            continue
        frame = pd.DataFrame(rows).drop_duplicates("training_iteration", keep="last")
        frame["started"] = frame["timestamp"].iloc[0] - frame["time_this_iter_s"].iloc[0]
        out.append(frame[["training_iteration", metric, "time_this_iter_s", "started"]])
    return sorted(out, key=lambda f: f["started"].iloc[0])


def jittered(trials: list[pd.DataFrame], seed: int, spread: float = 0.1) -> list[pd.DataFrame]:
    """The trials with every epoch's seconds scaled by a seeded factor in [1 - spread, 1 + spread], times one
    per trial in the same range (a trial runs faster or slower as a whole from one run to the next: trial 2
    of the Beauty search was 7% faster than the base config in one run and 1.5% slower in another): another
    order of arrival at the rungs, which decides ASHA's early cuts (a rung's first arrival always goes on)."""
    rng = np.random.default_rng(seed)
    return [frame.assign(time_this_iter_s=frame["time_this_iter_s"] * rng.uniform(1 - spread, 1 + spread)
                         * rng.uniform(1 - spread, 1 + spread, len(frame)))
            for frame in trials]


def replay(trials: list[pd.DataFrame], metric: str, grace: float, factor: float, max_t: float,
           concurrency: int, time_attr: str = "training_iteration") -> dict[str, float]:
    """Trials through Ray's ASHA, `concurrency` at a time, each epoch taking its recorded seconds; milestones
    in epochs (time_attr training_iteration) or in a trial's seconds so far (time_total_s)."""
    asha = AsyncHyperBandScheduler(metric=metric, mode="max", max_t=max_t, grace_period=grace,
                                   reduction_factor=factor, time_attr=time_attr)
    pending, running, seconds, epochs, best = list(enumerate(trials)), [], 0.0, 0, {}
    totals = [frame["time_this_iter_s"].cumsum() for frame in trials]  # each trial's seconds so far
    clock = 0.0

    def start(now: float) -> None:
        index, frame = pending.pop(0)
        trial = SimpleNamespace(trial_id=str(index), storage=None, path=None)
        asha.on_trial_add(None, trial)
        heapq.heappush(running, (now + frame["time_this_iter_s"].iloc[0], index, 0, trial))

    while pending and len(running) < concurrency:
        start(clock)
    while running:
        clock, index, row, trial = heapq.heappop(running)
        frame = trials[index]
        result = {"training_iteration": int(frame["training_iteration"].iloc[row]),
                  "time_total_s": float(totals[index].iloc[row]),
                  metric: float(frame[metric].iloc[row])}
        seconds += float(frame["time_this_iter_s"].iloc[row])
        epochs += 1
        best[index] = max(best.get(index, float("-inf")), result[metric])
        last = row + 1 == len(frame)
        if asha.on_trial_result(None, trial, result) == TrialScheduler.STOP or last:
            asha.on_trial_complete(None, trial, result)
            if pending:
                start(clock)
        else:
            heapq.heappush(running, (clock + frame["time_this_iter_s"].iloc[row + 1], index, row + 1, trial))
    leader = max(range(len(trials)), key=lambda i: trials[i][metric].max())
    return {"trial_seconds": seconds, "trial_epochs": epochs, "wall_seconds": clock, "best": max(best.values()),
            "kept_best": best.get(leader, 0.0) == trials[leader][metric].max()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("search", type=Path, help="a search folder run with --scheduler fifo")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--metric", default="val_ndcg@5")
    parser.add_argument("--max-t", type=int, default=None, help="ASHA's max_t (default: the longest trial)")
    parser.add_argument("--schedules", nargs="+", default=["2/3", "1/4", "4/3", "6/3", "3/2", "8/2"],
                        help="grace_period/reduction_factor pairs; a grace period ending in s is in trial-seconds")
    parser.add_argument("--trials", type=int, help="replay the first N trials only (default: all)")
    parser.add_argument("--orders", type=int, default=1,
                        help="replay each schedule this many times, every trial's and epoch's seconds jittered "
                             "by +-10%% (seeded) after the first, and report medians and how often the best trial "
                             "was kept")
    args = parser.parse_args()
    trials = curves(args.search, args.metric)[:args.trials]
    max_t = args.max_t or max(int(f["training_iteration"].max()) for f in trials)
    max_s = max(float(f["time_this_iter_s"].sum()) for f in trials)
    fifo = replay(trials, args.metric, max_t, 2, max_t, args.concurrency)  # a grace period of max_t stops nothing
    peaks = [int(f["training_iteration"].iloc[f[args.metric].argmax()]) for f in trials]
    print(f"{args.search.name}: {len(trials)} trials, peak epochs {sorted(peaks)}, {args.concurrency} at a time, "
          f"{args.orders} order(s) of arrival")
    print("| schedule | trial-seconds | share of FIFO | trial-epochs | simulated wall (s) | best val "
          "| best trial kept |\n| --- | --- | --- | --- | --- | --- | --- |")
    versions = [trials] + [jittered(trials, seed) for seed in range(1, args.orders)]

    def asha(schedule: str, version: list[pd.DataFrame]) -> dict[str, float]:
        grace, factor = schedule.split("/")
        if grace.endswith("s"):
            return replay(version, args.metric, float(grace[:-1]), float(factor), max_s, args.concurrency,
                          time_attr="time_total_s")
        return replay(version, args.metric, int(grace), float(factor), max_t, args.concurrency)

    def median_row(runs: list[dict[str, float]]) -> dict[str, float]:
        row = {key: float(np.median([run[key] for run in runs])) for key in ("trial_seconds", "trial_epochs",
                                                                          "wall_seconds", "best")}
        kept = sum(run["kept_best"] for run in runs)
        row["kept"] = ("yes" if kept else "no") if len(runs) == 1 else f"{kept} of {len(runs)}"
        return row

    rows = [("FIFO", median_row([fifo]))] + [(f"ASHA {s}", median_row([asha(s, v) for v in versions]))
                                             for s in args.schedules]
    for label, row in rows:
        print(f"| {label} | {row['trial_seconds']:.0f} | {row['trial_seconds'] / fifo['trial_seconds']:.0%} | "
              f"{row['trial_epochs']:.0f} | {row['wall_seconds']:.0f} | {row['best']:.4f} | {row['kept']} |")


if __name__ == "__main__":
    main()
