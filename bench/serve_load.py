"""Load test of the recommendation server on loopback: `python bench/serve_load.py MODEL [MODEL ...]`.

For each model and each --replicas count: starts `python -m search.serve` on a free port, sends --warmup
then --requests single-customer top-k requests from --clients concurrent keep-alive connections (asyncio +
aiohttp, customers drawn at random with a fixed seed), reports requests/s and latency percentiles, and
stops the server with SIGINT, as Ctrl-C would. Where the time goes: the CPU time each process spent per
request (Serve's proxy, the replicas, the controller, the load generator; from /proc, Linux), and the
model alone (top-k for a batch, in this process). --healthz also loads GET /healthz: the HTTP path
through Serve's proxy and a replica without the model. Results go to bench/out/serve_load_<tag>.json.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import aiohttp
import numpy as np
from common import ROOT

from core.artifact import load_model  # noqa: E402


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(model: str, port: int, replicas: int, extra: list[str], log_path: Path) -> subprocess.Popen:
    """python -m search.serve in its own process; returns once GET /healthz answers."""
    env = dict(os.environ, OMP_NUM_THREADS="1", RAY_AUTH_MODE=os.environ.get("RAY_AUTH_MODE", "disabled"))
    server = subprocess.Popen([sys.executable, "-m", "search.serve", model, "--port", str(port),
                               "--replicas", str(replicas), *extra], cwd=ROOT, env=env,
                              stdout=log_path.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode}; see {log_path}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if conn.recv(64).startswith(b"HTTP/1.1 200"):
                    return server
        except OSError:
            pass
        time.sleep(0.5)
    server.kill()
    raise SystemExit(f"the server did not answer within 180 s; see {log_path}")


def stop_server(server: subprocess.Popen) -> float:
    """SIGINT, as Ctrl-C sends; returns the seconds it took to exit."""
    began = time.perf_counter()
    server.send_signal(signal.SIGINT)
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
        return float("inf")
    return time.perf_counter() - began


def process_tree(root: int) -> dict[int, str]:
    """Every process descended from root (the server and the Ray processes it started), by pid: its role."""
    parents, names = {}, {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                names[int(entry.name)] = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            except (OSError, IndexError, ValueError):
                continue
    tree, frontier = {}, [root]
    while frontier:
        pid = frontier.pop()
        tree[pid] = role(names.get(pid, "?"))
        frontier += [child for child, parent in parents.items() if parent == pid]
    return tree


def role(command: str) -> str:
    for marker, name in (("ProxyActor", "proxy"), ("ServeReplica", "replica"), ("ServeController", "controller"),
                         ("search.serve", "driver")):
        if marker in command:
            return name
    return "other ray"


def cpu_seconds(tree: dict[int, str]) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each role's processes."""
    ticks = os.sysconf("SC_CLK_TCK")
    used: dict[str, float] = {}
    for pid, name in tree.items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used[name] = used.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return used


async def client(session: aiohttp.ClientSession, paths: list[str], latencies: list[float], errors: list[int]) -> None:
    for path in paths:
        began = time.perf_counter()
        async with session.get(path) as response:
            await response.read()
            if response.status != 200:
                errors.append(response.status)
        latencies.append(time.perf_counter() - began)


async def load(port: int, paths: list[str], clients: int) -> dict[str, float]:
    """Send every path once, split over `clients` concurrent keep-alive connections."""
    connector = aiohttp.TCPConnector(limit=clients)
    latencies: list[float] = []
    errors: list[int] = []
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", connector=connector) as session:
        began = time.perf_counter()
        await asyncio.gather(*(client(session, paths[i::clients], latencies, errors) for i in range(clients)))
        wall = time.perf_counter() - began
    ms = np.array(latencies) * 1000
    return {"requests": len(paths), "errors": len(errors), "seconds": round(wall, 2),
            "requests_per_s": round(len(paths) / wall, 1), "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p95_ms": round(float(np.percentile(ms, 95)), 1), "p99_ms": round(float(np.percentile(ms, 99)), 1)}


def model_ms(saved, customers: np.ndarray, batch: int, k: int, repeats: int = 200) -> float:
    """CPU milliseconds for top-k of `batch` customers in one forward pass, on one torch thread."""
    import torch

    from core.recommend import customer_history, recommend_batch
    torch.set_num_threads(1)
    histories = [customer_history(saved.user_ids, saved.user_start, saved.items, c) for c in customers[:batch]]
    began = time.process_time()  # CPU time: on a shared machine, wall time would count the others' work too
    for _ in range(repeats):
        recommend_batch(saved.model, histories, [k] * batch, saved.config.max_seq_len, [True] * batch)
    return round(1000 * (time.process_time() - began) / repeats, 2)


def run_one(model: str, replicas: int, args: argparse.Namespace, out: Path) -> list[dict]:
    saved = load_model(model)
    rng = np.random.default_rng(args.seed)
    customers = rng.choice(saved.user_ids, size=args.warmup + args.requests)
    paths = [f"/recommend?customer={c}&k={args.k}" for c in customers]
    name = saved.info.get("experiment", Path(model).resolve().parent.name)
    model_alone = {f"batch_{b}": model_ms(saved, customers, b, args.k) for b in (1, 8, 32)}
    print(f"{name}: model alone, CPU ms per forward pass: {model_alone}", flush=True)
    port = free_port()
    server = start_server(model, port, replicas, args.server_args, out / f"serve_{args.tag}_{name}_{replicas}.log")
    rows = []
    try:
        asyncio.run(load(port, paths[:args.warmup], args.clients))
        targets = [("recommend", paths[args.warmup:])]
        if args.healthz:
            targets.append(("healthz", ["/healthz"] * args.requests))
        tree = process_tree(server.pid)
        for what, batch in targets:
            before, client_before = cpu_seconds(tree), time.process_time()
            result = asyncio.run(load(port, batch, args.clients))
            after, client_cpu = cpu_seconds(tree), time.process_time() - client_before
            cpu_ms = {n: round(1000 * (after[n] - before.get(n, 0.0)) / len(batch), 2) for n in sorted(after)}
            row = {"model": name, "items": len(saved.catalog), "replicas": replicas, "clients": args.clients,
                   "path": what, **result, "load_average_1min": round(os.getloadavg()[0], 1), "model_ms": model_alone, "cpu_ms_per_request": dict(cpu_ms, load_generator=round(
                       1000 * client_cpu / len(batch), 2))}
            print(json.dumps(row), flush=True)
            rows.append(row)
    finally:
        stopped = stop_server(server)
    print(f"  server stopped {stopped:.1f} s after SIGINT", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="results/<name>/final folders")
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--clients", type=int, default=16, help="concurrent keep-alive connections")
    parser.add_argument("--requests", type=int, default=3000, help="measured requests per run")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--healthz", action="store_true", help="also load GET /healthz (no model)")
    parser.add_argument("--server-args", nargs=argparse.REMAINDER, default=[],
                        help="passed to python -m search.serve, e.g. --batch-wait-ms 0 (put it last)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "out"))
    parser.add_argument("--tag", default="default", help="names the results file, serve_load_<tag>.json")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = [row for model in args.models for replicas in args.replicas for row in run_one(model, replicas, args, out)]
    print(f"\n{date.today()}, {platform.machine()}, {os.cpu_count()} cores, {args.clients} clients, "
          f"{args.requests} requests per row, server args {args.server_args or 'default'}, "
          f"Serve env {', '.join(k + '=' + v for k, v in os.environ.items() if k.startswith('RAY_SERVE_')) or 'default'}")
    print("| model | items | replicas | path | requests/s | p50 ms | p95 ms | p99 ms | errors | load avg | "
          "CPU ms per request |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        cpu = ", ".join(f"{n} {v}" for n, v in r["cpu_ms_per_request"].items() if v >= 0.05)
        print(f"| {r['model']} | {r['items']:,} | {r['replicas']} | {r['path']} | {r['requests_per_s']:.0f} | "
              f"{r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} | {r['errors']} | {r['load_average_1min']} | {cpu} |")
    (out / f"serve_load_{args.tag}.json").write_text(json.dumps({"date": str(date.today()), "args": vars(args), "rows": rows},
                                                    indent=1))


if __name__ == "__main__":
    main()
