"""The benchmark scripts still run: each answers --help, and the cheap ones finish on a tiny setting. Run in this
process (as runpy runs `python bench/NAME.py`), so torch and Ray are imported once for all of them."""
import math
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


def test_search_variants_refuses_a_variant_without_flags_before_any_search(monkeypatch):
    code = run_script("search_variants.py", ["--variants", "startup-3", "--seeds", "0"], monkeypatch)
    assert code == "--variants: expected NAME=FLAGS, got 'startup-3'"


def test_the_base_configs_value_is_read_from_the_summary(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    from common import base_value

    summary = tmp_path / "summary.md"
    summary.write_text("| recommender | val_hr@5 | val_mrr@5 | val_ndcg@5 |\n| --- | --- | --- | --- |\n"
                       "| best trial (its best epoch) | 0.0741 | 0.0512 | 0.0626 |\n"
                       "| base config (its best epoch) | 0.0724 | 0.04625 | 0.05275 |\n")
    assert base_value(summary) == 0.05275
    summary.write_text("| best trial (its best epoch) | 0.0741 | 0.0512 | 0.0626 |\n")
    assert math.isnan(base_value(summary))  # the base config was not run
