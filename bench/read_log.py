"""Reading and preparing a large event log: events per second and peak memory, string ids against integer ids.

    python bench/read_log.py [--events 10000000] [--repeats 2] [--baseline /tmp/seqrec-main]

Generates (once, cached under /tmp/seqrec-read-log/) a CSV of --events events in the Amazon reviews' shape:
customer ids 'A' + 13 base-36 characters, item ids 'B0' + 8, unix seconds, no descriptions; about 10 events
per customer and one item per 50 events, item popularity Zipf-like. The same log with integer ids (the same
customers and items numbered) is the second file. Each measurement runs core.data.prepare_data (read the
file, drop short customers, sort, encode, split: everything up to the tensors) in its own process, so its
peak memory (its own ru_maxrss) is its own. With --baseline, a checkout of other code (e.g. `git worktree add
/tmp/seqrec-main main`) reads both logs too, alternated with this checkout's. Writes bench/out/read_log.json.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from common import ROOT

CACHE = Path("/tmp/seqrec-read-log")
OUT = Path(__file__).resolve().parent / "out"
BASE36 = np.array(list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"))


def base36_ids(numbers: np.ndarray, prefix: str, width: int, seed: int) -> np.ndarray:
    """Distinct ids like Amazon's: prefix + `width` base-36 characters, random but for the last 5, which
    spell the number (so no two ids are equal)."""
    digits = np.random.default_rng(seed).integers(0, 36, (len(numbers), width))         # (N, width)
    digits[:, -5:] = (numbers[:, None] // 36 ** np.arange(4, -1, -1)) % 36
    return np.char.add(prefix, BASE36[digits].view(f"<U{width}").ravel())


def generate(events: int) -> tuple[Path, Path]:
    """The cached string-id and integer-id logs of `events` rows."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    CACHE.mkdir(exist_ok=True)
    text_path, int_path = CACHE / f"amazon-{events}.csv", CACHE / f"integer-{events}.csv"
    if text_path.is_file() and int_path.is_file():
        return text_path, int_path
    rng = np.random.default_rng(0)
    n_customers, n_items = events // 10, events // 50
    customer = rng.integers(0, n_customers, events)
    item = np.minimum(rng.zipf(1.3, events) - 1, n_items - 1)
    time_s = 1_400_000_000 + rng.integers(0, 200_000_000, events)
    customer_ids = base36_ids(np.arange(n_customers, dtype=np.int64), "A", 13, 17)
    item_ids = base36_ids(np.arange(n_items, dtype=np.int64), "B0", 8, 29)
    for path, users, items in ((text_path, customer_ids[customer], item_ids[item]),
                               (int_path, customer + 1, item + 1)):
        table = pa.table({"customer_id": users, "unix_time": time_s, "item_id": items})
        pa_csv.write_csv(table, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").rename(path)
    return text_path, int_path


def measure(path: str) -> dict:
    """Run in a child: prepare_data on the log; seconds and counts."""
    from core.config import build_config
    from core.data import prepare_data

    config = build_config({"data": path, "user_col": "customer_id", "time_col": "unix_time", "item_col": "item_id",
                           "description_1_col": None, "description_2_col": None})
    began = time.perf_counter()
    data = prepare_data(config)
    seconds = time.perf_counter() - began
    return {"seconds": seconds, "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20,
            "events_loaded": data.stats["events_loaded"], "events": len(data.items),
            "customers": len(data.user_ids), "items": data.n_items}


def run_child(path: Path, code: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(code), OMP_NUM_THREADS="2")
    done = subprocess.run([sys.executable, __file__, "--child", str(path)], env=env, cwd=code,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{code} on {path.name} failed:\n{done.stderr[-2000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out.update(code=str(code), file=path.name, events_per_second=out["events_loaded"] / out["seconds"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--baseline", type=Path, help="a checkout of other code to read both logs too")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child)))
        return
    began = time.perf_counter()
    text_path, int_path = generate(args.events)
    print(f"logs ready in {time.perf_counter() - began:.0f} s: {text_path} ({text_path.stat().st_size / 1e9:.2f} GB), "
          f"{int_path}", flush=True)
    runs = []
    for _ in range(args.repeats):
        codes = [ROOT] + ([args.baseline] if args.baseline else [])
        plan = [(path, code) for code in codes for path in (text_path, int_path)]
        for path, code in plan:
            runs.append(run_child(path, code))
            print(json.dumps(runs[-1]), flush=True)
    OUT.mkdir(exist_ok=True)
    (OUT / "read_log.json").write_text(json.dumps({"events": args.events, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
