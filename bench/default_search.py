"""The README's default search, timed as a user runs it, several times: wall time, trial-epochs, epochs spent
after each trial's peak, best validation NDCG@5; today's defaults against the earlier ones in one run.

    python bench/default_search.py [--runs 3] [--variants patience no-patience] [-- extra search.run flags]

`patience`: the defaults (at most 30 epochs, patience 3). `no-patience`: the earlier defaults (at most 20
epochs, every trial runs until ASHA stops it or the cap). `random-batches`: the defaults with uniformly
random training batches instead of batches by length. `space-widened`: the defaults with the search space
widened upward where the range check pointed (bench/configs/space_widened.yaml). `no-keep-base`: the defaults
with ASHA free to stop the base config's trial, as before `keep_base`. Outputs in bench/out/searches/.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import date
from pathlib import Path

from common import ROOT, SEARCHES, base_value, run_search

VARIANTS = {"patience": [], "no-patience": ["--set", "patience=0", "--max-epochs", "20"],
            "random-batches": ["--set", "batch_by_length=false"],
            "space-widened": ["--space", str(ROOT / "bench" / "configs" / "space_widened.yaml")],
            "no-keep-base": ["--no-keep-base"]}


def run(variant: str, index: int, storage: Path, extra: list[str]) -> dict:
    name = f"default-{variant}-{int(time.time())}-{index}"
    ran = run_search(storage, name, ["--samples", "50", *VARIANTS[variant], *extra])
    trials, wall = ran.trials, ran.wall_seconds
    after_peak = (trials["epochs_run"] - trials["peak_epoch"]).clip(lower=0)
    return {"variant": variant, "wall_seconds": wall, "trial_epochs": int(trials["epochs_run"].sum()),
            "trial_seconds": float(trials["wall_seconds"].sum()),
            "after_peak": int(after_peak.sum()), "best": float(trials["best_val_ndcg@5"].max()),
            "base": base_value(storage / name / "summary.md"),
            "plateaued": int((trials["status"] == "plateaued").sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("extra", nargs="*", help="after --: flags for every search, e.g. -- --no-dashboard")
    args = parser.parse_args()
    storage = SEARCHES
    rows = []
    for index in range(args.runs):  # interleaved, so that a change in machine load hits both variants
        for variant in args.variants:
            rows.append(run(variant, index, storage, args.extra))
            print(rows[-1], flush=True)
    print(f"\n{date.today()}; {os.cpu_count()} CPUs; python -m search.run --samples 50 {' '.join(args.extra)}; "
          f"{args.runs} runs")
    print("| defaults | run | wall (s) | trial-epochs | trial-seconds | after the trial's peak | plateaued | "
          "best val NDCG@5 | base config's |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['variant']} | | {row['wall_seconds']:.0f} | {row['trial_epochs']} | "
              f"{row['trial_seconds']:.0f} | {row['after_peak']} | "
              f"{row['plateaued']} | {row['best']:.4f} | {row['base']:.4f} |")
    for variant in args.variants:
        mine = [r for r in rows if r["variant"] == variant]
        print(f"| {variant} | median | {statistics.median(r['wall_seconds'] for r in mine):.0f} | "
              f"{statistics.median(r['trial_epochs'] for r in mine):.0f} | "
              f"{statistics.median(r['trial_seconds'] for r in mine):.0f} | "
              f"{statistics.median(r['after_peak'] for r in mine):.0f} | | "
              f"{statistics.median(r['best'] for r in mine):.4f} | |")


if __name__ == "__main__":
    main()
