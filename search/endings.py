"""Every way a running search can end early, each leaving an `interrupted` search that resumes.

- A first Ctrl-C: Tune's own handler stops the trials, saves the experiment and `fit` returns.
- SIGTERM (a scheduler, `kill`, a closing terminal): handled as a first Ctrl-C, through Tune's handler.
- A second Ctrl-C or SIGTERM while that graceful stop is under way, or one before Tune started: raises
  SearchStopped out of Tune; the caller shuts Ray down and writes the summary from what is on disk.
- An errored trial: one line while the search runs (TrialErrorLine); Tune's full traceback stays in the
  trial's folder instead of on the screen.
"""
from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ray.tune import Callback

TUNE_CONTROLLER_LOGGER = "ray.tune.execution.tune_controller"


class SearchStopped(BaseException):
    """A second stop signal: leave Tune at once (a BaseException, like KeyboardInterrupt, so that no
    `except Exception` inside Ray swallows it)."""

    def __init__(self, signal_name: str):
        super().__init__(signal_name)
        self.signal_name = signal_name


def stop_behind(err: BaseException) -> SearchStopped | None:
    """The SearchStopped an exception wraps, if any: raised inside a Cython call of Ray's (waiting on its
    workers), it comes out as "SystemError: ... returned a result with an exception set", caused by it."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, SearchStopped):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def _hard_stop(signum: int, frame: Any) -> None:
    raise SearchStopped(signal.Signals(signum).name)


def _on_sigterm(signum: int, frame: Any) -> None:
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler) and handler is not _hard_stop:
        handler(signal.SIGINT, frame)  # Tune's: a graceful stop; it then puts _hard_stop back for SIGINT
    else:
        raise SearchStopped("SIGTERM")


def _please_wait(signum: int, frame: Any) -> None:
    print(f"\n{signal.Signals(signum).name}: the trials have stopped; writing the summary (a few seconds)",
          file=sys.stderr, flush=True)


def catch() -> None:
    """(Re)install our handlers: again after Ray starts, since a local Ray head registers its own SIGTERM."""
    signal.signal(signal.SIGINT, _hard_stop)  # Tune keeps this as the handler to restore after its own
    signal.signal(signal.SIGTERM, _on_sigterm)  # not Ray's, which prints a C++ stack and exits


def finishing() -> None:
    """Once the trials have ended: a stop signal no longer interrupts writing the summary."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _please_wait)


@contextmanager
def stop_signals() -> Iterator[None]:
    """While a search runs: SIGTERM stops it as Ctrl-C does; a second one of either raises SearchStopped."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    catch()
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


class _NoTrialTracebacks(logging.Filter):
    """Drops Tune's 'Trial task failed' record, whose traceback the summary and the trial's folder hold."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Trial task failed")


def quiet_trial_tracebacks() -> None:
    """Keep Tune's full tracebacks of errored trials off the screen (TrialErrorLine prints one line)."""
    logger = logging.getLogger(TUNE_CONTROLLER_LOGGER)
    if not any(isinstance(f, _NoTrialTracebacks) for f in logger.filters):
        logger.addFilter(_NoTrialTracebacks())


def error_line(text: str | None) -> str:
    """The last non-empty line of an error's text: what went wrong, without the stack."""
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"


class TrialErrorLine(Callback):
    """One line per errored trial while the search runs: its id, what went wrong, where the details are."""

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        local = Path(trial.error_file) if trial.error_file else None
        text = local.read_text() if local is not None and local.is_file() else trial.get_error()
        where = Path(trial.path) / (trial.run_metadata.error_filename or "error.txt") if trial.path else "?"
        print(f"trial {trial.trial_id} errored: {error_line(str(text) if text else None)} (traceback: {where})",
              file=sys.stderr, flush=True)
