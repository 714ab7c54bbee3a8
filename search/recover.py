"""Resume never destroys: a damaged (or foreign) searcher state is set aside and replaced by a fresh Optuna
searcher that has learned the finished trials, and the reports are never rewritten with fewer trials than
they hold.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import pandas as pd

from core.errors import ConfigError
from search import integrity
from search.plan import SearchPlan
from search.space import SearchSpec
from search.study import JOURNAL_FILE, journal_at, journal_study_name
from search.tuner import searcher_for
from search.warmstart import load_warm_start

log = logging.getLogger(__name__)
TRIALS_FILE = "trials.csv"


def replace_searcher_state(plan: SearchPlan, spec: SearchSpec, damaged: list[str]) -> None:
    """Set the damaged searcher states aside (renamed, never read) and write in their place the state of a
    fresh Optuna searcher told every finished trial of trials.csv."""
    folder = Path(plan.tune_path)
    moved = integrity.set_aside(folder, damaged)
    for path in moved:
        print(f"warning: {path.name[:-len('.damaged')]} failed its check (damaged, or not written by you); set "
              f"aside as {path} and not loaded; Optuna restarts from the {TRIALS_FILE} trials", file=sys.stderr)
    journal = Path(plan.folder) / JOURNAL_FILE
    warm = None
    if not journal.is_file() and (Path(plan.folder) / TRIALS_FILE).is_file():  # the journal holds every trial
        try:
            warm = load_warm_start(plan.folder, spec)
        except ConfigError:  # no finished trial yet: a fresh sampler
            warm = None
    searcher = searcher_for(spec.settings.seed, None, warm, journal, journal_study_name(journal, plan.name),
                            spec.settings.startup_trials)
    with journal_at(journal):
        searcher.set_search_properties(spec.settings.metric, spec.settings.mode, spec.domains())
    # trials Tune resumes were proposed by the lost sampler: their ends are not told to the new one
    searcher._completed_trials = {path.name for path in folder.iterdir() if path.is_dir()}
    for name in damaged:
        searcher.save(str(folder / name))
    integrity.seal(folder)


def trials_held(folder: str | Path) -> int:
    """How many trials the reports of `folder` list now (0 when there are none, or they are unreadable)."""
    path = Path(folder) / TRIALS_FILE
    try:
        return len(pd.read_csv(path)) if path.is_file() else 0
    except (ValueError, OSError, pd.errors.ParserError):
        return 0


def fewer_than_reported(folder: str | Path, records: list) -> str | None:
    """A one-line reason to keep the reports as they are, when `records` lists fewer trials than they do."""
    held = trials_held(folder)
    if len(records) < held:
        return (f"Tune's state lists {len(records)} trials but {Path(folder) / TRIALS_FILE} holds {held}; "
                "the reports are kept as they are")
    return None
