"""Warm start against a cold start after the log has grown: best-so-far by trial, both on one plot.

    python bench/warm_start.py [--earlier-samples 30] [--samples 20]

The earlier search runs on the synthetic log with 2,500 customers (the log "a month ago"); then two
searches on the grown log (3,000 customers): one cold, one with --warm-start from the earlier search.
Outputs in bench/out/searches/ and bench/out/warm_start.png.
"""
from __future__ import annotations

import argparse
import os
import time
from datetime import date

import matplotlib
import numpy as np
import pandas as pd
from common import ROOT, SEARCHES, run_search, without_ray_auth

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STORAGE = SEARCHES


def search(name: str, samples: int, *extra: str) -> tuple[pd.DataFrame, float]:
    ran = run_search(STORAGE, name, ["--samples", str(samples), "--no-dashboard", *extra], env=without_ray_auth())
    return ran.trials, ran.wall_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--earlier-samples", type=int, default=30)
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args()
    stamp = int(time.time())
    earlier = f"ws-earlier-{stamp}"
    search(earlier, args.earlier_samples, "--set", "synthetic_customers=2500")
    cold, cold_wall = search(f"ws-cold-{stamp}", args.samples)
    warm, warm_wall = search(f"ws-warm-{stamp}", args.samples, "--warm-start", str(STORAGE / earlier))
    curves = {}
    for label, trials in (("cold start", cold), ("warm start", warm)):
        curves[label] = np.fmax.accumulate(trials.sort_values("trial")["best_val_ndcg@5"].fillna(-1).to_numpy())
    target = curves["cold start"][-1]
    reached = {label: int(np.argmax(curve >= target)) + 1 if (curve >= target).any() else None
               for label, curve in curves.items()}
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, curve in curves.items():
        ax.step(np.arange(1, len(curve) + 1), curve, where="post", label=label)
    ax.axhline(target, color="grey", linestyle=":", label="cold start's best")
    ax.set(xlabel="trial", ylabel="best val NDCG@5 so far", title="Re-tuning after the log grew",
           ylim=(max(0, min(c[min(2, len(c) - 1)] for c in curves.values()) - 0.01), None))
    ax.legend()
    fig.tight_layout()
    fig.savefig(ROOT / "bench/out/warm_start.png", dpi=110)
    print(f"{date.today()}; {os.cpu_count()} CPUs; earlier search {args.earlier_samples} samples on 2,500 customers; "
          f"then {args.samples} samples on 3,000 customers")
    print("| search | best val NDCG@5 | trials to reach the cold search's best | wall (s) |\n| --- | --- | --- | --- |")
    for label, curve, wall in (("cold start", curves["cold start"], cold_wall),
                               ("warm start", curves["warm start"], warm_wall)):
        print(f"| {label} | {curve[-1]:.4f} | {reached[label]} | {wall:.0f} |")


if __name__ == "__main__":
    main()
