import numpy as np
import pytest

from core.config import build_config
from core.data import prepare_data
from core.errors import DataError
from core.fit import fit
from core.recommend import customer_history, item_ids_for_numbers, recommend


@pytest.fixture(scope="module")
def trained():
    config = {"synthetic_customers": 200, "synthetic_items": 140, "embed_dim": 8, "hidden_dim": 16, "epochs": 1}
    data = prepare_data(build_config(config))
    return fit(build_config(config), data).model, data


def test_top_k_with_descriptions_excluding_seen(trained):
    model, data = trained
    history = customer_history(data.user_ids, data.user_start, data.items, data.user_ids[0])
    assert history.tolist() == data.items[:data.user_start[1]].tolist()
    top = recommend(model, data.catalog, history, k=7)
    assert list(top.columns) == ["rank", "item_number", "description_1", "description_2", "score"]
    assert top["rank"].tolist() == list(range(1, 8))
    assert not set(top["item_number"]) & set(data.catalog["item_number"].to_numpy()[history - 1])
    assert (np.diff(top["score"]) <= 0).all() and top["score"].between(0, 1).all()
    with_seen = recommend(model, data.catalog, history, k=data.n_items, exclude_seen=False)
    assert len(with_seen) == data.n_items


def test_histories_by_item_number_and_unknown_ids(trained):
    model, data = trained
    numbers = data.catalog["item_number"].tolist()[:3]
    assert item_ids_for_numbers(data.catalog, numbers).tolist() == [1, 2, 3]
    with pytest.raises(DataError, match=r"unknown item number: 9999999"):
        item_ids_for_numbers(data.catalog, [numbers[0], 9999999])
    with pytest.raises(DataError, match="unknown customer 1 "):
        customer_history(data.user_ids, data.user_start, data.items, 1)
    with pytest.raises(DataError, match="history is empty"):
        recommend(model, data.catalog, np.array([], dtype=np.int64))
