"""What each id, time and file case does now: read exactly (counts equal to the file's) or refused in one line.

    python bench/id_cases.py [--before /tmp/seqrec-main] > /tmp/id_cases.md

Every case of issue 22 (ids that used to merge, text ids, mixed time zones, separators, BOM, empty files)
and every data case of tests/cases.py (those tests/test_bad_inputs.py checks) is written to a temporary
folder and read through core.data.load_interactions (the bad-input cases through core.train's command line,
as the test does).
A read case counts distinct customers and items as text straight from the file (pandas, dtype=str), so a
merge or a split would show as a difference. --before CODE adds a column: what a checkout of other code (e.g.
`git worktree add /tmp/seqrec-main main`) did with the same file, read in a child process. Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from common import ROOT  # noqa: F401  (the repository importable: core, tests)

from core.config import build_config  # noqa: E402
from core.data import load_interactions  # noqa: E402
from core.errors import RecsysError  # noqa: E402
from core.ids import id_type  # noqa: E402
from core.train import main as train_main  # noqa: E402
from tests.cases import DATA_CASES, make  # noqa: E402

HEADER = "account_number,agreement_date,model_number,model_description_1,model_description_2\n"


def rows(users, items, times=None) -> str:
    times = times or [f"2024-01-{1 + i % 28:02d}" for i in range(len(users))]
    return HEADER + "".join(f"{u},{t},{i},d,e\n" for u, t, i in zip(users, times, items))


def issue_cases(folder: Path) -> list[tuple[str, Path, dict]]:
    """(case, file, extra settings) for each id and time case of the issue."""
    big = [str(1_234_567_890_123_456_000 + i) for i in range(128)]  # 19 digits, consecutive
    cases = {
        "Amazon ids (A1MNLT8X5G66H1, B00XYZ1234)": rows([f"A1MNLT8X5G66H{i % 3}" for i in range(9)],
                                                        [f"B00XYZ{1230 + i % 4}" for i in range(9)]),
        "UUID customers, SKU items": rows([f"6f1c2a9e-0b7d-4c1e-9a51-{i % 4:012d}" for i in range(12)],
                                          [f"SKU-{i % 5}/blue" for i in range(12)]),
        "200 customers >= 2**63": rows([2 ** 63 + i for i in range(200)] * 2, [1, 2] * 200),
        "200 customers >= 2**64": rows([2 ** 64 + i for i in range(200)] * 2, [1, 2] * 200),
        "one 12.0 among 128 19-digit items": rows([1] * 129, big + ["12.0"]),
        "customers 1e3 and 1000": rows(["1000", "1e3", "1000", "1e3"], [1, 2, 2, 1]),
        "items 7 and 007": rows([1, 1, 2], ["7", "007", "7"]),
        "zero-padded items only (ASINs 0205616461)": rows([1, 1, 2], ["0205616461", "0205616462", "0205616461"]),
        "times naive and with offset mixed": rows([1, 1, 2], [5, 6, 5], ["2024-01-01T10:00:00+01:00",
                                                                         "2024-01-01 09:30", "2024-01-02"]),
        "times all with offsets (+01:00, Z)": rows([1, 1, 2], [5, 6, 5], ["2024-01-01T10:00:00+01:00",
                                                                          "2024-01-01 09:30Z", "2024-01-02T00:00Z"]),
        "';'-separated file": rows([1, 1, 2], [5, 6, 5]).replace(",", ";"),
        "tab-separated, other column names": "user\ttime\titem\n1\t2024-01-01\t5\n",
        "UTF-8 BOM": "\ufeff" + rows([1, 1, 2], [5, 6, 5]),
    }
    out = []
    for i, (case, text) in enumerate(cases.items()):
        path = folder / f"case{i}.csv"
        path.write_text(text, encoding="utf-8")
        out.append((case, path, {}))
    (folder / "ml").mkdir()
    (folder / "ml" / "u.data").write_text("")
    (folder / "ml" / "u.item").write_text("1|x|y\n")
    out.append(("empty u.data", folder / "ml", {}))
    (folder / "seqs.txt").write_text("A1MN B00X B01Y\nA2ZZ B01Y B00X B02Z\n")
    out.append(("sequence file with text ids", folder / "seqs.txt", {}))
    pd.DataFrame({"account_number": np.array([2 ** 64 - 1, 2 ** 63, 5], dtype=np.uint64),
                  "agreement_date": ["2024-01-01"] * 3, "model_number": [1, 2, 1], "model_description_1": "d",
                  "model_description_2": "e"}).to_parquet(folder / "uint64.parquet")
    out.append(("Parquet uint64 customers >= 2**63", folder / "uint64.parquet", {}))
    return out


def file_counts(path: Path) -> tuple[int, int, int] | None:
    """(events, customers, items) counted as text straight from a CSV or sequence file."""
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path).astype(str)
    elif path.suffix == ".txt":
        tokens = [line.split() for line in path.read_text().splitlines() if line.strip()]
        return sum(len(t) - 1 for t in tokens), len({t[0] for t in tokens}), len({i for t in tokens for i in t[1:]})
    elif path.suffix == ".csv":
        frame = pd.read_csv(path, dtype=str, sep=None, engine="python", encoding="utf-8-sig")
    else:
        return None
    return len(frame), frame.iloc[:, 0].str.strip().nunique(), frame.iloc[:, 2].str.strip().nunique()


def outcome(path: Path, settings: dict) -> str:
    try:
        frame = load_interactions(build_config({"data": str(path), **settings}))
    except RecsysError as err:
        return f"refused: `{str(err).replace(str(path.parent) + '/', '')}`"
    counts = (len(frame), frame["user"].nunique(), frame["item"].nunique())
    kinds = [id_type(np.asarray(frame[column])) for column in ("user", "item")]
    return (f"read ({kinds[0]} customers, {kinds[1]} items): {counts[0]} events, {counts[1]} customers, "
            f"{counts[2]} items (file: {file_counts(path)})")


BEFORE = """
import json, sys
from core.config import build_config
from core.data import load_interactions
try:
    frame = load_interactions(build_config({"data": sys.argv[1]}))
    print(json.dumps([len(frame), int(frame["user"].nunique()), int(frame["item"].nunique())]))
except Exception as err:
    print(json.dumps(f"{type(err).__name__}: {str(err)[:160]}"))
"""


def outcome_before(path: Path, code: Path) -> str:
    """What other code did with the file: counts (events, customers, items) or its error."""
    done = subprocess.run([sys.executable, "-c", BEFORE, str(path)], cwd=code, capture_output=True, text=True,
                          env={"PYTHONPATH": str(code), "PATH": ""})
    answer = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else done.stderr[-160:]
    if isinstance(answer, list):
        return f"read: {answer[0]} events, {answer[1]} customers, {answer[2]} items"
    return f"refused: `{answer.replace(str(path.parent) + '/', '')}`"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, help="a checkout of other code to read the issue's cases too")
    args = parser.parse_args()
    before = f" before ({args.before.name}) |" if args.before else ""
    print(f"| case | what it does now |{before}\n| --- | --- |{' --- |' * bool(before)}")
    with tempfile.TemporaryDirectory() as folder:
        for case, path, settings in issue_cases(Path(folder)):
            then = f" {outcome_before(path, args.before)} |" if args.before else ""
            print(f"| {case} | {outcome(path, settings)} |{then}")
        for case, _ in DATA_CASES:
            case_folder = Path(folder) / case.replace(" ", "_").replace("/", "_")
            case_folder.mkdir()
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                code = train_main(make(case_folder, case) + ["--quiet"])
            lines = [line for line in err.getvalue().splitlines() if line.startswith("error: ")]
            text = lines[0].replace(str(case_folder) + "/", "") if lines else err.getvalue()[-200:]
            print(f"| bad input: {case} | exit {code}, {len(lines)} line: `{text}` |{' |' * bool(before)}")


if __name__ == "__main__":
    main()
