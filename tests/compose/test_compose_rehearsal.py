"""A rehearsal of the compose topology without a Docker engine: the commands, environments and healthchecks of the
services in ``docker compose --profile cpu config``, run as processes on this machine — MLflow on PostgreSQL (Debian's,
from ``.ci/run``, standing in for the postgres image), a Ray head and a second Ray node joining it, the API — with
only the service names, ports and container paths rewritten to local ones. A sweep submitted through the API must
finish with its runs in MLflow.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from tests.compose.tool import ROOT, config_json
from tests.procs import free_port, ray_active_nodes, wait_for

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def postgres_admin_url() -> str:
    url = os.environ.get("RSKD_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("CI must provide RSKD_TEST_POSTGRES_URL (.ci/run starts PostgreSQL)")
        pytest.skip("no PostgreSQL here: set RSKD_TEST_POSTGRES_URL (see .ci/run)")
    return url


class Rewrite:
    """Service names and container ports → 127.0.0.1 and free ports; container paths → temporary folders."""

    def __init__(self, pairs: list[tuple[str, str]], paths: dict[str, str]) -> None:
        self.pairs = pairs
        self.paths = paths

    def __call__(self, value: str) -> str:
        if value in self.paths:
            return self.paths[value]
        for old, new in self.pairs:
            value = value.replace(old, new)
        return value


def _exe(cmd: list[str]) -> list[str]:
    return [str(BIN / cmd[0]) if (BIN / cmd[0]).exists() else cmd[0], *cmd[1:]]


@pytest.fixture
def databases() -> Iterator[tuple[str, dict[str, str]]]:
    import psycopg

    admin = postgres_admin_url().replace("postgresql+psycopg://", "postgresql://")
    names = {"mlflow": f"rehearsal_mlflow_{secrets.token_hex(3)}", "rskd": f"rehearsal_rskd_{secrets.token_hex(3)}"}
    with psycopg.connect(admin, autocommit=True) as conn:
        for db in names.values():
            conn.execute(f"CREATE DATABASE {db}")
    yield admin, names
    with psycopg.connect(admin, autocommit=True) as conn:
        for db in names.values():
            conn.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def test_the_compose_services_as_processes_run_a_sweep(tmp_path: Path, databases: tuple[str, dict[str, str]]) -> None:
    admin, dbs = databases
    pg = urlsplit(admin)
    api_token, ray_token = secrets.token_hex(16), secrets.token_hex(16)
    env_file = tmp_path / ".env"
    example = (ROOT / ".env.example").read_text().splitlines()
    values = {"RSKD_API_TOKEN": api_token, "RAY_AUTH_TOKEN": ray_token, "POSTGRES_PASSWORD": pg.password or "",
              "RAY_HEAD_CPUS": "1", "RAY_WORKER_CPUS": "1"}  # fmt: skip
    env_file.write_text("\n".join(f"{k}={values[k]}" if (k := x.split("=")[0]) in values else x for x in example))
    services = config_json(tmp_path / "docker-config", "cpu", env_file=env_file)["services"]

    ports = {"mlflow": free_port(), "gcs": free_port(), "dash": free_port(), "api": free_port()}
    for folder in ("artifacts", "storage", "home", "data"):
        (tmp_path / folder).mkdir()
    server = f"{pg.username}@{pg.hostname}:{pg.port}"  # the password travels in PGPASSWORD, as in the containers
    rewrite = Rewrite(
        [
            ("rskd@postgres:5432/mlflow", f"{server}/{dbs['mlflow']}"),
            ("rskd@postgres:5432/rskd", f"{server}/{dbs['rskd']}"),
            ("http://mlflow:5000", f"http://127.0.0.1:{ports['mlflow']}"),
            ("http://ray-head:8265", f"http://127.0.0.1:{ports['dash']}"),
            ("ray-head:6379", f"127.0.0.1:{ports['gcs']}"),
            ("127.0.0.1:5000", f"127.0.0.1:{ports['mlflow']}"),  # inside a container: its own port
            ("127.0.0.1:6379", f"127.0.0.1:{ports['gcs']}"),
            ("127.0.0.1:8000", f"127.0.0.1:{ports['api']}"),
            ("--port=5000", f"--port={ports['mlflow']}"),
            ("--port=6379", f"--port={ports['gcs']}"),
            ("--dashboard-port=8265", f"--dashboard-port={ports['dash']}"),
            ("--port=8000", f"--port={ports['api']}"),
            ("0.0.0.0", "127.0.0.1"),
        ],
        {"/mlflow/artifacts": str(tmp_path / "artifacts"), "--artifacts-destination=/mlflow/artifacts":
         f"--artifacts-destination={tmp_path / 'artifacts'}", "/rskd/storage": str(tmp_path / "storage"),
         "/rskd/home": str(tmp_path / "home"), "/data": str(tmp_path / "data")},
    )  # fmt: skip
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "MLFLOW_", "RSKD_"))}
    base["PATH"] = f"{BIN}:{base.get('PATH', '')}"  # the image's python is the one jobs run with

    def env_of(name: str) -> dict[str, str]:
        return {**base, **{k: rewrite(str(v)) for k, v in (services[name].get("environment") or {}).items()}}

    def command_of(name: str) -> list[str]:
        return _exe([rewrite(a) for a in services[name]["command"]])

    def healthy(name: str) -> bool:
        test = [rewrite(a) for a in services[name]["healthcheck"]["test"]]
        assert test[0] in ("CMD", "CMD-SHELL"), test
        cmd = ["sh", "-c", test[1]] if test[0] == "CMD-SHELL" else _exe(test[1:])  # PATH: the venv's python first
        return subprocess.run(cmd, env=env_of(name), capture_output=True, timeout=60).returncode == 0

    procs: list[subprocess.Popen[bytes]] = []

    def start(name: str) -> None:
        log = (tmp_path / f"{name}.log").open("wb")
        procs.append(subprocess.Popen(command_of(name), env=env_of(name), cwd=tmp_path, stdout=log, stderr=log,
                                      start_new_session=True))  # fmt: skip

    def logs() -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-1500:]}" for p in sorted(tmp_path.glob("*.log")))

    try:
        for name in ("mlflow", "ray-head", "ray-worker-cpu", "api"):  # the order depends_on gives
            start(name)
            try:
                wait_for(lambda n=name: healthy(n), 180, f"{name}'s healthcheck", interval=1.0)  # type: ignore[misc]
            except TimeoutError:
                raise AssertionError(logs()) from None
        seen: list[str] = []

        def two_nodes() -> bool:  # the head and the worker that joined it
            out = subprocess.run(_exe(["ray", "status", "--address", f"127.0.0.1:{ports['gcs']}"]),
                                 env=env_of("ray-head"), capture_output=True, text=True, timeout=60).stdout  # fmt: skip
            seen.append(out)
            return ray_active_nodes(out) == 2

        try:
            wait_for(two_nodes, 90, "the worker to join the head", interval=1.0)
        except TimeoutError:
            raise AssertionError([*seen[-1:], logs()]) from None

        url = f"http://127.0.0.1:{ports['api']}"
        auth = {"Authorization": f"Bearer {api_token}"}
        assert httpx.get(f"{url}/v1/sweeps").status_code == 401
        ready = httpx.get(f"{url}/readyz", timeout=30).json()
        assert ready == {"ready": True, "database": "ok", "ray": "ok", "mlflow": "ok"}, ready
        spec: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "sweeps" / "digits_smoke.yaml").read_text())
        spec.update(name="rehearsal", seeds=[0], max_concurrent_trials=2)
        r = httpx.post(f"{url}/v1/sweeps", json=spec, headers=auth, timeout=60)
        assert r.status_code == 201, r.text
        sid = r.json()["id"]

        def ended() -> bool:
            return httpx.get(f"{url}/v1/sweeps/{sid}", headers=auth).json()["status"] in ("SUCCEEDED", "FAILED")

        try:
            wait_for(ended, 400, "the sweep to end", interval=1.0)
        except TimeoutError:
            raise AssertionError(logs()) from None
        detail = httpx.get(f"{url}/v1/sweeps/{sid}", headers=auth).json()
        assert detail["status"] == "SUCCEEDED" and detail["trials_by_state"] == {"FINISHED": 2}, (detail, logs())

        from mlflow.tracking import MlflowClient

        client = MlflowClient(f"http://127.0.0.1:{ports['mlflow']}")
        exp = client.get_experiment_by_name("rehearsal")
        assert exp is not None
        runs = client.search_runs([exp.experiment_id], f"tags.`rskd.sweep_id` = '{sid}'")
        assert sorted(r.info.status for r in runs) == ["FINISHED"] * 3  # the parent and its two trials
        page = httpx.get(f"{url}/dashboards/sweeps/{sid}", headers=auth)
        assert page.status_code == 200 and 'id="comparison"' in page.text
    finally:
        ray_env = env_of("ray-head")
        subprocess.run(_exe(["ray", "stop", "--force"]), env=ray_env, capture_output=True, timeout=120)
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
