"""Hostile and oversized input is refused with a message that says what to change, and stores nothing; every /v1
route needs the token, and the token never leaks into a response or a job."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from rskd_core.config import DataConfig
from rskd_core.data.datasets import DataError, resolve_folder
from service.app import job_env
from service.settings import Settings
from tests.service.fakes import FakeSubmitter, FakeTrials
from tests.service.test_api import SMOKE, make_client

SPEC: dict[str, Any] = {**yaml.safe_load(SMOKE), "seeds": [0]}  # 2 trials
TOKEN = "t0ken-that-must-not-leak"


def spec_with(**changes: Any) -> dict[str, Any]:
    return {**SPEC, **changes}


def base_with(section: str, **changes: Any) -> dict[str, Any]:
    return spec_with(base={**SPEC["base"], section: {**SPEC["base"].get(section, {}), **changes}})


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "cifar").mkdir(parents=True)
    (root / "escape").symlink_to(tmp_path)  # a symlink that leads out of the data root
    return root


def test_refusals_say_what_to_change_and_store_nothing(tmp_path: Path, database_url: str, data_root: Path) -> None:
    fakes = (FakeSubmitter(), FakeTrials())
    env = {"rskd_max_trials": 3, "rskd_max_epochs": 50, "rskd_max_body_bytes": 4096, "rskd_data_root": str(data_root)}
    with make_client(tmp_path, fakes, database_url, **env) as c:
        cases: list[tuple[Any, int, str]] = [
            (spec_with(description="x" * 5000), 413, "over the limit of 4096 bytes"),
            (spec_with(seeds=[0, 1]), 422, "4 trials, over the limit of 3"),
            (base_with("optim", epochs=51), 422, "RSKD_MAX_EPOCHS=50"),
            (spec_with(name="x" * 65), 422, "name"),
            (spec_with(name="bad name/../x"), 422, "name"),
            (base_with("data", root="../outside"), 422, "contains '..'"),
            (base_with("data", root="/etc"), 422, "is absolute"),
            (base_with("data", root="escape/x"), 422, "leads outside RSKD_DATA_ROOT through a symlink"),
            ("!!python/object/apply:os.system ['touch pwned']", 422, "not valid YAML"),
            ("name: [unclosed", 422, "not valid YAML"),
        ]
        for body, code, says in cases:
            raw = body if isinstance(body, str) else yaml.safe_dump(body)
            r = c.post("/v1/sweeps", content=raw, headers={"content-type": "application/yaml",
                                                           "Authorization": f"Bearer {TOKEN}"})  # fmt: skip
            text = r.json()["detail"] + " " + " ".join(r.json()["problems"])
            assert r.status_code == code and says in text, (body if isinstance(body, str) else "", r.text)
        assert not (Path.cwd() / "pwned").exists()
        ok = c.post("/v1/sweeps", json=base_with("data", root="cifar"), headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 201, ok.text  # inside the data root: fine
        listed = c.get("/v1/sweeps", headers={"Authorization": f"Bearer {TOKEN}"}).json()
        assert listed["total"] == 1 and len(fakes[0].submitted) == 1  # only the good one was stored and submitted


def test_every_v1_route_needs_the_token(tmp_path: Path, database_url: str) -> None:
    fakes = (FakeSubmitter(), FakeTrials())
    with make_client(tmp_path, fakes, database_url, rskd_api_token=TOKEN) as c:
        paths = {p: ops for p, ops in c.get("/openapi.json").json()["paths"].items() if p.startswith("/v1")}
        assert sum(len(ops) for ops in paths.values()) >= 7
        for template, ops in paths.items():
            path = template.replace("{sweep_id}", "sw-123")
            for method in (m.upper() for m in ops):
                for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
                    r = c.request(method, path, headers=headers, content=SMOKE)
                    assert r.status_code == 401, (method, path, headers, r.status_code)
                    assert TOKEN not in r.text and r.headers["www-authenticate"] == "Bearer"
        assert c.get("/healthz").status_code == 200  # liveness stays open for orchestrators


def test_the_token_never_travels_with_a_job(tmp_path: Path) -> None:
    settings = Settings(rskd_home=tmp_path, rskd_api_token=TOKEN, rskd_data_root=str(tmp_path))
    assert TOKEN not in repr(job_env(settings)) and TOKEN not in repr(settings)  # SecretStr hides it in reprs
    assert "RSKD_API_TOKEN" not in job_env(settings)


def test_the_loader_refuses_paths_out_of_the_data_root(data_root: Path) -> None:
    assert resolve_folder(DataConfig(name="imagefolder", root="cifar"), data_root, "x") == data_root / "cifar"
    for bad in ("../", "escape/x", "/etc"):
        with pytest.raises(DataError, match="outside RSKD_DATA_ROOT"):
            resolve_folder(DataConfig(name="imagefolder", root=bad), data_root, "x")
    assert os.path.isabs(resolve_folder(DataConfig(name="imagefolder", root="/abs"), None, "x"))  # no root: a CLI run
