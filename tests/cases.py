"""The bad data files a new user writes, each with the words its one-line refusal must hold: shared by
tests/test_bad_inputs.py and bench/id_cases.py."""
from __future__ import annotations

import pandas as pd

from tests.conftest import write_log

HEADER = "account_number,agreement_date,model_number,model_description_1,model_description_2\n"


def make(tmp_path, case: str) -> list[str]:
    """Write the case's input files; return the core.train arguments that use them."""
    csv = tmp_path / "log.csv"
    if case == "missing file":
        return ["--data", str(tmp_path / "nope.csv")]
    if case == "empty file":
        csv.write_text("")
    elif case == "header only":
        csv.write_text(HEADER)
    elif case == "binary .csv":
        csv.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    elif case == "corrupt parquet":
        (tmp_path / "log.parquet").write_bytes(b"PAR1" + b"\x00" * 64)
        return ["--data", str(tmp_path / "log.parquet")]
    elif case == "ragged row":
        csv.write_text(HEADER + "1,2024-01-01,5,a,b\n1,2024-01-02,6,a,b,extra,more\n")
    elif case == "missing column":
        pd.DataFrame({"account_number": [1], "date": ["2024-01-01"], "model_number": [3]}).to_csv(csv, index=False)
    elif case == "item ids 12 and 12.0":
        write_log(csv, [(1, "2024-01-01", 12), (1, "2024-01-02", "12.0")])
    elif case == "empty customer id":
        csv.write_text(HEADER + "1,2024-01-01,5,a,b\n,2024-01-02,6,a,b\n")
    elif case == "not a date":
        write_log(csv, [(1, "2024-01-01", 5), (1, "yesterday", 6)])
    elif case == "day-first dates":
        write_log(csv, [(1, "13/01/2024", 5), (1, "05/02/2024", 6)])
    elif case == "dates not in time_format":
        write_log(csv, [(1, "2024-01-13", 5), (1, "2024-02-05", 6)])
        return ["--data", str(csv), "--set", "time_format=%d/%m/%Y"]
    elif case == "one event per customer":
        write_log(csv, [(1, "2024-01-01", 5), (2, "2024-01-02", 6)])
    elif case == "sequence file with 11 and 011":
        (tmp_path / "seqs.txt").write_text("1 10 11\n2 11 011\n")
        return ["--data", str(tmp_path / "seqs.txt")]
    elif case == "MovieLens folder without u.item":
        (tmp_path / "ml").mkdir()
        (tmp_path / "ml" / "u.data").write_text("1\t10\t5\t881250949\n")
        return ["--data", str(tmp_path / "ml")]
    elif case == "config file missing":
        return ["--config", str(tmp_path / "mine.yaml")]
    elif case == "config file not YAML":
        (tmp_path / "mine.yaml").write_text("lr: [1, 2\n")
        return ["--config", str(tmp_path / "mine.yaml")]
    return ["--data", str(csv)]


DATA_CASES = [
    ("missing file", "nope.csv does not exist"),
    ("empty file", "log.csv is empty"),
    ("header only", "log.csv has no rows"),
    ("binary .csv", "cannot be read as CSV: byte 0x89 at position 0 is not UTF-8 text"),
    ("corrupt parquet", "log.parquet cannot be read as Parquet: the file is damaged or not Parquet"),
    ("ragged row", "cannot be read as CSV: expected 5 fields in line 3, saw 7"),
    ("missing column", "missing columns 'agreement_date' (setting time_col)"),
    ("item ids 12 and 12.0", "column 'model_number' spells numbers in more than one way: line 2 ('12'), line 3 ('12.0')"),
    ("empty customer id", "column 'account_number' has empty values at line 3"),
    ("not a date", "column 'agreement_date' has values that are not dates at line 3 ('yesterday')"),
    ("day-first dates", "--set time_format='%d/%m/%Y'"),
    ("dates not in time_format", "do not match time_format '%d/%m/%Y' at lines 2 ('2024-01-13')"),
    ("one event per customer", "no customer has at least 2 events"),
    ("sequence file with 11 and 011", "'items' writes one id in two ways at lines 1 ('11'), 2 ('011')"),
    ("MovieLens folder without u.item", "u.item is missing"),
    ("config file missing", "mine.yaml does not exist"),
    ("config file not YAML", "mine.yaml is not valid YAML"),
]
