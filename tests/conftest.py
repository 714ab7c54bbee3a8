"""What every test shares: the one tiny config (and its search flags), the small search space, markers and
helpers. Tests import the helpers from here, never from one another."""
from __future__ import annotations

import http.client
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
# the one tiny config: trains in well under a second on synthetic data
TINY = {"synthetic_customers": 200, "synthetic_items": 140, "embed_dim": 8, "hidden_dim": 16, "epochs": 2,
        "batch_size": 32, "max_seq_len": 8}
SMALL_SPACE = """
search: {max_epochs: 2, grace_period: 1, reduction_factor: 2, seed: 0}
space:
  lr: {loguniform: [0.001, 0.01]}
  hidden_dim: {choice: [16, 32]}
  embed_dim: {choice: [8, 16]}
"""
HAND_BUILT = {"val_quantile": 0.7, "test_quantile": 0.9}

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
# the key that signs searches' pickles: a throwaway one, never the user's (subprocesses inherit it)
os.environ.setdefault("SEQREC_TUNE_KEY", str(Path(tempfile.mkdtemp(prefix="seqrec-key-")) / "key"))


def settings(config: dict) -> list[str]:
    """--set KEY=VALUE flags of a config dict."""
    return [arg for key, value in config.items() for arg in ("--set", f"{key}={value}")]


# python -m search.run flags of the tiny config (a search sets `epochs` itself, from its max_epochs)
TINY_SEARCH = [*settings({key: value for key, value in TINY.items() if key != "epochs"}), "--no-dashboard"]


@pytest.fixture
def tiny_config() -> dict:
    """A config that trains in well under a second on synthetic data."""
    return dict(TINY)


@pytest.fixture(autouse=True)
def ray_only_when_marked(request, monkeypatch):
    """A test that starts Ray must be marked `ray`, so that `pytest -m "not ray"` stays fast."""
    ray = sys.modules.get("ray")
    if ray is None or request.node.get_closest_marker("ray") is not None:
        return

    def refuse(*args, **kwargs):
        raise AssertionError(f"{request.node.nodeid} starts Ray but is not marked @pytest.mark.ray")

    monkeypatch.setattr(ray, "init", refuse)


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


def write_space(folder: Path, text: str = SMALL_SPACE) -> str:
    path = folder / "space.yaml"
    path.write_text(text)
    return str(path)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def interactions(rows: list[tuple]) -> pd.DataFrame:
    """rows: (user, time, item) -> the interactions table the sources produce."""
    frame = pd.DataFrame(rows, columns=["user", "time", "item"])
    frame["description_1"] = "d1 " + frame["item"].astype(str)
    frame["description_2"] = "d2"
    frame["line"] = np.arange(len(frame)) + 2
    return frame


def hand_built_data():
    """Three customers whose ranks and metrics are known by hand."""
    from core.config import build_config
    from core.data import prepare_data

    # training: customer 1 has 1 2 3, customer 2 has 1 2, customer 3 has 4 4; validation (time 9): customer 1
    # then rents 2, customer 2 rents 3; test: customer 3's last two. 11 times: lower quantiles 0.7 -> 9, 0.9 -> 20
    rows = [(1, 1, 1), (1, 2, 2), (1, 3, 3), (1, 9, 2), (2, 1, 1), (2, 2, 2), (2, 9, 3), (3, 1, 4), (3, 2, 4),
            (3, 20, 1), (3, 21, 2)]
    return prepare_data(build_config(HAND_BUILT), interactions(rows))


def ask(port: int, method: str, path: str, body: bytes | str | None = None) -> tuple[int, dict]:
    """One HTTP request to a local server: (status, JSON answer)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def results_reported(folder: Path) -> int:
    """Results the trials of a Tune experiment folder have reported so far."""
    return sum(len(path.read_text().splitlines()) for path in folder.glob("*/result.json"))


def wait_for(condition, seconds: float = 180) -> None:
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.3)


@pytest.fixture
def saved_figures(monkeypatch) -> dict:
    """File name -> the matplotlib Figure saved under it during the test (its content, not only the file)."""
    from matplotlib.figure import Figure

    saved, save = {}, Figure.savefig

    def record(figure, path, *args, **kwargs):
        saved[Path(path).name] = figure
        return save(figure, path, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", record)
    return saved
