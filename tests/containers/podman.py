"""Podman as this machine's container engine: its own configuration and storage under one folder (kept between runs,
so built images are reused), its Docker-API socket for the real Compose binary, and a ticker that runs the
containers' healthchecks (Podman 4.x runs them from systemd timers, and there is no systemd here)."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# runc cannot raise rlimits in these sandboxes ("error setting rlimit type 7"), there is no systemd for the cgroup
# manager or the events journal, and netavark's aardvark-dns resolves service names
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
events_logger = "file"
[network]
network_backend = "netavark"
"""


def default_home() -> Path:
    return Path(os.environ.get("RSKD_CONTAINERS_HOME", "/var/tmp/rskd-containers"))


class Podman:
    """One Podman configuration: ``env`` points podman (and the Docker CLI, through ``DOCKER_HOST``) at it."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.socket = home / "podman.sock"
        home.mkdir(parents=True, exist_ok=True)
        (home / "containers.conf").write_text(CONTAINERS_CONF)
        (home / "storage.conf").write_text(
            f'[storage]\ndriver = "overlay"\ngraphroot = "{home}/storage"\nrunroot = "{home}/run"\n'
        )
        self.env = {
            **os.environ,
            "CONTAINERS_CONF": str(home / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(home / "storage.conf"),
            "DOCKER_HOST": f"unix://{self.socket}",
        }

    @staticmethod
    def missing() -> str | None:
        """Why podman cannot run here, or None."""
        if shutil.which("podman") is None:
            return "podman is not installed: tests/containers/install.sh installs it (make compose-test runs it)"
        if os.geteuid() != 0:
            return "the container test runs rootful podman: run it as root"
        return None

    def run(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(["podman", *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and out.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args)} exited {out.returncode}:\n{out.stderr[-3000:]}")
        return out

    def has_image(self, tag: str) -> bool:
        return self.run("image", "exists", tag, check=False).returncode == 0

    @contextmanager
    def service(self) -> Iterator[None]:
        """``podman system service`` on ``self.socket`` for as long as the block runs."""
        self.socket.unlink(missing_ok=True)
        log = (self.home / "service.log").open("ab")
        proc = subprocess.Popen(
            ["podman", "system", "service", "--time=0", f"unix://{self.socket}"],
            env=self.env, stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while not self.socket.exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"podman system service did not start; see {self.home / 'service.log'}")
                time.sleep(0.2)
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()

    def containers(self, project: str, running: bool = False) -> list[str]:
        """The ids of the compose project's containers (only the running ones with ``running``)."""
        every = () if running else ("-a",)
        out = self.run("ps", *every, "-q", "--filter", f"label=com.docker.compose.project={project}", check=False)
        return out.stdout.split()

    def health(self, cid: str) -> str:
        """The container's name, state and health status, e.g. ``api running healthy``."""
        fmt = "{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}-{{end}}"
        return self.run("inspect", "--format", fmt, cid, check=False).stdout.strip()

    def logs(self, cid: str, lines: int = 60) -> str:
        out = self.run("logs", "--tail", str(lines), cid, check=False)
        return out.stdout + out.stderr

    @contextmanager
    def healthcheck_ticker(self, project: str, every: float = 3.0) -> Iterator[None]:
        """Run every running container's healthcheck of ``project`` every ``every`` seconds, as a timer would."""
        stop = threading.Event()

        def tick() -> None:
            while not stop.is_set():
                procs = [
                    subprocess.Popen(["podman", "healthcheck", "run", cid], env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    for cid in self.containers(project, running=True)
                ]  # fmt: skip
                for p in procs:
                    try:
                        p.wait(timeout=60)
                    except subprocess.TimeoutExpired:
                        p.kill()
                stop.wait(every)

        thread = threading.Thread(target=tick, name="healthcheck-ticker", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=90)
