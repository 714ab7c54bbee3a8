"""Test quality of one config over seeds, beside the Markov chain: the issue's protocol in one command.

    python bench/quality.py TAG [--config FILE] [--seeds 3] [--jobs 2] [--set KEY=VALUE ...] [--validation]

Runs `python -m core.train --test --quiet` once per seed (each one thread; --jobs at a time): with
`patience` and `markov_blend: auto`, each seed first trains on the training period to choose its epochs and
blend weight on validation, then trains on training + validation and is evaluated once on test. Appends
every seed's JSON line to bench/out/quality/TAG.jsonl and prints one markdown row: test NDCG@5 mean ± std,
the same models' LSTM alone (plain scores), Markov and most popular on the same targets (every one ranked
under the model's seen-item rule), the ratio to Markov, what validation chose (epochs, blend weight, seen
items), seconds per training epoch and per evaluation (one thread each, so load from other jobs shows).
Then the comparison with the baselines (core.comparison): the paired margin of the seed-averaged per-target
NDCG@5 over each baseline with its 95% interval, NDCG@5 by slice (both from each seed's
bench/out/quality/TAG-seedS.npz), and coverage, popularity and long-tail share (the model's: mean over seeds).

--validation: a screen that never looks at test: `python -m core.train --quiet` per seed, the row gives the
best epoch's validation NDCG@5 (what a config is chosen on) and the epoch it peaked at.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from common import ROOT

from core.comparison import summarise_targets
from search.comparison_report import comparison_markdown

OUT = ROOT / "bench" / "out" / "quality"


def run_seed(seed: int, args: argparse.Namespace) -> dict:
    command = [sys.executable, "-m", "core.train", "--quiet", "--set", "threads=1", "--set", f"seed={seed}"]
    if not args.validation:
        command += ["--test", "--per-target", str(OUT / f"{args.tag}-seed{seed}.npz")]
    if args.config:
        command += ["--config", args.config]
    for pair in args.overrides:
        command += ["--set", pair]
    OUT.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        last = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        raise SystemExit(f"seed {seed} failed: {last[0]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def mean_std(values: list[float]) -> str:
    spread = f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else ""
    return f"{statistics.fmean(values):.4f}{spread}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tag", help="name of this measurement (file bench/out/quality/TAG.jsonl)")
    parser.add_argument("--config", help="YAML config, e.g. bench/configs/beauty.yaml")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2, help="seeds trained at once (one thread each)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--validation", action="store_true", help="validation metrics only (no training for test)")
    parser.add_argument("--report", action="store_true", help="train nothing: print the row of TAG's last --seeds runs")
    args = parser.parse_args()
    if args.report:
        lines = (OUT / f"{args.tag}.jsonl").read_text().splitlines()[-args.seeds:]
        runs = [json.loads(line) for line in lines]
    else:
        with ThreadPoolExecutor(args.jobs) as pool:
            runs = list(pool.map(lambda seed: run_seed(seed, args), range(args.seeds)))
        OUT.mkdir(parents=True, exist_ok=True)
        with open(OUT / f"{args.tag}.jsonl", "a") as out:
            for run in runs:
                out.write(json.dumps(run) + "\n")
    model = [r["model"]["ndcg@5"] for r in runs]
    alone = [r["model"].get("lstm_ndcg@5", r["model"]["ndcg@5"]) for r in runs]
    markov, popular = runs[0]["markov"]["ndcg@5"], runs[0]["most_popular"]["ndcg@5"]
    split, epochs = ("validation", "best_epoch") if args.validation else ("test", "epochs")
    print(f"| run | {split} NDCG@5 | LSTM alone | Markov | most popular | model / Markov | epochs | markov_blend | seen items | train s/epoch | eval s/epoch |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    print(f"| {args.tag} | {mean_std(model)} | {mean_std(alone)} | {markov:.4f} | {popular:.4f} | "
          f"{statistics.fmean(model) / markov:.2f}x | {', '.join(str(r[epochs]) for r in runs)} | "
          f"{', '.join(str(r['markov_blend']) for r in runs)} | {', '.join(r.get('seen_items', '') for r in runs)} | "
          f"{statistics.fmean(r['train_seconds_per_epoch'] for r in runs):.1f} | "
          f"{statistics.fmean(r.get('eval_seconds_per_epoch', float('nan')) for r in runs):.2f} |")
    if not args.validation and all("comparison" in r and (OUT / f"{args.tag}-seed{i}.npz").is_file()
                                   for i, r in enumerate(runs)):
        print("\n" + "\n".join(comparison_markdown(seeds_comparison(runs, args.tag))))


def seeds_comparison(runs: list[dict], tag: str) -> dict:
    """The runs' comparisons as one: paired margins and slices of the seed-averaged per-target NDCG (from the
    seeds' .npz files), catalogue figures of the model averaged over seeds (the baselines' are the same in all)."""
    arrays = [np.load(OUT / f"{tag}-seed{seed}.npz") for seed in range(len(runs))]
    per_target = {name: arrays[0][name] for name in arrays[0].files}
    per_target["model"] = np.mean([a["model"] for a in arrays], axis=0)
    first = runs[0]["comparison"]
    merged = {**first, **summarise_targets(per_target, len(runs), k=first["top_k"])}
    merged["catalogue"] = dict(first["catalogue"], model={
        key: statistics.fmean(r["comparison"]["catalogue"]["model"][key] for r in runs)
        for key in first["catalogue"]["model"]})
    merged["catalogue_of"] = f"mean over {len(runs)} seeds" if len(runs) > 1 else "one seed"
    return merged


if __name__ == "__main__":
    main()
