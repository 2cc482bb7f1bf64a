"""Latency of the API under load: real uvicorn on 127.0.0.1, 1,000 stored sweeps, 50 concurrent clients.

    python benchmarks/api_load.py [--clients 50] [--seconds 10] [--sweeps 1000]

Routes: ``GET /v1/sweeps`` (a page of 50); ``GET /v1/sweeps/{id}`` (random stored sweeps among the ``--tracked``
ones that have 4 trial runs each, in one MLflow SQLite experiment of 400 runs); ``POST /v1/sweeps?dry_run=true`` (the
digits ablation spec: parse, expand 36 trials, validate). After a 1 s warm-up per route (not measured), each
route is loaded for a bounded time by ``--clients`` concurrent clients, twice: paced (the clients together offer
``--rate`` requests/s on fixed schedules; latency from the scheduled send time) and saturated (each client resends as
soon as it has its answer: the server's throughput; by Little's law its latency is clients / throughput). Prints JSON
with p50/p99/max (ms), requests/s and errors. The load generator shares the machine's cores with the server.
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


def app_without_sync() -> Any:
    """The service as ``rskd serve`` builds it, minus the background Ray sync (no cluster is needed: nothing runs)."""
    from service.app import create_app

    return create_app(sync=False)


def seed_mlflow(tracking_uri: str, sweep_ids: list[str], trials: int = 4, epochs: int = 30) -> None:
    """Trial runs with per-epoch metrics for the given sweeps, in their experiment (the detail route's real work)."""
    from mlflow.entities import Metric, RunTag
    from mlflow.tracking import MlflowClient

    from dashboards.layout import TrialIdentity

    client = MlflowClient(tracking_uri)
    exp = client.create_experiment("load")
    parent = client.create_run(exp).info.run_id
    for sweep_id in sweep_ids:
        for k in range(trials):
            trial = TrialIdentity(f"{sweep_id}-{k}", f"v{k % 2}", "variant", "rskd", k, f"hash-{k}", "ema")
            run = client.create_run(exp, tags=trial.tags(sweep_id, parent, "load"))
            t = int(time.time() * 1000)
            metrics = [Metric("test/top1", random.random(), t, e) for e in range(epochs)]
            metrics += [Metric("epoch", float(epochs), t, 0), Metric("best/test_top1", 0.9, t, 0)]
            client.log_batch(run.info.run_id, metrics=metrics, tags=[RunTag("x", "y")])
            client.set_terminated(run.info.run_id, "FINISHED")


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
            row = repo.create(name="load", spec_json=json.dumps({"raw": spec}), spec_hash=str(i), trials=4,
                              idempotency_key=None)  # fmt: skip
            state = random.choice(["SUCCEEDED", "FAILED", "RUNNING", "CANCELLED"])
            repo.update(row, status=state, runs_closed=state != "RUNNING")  # as the sync leaves ended sweeps
            ids.append(row.id)
    db.dispose()
    return ids


async def load(
    url: str, method: str, make_path: Any, body: bytes | None, clients: int, seconds: float, rate: float | None
) -> dict[str, Any]:
    """``clients`` concurrent clients for ``seconds``. With ``rate`` (requests/s over all clients) each client sends on
    a fixed schedule and latency counts from the scheduled send time (no coordinated omission: a slow server cannot
    hide its backlog); without it each client sends again as soon as it has its answer (saturation)."""
    latencies: list[float] = []
    errors: list[str] = []
    start = time.perf_counter()
    deadline = start + seconds
    interval = clients / rate if rate else 0.0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def one_client(k: int) -> None:
            due = start + interval * k / clients  # spread the clients' phases over one interval
            while due < deadline:
                now = time.perf_counter()
                if due > now:
                    await asyncio.sleep(due - now)
                t0 = due if rate else time.perf_counter()
                try:
                    r = await client.request(
                        method, make_path(), content=body, headers={"content-type": "application/yaml"}
                    )
                    if r.status_code >= 400:
                        errors.append(f"{r.status_code} {r.text[:100]}")
                except httpx.HTTPError as err:
                    errors.append(repr(err))
                latencies.append((time.perf_counter() - t0) * 1000)
                due = due + interval if rate else time.perf_counter()

        await asyncio.gather(*(one_client(k) for k in range(clients)))
        elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "offered_rps": rate,
        "requests": len(latencies),
        "errors": len(errors),
        "first_errors": errors[:3],
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))], 2),
        "max_ms": round(latencies[-1], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--sweeps", type=int, default=1000)
    parser.add_argument("--only", default="", help="run only the routes whose name contains this")
    parser.add_argument(
        "--keep-alive", type=int, default=None, help="uvicorn --timeout-keep-alive (default: uvicorn's)"
    )
    parser.add_argument("--tracked", type=int, default=100, help="sweeps given 4 MLflow trial runs each")
    parser.add_argument(
        "--rate", type=float, default=100.0, help="offered requests/s per route over all clients (paced phase)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        ids = seed_database(f"sqlite:///{home / 'service.db'}", args.sweeps)
        tracked = ids[: args.tracked]
        seed_mlflow(f"sqlite:///{home / 'mlflow.db'}", tracked)
        port = free_port()
        env = {
            **os.environ,
            "RSKD_HOME": str(home),
            "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
            "RAY_ADDRESS": "http://127.0.0.1:9",  # no cluster needed: nothing is submitted
            "RSKD_SYNC_INTERVAL_S": "3600",
        }
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "uvicorn"), "benchmarks.api_load:app_without_sync", "--factory",
             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
             *(["--timeout-keep-alive", str(args.keep_alive)] if args.keep_alive else [])],
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
                "GET /v1/sweeps/{id}": ("GET", lambda: f"/v1/sweeps/{random.choice(tracked)}", None),
                "POST /v1/sweeps (dry run)": ("POST", lambda: "/v1/sweeps?dry_run=true", spec),
            }
            routes = {k: v for k, v in routes.items() if args.only in k}
            for method, path, body in routes.values():  # warm-up, not measured: caches, connections, the allocator
                asyncio.run(load(url, method, path, body, args.clients, 1.0, args.rate))
            results = {
                name: {
                    "paced": asyncio.run(load(url, method, path, body, args.clients, args.seconds, args.rate)),
                    "saturated": asyncio.run(load(url, method, path, body, args.clients, args.seconds, None)),
                }
                for name, (method, path, body) in routes.items()
            }
            targets = {"GET /v1/sweeps": 50.0, "GET /v1/sweeps/{id}": 50.0, "POST /v1/sweeps (dry run)": 100.0}
            met = all(
                results[k]["paced"]["p99_ms"] <= v and results[k]["paced"]["errors"] == 0
                for k, v in targets.items()
                if k in results
            )
            print(json.dumps({"clients": args.clients, "seconds_per_route": args.seconds, "stored_sweeps": args.sweeps,
                              "cpus": os.cpu_count(), "routes": results, "p99_targets_ms": targets,
                              "paced_targets_met": met}, indent=2), flush=True)  # fmt: skip
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


if __name__ == "__main__":
    main()
