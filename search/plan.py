"""A search's plan: its settings, resources and status, saved as results/<name>/search.yaml.

Made once from the command line (search.run), kept unchanged on resume, and read by the reports and by
retrain. Frozen: a change is a new plan (dataclasses.replace), saved at once.
"""
from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from core.config import load_yaml
from core.errors import ConfigError
from search.storage import child, is_uri

PLAN_FILE = "search.yaml"
BEST_CONFIG_FILE = "best_config.yaml"
FINAL_FOLDER = "final"


class Status(str, Enum):
    RUNNING = "running"
    INTERRUPTED = "interrupted"
    FINISHED = "finished"


@dataclass(frozen=True)
class SearchPlan:
    name: str
    storage: str                 # Ray's storage path (a folder or a cloud URI)
    folder: str                  # the local folder of our reports, <storage>/<name> unless storage is a URI
    samples: int                 # trials to run
    cpus_per_trial: float
    gpus_per_trial: float | None  # None until the cluster's resources are known
    concurrency: int | None       # likewise
    config: dict[str, Any]       # the base config, complete
    search: dict[str, Any]       # the search settings and space, as SearchSpec.to_dict() writes them
    status: Status
    created: str
    data_fingerprint: str | None = None
    wall_seconds: float = 0.0    # summed over the runs of a resumed search
    warm_start: str | None = None  # the earlier search whose trials were told to Optuna first
    mlflow: str | None = None      # the MLflow tracking URI, when the search is tracked
    address: str | None = None   # the --address of its latest run (None: a local Ray)

    @property
    def path(self) -> Path:
        return Path(self.folder) / PLAN_FILE

    @property
    def tune_path(self) -> str:
        """Where Ray keeps the experiment (for Tuner.restore): <storage>/<name>, before a URI's query."""
        return child(self.storage, self.name)

    def resume_command(self, address: str | None = None) -> str:
        """The command that continues this search, as it must be typed (with --storage and --address when
        they were used)."""
        command = f"python -m search.run --resume --name {shlex.quote(self.name)}"
        default_storage = str(Path("results").resolve())
        if self.storage != default_storage:
            command += f" --storage {shlex.quote(self.storage)}"
        address = address or self.address
        if address:
            command += f" --address {shlex.quote(address)}"
        return command

    def save(self) -> SearchPlan:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        values = dataclasses.asdict(self)
        values["status"] = self.status.value
        self.path.write_text(yaml.safe_dump(values, sort_keys=False))
        return self


def load_plan(folder: str | Path) -> SearchPlan:
    """The plan saved in folder/search.yaml, with errors that name the file."""
    path = Path(folder) / PLAN_FILE
    if not path.is_file():
        raise ConfigError(f"{Path(folder)} has no {PLAN_FILE}: not a search folder made by python -m search.run")
    values = load_yaml(path)
    names = {f.name for f in dataclasses.fields(SearchPlan)}
    required = {f.name for f in dataclasses.fields(SearchPlan) if f.default is dataclasses.MISSING}
    missing = sorted(required - set(values))
    if missing:
        raise ConfigError(f"{path}: missing {', '.join(missing)}; not a plan written by python -m search.run")
    try:
        status = Status(values["status"])
    except ValueError:
        raise ConfigError(f"{path}: status {values['status']!r} is not one of "
                          f"{', '.join(s.value for s in Status)}") from None
    plan = SearchPlan(**{**{k: v for k, v in values.items() if k in names}, "status": status})
    here = Path(folder).resolve()
    if is_uri(plan.storage):  # its reports may have been fetched from the URI onto another machine
        plan = dataclasses.replace(plan, folder=str(here))
    elif Path(plan.folder) != here:  # moved or copied: it resumes from where it is
        plan = dataclasses.replace(plan, name=here.name, storage=str(here.parent), folder=str(here))
    return plan
