"""Saved models carry the SHA-256 digest of every file written with them (manifest.sha256, the format of
`sha256sum`, so `sha256sum -c manifest.sha256` checks it by hand too); loading checks them and refuses a
changed file by name. A folder saved before manifests existed is refused with the command that seals it:
`python -m core.integrity FOLDER` (run it only on a model you trust as it is).
"""
from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from core.errors import DataError

MANIFEST_FILE = "manifest.sha256"


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: str | Path, names: list[str]) -> Path:
    """Record the digests of the named files of folder (those that exist), replacing the manifest atomically."""
    folder = Path(folder)
    lines = [f"{file_digest(folder / name)}  {name}\n" for name in sorted(set(names)) if (folder / name).is_file()]
    temporary = folder / f".{MANIFEST_FILE}.tmp"
    temporary.write_text("".join(lines))
    os.replace(temporary, folder / MANIFEST_FILE)
    return folder / MANIFEST_FILE


def read_manifest(folder: Path) -> dict[str, str]:
    """name -> digest, as written by write_manifest; a damaged manifest is refused."""
    path = folder / MANIFEST_FILE
    digests = {}
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        digest, _, name = line.partition("  ")
        if len(digest) != 64 or not name or "/" in name:
            raise DataError(f"{path}: line {number} is not '<sha256>  <file>'; the manifest is damaged")
        digests[name] = digest
    return digests


def check_folder(folder: str | Path, required: str) -> None:
    """Refuse, naming the file, a folder whose files differ from its manifest or that has none."""
    folder = Path(folder)
    if not (folder / MANIFEST_FILE).is_file():
        raise DataError(f"{folder} has no {MANIFEST_FILE} (saved before models were sealed, or it was removed): "
                        f"if you trust this model as it is, seal it with: python -m core.integrity {folder}")
    digests = read_manifest(folder)
    if required not in digests:
        raise DataError(f"{folder / MANIFEST_FILE} does not list {required}; the folder was changed")
    for name, digest in digests.items():
        path = folder / name
        if not path.is_file():
            raise DataError(f"{path} is listed in {MANIFEST_FILE} but missing")
        if file_digest(path) != digest:
            raise DataError(f"{path} changed after it was saved (its SHA-256 differs from {MANIFEST_FILE}); "
                            "retrain, or restore the file")


def main(argv: list[str] | None = None) -> int:
    """Seal a saved model folder: `python -m core.integrity results/<name>/final`."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not Path(args[0]).is_dir():
        print("usage: python -m core.integrity FOLDER (a saved model's folder, e.g. results/<name>/final)",
              file=sys.stderr)
        return 2
    folder = Path(args[0])
    names = [p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
             and p.name != MANIFEST_FILE]
    print(f"sealed {len(names)} files: {write_manifest(folder, names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
