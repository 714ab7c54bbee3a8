"""Top-K recommendations from a retrained model: `python -m search.recommend results/<name>/final --customer ID`.

`--items A,B,C` gives a history of item numbers (oldest first) instead of a customer. Items the history
already holds are left out unless --include-seen. Needs only the final folder, not the training data;
a final folder in an object store (s3://bucket/results/<name>/final) is fetched first.
`--all --out recs.parquet` (or .csv) exports the top-K of every customer; `--customers FILE --out ...` of
the customers listed in FILE, one id per line. In Python: core.recommend.recommend_for and
core.export.recommend_all.
"""
from __future__ import annotations

import argparse
import sys
import time

import pandas as pd

from core.artifact import load_model
from core.errors import RecsysError
from core.recommend import recommend_for
from core.threads import apply_threads
from search.serving.export import add_export_arguments, export
from search.storage import local_copy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m search.recommend", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="results/<name>/final (or its model.pt), or such a folder at a storage URI "
                                      "(s3://...; fetched into a temporary folder first)")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--customer", help="a customer id as the data spells it (500017, A1MNLT8X5G66H1)")
    who.add_argument("--items", help="item numbers as the data spells them, oldest first, separated by commas")
    who.add_argument("--all", action="store_true", help="export the top-k of every customer to --out")
    who.add_argument("--customers", metavar="FILE", help="export the top-k of the customers in FILE "
                                                         "(one id per line) to --out")
    parser.add_argument("--k", type=int, default=5, help="how many items (default 5)")
    parser.add_argument("--include-seen", action="store_true", help="allow items already in the history")
    add_export_arguments(parser)
    args = parser.parse_args(argv)
    if args.all or args.customers:
        return export(args, parser)
    began = time.perf_counter()
    try:
        saved = load_model(local_copy(args.model))
        apply_threads(saved.config)
        items = [i for i in args.items.split(",") if i.strip()] if args.items else None
        top = recommend_for(saved, customer=args.customer, items=items, k=args.k, include_seen=args.include_seen)
    except RecsysError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    with pd.option_context("display.max_colwidth", 60, "display.width", 160):
        print(top.to_string(index=False, formatters={"score": "{:.4f}".format}))
    print(f"({time.perf_counter() - began:.2f} s including loading the model)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
