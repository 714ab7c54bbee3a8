"""`python -m search.recommend results/<name>/final --all --out recs.parquet`: the export's command-line side.

The work is core.export.recommend_all; this module reads the flags, shows a progress bar and writes the file.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import torch

from core.artifact import load_model
from core.errors import DataError, RecsysError
from core.export import read_customer_ids, recommend_all, write_recommendations
from search.storage import local_copy


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of --all / --customers (both need --out)."""
    parser.add_argument("--out", help="with --all or --customers: the .parquet or .csv file to write")
    parser.add_argument("--batch-size", type=int, default=4096,
                        help="with --all or --customers: customers scored at once (default 4096)")
    parser.add_argument("--device", default="cpu", help="with --all or --customers: cpu (default) or cuda")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's, one per core)")


def export(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Run the export the parsed flags ask for; returns the exit code."""
    if not args.out:
        parser.error("--all and --customers need --out FILE (.parquet or .csv)")
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    if args.threads is not None:
        torch.set_num_threads(max(1, args.threads))
    began = time.perf_counter()
    try:
        if args.device not in ("cpu", "cuda") or (args.device == "cuda" and not torch.cuda.is_available()):
            raise DataError(f"--device {args.device}: expected cpu, or cuda on a machine with a visible GPU")
        customers = read_customer_ids(args.customers) if args.customers else None
        saved = load_model(local_copy(args.model), device=args.device)
        total = len(customers) if customers is not None else len(saved.user_ids)
        with progress_bar(total) as bar:
            frame = recommend_all(saved, customers=customers, k=args.k, include_seen=args.include_seen,
                                  batch_size=args.batch_size, on_batch=bar.update)
        path = write_recommendations(frame, args.out)
    except RecsysError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - began
    print(f"{total:,} customers, {len(frame):,} rows -> {path} ({seconds:.1f} s including loading and writing)",
          file=sys.stderr)
    return 0


def progress_bar(total: int) -> Any:
    """A stderr progress bar over customers (tqdm comes with optuna); silent when stderr is not a terminal."""
    from tqdm import tqdm

    return tqdm(total=total, unit=" customers", unit_scale=True, file=sys.stderr, disable=None,
                mininterval=0.5, leave=False)
