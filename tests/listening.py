"""The TCP sockets a process tree listens on, read from /proc (Linux): for the loopback test."""
from __future__ import annotations

import os
import socket
import struct
from pathlib import Path

LISTEN = "0A"


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants (from /proc/<pid>/task/*/children)."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                queue += [int(child) for child in task.read_text().split()]
            except OSError:
                pass
    return found


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").glob("*"):
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def address(hex_address: str, family: int) -> str:
    raw = bytes.fromhex(hex_address)
    if family == socket.AF_INET:
        return socket.inet_ntop(family, struct.pack("<I", struct.unpack(">I", raw)[0]))
    return socket.inet_ntop(family, b"".join(struct.pack("<I", struct.unpack(">I", raw[i:i + 4])[0])
                                             for i in range(0, 16, 4)))


def listening(pids: list[int]) -> list[tuple[int, str, int]]:
    """(pid, address, port) of every TCP socket in LISTEN state that one of pids holds."""
    by_inode = {}
    for pid in pids:
        for inode in socket_inodes(pid):
            by_inode[inode] = pid
    found = []
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == LISTEN and inode in by_inode:
                host, port = local.split(":")
                found.append((by_inode[inode], address(host, family), int(port, 16)))
    return found
