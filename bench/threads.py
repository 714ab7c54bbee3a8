"""Epoch time of one-config training beside a competing training process: torch's default threads against
`threads: auto`.

    python bench/threads.py [--epochs 2] [--repeats 1]

Each row is `python -m core.train` on the default synthetic data, timed by its own per-epoch train time,
alone or with a competitor: another `core.train` process on torch's default threads (what any other job
on the machine does). Prints a markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import torch
from common import ROOT

MODEL = ["--set", "embed_dim=64", "--set", "hidden_dim=128", "--set", "dropout=0.2",  # the published table's model
         "--set", "weight_decay=0", "--set", "embed_dropout=0",                     # (the defaults until 2026-12-01)
         "--set", "ema_decay=0"]


def train_seconds(threads: str, epochs: int) -> tuple[float, str]:
    """Seconds per training epoch of one core.train run, and the thread count it used."""
    command = [sys.executable, "-m", "core.train", "--set", f"epochs={epochs}", "--set", f"threads={threads}", *MODEL]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    used = next((line.split()[1] for line in result.stderr.splitlines() if line.startswith("threads:")), "?")
    return json.loads(result.stdout.strip().splitlines()[-1])["train_seconds_per_epoch"], used


def start_competitor() -> subprocess.Popen:
    """Another training process on torch's default threads, running until stopped."""
    default = torch.get_num_threads()
    command = [sys.executable, "-m", "core.train", "--quiet", "--set", "epochs=1000", "--set", f"threads={default}", *MODEL]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(15)  # past its data preparation, into training
    return process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    default = str(torch.get_num_threads())
    cases = [("torch's default threads (before)", default), ("threads: auto (now)", "auto")]
    rows = []
    for competing in (False, True):
        competitor = start_competitor() if competing else None
        try:
            for _ in range(args.repeats):
                for label, threads in cases:
                    seconds, used = train_seconds(threads, args.epochs)
                    rows.append((label, competing, used, seconds, os.getloadavg()[0]))
                    print(rows[-1], file=sys.stderr, flush=True)
        finally:
            if competitor is not None:
                competitor.terminate()
                competitor.wait()
    print(f"\n{os.cpu_count()} cores, load average before: see rows; {args.epochs} epochs per run\n")
    print("| threads | competitor | threads used | train s/epoch | 1-min load after |")
    print("| --- | --- | --- | --- | --- |")
    for label, competing, used, seconds, load in rows:
        print(f"| {label} | {'yes' if competing else 'no'} | {used} | {seconds:.1f} | {load:.1f} |")


if __name__ == "__main__":
    main()
