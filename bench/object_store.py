"""The same search with its results on local disk and in an S3-compatible object store (moto's server, started
here, counting the bytes it receives): wall time, bytes stored, bytes uploaded; with --nodes 2, on a two-node
Ray cluster on this machine (1 CPU each), and how many trials each node ran.

    python bench/object_store.py [--samples 50] [--runs 1] [--nodes 1] [--storages disk s3] [-- search.run flags]

Needs moto[server] (pip install -e ".[test]"). Outputs in bench/out/object_store/.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import pyarrow.fs as pafs
from common import ROOT, run_search
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

BUCKET = "bench"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_EC2_METADATA_DISABLED": "true"}


class CountingReader:
    """A request body that adds the bytes read from it to store.received."""

    def __init__(self, stream, store: CountingStore) -> None:  # noqa: ANN001
        self.stream, self.store = stream, store

    def read(self, *args: int) -> bytes:
        data = self.stream.read(*args)
        self.store.received += len(data)
        return data

    def readline(self, *args: int) -> bytes:
        data = self.stream.readline(*args)
        self.store.received += len(data)
        return data

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(self.stream, name)


class CountingStore:
    """moto's S3 server in a thread, counting the request bodies (uploads) it receives."""

    def __init__(self) -> None:
        app = DomainDispatcherApplication(create_backend_app)
        self.received = self.uploads = 0

        def counting(environ, start_response):  # noqa: ANN001, ANN202 (a WSGI app)
            if environ["REQUEST_METHOD"] in ("PUT", "POST"):  # bodies may be chunked: count what is read
                environ["wsgi.input"] = CountingReader(environ["wsgi.input"], self)
                self.uploads += environ["REQUEST_METHOD"] == "PUT"
            return app(environ, start_response)

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.server = make_server("127.0.0.1", 0, counting, threaded=True, request_handler=MotoRequestHandler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f"127.0.0.1:{self.server.server_address[1]}"
        self.uri = f"s3://{BUCKET}/results?scheme=http&endpoint_override={self.endpoint}"
        fs, _ = pafs.FileSystem.from_uri(self.uri + "&allow_bucket_creation=true")
        fs.create_dir(BUCKET)
        self.fs = fs

    def stored(self, name: str) -> int:
        listing = self.fs.get_file_info(pafs.FileSelector(f"{BUCKET}/results/{name}", recursive=True))
        return sum(info.size or 0 for info in listing if info.type == pafs.FileType.File)


def two_nodes() -> tuple[str, list[subprocess.Popen], str]:
    """A head on 127.0.0.1 and a second node on 127.0.0.2, 1 CPU each; returns the address."""
    ray_cli = str(Path(sys.executable).parent / "ray")
    port = 20000 + os.getpid() % 20000
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    common = ["--block", "--num-cpus=1", "--object-store-memory=300000000"]
    nodes = [subprocess.Popen([ray_cli, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
                               "--include-dashboard=false", f"--temp-dir={temp_dir}", *common],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)]
    address = f"127.0.0.1:{port}"
    for count in (1, 2):
        while subprocess.run([ray_cli, "status", f"--address={address}"], capture_output=True,
                             text=True).stdout.count(" node_") < count:
            time.sleep(1)
        if count == 1:
            nodes.append(subprocess.Popen([ray_cli, "start", f"--address={address}", "--node-ip-address=127.0.0.2",
                                           *common], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          start_new_session=True))
    return address, nodes, temp_dir


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def run(storage: str, index: int, store: CountingStore, out: Path, samples: int, address: str | None,
        extra: list[str]) -> dict:
    name = f"{storage}-{int(time.time())}-{index}"
    where = store.uri if storage == "s3" else str(out / "disk")
    flags = ["--samples", str(samples), "--no-dashboard", *(["--address", address] if address else []), *extra]
    received, uploads = store.received, store.uploads
    reports = out / "results" / name if storage == "s3" else out / "disk" / name
    ran = run_search(where, name, flags, reports=reports, cwd=out)
    trials, wall = ran.trials, ran.wall_seconds
    row = {"storage": storage, "wall_seconds": wall, "trials": len(trials),
           "trial_epochs": int(trials["epochs_run"].sum()), "best": float(trials["best_val_ndcg@5"].max()),
           "stored_bytes": store.stored(name) if storage == "s3" else folder_bytes(reports),
           "uploaded_bytes": store.received - received, "uploads": store.uploads - uploads,
           "per_node": trials["node"].value_counts().to_dict() if "node" in trials else {}}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--nodes", type=int, choices=(1, 2), default=1,
                        help="1: each search starts its own local Ray; 2: a two-node cluster on this machine")
    parser.add_argument("--storages", nargs="+", choices=("disk", "s3"), default=["disk", "s3"])
    parser.add_argument("extra", nargs="*", help="after --: flags for every search")
    args = parser.parse_args()
    os.environ.update(CREDENTIALS)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    out = ROOT / "bench/out/object_store"
    out.mkdir(parents=True, exist_ok=True)
    store = CountingStore()
    address, nodes, temp_dir = two_nodes() if args.nodes == 2 else (None, [], "")
    rows = []
    try:
        for index in range(args.runs):  # interleaved, so that a change in machine load hits both storages
            for storage in args.storages:
                rows.append(run(storage, index, store, out, args.samples, address, args.extra))
                print(rows[-1], flush=True)
    finally:
        for node in reversed(nodes):  # only the nodes started here
            node.send_signal(signal.SIGTERM)
            node.wait(timeout=60)
        if temp_dir:
            subprocess.run(["rm", "-rf", temp_dir], check=False)
    print(f"\n{date.today()}; {os.cpu_count()} CPUs; {args.nodes} Ray node(s); python -m search.run --samples "
          f"{args.samples} {' '.join(args.extra)}")
    print("| storage | wall (s) | trials | trial-epochs | best val NDCG@5 | stored (MB) | uploaded (MB, PUTs) | "
          "trials per node |\n| --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        uploaded = f"{row['uploaded_bytes'] / 1e6:.1f} ({row['uploads']})" if row["storage"] == "s3" else "-"
        nodes_text = ", ".join(f"{node}: {count}" for node, count in sorted(row["per_node"].items()))
        print(f"| {row['storage']} | {row['wall_seconds']:.0f} | {row['trials']} | {row['trial_epochs']} | "
              f"{row['best']:.4f} | {row['stored_bytes'] / 1e6:.1f} | {uploaded} | {nodes_text} |")


if __name__ == "__main__":
    main()
