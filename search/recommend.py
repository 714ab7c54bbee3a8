"""Top-K recommendations from a retrained model: `python -m search.recommend results/<name>/final --customer ID`.

`--items A,B,C` gives a history of item numbers (oldest first) instead of a customer. Items the history
already holds are left out unless --include-seen. Needs only the final folder, not the training data.
`--all --out recs.parquet` (or .csv) exports the top-K of every customer; `--customers FILE --out ...` of
the customers listed in FILE, one id per line.
"""
from __future__ import annotations

import argparse
import sys
import time

import pandas as pd

from core.artifact import SavedModel, load_model
from core.errors import DataError, RecsysError
from core.recommend import customer_history, item_ids_for_numbers, recommend
from search.export import add_export_arguments, export


def recommend_for(saved: SavedModel, customer: int | str | None = None, items: list[int | str] | None = None,
                  k: int = 5, include_seen: bool = False) -> pd.DataFrame:
    """Top-k for a known customer, or for a history of item numbers: rank, item_number, descriptions, score."""
    if (customer is None) == (items is None):
        raise DataError("give either a customer or a history of items, not both")
    if customer is not None:
        history = customer_history(saved.user_ids, saved.user_start, saved.items, customer)
    else:
        history = item_ids_for_numbers(saved.catalog, items)
    return recommend(saved.model, saved.catalog, history, k=k, max_seq_len=saved.config.max_seq_len,
                     exclude_seen=not include_seen)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m search.recommend", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="results/<name>/final (or its model.pt)")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--customer", help="a customer id from the data")
    who.add_argument("--items", help="item numbers, oldest first, separated by commas")
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
        saved = load_model(args.model)
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
