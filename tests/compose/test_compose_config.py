"""docker-compose.yml checked by the real Compose v2 binary, and its wiring read from ``config --format json``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from service.settings import Settings
from tests.compose.tool import ROOT, compose, config_json

PROFILES = {"gpu": ["ray-worker"], "cpu": ["ray-worker-cpu"]}
CORE = {"postgres", "mlflow", "ray-head", "api"}


@pytest.fixture(scope="module")
def dc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("docker-config")


@pytest.fixture(scope="module", params=sorted(PROFILES))
def config(request: pytest.FixtureRequest, dc: Path) -> dict[str, Any]:
    return config_json(dc, request.param)


@pytest.mark.parametrize("profile", [[], ["gpu"], ["cpu"]])
def test_config_is_valid_for_every_profile(dc: Path, profile: list[str]) -> None:
    flags = [x for p in profile for x in ("--profile", p)]
    out = compose(dc, *flags, "config", "-q", env_file=ROOT / ".env.example")
    assert out.returncode == 0, out.stderr
    listed = compose(dc, *flags, "config", "--services", env_file=ROOT / ".env.example").stdout.split()
    assert set(listed) == CORE | set(PROFILES[profile[0] if profile else "gpu"])  # .env.example: COMPOSE_PROFILES=gpu


def test_secrets_are_required(dc: Path, tmp_path: Path) -> None:
    lines = (ROOT / ".env.example").read_text().splitlines()
    for secret in ("RSKD_API_TOKEN", "RAY_AUTH_TOKEN", "POSTGRES_PASSWORD"):
        env = tmp_path / f"no-{secret}.env"
        env.write_text("\n".join(x for x in lines if not x.startswith(f"{secret}=")))
        out = compose(dc, "config", "-q", env_file=env)
        assert out.returncode != 0 and secret in out.stderr


def _hosts(value: str, services: set[str]) -> set[str]:
    return {s for s in services if re.search(rf"(//|@|^|=){re.escape(s)}:\d+", value)}


def test_the_api_waits_for_every_service_it_calls(config: dict[str, Any]) -> None:
    services = config["services"]
    api = services["api"]
    called = set().union(*(_hosts(str(v), set(services)) for v in api["environment"].values()))
    assert called == {"postgres", "mlflow", "ray-head"}
    assert {k: v["condition"] for k, v in api["depends_on"].items()} == dict.fromkeys(called, "service_healthy")
    for name, svc in services.items():  # every dependency anywhere is on health, and every service has a healthcheck
        assert all(d["condition"] == "service_healthy" for d in svc.get("depends_on", {}).values()), name
        assert svc.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_every_api_environment_name_is_a_setting(config: dict[str, Any]) -> None:
    fields = {name.upper() for name in Settings.model_fields} | {"PGPASSWORD"}  # libpq's own
    names = set(config["services"]["api"]["environment"])
    assert names <= fields, f"not in service/settings.py: {sorted(names - fields)}"
    assert {"RSKD_API_TOKEN", "RSKD_DATABASE_URL", "RAY_ADDRESS", "MLFLOW_TRACKING_URI"} <= names


def test_mlflow_allows_its_service_name_and_runs_without_job_workers(config: dict[str, Any]) -> None:
    mlflow = config["services"]["mlflow"]
    (hosts,) = [a.split("=", 1)[1] for a in mlflow["command"] if a.startswith("--allowed-hosts=")]
    assert {"mlflow", "mlflow:*", "localhost:*", "127.0.0.1:*"} <= set(hosts.split(","))
    assert mlflow["environment"]["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert any(
        a.startswith("--backend-store-uri=postgresql") and "@postgres:5432/mlflow" in a for a in mlflow["command"]
    )
    assert config["services"]["api"]["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"


def test_ray_has_shm_token_auth_and_shared_storage(config: dict[str, Any]) -> None:
    ray = {k: v for k, v in config["services"].items() if k.startswith("ray-")}
    assert len(ray) == 2
    for name, svc in ray.items():
        assert int(svc["shm_size"]) >= 2 * 1024**3, name
        assert svc["environment"]["RAY_AUTH_MODE"] == "token" and svc["environment"]["RAY_AUTH_TOKEN"], name
        mounts = {m["target"]: m for m in svc["volumes"]}
        assert mounts["/data"]["read_only"] and mounts["/rskd/storage"]["source"] == "tune-storage", name
    api = config["services"]["api"]["environment"]
    assert api["RAY_AUTH_MODE"] == "token" and api["RAY_AUTH_TOKEN"] == ray["ray-head"]["environment"]["RAY_AUTH_TOKEN"]
    workers = [s for k, s in ray.items() if k != "ray-head"]
    assert all("--address=ray-head:6379" in w["command"] for w in workers)
    gpu = config["services"].get("ray-worker")
    if gpu is not None:
        (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
        assert device["capabilities"] == ["gpu"] and device["driver"] == "nvidia"
        assert "container_name" not in gpu  # --scale ray-worker=N needs it unset


def test_only_the_api_may_be_published_beyond_localhost(config: dict[str, Any]) -> None:
    for name, svc in config["services"].items():
        for port in svc.get("ports", []):
            if name != "api":
                assert port["host_ip"] == "127.0.0.1", (name, port)
    assert config["services"]["postgres"].get("ports") is None  # the database is internal only


def test_one_build_serves_the_four_app_services(config: dict[str, Any]) -> None:
    services = config["services"]
    app = {k for k, v in services.items() if v["image"] == services["mlflow"]["image"]}
    assert app == set(services) - {"postgres"}
    assert [k for k, v in services.items() if "build" in v] == ["mlflow"]  # `compose build` builds it once
    # every other app service starts after mlflow (the workers through ray-head), so its image is built by then
    assert "mlflow" in services["ray-head"]["depends_on"] and "mlflow" in services["api"]["depends_on"]


def test_the_database_password_never_goes_into_a_url(config: dict[str, Any], tmp_path: Path, dc: Path) -> None:
    services = config["services"]
    password = "p@ss:w/rd%#?&x"
    env = tmp_path / "odd.env"
    lines = (ROOT / ".env.example").read_text().splitlines()
    env.write_text("\n".join(f"POSTGRES_PASSWORD='{password}'" if x.startswith("POSTGRES_PASSWORD=") else x
                             for x in lines))  # fmt: skip
    odd = config_json(dc, env_file=env)["services"]
    for name in ("mlflow", "api"):
        assert odd[name]["environment"]["PGPASSWORD"] == password, name
        text = json.dumps([odd[name].get("command"), odd[name]["environment"]])
        assert text.count(json.dumps(password)[1:-1]) == 1, f"{name}: the password appears besides PGPASSWORD"
    assert services["postgres"]["environment"]["POSTGRES_USER"] == "rskd"


def test_healthchecks_with_spaces_in_an_argument_use_the_shell_form(config: dict[str, Any]) -> None:
    """Podman 4.x's Docker API splits an exec-form argument that holds spaces: CMD-SHELL is portable."""
    for name, svc in config["services"].items():
        test = svc["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL"), name
        if test[0] == "CMD":
            assert not any(" " in a for a in test[1:]), (name, test)
