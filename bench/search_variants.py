"""Search settings compared over searcher seeds: the same search run once per variant (a name and the flags
it adds) under each seed (paired: each seed runs every variant, interleaved, so that a change in machine
load hits all of them). Prints each search's trial-seconds, trial-epochs, best validation value and the base
config's, and per variant the medians and in how many searches the winner beat the base config.

    python bench/search_variants.py --variants "startup-10=--startup-trials 10" "startup-3=--startup-trials 3" \\
        --seeds 0 1 2 -- --config bench/configs/beauty.yaml --space bench/configs/beauty_space_sampled.yaml \\
        --samples 12 --set loss=sampled ...

The objective is read as best_val_ndcg@5 (the default metric). Outputs in
bench/out/searches/<variant>-seed<seed>-<time>/.
"""
from __future__ import annotations

import argparse
import os
import shlex
import statistics
import time
from datetime import date

from common import SEARCHES, base_value, run_search


def run(variant: str, flags: list[str], seed: int, extra: list[str]) -> dict:
    name = f"{variant}-seed{seed}-{int(time.time())}"
    ran = run_search(SEARCHES, name, [*extra, *flags, "--seed", str(seed), "--no-dashboard"])
    trials = ran.trials
    best = trials.loc[trials["best_val_ndcg@5"].idxmax()]
    return {"variant": variant, "seed": seed, "name": name, "wall_seconds": ran.wall_seconds,
            "trial_seconds": float(trials["wall_seconds"].sum()), "trial_epochs": int(trials["epochs_run"].sum()),
            "best": float(best["best_val_ndcg@5"]), "best_trial": int(best["trial"]),
            "base": base_value(SEARCHES / name / "summary.md")}


def parse_variant(text: str) -> tuple[str, list[str]]:
    name, sep, flags = text.partition("=")
    if not sep or not name:
        raise SystemExit(f"--variants: expected NAME=FLAGS, got {text!r}")
    return name, shlex.split(flags)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", required=True, metavar="NAME=FLAGS",
                        help="a name, =, and the flags this variant adds to every search, e.g. "
                             "'startup-3=--startup-trials 3'")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("extra", nargs="*", help="after --: the search's flags, e.g. -- --config FILE --samples 12")
    args = parser.parse_args()
    variants = dict(parse_variant(text) for text in args.variants)
    rows = []
    for seed in args.seeds:
        for variant, flags in variants.items():
            rows.append(run(variant, flags, seed, args.extra))
            print(rows[-1], flush=True)
    print(f"\n{date.today()}; {os.cpu_count()} CPUs; python -m search.run {' '.join(args.extra)}")
    print("| variant | searcher seed | trial-seconds | trial-epochs | best val NDCG@5 (trial) | base config | "
          "best / base |\n| --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['variant']} | {row['seed']} | {row['trial_seconds']:.0f} | {row['trial_epochs']} | "
              f"{row['best']:.4f} ({row['best_trial']}) | {row['base']:.4f} | {row['best'] / row['base']:.3f} |")
    for variant in variants:
        mine = [r for r in rows if r["variant"] == variant]
        beat = sum(r["best"] > r["base"] + 5e-5 for r in mine)  # the summary rounds the base's value to 5 digits
        print(f"| {variant} | median of {len(mine)} | {statistics.median(r['trial_seconds'] for r in mine):.0f} | "
              f"{statistics.median(r['trial_epochs'] for r in mine):.0f} | "
              f"{statistics.median(r['best'] for r in mine):.4f} | beaten in {beat} of {len(mine)} | "
              f"{statistics.median(r['best'] / r['base'] for r in mine):.3f} |")


if __name__ == "__main__":
    main()
