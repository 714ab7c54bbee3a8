"""The benchmark scripts still run: each answers --help, and the cheap ones finish on a tiny setting. Run in this
process (as runpy runs `python bench/NAME.py`), so torch and Ray are imported once for all of them."""
import runpy
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
SCRIPTS = sorted(path.name for path in BENCH.glob("*.py")  # not the modules they import (common, notebook_reference)
                 if 'if __name__ == "__main__":' in path.read_text())


def run_script(name: str, args: list[str], monkeypatch) -> int:
    """`python bench/NAME.py ARGS` in this process; its exit code."""
    monkeypatch.syspath_prepend(str(BENCH))  # as when the script is run: bench/ first on the path
    monkeypatch.setattr(sys, "argv", [str(BENCH / name), *args])
    try:
        runpy.run_path(str(BENCH / name), run_name="__main__")
    except SystemExit as stop:
        return 0 if stop.code is None else stop.code
    return 0


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_script_answers_help(name, monkeypatch, capsys):
    assert run_script(name, ["--help"], monkeypatch) == 0
    assert "usage:" in capsys.readouterr().out


def test_the_id_cases_table_has_a_row_per_case(monkeypatch, capsys):
    from tests.cases import DATA_CASES

    assert run_script("id_cases.py", [], monkeypatch) == 0
    table = capsys.readouterr().out
    assert table.startswith("| case | what it does now |")
    assert table.count("| bad input: ") == len(DATA_CASES)


def test_the_synthetic_structure_check_prints_the_three_figures(monkeypatch, capsys):
    code = run_script("synthetic_structure.py", ["--customers", "200", "--epochs", "1"], monkeypatch)
    out = capsys.readouterr().out
    assert "validation NDCG@5: model " in out and ", Markov " in out and ", most popular " in out
    assert code == (0 if "structure learned" in out else 1)
