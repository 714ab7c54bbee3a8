"""Seconds of one validation as a search trial runs it (every blend weight, the loss), this checkout against another.

    python bench/validation_time.py --config bench/configs/beauty.yaml [--baseline /tmp/before] [--repeats 3]
                                    [--threads 1] [--set KEY=VALUE ...]

The model is untrained, with the config's sizes and the Markov blend's tables (the cost of ranking does not
depend on the weights). Each measurement is one process (`python bench/validation_time.py --child`), this
checkout and --baseline (e.g. `git worktree add /tmp/before COMMIT`) alternated, --repeats times each; the
metrics of both must agree exactly. Writes bench/out/validation_time.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from common import ROOT

OUT = Path(__file__).resolve().parent / "out"


def measure(config_path: str, pairs: list[str], threads: int) -> dict:
    """Run in a child: the validation of fit (core.validation.evaluate_model) on the config's log."""
    import torch

    from core.baselines import item_counts, markov_table
    from core.config import parse_overrides, resolve_config
    from core.data import prepare_data
    from core.model import build_model
    from core.split import TRAIN, VALID
    from core.tensors import evaluation_targets, sample_targets
    from core.validation import evaluate_model

    torch.set_num_threads(threads)
    config = resolve_config(config_path, parse_overrides(pairs))
    data = prepare_data(config)
    torch.manual_seed(0)
    model = build_model(data.n_items, config.embed_dim, config.hidden_dim, config.num_layers, 0.0, markov_blend=True)
    model.set_markov_table(*markov_table(data, TRAIN), item_counts(data, TRAIN))
    targets = sample_targets(evaluation_targets(data, VALID, config.max_seq_len, torch.device("cpu")),
                             config.val_sample)
    began = time.perf_counter()
    metrics, alone, chosen = evaluate_model(config, model, targets)
    return {"seconds": time.perf_counter() - began, "targets": len(targets), "items": data.n_items,
            "metrics": metrics, "alone": alone, "chosen": list(chosen)}


def run_child(code: Path, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--child", "--config", str(Path(args.config).resolve()),
               "--threads", str(args.threads), *[f"--set={pair}" for pair in args.overrides]]
    done = subprocess.run(command, env=dict(os.environ, PYTHONPATH=str(code)), cwd=ROOT, check=False,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{code}: failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]) | {"code": str(code)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--baseline", type=Path, help="a checkout of other code, alternated with this one")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: as a search trial runs)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.config, args.overrides, args.threads)))
        return
    codes = [ROOT] + ([args.baseline.resolve()] if args.baseline else [])
    runs = {str(code): [] for code in codes}
    for _ in range(args.repeats):
        for code in codes:
            runs[str(code)].append(run_child(code, args))
            print(json.dumps({k: v for k, v in runs[str(code)][-1].items() if k != "alone"}), file=sys.stderr,
                  flush=True)
    first = runs[str(ROOT)][0]
    print(f"\n{date.today()}, {os.cpu_count()} CPUs, {args.threads} torch thread(s); {args.config} "
          f"{' '.join(args.overrides)}: {first['targets']:,} targets x {first['items']:,} items; median of {args.repeats}")
    print("| code | seconds per validation | runs | same metrics as this checkout |\n| --- | --- | --- | --- |")
    for code, measured in runs.items():
        seconds = [m["seconds"] for m in measured]
        same = all(m["metrics"] == first["metrics"] and m["alone"] == first["alone"] for m in measured)
        print(f"| {code} | {statistics.median(seconds):.2f} | {', '.join(f'{s:.2f}' for s in seconds)} | {same} |")
    if args.baseline:
        ratio = statistics.median(m["seconds"] for m in runs[str(codes[1])]) / statistics.median(
            m["seconds"] for m in runs[str(ROOT)])
        print(f"\nbaseline / this checkout: {ratio:.2f}x")
    OUT.mkdir(exist_ok=True)
    (OUT / "validation_time.json").write_text(json.dumps({"date": str(date.today()), "args": vars(args) | {
        "baseline": str(args.baseline)}, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
