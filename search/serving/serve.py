"""Serve a retrained model online with Ray Serve: `python -m search.serve results/<name>/final [--port 8000]`.

GET /recommend?customer=ID&k=5[&include_seen=true] ranks for a known customer; POST /recommend with
{"items": [..], "k": 5} for a visitor's item numbers, oldest first. GET /healthz and GET /model (search,
config, data fingerprint, test metrics). Each replica loads the model once; concurrent requests are batched
into one forward pass (@serve.batch). Listens on 127.0.0.1 unless --host says otherwise; Ctrl-C stops it.
"""
from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
import threading
from typing import Any

import ray
from ray import serve

from core.artifact import load_model
from core.errors import RecsysError
from search.connect import loopback_only
from search.endings import SearchStopped, stop_behind
from search.serving.app import BATCH_WAIT_MS, MAX_BATCH_SIZE, build_app
from search.storage import local_copy

APP_NAME = "seqrec"


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
