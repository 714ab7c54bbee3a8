"""Search efficiency: ASHA against FIFO (no early stopping), same samples, space and sampler seed.

    python bench/asha_vs_fifo.py [--samples 20] [--max-epochs 15] [--data synthetic ../shared/data/ml-100k]

Runs `python -m search.run` once per data set and scheduler (outputs in bench/out/searches/) and prints
trial-epochs used, wall time and the best validation NDCG@5 of each, with ASHA's share of FIFO's effort.
"""
from __future__ import annotations

import argparse
import os
from datetime import date
from pathlib import Path

from common import ROOT, SEARCHES, SHARED_DATA, run_search, without_ray_auth

DEFAULT_DATA = ["synthetic", str(SHARED_DATA / "ml-100k")]


def one_search(data: str, scheduler: str, args: argparse.Namespace, storage: Path) -> dict:
    space = Path(args.space)
    name = f"{Path(data).name}-{scheduler}-{args.samples}x{args.max_epochs}" + (
        f"-{space.stem}" if space.stem != "space" else "")
    if (storage / name).exists():
        raise SystemExit(f"{storage / name} exists: remove it to measure again")
    flags = ["--data", data, "--samples", str(args.samples), "--max-epochs", str(args.max_epochs), "--scheduler",
             scheduler, "--seed", str(args.seed), "--space", str(space), "--no-dashboard"]
    ran = run_search(storage, name, flags, env=without_ray_auth(), stderr=None)
    trials, wall = ran.trials, ran.wall_seconds
    return {"data": Path(data).name, "scheduler": scheduler, "trial_epochs": int(trials["epochs_run"].sum()),
            "wall_seconds": wall, "best": trials["best_val_ndcg@5"].max(),
            "stopped": int((trials["status"] == "early-stopped").sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--max-epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", nargs="+", default=DEFAULT_DATA)
    parser.add_argument("--space", default=str(ROOT / "configs/space.yaml"),
                        help="space file (its ASHA settings apply to the ASHA run)")
    parser.add_argument("--schedulers", nargs="+", default=["asha", "fifo"], choices=["asha", "fifo"])
    args = parser.parse_args()
    storage = SEARCHES
    rows = [one_search(data, scheduler, args, storage) for data in args.data for scheduler in args.schedulers]
    print(f"{date.today()}; {os.cpu_count()} CPUs; {args.samples} samples x at most {args.max_epochs} epochs, "
          f"seed {args.seed}, space {Path(args.space).relative_to(ROOT) if Path(args.space).is_relative_to(ROOT) else args.space}")
    print("| data | scheduler | trial-epochs | early-stopped | wall time (s) | best val NDCG@5 |\n"
          "| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['data']} | {row['scheduler']} | {row['trial_epochs']} | {row['stopped']} | "
              f"{row['wall_seconds']:.0f} | {row['best']:.4f} |")
    for asha, fifo in zip(rows[::2], rows[1::2]) if args.schedulers == ["asha", "fifo"] else []:
        print(f"{asha['data']}: ASHA used {asha['trial_epochs'] / fifo['trial_epochs']:.0%} of FIFO's trial-epochs, "
              f"{asha['wall_seconds'] / fifo['wall_seconds']:.0%} of its wall time; best NDCG@5 "
              f"{asha['best'] / fifo['best'] - 1:+.1%} against FIFO's")


if __name__ == "__main__":
    main()
