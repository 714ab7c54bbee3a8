"""Ids as the user wrote them: text ids end to end (search, retrain, recommend, export, serve), integer ids kept
as integers, and every id case that used to merge silently now read exactly or refused naming rows."""
import hashlib
import json
import socket

import numpy as np
import pandas as pd
import pytest
import torch

from core.artifact import MODEL_FILE, load_model, save_model
from core.config import build_config
from core.data import LATER_SETTINGS, prepare_data
from core.errors import DataError
from core.export import read_customer_ids, recommend_all
from core.fit import fit
from core.integrity import write_manifest
from core.recommend import recommend_for
from core.sources import load_event_log
from core.synthetic import generate_rentals
from core.text_sources import load_movielens, load_sequences
from search import retrain as retrain_cli
from search import run as search_cli
from search.serving import recommend as recommend_cli
from tests.conftest import TINY, ask, write_space

COLUMNS = ["account_number", "agreement_date", "model_number", "model_description_1", "model_description_2"]


def amazon_log(path, customers: int = 200, items: int = 140):
    """The synthetic rental log with Amazon-style ids: customers 'A1...', items 'B00...' (text, not numbers)."""
    log = generate_rentals(customers, items, seed=0)[COLUMNS].copy()
    log["account_number"] = "A1" + log["account_number"].astype(str).str.zfill(6) + "X5G"
    log["model_number"] = "B00" + log["model_number"].astype(str).str.zfill(5) + "Q"
    log.to_csv(path, index=False)
    return path, log


def load(path):
    return load_event_log(path, *COLUMNS)


def write_rows(path, users, items, times=None):
    times = times if times is not None else [f"2024-01-{1 + i % 28:02d}" for i in range(len(users))]
    path.write_text("account_number,agreement_date,model_number,model_description_1,model_description_2\n" +
                    "".join(f"{u},{t},{i},d,e\n" for u, t, i in zip(users, times, items)))
    return path


def test_text_ids_are_read_exactly_and_kept_for_every_output(tmp_path):
    path, log = amazon_log(tmp_path / "amazon.csv")
    data = prepare_data(build_config({"data": str(path)}))
    assert data.stats["events_loaded"] == len(log)
    assert data.stats["customers_loaded"] == log["account_number"].nunique()
    # zero-padded to one width, the text ids sort as the numbers do: the same log with integer ids is the same data
    numbers = prepare_data(build_config({"synthetic_customers": 200, "synthetic_items": 140}))
    for name in ("items", "user_start", "period"):
        assert getattr(data, name).tolist() == getattr(numbers, name).tolist(), name
    assert data.user_ids.tolist() == ["A1" + str(u).zfill(6) + "X5G" for u in numbers.user_ids]
    numbered = ["B00" + str(n).zfill(5) + "Q" for n in numbers.catalog["item_number"]]
    assert data.catalog["item_number"].tolist() == numbered
    assert data.catalog["description_1"].tolist() == numbers.catalog["description_1"].tolist()
    # each customer's items, in time order, spelled as in the file
    first = data.user_ids[0]
    mine = log[log["account_number"] == first].sort_values("agreement_date", kind="stable")
    got = data.catalog["item_number"].to_numpy()[data.items[data.user_start[0]:data.user_start[1]] - 1]
    assert got.tolist() == mine["model_number"].tolist()


def test_integer_ids_stay_int64_and_fingerprints_unchanged(tmp_path):
    path = write_rows(tmp_path / "log.csv", [7, 7, 8, 8, 9, 7], [100, 200, 100, 300, 5, 5])
    frame = load(path)
    assert np.asarray(frame["user"]).dtype == np.int64 and np.asarray(frame["item"]).dtype == np.int64
    data = prepare_data(build_config({"data": str(path)}))
    assert data.catalog["item_number"].dtype == np.int64 and data.user_ids.tolist() == [7, 8]
    assert data.catalog["item_number"].tolist() == [5, 100, 200, 300] and data.items.tolist() == [2, 3, 1, 2, 4]
    # the fingerprint as computed before text ids existed (settings, then the arrays' bytes): saved searches match
    digest = hashlib.sha256(repr(sorted((k, v) for k, v in data.settings.items()
                                        if LATER_SETTINGS.get(k, object()) != v)).encode())
    for array in (data.items, data.user_start, data.period, data.catalog["item_number"].to_numpy()):
        digest.update(np.ascontiguousarray(array).tobytes())
    assert data.fingerprint() == digest.hexdigest()[:16]


@pytest.mark.parametrize("ids, expected", [
    ([2 ** 63 + i for i in range(6)], 6),             # beyond int64: used to wrap to negative numbers
    ([2 ** 64 + i for i in range(6)], 6),             # beyond uint64: used to collapse into one
    (["0205616461", "0205616462", "0205616461", "1"], 3),  # zero-padded ASINs keep their zeros
    (["a1", "A1", "b-7", "b-7"], 3),                  # text compared exactly, case included
])
def test_ids_that_used_to_merge_are_read_exactly(tmp_path, ids, expected):
    frame = load(write_rows(tmp_path / "log.csv", ids, ids))
    assert frame["user"].nunique() == expected and frame["item"].nunique() == expected
    assert [str(u) for u in frame["user"]] == [str(i) for i in ids]


@pytest.mark.parametrize("ids, message", [
    ([1234567890123456789, 1234567890123456788, "12.0"], r"spells numbers in more than one way: line 2 "
                                                          r"\('1234567890123456789'\), line 3 .*line 4 \('12.0'\)"),
    (["1000", "1e3"], r"spells numbers in more than one way: line 2 \('1000'\), line 3 \('1e3'\)"),
    (["1.0", "2.0"], r"spells numbers in more than one way: line 2 \('1.0'\), line 3 \('2.0'\)"),
    (["7", "007"], r"writes one id in two ways at lines 2 \('7'\), 3 \('007'\)"),
    (["7", "+7"], r"writes one id in two ways at lines 2 \('7'\), 3 \('\+7'\)"),
])
def test_two_spellings_of_one_number_are_refused_naming_rows(tmp_path, ids, message):
    with pytest.raises(DataError, match=r"column 'account_number' " + message):
        load(write_rows(tmp_path / "log.csv", ids, [1] * len(ids)))


def test_parquet_uint64_ids_beyond_int64_become_text(tmp_path):
    path = tmp_path / "log.parquet"
    pd.DataFrame({"account_number": np.array([2 ** 64 - 1, 2 ** 64 - 2, 5], dtype=np.uint64),
                  "agreement_date": ["2024-01-01"] * 3, "model_number": ["x", "y", "x"],
                  "model_description_1": "d", "model_description_2": "e"}).to_parquet(path)
    frame = load(path)
    assert frame["user"].astype(str).tolist() == [str(2 ** 64 - 1), str(2 ** 64 - 2), "5"]


def test_separator_bom_and_empty_files(tmp_path):
    rows = "account_number;agreement_date;model_number;model_description_1;model_description_2\n" \
           "A;2024-01-01;x;d;e\nA;2024-01-02;y;d;e\n"
    (tmp_path / "semi.csv").write_text(rows)
    assert load(tmp_path / "semi.csv")["item"].tolist() == ["x", "y"]
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf" + rows.replace(";", ",").encode())
    assert load(tmp_path / "bom.csv")["user"].tolist() == ["A", "A"]
    (tmp_path / "tab.csv").write_text("user\ttime\titem\nA\t2024-01-01\tx\n")
    with pytest.raises(DataError, match=r"missing columns 'account_number' \(setting user_col\).*columns found: "
                                        r"user, time, item \(separator found: tab\)"):
        load(tmp_path / "tab.csv")
    (tmp_path / "ml").mkdir()
    (tmp_path / "ml" / "u.data").write_text("")
    (tmp_path / "ml" / "u.item").write_text("1|x|y\n")
    with pytest.raises(DataError, match="u.data is empty"):
        load_movielens(tmp_path / "ml")


def test_sequence_file_with_text_ids(tmp_path):
    (tmp_path / "seqs.txt").write_text("A1MN B00X B01Y\nA2ZZ B01Y B00X B02Z\n")
    frame = load_sequences(tmp_path / "seqs.txt")
    assert frame["user"].tolist() == ["A1MN"] * 2 + ["A2ZZ"] * 3
    assert frame["item"].tolist() == ["B00X", "B01Y", "B01Y", "B00X", "B02Z"]


@pytest.fixture(scope="module")
def string_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("strings")
    path, _ = amazon_log(folder / "amazon.csv")
    config = build_config(dict(TINY, data=str(path), epochs=1))
    data = prepare_data(config)
    save_model(folder / "final", fit(config, data).model, config, data)
    return folder


def test_saved_text_ids_load_safely_and_answer_by_the_users_ids(string_model):
    payload = torch.load(string_model / "final" / MODEL_FILE, weights_only=True)
    assert payload["id_types"] == {"customer": "string", "item": "string"}
    saved = load_model(string_model / "final")
    customer = saved.user_ids[3]
    assert customer.startswith("A1")
    top = recommend_for(saved, customer=customer, k=3)
    assert len(top) == 3 and all(n.startswith("B00") for n in top["item_number"])
    by_items = recommend_for(saved, items=list(saved.catalog["item_number"][:2]), k=2)
    assert by_items["item_number"].str.startswith("B00").all()
    typo = customer[:-1] + "H"
    with pytest.raises(DataError, match=rf"unknown customer {typo} \(\d+ customers, close: {customer}"):
        recommend_for(saved, customer=typo)
    frame = recommend_all(saved, customers=[customer, saved.user_ids[0]], k=2)
    assert frame["customer"].tolist() == [customer] * 2 + [saved.user_ids[0]] * 2


def test_a_model_saved_before_id_types_loads_and_answers_identically(tmp_path):
    config = build_config(dict(TINY, epochs=1))
    data = prepare_data(config)
    save_model(tmp_path, fit(config, data).model, config, data)
    before = recommend_all(load_model(tmp_path), k=3)
    payload = torch.load(tmp_path / MODEL_FILE, weights_only=True)
    assert payload["id_types"] == {"customer": "integer", "item": "integer"}
    del payload["id_types"]  # as saved by the code before text ids, then sealed by its owner
    torch.save(payload, tmp_path / MODEL_FILE)
    write_manifest(tmp_path, [MODEL_FILE])
    after = recommend_all(load_model(tmp_path), k=3)
    pd.testing.assert_frame_equal(before, after)
    assert after["customer"].dtype == np.int64 and after["item_number"].dtype == np.int64


def test_cli_recommends_and_exports_by_text_ids(string_model, tmp_path, capsys):
    final = str(string_model / "final")
    saved = load_model(final)
    customer = saved.user_ids[5]
    assert recommend_cli.main([final, "--customer", customer, "--k", "3"]) == 0
    assert capsys.readouterr().out.count(" B00") == 3
    items = ",".join(saved.catalog["item_number"][:3])
    assert recommend_cli.main([final, "--items", items, "--k", "2"]) == 0
    assert capsys.readouterr().out.count(" B00") == 2
    out = tmp_path / "all.csv"
    assert recommend_cli.main([final, "--all", "--out", str(out), "--k", "2"]) == 0
    table = pd.read_csv(out, dtype=str)
    assert set(table["customer"]) == set(saved.user_ids) and table["item_number"].str.startswith("B00").all()
    listed = tmp_path / "customers.txt"
    listed.write_bytes(b"\xef\xbb\xbfcustomer\n" + f"{saved.user_ids[2]}\n{saved.user_ids[0]}\n".encode())
    assert read_customer_ids(listed) == [saved.user_ids[2], saved.user_ids[0]]
    assert recommend_cli.main([final, "--customers", str(listed), "--out", str(out), "--k", "2"]) == 0
    assert pd.read_csv(out, dtype=str)["customer"].tolist() == [saved.user_ids[2]] * 2 + [saved.user_ids[0]] * 2
    assert recommend_cli.main([final, "--customer", "A9NOPE"]) == 2
    assert "unknown customer A9NOPE" in capsys.readouterr().err


@pytest.mark.ray
def test_search_and_retrain_on_text_ids(string_model, capsys):
    storage = string_model / "results"
    storage.mkdir()
    data = str(string_model / "amazon.csv")
    tiny = ["--set", "hidden_dim=16", "--set", "embed_dim=8", "--no-dashboard"]
    assert search_cli.main(["--samples", "2", "--storage", str(storage), "--name", "amazon", "--data", data,
                            "--space", write_space(storage), *tiny]) == 0
    assert retrain_cli.main([str(storage / "amazon")]) == 0
    saved = load_model(storage / "amazon" / "final")
    assert saved.user_ids[0].startswith("A1") and saved.catalog["item_number"][0].startswith("B00")
    metrics = json.loads((storage / "amazon" / "final" / "metrics.json").read_text())
    assert metrics["model"]["mean"]["ndcg@5"] > 0


@pytest.mark.ray
def test_serve_answers_in_the_users_text_ids(string_model):
    serve_cli = pytest.importorskip("search.serving.serve", reason="needs ray[serve]")

    saved = load_model(string_model / "final")
    customer, items = saved.user_ids[4], list(saved.catalog["item_number"][:2])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = serve_cli.parse_args([str(string_model / "final"), "--port", str(port)])
    serve_cli.start(args)
    try:
        status, answer = ask(port, "GET", f"/recommend?customer={customer}&k=3")
        assert status == 200 and answer["customer"] == customer
        expected = recommend_for(saved, customer=customer, k=3)["item_number"].tolist()
        assert [r["item_number"] for r in answer["recommendations"]] == expected
        status, answer = ask(port, "POST", "/recommend", json.dumps({"items": items, "k": 2}))
        assert status == 200
        assert [r["item_number"] for r in answer["recommendations"]] == \
            recommend_for(saved, items=items, k=2)["item_number"].tolist()
        status, answer = ask(port, "GET", "/recommend?customer=A9NOPE")
        assert status == 404 and "unknown customer A9NOPE" in answer["error"]
    finally:
        serve_cli.stop(args)


def test_lookups_by_the_users_spelling():
    from core.ids import positions_of

    numbers = np.array([3, 12, 2 ** 63 - 1], dtype=np.int64)
    assert positions_of(numbers, [" 12", 3, "+12", str(2 ** 63 - 1), str(2 ** 64), "4"])[0].tolist() == \
        [1, 0, 1, 2, -1, -1]
    assert positions_of(numbers, ["A1", "1.5"])[1] == ["A1", "1.5"]
    texts = np.array(["007", "A1", "B00X"], dtype=object)
    assert positions_of(texts, ["B00X", " 007", "7", "a1"])[0].tolist() == [2, 0, -1, -1]
