"""``docker compose --profile cpu up --build`` for real: the project's Dockerfile built by the real Compose binary,
the five services in real containers (Podman behind its Docker API, see ``podman.py``), the smoke sweep submitted to
the containerised API with the token and followed to SUCCEEDED, its report and dashboard page opened, the api
container restarted (the sweep is still there), and everything brought down with its volumes.

Run with ``make compose-test`` (``.ci/run`` does, after ``make test``); ``make test`` deselects it (marker
``containers``). Timings land in ``.test-artifacts/compose-test.json``."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from dashboards.layout import KIND_SWEEP, sweep_filter
from tests.compose.tool import ROOT, compose_cmd
from tests.containers import images
from tests.containers.podman import Podman, default_home
from tests.procs import free_port, outward_address, port_open, ray_active_nodes, wait_for

pytestmark = pytest.mark.containers
PROJECT = "rskd-ctest"
# every character that breaks a database URL unless percent-encoded, and the ones .env files treat specially
PASSWORD = "p@ss:w/rd%25#?&x y$z"
SERVICES = {"postgres", "mlflow", "ray-head", "ray-worker-cpu", "api"}


@pytest.fixture(scope="module")
def podman() -> Iterator[Podman]:
    why = Podman.missing()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the container test: {why}")
        pytest.skip(why)
    engine = Podman(default_home())
    with engine.service():
        yield engine


class Stack:
    """The compose project as this test drives it: the Docker CLI with the real Compose plugin on Podman's socket."""

    def __init__(self, podman: Podman, env_file: Path, docker_config: Path) -> None:
        self.podman = podman
        cmd, env = compose_cmd(docker_config)
        self.cmd = [*cmd, "--project-directory", str(ROOT), "-p", PROJECT, "--env-file", str(env_file)]
        # the classic builder over the Docker API: BuildKit would pull its own image, and no registry is reachable
        self.env = {**env, "DOCKER_HOST": podman.env["DOCKER_HOST"], "COMPOSE_BAKE": "false", "DOCKER_BUILDKIT": "0"}

    def compose(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.cmd, *args], env=self.env, cwd=ROOT, capture_output=True, text=True,
                              timeout=timeout)  # fmt: skip

    def container(self, service: str) -> str:
        out = self.compose("ps", "-a", "-q", service, timeout=60)
        ids = out.stdout.split()
        assert len(ids) == 1, (service, out.stdout, out.stderr)
        return ids[0]

    def report(self) -> str:
        """Each container's state and health, and the last log lines of each that is not healthy."""
        lines = []
        for cid in self.podman.containers(PROJECT):
            state = self.podman.health(cid)
            lines.append(state)
            if not state.endswith(" healthy"):
                lines.append(f"--- last log lines of {state.split()[0]}:\n{self.podman.logs(cid)}")
        return "\n".join(lines)

    def all_healthy(self) -> bool:
        states = [self.podman.health(c) for c in self.podman.containers(PROJECT)]
        return len(states) == len(SERVICES) and all(s.endswith(" running healthy") for s in states)

    def wait_healthy(self, timeout: float) -> None:
        try:
            wait_for(self.all_healthy, timeout, "every service to turn healthy", interval=2.0)
        except TimeoutError as e:
            raise AssertionError(f"{e}\n{self.report()}") from None


def env_file(path: Path, bases: images.BaseImages, ports: dict[str, int], tokens: dict[str, str]) -> Path:
    """.env.example with the secrets set, the stand-in bases, free host ports and the cpu profile."""
    values = {
        **tokens,
        "POSTGRES_PASSWORD": f"'{PASSWORD}'",  # single quotes: no interpolation, and '#' is no comment
        "COMPOSE_PROFILES": "cpu",
        "RSKD_API_PORT": str(ports["api"]),
        "MLFLOW_PORT": str(ports["mlflow"]),
        "RAY_DASHBOARD_PORT": str(ports["ray"]),
        "RSKD_IMAGE": "localhost/rskd-sweeps:compose-test",
        "RSKD_BASE_IMAGE": bases.python_torch,
        "POSTGRES_IMAGE": bases.postgres,
        "RAY_SHM_SIZE": "1gb",
    }
    lines = (ROOT / ".env.example").read_text().splitlines()
    path.write_text("\n".join(f"{k}={values[k]}" if (k := x.split("=")[0]) in values else x for x in lines) + "\n")
    return path


def follow(url: str, auth: dict[str, str], sid: str, stack: Stack) -> dict[str, Any]:
    def ended() -> bool:
        status = httpx.get(f"{url}/v1/sweeps/{sid}", headers=auth, timeout=30).json()["status"]
        return status in ("SUCCEEDED", "FAILED", "CANCELLED")

    try:
        wait_for(ended, 900, "the smoke sweep to end", interval=3.0)
    except TimeoutError as e:
        raise AssertionError(f"{e}\n{stack.report()}") from None
    detail: dict[str, Any] = httpx.get(f"{url}/v1/sweeps/{sid}", headers=auth, timeout=30).json()
    return detail


def test_compose_stack_runs_the_smoke_sweep_in_containers(podman: Podman, tmp_path: Path) -> None:
    timings: dict[str, Any] = {"base_images": []}
    t0 = time.monotonic()
    bases = images.ensure(podman, timings["base_images"])
    timings["base_images_s"] = round(time.monotonic() - t0)
    ports = {"api": free_port(), "mlflow": free_port(), "ray": free_port()}
    tokens = {"RSKD_API_TOKEN": secrets.token_hex(16), "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    stack = Stack(podman, env_file(tmp_path / ".env", bases, ports, tokens), tmp_path / "docker-config")
    stack.compose("down", "-v", "--remove-orphans", timeout=300)  # what a killed earlier run left

    t0 = time.monotonic()
    built = stack.compose("build", timeout=1800)
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
    timings["build_s"] = round(time.monotonic() - t0)
    try:
        with podman.healthcheck_ticker(PROJECT):
            t0 = time.monotonic()
            try:  # compose waits for each dependency to turn healthy
                up = stack.compose("up", "-d", timeout=600)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"compose up did not finish in 600 s\n{stack.report()}") from None
            assert up.returncode == 0, f"{up.stderr[-3000:]}\n{stack.report()}"
            stack.wait_healthy(300)
            timings["up_healthy_s"] = round(time.monotonic() - t0)
            check_the_stack(stack, ports, tokens["RSKD_API_TOKEN"], timings)
    finally:
        down = stack.compose("down", "-v", "--remove-orphans", timeout=300)
        left = podman.containers(PROJECT)
        volumes = podman.run("volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={PROJECT}")
        images.prune(podman, bases)
        out = ROOT / ".test-artifacts" / "compose-test.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(timings, indent=2) + "\n")
    assert down.returncode == 0 and not left and not volumes.stdout.split(), (down.stderr, left, volumes.stdout)


def check_the_stack(stack: Stack, ports: dict[str, int], token: str, timings: dict[str, Any]) -> None:
    podman = stack.podman
    api = stack.container("api")
    assert podman.run("exec", api, "id", "-u").stdout.strip() != "0", "the api container runs as root"
    # MLflow (no auth) and Ray's dashboard (its Jobs API runs code) answer on loopback only; so does the API here
    assert all(port_open(p) for p in ports.values()), ports
    ip = outward_address()
    exposed = [name for name, p in ports.items() if port_open(p, ip)]
    assert not exposed, f"{exposed} answer on {ip}"

    head = stack.container("ray-head")

    def two_nodes() -> bool:  # the CPU worker joined the head by its service name
        out = podman.run("exec", head, "ray", "status", "--address", "127.0.0.1:6379", check=False).stdout
        return ray_active_nodes(out) == 2

    wait_for(two_nodes, 120, "the Ray worker container to join the head", interval=2.0)

    url = f"http://127.0.0.1:{ports['api']}"
    auth = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{url}/v1/sweeps", timeout=30).status_code == 401
    assert httpx.get(f"{url}/v1/sweeps", headers={"Authorization": "Bearer wrong"}, timeout=30).status_code == 401
    ready = httpx.get(f"{url}/readyz", timeout=60).json()
    assert ready == {"ready": True, "database": "ok", "ray": "ok", "mlflow": "ok"}, ready

    spec = yaml.safe_load((ROOT / "examples" / "sweeps" / "digits_smoke.yaml").read_text())
    t0 = time.monotonic()
    r = httpx.post(f"{url}/v1/sweeps", json=spec, headers=auth, timeout=60)
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    detail = follow(url, auth, sid, stack)
    timings["smoke_sweep_s"] = round(time.monotonic() - t0)
    assert detail["status"] == "SUCCEEDED" and detail["trials_by_state"] == {"FINISHED": 4}, (detail, stack.report())

    report = httpx.get(f"{url}/v1/sweeps/{sid}/report", headers=auth, timeout=60)
    assert report.status_code == 200, report.text
    assert {v["variant"]: v["n"] for v in report.json()["variants"]} == {"ce": 2, "rskd_l": 2}
    page = httpx.get(f"{url}/dashboards/sweeps/{sid}", headers=auth, timeout=60)
    assert page.status_code == 200 and 'id="comparison"' in page.text
    assert httpx.get(f"{url}/dashboards/sweeps/{sid}", timeout=30).status_code in (401, 303)

    from mlflow.tracking import MlflowClient  # the runs, read from the host through MLflow's published port

    client = MlflowClient(f"http://127.0.0.1:{ports['mlflow']}")
    exp = client.get_experiment_by_name(spec["name"])
    assert exp is not None
    runs = client.search_runs([exp.experiment_id], sweep_filter(sid))
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * 5  # the parent and its four trials
    # the report's files, written by the non-root mlflow server into its artifacts volume
    (parent,) = client.search_runs([exp.experiment_id], sweep_filter(sid, KIND_SWEEP))
    stored = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert any(p.startswith("report") for p in stored), stored

    t0 = time.monotonic()
    restarted = stack.compose("restart", "api", timeout=300)
    assert restarted.returncode == 0, restarted.stderr
    stack.wait_healthy(180)
    timings["api_restart_s"] = round(time.monotonic() - t0)
    again = httpx.get(f"{url}/v1/sweeps/{sid}", headers=auth, timeout=30)
    assert again.status_code == 200 and again.json()["status"] == "SUCCEEDED", again.text
