"""Real processes and ports for the end-to-end and fault tests: free ports to start servers on, and the processes a
fault test kills."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(3)
        return s.connect_ex((host, port)) == 0


def outward_address() -> str:
    """This machine's address on its outgoing interface (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))
        ip = str(s.getsockname()[0])
    assert not ip.startswith("127."), "this machine has no interface besides loopback to check"
    return ip


def processes_matching(*needles: str) -> list[int]:
    """PIDs whose command line (as /proc shows it: Ray sets process titles) contains every needle."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if all(n in cmd for n in needles):
            pids.append(int(entry.name))
    return pids


def ray_active_nodes(status: str) -> int:
    """How many nodes ``ray status`` lists as active; 0 while it has no autoscaler report yet (or printed an error)."""
    if "Active:" not in status:
        return 0
    return status.split("Active:")[1].split("Pending:")[0].count("node_")


def wait_for(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.5) -> None:
    """Poll ``check`` until it is true; a server not answering yet (HTTP, socket, slow CLI) counts as not yet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, OSError, subprocess.TimeoutExpired):
            pass
        time.sleep(interval)
    raise TimeoutError(f"{what} not within {timeout:.0f} s")
