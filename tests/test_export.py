"""Top-K for every customer: coverage, seen items, agreement with the one-customer path, the CLI."""
import numpy as np
import pandas as pd
import pytest
import torch

from core.artifact import load_model, save_model
from core.config import build_config
from core.data import prepare_data
from core.errors import DataError
from core.export import read_customer_ids, recommend_all
from core.fit import fit
from core.recommend import customer_positions, recommend_for
from search.serving import recommend as recommend_cli


@pytest.fixture(scope="module", params=[{"markov_blend": 0}, {"markov_residual": True, "markov_blend": 0.5},
                                        {"embed_dropout": 0.2, "markov_blend": 0}],
                ids=["lstm", "lstm+markov residual+blend", "lstm, embedding dropout"])
def saved(tmp_path_factory, request):
    torch.set_num_threads(1)
    config = build_config({"synthetic_customers": 300, "synthetic_items": 140, "embed_dim": 8, "hidden_dim": 16,
                           "epochs": 1, "max_seq_len": 6, "dropout": 0.3, **request.param})
    data = prepare_data(config)
    folder = tmp_path_factory.mktemp("final")
    save_model(folder, fit(config, data).model, config, data)
    return load_model(folder), folder


def histories(saved):
    return {int(c): saved.items[saved.user_start[i]:saved.user_start[i + 1]] for i, c in enumerate(saved.user_ids)}


def test_every_customer_once_with_k_ranks_and_no_seen_item(saved):
    saved, _ = saved
    frame = recommend_all(saved, k=7, batch_size=37)  # several batches, histories shorter and longer than 6
    assert list(frame.columns) == ["customer", "rank", "item_number", "description_1", "description_2", "score"]
    assert frame["customer"].drop_duplicates().tolist() == saved.user_ids.tolist()  # sorted, each once
    assert (frame.groupby("customer")["rank"].apply(list) == [list(range(1, 8))] * len(saved.user_ids)).all()
    assert (frame.groupby("customer")["score"].diff().dropna() <= 0).all()
    numbers = saved.catalog["item_number"].to_numpy()
    seen = {(c, int(n)) for c, h in histories(saved).items() for n in numbers[h - 1]}
    assert not {(int(c), int(n)) for c, n in zip(frame["customer"], frame["item_number"])} & seen
    assert max(len(h) for h in histories(saved).values()) > saved.config.max_seq_len


def test_matches_the_one_customer_recommendation(saved):
    saved, _ = saved
    sample = np.random.default_rng(0).choice(saved.user_ids, 25, replace=False)
    for include_seen in (False, True):
        frame = recommend_all(saved, customers=sample, k=10, include_seen=include_seen, batch_size=8)
        assert frame["customer"].drop_duplicates().tolist() == sample.tolist()  # the order asked for
        for customer, got in frame.groupby("customer", sort=False):
            expected = recommend_for(saved, customer=int(customer), k=10, include_seen=include_seen)
            assert got["item_number"].tolist() == expected["item_number"].tolist()
            assert got["description_1"].astype(str).tolist() == expected["description_1"].tolist()
            assert got["description_2"].astype(str).tolist() == expected["description_2"].tolist()
            np.testing.assert_allclose(got["score"], expected["score"], rtol=1e-5)


def test_fewer_items_left_than_k_gives_fewer_rows_as_the_one_customer_path(saved):
    saved, _ = saved
    longest = max(histories(saved).items(), key=lambda pair: len(np.unique(pair[1])))
    k = len(saved.catalog)
    frame = recommend_all(saved, customers=[longest[0]], k=k)
    expected = recommend_for(saved, customer=longest[0], k=k)
    assert len(frame) == len(expected) == k - len(np.unique(longest[1]))
    assert frame["item_number"].tolist() == expected["item_number"].tolist()


def test_unknown_and_malformed_customers_are_named_together(saved, tmp_path):
    saved, _ = saved
    known = int(saved.user_ids[0])
    with pytest.raises(DataError, match=r"2 unknown customers: 12, 13 \(the model knows \d+ customers"):
        customer_positions(saved.user_ids, [known, 12, 13, 12])
    with pytest.raises(DataError, match="must be integers; not: abc, 1.5"):
        customer_positions(saved.user_ids, ["abc", known, "1.5"])
    path = tmp_path / "ids.txt"
    path.write_text(f"customer\n{known}\n\n 12 \n")
    assert read_customer_ids(path) == [str(known), "12"]
    path.write_text("\n")
    with pytest.raises(DataError, match="holds no customer ids"):
        read_customer_ids(path)


def test_cli_exports_all_or_a_list_and_names_bad_input(saved, tmp_path, capsys):
    saved, folder = saved
    out = tmp_path / "recs.parquet"
    assert recommend_cli.main([str(folder), "--all", "--k", "3", "--out", str(out), "--threads", "1"]) == 0
    frame = pd.read_parquet(out)
    assert len(frame) == 3 * len(saved.user_ids) and frame["customer"].nunique() == len(saved.user_ids)
    pd.testing.assert_frame_equal(frame, recommend_all(saved, k=3))
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(map(str, saved.user_ids[[5, 1]])) + "\n")
    csv = tmp_path / "recs.csv"
    assert recommend_cli.main([str(folder), "--customers", str(ids), "--k", "2", "--out", str(csv),
                               "--include-seen"]) == 0
    table = pd.read_csv(csv)
    assert table["customer"].tolist() == np.repeat(saved.user_ids[[5, 1]], 2).tolist()
    assert table.columns.tolist() == ["customer", "rank", "item_number", "description_1", "description_2", "score"]
    capsys.readouterr()
    ids.write_text(f"{saved.user_ids[0]}\n7\n8\n")
    assert recommend_cli.main([str(folder), "--customers", str(ids), "--out", str(csv)]) == 2
    assert capsys.readouterr().err.startswith("error: 2 unknown customers: 7, 8 ")
    assert recommend_cli.main([str(folder), "--all", "--out", str(tmp_path / "recs.xlsx")]) == 2
    assert "expected a .parquet or .csv file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        recommend_cli.main([str(folder), "--all"])
    assert "need --out" in capsys.readouterr().err
