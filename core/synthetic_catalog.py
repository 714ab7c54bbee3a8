"""The synthetic log's item catalogue (core.synthetic): every piece of furniture of every room in each style and
a number of variants, plus style-neutral accessories, with descriptions, brands and monthly rates."""
from __future__ import annotations

import numpy as np
import pandas as pd

ROOMS = {
    "living room": ["Sofa", "Coffee table", "TV stand", "Armchair", "Bookshelf"],
    "bedroom": ["Bed frame", "Mattress", "Nightstand", "Dresser", "Wardrobe"],
    "dining room": ["Dining table", "Dining chairs", "Sideboard", "Bar stools"],
    "home office": ["Desk", "Office chair", "Filing cabinet", "Monitor stand"],
    "kids room": ["Kids bed", "Toy chest", "Study desk", "Kids wardrobe"],
    "patio": ["Patio table", "Patio chairs", "Sun lounger", "Parasol"],
}
ACCESSORIES = ["Floor lamp", "Rug", "Mirror", "Wall art", "Cushion set", "Curtains", "Plant stand", "Throw blanket"]
STYLES = ["Modern", "Scandinavian", "Industrial", "Classic", "Rustic"]
BRANDS = ["Linea", "Nordhaus", "Forge & Co", "Heritage", "Timberline"]
STYLE_FACTOR = np.array([1.1, 1.0, 0.95, 1.25, 0.9])
MATERIALS = ["oak", "walnut", "steel", "linen", "velvet", "pine", "leather", "rattan", "glass", "ash"]
COLOURS = ["grey", "white", "black", "natural", "navy", "green", "beige", "charcoal", "rust", "sand", "olive"]
BASE_RATE = {"Sofa": 45, "Bed frame": 35, "Mattress": 25, "Wardrobe": 30, "Dining table": 30, "Desk": 20}


def build_catalog(n_items: int, rng: np.random.Generator) -> pd.DataFrame:
    """Items: every (piece, style) in a number of variants, plus style-neutral accessories; ~n_items rows.

    Text columns are categoricals looked up from small tables of their few distinct values, so that a
    catalogue of a million items costs arrays of codes, not a million strings built one by one."""
    pieces = [(room, piece) for room, names in ROOMS.items() for piece in names]
    n_main = len(pieces) * len(STYLES)
    variants = max(1, round(0.87 * n_items / n_main))
    n_acc_variants = max(1, round((n_items - n_main * variants) / len(ACCESSORIES)))
    piece_idx, style_idx, variant = (a.ravel() for a in np.meshgrid(
        np.arange(len(pieces)), np.arange(len(STYLES)), np.arange(variants), indexing="ij"))
    acc_idx, acc_variant = (a.ravel() for a in np.meshgrid(
        np.arange(len(ACCESSORIES)), np.arange(n_acc_variants), indexing="ij"))
    names = [p for _, p in pieces] + ACCESSORIES
    category = np.concatenate([piece_idx, len(pieces) + acc_idx])  # index into names
    style = np.concatenate([style_idx, np.full(len(acc_idx), -1)])
    variant = np.concatenate([variant, acc_variant])
    n = len(category)
    material = (variant * 3 + np.arange(n)) % len(MATERIALS)
    colour = (variant * 7 + np.arange(n) // 3) % len(COLOURS)
    styled = style >= 0
    kind = category * (len(STYLES) + 1) + style + 1  # (category, style or none)
    described = [f"{STYLES[s]} {c.lower()}" if s >= 0 else c for c in names for s in range(-1, len(STYLES))]
    base = np.array([BASE_RATE.get(c, 12) for c in names], dtype=float)[category]
    rate = base * np.where(styled, STYLE_FACTOR[np.maximum(style, 0)], 1.0) * (1 + 0.04 * (variant % 5))
    return pd.DataFrame({
        "model_number": 10000 + _distinct_numbers(rng, n),
        "model_description_1": _labels(kind, described),
        "model_description_2": _labels(material * len(COLOURS) + colour,
                                       [f"{m}, {c}" for m in MATERIALS for c in COLOURS]),
        "product_category": _labels(category, names),
        "room": _labels(np.where(category < len(pieces), category, len(pieces)), [r for r, _ in pieces] + ["any room"]),
        "style": style,
        "variant": variant,
        "brand": _labels(np.where(styled, style, len(STYLES)), BRANDS + ["Homely"]),
        "monthly_rate": np.round(rate, 2),
    })


def _labels(codes: np.ndarray, table: list[str]) -> pd.Categorical:
    """table[codes] as a categorical (the table may repeat a value)."""
    categories, position = np.unique(np.array(table), return_inverse=True)
    return pd.Categorical.from_codes(position[codes], categories)


def _distinct_numbers(rng: np.random.Generator, n: int) -> np.ndarray:
    """n distinct numbers in random order: from 0..89,999 as always (five-digit model numbers), or from a
    range ten times wider per extra digit beyond 90,000 items."""
    if n <= 90000:
        return rng.permutation(90000)[:n]
    span = 90000
    while span < n:
        span *= 10
    return rng.choice(span, n, replace=False)
