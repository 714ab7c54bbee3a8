"""Serve a retrained model online with Ray Serve: `python -m search.serve results/<name>/final [--port 8000]`.

GET /recommend?customer=ID&k=5[&include_seen=true] ranks for a known customer; POST /recommend with
{"items": [..], "k": 5} for a visitor's item numbers, oldest first. GET /healthz and GET /model (search,
config, data fingerprint, test metrics). Each replica loads the model once; concurrent requests are batched
into one forward pass (@serve.batch). Listens on 127.0.0.1 unless --host says otherwise; Ctrl-C stops it.
"""
from __future__ import annotations

import argparse
import json
import logging
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Any

import ray
import torch
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse

from core.artifact import SavedModel, load_model
from core.errors import RecsysError
from core.recommend import recommend_batch
from search.connect import loopback_only
from search.endings import SearchStopped, stop_behind
from search.serve_requests import (
    Query,
    RequestError,
    query_from_body,
    query_from_params,
)
from search.storage import is_uri, local_copy

log = logging.getLogger("ray.serve")
APP_NAME = "seqrec"
MAX_BODY_BYTES = 1 << 20
MAX_BATCH_SIZE, BATCH_WAIT_MS = 32, 2.0  # defaults of --max-batch-size and --batch-wait-ms


def model_card(folder: str | Path, saved: SavedModel) -> dict[str, Any]:
    """What GET /model answers: the search, the config, the data fingerprint and the test metrics."""
    folder = Path(folder)
    folder = folder.parent if folder.is_file() else folder
    metrics_path = folder / "metrics.json"
    return {
        "search": saved.info.get("experiment", folder.parent.name),
        "model": str(folder.resolve()),
        "config": saved.config.to_dict(),
        "data_fingerprint": saved.info.get("data_fingerprint"),
        "items": len(saved.catalog),
        "customers": len(saved.user_ids),
        "test_metrics": json.loads(metrics_path.read_text()) if metrics_path.is_file() else None,
    }


async def read_body(request: Request) -> bytes:
    """The request's body, refused (413) beyond MAX_BODY_BYTES; by its declared length when it has one."""
    too_large = RequestError(413, f"the body is larger than {MAX_BODY_BYTES:,} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_large
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise too_large
    return body


@serve.deployment(name="recommender", max_ongoing_requests=64)
class Recommender:
    """One replica: the model loaded once, requests checked one by one and scored in batches."""

    def __init__(self, folder: str, threads: int = 1, max_batch_size: int = MAX_BATCH_SIZE,
                 batch_wait_s: float = BATCH_WAIT_MS / 1000):
        torch.set_num_threads(threads)
        local = local_copy(folder)  # a model at a URI is fetched by each replica, on its own node
        self.saved = load_model(local)
        self.card = model_card(local, self.saved)
        if is_uri(folder):
            self.card["model"] = folder
        catalog = self.saved.catalog
        self.item_numbers = catalog["item_number"].tolist()  # JSON numbers for integer ids, strings for text ids
        self.descriptions = list(zip(catalog["description_1"], catalog["description_2"]))
        self.rank.set_max_batch_size(max_batch_size)
        self.rank.set_batch_wait_timeout_s(batch_wait_s)

    async def __call__(self, request: Request) -> JSONResponse:
        try:
            route = (request.method, request.url.path.rstrip("/") or "/")
            if route == ("GET", "/recommend"):
                return JSONResponse(await self.rank(query_from_params(request.query_params, self.saved)))
            if route == ("POST", "/recommend"):
                return JSONResponse(await self.rank(query_from_body(await read_body(request), self.saved)))
            if route == ("GET", "/healthz"):
                return JSONResponse({"status": "ok", "search": self.card["search"]})
            if route == ("GET", "/model"):
                return JSONResponse(self.card)
            known = {"/recommend", "/healthz", "/model"}
            raise RequestError(405 if route[1] in known else 404,
                               f"no route {route[0]} {route[1]}; the routes are GET /recommend?customer=ID&k=5, "
                               "POST /recommend {\"items\": [...], \"k\": 5}, GET /healthz, GET /model")
        except RequestError as err:
            return JSONResponse({"error": str(err)}, status_code=err.status)
        except Exception:  # a bug, not a bad request: log it here, answer without the traceback
            log.exception("request %s %s failed", request.method, request.url.path)
            return JSONResponse({"error": "internal error (logged by the server)"}, status_code=500)

    @serve.batch(max_batch_size=MAX_BATCH_SIZE, batch_wait_timeout_s=BATCH_WAIT_MS / 1000)
    async def rank(self, queries: list[Query]) -> list[dict[str, Any]]:
        """Score a batch of checked queries in one forward pass."""
        tops = recommend_batch(self.saved.model, [q.history for q in queries], [q.k for q in queries],
                               self.saved.config.max_seq_len, [q.exclude_seen for q in queries])
        return [self.answer(query, ids, scores) for query, (ids, scores) in zip(queries, tops)]

    def answer(self, query: Query, ids: Any, scores: Any) -> dict[str, Any]:
        rows = []
        for rank, (item_id, score) in enumerate(zip(ids.tolist(), scores.tolist()), start=1):
            description_1, description_2 = self.descriptions[item_id - 1]
            rows.append({"rank": rank, "item_number": self.item_numbers[item_id - 1],
                         "description_1": description_1, "description_2": description_2, "score": score})
        return {"customer": query.customer, "k": query.k, "include_seen": not query.exclude_seen,
                "recommendations": rows}


def build_app(folder: str | Path, replicas: int = 1, threads: int = 1, max_batch_size: int = MAX_BATCH_SIZE,
              batch_wait_ms: float = BATCH_WAIT_MS) -> serve.Application:
    """The Serve application: `replicas` copies of the model, each with `threads` torch threads and CPUs."""
    deployment = Recommender.options(num_replicas=replicas, ray_actor_options={"num_cpus": threads},
                                     max_ongoing_requests=max(64, 2 * max_batch_size))
    location = str(folder) if is_uri(folder) else str(Path(folder).resolve())
    return deployment.bind(location, threads, max_batch_size, batch_wait_ms / 1000)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m search.serve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="results/<name>/final (or its model.pt), or such a folder at a storage URI "
                                      "(s3://...: each replica fetches it)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; "
                                                            "0.0.0.0 for every interface)")
    parser.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    parser.add_argument("--replicas", type=int, default=1, help="copies of the model (default 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads and CPUs per replica (default 1)")
    parser.add_argument("--max-batch-size", type=int, default=MAX_BATCH_SIZE,
                        help=f"requests per forward pass at most (default {MAX_BATCH_SIZE})")
    parser.add_argument("--batch-wait-ms", type=float, default=BATCH_WAIT_MS,
                        help=f"how long a batch waits for more requests once one arrived (default {BATCH_WAIT_MS:g} ms)")
    parser.add_argument("--address", help="run on a running Ray cluster (e.g. auto, or host:6379); "
                                          "default: start a local Ray")
    parser.add_argument("--access-log", action="store_true", help="log every request (costs throughput)")
    args = parser.parse_args(argv)
    for name in ("replicas", "threads", "max_batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if not 0 <= args.batch_wait_ms <= 1000:
        parser.error("--batch-wait-ms must be between 0 and 1000")
    if not 0 < args.port < 65536:
        parser.error("--port must be between 1 and 65535")
    return args


def check_port_free(host: str, port: int) -> None:
    """Fail at once, by name, when another program holds the port (Serve would retry in the background)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as err:
            raise RecsysError(f"cannot listen on {host}:{port} ({err.strerror}); give another --port") from None


def start(args: argparse.Namespace) -> None:
    """Start (or join) Ray, then Serve with the HTTP options, then the application."""
    if args.address:
        ray.init(address=args.address, logging_level=logging.WARNING)
    else:
        check_port_free(args.host, args.port)
        with loopback_only():  # a local Ray listens on 127.0.0.1 only (the HTTP host is --host's)
            ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING,
                     _node_ip_address="127.0.0.1")
    catch_stops()  # ray.init put its own SIGTERM handler in place
    cpus, wanted = ray.cluster_resources().get("CPU", 0), args.replicas * args.threads
    if wanted > cpus:
        message = f"{args.replicas} replicas x {args.threads} threads need {wanted} CPUs; Ray has {cpus:g}"
        if not args.address:
            raise RecsysError(message + ": give fewer --replicas or --threads")
        logging.warning("%s: some replicas wait until the cluster grows", message)
    logging_config = {"enable_access_log": args.access_log}
    serve.start(http_options={"host": args.host, "port": args.port}, logging_config=logging_config)
    serve.run(build_app(args.model, args.replicas, args.threads, args.max_batch_size, args.batch_wait_ms),
              name=APP_NAME, route_prefix="/", logging_config=logging_config)


def stop(args: argparse.Namespace) -> None:
    """Remove the application; a local Ray goes with Serve, a cluster keeps running."""
    if not ray.is_initialized():
        return
    if args.address:
        serve.delete(APP_NAME)
    else:
        serve.shutdown()
    ray.shutdown()


STOP_ASKED = threading.Event()  # set by the handler too: its exception can be swallowed inside Ray's fork hooks


def _stop_now(signum: int, frame: Any) -> None:
    STOP_ASKED.set()
    raise SearchStopped(signal.Signals(signum).name)


def catch_stops() -> None:
    """Ctrl-C and SIGTERM stop the server through our code (not Ray's handler, which dumps a C++ stack)."""
    for signum in (signal.SIGINT, signal.SIGTERM):  # also when started in the background, where SIGINT is ignored
        signal.signal(signum, _stop_now)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    catch_stops()
    try:
        load_model(local_copy(args.model))  # fail here, in one line, rather than inside a replica
        start(args)
    except RecsysError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (SearchStopped, SystemExit, SystemError) as err:  # a stop signal while Ray or Serve was starting
        if isinstance(err, SystemError) and stop_behind(err) is None:
            raise
        return stopped_while_starting(args)
    if STOP_ASKED.is_set():  # the signal came during start-up, but its exception was swallowed on the way
        return stopped_while_starting(args)
    url = f"http://{'[' + args.host + ']' if ':' in args.host else args.host}:{args.port}"
    print(f"serving {args.model} at {url} ({args.replicas} replica(s)); Ctrl-C stops it\n"
          f"  curl '{url}/recommend?customer=ID&k=5'\n"
          f"  curl -X POST {url}/recommend -d '{{\"items\": [ITEM, ITEM], \"k\": 5}}'\n"
          f"  curl {url}/model", flush=True)
    try:
        while not STOP_ASKED.wait(1.0):  # Serve runs in Ray's processes; this one only waits for Ctrl-C
            pass
    except SearchStopped:
        pass
    finally:
        print("stopping", file=sys.stderr)
        stop(args)
    return 0


def stopped_while_starting(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not interrupt the clean-up
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    print("stopped while starting; nothing is served", file=sys.stderr)
    stop(args)
    return 130


if __name__ == "__main__":
    sys.exit(main())
