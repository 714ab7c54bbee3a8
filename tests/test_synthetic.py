"""The synthetic log: the default log is unchanged byte for byte, and large catalogues are generated."""
from __future__ import annotations

import hashlib

import numpy as np

from core.synthetic import build_catalog, generate_rentals

# sha256 of the CSV of generate_rentals(3000, 300, 0), the default log behind BENCHMARKS' synthetic figures,
# and of (200, 140, 0) (the tests' TINY log), computed before the generator learned large catalogues (issue 21)
DEFAULT_LOG_SHA256 = "965ef1befa2c225943e070b4fa5e805356eaec2278792b35eab4face83438fd3"
TINY_LOG_SHA256 = "c31bc018ad8f30d11c3714c9a5d89033f179de7ae014800e7588335d9626d132"


def csv_digest(customers: int, items: int) -> str:
    return hashlib.sha256(generate_rentals(customers, items, 0).to_csv(index=False).encode()).hexdigest()


def test_the_default_and_tiny_logs_are_unchanged():
    assert csv_digest(3000, 300) == DEFAULT_LOG_SHA256
    assert csv_digest(200, 140) == TINY_LOG_SHA256


def test_a_catalogue_of_a_million_items_is_generated_with_distinct_numbers():
    catalog = build_catalog(1_000_000, np.random.default_rng(0))
    assert abs(len(catalog) - 1_000_000) <= 130  # whole variants of every (piece, style) and accessory
    assert catalog["model_number"].is_unique
    assert catalog.loc[0, "model_description_1"] == "Modern sofa"
    log = generate_rentals(300, 1_000_000, 0)  # few customers: the log is small, the catalogue is not
    assert log["model_number"].isin(catalog["model_number"]).all()
    assert log["model_number"].nunique() > len(log) / 2  # popularity spread over ~7,700 variants per piece
