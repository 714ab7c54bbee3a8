"""Joining a running Ray cluster within a bounded time.

`ray.init(address=...)` retries an unreachable GCS for minutes, printing a warning every few seconds. So
the address is first probed with a plain TCP connection (refused or silent: a clear error at once or
after the timeout), then joined under a watchdog that ends the process if Ray still hangs.
"""
from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import ray
from ray._private.services import canonicalize_bootstrap_address

from core.errors import RecsysError

DEFAULT_CONNECT_TIMEOUT_S = 30.0
LOCAL_ONLY_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


class ClusterUnreachable(RecsysError):
    """The Ray cluster at --address cannot be reached."""


def advice(address: str) -> str:
    return (f"check that `ray start --head` runs there (`ray status --address {address}`), the host and port "
            "(the GCS port, 6379 by default), and that no firewall blocks it; --connect-timeout sets the wait")


def resolve_address(address: str) -> tuple[str, int]:
    """host and port of --address ('auto': the cluster this machine last started or RAY_ADDRESS)."""
    try:
        resolved = canonicalize_bootstrap_address(address)
    except Exception:  # an address Ray cannot parse
        raise ClusterUnreachable(f"--address {address!r} is not an address: expected auto or host:port, "
                                 "e.g. 10.0.0.5:6379") from None
    if resolved is None:
        raise ClusterUnreachable(f"--address {address}: no running Ray cluster found on this machine (nothing "
                                 "started with `ray start --head`, and RAY_ADDRESS is unset)")
    host, _, port = resolved.rpartition(":")
    return host.strip("[]"), int(port)


def probe(address: str, timeout_s: float) -> None:
    """A TCP connection to the cluster's GCS port, or ClusterUnreachable saying what to check."""
    host, port = resolve_address(address)
    began = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return
    except OSError as err:
        reason = "no answer" if isinstance(err, TimeoutError) else (err.strerror or type(err).__name__).lower()
        raise ClusterUnreachable(f"cannot reach the Ray cluster at {address} ({host}:{port}: {reason} after "
                                 f"{time.monotonic() - began:.0f} s); {advice(address)}") from None


def join_cluster(address: str, timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S) -> Any:
    """ray.init(address) that fails within about timeout_s: probed first, then joined under a watchdog."""
    began = time.monotonic()
    probe(address, timeout_s)
    joined = threading.Event()

    def watchdog() -> None:
        left = max(timeout_s - (time.monotonic() - began), 5.0)
        if not joined.wait(left):
            print(f"error: the Ray cluster at {address} did not answer within {timeout_s:g} s (its port is open, "
                  f"but no Ray GCS replied); {advice(address)}", file=sys.stderr, flush=True)
            os._exit(2)  # ray.init blocks in C++ and cannot be interrupted; nothing of the search is written yet

    threading.Thread(target=watchdog, daemon=True, name="ray-connect-watchdog").start()
    try:
        return ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    except ConnectionError as err:
        raise ClusterUnreachable(f"cannot join the Ray cluster at {address}: {str(err).splitlines()[0]}; "
                                 f"{advice(address)}") from None
    finally:
        joined.set()


@contextmanager
def loopback_only() -> Iterator[None]:
    """While a local Ray starts: every process it starts binds 127.0.0.1 only.

    Ray 2.60 binds its gRPC servers (GCS, raylet, workers, agents) to 0.0.0.0 unless the node's address is
    127.0.0.1, and resolves a 127.0.0.1 `_node_ip_address` to the machine's address unless its single-machine
    switch (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, read once at import, on by default on Linux) is off: both
    the variable (for the processes it starts) and the driver's copy of it are set for the start only.
    """
    from ray._private import ray_constants

    previous = os.environ.get(LOCAL_ONLY_SWITCH), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[LOCAL_ONLY_SWITCH] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = previous[1]
        if previous[0] is None:
            os.environ.pop(LOCAL_ONLY_SWITCH, None)
        else:
            os.environ[LOCAL_ONLY_SWITCH] = previous[0]
