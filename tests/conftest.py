from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd
import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TINY = {"synthetic_customers": 200, "synthetic_items": 140, "embed_dim": 8, "hidden_dim": 16, "epochs": 2,
        "batch_size": 32, "max_seq_len": 8}

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
# the key that signs searches' pickles: a throwaway one, never the user's (subprocesses inherit it)
os.environ.setdefault("SEQREC_TUNE_KEY", str(Path(tempfile.mkdtemp(prefix="seqrec-key-")) / "key"))


@pytest.fixture
def tiny_config() -> dict:
    """A config that trains in well under a second on synthetic data."""
    return dict(TINY)


def write_log(path: Path, rows: list[tuple]) -> Path:
    """An event log CSV with the furniture-rental column names; rows are (account, date, model[, d1, d2])."""
    frame = pd.DataFrame([r + ("desc",) * (5 - len(r)) for r in rows], columns=[
        "account_number", "agreement_date", "model_number", "model_description_1", "model_description_2"])
    frame.to_csv(path, index=False)
    return path


def needs_shared(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} is absent (real data sets live in ../shared/data beside the repo)")
    return path
