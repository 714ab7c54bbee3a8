"""Top-K for every customer: customers per second and peak memory, against the output layer's floor.

    python bench/export.py [--events 5000000 --items 30000] [--k 10] [--threads 2] [--batch-sizes 1024 2048 4096]

An untrained model of the default sizes (embed 64, hidden 128, 1 layer, max_seq_len 20) is saved with
core.artifact.save_model for a synthetic log of --events events (the sizes of bench/scaling.py; model
quality does not change the cost) and for the default synthetic log. Each export then runs in its own
process (so peak memory is its own): core.export.recommend_all over all customers at K, seen items
excluded. The floor is the bare (B, H) x (H, N + 1) product plus top-K over the same customers and
batch size, with nothing else. Writes bench/out/export.json.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from common import child_env

CUSTOMER_EVENTS = 9.05  # mean events per synthetic customer (bench/scaling.py)
MODEL = {"embed_dim": 64, "hidden_dim": 128}  # the model of the published table (the defaults until 2026-12-01)
OUT = Path(__file__).resolve().parent / "out"


def build(events: int, items: int, folder: Path) -> dict:
    """Save an untrained default-size model for a synthetic log of about `events` events."""
    import torch

    from core.artifact import save_model
    from core.config import build_config
    from core.data import prepare_data
    from core.model import build_model

    config = build_config({"synthetic_customers": round(events / CUSTOMER_EVENTS), "synthetic_items": items,
                           **MODEL})
    began = time.perf_counter()
    data = prepare_data(config)
    torch.manual_seed(0)
    model = build_model(data.n_items, config.embed_dim, config.hidden_dim, config.num_layers, config.dropout)
    save_model(folder, model, config, data)
    return {"customers": len(data.user_ids), "items": data.n_items, "events": len(data.items),
            "build_seconds": time.perf_counter() - began}


def measure(folder: Path, k: int, batch_size: int, threads: int, write: bool) -> dict:
    """Time recommend_all over every customer (and writing the Parquet file), then the matmul + top-k floor."""
    import torch

    from core.artifact import load_model
    from core.export import recommend_all, write_recommendations

    torch.set_num_threads(threads)
    began = time.perf_counter()
    saved = load_model(folder)
    out = {"load_seconds": time.perf_counter() - began, "batch_size": batch_size, "threads": threads, "k": k}
    recommend_all(saved, customers=saved.user_ids[:batch_size], k=k, batch_size=batch_size)  # warm-up
    began, cpu_began, load = time.perf_counter(), cpu_seconds(), os.getloadavg()[0]
    frame = recommend_all(saved, k=k, batch_size=batch_size)
    out["export_seconds"] = time.perf_counter() - began
    out["export_cpu_seconds"] = cpu_seconds() - cpu_began
    out["load_average"] = (load + os.getloadavg()[0]) / 2  # other work on the machine: 1 per busy core
    out.update(customers=len(saved.user_ids), rows=len(frame), items=len(saved.catalog),
               customers_per_second=len(saved.user_ids) / out["export_seconds"])
    out["peak_mb_export"] = peak_rss_mb()
    if write:
        began = time.perf_counter()
        path = write_recommendations(frame, OUT / "export" / f"recs-{len(saved.user_ids)}.parquet")
        out["write_seconds"] = time.perf_counter() - began
        out["parquet_mb"] = path.stat().st_size / 2**20
    del frame
    cpu_began = cpu_seconds()
    out["floor_seconds"] = floor_seconds(saved.model, len(saved.user_ids), k, batch_size)
    out["floor_cpu_seconds"] = cpu_seconds() - cpu_began
    out["peak_mb"] = peak_rss_mb()
    return out


def floor_seconds(model, customers: int, k: int, batch_size: int) -> float:
    """The output layer alone: (B, H) x (H, N + 1) + bias, then top-k, for every customer."""
    import torch

    weight, bias = model.output.weight.detach(), model.output.bias.detach()  # (N + 1, H), (N + 1,)
    hidden = torch.randn(batch_size, weight.shape[1])
    torch.topk(torch.addmm(bias, hidden, weight.T), k, dim=1)  # warm-up
    began = time.perf_counter()
    for first in range(0, customers, batch_size):
        rows = min(batch_size, customers - first)
        torch.topk(torch.addmm(bias, hidden[:rows], weight.T), k, dim=1)
    return time.perf_counter() - began


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(*args: str) -> dict:
    command = [sys.executable, __file__, *args]
    result = subprocess.run(command, capture_output=True, text=True,
                            env=child_env())
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--items", type=int, default=30_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[4096])
    parser.add_argument("--build", nargs=3, help=argparse.SUPPRESS)    # events items folder
    parser.add_argument("--measure", help=argparse.SUPPRESS)           # folder
    parser.add_argument("--batch-size", type=int, default=2048, help=argparse.SUPPRESS)
    parser.add_argument("--write", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        print(json.dumps(build(int(args.build[0]), int(args.build[1]), Path(args.build[2]))))
        return
    if args.measure:
        print(json.dumps(measure(Path(args.measure), args.k, args.batch_size, args.threads, args.write)))
        return
    rows = []
    for events, items, label in ((args.events, args.items, "large"), (27_150, 300, "default")):
        folder = OUT / "export" / label
        saved = folder / "build.json"  # the model of an earlier run, if any: building the large log takes ~40 s
        built = json.loads(saved.read_text()) if saved.is_file() and (folder / "model.pt").is_file() else \
            child("--build", str(events), str(items), str(folder))
        saved.write_text(json.dumps(built))
        print(f"{label}: built {built}", file=sys.stderr, flush=True)
        sizes = args.batch_sizes if label == "large" else [args.batch_sizes[0]]
        for index, batch_size in enumerate(sizes):
            flags = ["--measure", str(folder), "--k", str(args.k), "--threads", str(args.threads),
                     "--batch-size", str(batch_size)] + ["--write"] * (index == 0)
            rows.append(dict(built, label=label, **child(*flags)))
            print(f"{label} batch {batch_size}: {rows[-1]}", file=sys.stderr, flush=True)
    print(f"\n{date.today()}, {os.cpu_count()} CPUs, {args.threads} torch threads, K={args.k}, seen items excluded, "
          "untrained default-size model (embed 64, hidden 128, max_seq_len 20)")
    print("| log | customers | items | batch | export (s) | customers/s | CPU-seconds | floor: matmul + top-k (s) | "
          "export / floor (wall; CPU) | write Parquet (s) | peak memory (MB) | load average |\n" + "| --- " * 12 + "|")
    for r in rows:
        write = f"{r['write_seconds']:.1f}" if "write_seconds" in r else ""
        print(f"| {r['label']} ({r['events']:,} events) | {r['customers']:,} | {r['items']:,} | {r['batch_size']} | "
              f"{r['export_seconds']:.2f} | {r['customers_per_second']:,.0f} | {r['export_cpu_seconds']:.1f} | "
              f"{r['floor_seconds']:.2f} | {r['export_seconds'] / r['floor_seconds']:.2f}x; "
              f"{r['export_cpu_seconds'] / r['floor_cpu_seconds']:.2f}x | {write} | {r['peak_mb']:,.0f} | "
              f"{r['load_average']:.1f} |")
    (OUT / "export.json").write_text(json.dumps({"date": str(date.today()), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
