"""Latency of the API under load: real uvicorn on 127.0.0.1, 1,000 stored sweeps, 50 concurrent clients.

    python benchmarks/api_load.py [--clients 50] [--seconds 10] [--sweeps 1000]

Routes: ``GET /v1/sweeps`` (a page of 50), ``GET /v1/sweeps/{id}`` (random stored sweeps; trial states from an MLflow
SQLite store) and ``POST /v1/sweeps?dry_run=true`` (the digits ablation spec: parse, expand 36 trials, validate). Each
route is loaded for a bounded time by ``--clients`` concurrent clients; prints JSON with p50/p99 (ms), requests/s and
errors. The load generator shares the machine's 2 cores with the server, so figures are pessimistic.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed_database(url: str, n: int) -> list[str]:
    from service.db import Database
    from service.repository import SweepRepository

    db = Database(url)
    db.migrate()
    spec = (ROOT / "examples" / "sweeps" / "digits_smoke.yaml").read_text()
    ids = []
    with db.session() as s:
        repo = SweepRepository(s)
        for i in range(n):
            row = repo.create(name=f"load-{i}", spec_json=json.dumps({"raw": spec}), spec_hash=str(i), trials=4,
                              idempotency_key=None)  # fmt: skip
            repo.update(row, status=random.choice(["SUCCEEDED", "FAILED", "RUNNING", "CANCELLED"]))
            ids.append(row.id)
    db.dispose()
    return ids


async def load(
    url: str, method: str, make_path: Any, body: bytes | None, clients: int, seconds: float
) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def one_client() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                try:
                    r = await client.request(
                        method, make_path(), content=body, headers={"content-type": "application/yaml"}
                    )
                    ok = r.status_code < 400
                except httpx.HTTPError:
                    ok = False
                latencies.append((time.perf_counter() - t0) * 1000)
                errors += 0 if ok else 1

        start = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[int(0.99 * (len(latencies) - 1))],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--sweeps", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        ids = seed_database(f"sqlite:///{home / 'service.db'}", args.sweeps)
        port = free_port()
        env = {
            **os.environ,
            "RSKD_HOME": str(home),
            "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
            "RAY_ADDRESS": "http://127.0.0.1:9",  # no cluster needed: nothing is submitted
            "RSKD_SYNC_INTERVAL_S": "3600",
        }
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "uvicorn"), "service.app:create_app", "--factory", "--host",
             "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            env=env, cwd=ROOT, start_new_session=True,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(120):
                try:
                    if httpx.get(f"{url}/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.5)
            httpx.get(f"{url}/v1/sweeps/{ids[0]}")  # warm the MLflow client
            spec = (ROOT / "examples" / "sweeps" / "digits_ablation.yaml").read_bytes()
            routes = {
                "GET /v1/sweeps": ("GET", lambda: "/v1/sweeps?limit=50", None),
                "GET /v1/sweeps/{id}": ("GET", lambda: f"/v1/sweeps/{random.choice(ids)}", None),
                "POST /v1/sweeps (dry run)": ("POST", lambda: "/v1/sweeps?dry_run=true", spec),
            }
            results = {
                name: asyncio.run(load(url, method, path, body, args.clients, args.seconds))
                for name, (method, path, body) in routes.items()
            }
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    print(json.dumps({"clients": args.clients, "seconds_per_route": args.seconds, "stored_sweeps": args.sweeps,
                      "routes": results}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
