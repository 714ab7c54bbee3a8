"""Resume loads only pickles this user wrote: every file Ray 2.60's Tuner.restore unpickles is tagged with an
HMAC-SHA256 under a per-user key when the search writes it, and checked before a resume loads it.

What Tuner.restore unpickles (read from ray/tune 2.60): tuner.pkl (cloudpickle), the newest
experiment_state-*.json (JSON with cloudpickled trial state inside), the search algorithm's
search_gen_state-*.json and searcher-state-*.pkl, callback-states-*.pkl, and each errored trial's error.pkl
(read by the ResultGrid). Trial checkpoints are torch files loaded with weights_only=True: nothing to tag.

The key: 32 random bytes in $SEQREC_TUNE_KEY, else $XDG_CONFIG_HOME/seqrec-tune/key, else
~/.config/seqrec-tune/key, created on first use with mode 0600, never inside a results folder. Tags name
files by their path inside the experiment folder, so a moved or copied folder of one's own still verifies.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from ray.tune import Callback

from core.errors import ConfigError

log = logging.getLogger(__name__)

TAG_FILE = "pickles.hmac"
KEEP = 8  # tags kept per file: its versions Tune may still be copying into the folder
SEARCHER_STATE = "searcher-state-*.pkl"
PICKLED = ("tuner.pkl", "experiment_state-*.json", "search_gen_state-*.json", "basic-variant-state-*.json",
           SEARCHER_STATE, "callback-states-*.pkl", "*/error.pkl")
TRUST_ADVICE = ("if you trust whoever wrote this folder, resume with --trust-pickles (it runs any code the "
                "folder's pickles hold)")


def key_path() -> Path:
    """Where this user's key lives (SEQREC_TUNE_KEY, else under XDG_CONFIG_HOME or ~/.config)."""
    if os.environ.get("SEQREC_TUNE_KEY"):
        return Path(os.environ["SEQREC_TUNE_KEY"]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "seqrec-tune" / "key"


def user_key() -> bytes:
    """This user's key, created (mode 0600) on first use; a key others may read is refused."""
    path = key_path()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as out:
                out.write(secrets.token_hex(32))
        except FileExistsError:  # another search created it a moment ago
            pass
    if path.stat().st_mode & 0o077:
        raise ConfigError(f"{path}: the key that signs your searches is readable by others; chmod 600 it")
    key = path.read_text().strip()
    if len(key) < 64:
        raise ConfigError(f"{path}: not a key written by seqrec-tune (delete it to make a new one; searches "
                          "signed with the old key then need --trust-pickles once)")
    return bytes.fromhex(key)


def pickled_files(folder: Path) -> list[str]:
    """The files of an experiment folder that a resume unpickles, as paths inside the folder."""
    found = {path.relative_to(folder).as_posix() for pattern in PICKLED for path in folder.glob(pattern)
             if path.is_file()}
    return sorted(found)


def file_tag(key: bytes, folder: Path, name: str) -> str:
    """HMAC-SHA256 of a file's path inside the folder and its bytes."""
    mac = hmac.new(key, name.encode() + b"\0", hashlib.sha256)
    with open(folder / name, "rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            mac.update(block)
    return mac.hexdigest()


def read_tags(folder: Path) -> dict[str, list[str]]:
    """name -> the tags of its latest versions, as seal wrote them ({} when absent or unreadable)."""
    try:
        files = json.loads((folder / TAG_FILE).read_text())["files"]
        return {name: [t for t in tags if isinstance(t, str)] for name, tags in files.items() if isinstance(tags, list)}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def seal(folder: str | Path, staging: str | Path | None = None) -> None:
    """Tag every pickle of the experiment folder, and of Tune's staging folder (what it will copy there next),
    keeping the tags of each file's last KEEP versions: Tune copies its state to the folder in the
    background, so the folder may hold a version older than the newest one written."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    key, tags = user_key(), read_tags(folder)
    sources = [Path(staging), folder] if staging is not None and Path(staging).is_dir() else [folder]
    for source in sources:
        for name in pickled_files(source):
            tag = file_tag(key, source, name)
            tags[name] = ([t for t in tags.get(name, []) if t != tag] + [tag])[-KEEP:]
    temporary = folder / f".{TAG_FILE}.tmp"
    temporary.write_text(json.dumps({"algorithm": "hmac-sha256", "files": tags}, indent=1))
    os.replace(temporary, folder / TAG_FILE)


def untrusted(folder: Path) -> list[str]:
    """The pickles of the folder whose content matches none of its recorded tags."""
    tags, key = read_tags(folder), user_key()
    bad = []
    for name in pickled_files(folder):
        actual = file_tag(key, folder, name)
        if not any(hmac.compare_digest(tag, actual) for tag in tags.get(name, [])):
            bad.append(name)
    return bad


def verify(folder: str | Path, trust: bool = False) -> list[str]:
    """Refuse (one line) a folder whose Tune state this user did not write; returns the searcher states that
    fail (damaged or foreign: the caller sets them aside rather than load them). With trust, seal as is."""
    folder = Path(folder)
    if trust:
        log.warning("--trust-pickles: %s is resumed without checking who wrote its pickles", folder)
        seal(folder)
        return []
    bad = untrusted(folder)
    searcher = [name for name in bad if Path(name).match(SEARCHER_STATE) and "/" not in name]
    others = [name for name in bad if name not in searcher]
    if others:
        shown = ", ".join(others[:3]) + (f" (and {len(others) - 3} more)" if len(others) > 3 else "")
        why = ("it has no tag file" if not (folder / TAG_FILE).is_file()
               else "they changed after this user's last tag (another user's folder, an edit, or a search killed "
                    "while Tune was saving)")
        raise ConfigError(f"{folder}: resuming would unpickle {shown}, not signed with your key {key_path()}: "
                          f"{why}; {TRUST_ADVICE}")
    return searcher


def set_aside(folder: str | Path, names: list[str]) -> list[Path]:
    """Rename files out of Tune's way (name.damaged), never deleting them."""
    moved = []
    for name in names:
        source = Path(folder) / name
        target = source.with_name(source.name + ".damaged")
        os.replace(source, target)
        moved.append(target)
    return moved


class SealPickles(Callback):
    """Re-tags the experiment folder whenever Tune has rewritten its state: inside Tune's save, as soon as
    its state is in the staging folder (Tune asks the callbacks for their state right after writing its own
    and the searcher's, and copies them all to the experiment folder after that), at the end of every step
    and at the end. The folder is read from the trials (a resumed Tuner restores this callback from
    tuner.pkl, and the folder may have moved). A driver killed between Tune's write and that tag (a few
    milliseconds), or before the first step ends (tuner.pkl), leaves a file untagged; a resume then refuses
    it (see verify) and --trust-pickles is the way on. Sealing only at the step's end left the whole rest
    of the step: a driver killed just after a trial ended, when Tune saves, was refused in 2 of 11 runs of its test."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[int, int]] = {}
        self.trials: list = []

    def __getstate__(self) -> dict[str, Any]:
        return {"seen": {}, "trials": []}  # tuner.pkl holds the callback: never the live trials

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        self.trials = trials

    def get_state(self) -> dict | None:
        if getattr(self, "trials", None):  # a callback unpickled from an older tuner.pkl has none yet
            self.sealed_now(self.trials)
        return None  # nothing to save: no callback-states file is written for it

    def sealed_now(self, trials: list) -> None:
        folder = local_experiment_folder(trials)
        if folder is None:
            return
        staging = Path(trials[0].storage.experiment_driver_staging_path)
        stamps = {}
        for source in (folder, staging):
            for name in pickled_files(source) if source.is_dir() else []:
                try:
                    stat = (source / name).stat()
                except FileNotFoundError:
                    continue
                stamps[f"{source}/{name}"] = (stat.st_mtime_ns, stat.st_size)
        if stamps != self.seen:
            seal(folder, staging)
            self.seen = stamps

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self.sealed_now(trials)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.sealed_now(trials)


def local_experiment_folder(trials: list) -> Path | None:
    """The experiment folder on this machine (None before any trial, or in cloud storage)."""
    path = getattr(getattr(trials[0], "storage", None), "experiment_fs_path", None) if trials else None
    if not path or "://" in path or not Path(path).is_dir():
        return None
    return Path(path)
