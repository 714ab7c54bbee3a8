"""GPU figures in one command (a few minutes on one GPU): training throughput in fp32 and bf16, one trial alone
against four packed on one GPU (as a search runs them at 0.25 GPU each), and the default search's wall time.

    python bench/gpu.py                     # everything; JSON and a markdown report in bench/out/gpu/
    python bench/gpu.py --skip-search       # without the Ray search (e.g. where Ray is not installed)

Throughput counts training targets (positions with a loss) per second, the first epoch (CUDA warm-up)
left out. Validation scores are always computed in fp32 (core.evaluation.model_scorer).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from common import ROOT, run_search

SIZES = {"default": {"synthetic_customers": 3000}, "30k-customers": {"synthetic_customers": 30000,
                                                                     "synthetic_items": 3000}}


def train_once(size: str, bf16: bool, epochs: int, device: str = "cuda") -> dict:
    """Train the default config on a synthetic log; seconds per epoch after the first, targets/s, val NDCG@5."""

    from core.config import build_config
    from core.data import prepare_data
    from core.fit import fit
    from core.samples import training_windows
    from core.split import TRAIN

    config = build_config({**SIZES[size], "epochs": epochs, "patience": 0, "markov_blend": 0, "batch_by_length": False,
                           "ema_decay": 0, "bf16": bf16, "device": device})
    data = prepare_data(config)
    _, lengths, loss_from = training_windows(data, config.max_seq_len, TRAIN, config.window_overlap)
    targets = int((lengths - loss_from).sum())
    result = fit(config, data)
    seconds = [row["train_seconds"] for row in result.history[1:]]
    per_epoch = sum(seconds) / len(seconds)
    return {"size": size, "bf16": bf16, "device": device, "seconds_per_epoch": per_epoch,
            "targets_per_epoch": targets, "targets_per_second": targets / per_epoch,
            "val_ndcg@5": result.final["val_ndcg@5"], "eval_seconds": result.final["eval_seconds"]}


def packed(workers: int, epochs: int) -> dict:
    """`workers` processes training the default config at once on the one GPU; wall time and total targets/s."""
    command = [sys.executable, __file__, "--worker", "default", "--epochs", str(epochs)]
    began = time.perf_counter()
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(workers)]
    outputs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in processes]
    wall = time.perf_counter() - began
    return {"workers": workers, "wall_seconds": wall,
            "total_targets_per_second": sum(o["targets_per_second"] for o in outputs),
            "seconds_per_epoch_each": sum(o["seconds_per_epoch"] for o in outputs) / workers}


def default_search(samples: int, out: Path) -> dict:
    """python -m search.run on the embedded data with 4 trials per GPU; wall time and what it found."""
    storage = out / "searches"
    name = f"gpu-default-{int(time.time())}"
    import pandas as pd

    from search.plan import load_plan

    flags = ["--samples", str(samples), "--no-dashboard", "--gpus-per-trial", "0.25", "--cpus-per-trial", "2"]
    ran = run_search(storage, name, flags, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    trials, best, used = ran.trials, None, None
    if trials is not None and len(trials):
        best = trials["best_val_ndcg@5"].max()
        best = None if pd.isna(best) else round(float(best), 4)  # as summary.md shows it
        max_epochs = load_plan(storage / name).search["search"]["max_epochs"]
        used = f"{int(trials['epochs_run'].sum())} of {samples * max_epochs}"
    return {"samples": samples, "returncode": ran.returncode, "wall_seconds": ran.wall_seconds,
            "best_val_ndcg@5": best, "trial_epochs": used,
            "stderr_tail": ran.stderr[-1500:] if ran.returncode else ""}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=4, help="epochs per throughput run (the first is warm-up)")
    parser.add_argument("--search-samples", type=int, default=50)
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--out", default=os.environ.get("OUT", str(ROOT / "bench" / "out" / "gpu")))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:  # one packed process: print its figures as JSON
        print(json.dumps(train_once(args.worker, True, args.epochs)))
        return 0
    import torch
    if not torch.cuda.is_available():
        print("no GPU visible to torch: nothing to measure", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"date": str(date.today()), "machine": platform.node(), "torch": torch.__version__,
              "gpu": torch.cuda.get_device_name(), "cpus": os.cpu_count(), "throughput": []}
    for size in SIZES:
        for bf16 in (False, True):
            report["throughput"].append(train_once(size, bf16, args.epochs))
            print(json.dumps(report["throughput"][-1]), flush=True)
    report["packing"] = [packed(1, args.epochs + 2), packed(4, args.epochs + 2)]
    print(json.dumps(report["packing"]), flush=True)
    if not args.skip_search:
        report["search"] = default_search(args.search_samples, out)
        print(json.dumps(report["search"]), flush=True)
    (out / "gpu.json").write_text(json.dumps(report, indent=2))
    (out / "gpu.md").write_text(markdown(report))
    print(markdown(report))
    return 0


def markdown(report: dict) -> str:
    lines = [f"{report['date']}, {report['gpu']}, {report['cpus']} CPUs, torch {report['torch']}", "",
             "| data | precision | s/epoch | targets/s | val NDCG@5 | eval s |", "| --- | --- | --- | --- | --- | --- |"]
    for row in report["throughput"]:
        lines.append(f"| {row['size']} | {'bf16' if row['bf16'] else 'fp32'} | {row['seconds_per_epoch']:.2f} | "
                     f"{row['targets_per_second']:,.0f} | {row['val_ndcg@5']:.4f} | {row['eval_seconds']:.2f} |")
    one, four = report["packing"]
    lines += ["", "| trials on one GPU | wall s | s/epoch each | total targets/s |", "| --- | --- | --- | --- |",
              f"| 1 | {one['wall_seconds']:.1f} | {one['seconds_per_epoch_each']:.2f} | {one['total_targets_per_second']:,.0f} |",
              f"| 4 | {four['wall_seconds']:.1f} | {four['seconds_per_epoch_each']:.2f} | {four['total_targets_per_second']:,.0f} |",
              f"\n4 packed: {four['total_targets_per_second'] / one['total_targets_per_second']:.2f}x the throughput of 1."]
    if "search" in report:
        s = report["search"]
        lines.append(f"\nDefault search, {s['samples']} samples, 0.25 GPU + 2 CPUs per trial: {s['wall_seconds']:.0f} s "
                     f"wall, best val NDCG@5 {s['best_val_ndcg@5']}, trial-epochs {s['trial_epochs']} "
                     f"(exit {s['returncode']}).")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
