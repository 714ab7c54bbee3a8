"""What signing and checking cost: `python bench/integrity_cost.py RESULTS/<name> [FINAL]`.

Times search.integrity's seal and check on a search folder's pickles, and core.integrity's digest check of a
saved model folder (mean of 50 / 20 runs). Uses its own key (a temporary SEQREC_TUNE_KEY), never yours.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def mean_ms(function, runs: int) -> float:
    began = time.perf_counter()
    for _ in range(runs):
        function()
    return (time.perf_counter() - began) / runs * 1000


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("search", help="a search folder, RESULTS/<name>")
    parser.add_argument("final", nargs="?", help="a saved model folder (RESULTS/<name>/final)")
    args = parser.parse_args(argv)
    argv = [args.search] + ([args.final] if args.final else [])
    os.environ["SEQREC_TUNE_KEY"] = str(Path(tempfile.mkdtemp()) / "key")
    from core.integrity import check_folder
    from search import integrity

    folder = Path(argv[0])
    integrity.seal(folder)
    files = integrity.pickled_files(folder)
    size = sum((folder / name).stat().st_size for name in files)
    print(f"{folder}: {len(files)} pickled files, {size / 1024:.0f} KiB: "
          f"seal {mean_ms(lambda: integrity.seal(folder), 50):.1f} ms, "
          f"check {mean_ms(lambda: integrity.untrusted(folder), 50):.1f} ms")
    if len(argv) > 1:
        model = Path(argv[1]) / "model.pt"
        print(f"{argv[1]}: digest check {mean_ms(lambda: check_folder(argv[1], 'model.pt'), 20):.2f} ms "
              f"({model.stat().st_size / 1024:.0f} KiB model.pt)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
