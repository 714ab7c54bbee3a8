"""What the benchmark scripts share: the repository's root (importable from any script, and by the processes
they start), and a search run as a user runs it (python -m search.run) with its trials.csv read back.

Every script is run as `python bench/NAME.py`, so this module is imported as `common`.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SEARCHES = ROOT / "bench" / "out" / "searches"  # where the search benchmarks keep their searches
SHARED_DATA = ROOT.parent / "shared" / "data"

if str(ROOT) not in sys.path:  # `python bench/NAME.py` puts bench/ on the path, not the repository
    # appended, not put first: a child run with PYTHONPATH naming another checkout (--baseline) imports its code
    sys.path.append(str(ROOT))


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment with the repository importable, for a process a script starts."""
    return dict(os.environ, PYTHONPATH=str(ROOT), **extra)


def without_ray_auth() -> dict[str, str]:
    """The environment with Ray's token authentication off unless the caller set it (local throwaway clusters)."""
    return dict(os.environ, RAY_AUTH_MODE=os.environ.get("RAY_AUTH_MODE", "disabled"))


@dataclass(frozen=True)
class SearchRun:
    trials: pd.DataFrame | None  # trials.csv, None when the search wrote none
    wall_seconds: float
    returncode: int
    stderr: str                  # when captured, else ""


def run_search(storage: str | Path, name: str, flags: list[str], *, reports: Path | None = None,
               cwd: Path = ROOT, env: dict[str, str] | None = None, stdout: int | None = subprocess.DEVNULL,
               stderr: int | None = subprocess.DEVNULL, check: bool = True) -> SearchRun:
    """`python -m search.run --samples ... --name NAME --storage STORAGE` as flags say; its trials.csv read from
    `reports` (default STORAGE/NAME) and its wall time. check: a failed search raises CalledProcessError."""
    command = [sys.executable, "-m", "search.run", *flags, "--name", name, "--storage", str(storage)]
    began = time.perf_counter()
    done = subprocess.run(command, check=check, cwd=cwd, env=env, stdout=stdout, stderr=stderr, text=True)
    wall = time.perf_counter() - began
    trials_file = (reports or Path(storage) / name) / "trials.csv"
    trials = pd.read_csv(trials_file) if trials_file.is_file() else None
    return SearchRun(trials=trials, wall_seconds=wall, returncode=done.returncode, stderr=done.stderr or "")


BASE_ROW = "| base config (its best epoch) |"  # summary.md's row of the base config


def base_value(summary: Path) -> float:
    """The base config's best validation NDCG@5 as the search's summary.md reports it (last column)."""
    for line in summary.read_text().splitlines():
        if line.startswith(BASE_ROW):
            return float(line.strip().strip("|").split("|")[-1])
    return float("nan")  # the base config lay outside the space: it was not run
