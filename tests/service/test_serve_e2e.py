"""``rskd serve --detach`` / ``rskd submit --follow`` / ``rskd stop`` as a user runs them: the embedded stack on its
own ports beside any other, a sweep followed to the end, and nothing left behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.procs import outward_address, port_open
from tests.service.test_stack_e2e import free_port

ROOT = Path(__file__).resolve().parents[2]
RSKD = str(Path(sys.executable).parent / "rskd")

pytestmark = pytest.mark.slow


def test_serve_submit_follow_stop(tmp_path: Path) -> None:
    ports = {
        "port": free_port(),
        "mlflow-port": free_port(),
        "ray-port": free_port(),
        "ray-dashboard-port": free_port(),
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "MLFLOW_", "RSKD_"))}
    env.update(RSKD_HOME=str(tmp_path / "home"), RSKD_URL=f"http://127.0.0.1:{ports['port']}")
    flags = [x for k, v in ports.items() for x in (f"--{k}", str(v))]

    def rskd(*args: str, timeout: int = 400) -> subprocess.CompletedProcess[str]:
        return subprocess.run([RSKD, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)

    refused = rskd("serve", "--host", "0.0.0.0", *flags)
    assert refused.returncode == 2 and "without a token" in refused.stdout + refused.stderr
    up = rskd("serve", "--detach", "--num-cpus", "2", *flags)
    assert up.returncode == 0, up.stdout + up.stderr + (tmp_path / "home" / "serve.log").read_text()[-3000:]
    try:
        assert all(port_open(p) for p in ports.values() if p != ports["ray-port"]) and port_open(ports["ray-port"])
        # Ray's Jobs API runs code and MLflow has no auth: neither (nor the API) answers on another interface. Ray's
        # GCS and raylet ports listen on every interface whatever the flags (Ray 2.60); its token auth guards them.
        ip = outward_address()
        exposed = [k for k in ("port", "mlflow-port", "ray-dashboard-port") if port_open(ports[k], ip)]
        assert not exposed, f"{exposed} answer on {ip}"
        again = rskd("serve", "--detach", *flags)
        assert again.returncode == 0 and "already running" in again.stdout
        spec = tmp_path / "one.yaml"
        spec.write_text(
            (ROOT / "examples" / "sweeps" / "digits_smoke.yaml").read_text().replace("seeds: [0, 1]", "seeds: [0]")
        )
        out = rskd("submit", str(spec), "--follow")
        assert out.returncode == 0, out.stdout + out.stderr
        assert "SUCCEEDED" in out.stdout and "| Variant | n | Top-1 |" in out.stdout
        assert "| rskd\\_l | 1† |" in out.stdout  # the Markdown comparison table ends --follow
        assert "/dashboards/sweeps/sw-" in out.stdout
        listed = rskd("sweeps", "list")
        assert "digits-smoke" in listed.stdout and "SUCCEEDED" in listed.stdout
        bad = rskd("submit", str(ROOT / "README.md"))
        assert bad.returncode == 2 and "error 422" in bad.stdout
    finally:
        down = rskd("stop", timeout=120)
    assert down.returncode == 0 and "stopped" in down.stdout
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(port_open(p) for p in ports.values()):
        time.sleep(0.5)
    assert not any(port_open(p) for p in ports.values())  # API, MLflow, Ray GCS and dashboard are all gone
