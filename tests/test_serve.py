"""The Ray Serve application: started once on a free port, queried over real HTTP."""
import json
import socket
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from core.artifact import load_model, save_model
from core.config import build_config
from core.data import prepare_data
from core.errors import RecsysError
from core.fit import fit
from core.recommend import recommend, recommend_batch, recommend_for
from tests.conftest import TINY, ask

serve_cli = pytest.importorskip("search.serving.serve", reason="needs ray[serve]")


@pytest.fixture(scope="module")
def saved_folder(tmp_path_factory):
    config = build_config(dict(TINY, epochs=1, dropout=0.3))
    data = prepare_data(config)
    folder = tmp_path_factory.mktemp("final")
    save_model(folder, fit(config, data).model, config, data, info={"experiment": "tiny"})
    (folder / "metrics.json").write_text(json.dumps({"model": {"mean": {"ndcg@5": 0.25}}}))
    return folder


@pytest.fixture(scope="module")
def saved(saved_folder):
    return load_model(saved_folder)


@pytest.fixture(scope="module")
def server(saved_folder):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = serve_cli.parse_args([str(saved_folder), "--port", str(port), "--max-batch-size", "8"])
    serve_cli.start(args)
    yield port
    serve_cli.stop(args)


def expected(saved, **query) -> list[dict]:
    return recommend_for(saved, **query).to_dict("records")


def assert_same(answer: list[dict], frame_rows: list[dict]) -> None:
    assert [(r["rank"], r["item_number"], r["description_1"], r["description_2"]) for r in answer] == \
        [(r["rank"], r["item_number"], r["description_1"], r["description_2"]) for r in frame_rows]
    assert np.allclose([r["score"] for r in answer], [r["score"] for r in frame_rows], rtol=1e-5, atol=1e-7)


def test_batched_ranking_equals_one_history_at_a_time(saved):
    rng = np.random.default_rng(0)
    histories = [rng.integers(1, len(saved.catalog) + 1, size=n) for n in (1, 3, 8, 30, 2)]
    ks, exclude = [5, 1, 10, 7, len(saved.catalog)], [True, False, True, False, True]
    tops = recommend_batch(saved.model, histories, ks, saved.config.max_seq_len, exclude)
    for history, k, skip, (ids, scores) in zip(histories, ks, exclude, tops):
        one = recommend(saved.model, saved.catalog, history, k=k, max_seq_len=saved.config.max_seq_len,
                        exclude_seen=skip)
        assert saved.catalog["item_number"].to_numpy()[ids - 1].tolist() == one["item_number"].tolist()
        assert np.allclose(scores, one["score"], rtol=1e-5, atol=1e-7)


@pytest.mark.ray
def test_customer_and_items_answers_equal_recommend_for(server, saved):
    customer = int(saved.user_ids[3])
    status, body = ask(server, "GET", f"/recommend?customer={customer}&k=7")
    assert status == 200 and body["customer"] == customer and body["k"] == 7
    assert_same(body["recommendations"], expected(saved, customer=customer, k=7))
    status, body = ask(server, "GET", f"/recommend?customer={customer}&include_seen=true")
    assert_same(body["recommendations"], expected(saved, customer=customer, k=5, include_seen=True))
    items = saved.catalog["item_number"].tolist()[4:9]
    status, body = ask(server, "POST", "/recommend", json.dumps({"items": items, "k": 3}))
    assert status == 200 and body["customer"] is None
    assert_same(body["recommendations"], expected(saved, items=items, k=3))


@pytest.mark.ray
def test_concurrent_requests_are_answered_each_with_its_own_ranking(server, saved):
    customers = [int(c) for c in saved.user_ids[:40]]
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda c: ask(server, "GET", f"/recommend?customer={c}&k=4"), customers))
    for customer, (status, body) in zip(customers, answers):
        assert status == 200 and body["customer"] == customer
        assert_same(body["recommendations"], expected(saved, customer=customer, k=4))


@pytest.mark.ray
def test_health_and_model_card(server, saved):
    assert ask(server, "GET", "/healthz") == (200, {"status": "ok", "search": "tiny"})
    status, card = ask(server, "GET", "/model")
    assert status == 200 and card["search"] == "tiny" and card["items"] == len(saved.catalog)
    assert card["config"]["hidden_dim"] == TINY["hidden_dim"]
    assert card["data_fingerprint"] == saved.info["data_fingerprint"]
    assert card["test_metrics"] == {"model": {"mean": {"ndcg@5": 0.25}}}


BAD_REQUESTS = [
    ("POST", "/recommend", "[" * 100_000 + "]" * 100_000, 400, "nested too deeply"),
    ("GET", "/recommend?customer=1", None, 404, "unknown customer 1 "),
    ("GET", "/recommend?customer=abc", None, 400, "customer must be an integer"),
    ("GET", "/recommend", None, 400, "give a customer"),
    ("GET", "/recommend?customer={c}&k=0", None, 400, "k must be an integer from 1 to {n}"),
    ("GET", "/recommend?customer={c}&k={n1}", None, 400, "k must be an integer from 1 to {n}"),
    ("GET", "/recommend?customer={c}&k=five", None, 400, "got 'five'"),
    ("GET", "/recommend?customer={c}&include_seen=maybe", None, 400, "include_seen must be true or false"),
    ("GET", "/recommend?customer={c}&costumer=2", None, 400, "unknown parameter costumer"),
    ("GET", "/recommend?customer={c}&customer=2", None, 400, "customer is given more than once"),
    ("POST", "/recommend", "{\"items\": [1, 2", 400, "malformed JSON"),
    ("POST", "/recommend", b"\xff\xfe", 400, "malformed JSON"),
    ("POST", "/recommend", "[1, 2]", 400, "must be a JSON object"),
    ("POST", "/recommend", "{\"items\": []}", 400, "items must be a non-empty list"),
    ("POST", "/recommend", "{\"items\": [{i}, 9999999, 8888888]}", 422, "unknown item numbers: 9999999"),
    ("POST", "/recommend", "{\"items\": [{i}, true]}", 400, "must be integers or strings, got True"),
    ("POST", "/recommend", "{\"items\": [{i}], \"k\": 1000}", 400, "k must be an integer from 1 to {n}"),
    ("POST", "/recommend", "{\"items\": [{i}], \"include_seen\": \"no\"}", 400, "include_seen must be true"),
    ("POST", "/recommend", "{\"items\": [{i}], \"customer\": 5}", 400, "unknown key customer"),
    ("POST", "/recommend", "{\"items\": [" + "1, " * 400_000 + "1]}", 413, "larger than 1,048,576 bytes"),
    ("DELETE", "/recommend", None, 405, "no route DELETE /recommend"),
    ("GET", "/nowhere", None, 404, "no route GET /nowhere"),
]


@pytest.mark.ray
def test_bad_requests_get_a_4xx_naming_the_problem_and_change_nothing(server, saved):
    customer, item = int(saved.user_ids[0]), int(saved.catalog["item_number"].iloc[0])
    before = ask(server, "GET", f"/recommend?customer={customer}&k=5")
    for method, path, body, status, message in BAD_REQUESTS:
        n = len(saved.catalog)
        path = path.replace("{c}", str(customer)).replace("{n1}", str(n + 1))
        body = body.replace("{i}", str(item)) if isinstance(body, str) else body
        message = message.replace("{n}", str(n))
        got, answer = ask(server, method, path, body)
        assert (got, set(answer)) == (status, {"error"}), (method, path, body, answer)
        assert message in answer["error"], (method, path, answer)
    assert ask(server, "GET", f"/recommend?customer={customer}&k=5") == before
    assert_same(before[1]["recommendations"], expected(saved, customer=customer, k=5))


@pytest.mark.ray
def test_missing_model_and_taken_port_are_refused_in_one_line(tmp_path, capsys):
    assert serve_cli.main([str(tmp_path / "nowhere")]) == 2
    assert "error: no saved model at" in capsys.readouterr().err
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        with pytest.raises(RecsysError, match="cannot listen on 127.0.0.1:"):
            serve_cli.check_port_free("127.0.0.1", holder.getsockname()[1])


@pytest.mark.ray
def test_sigterm_while_serve_starts_exits_cleanly_without_a_stack_dump(saved_folder):
    import signal
    import subprocess
    import sys
    import time

    from tests.listening import process_tree

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "search.serve", str(saved_folder), "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while len(process_tree(server.pid)) < 3 and server.poll() is None:  # Ray's GCS and raylet have started
        assert time.time() < deadline, "Ray did not start"
        time.sleep(0.2)
    server.send_signal(signal.SIGTERM)
    out, err = server.communicate(timeout=120)
    assert server.returncode == 130 and "stopped while starting; nothing is served" in err, err[-3000:]
    assert "serving" not in out and not any(word in err for word in ("Traceback", "Stack trace", "*** SIG")), err
