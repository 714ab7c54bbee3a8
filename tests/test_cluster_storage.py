"""Outgrowing one machine: a search on a two-node Ray cluster with its results in an S3-compatible object store
(moto's server, started here), interrupted, resumed, retrained and recommended from the bucket, and checked
against the same search on local disk; storage that cannot be used fails in one line."""
import json
import logging
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow.fs as pafs
import pytest

from search.plan import SearchPlan
from search.retrain import main as retrain_main
from search.run import main as run_main
from search.serving.app import Recommender
from search.serving.recommend import main as recommend_main
from search.storage import child, endpoint_of, last_part
from tests.conftest import SMALL_SPACE, TINY_SEARCH, free_port, write_space

BUCKET = "bars"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_EC2_METADATA_DISABLED": "true"}  # no instance-metadata lookups for credentials
SPACE = SMALL_SPACE.replace("grace_period: 1", "grace_period: 2")  # no early stop: both nodes' trials run 2 epochs
@pytest.fixture(scope="module")
def endpoint():
    """host:port of an S3-compatible server holding an empty bucket BUCKET, with the credentials in the
    environment (the Ray nodes started below inherit them)."""
    moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install -e '.[test]')")
    with pytest.MonkeyPatch.context() as patch:
        for key, value in CREDENTIALS.items():
            patch.setenv(key, value)
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        port = free_port()
        server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        try:
            fs, _ = pafs.FileSystem.from_uri(f"s3://{BUCKET}?scheme=http&endpoint_override=127.0.0.1:{port}"
                                             "&allow_bucket_creation=true")
            fs.create_dir(BUCKET)
            yield f"127.0.0.1:{port}"
        finally:
            server.stop()


def storage_uri(endpoint: str, *parts: str) -> str:
    return child(f"s3://{BUCKET}/results?scheme=http&endpoint_override={endpoint}", *parts)


def bucket(endpoint: str) -> pafs.FileSystem:
    return pafs.FileSystem.from_uri(storage_uri(endpoint))[0]


def start_node(*args: str) -> subprocess.Popen:
    ray_cli = str(Path(sys.executable).parent / "ray")
    return subprocess.Popen([ray_cli, "start", "--block", "--num-cpus=1", "--object-store-memory=150000000", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def wait_for_nodes(address: str, count: int, deadline: float) -> None:
    ray_cli = str(Path(sys.executable).parent / "ray")
    while True:
        status = subprocess.run([ray_cli, "status", f"--address={address}"], capture_output=True, text=True)
        if status.returncode == 0 and status.stdout.count(" node_") >= count:
            return
        assert time.time() < deadline, f"the Ray cluster did not reach {count} nodes:\n{status.stdout[-2000:]}"
        time.sleep(1)


@pytest.fixture(scope="module")
def cluster(endpoint):
    """A two-node Ray cluster on this machine, 1 CPU each: a head on 127.0.0.1 and a node on 127.0.0.2 (so that
    Tune's node_ip tells them apart). Only these two processes are stopped at the end, never any other Ray."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths have a length limit
    nodes = [start_node("--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--include-dashboard=false",
                        f"--temp-dir={temp_dir}")]
    try:
        wait_for_nodes(address, 1, time.time() + 90)
        nodes.append(start_node(f"--address={address}", "--node-ip-address=127.0.0.2"))
        wait_for_nodes(address, 2, time.time() + 90)
        yield address
    finally:
        for node in reversed(nodes):  # SIGTERM stops that node's processes only
            node.send_signal(signal.SIGTERM)
            node.wait(timeout=60)
        subprocess.run(["rm", "-rf", temp_dir], check=False)


def finished_epochs(fs: pafs.FileSystem, experiment: str) -> int:
    """Trial checkpoints uploaded to the bucket so far (one per trial and epoch)."""
    listing = fs.get_file_info(pafs.FileSelector(experiment, allow_not_found=True, recursive=True))
    return sum(info.base_name == "state.pt" for info in listing)


def interrupted_search(command: list[str], fs: pafs.FileSystem, experiment: str) -> subprocess.CompletedProcess:
    """Run the search and Ctrl-C it once a first trial checkpoint is in the bucket."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None and finished_epochs(fs, experiment) < 1:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    return subprocess.CompletedProcess(command, process.returncode, "", err)


@pytest.mark.ray
def test_search_on_two_nodes_into_a_bucket_resumes_retrains_and_recommends_like_local_disk(
        tmp_path, monkeypatch, cluster, endpoint):
    monkeypatch.chdir(tmp_path)  # a URI search keeps its reports in ./results/<name>
    search = ["--samples", "3", "--space", write_space(tmp_path, SPACE), "--address", cluster, "--no-dashboard",
              *TINY_SEARCH]
    assert run_main(["--name", "disk", "--storage", str(tmp_path / "disk"), *search]) == 0

    uri, fs = storage_uri(endpoint), bucket(endpoint)
    stopped = interrupted_search([sys.executable, "-m", "search.run", "--name", "s3", "--storage", uri, *search],
                                 fs, f"{BUCKET}/results/s3")
    assert stopped.returncode == 130, stopped.stderr[-3000:]
    assert f"--resume --name s3 --storage '{uri}' --address {cluster}" in stopped.stderr
    assert "interrupted" in fs.open_input_stream(f"{BUCKET}/results/s3/search.yaml").read().decode()
    subprocess.run(["rm", "-rf", "results"], check=True)  # resumed from the bucket alone, as on another machine
    assert run_main(["--resume", "--name", "s3", "--storage", uri, "--address", cluster, "--no-dashboard"]) == 0

    local = pd.read_csv(tmp_path / "disk" / "disk" / "trials.csv")
    remote = pd.read_csv(fs.open_input_file(f"{BUCKET}/results/s3/trials.csv"))
    assert remote.equals(pd.read_csv(tmp_path / "results" / "s3" / "trials.csv"))  # the reports, copied
    assert len(local) == len(remote) == 3 and (remote["status"] == "completed").all()
    keys = ["lr", "hidden_dim", "embed_dim"]
    same = local.merge(remote, on=keys, suffixes=("_disk", "_s3"))
    assert len(same) == 3  # identical configs (same seeds) ...
    for metric in ("best_val_ndcg@5", "last_val_loss", "peak_epoch"):  # ... and identical metrics
        assert (same[f"{metric}_disk"] == same[f"{metric}_s3"]).all(), same[[f"{metric}_disk", f"{metric}_s3"]]
    assert remote["node"].nunique() == 2 and "127.0.0.2" in set(remote["node"])  # trials ran on both nodes
    for trial in remote["trial_id"]:  # checkpoints in the bucket; only our reports locally
        assert fs.get_file_info(f"{BUCKET}/results/s3/{trial}/checkpoint_000001/state.pt").is_file
    assert all(path.is_file() for path in (tmp_path / "results" / "s3").iterdir())
    for name in ("tuner.pkl", "search.yaml", "best_config.yaml", "summary.md", "search_progress.png"):
        assert fs.get_file_info(f"{BUCKET}/results/s3/{name}").is_file, name  # Ray's state beside our reports

    subprocess.run(["rm", "-rf", "results"], check=True)
    assert retrain_main([str(tmp_path / "disk" / "disk")]) == 0
    assert retrain_main([storage_uri(endpoint, "s3")]) == 0  # the winner read from the bucket
    for name in ("model.pt", "metrics.json", "report.md"):  # final/ written back to it, and kept locally
        assert fs.get_file_info(f"{BUCKET}/results/s3/final/{name}").is_file, name
        assert (tmp_path / "results" / "s3" / "final" / name).is_file()
    tested = [json.loads(path.read_text())["model"]["mean"]
              for path in (tmp_path / "disk" / "disk" / "final" / "metrics.json",
                           tmp_path / "results" / "s3" / "final" / "metrics.json")]
    assert tested[0] == tested[1] and tested[0]["ndcg@5"] > 0

    final = storage_uri(endpoint, "s3", "final")
    assert recommend_main([final, "--all", "--k", "3", "--out", "s3.csv"]) == 0
    assert recommend_main([str(tmp_path / "disk" / "disk" / "final"), "--all", "--k", "3", "--out", "disk.csv"]) == 0
    recommended = pd.read_csv("s3.csv")
    assert recommended.equals(pd.read_csv("disk.csv"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{endpoint}")  # the endpoint from the environment instead
    customer = str(recommended["customer"].iloc[0])
    assert recommend_main([f"s3://{BUCKET}/results/s3/final", "--customer", customer, "--k", "3"]) == 0
    replica = Recommender.func_or_class(final)  # what each Serve replica does: fetch and load the model
    assert replica.card["model"] == final and replica.card["test_metrics"]["model"]["mean"] == tested[1]


@pytest.mark.ray
@pytest.mark.parametrize("problem", ["missing bucket", "wrong credentials", "no endpoint"])
def test_storage_that_cannot_be_used_fails_in_one_line_before_anything_is_written(
        problem, tmp_path, monkeypatch, capsys, endpoint):
    monkeypatch.chdir(tmp_path)
    uri = storage_uri(endpoint)
    if problem == "missing bucket":
        uri, expected = uri.replace(f"s3://{BUCKET}/", "s3://no-such-bucket/"), "'no-such-bucket' of"
    elif problem == "wrong credentials":
        monkeypatch.setattr("moto.settings.INITIAL_NO_AUTH_ACTION_COUNT", 0)  # moto now checks every key
        expected = "refused the credentials"
    else:
        uri, expected = uri.replace(endpoint, f"127.0.0.1:{free_port()}"), "cannot reach the object store"
    code = run_main(["--samples", "2", "--name", "bad", "--storage", uri, "--no-dashboard", *TINY_SEARCH])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and expected in err and "\n" not in err, err
    assert not (tmp_path / "results").exists()
    if problem != "wrong credentials":
        assert retrain_main([child(uri, "bad")]) == 2
        assert expected in capsys.readouterr().err


def test_a_uri_keeps_its_query_last_and_names_its_endpoint(monkeypatch):
    uri = "s3://bars/results?scheme=http&endpoint_override=127.0.0.1:9000"
    assert child(uri, "s3", "final") == "s3://bars/results/s3/final?scheme=http&endpoint_override=127.0.0.1:9000"
    assert child("s3://bars/results/", "x") == "s3://bars/results/x" and child("results", "x") == "results/x"
    assert last_part(child(uri, "s3")) == "s3" and last_part("results/s3") == "s3"
    plan = SearchPlan(name="s3", storage=uri, folder="results/s3", samples=1, cpus_per_trial=1, gpus_per_trial=0,
                      concurrency=1, config={}, search={}, status="running", created="")
    assert plan.tune_path == "s3://bars/results/s3?scheme=http&endpoint_override=127.0.0.1:9000"
    assert endpoint_of(uri) == ("127.0.0.1", 9000)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    assert endpoint_of("s3://bars/results") is None and endpoint_of("gs://bars/results") is None
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://minio.local")
    assert endpoint_of("s3://bars/results") == ("minio.local", 80)
    assert endpoint_of("s3://bars/results?endpoint_override=s3.example.com") == ("s3.example.com", 443)
