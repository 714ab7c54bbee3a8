"""Whether the synthetic log holds structure the LSTM learns and the baselines miss: validation NDCG@5 of the
model against the Markov chain and most-popular baselines (the check a unit test made until it moved here:
it trains a real model for a few seconds).

    python bench/synthetic_structure.py [--customers 1500] [--epochs 6] [--lr 0.003]

Prints the three figures; exits 1 unless model > 1.1 x Markov > 1.1 x most popular.
"""
from __future__ import annotations

import argparse
import math
import sys

from common import ROOT  # noqa: F401  (the repository importable)

from core.baselines import evaluate_baselines
from core.config import build_config
from core.data import prepare_data
from core.fit import fit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1500, help="synthetic customers (default 1500)")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=0.003)
    args = parser.parse_args(argv)
    config = {"synthetic_customers": args.customers, "epochs": args.epochs, "lr": args.lr}
    data = prepare_data(build_config(config))
    model = fit(build_config(config), data).final["val_ndcg@5"]
    baselines = evaluate_baselines(build_config(config), data)
    markov, popular = baselines["markov"]["ndcg@5"], baselines["most_popular"]["ndcg@5"]
    print(f"validation NDCG@5: model {model:.4f}, Markov {markov:.4f}, most popular {popular:.4f}")
    learned = math.isfinite(model) and model > 1.1 * markov > 1.1 * popular
    print("structure learned: model > 1.1 x Markov > 1.1 x most popular" if learned else
          "NOT learned: expected model > 1.1 x Markov > 1.1 x most popular")
    return 0 if learned else 1


if __name__ == "__main__":
    sys.exit(main())
