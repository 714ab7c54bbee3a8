"""Torch's thread count for one-process work (one-config training, retrain, recommend).

Torch starts one thread per core of the machine, not per core this process may use, and ignores what
else runs: with another job on 2 cores an epoch took 125 s on 2 threads and 5.3 s on 1 (BENCHMARKS.md).
`threads: auto` takes the cores this process may use, less those the machine's load keeps busy.
"""
from __future__ import annotations

import logging
import os

import torch

from core.config import Config

log = logging.getLogger(__name__)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. under taskset or a container's cpuset)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def auto_threads(cores: int | None = None, load: float | None = None) -> int:
    """The usable cores not already busy: cores minus the 1-minute load average, at least 1."""
    cores = usable_cores() if cores is None else cores
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            load = 0.0
    return max(1, min(cores, round(cores - load)))


def apply_threads(config: Config) -> int:
    """Set torch's intra-op threads from `config.threads` (auto or a count); returns the count set."""
    threads = auto_threads() if config.threads == "auto" else int(config.threads)
    torch.set_num_threads(threads)
    log.info("threads: %d (threads: %s, %d usable cores)", threads, config.threads, usable_cores())
    return threads
