"""``rskd serve``: the embedded stack on one machine — a Ray head started from this venv, an MLflow server on SQLite
with local artifacts (job execution off), and the API — each started only when not given through the environment
(``RAY_ADDRESS``, ``MLFLOW_TRACKING_URI``). Everything it starts is stopped on Ctrl-C or SIGTERM.

Ray's Jobs API runs code for whoever reaches it and MLflow has no auth by default, so both bind 127.0.0.1; the API
binds 127.0.0.1 too unless ``--host`` is given, which then requires ``RSKD_API_TOKEN``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


class StackError(RuntimeError):
    """The stack cannot start; the message says what to change."""


@dataclass(frozen=True)
class StackOptions:
    home: Path
    host: str = "127.0.0.1"
    port: int = 8000
    mlflow_port: int = 5000
    ray_port: int = 6379
    ray_dashboard_port: int = 8265
    num_cpus: int | None = None


@dataclass
class LocalStack:
    opts: StackOptions
    env: dict[str, str] = field(default_factory=dict)
    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    @property
    def bin(self) -> Path:
        return Path(sys.executable).parent

    def urls(self) -> dict[str, str]:
        host = "127.0.0.1" if self.opts.host in ("0.0.0.0", "::") else self.opts.host
        return {
            "api": f"http://{host}:{self.opts.port}",
            "docs": f"http://{host}:{self.opts.port}/docs",
            "mlflow": self.env["MLFLOW_TRACKING_URI"],
            "ray": self.env["RAY_ADDRESS"],
        }

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.opts.home / f"{name}.log").open("ab")
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log, start_new_session=True)
        self.procs.append((name, proc))
        return proc

    def start_dependencies(self) -> dict[str, str]:
        """Start Ray and MLflow unless given; returns the environment the API (and the jobs) need."""
        self.opts.home.mkdir(parents=True, exist_ok=True)
        base = {**os.environ, "PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}"}
        env = dict(base)
        env.setdefault("RSKD_HOME", str(self.opts.home.resolve()))
        # the sweeps' MLflow parent runs link our dashboard page (a browser cannot open 0.0.0.0)
        host = "127.0.0.1" if self.opts.host in ("0.0.0.0", "::") else self.opts.host
        env.setdefault("RSKD_DASHBOARD_URL", f"http://{host}:{self.opts.port}")
        if not os.environ.get("MLFLOW_TRACKING_URI"):
            url = f"http://127.0.0.1:{self.opts.mlflow_port}"
            _refuse_busy(url, "MLflow", "--mlflow-port")
            self._spawn(
                "mlflow",
                [str(self.bin / "mlflow"), "server", "--backend-store-uri",
                 f"sqlite:///{(self.opts.home / 'mlflow.db').resolve()}", "--artifacts-destination",
                 str((self.opts.home / "artifacts").resolve()), "--serve-artifacts", "--host", "127.0.0.1",
                 "--port", str(self.opts.mlflow_port), "--workers", "1"],
                {**base, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            )  # fmt: skip
            env["MLFLOW_TRACKING_URI"] = url
        if not os.environ.get("RAY_ADDRESS"):
            url = f"http://127.0.0.1:{self.opts.ray_dashboard_port}"
            _refuse_busy(url, "Ray's dashboard", "--ray-dashboard-port")
            cmd = [str(self.bin / "ray"), "start", "--head", "--block", f"--port={self.opts.ray_port}",
                   "--include-dashboard=true", "--dashboard-host=127.0.0.1",
                   f"--dashboard-port={self.opts.ray_dashboard_port}", "--disable-usage-stats",
                   # the job agent's default port (52365) is shared by every Ray on the machine: a second stack's
                   # agent would fail to bind it and no job could ever be submitted there
                   f"--dashboard-agent-listen-port={_free_port()}"]  # fmt: skip
            if self.opts.num_cpus:
                cmd.append(f"--num-cpus={self.opts.num_cpus}")
            self._spawn("ray", cmd, {k: v for k, v in base.items() if k != "RAY_ADDRESS"})
            env["RAY_ADDRESS"] = url
        self.env = env
        wait_http(f"{env['MLFLOW_TRACKING_URI']}/health", 120, "MLflow", self._check_alive)
        wait_http(f"{env['RAY_ADDRESS']}/api/version", 180, "Ray's dashboard", self._check_alive)
        if "RAY_AUTH_MODE" not in env and (Path.home() / ".ray" / "auth_token").exists():
            env["RAY_AUTH_MODE"] = "token"  # Ray turned token auth on for this head
        return env

    def _check_alive(self) -> None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                raise StackError(f"{name} exited with code {proc.returncode}; see {self.opts.home / (name + '.log')}")

    def stop(self) -> None:
        """SIGTERM every started process group, SIGKILL what is left after 30 s."""
        for _, proc in reversed(self.procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for _, proc in reversed(self.procs):
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.procs.clear()


def check_host(host: str, token: str | None) -> None:
    if host not in LOCAL_HOSTS and not token:
        raise StackError(
            f"refusing to serve on {host} without a token: set RSKD_API_TOKEN, or keep the default --host 127.0.0.1"
        )


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _refuse_busy(url: str, what: str, flag: str) -> None:
    try:
        urllib.request.urlopen(url, timeout=1)
    except urllib.error.HTTPError:
        pass  # something answers there
    except OSError:
        return
    raise StackError(f"{what} port is taken ({url}); stop that stack (rskd stop) or choose another {flag}")


def wait_http(url: str, timeout: float, what: str, alive: Callable[[], None] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None:
            alive()
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status < 500:
                    return
        except urllib.error.HTTPError as err:  # it answers (401 from a token-protected dashboard counts)
            if err.code < 500:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise StackError(f"{what} did not answer at {url} within {timeout:.0f} s")


@contextlib.contextmanager
def running_stack(opts: StackOptions) -> Iterator[LocalStack]:
    stack = LocalStack(opts)
    try:
        stack.start_dependencies()
        yield stack
    finally:
        stack.stop()
